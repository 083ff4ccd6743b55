"""Helpers shared by the dataset readers: npz/h5 access with clear errors, unit checks, roots."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from data_modules.schema import DataFormatError, PoseSet, open_npz  # noqa: F401 - open_npz re-exported
from poseshift.geometry.camera import estimate_root

log = logging.getLogger(__name__)

MM_THRESHOLD = 2.0  # metres: a body segment longer than this means the numbers are millimetres


def require(data: dict, keys: tuple[str, ...], path: str | Path) -> None:
    """Raise naming the file and the missing keys."""
    missing = [k for k in keys if k not in data]
    if missing:
        raise DataFormatError(f"{path}: missing key(s) {missing}; present: {sorted(data)}")


def as_dict(value: np.ndarray, path: str | Path, key: str) -> dict:
    """Unwrap a 0-d object array holding a dict (``np.savez`` of a dict)."""
    if isinstance(value, np.ndarray) and value.dtype == object and value.ndim == 0:
        value = value.item()
    if not isinstance(value, dict):
        raise DataFormatError(
            f"{path}: {key}: expected a pickled dict, got {type(value).__name__} "
            f"{getattr(value, 'shape', '')}"
        )
    return value


def pose_array(value: object, path: str | Path, field: str, dims: int, joints: tuple[int, ...]) -> np.ndarray:
    """A finite float (N, J, dims) array with J in ``joints``; errors name file and field."""
    arr = np.asarray(value)
    if arr.ndim != 3 or arr.shape[-1] < dims or arr.shape[1] not in joints:
        want = " or ".join(str(j) for j in joints)
        raise DataFormatError(f"{path}: {field}: expected shape (N, {want}, {dims}), got {arr.shape}")
    if not np.issubdtype(arr.dtype, np.number):
        raise DataFormatError(f"{path}: {field}: expected numbers, got {arr.dtype}")
    arr = arr[..., :dims].astype(np.float32)
    if not np.isfinite(arr).all():
        bad = int((~np.isfinite(arr)).any(axis=(1, 2)).sum())
        raise DataFormatError(f"{path}: {field}: {bad} of {len(arr)} poses contain NaN or inf")
    return arr


def median_bone(pose3d: np.ndarray, a: int = 0, b: int = 1) -> float:
    """Median length of the segment a-b over poses (0 for an empty array)."""
    if len(pose3d) == 0:
        return 0.0
    return float(np.median(np.linalg.norm(pose3d[:, b] - pose3d[:, a], axis=-1)))


def check_metres(pose3d: np.ndarray, path: str | Path, field: str, a: int = 0, b: int = 1) -> None:
    """Fail when 3D that should be in metres looks like millimetres."""
    bone = median_bone(pose3d, a, b)
    if bone > MM_THRESHOLD:
        raise DataFormatError(
            f"{path}: {field}: a hip bone is {bone:.1f} units long; the values look like "
            "millimetres, metres are expected"
        )


def to_metres(pose3d: np.ndarray, path: str | Path, field: str, expected: str = "mm") -> np.ndarray:
    """Metres from a file documented as ``expected`` units; the other unit is accepted with a warning."""
    looks_mm = median_bone(pose3d) > MM_THRESHOLD
    if looks_mm != (expected == "mm"):
        log.warning(
            "%s: %s: documented in %s but the values look like %s; converting accordingly",
            path,
            field,
            expected,
            "mm" if looks_mm else "m",
        )
    return pose3d / 1000.0 if looks_mm else pose3d


def frobenius_normalize(pose2d: np.ndarray, root: int = 0) -> np.ndarray:
    """Root-centre each 2D pose and divide it by its Frobenius norm (AdaptPose's Ski input, 2.5)."""
    centred = pose2d - pose2d[:, root : root + 1]
    norm = np.linalg.norm(centred.reshape(len(centred), -1), axis=1)
    return (centred / np.maximum(norm, 1e-12)[:, None, None]).astype(np.float32)


def ids(
    n: int,
    subject: np.ndarray | int = 0,
    action: np.ndarray | int = 0,
    camera: np.ndarray | int = 0,
    frame: np.ndarray | None = None,
    sequence: np.ndarray | int = 0,
) -> dict[str, np.ndarray]:
    """The integer id arrays of the schema, broadcasting scalars to ``n`` samples."""

    def full(v: np.ndarray | int) -> np.ndarray:
        return np.full(n, v, dtype=np.int64) if np.ndim(v) == 0 else np.array(v, dtype=np.int64)

    return {
        "subject": full(subject),
        "action": full(action),
        "camera": full(camera),
        "frame": np.arange(n) if frame is None else full(frame),
        "sequence": full(sequence),
    }


def rows(value: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """``value`` repeated to ``shape`` as a writable array of its own (not a broadcast view)."""
    return np.array(np.broadcast_to(value, shape))


def finish_pose_set(
    pose2d: np.ndarray,
    pose3d_abs_or_rel: np.ndarray,
    root: np.ndarray | None,
    intr: np.ndarray,
    size: np.ndarray,
    ids: dict[str, np.ndarray],
    action_names: tuple[str, ...],
    name: str,
    source: str,
    meta: dict,
    root_note: str = "estimated from 2D and root-relative 3D (least squares)",
) -> PoseSet:
    """Root-relative 3D, a root (estimated when the file has none, noted in ``meta``) and the PoseSet."""
    rel = pose3d_abs_or_rel - pose3d_abs_or_rel[:, :1]
    if root is None:
        root = estimate_root(rel, pose2d, intr, exclude=tuple(meta.get("missing_joints", ())))
        meta = {**meta, "root3d": root_note}
    return PoseSet(
        pose2d=pose2d,
        pose3d=rel,
        root3d=root,
        intrinsics=intr,
        image_size=size,
        **ids,
        action_names=action_names,
        name=name,
        source=source,
        meta=meta,
    )
