"""Ski-Pose PTZ: the official ``labels.h5`` and AdaptPose's npz (DATA_FORMATS.md section 6).

Files under one root folder:

* ``{train,test}/labels.h5`` -- per sample: ``seq``, ``subj``, ``cam``, ``frame``; ``3D`` (17x3,
  camera orientation, root-relative, metres); ``2D`` (17x2 in [0, 1] of the 256x256 crop);
  ``cam_intrinsic`` (3x3 crop intrinsics / 256). Trailing shapes are reshaped, so (N, 51)
  and (N, 17, 3) both load.
* ``data_skii_gt_{train,test}.npz`` (AdaptPose's spelling) -- plain arrays ``positions_2d``
  (N, 16, 2) and ``positions_3d`` (N, 16, 3).

2D normalization (``norm``): ``"crop"`` is screen normalization of the 256x256 crop
(``x_n = 2 * 2D - 1``; intrinsics normalized the same way, so projection still holds);
``"frob"`` is AdaptPose's root-centred Frobenius normalization (no camera applies then).

The left/right leg flip that third-party code reports in ``3D`` is *checked*: with
``swap_3d_legs=None`` the loader fits the root for both leg orders and keeps the one whose
projection matches ``2D`` better (the decision is logged and stored in ``meta``); ``True``
/``False`` force it. The root is not in the file: it is estimated by least squares from
the crop 2D, the 3D and the crop intrinsics (``meta["root3d"]`` says so).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from data_modules.common import (
    check_metres,
    frobenius_normalize,
    ids,
    open_npz,
    pose_array,
    require,
    rows,
)
from data_modules.cross_dataset import TargetDomain
from data_modules.schema import DataFormatError, PoseSet
from data_modules.skeletons import eval_joint_set, to_h36m17
from poseshift.geometry.camera import estimate_root

log = logging.getLogger(__name__)

CROP = 256
LEG_SWAP = [0, 4, 5, 6, 1, 2, 3] + list(range(7, 17))  # r_hip,r_knee,r_ankle <-> l_hip,l_knee,l_ankle
NORMS = ("crop", "frob")


def read_labels(path: str | Path) -> dict[str, np.ndarray]:
    """The arrays of one ``labels.h5``, reshaped per sample; errors name file and dataset."""
    import h5py

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found")
    if not h5py.is_hdf5(path):
        raise DataFormatError(f"{path}: not an HDF5 file")
    with h5py.File(path, "r") as f:
        require(f, ("seq", "subj", "cam", "frame", "3D", "2D", "cam_intrinsic"), path)
        raw = {k: np.asarray(f[k]) for k in ("seq", "subj", "cam", "frame", "3D", "2D", "cam_intrinsic")}
    n = len(raw["3D"])
    out = {}
    for key, shape in (
        ("seq", ()),
        ("subj", ()),
        ("cam", ()),
        ("frame", ()),
        ("3D", (17, 3)),
        ("2D", (17, 2)),
        ("cam_intrinsic", (3, 3)),
    ):
        arr = raw[key]
        if len(arr) != n or int(np.prod(arr.shape[1:], dtype=np.int64)) != int(
            np.prod(shape, dtype=np.int64)
        ):
            raise DataFormatError(
                f"{path}: {key}: expected {n} samples of shape {shape} (any trailing layout), got {arr.shape}"
            )
        arr = arr.reshape((n,) + shape)
        if not np.isfinite(arr).all():
            bad = int((~np.isfinite(arr.reshape(n, -1))).any(1).sum())
            raise DataFormatError(f"{path}: {key}: {bad} of {n} samples contain NaN or inf")
        out[key] = arr
    return out


def _crop_intrinsics(k: np.ndarray) -> np.ndarray:
    """Screen-normalized 9-vectors of the 256 crop from ``cam_intrinsic`` (K / 256)."""
    n = len(k)
    out = np.zeros((n, 9), dtype=np.float32)
    out[:, 0], out[:, 1] = 2 * k[:, 0, 0], 2 * k[:, 1, 1]
    out[:, 2], out[:, 3] = 2 * k[:, 0, 2] - 1, 2 * k[:, 1, 2] - 1
    return out


def _residual(rel: np.ndarray, pose2d: np.ndarray, intr: np.ndarray) -> float:
    """Mean reprojection error (normalized units) after fitting the root."""
    root = estimate_root(rel, pose2d, intr)
    cam = rel + root[:, None]
    uv = intr[:, None, 0:2] * cam[..., :2] / cam[..., 2:3] + intr[:, None, 2:4]
    return float(np.nanmean(np.linalg.norm(uv - pose2d, axis=-1)))


def load_labels(
    path: str | Path,
    norm: str = "crop",
    swap_3d_legs: bool | None = None,
    eval_joints: str = "all",
    name: str | None = None,
) -> PoseSet:
    """One split's ``labels.h5`` as a labeled set (17 joints, H36M order)."""
    if norm not in NORMS:
        raise ValueError(f"unknown Ski normalization {norm!r}; use {NORMS}")
    path = Path(path)
    a = read_labels(path)
    check_metres(a["3D"], path, "3D")
    if np.abs(a["2D"]).max(initial=0) > 1.5:
        raise DataFormatError(
            f"{path}: 2D: values up to {np.abs(a['2D']).max():.1f}; expected crop-normalized "
            "[0, 1] coordinates, not pixels"
        )
    intr = _crop_intrinsics(a["cam_intrinsic"])
    if (intr[:, :2] <= 0).any():
        raise DataFormatError(f"{path}: cam_intrinsic: focal lengths must be positive")
    pose2d = (2 * a["2D"] - 1).astype(np.float32)  # [0, 1] crop -> screen-normalized, w = h = 256
    rel = (a["3D"] - a["3D"][:, :1]).astype(np.float32)
    swapped = rel[:, LEG_SWAP]
    err_keep, err_swap = _residual(rel, pose2d, intr), _residual(swapped, pose2d, intr)
    legs_flipped = err_swap < err_keep
    if swap_3d_legs is None:
        swap_3d_legs = legs_flipped
        log.info(
            "%s: 3D legs %s (reprojection error %.4f as stored, %.4f swapped)",
            path,
            "swapped to match the 2D" if swap_3d_legs else "kept",
            err_keep,
            err_swap,
        )
    elif swap_3d_legs != legs_flipped:
        log.warning(
            "%s: swap_3d_legs=%s but the 2D matches the %s leg order better (%.4f vs %.4f)",
            path,
            swap_3d_legs,
            "swapped" if legs_flipped else "stored",
            err_keep,
            err_swap,
        )
    if swap_3d_legs:
        rel = swapped
    root = estimate_root(rel, pose2d, intr)
    if norm == "frob":
        pose2d = frobenius_normalize(pose2d)
    joint_set, joints = eval_joint_set(eval_joints)
    n = len(rel)
    meta = {
        "dataset": "ski",
        "file": "labels.h5",
        "missing_joints": (),
        "eval_joint_set": joint_set,
        "eval_joints": joints,
        "norm": norm,
        "swap_3d_legs": bool(swap_3d_legs),
        "root3d": "estimated from crop 2D and root-relative 3D (least squares)",
    }
    return PoseSet(
        pose2d=pose2d,
        pose3d=rel,
        root3d=root,
        intrinsics=intr,
        image_size=np.full((n, 2), CROP, np.float32),
        **ids(
            n,
            subject=a["subj"].astype(np.int64),
            camera=a["cam"].astype(np.int64),
            frame=a["frame"].astype(np.int64),
            sequence=a["seq"].astype(np.int64),
        ),
        action_names=("ski",),
        name=name or f"ski_{path.parent.name}_{norm}.{joint_set}",
        source=str(path),
        meta=meta,
    )


