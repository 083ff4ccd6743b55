"""3DPW: the official sequence pickles and AdaptPose's preprocessed npz (DATA_FORMATS.md section 5).

Files under one root folder:

* ``sequenceFiles/{train,validation,test}/<sequence>.pkl`` -- Python-2 pickles (read with
  ``encoding="latin1"``) with per-actor ``jointPositions`` (N, 72) (SMPL-24, world, metres),
  per-frame ``cam_poses`` (N, 4, 4) world->camera, ``cam_intrinsics`` (3, 3),
  per-actor ``campose_valid`` (N,) and OpenPose ``poses2d`` (N, 3, 18).
* ``data_3dpw_gt_{train,test}.npz`` -- AdaptPose: plain arrays ``positions_3d`` (N, >=16, 3)
  metres camera frame and ``positions_2d`` (N, >=16, 2) already normalized; the test file
  has the legs swapped (its loader swaps them back; so does this one).

From the official pickles every actor of every sequence becomes samples: world joints go to
the camera with that frame's extrinsics, are mapped SMPL-24 -> H36M-17 (spine2 -> spine,
neck -> thorax, head -> head_top; neck_nose interpolated, so the joint set is ``all16``)
and projected with ``cam_intrinsics`` (no distortion) as ground-truth 2D. Frames whose
camera pose is not valid for the actor, or where OpenPose found fewer than 6 joints (the
"invalid 2D detections" of the reference preprocessing), are dropped. The image is taken as
``(2 cx, 2 cy)`` (as public loaders do) and padded to a square (centred; the exact padding
of AdaptPose is unverified) before screen normalization, so portrait frames keep
|y| <= 1: ``meta["norm"] = "screen_padsq"``. SMPL joints are not H36M joints (hips lower and
wider, head centre for head_top): PA-MPJPE is the primary 3DPW metric.
"""

from __future__ import annotations

import logging
import pickle
from pathlib import Path

import numpy as np

from data_modules.common import (
    check_metres,
    finish_pose_set,
    ids,
    open_npz,
    pose_array,
    require,
    rows,
)
from data_modules.cross_dataset import TargetDomain
from data_modules.schema import DataFormatError, PoseSet
from data_modules.skeletons import eval_joint_set, to_h36m17

log = logging.getLogger(__name__)

SPLITS = ("train", "validation", "test")
MIN_DETECTED = 6  # OpenPose joints with confidence > 0 for a frame to count as detected
# nominal camera of AdaptPose's npz (which stores none): 3DPW phone focal ~1960 px on a 1920 square
NOMINAL_INTRINSICS = np.array([2 * 1960 / 1920, 2 * 1960 / 1920, 0, 0, 0, 0, 0, 0, 0], dtype=np.float32)


def _read_pickle(path: Path) -> dict:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found")
    try:
        with open(path, "rb") as f:
            data = pickle.load(f, encoding="latin1")
    except Exception as err:  # noqa: BLE001 - any unpickling failure is a format problem
        raise DataFormatError(f"{path}: not a readable pickle ({type(err).__name__}: {err})") from err
    if not isinstance(data, dict):
        raise DataFormatError(f"{path}: expected a dict, got {type(data).__name__}")
    return data


