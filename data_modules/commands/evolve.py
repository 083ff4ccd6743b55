"""``poseshift evolve``: load the initial poses, evolve them (:mod:`poseshift.evolution`), write a PoseSet.

The evolution itself is library code; this command adds what needs the dataset readers: the
initial population (the embedded mocap clips, Human3.6M, or any PoseSet/world-pose file) and the
PoseSet file the evolved, filmed pairs are written to (with a JSON summary beside it).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from data_modules.deepmimic import load_clip
from data_modules.h36m import load_positions_3d
from data_modules.mocap import SOURCE_CLIPS
from data_modules.rig import pose_set_from_renders
from data_modules.skeletons import get_layout
from poseshift.augment import load_bone_templates
from poseshift.evolution.driver import (
    EvolutionConfig,
    ValidityConfig,
    build_validity,
    evolve,
    finalize,
    project_population,
    resolved_kind,
    validity_note,
)
from poseshift.evolution.operators import camera_to_upright, mean_bone_lengths
from poseshift.evolution.validity import AcceptAll, AkhterValidity
from poseshift.geometry.local_frames import LocalPose, from_local, to_local
from poseshift.geometry.rig import CameraRig
from poseshift.geometry.skeleton import PARENTS

log = logging.getLogger(__name__)


@dataclass
class SourceConfig:
    """Where the initial population comes from.

    Args:
        kind: ``"mocap"``: world frames of the embedded benchmark's source clips (their
            training blocks); ``"pose_set"``: the camera-frame 3D of a PoseSet npz (turned
            upright with :func:`camera_to_upright`); ``"world"``: an npz with ``joints``
            (N, 17, 3), z-up world metres, and optionally ``subject`` (N,); ``"h36m"``: the
            world 3D of Human3.6M (VideoPose3D's ``data_3d_h36m.npz``, as read by
            :mod:`data_modules.h36m`), every frame of the chosen subjects.
        path: the npz file for ``pose_set`` / ``world``; for ``h36m`` the folder holding
            ``data_3d_h36m.npz`` (or the file itself).
        clips: mocap clips (``None`` = the benchmark's source clips).
        train_fraction: leading fraction of each mocap clip used (the benchmark's train block).
        fps: mocap frame rate (the benchmark's).
        subjects: keep only these subjects, e.g. ``["S1"]`` (``h36m``) or ``["1"]`` (the integer
            ids of ``pose_set`` / ``world`` files, as strings).
        stride: keep every ``stride``-th frame (``h36m``; the reference uses every frame).
        fraction: keep this random fraction of the poses (e.g. 0.01 for the reference's 0.01S1).
    """

    kind: str = "mocap"
    path: str | None = None
    clips: list[str] | None = None
    train_fraction: float = 0.7
    fps: float = 50.0
    subjects: list[str] | None = None
    stride: int = 1
    fraction: float = 1.0


def load_source(src: SourceConfig, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Initial world joints (N, 17, 3) float64 and group ids (N,) (subjects, or clips for mocap)."""
    if src.kind == "mocap":
        clips = src.clips or list(SOURCE_CLIPS)
        parts, groups = [], []
        for i, name in enumerate(clips):
            world = load_clip(name, fps=src.fps)
            world = world[: int(round(src.train_fraction * len(world)))]
            parts.append(world)
            groups.append(np.full(len(world), i))
        joints, group = np.concatenate(parts), np.concatenate(groups)
    elif src.kind in ("pose_set", "world"):
        if not src.path:
            raise ValueError(f"source kind {src.kind!r} needs a path")
        data = np.load(src.path, allow_pickle=False)
        if src.kind == "world":
            joints = data["joints"]
        else:
            joints = camera_to_upright(torch.from_numpy(data["pose3d"] + data["root3d"][:, None])).numpy()
        group = data["subject"] if "subject" in data.files else np.zeros(len(joints), dtype=np.int64)
    elif src.kind == "h36m":
        if not src.path:
            raise ValueError("source kind 'h36m' needs a path (folder with data_3d_h36m.npz)")
        path = Path(src.path)
        positions = load_positions_3d(path / "data_3d_h36m.npz" if path.is_dir() else path)
        subjects = src.subjects or sorted(positions)
        missing = [s for s in subjects if s not in positions]
        if missing:
            raise ValueError(f"{path}: no subject(s) {missing}; present: {sorted(positions)}")
        to17 = list(get_layout("h36m32").to_h36m17)
        parts, groups = [], []
        for s in subjects:
            for key in sorted(positions[s]):
                world = np.asarray(positions[s][key])[:: src.stride][:, to17]
                parts.append(world)
                groups.append(np.full(len(world), int(s.lstrip("S"))))
        joints, group = np.concatenate(parts), np.concatenate(groups)
        src = SourceConfig(**{**asdict(src), "subjects": None})  # already selected
    else:
        raise ValueError(f"unknown source kind {src.kind!r}; use 'mocap', 'h36m', 'pose_set' or 'world'")
    check_metres(np.asarray(joints), src.path or src.kind)
    keep = np.ones(len(joints), dtype=bool)
    if src.subjects is not None:
        keep &= np.isin(group.astype(str), [str(s).lstrip("S") for s in src.subjects])
    if src.fraction < 1:
        rng = np.random.default_rng(seed)
        keep &= rng.random(len(joints)) < src.fraction
    if not keep.any():
        raise ValueError(f"the source {src} selects no poses")
    return torch.from_numpy(np.asarray(joints[keep], dtype=np.float64)), torch.from_numpy(
        np.asarray(group[keep], dtype=np.int64)
    )


MAX_BONE_M = 2.0  # no human bone is longer; millimetre data has median bones of ~100-450


def check_metres(joints: np.ndarray, where: str) -> None:
    """Refuse source poses whose bones are far too long for metres (millimetres, centimetres)."""
    if joints.ndim != 3 or joints.shape[1:] != (len(PARENTS), 3):
        raise ValueError(f"{where}: source joints must have shape (N, {len(PARENTS)}, 3), got {joints.shape}")
    child = np.arange(1, len(PARENTS))
    bones = np.linalg.norm(joints[:, child] - joints[:, np.asarray(PARENTS[1:])], axis=-1)
    median = float(np.median(bones)) if bones.size else 0.0
    if median > MAX_BONE_M:
        unit = "millimetres" if median > 20 else "centimetres"
        raise ValueError(
            f"{where}: the source poses look like {unit} (median bone length {median:.0f}); "
            f"poseshift evolve needs metres: divide the joints by {1000 if unit == 'millimetres' else 100}"
        )


def run_evolution(
    source: SourceConfig,
    evolution: EvolutionConfig,
    validity: ValidityConfig,
    output: str,
    rig=None,
    seed: int = 0,
    group_size: int = 512,
    progress: bool = True,
    threads: int | None = None,
    bone_templates: str | None = None,
) -> dict:
    """Load the source, evolve, finalize, project and write ``output`` (PoseSet npz) plus a JSON summary.

    ``bone_templates``: an .npy / .npz (key ``templates``) of (K, 16) bone lengths in metres
    for the bone-length mutation; by default the mean lengths of each source subject.
    """
    if threads:
        torch.set_num_threads(threads)
    rig = rig if rig is not None else CameraRig.h36m()
    joints, groups = load_source(source, seed)
    initial = to_local(joints)
    model = build_validity(validity, initial)
    initial = LocalPose(initial.directions.float(), initial.lengths.float(), initial.root.float())
    if hasattr(model, "per_bone") and not isinstance(model, AcceptAll):
        log.info(
            "validity model accepts %.1f%% of the initial poses",
            100
            * float(
                model(initial, from_local(initial) if isinstance(model, AkhterValidity) else None)
                .float()
                .mean()
            ),
        )
    gen = torch.Generator().manual_seed(seed)
    result = evolve(initial, evolution, model, gen, progress=progress)
    if bone_templates:
        templates = load_bone_templates(bone_templates)
    else:
        templates = mean_bone_lengths(initial.lengths, groups)
    world = finalize(result, evolution, templates, gen)
    t0 = time.perf_counter()
    parts = project_population(world, rig, seed, group_size)
    poses = pose_set_from_renders(parts, "evolved", ("evolved",), source="poseshift evolve")
    projection_s = time.perf_counter() - t0
    out = Path(output)
    if len(poses) == 0:
        raise ValueError(
            f"{out}: not written: the camera rig dropped all {len(world):,} evolved poses (joints behind "
            "a camera or outside the image); check the source's units and the rig's distance_range"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    poses.save(out)
    summary = {
        "output": str(out),
        "initial": result.initial_size,
        "population": len(result.population),
        "new_poses": result.new_poses,
        "pairs_2d3d": len(poses),
        "evolution_seconds": result.seconds,
        "projection_seconds": projection_s,
        "valid_new_poses_per_second": result.new_poses / max(result.seconds, 1e-9),
        "generations": [asdict(s) | {"acceptance": s.acceptance} for s in result.stats],
        "validity": resolved_kind(validity),
        "notes": [validity_note(validity)],
        "config": {
            "source": asdict(source),
            "evolution": asdict(evolution),
            "validity": asdict(validity),
            "rig": asdict(rig),
            "seed": seed,
        },
    }
    Path(str(out) + ".json").write_text(json.dumps(summary, indent=1))
    log.info("%s", validity_note(validity))
    log.info(
        "wrote %d 2D-3D pairs from %d poses (%d new) to %s",
        len(poses),
        len(result.population),
        result.new_poses,
        out,
    )
    return summary


def main(argv: list[str] | None = None) -> int:
    """``poseshift evolve --config experiments/evoskeleton/<name>.yaml [--key value ...]``.

    Returns 0 on success (the exit status).
    """
    from jsonargparse import ActionConfigFile, ArgumentParser

    parser = ArgumentParser(prog="poseshift evolve", description="Evolve a 3D pose dataset (EvoSkeleton).")
    parser.add_argument("--config", action=ActionConfigFile, help="YAML file with the options below")
    parser.add_argument("--source", type=SourceConfig, default=SourceConfig(), help="initial population")
    parser.add_argument(
        "--evolution", type=EvolutionConfig, default=EvolutionConfig(), help="evolution settings"
    )
    parser.add_argument("--validity", type=ValidityConfig, default=ValidityConfig(), help="natural selection")
    parser.add_argument(
        "--rig", type=CameraRig, default=CameraRig.h36m(), help="cameras for the 2D projection"
    )
    parser.add_argument("--output", type=str, default="runs/evolved/evolved.npz", help="PoseSet npz to write")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--group_size", type=int, default=512, help="poses per camera placement when filming")
    parser.add_argument("--progress", type=bool, default=True, help="show a progress bar")
    parser.add_argument("--threads", type=int | None, default=None, help="torch CPU threads")
    parser.add_argument(
        "--bone_templates",
        type=str | None,
        default=None,
        help="(K, 16) bone lengths in metres (.npy, or .npz key 'templates') for the bone-length "
        "mutation; default: the mean lengths of each source subject",
    )
    cfg = parser.parse_args(argv)
    init = parser.instantiate(cfg)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    summary = run_evolution(
        init.source,
        init.evolution,
        init.validity,
        init.output,
        init.rig,
        init.seed,
        init.group_size,
        init.progress,
        init.threads,
        init.bone_templates,
    )
    print(
        f"evolved {summary['initial']} -> {summary['population']} poses "
        f"in {summary['evolution_seconds']:.1f} s "
        f"({summary['valid_new_poses_per_second']:.0f} valid new poses/s); "
        f"{summary['pairs_2d3d']} 2D-3D pairs written to {summary['output']}",
        flush=True,
    )
    return 0