def load_adaptpose(path: str | Path, eval_joints: str = "all", labeled: bool = True) -> PoseSet:
    """AdaptPose's ``data_skii_gt_{train,test}.npz``: Frobenius-normalized 2D, root-relative 3D.

    The file has no camera and no root: intrinsics are a nominal placeholder and ``root3d``
    is zero (both flagged in ``meta``); do not project these poses.
    """
    path = Path(path)
    data = open_npz(path)
    require(data, ("positions_2d",) + (("positions_3d",) if labeled else ()), path)
    p2 = pose_array(data["positions_2d"], path, "positions_2d", 2, (16, 17))
    layout = "h36m16" if p2.shape[1] == 16 else "h36m17"
    pose2d = to_h36m17(
        frobenius_normalize(p2), layout
    )  # normalized over the joints of the file, as AdaptPose
    n = len(pose2d)
    missing = (9,) if layout == "h36m16" else ()
    joint_set, joints = eval_joint_set(eval_joints, missing)
    meta = {
        "dataset": "ski",
        "file": path.name,
        "missing_joints": missing,
        "eval_joint_set": joint_set,
        "eval_joints": joints,
        "norm": "frob",
        "intrinsics": "placeholder (file has no camera)",
        "root3d": "unknown (zeros)",
    }
    intr = rows(np.array([2, 2, 0, 0, 0, 0, 0, 0, 0], np.float32), (n, 9))
    size = np.full((n, 2), CROP, np.float32)
    stem = path.stem.replace("data_skii_gt_", "ski_adaptpose_")
    if not labeled:
        return PoseSet(
            pose2d=pose2d,
            intrinsics=intr,
            image_size=size,
            **ids(n),
            action_names=("ski",),
            name=f"{stem}_2d",
            source=str(path),
            meta=meta,
        )
    p3 = pose_array(data["positions_3d"], path, "positions_3d", 3, (p2.shape[1],))
    if len(p3) != n:
        raise DataFormatError(f"{path}: positions_3d: {len(p3)} poses, positions_2d has {n}")
    check_metres(p3, path, "positions_3d")
    pose3d = to_h36m17(p3, layout)
    return PoseSet(
        pose2d=pose2d,
        pose3d=pose3d - pose3d[:, :1],
        root3d=np.zeros((n, 3)),
        intrinsics=intr,
        image_size=size,
        **ids(n),
        action_names=("ski",),
        name=f"{stem}.{joint_set}",
        source=str(path),
        meta=meta,
    )