def load_sequence(
    path: str | Path, pad_square: bool = True, drop_undetected: bool = True
) -> dict[str, np.ndarray]:
    """One official 3DPW pickle as schema arrays for all its actors (camera frame, H36M-17)."""
    path = Path(path)
    data = _read_pickle(path)
    require(data, ("jointPositions", "cam_poses", "cam_intrinsics", "campose_valid"), path)
    poses = np.asarray(data["cam_poses"], dtype=np.float64)
    n = len(poses)
    if poses.shape != (n, 4, 4):
        raise DataFormatError(f"{path}: cam_poses: expected shape (N, 4, 4), got {poses.shape}")
    k = np.asarray(data["cam_intrinsics"], dtype=np.float64)
    if k.shape != (3, 3):
        raise DataFormatError(f"{path}: cam_intrinsics: expected shape (3, 3), got {k.shape}")
    fx, fy, cx, cy = k[0, 0], k[1, 1], k[0, 2], k[1, 2]
    if min(fx, fy, cx, cy) <= 0:
        raise DataFormatError(
            f"{path}: cam_intrinsics: focal lengths and centre must be positive, got {k.tolist()}"
        )
    w, h = 2 * cx, 2 * cy
    side = max(w, h) if pad_square else w
    ox, oy = ((side - w) / 2, (side - h) / 2) if pad_square else (0.0, 0.0)
    hh = side if pad_square else h
    # normalized intrinsics of the (padded) image: f_n = 2 f / W, c_n like a point
    intr = np.array(
        [
            2 * fx / side,
            2 * fy / side,
            2 * (cx + ox) / side - 1,
            2 * (cy + oy) / side - hh / side,
            0,
            0,
            0,
            0,
            0,
        ],
        dtype=np.float32,
    )
    joints_all = data["jointPositions"]
    valid_all = data["campose_valid"]
    if not isinstance(joints_all, list | tuple) or not isinstance(valid_all, list | tuple):
        raise DataFormatError(f"{path}: jointPositions and campose_valid must be per-actor lists")
    if len(valid_all) != len(joints_all):
        raise DataFormatError(
            f"{path}: campose_valid: {len(valid_all)} actors, jointPositions has {len(joints_all)}"
        )
    det_all = data.get("poses2d") if drop_undetected else None
    parts = []
    for actor, (joints, valid) in enumerate(zip(joints_all, valid_all, strict=True)):
        field = f"jointPositions[{actor}]"
        joints = np.asarray(joints, dtype=np.float64)
        if joints.shape != (n, 72):
            raise DataFormatError(
                f"{path}: {field}: expected shape ({n}, 72) (N frames x 24 SMPL joints), got {joints.shape}"
            )
        valid = np.asarray(valid).astype(bool).reshape(-1)
        if len(valid) != n:
            raise DataFormatError(f"{path}: campose_valid[{actor}]: {len(valid)} entries for {n} frames")
        keep = valid & np.isfinite(joints).all(1)
        if det_all is not None:
            det = np.asarray(det_all[actor])
            if det.shape != (n, 3, 18):
                raise DataFormatError(
                    f"{path}: poses2d[{actor}]: expected shape ({n}, 3, 18), got {det.shape}"
                )
            keep &= (det[:, 2] > 0).sum(1) >= MIN_DETECTED
        world = joints.reshape(n, 24, 3)[keep]
        check_metres(world, path, field, a=0, b=1)
        rot, trans = poses[keep, :3, :3], poses[keep, :3, 3]
        cam = to_h36m17(np.einsum("nab,njb->nja", rot, world) + trans[:, None], "smpl24")
        if (cam[..., 2] <= 0).any():
            raise DataFormatError(
                f"{path}: {field}: joints behind the camera after cam_poses; "
                "cam_poses must map world to camera"
            )
        px = np.stack(
            [fx * cam[..., 0] / cam[..., 2] + cx + ox, fy * cam[..., 1] / cam[..., 2] + cy + oy], -1
        )
        norm = np.stack([2 * px[..., 0] / side - 1, 2 * px[..., 1] / side - hh / side], -1)
        m = len(cam)
        parts.append(
            {
                "pose2d": norm,
                "pose3d": cam - cam[:, :1],
                "root3d": cam[:, 0],
                "frame": np.flatnonzero(keep),
                "actor": np.full(m, actor),
            }
        )
    out = {key: np.concatenate([p[key] for p in parts]) for key in parts[0]} if parts else {}
    out["intrinsics"] = intr
    out["image_size"] = np.array([side, hh], dtype=np.float32)
    out["name"] = str(data.get("sequence", path.stem))
    return out


def load_official_split(
    root: str | Path,
    split: str = "test",
    eval_joints: str = "all",
    pad_square: bool = True,
    drop_undetected: bool = True,
) -> PoseSet:
    """All sequences of ``<root>/sequenceFiles/<split>`` as one labeled set."""
    if split not in SPLITS:
        raise ValueError(f"unknown 3DPW split {split!r}; use {SPLITS}")
    folder = Path(root) / "sequenceFiles" / split
    files = sorted(folder.glob("*.pkl"))
    if not files:
        raise FileNotFoundError(f"{folder}: no 3DPW sequence pickles (*.pkl) found")
    seqs = [load_sequence(f, pad_square, drop_undetected) for f in files]
    names = [s["name"] for s in seqs]  # action ids index the sequences
    seqs = [(i, s) for i, s in enumerate(seqs) if "pose2d" in s]
    if not seqs:
        raise DataFormatError(f"{folder}: no valid frames in any sequence")
    cat = lambda key: np.concatenate([s[key] for _, s in seqs])  # noqa: E731
    counts = [len(s["pose2d"]) for _, s in seqs]
    n = sum(counts)
    seq_index = np.repeat([i for i, _ in seqs], counts)
    actor = cat("actor")
    joint_set, joints = eval_joint_set(eval_joints, (9,))
    meta = {
        "dataset": "3dpw",
        "file": "sequenceFiles",
        "split": split,
        "missing_joints": (9,),
        "eval_joint_set": joint_set,
        "eval_joints": joints,
        "norm": "screen_padsq" if pad_square else "screen",
        "skeleton": "SMPL-24 joints mapped to H36M",
    }
    return PoseSet(
        pose2d=cat("pose2d"),
        pose3d=cat("pose3d"),
        root3d=cat("root3d"),
        intrinsics=np.concatenate(
            [rows(s["intrinsics"], (c, 9)) for (_, s), c in zip(seqs, counts, strict=True)]
        ),
        image_size=np.concatenate(
            [rows(s["image_size"], (c, 2)) for (_, s), c in zip(seqs, counts, strict=True)]
        ),
        **ids(n, subject=actor, action=seq_index, frame=cat("frame"), sequence=2 * seq_index + actor),
        action_names=tuple(names),
        name=f"3dpw_{split}.{joint_set}",
        source=str(folder),
        meta=meta,
    )


