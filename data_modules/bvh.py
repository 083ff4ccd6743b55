"""Any BVH motion capture as source or target domain, filmed by the virtual camera rig.

A folder of ``.bvh`` files (e.g. the free CMU Motion Capture Database in BVH) becomes
PoseSets in three steps:

1. :func:`parse_bvh` reads the hierarchy (joints, offsets, channels, End Sites) and the
   motion table; :func:`forward_kinematics` turns all frames into global joint positions at
   once (one batched matrix product per joint, rotations from
   ``poseshift.geometry.rotations.euler_to_matrix`` in the file's channel order, which is
   the BVH convention ``R = R_1 R_2 R_3`` for channels listed 1, 2, 3).
2. :func:`bvh_to_world` picks the 17 H36M joints through a joint-name map (``DEFAULT_JOINT_MAP``
   fits the CMU/cgspeed and Mixamo-style names; a list of names averages them; ``Head_End``
   is the End Site of ``Head``), converts the up axis to z-up, scales to metres, puts the
   lowest joint of the clip on the floor Z = 0 and resamples to ``fps``.
3. :func:`data_modules.rig.render` films the sequence with a :class:`~data_modules.rig.CameraRig`
   (default: the four real H36M cameras).

Joint correspondence is approximate (mocap skeletons are not H36M's marker-derived joints)
and ``scale=None`` rescales every clip to a 1.6 m ankle-to-head-top rest height, which
removes body-size differences; pass the file's unit (e.g. 0.01 for centimetres) to keep them.
"""

from __future__ import annotations

import logging
import re
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from data_modules.base import DomainSets, PoseDataModule
from data_modules.cross_dataset import TargetDomain
from data_modules.rig import pose_set_from_renders
from data_modules.schema import DataFormatError, PoseSet
from data_modules.skeletons import eval_joint_set
from poseshift.geometry.rig import CameraRig, render
from poseshift.geometry.rotations import euler_to_matrix
from poseshift.geometry.skeleton import JOINT_NAMES

log = logging.getLogger(__name__)

REST_HEIGHT = 1.6  # metres from ankle to head top in the rest pose when scale=None (H36M-like)
DEFAULT_JOINT_MAP: dict[str, str | list[str]] = {
    "pelvis": "Hips",
    "r_hip": "RightUpLeg",
    "r_knee": "RightLeg",
    "r_ankle": "RightFoot",
    "l_hip": "LeftUpLeg",
    "l_knee": "LeftLeg",
    "l_ankle": "LeftFoot",
    "spine": "Spine1",
    "thorax": "Neck",
    "neck_nose": "Head",
    "head_top": "Head_End",
    "l_shoulder": "LeftArm",
    "l_elbow": "LeftForeArm",
    "l_wrist": "LeftHand",
    "r_shoulder": "RightArm",
    "r_elbow": "RightForeArm",
    "r_wrist": "RightHand",
}
_UP_TO_Z = {  # proper rotations taking the file's up axis to +Z (rows: new X, Y, Z from old x, y, z)
    "y": np.array([[1.0, 0, 0], [0, 0, -1], [0, 1, 0]]),
    "z": np.eye(3),
}


@dataclass
class BVHSkeleton:
    """Joints in file order (End Sites appended as ``<parent>_End``), with offsets and channels.

    Args:
        names: joint names in file order.
        parents: parent index of each joint (-1 for the root).
        offsets: (J, 3) offsets from the parent, file units.
        channels: each joint's channel names, e.g. ``["Xposition", ..., "Yrotation"]``.
    """

    names: list[str]
    parents: list[int]
    offsets: np.ndarray  # (J, 3)
    channels: list[list[str]]  # per joint, e.g. ["Xposition", ..., "Zrotation", "Xrotation", "Yrotation"]

    @property
    def num_channels(self) -> int:
        return sum(len(c) for c in self.channels)