class SkiPose(TargetDomain):
    """Ski-Pose PTZ as a target domain.

    Args:
        root: folder with ``{train,test}/labels.h5`` and/or AdaptPose's ``data_skii_gt_*.npz``.
        test_sets: ``"official"`` (``test/labels.h5``) and/or ``"adaptpose"``.
        norm: 2D normalization of the official file, ``"crop"`` or ``"frob"``.
        swap_3d_legs: ``None`` decides from the data (see module docs), or force it.
        eval_joints: ``all`` or ``official14``.
        target_train: unlabeled target 2D: ``None``, ``"official"`` (``train/labels.h5``) or ``"adaptpose"``.
    """

    def __init__(
        self,
        root: str,
        test_sets: list[str] | None = None,
        norm: str = "crop",
        swap_3d_legs: bool | None = None,
        eval_joints: str = "all",
        target_train: str | None = None,
    ) -> None:
        self.root = Path(root)
        self.test_sets = list(test_sets or ["official"])
        bad = [t for t in self.test_sets if t not in ("official", "adaptpose")]
        if bad or target_train not in (None, "official", "adaptpose") or norm not in NORMS:
            raise ValueError(
                f"Ski: test_sets in 'official'/'adaptpose' (got {self.test_sets}), target_train in "
                f"None/'official'/'adaptpose' (got {target_train!r}), norm in {NORMS} (got {norm!r})"
            )
        self.norm = norm
        self.swap_3d_legs = swap_3d_legs
        self.eval_joints = eval_joints
        self.target_train = target_train

    def load(self) -> tuple[dict[str, PoseSet], dict[str, PoseSet]]:
        tests = []
        for t in self.test_sets:
            if t == "official":
                tests.append(
                    load_labels(
                        self.root / "test" / "labels.h5", self.norm, self.swap_3d_legs, self.eval_joints
                    )
                )
            else:
                tests.append(load_adaptpose(self.root / "data_skii_gt_test.npz", self.eval_joints))
        train = {}
        if self.target_train == "official":
            s = load_labels(
                self.root / "train" / "labels.h5", self.norm, self.swap_3d_legs, name="ski_train_2d"
            )
            train[s.name] = s.unlabeled()
        elif self.target_train == "adaptpose":
            s = load_adaptpose(self.root / "data_skii_gt_train.npz", labeled=False)
            train[s.name] = s
        return {s.name: s for s in tests}, train