def load_adaptpose(
    path: str | Path, legs_swapped: bool, eval_joints: str = "all", labeled: bool = True
) -> PoseSet:
    """AdaptPose's ``data_3dpw_gt_{train,test}.npz``; ``legs_swapped`` for the test file."""
    path = Path(path)
    data = open_npz(path)
    require(data, ("positions_2d",) + (("positions_3d",) if labeled else ()), path)
    layout = "h36m16_legswap" if legs_swapped else "h36m16"
    p2 = pose_array(data["positions_2d"], path, "positions_2d", 2, tuple(range(16, 64)))[:, :16]
    if np.abs(p2).max(initial=0) > 2:
        raise DataFormatError(
            f"{path}: positions_2d: values up to {np.abs(p2).max():.0f}; AdaptPose's 3DPW 2D is "
            "already normalized (|x| <= 1)"
        )
    pose2d = to_h36m17(p2, layout)
    n = len(pose2d)
    intr = rows(NOMINAL_INTRINSICS, (n, 9))
    size = rows(np.array([1920.0, 1920.0], np.float32), (n, 2))
    joint_set, joints = eval_joint_set(eval_joints, (9,))
    meta = {
        "dataset": "3dpw",
        "file": path.name,
        "missing_joints": (9,),
        "eval_joint_set": joint_set,
        "eval_joints": joints,
        "norm": "screen_padsq (as stored)",
        "intrinsics": "nominal (f = 1960 px on a 1920 square); the file stores no camera",
    }
    split = "test" if legs_swapped else "train"
    if not labeled:
        return PoseSet(
            pose2d=pose2d,
            intrinsics=intr,
            image_size=size,
            **ids(n),
            name=f"3dpw_adaptpose_{split}_2d",
            source=str(path),
            meta=meta,
        )
    p3 = pose_array(data["positions_3d"], path, "positions_3d", 3, tuple(range(16, 64)))[:, :16]
    if len(p3) != n:
        raise DataFormatError(f"{path}: positions_3d: {len(p3)} poses, positions_2d has {n}")
    check_metres(p3, path, "positions_3d")
    pose3d = to_h36m17(p3, layout)
    # files that keep the absolute root (camera depth well above 0) need no estimate
    root = pose3d[:, 0] if np.median(pose3d[:, 0, 2]) > 0.5 else None
    return finish_pose_set(
        pose2d,
        pose3d,
        root,
        intr,
        size,
        ids(n),
        (),
        f"3dpw_adaptpose_{split}.{joint_set}",
        str(path),
        meta,
        root_note="estimated with the nominal intrinsics",
    )


class PW3D(TargetDomain):
    """3DPW as a target domain.

    Args:
        root: folder with ``sequenceFiles/`` and/or AdaptPose's ``data_3dpw_gt_*.npz``.
        test_sets: ``"official"`` (test split pickles) and/or ``"adaptpose"`` (``data_3dpw_gt_test.npz``).
        eval_joints: ``all`` (becomes ``all16``: SMPL has no nose) or ``official14``.
        target_train: unlabeled target 2D: ``None``, ``"official"`` (train split pickles, 2D only)
            or ``"adaptpose"`` (``data_3dpw_gt_train.npz``).
        pad_square: pad frames to a square before normalizing (AdaptPose); else plain screen normalization.
    """

    def __init__(
        self,
        root: str,
        test_sets: list[str] | None = None,
        eval_joints: str = "all",
        target_train: str | None = None,
        pad_square: bool = True,
    ) -> None:
        self.root = Path(root)
        self.test_sets = list(test_sets or ["official"])
        bad = [t for t in self.test_sets if t not in ("official", "adaptpose")]
        if bad or target_train not in (None, "official", "adaptpose"):
            raise ValueError(
                f"3DPW test sets must be 'official'/'adaptpose' (got {self.test_sets}), "
                f"target_train None/'official'/'adaptpose' (got {target_train!r})"
            )
        self.eval_joints = eval_joints
        self.target_train = target_train
        self.pad_square = pad_square

    def load(self) -> tuple[dict[str, PoseSet], dict[str, PoseSet]]:
        tests = []
        for t in self.test_sets:
            if t == "official":
                tests.append(load_official_split(self.root, "test", self.eval_joints, self.pad_square))
            else:
                tests.append(load_adaptpose(self.root / "data_3dpw_gt_test.npz", True, self.eval_joints))
        train = {}
        if self.target_train == "official":
            s = load_official_split(self.root, "train", self.eval_joints, self.pad_square)
            train["3dpw_train_2d"] = s.unlabeled("3dpw_train_2d")
        elif self.target_train == "adaptpose":
            s = load_adaptpose(self.root / "data_3dpw_gt_train.npz", False, labeled=False)
            train[s.name] = s
        return {s.name: s for s in tests}, train