def parse_bvh(path: str | Path) -> tuple[BVHSkeleton, np.ndarray, float]:
    """(skeleton, motion (F, channels), frame time in seconds) of a BVH file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found")
    text = path.read_text(errors="replace")
    head, sep, motion_text = text.partition("MOTION")
    if not sep or "HIERARCHY" not in head:
        raise DataFormatError(f"{path}: not a BVH file (needs HIERARCHY and MOTION sections)")
    tokens = head.split()
    names: list[str] = []
    parents: list[int] = []
    offsets: list[list[float]] = []
    channels: list[list[str]] = []
    stack: list[int] = []
    i = tokens.index("HIERARCHY") + 1
    pending: int | None = None
    try:
        while i < len(tokens):
            tok = tokens[i]
            if tok in ("ROOT", "JOINT"):
                names.append(tokens[i + 1])
                parents.append(stack[-1] if stack else -1)
                offsets.append([0.0, 0.0, 0.0])
                channels.append([])
                pending = len(names) - 1
                i += 2
            elif tok == "End":  # End Site: a leaf without channels
                parent = stack[-1]
                names.append(f"{names[parent]}_End")
                parents.append(parent)
                offsets.append([0.0, 0.0, 0.0])
                channels.append([])
                pending = len(names) - 1
                i += 2
            elif tok == "{":
                if pending is None:
                    raise DataFormatError(f"{path}: HIERARCHY: '{{' without a joint")
                stack.append(pending)
                pending = None
                i += 1
            elif tok == "}":
                stack.pop()
                i += 1
            elif tok == "OFFSET":
                offsets[stack[-1]] = [float(v) for v in tokens[i + 1 : i + 4]]
                i += 4
            elif tok == "CHANNELS":
                count = int(tokens[i + 1])
                channels[stack[-1]] = tokens[i + 2 : i + 2 + count]
                i += 2 + count
            else:
                raise DataFormatError(f"{path}: HIERARCHY: unexpected token {tok!r}")
    except (IndexError, ValueError) as err:
        raise DataFormatError(f"{path}: HIERARCHY: malformed ({err})") from err
    if stack or not names:
        raise DataFormatError(f"{path}: HIERARCHY: unbalanced braces or no joints")
    skel = BVHSkeleton(names, parents, np.array(offsets), channels)
    lines = [ln for ln in motion_text.strip().splitlines() if ln.strip()]
    try:
        frames = int(re.match(r"Frames:\s*(\d+)", lines[0]).group(1))  # type: ignore[union-attr]
        frame_time = float(re.match(r"Frame Time:\s*([\d.eE+-]+)", lines[1]).group(1))  # type: ignore[union-attr]
    except (AttributeError, IndexError, ValueError) as err:
        raise DataFormatError(f"{path}: MOTION: needs 'Frames: N' and 'Frame Time: T' lines") from err
    try:
        motion = np.array([[float(v) for v in ln.split()] for ln in lines[2 : 2 + frames]], dtype=np.float64)
    except ValueError as err:
        raise DataFormatError(f"{path}: MOTION: non-numeric value ({err})") from err
    if motion.ndim != 2 or motion.shape != (frames, skel.num_channels):
        raise DataFormatError(
            f"{path}: MOTION: expected {frames} frames x {skel.num_channels} channels, got "
            f"{motion.shape if motion.ndim == 2 else 'rows of different lengths'}"
        )
    if frame_time <= 0 or not np.isfinite(motion).all():
        raise DataFormatError(f"{path}: MOTION: frame time must be positive and values finite")
    return skel, motion, frame_time


def forward_kinematics(skel: BVHSkeleton, motion: np.ndarray) -> np.ndarray:
    """Global positions (F, J, 3) of every joint (and End Site), in file units and axes."""
    n = len(motion)
    pos = np.zeros((n, len(skel.names), 3))
    rot = np.zeros((n, len(skel.names), 3, 3))
    col = 0
    for j, (parent, chans) in enumerate(zip(skel.parents, skel.channels, strict=True)):
        values = motion[:, col : col + len(chans)]
        col += len(chans)
        local_t = np.broadcast_to(skel.offsets[j], (n, 3)).copy()
        axes = [c[0].lower() for c in chans if c.endswith("rotation")]
        angles = (
            np.stack([values[:, k] for k, c in enumerate(chans) if c.endswith("rotation")], -1)
            if axes
            else np.zeros((n, 0))
        )
        for k, c in enumerate(chans):
            if c.endswith("position"):  # position channels give the joint's translation
                local_t[:, "xyz".index(c[0].lower())] = values[:, k]
        if len(axes) == 3:
            local_r = euler_to_matrix(torch.from_numpy(np.radians(angles)), "".join(axes)).numpy()
        elif not axes:
            local_r = np.broadcast_to(np.eye(3), (n, 3, 3))
        else:
            raise DataFormatError(
                f"joint {skel.names[j]}: {len(axes)} rotation channels; 0 or 3 are supported"
            )
        if parent < 0:
            pos[:, j], rot[:, j] = local_t, local_r
        else:
            pos[:, j] = pos[:, parent] + np.einsum("nab,nb->na", rot[:, parent], local_t)
            rot[:, j] = rot[:, parent] @ local_r
    return pos


def _resolve(names: list[str], wanted: str | list[str], path: Path, joint: str) -> list[int]:
    """Indices of BVH joints by name, case-insensitive, ignoring namespace prefixes like ``mixamorig:``."""
    plain = [n.split(":")[-1].lower() for n in names]
    out = []
    for w in [wanted] if isinstance(wanted, str) else wanted:
        key = w.split(":")[-1].lower()
        if key not in plain:
            raise DataFormatError(
                f"{path}: joint map: {joint} -> {w!r} not in the file; its joints are {', '.join(names)}"
            )
        out.append(plain.index(key))
    return out


def bvh_to_world(
    path: str | Path,
    joint_map: dict[str, str | list[str]] | None = None,
    scale: float | None = None,
    up: str = "y",
    fps: float = 50.0,
) -> np.ndarray:
    """(T, 17, 3) H36M joints in a z-up world (metres, floor at Z = 0) at ``fps``."""
    path = Path(path)
    if up not in _UP_TO_Z:
        raise ValueError(f"up must be one of {list(_UP_TO_Z)}, got {up!r}")
    mapping = {**DEFAULT_JOINT_MAP, **(joint_map or {})}
    unknown = sorted(set(mapping) - set(JOINT_NAMES))
    if unknown:
        raise ValueError(f"joint map names {unknown} are not H36M joints ({', '.join(JOINT_NAMES)})")
    skel, motion, frame_time = parse_bvh(path)
    index = [_resolve(skel.names, mapping[j], path, j) for j in JOINT_NAMES]
    rest = forward_kinematics(skel, np.zeros((1, skel.num_channels)))
    glob = forward_kinematics(skel, motion)
    pick = lambda p: np.stack([p[:, ix].mean(1) for ix in index], 1) @ _UP_TO_Z[up].T  # noqa: E731
    world, rest17 = pick(glob), pick(rest)[0]
    if scale is None:
        height = rest17[JOINT_NAMES.index("head_top"), 2] - min(rest17[3, 2], rest17[6, 2])
        if height <= 0:
            raise DataFormatError(
                f"{path}: rest pose has the head top below the ankles; check 'up' and the joint map"
            )
        scale = REST_HEIGHT / height
    world = world * scale
    world[..., 2] -= world[..., 2].min()
    # resample by linear interpolation of positions on the new time grid
    t_src = np.arange(len(world)) * frame_time
    t_new = np.arange(0.0, t_src[-1] + 1e-3 * frame_time, 1.0 / fps)  # tolerate rounded frame times
    lo = np.minimum((t_new / frame_time).astype(int), len(world) - 1)
    hi = np.minimum(lo + 1, len(world) - 1)
    w = ((t_new - t_src[lo]) / frame_time)[:, None, None]
    return (1 - w) * world[lo] + w * world[hi]


def _film(
    files: list[Path],
    rig: CameraRig,
    takes: int,
    seed: int,
    name: str,
    fps: float,
    joint_map: dict | None,
    scale: float | None,
    up: str,
    first_sequence: int = 0,
) -> PoseSet:
    parts, seq = [], first_sequence
    names = tuple(f.stem for f in files)
    for i, f in enumerate(files):
        world = bvh_to_world(f, joint_map, scale, up, fps)
        rng = np.random.default_rng([seed, zlib.crc32(f.name.encode()), zlib.crc32(name.encode())])
        out = render(world, rig, rng, takes=takes, fps=fps, label=str(f))
        out["sequence"] = out["sequence"] + seq
        out["action"] = np.full(len(out["frame"]), i)
        seq += takes * rig.num_cameras
        parts.append(out)
    joint_set, joints = eval_joint_set("all")
    meta = {
        "dataset": "bvh",
        "eval_joint_set": joint_set,
        "eval_joints": joints,
        "missing_joints": (),
        "norm": "screen",
    }
    return pose_set_from_renders(parts, name, names, str(files[0].parent), subject_from_take=True, meta=meta)


def _files(folder: Path) -> list[Path]:
    files = sorted(folder.rglob("*.bvh"))
    if not files:
        raise FileNotFoundError(f"{folder}: no .bvh files")
    return files


class BVHDataModule(PoseDataModule):
    """A folder of BVH files as a labeled source domain; files are split into train/val/test.

    Args:
        folder: searched recursively for ``*.bvh``.
        joint_map: overrides of ``DEFAULT_JOINT_MAP`` (H36M joint -> BVH joint name or list).
        scale: file units to metres; ``None`` normalizes the rest height (see module docs).
        up: the file's up axis, ``"y"`` (most BVH) or ``"z"``.
        fps: frame rate to resample to.
        rig: cameras; default the four H36M cameras (``CameraRig.h36m()``).
        takes: random placements of the subject per file.
        val_every: every k-th file (sorted by path) goes to val; at least one file stays in training.
        test_every: every k-th file (sorted by path) goes to test.
        seed: camera and placement draws.
    """

    def __init__(
        self,
        folder: str,
        joint_map: dict[str, str | list[str]] | None = None,
        scale: float | None = None,
        up: str = "y",
        fps: float = 50.0,
        rig: CameraRig | None = None,
        takes: int = 2,
        val_every: int = 10,
        test_every: int = 5,
        seed: int = 0,
        **loader: Any,
    ) -> None:
        super().__init__(**loader)
        self.folder = Path(folder)
        self.joint_map, self.scale, self.up, self.fps = joint_map, scale, up, fps
        self.rig = rig or CameraRig.h36m()
        self.takes, self.val_every, self.test_every, self.seed = takes, val_every, test_every, seed

    def build_sets(self) -> DomainSets:
        files = _files(self.folder)
        if len(files) < 3:
            raise DataFormatError(f"{self.folder}: {len(files)} BVH file(s); train/val/test need at least 3")
        role = ["train"] * len(files)
        for i in range(len(files)):
            if i % self.test_every == self.test_every - 1:
                role[i] = "test"
            elif i % self.val_every == self.val_every - 2 or (i == 1 and "val" not in role):
                role[i] = "val"
        pick = lambda r: [f for f, x in zip(files, role, strict=True) if x == r]  # noqa: E731
        if not pick("test"):
            role[-1] = "test"
        common = dict(fps=self.fps, joint_map=self.joint_map, scale=self.scale, up=self.up)
        name = f"bvh_{self.folder.name}"
        test = _film(pick("test"), self.rig, self.takes, self.seed, f"{name}_test.all", **common)
        return DomainSets(
            train=_film(pick("train"), self.rig, self.takes, self.seed, f"{name}_train", **common),
            val=_film(pick("val"), self.rig, self.takes, self.seed, f"{name}_val", **common),
            test={test.name: test},
        )


class BVHTarget(TargetDomain):
    """A folder of BVH files as a target domain: a test set and, optionally, unlabeled 2D.

    The test set and the target-train set are filmed with independent draws of ``rig``.

    Args:
        folder: searched recursively for ``*.bvh``.
        name: prefix of the set names (default ``bvh_<folder name>``).
        joint_map: overrides of ``DEFAULT_JOINT_MAP`` (H36M joint -> BVH joint name or list).
        scale: file units to metres; ``None`` normalizes the rest height.
        up: the file's up axis, ``"y"`` or ``"z"``.
        fps: frame rate to resample to.
        rig: cameras (default: random orbit cameras, ``CameraRig()``).
        takes: random placements of the subject per file for the test set.
        target_train_takes: placements filmed as unlabeled target 2D (0 = none).
        seed: camera and placement draws.
    """

    def __init__(
        self,
        folder: str,
        name: str | None = None,
        joint_map: dict[str, str | list[str]] | None = None,
        scale: float | None = None,
        up: str = "y",
        fps: float = 50.0,
        rig: CameraRig | None = None,
        takes: int = 1,
        target_train_takes: int = 0,
        seed: int = 0,
    ) -> None:
        self.folder = Path(folder)
        self.name = name or f"bvh_{self.folder.name}"
        self.joint_map, self.scale, self.up, self.fps = joint_map, scale, up, fps
        self.rig = rig or CameraRig()
        self.takes, self.target_train_takes, self.seed = takes, target_train_takes, seed

    def load(self) -> tuple[dict[str, PoseSet], dict[str, PoseSet]]:
        files = _files(self.folder)
        common = dict(fps=self.fps, joint_map=self.joint_map, scale=self.scale, up=self.up)
        test = _film(files, self.rig, self.takes, self.seed, f"{self.name}.all", **common)
        train = {}
        if self.target_train_takes:
            s = _film(files, self.rig, self.target_train_takes, self.seed + 1, f"{self.name}_2d", **common)
            train[s.name] = s.unlabeled()
        return {test.name: test}, train
