"""The embedded cross-domain benchmark: real DeepMimic mocap filmed by virtual cameras.

Everything comes from the pybullet wheel (see :mod:`data_modules.deepmimic`), so this runs
anywhere in seconds without downloading a dataset. The source domain imitates H36M: everyday
motions filmed by the four real H36M S1 cameras, with the subject placed at several yaws and
positions ("takes"). The target domains change one factor or several:

===============  =========================================================  ===============
test set         motions                                                    cameras
===============  =========================================================  ===============
source_test      held-out frames of the source clips                        H36M S1
new_motion       unseen clips (cartwheel, backflip, roll, crawl, getups,    H36M S1
                 spin, spinkick), like 3DPW/3DHP motions
new_view         held-out frames of the source clips                        high (30-90 deg,
                                                                            incl. top-down),
                                                                            near, wide lens
moving_camera    fast clips (run, jump, kick, spinkick, cartwheel,          PTZ following,
                 backflip)                                                  far, zoomed
all_shift        the unseen clips                                           moving, high,
                                                                            varied lens
===============  =========================================================  ===============

Frames are partitioned once per clip, by time, into contiguous blocks. Source clips: train,
val, test (``split``); other clips: target-train, then test (``target_test_fraction``). Every
test set takes only test blocks and every unlabeled ``target_train`` set only train blocks,
filmed with separate camera draws, so no test frame is ever seen in training, labeled or not.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import sys
import tempfile
import time
import zlib
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import torch
from lightning_fabric.utilities.rank_zero import rank_zero_only

from data_modules.base import DomainSets, PoseDataModule, describe_sets
from data_modules.deepmimic import CLIP_NAMES, clip_path, clip_to_world, parse_clip
from data_modules.rig import pose_set_from_renders
from data_modules.schema import PoseSet
from poseshift.geometry.rig import CameraRig, render

log = logging.getLogger(__name__)

FORMAT_VERSION = 1  # bump when the generated arrays change for the same configuration
SOURCE_CLIPS: tuple[str, ...] = ("walk", "run", "jump", "kick", "punch", "dance_a", "dance_b")
NEW_MOTION_CLIPS: tuple[str, ...] = (
    "cartwheel",
    "backflip",
    "roll",
    "crawl",
    "getup_facedown",
    "getup_faceup",
    "spin",
    "spinkick",
)
FAST_CLIPS: tuple[str, ...] = ("run", "jump", "kick", "spinkick", "cartwheel", "backflip")
SOURCE_TEST = "source_test"
# A module-level default (copied per instance) rather than None, so that LightningCLI shows the
# preset's values and ``--data.source_rig.<field>`` edits the preset instead of a plain CameraRig.
H36M_RIG = CameraRig.h36m()


@dataclass
class MocapDomain:
    """A named target domain: which clips are filmed, and by which camera rig.

    Args:
        name: test-set name (appears in metric keys) and ``target_train`` key.
        clips: DeepMimic clip names (see ``deepmimic.CLIP_NAMES``).
        rig: how the cameras and the subject are drawn.
        takes: rig draws (subject placements, each filmed by ``rig.num_cameras``) for the test set.
        train_takes: rig draws for the unlabeled ``target_train`` set; 0 gives none.
    """

    name: str
    clips: list[str]
    rig: CameraRig = field(default_factory=CameraRig)
    takes: int = 4
    train_takes: int = 4


def default_targets() -> list[MocapDomain]:
    """The default target domains (see the module docstring)."""
    high = CameraRig(
        elevation_range=(30.0, 90.0),
        distance_range=(2.5, 5.5),
        focal_scale_range=(0.5, 1.0),
        h36m_intrinsics=False,
        image_size=(2048, 2048),
        aim_jitter=0.15,
    )
    ptz = CameraRig(
        moving=True,
        elevation_range=(-5.0, 45.0),
        distance_range=(6.0, 12.0),
        focal_scale_range=(1.0, 2.0),
        h36m_intrinsics=False,
        image_size=(1920, 1080),
        orbit_speed_range=(-20.0, 20.0),
        aim_jitter=0.1,
    )
    mixed = CameraRig(
        moving=True,
        elevation_range=(20.0, 90.0),
        distance_range=(3.0, 8.0),
        focal_scale_range=(0.5, 1.5),
        h36m_intrinsics=False,
        orbit_speed_range=(-30.0, 30.0),
        aim_jitter=0.1,
    )
    return [
        MocapDomain("new_motion", list(NEW_MOTION_CLIPS), CameraRig.h36m()),
        MocapDomain("new_view", list(SOURCE_CLIPS), high, takes=16, train_takes=4),
        MocapDomain("moving_camera", list(FAST_CLIPS), ptz, takes=16, train_takes=8),
        MocapDomain("all_shift", list(NEW_MOTION_CLIPS), mixed),
    ]


def cache_root() -> Path:
    """``$POSESHIFT_CACHE``, else ``$XDG_CACHE_HOME/poseshift``, else ``~/.cache/poseshift``."""
    if os.environ.get("POSESHIFT_CACHE"):
        return Path(os.environ["POSESHIFT_CACHE"])
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]) / "poseshift"
    return Path.home() / ".cache" / "poseshift"


def _stable_id(text: str) -> int:
    return zlib.crc32(text.encode())  # stable across runs, unlike hash()


def _blocks(length: int, fractions: tuple[float, ...], names: tuple[str, ...]) -> dict[str, tuple[int, int]]:
    """Contiguous frame ranges [start, stop) of a clip, one per name, in order."""
    edges = np.round(np.cumsum((0.0,) + tuple(fractions)) / sum(fractions) * length).astype(int)
    return {n: (int(edges[i]), int(edges[i + 1])) for i, n in enumerate(names)}


class MocapDataModule(PoseDataModule):
    """Cross-domain benchmark built from the DeepMimic clips in the pybullet wheel.

    Args:
        source_clips: clips of the labeled source domain; ``None`` = walk, run, jump, kick,
            punch, dance_a, dance_b.
        source_rig: cameras of the source domain; default ``CameraRig.h36m()``.
        source_takes: subject placements per source clip (each seen by every camera); with
            the defaults 16 takes give ~26k training samples.
        split: time fractions of each source clip for train, val and test (contiguous blocks).
        targets: target domains, each a test set (and an unlabeled ``target_train`` set);
            ``None`` = new_motion, new_view, moving_camera, all_shift.
        target_test_fraction: for clips outside the source domain, the final fraction of each
            clip used for testing; the part before it feeds ``target_train``.
        fps: frame rate the clips are resampled to.
        seed: seed of every random draw; the same seed gives identical arrays.
        cache: save generated sets as npz under ``cache_dir`` and reuse them.
        cache_dir: cache folder; ``None`` = ``$POSESHIFT_CACHE``, else
            ``$XDG_CACHE_HOME/poseshift``, else ``~/.cache/poseshift``.
        **loader: DataLoader options of :class:`PoseDataModule` (batch_size, eval_batch_size,
            num_workers, test_sets, receptive_field, random_stride); ``test_sets=None`` runs
            source_test and every target.
    """

    def __init__(
        self,
        source_clips: list[str] | None = None,
        source_rig: CameraRig = H36M_RIG,
        source_takes: int = 16,
        split: tuple[float, float, float] = (0.7, 0.1, 0.2),
        targets: list[MocapDomain] | None = None,
        target_test_fraction: float = 0.5,
        fps: float = 50.0,
        seed: int = 0,
        cache: bool = True,
        cache_dir: str | None = None,
        **loader: Any,
    ) -> None:
        super().__init__(**loader)
        self.source_clips = list(source_clips) if source_clips is not None else list(SOURCE_CLIPS)
        self.source_rig = replace(source_rig)
        self.source_takes = source_takes
        self.split = tuple(float(f) for f in split)
        self.targets = list(targets) if targets is not None else default_targets()
        self.target_test_fraction = target_test_fraction
        self.fps = float(fps)  # 50 and 50.0 must give the same cache key
        self.seed = int(seed)
        self.cache = cache
        self.cache_dir = cache_dir
        self._check()

    def _check(self) -> None:
        unknown = sorted(
            {c for c in self.source_clips + [c for d in self.targets for c in d.clips]} - set(CLIP_NAMES)
        )
        if unknown:
            raise KeyError(f"unknown clip(s) {unknown}; known clips: {', '.join(CLIP_NAMES)}")
        if not self.source_clips:
            raise ValueError("source_clips must name at least one clip")
        if len(self.split) != 3 or min(self.split) <= 0:
            raise ValueError(f"split must be three positive fractions (train, val, test), got {self.split}")
        if not 0 < self.target_test_fraction < 1:
            raise ValueError(f"target_test_fraction must be in (0, 1), got {self.target_test_fraction}")
        repeated = [d.name for d in self.targets if len(set(d.clips)) != len(d.clips) or not d.clips]
        if repeated or len(set(self.source_clips)) != len(self.source_clips):
            raise ValueError(f"clip lists must be non-empty without repeats (check source_clips, {repeated})")
        names = [d.name for d in self.targets]
        if len(set(names)) != len(names) or SOURCE_TEST in names:
            raise ValueError(f"target names must be unique and not {SOURCE_TEST!r}, got {names}")
        if self.source_takes < 1 or any(d.takes < 1 or d.train_takes < 0 for d in self.targets):
            raise ValueError("source_takes and every target's takes must be >= 1 (train_takes >= 0)")
        if self.fps <= 0:
            raise ValueError(f"fps must be positive, got {self.fps}")

    # -- configuration and cache ------------------------------------------------------------------
    def config(self) -> dict:
        """Everything the generated arrays depend on (hashed into the cache key)."""
        return {
            "format_version": FORMAT_VERSION,
            "source_clips": self.source_clips,
            "source_rig": asdict(self.source_rig),
            "source_takes": self.source_takes,
            "split": list(self.split),
            "targets": [asdict(d) for d in self.targets],
            "target_test_fraction": self.target_test_fraction,
            "fps": self.fps,
            "seed": self.seed,
        }

    def _clip_names(self) -> list[str]:
        wanted = set(self.source_clips) | {c for d in self.targets for c in d.clips}
        return [c for c in CLIP_NAMES if c in wanted]

    def cache_key(self) -> str:
        """Hash of :meth:`config` and the bytes of the clip files it reads."""
        digest = hashlib.sha256(json.dumps(self.config(), sort_keys=True).encode())
        for name in self._clip_names():  # a changed pybullet_data must not reuse old arrays
            digest.update(clip_path(name).read_bytes())
        return digest.hexdigest()[:20]

    def cache_path(self) -> Path:
        root = Path(self.cache_dir) if self.cache_dir else cache_root()
        return root / "mocap" / self.cache_key()

    # -- building ---------------------------------------------------------------------------------
    def build_sets(self) -> DomainSets:
        if not self.cache:
            return self.generate()
        folder = self.cache_path()
        why = "first run with these settings"
        if (folder / "manifest.json").is_file():
            log.info("loading the mocap benchmark from %s", folder)
            try:
                return _load(folder)
            except (ValueError, KeyError, OSError) as err:  # damaged manifest or split (DataFormatError)
                # the cache is derived data: rebuild it rather than fail or use part of it
                _say(
                    f"warning: {folder}: the cached mocap benchmark is damaged ({_reason(err)}); "
                    "it is rebuilt now, no action needed",
                    sys.stderr,
                )
                shutil.rmtree(folder, ignore_errors=True)
                why = "the cached copy was damaged"
        _say(f"building the mocap benchmark ({why}); cached in {folder} for later runs")
        sets = self.generate()
        try:
            _save(sets, folder, self.config())
        except OSError as err:  # a read-only or full disk must not stop training
            log.warning("could not cache the mocap benchmark in %s: %s", folder, err)
        return sets

    def generate(self) -> DomainSets:
        """Generate every set from the clips (no cache)."""
        # The tensors are small: one torch thread is as fast on an idle machine and ~6x faster
        # on a busy one, where spinning intra-op threads stall (measured on 2 cores: 0.8 vs 5 s).
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return self._generate()
        finally:
            torch.set_num_threads(threads)

    def _generate(self) -> DomainSets:
        start = time.perf_counter()
        worlds = {n: clip_to_world(*parse_clip(clip_path(n)), fps=self.fps) for n in self._clip_names()}
        actions = CLIP_NAMES  # ids shared by every set, whatever clips it holds
        target_split = (1 - self.target_test_fraction, self.target_test_fraction)
        blocks = {
            n: _blocks(len(w), self.split, ("train", "val", "test"))
            if n in self.source_clips
            else _blocks(len(w), target_split, ("train", "test"))
            for n, w in worlds.items()
        }
        next_sequence, dropped = 0, 0

        def film(
            domain: str, role: str, clip: str, rig: CameraRig, takes: int, block: str | None = None
        ) -> dict[str, np.ndarray]:
            """Render a clip, or one block of it, with fresh draws; frames keep clip indices."""
            nonlocal next_sequence, dropped
            rng = np.random.default_rng([self.seed, _stable_id(domain), _stable_id(role), _stable_id(clip)])
            lo, hi = blocks[clip][block] if block else (0, len(worlds[clip]))
            out = render(
                worlds[clip][lo:hi], rig, rng, takes=takes, fps=self.fps, label=f"{domain}/{role}/{clip}"
            )
            out["frame"] = out["frame"] + lo
            out["sequence"] = out["sequence"] + next_sequence
            next_sequence += takes * rig.num_cameras
            out["action"] = np.full(len(out["frame"]), actions.index(clip))
            dropped += int(out.pop("num_dropped"))  # render() has logged a warning for these
            return out

        def pick(out: dict[str, np.ndarray], clip: str, block: str) -> dict[str, np.ndarray]:
            lo, hi = blocks[clip][block]
            keep = (out["frame"] >= lo) & (out["frame"] < hi)
            return {k: v[keep] for k, v in out.items()}

        source = {"train": [], "val": [], "test": []}
        for clip in self.source_clips:
            out = film("source", "all", clip, self.source_rig, self.source_takes)
            for block in source:  # one filming cut by time: sequence ids stay shared across splits
                source[block].append(pick(out, clip, block))
        test = {SOURCE_TEST: _pose_set(source["test"], SOURCE_TEST, actions)}
        target_train: dict[str, PoseSet] = {}
        for dom in self.targets:
            # each block filmed on its own: cameras and placements fit (and follow) just that part
            parts = [film(dom.name, "test", c, dom.rig, dom.takes, "test") for c in dom.clips]
            test[dom.name] = _pose_set(parts, dom.name, actions)
            if dom.train_takes > 0:
                parts = [film(dom.name, "train", c, dom.rig, dom.train_takes, "train") for c in dom.clips]
                target_train[dom.name] = _pose_set(parts, dom.name, actions).unlabeled()
        sets = DomainSets(
            train=_pose_set(source["train"], "train", actions),
            val=_pose_set(source["val"], "val", actions),
            test=test,
            target_train=target_train,
        )
        log.info(
            "generated the mocap benchmark in %.1f s (%d frames dropped by the camera checks):\n%s",
            time.perf_counter() - start,
            dropped,
            describe_sets(sets),
        )
        return sets


def _say(message: str, stream: TextIO | None = None) -> None:
    """One line for the user, from the first process only (every DDP process builds its own sets)."""
    if rank_zero_only.rank == 0:
        print(message, file=stream or sys.stdout, flush=True)


def _reason(err: BaseException) -> str:
    text = str(err).splitlines()[0] if str(err) else type(err).__name__
    return text if len(text) < 160 else text[:157] + "..."


def _pose_set(parts: list[dict[str, np.ndarray]], name: str, actions: tuple[str, ...]) -> PoseSet:
    return pose_set_from_renders(parts, name, actions, source="poseshift mocap benchmark")


def _save(sets: DomainSets, folder: Path, config: dict) -> None:
    """Write every set to ``folder`` atomically (a temporary folder renamed at the end)."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=folder.name + ".", dir=folder.parent))
    try:
        sets.train.save(tmp / "train.npz")
        sets.val.save(tmp / "val.npz")
        for i, s in enumerate(sets.test.values()):
            s.save(tmp / f"test_{i}.npz")
        for i, s in enumerate(sets.target_train.values()):
            s.save(tmp / f"target_{i}.npz")
        manifest = {"config": config, "test": list(sets.test), "target_train": list(sets.target_train)}
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1))
        try:
            tmp.rename(folder)
        except OSError:  # another process finished the same build first; its copy is identical
            pass
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _load(folder: Path) -> DomainSets:
    manifest = json.loads((folder / "manifest.json").read_text())
    return DomainSets(
        train=PoseSet.load(folder / "train.npz"),
        val=PoseSet.load(folder / "val.npz"),
        test={n: PoseSet.load(folder / f"test_{i}.npz") for i, n in enumerate(manifest["test"])},
        target_train={
            n: PoseSet.load(folder / f"target_{i}.npz").unlabeled()
            for i, n in enumerate(manifest["target_train"])
        },
    )
