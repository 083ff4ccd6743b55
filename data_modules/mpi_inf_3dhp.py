"""MPI-INF-3DHP test sets and unlabeled training 2D (DATA_FORMATS.md section 4).

Files under one root folder:

* ``test_3dhp.npz`` -- PoseAug's 2,929-frame test set: ``pose3d`` (N, 16, 3) metres,
  root-relative, camera frame; ``pose2d`` (N, 16, 2) already screen-normalized. No camera:
  the first 2,207 frames are TS1-4 (2048x2048), the rest TS5-6 (1920x1080).
* ``mpi_inf_3dhp_test_set/TS{1..6}/annot_data.mat`` -- the official test set (MATLAB v7.3 =
  HDF5, read with ``h5py``): ``annot2`` px, ``annot3``/``univ_annot3`` mm camera frame, in the
  17-joint test layout, ``valid_frame``, ``activity_annotation``.
* ``data_3dhp_gt_test.npz`` -- AdaptPose's official-size test file: ``positions_3d``/
  ``positions_2d`` = ``{TS: (n, 16, 3|2)}`` in mm / px; the first 100 frames of TS3 and TS4
  are dropped as AdaptPose does.
* ``data_3dhp_gt_train.npz`` -- AdaptPose's training-set 2D (the unlabeled target):
  ``positions_2d`` = ``{subject: {seq: {cam: (F, 16, 2)}}}`` px on 2048x2048, mirrored order.
* ``S{1..8}/Seq{1,2}/annot.mat`` + ``camera.calibration`` -- the official training set
  (older MATLAB format, read with ``scipy.io.loadmat``): ``annot2`` is a (14, 1) cell array,
  one (F, 56) array per camera (28 joints x (u, v) pixels on 2048x2048); the text calibration
  gives each camera's 4x4 ``intrinsic``. Served as unlabeled target 2D
  (``target_train="official"``).

Every set is mapped to H36M-17. 16-joint files lack neck_nose (interpolated, see
``data_modules.skeletons``), so their ``all`` joint set becomes ``all16``. The PCK joint
set (``all`` or ``official14``) and the 3D variant are part of every test-set name, e.g.
``3dhp_2929.official14``, ``3dhp_full_univ.official14``, so two protocols never share a
metric key.

Cameras: the test intrinsics are the commonly used TS1-4 / TS5-6 values (no distortion).
PoseAug's file has no root position; it is recovered by least squares from 2D and 3D
(``poseshift.geometry.camera.estimate_root``), exact up to the rounding of the stored 2D. The
training cameras' intrinsics are not in AdaptPose's file: the TS1-4 values stand in and the
set's ``meta["intrinsics"]`` says so.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from data_modules.common import (
    MM_THRESHOLD,
    as_dict,
    check_metres,
    finish_pose_set,
    ids,
    median_bone,
    open_npz,
    pose_array,
    require,
    rows,
    to_metres,
)
from data_modules.cross_dataset import TargetDomain
from data_modules.schema import DataFormatError, PoseSet
from data_modules.skeletons import eval_joint_set, get_layout, to_h36m17
from poseshift.geometry.camera import normalize_intrinsics, normalize_screen

log = logging.getLogger(__name__)

SEQUENCES = ("TS1", "TS2", "TS3", "TS4", "TS5", "TS6")
# (fx, fy, cx, cy) in pixels and (width, height) for the studio (TS1-4) and outdoor (TS5-6) cameras
STUDIO = ((1500.172288, 1500.172288, 1017.38733568, 1043.03198208), (2048, 2048))
OUTDOOR = ((1683.98345952, 1683.98345952, 939.85754016, 560.14074317), (1920, 1080))
ACTIVITIES = (
    "Standing/Walking",
    "Exercising",
    "Sitting",
    "Reaching/Crouching",
    "On The Floor",
    "Sports",
    "Miscellaneous",
)
POSEAUG_STUDIO_FRAMES = 2207  # of 2929
ADAPTPOSE_DROP = {"TS3": 100, "TS4": 100}


def ts_camera(sequence: str) -> tuple[np.ndarray, np.ndarray]:
    """Normalized 9-vector intrinsics and (w, h) of a test sequence's camera."""
    (f_c, size) = STUDIO if sequence in SEQUENCES[:4] else OUTDOOR
    pixel = torch.tensor([*f_c, 0, 0, 0, 0, 0], dtype=torch.float64)
    intr = normalize_intrinsics(pixel, float(size[0]), float(size[1])).numpy().astype(np.float32)
    return intr, np.array(size, dtype=np.float32)


def _normalize(px: np.ndarray, size: np.ndarray) -> np.ndarray:
    return normalize_screen(torch.from_numpy(px), float(size[0]), float(size[1])).numpy()


def load_poseaug_test(
    path: str | Path, eval_joints: str = "all", studio_frames: int | None = None
) -> PoseSet:
    """PoseAug's ``test_3dhp.npz`` (2,929 frames) as a labeled set in H36M-17.

    ``studio_frames``: how many leading frames come from TS1-4 (2,207 for the real file;
    other lengths default to the same proportion).
    """
    path = Path(path)
    data = open_npz(path)
    require(data, ("pose3d", "pose2d"), path)
    p3 = pose_array(data["pose3d"], path, "pose3d", 3, (16, 17))
    p2 = pose_array(data["pose2d"], path, "pose2d", 2, (16, 17))
    if len(p3) != len(p2) or p3.shape[1] != p2.shape[1]:
        raise DataFormatError(f"{path}: pose2d {p2.shape} and pose3d {p3.shape} do not match")
    check_metres(p3, path, "pose3d")
    if np.abs(p2).max(initial=0) > 2:
        raise DataFormatError(
            f"{path}: pose2d: values up to {np.abs(p2).max():.0f}; expected screen-normalized "
            "coordinates (|x| <= 1), not pixels"
        )
    layout = "h36m16" if p3.shape[1] == 16 else "h36m17"
    n = len(p3)
    if studio_frames is None:
        studio_frames = POSEAUG_STUDIO_FRAMES if n == 2929 else int(round(n * POSEAUG_STUDIO_FRAMES / 2929))
    outdoor = np.arange(n) >= studio_frames
    (k_in, s_in), (k_out, s_out) = ts_camera("TS1"), ts_camera("TS5")
    intr = np.where(outdoor[:, None], k_out, k_in)
    size = np.where(outdoor[:, None], s_out, s_in)
    missing = get_layout(layout).missing
    joint_set, joints = eval_joint_set(eval_joints, missing)
    meta = {
        "dataset": "3dhp",
        "file": "poseaug_test_3dhp",
        "missing_joints": missing,
        "eval_joint_set": joint_set,
        "eval_joints": joints,
        "norm": "screen",
        "intrinsics": "TS1-4/TS5-6 nominal, by frame order",
    }
    group = outdoor.astype(np.int64)
    return finish_pose_set(
        to_h36m17(p2, layout),
        to_h36m17(p3, layout),
        None,
        intr,
        size,
        ids(n, action=group, camera=group, sequence=group),
        ("TS1-4", "TS5-6"),
        f"3dhp_2929.{joint_set}",
        str(path),
        meta,
    )


def _frames(value: object, path: Path, field: str, dims: int) -> np.ndarray:
    """An official annotation array as (N, 17, dims), whichever axis order the reader gave."""
    arr = np.asarray(value)
    squeezed = arr.reshape([d for d in arr.shape if d != 1]) if arr.ndim > 3 else arr
    if squeezed.ndim == 3 and squeezed.shape[1:] == (17, dims):
        return squeezed.astype(np.float32)
    if squeezed.ndim == 3 and squeezed.shape[:2] == (dims, 17):  # MATLAB order (dims, 17, N)
        return np.ascontiguousarray(squeezed.transpose(2, 1, 0)).astype(np.float32)
    raise DataFormatError(f"{path}: {field}: expected (N, 1, 17, {dims}), got {arr.shape}")


def read_annot_data(path: str | Path) -> dict[str, np.ndarray]:
    """The arrays of one official ``TS*/annot_data.mat`` (v7.3/HDF5 via h5py, v5 via scipy if present)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found")
    fields = ("annot2", "annot3", "univ_annot3", "valid_frame", "activity_annotation")
    try:
        import h5py
    except ImportError as err:  # pragma: no cover - h5py is a dependency
        raise ImportError("reading annot_data.mat needs h5py (pip install h5py)") from err
    if h5py.is_hdf5(path):
        with h5py.File(path, "r") as f:
            raw = {k: np.asarray(f[k]) for k in fields if k in f}
    else:
        try:
            from scipy.io import loadmat
        except ImportError as err:
            raise DataFormatError(
                f"{path}: not an HDF5 (MATLAB v7.3) file, and scipy is not installed to "
                "read older MATLAB files"
            ) from err
        try:
            mat = loadmat(path)
        except Exception as err:  # noqa: BLE001 - any reader failure is a format problem
            raise DataFormatError(f"{path}: not a readable MATLAB file ({err})") from err
        raw = {k: np.asarray(mat[k]) for k in fields if k in mat}
    require(raw, ("annot2", "annot3", "univ_annot3", "valid_frame"), path)
    out = {k: _frames(raw[k], path, k, d) for k, d in (("annot2", 2), ("annot3", 3), ("univ_annot3", 3))}
    n = len(out["annot2"])
    for k in ("valid_frame", "activity_annotation"):
        if k not in raw:
            continue
        v = np.asarray(raw[k]).reshape(-1)
        if len(v) != n:
            raise DataFormatError(f"{path}: {k}: {len(v)} entries for {n} frames")
        out[k] = v
    for k in ("annot3", "univ_annot3"):
        if len(out[k]) != n:
            raise DataFormatError(f"{path}: {k}: {len(out[k])} frames but annot2 has {n}")
    return out


def load_official_test(
    root: str | Path,
    sequences: tuple[str, ...] = SEQUENCES,
    universal: bool = True,
    valid_only: bool = True,
    eval_joints: str = "official14",
) -> PoseSet:
    """The official test set from ``<root>/TS*/annot_data.mat`` in H36M-17.

    ``universal`` uses ``univ_annot3`` (the official evaluation's 3D) instead of the metric
    ``annot3``; ``root3d`` is always the metric pelvis. ``valid_only`` keeps frames with
    ``valid_frame == 1``. NaN/inf in the annotations of invalid frames are tolerated when
    they are dropped.
    """
    root = Path(root)
    parts = []
    for number, seq in enumerate(sequences, start=1):
        if seq not in SEQUENCES:
            raise ValueError(f"unknown 3DHP test sequence {seq!r}; use {SEQUENCES}")
        path = root / seq / "annot_data.mat"
        a = read_annot_data(path)
        n = len(a["annot2"])
        keep = a["valid_frame"] > 0 if valid_only else np.ones(n, bool)
        key3 = "univ_annot3" if universal else "annot3"
        for k in ("annot2", "annot3", key3):
            bad = ~np.isfinite(a[k][keep]).all(axis=(1, 2))
            if bad.any():
                raise DataFormatError(f"{path}: {k}: {int(bad.sum())} kept frames contain NaN or inf")
        intr, size = ts_camera(seq)
        metric = to_h36m17(a["annot3"][keep], "mpi3dhp17")
        for k in ("annot3", key3):
            if 0 < median_bone(to_h36m17(a[k][keep], "mpi3dhp17")) < MM_THRESHOLD:
                raise DataFormatError(
                    f"{path}: {k}: a hip bone is under {MM_THRESHOLD} units long; the values "
                    "look like metres, the official annotations are in millimetres"
                )
        metric = metric / 1000.0
        pose3d = to_h36m17(a[key3][keep], "mpi3dhp17") / 1000.0
        activity = a.get("activity_annotation", np.ones(n))[keep].astype(np.int64) - 1
        if len(activity) and (activity.min() < 0 or activity.max() >= len(ACTIVITIES)):
            raise DataFormatError(
                f"{path}: activity_annotation: values must be 1..7, got "
                f"{activity.min() + 1}..{activity.max() + 1}"
            )
        m = int(keep.sum())
        parts.append(
            dict(
                pose2d=_normalize(to_h36m17(a["annot2"][keep], "mpi3dhp17"), size),
                pose3d=pose3d - pose3d[:, :1],
                root3d=metric[:, 0],
                intrinsics=rows(intr, (m, 9)),
                image_size=rows(size, (m, 2)),
                subject=np.full(m, number),
                action=activity,
                camera=np.full(m, 0 if number <= 4 else 1),
                frame=np.flatnonzero(keep),
                sequence=np.full(m, number),
            )
        )
    merged = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    joint_set, joints = eval_joint_set(eval_joints)
    variant = ("univ" if universal else "metric") + ("" if valid_only else "_allframes")
    meta = {
        "dataset": "3dhp",
        "file": "annot_data.mat",
        "universal": universal,
        "valid_only": valid_only,
        "missing_joints": (),
        "eval_joint_set": joint_set,
        "eval_joints": joints,
        "norm": "screen",
        "intrinsics": "TS1-4/TS5-6 nominal",
    }
    return PoseSet(
        **merged,
        action_names=ACTIVITIES,
        name=f"3dhp_full_{variant}.{joint_set}",
        source=str(root),
        meta=meta,
    )


def load_adaptpose_test(
    path: str | Path, eval_joints: str = "all", drop: dict[str, int] | None = None
) -> PoseSet:
    """AdaptPose's ``data_3dhp_gt_test.npz`` (mm, px, H36M-16 per TS) in H36M-17."""
    path = Path(path)
    data = open_npz(path, allow_pickle=True)
    require(data, ("positions_3d", "positions_2d"), path)
    p3d = as_dict(data["positions_3d"], path, "positions_3d")
    p2d = as_dict(data["positions_2d"], path, "positions_2d")
    drop = ADAPTPOSE_DROP if drop is None else drop
    parts = []
    for number, seq in enumerate(SEQUENCES, start=1):
        if seq not in p3d and seq not in p2d:
            continue
        for d, key in ((p3d, "positions_3d"), (p2d, "positions_2d")):
            if seq not in d:
                raise DataFormatError(f"{path}: {key}[{seq!r}]: missing while the other array has it")
        x3 = pose_array(p3d[seq], path, f"positions_3d[{seq!r}]", 3, (16,))
        x2 = pose_array(p2d[seq], path, f"positions_2d[{seq!r}]", 2, (16,))
        if len(x3) != len(x2):
            raise DataFormatError(
                f"{path}: positions_2d[{seq!r}]: {len(x2)} frames, positions_3d has {len(x3)}"
            )
        start = drop.get(seq, 0)
        x3 = to_metres(x3[start:], path, f"positions_3d[{seq!r}]", "mm")
        intr, size = ts_camera(seq)
        parts.append((to_h36m17(x2[start:], "h36m16"), to_h36m17(x3, "h36m16"), intr, size, number, start))
    if not parts:
        raise DataFormatError(f"{path}: positions_3d has none of the sequences {SEQUENCES}")
    pose2d = np.concatenate([_normalize(p[0], p[3]) for p in parts])
    pose3d = np.concatenate([p[1] for p in parts])
    intr = np.concatenate([rows(p[2], (len(p[0]), 9)) for p in parts])
    size = np.concatenate([rows(p[3], (len(p[0]), 2)) for p in parts])
    seq_ids = np.concatenate([np.full(len(p[0]), p[4]) for p in parts])
    frames = np.concatenate([np.arange(len(p[0])) + p[5] for p in parts])
    absolute = np.median(pose3d[:, 0, 2]) > 0.5  # the file may hold absolute camera-frame 3D
    joint_set, joints = eval_joint_set(eval_joints, (9,))
    meta = {
        "dataset": "3dhp",
        "file": "adaptpose_data_3dhp_gt_test",
        "missing_joints": (9,),
        "dropped": drop,
        "eval_joint_set": joint_set,
        "eval_joints": joints,
        "norm": "screen",
        "intrinsics": "TS1-4/TS5-6 nominal",
    }
    return finish_pose_set(
        pose2d,
        pose3d,
        pose3d[:, 0].copy() if absolute else None,
        intr,
        size,
        ids(
            len(pose2d),
            subject=seq_ids,
            camera=(seq_ids > 4).astype(np.int64),
            frame=frames,
            sequence=seq_ids,
        ),
        SEQUENCES,
        f"3dhp_adaptpose.{joint_set}",
        str(path),
        meta,
    )


def load_adaptpose_train_2d(
    path: str | Path, subjects: tuple[str, ...] = ("S1", "S2", "S3", "S4", "S5", "S6", "S7")
) -> PoseSet:
    """AdaptPose's ``data_3dhp_gt_train.npz`` training 2D as an unlabeled set in H36M-17."""
    path = Path(path)
    data = open_npz(path, allow_pickle=True)
    require(data, ("positions_2d",), path)
    p2d = as_dict(data["positions_2d"], path, "positions_2d")
    arrays, ids = [], []
    for s_idx, subject in enumerate(subjects):
        if subject not in p2d:
            raise DataFormatError(f"{path}: positions_2d[{subject!r}]: missing; present: {sorted(p2d)}")
        for q_idx, seq in enumerate(sorted(p2d[subject], key=str)):
            cams = p2d[subject][seq]
            if not isinstance(cams, dict):
                raise DataFormatError(
                    f"{path}: positions_2d[{subject!r}][{seq!r}]: expected {{camera: array}}"
                )
            for cam in sorted(cams, key=str):
                field = f"positions_2d[{subject!r}][{seq!r}][{cam!r}]"
                arr = pose_array(cams[cam], path, field, 2, (16,))
                arrays.append(arr)
                ids.append(
                    (
                        int(subject.lstrip("S")) if subject.lstrip("S").isdigit() else s_idx,
                        q_idx,
                        int(cam) if str(cam).isdigit() else 0,
                        len(arr),
                    )
                )
    if not arrays:
        raise DataFormatError(f"{path}: positions_2d holds no arrays for {subjects}")
    px = to_h36m17(np.concatenate(arrays), "adaptpose_3dhp_train16")
    intr, size = ts_camera(
        "TS1"
    )  # all training cameras are 2048x2048; their own intrinsics are not in the file
    counts = [i[3] for i in ids]
    rep = lambda k: np.repeat([i[k] for i in ids], counts)  # noqa: E731
    n = len(px)
    seq = np.repeat(np.arange(len(ids)), counts)
    return PoseSet(
        pose2d=_normalize(px, size),
        intrinsics=rows(intr, (n, 9)),
        image_size=rows(size, (n, 2)),
        subject=rep(0),
        action=rep(1),
        camera=rep(2),
        frame=np.concatenate([np.arange(c) for c in counts]),
        sequence=seq,
        name="3dhp_train_2d",
        source=str(path),
        meta={
            "dataset": "3dhp",
            "missing_joints": (9,),
            "norm": "screen",
            "intrinsics": "nominal (TS1-4 values; the file has no training-camera intrinsics)",
        },
    )


TRAIN_SUBJECTS = ("S1", "S2", "S3", "S4", "S5", "S6", "S7", "S8")
TRAIN_SEQUENCES = ("Seq1", "Seq2")
TRAIN_CAMERAS = 14
SPIN_CAMERAS = (0, 1, 2, 4, 5, 6, 7, 8)  # the chest-height cameras SPIN keeps
TRAIN_SIZE = (2048, 2048)


def read_train_calibration(path: str | Path) -> dict[int, tuple[np.ndarray, tuple[int, int]]]:
    """``camera.calibration`` -> ``{camera: ((fx, fy, cx, cy) pixels, (w, h))}``.

    The file is a header line plus one block per camera (``name``, ``sensor``, ``size``,
    ``animated``, ``intrinsic`` 16 numbers = a row-major 4x4, ``extrinsic``, ``radial``).
    Blocks are found by their ``name`` line, fields by their label."""
    path = Path(path)
    cams: dict[int, dict[str, list[float]]] = {}
    current: dict[str, list[float]] | None = None
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        label, values = parts[0], parts[1:]
        if label == "name":
            current = cams.setdefault(len(cams), {})
            continue
        if current is None or label not in ("intrinsic", "size"):
            continue
        try:
            current[label] = [float(v) for v in values]
        except ValueError as err:
            raise DataFormatError(f"{path}: line {number}: {label}: not numbers ({line.strip()!r})") from err
        want = 16 if label == "intrinsic" else 2
        if len(current[label]) != want:
            raise DataFormatError(
                f"{path}: line {number}: {label}: expected {want} numbers, got {len(current[label])}"
            )
    out = {}
    for cam, fields in cams.items():
        if "intrinsic" not in fields:
            raise DataFormatError(f"{path}: camera {cam}: no 'intrinsic' line")
        k = np.array(fields["intrinsic"]).reshape(4, 4)
        size = fields.get("size", list(TRAIN_SIZE))
        out[cam] = (np.array([k[0, 0], k[1, 1], k[0, 2], k[1, 2]]), (int(size[0]), int(size[1])))
    if not out:
        raise DataFormatError(f"{path}: no camera blocks ('name' lines) found")
    return out


def _mat_cells(mat: dict, key: str, path: Path, width: int) -> list[np.ndarray]:
    """A (14, 1) MATLAB cell array of (F, width) arrays as a list of float arrays."""
    cells = np.asarray(mat[key])
    if cells.dtype != object or cells.size != TRAIN_CAMERAS:
        raise DataFormatError(
            f"{path}: {key}: expected a cell array of {TRAIN_CAMERAS} cameras (14, 1), "
            f"got {cells.dtype} {cells.shape}"
        )
    out = []
    for cam, cell in enumerate(cells.reshape(-1)):
        arr = np.asarray(cell)
        if arr.ndim != 2 or arr.shape[1] != width or not np.issubdtype(arr.dtype, np.number):
            raise DataFormatError(
                f"{path}: {key}[{cam}]: expected (F, {width}) numbers (28 joints), "
                f"got {arr.dtype} {arr.shape}"
            )
        out.append(arr.astype(np.float64, copy=False))
    if len({len(a) for a in out}) > 1:
        raise DataFormatError(f"{path}: {key}: cameras have different frame counts {[len(a) for a in out]}")
    return out


def read_train_annot(path: str | Path) -> dict[str, object]:
    """One official training ``annot.mat``: ``annot2`` as 14 arrays (F, 28, 2) px, ``frames`` (F,)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found")
    try:
        from scipy.io import loadmat, whosmat
    except ImportError as err:  # pragma: no cover - scipy is an install requirement
        raise ImportError(f"{path}: reading annot.mat needs scipy (pip install scipy)") from err
    try:  # only the variables used: annot3/univ_annot3 are as large again
        mat = loadmat(path, variable_names=("annot2", "frames"))
        if "annot2" not in mat:
            present = sorted(name for name, _, _ in whosmat(path))
            raise DataFormatError(f"{path}: missing key(s) ['annot2']; present: {present}")
    except DataFormatError:
        raise
    except Exception as err:  # noqa: BLE001 - any reader failure is a format problem
        raise DataFormatError(f"{path}: not a readable MATLAB (v5) file ({err})") from err
    annot2 = [a.reshape(len(a), 28, 2) for a in _mat_cells(mat, "annot2", path, 56)]
    f = len(annot2[0])
    frames = np.arange(f)
    if "frames" in mat:
        frames = np.asarray(mat["frames"]).reshape(-1)
        if len(frames) != f:
            raise DataFormatError(f"{path}: frames: {len(frames)} entries for {f} frames of annot2")
        frames = frames.astype(np.int64)
    return {"annot2": annot2, "frames": frames}


def _runs(kept: np.ndarray) -> np.ndarray:
    """Run ids (from 0) of kept row indices, changing wherever a row was skipped."""
    return np.concatenate([[0], np.cumsum(np.diff(kept) != 1)]) if len(kept) else kept


def load_official_train_2d(
    root: str | Path,
    subjects: tuple[str, ...] = TRAIN_SUBJECTS,
    sequences: tuple[str, ...] = TRAIN_SEQUENCES,
    cameras: tuple[int, ...] = SPIN_CAMERAS,
    stride: int = 1,
    inside_only: bool = True,
) -> PoseSet:
    """The official training set's 2D (``<root>/S*/Seq*/annot.mat``) as an unlabeled set in H36M-17.

    ``annot2`` is mapped 28 -> H36M-17 and screen-normalized with the image size (2048x2048).
    Kept frames: every ``stride``-th, finite, and (``inside_only``) with all 17 mapped joints
    inside the image, as SPIN does. Intrinsics come from each sequence's ``camera.calibration``
    (the nominal TS1-4 values when the file is absent; ``meta["intrinsics"]`` says which).
    ``sequence`` ids mark contiguous runs of kept frames (for temporal windows)."""
    root = Path(root)
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    bad_cams = [c for c in cameras if not 0 <= int(c) < TRAIN_CAMERAS]
    if bad_cams:
        raise ValueError(f"3DHP training cameras are 0..{TRAIN_CAMERAS - 1}, got {bad_cams}")
    layout = get_layout("mpi3dhp28")
    parts: list[dict[str, np.ndarray]] = []
    nominal: list[str] = []
    run_offset = 0
    for subject in subjects:
        for q_idx, seq in enumerate(sequences):
            folder = root / subject / seq
            a = read_train_annot(folder / "annot.mat")
            calib_path = folder / "camera.calibration"
            calib = read_train_calibration(calib_path) if calib_path.is_file() else None
            if calib is None:
                nominal.append(f"{subject}/{seq}")
            for cam in cameras:
                cam = int(cam)
                if calib is not None and cam not in calib:
                    raise DataFormatError(f"{calib_path}: camera {cam} missing ({len(calib)} cameras found)")
                f_c, size = calib[cam] if calib is not None else (np.array(STUDIO[0]), TRAIN_SIZE)
                px = to_h36m17(a["annot2"][cam], layout)[::stride]
                frames = a["frames"][::stride]
                keep = np.isfinite(px).all(axis=(1, 2))
                if inside_only:
                    inside = (
                        (px[..., 0] >= 0)
                        & (px[..., 0] < size[0])
                        & (px[..., 1] >= 0)
                        & (px[..., 1] < size[1])
                    )
                    keep &= inside.all(axis=1)
                px, frames = px[keep], frames[keep]
                m = len(px)
                pixel = torch.tensor([*f_c, 0, 0, 0, 0, 0], dtype=torch.float64)
                intr = normalize_intrinsics(pixel, float(size[0]), float(size[1])).numpy().astype(np.float32)
                wh = np.array(size, dtype=np.float32)
                runs = _runs(np.flatnonzero(keep))
                parts.append(
                    dict(
                        pose2d=_normalize(px.astype(np.float32), wh),
                        intrinsics=rows(intr, (m, 9)),
                        image_size=rows(wh, (m, 2)),
                        subject=np.full(m, int(subject.lstrip("S")) if subject.lstrip("S").isdigit() else 0),
                        action=np.full(m, q_idx),
                        camera=np.full(m, cam),
                        frame=frames,
                        sequence=runs + run_offset,
                    )
                )
                run_offset += int(runs.max()) + 1 if m else 0
    if not parts or not sum(len(p["pose2d"]) for p in parts):
        raise DataFormatError(f"{root}: no training frames kept for {subjects} {sequences} cameras {cameras}")
    merged = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    return PoseSet(
        **merged,
        action_names=tuple(sequences),
        name="3dhp_train_official_2d",
        source=str(root),
        meta={
            "dataset": "3dhp",
            "file": "annot.mat",
            "missing_joints": (),
            "norm": "screen",
            "cameras": tuple(int(c) for c in cameras),
            "stride": stride,
            "inside_only": inside_only,
            "intrinsics": (
                "camera.calibration"
                if not nominal
                else f"nominal TS1-4 values for {nominal} (no camera.calibration there)"
            ),
        },
    )


class MPI3DHP(TargetDomain):
    """MPI-INF-3DHP as a target domain.

    Args:
        root: folder holding the files named in this module's docstring.
        test_sets: any of ``"2929"`` (PoseAug's 2,929 frames, scored on ``pck_joints``),
            ``"2929-poseaug"`` (the same frames under PoseAug's published protocol: all 16 joints
            and flip test-time augmentation, named ``3dhp_2929.all16.flip``), ``"full"``
            (official ``annot_data.mat``), ``"adaptpose"`` (AdaptPose's official-size npz).
        pck_joints: PCK/AUC/MPJPE joint set, ``"all"`` or ``"official14"`` (required choice;
            it becomes part of every test-set name).
        universal: official test set: score against ``univ_annot3`` (official) or ``annot3``.
        valid_only: official test set: keep only ``valid_frame`` frames.
        target_train: unlabeled target 2D from the training set: ``False`` (none),
            ``"adaptpose"`` (or ``True``: AdaptPose's ``data_3dhp_gt_train.npz``) or
            ``"official"`` (``<root>/S*/Seq*/annot.mat``, see :func:`load_official_train_2d`).
        train_cameras: official training set: cameras to use (default SPIN's eight).
        train_stride: official training set: keep every n-th frame.
    """

    def __init__(
        self,
        root: str,
        test_sets: list[str] | None = None,
        pck_joints: str = "official14",
        universal: bool = True,
        valid_only: bool = True,
        target_train: bool | str | None = False,
        train_cameras: list[int] | None = None,
        train_stride: int = 1,
    ) -> None:
        self.root = Path(root)
        self.test_sets = list(test_sets or ["2929"])
        known = ("2929", "2929-poseaug", "full", "adaptpose")
        unknown = [t for t in self.test_sets if t not in known]
        if unknown:
            raise ValueError(f"unknown 3DHP test set(s) {unknown}; use one of {list(known)}")
        self.pck_joints = pck_joints
        self.universal = universal
        self.valid_only = valid_only
        if target_train is True:
            target_train = "adaptpose"
        if target_train not in (False, None, "adaptpose", "official"):
            raise ValueError(f"target_train must be False, 'adaptpose' or 'official', got {target_train!r}")
        self.target_train = target_train or False
        self.train_cameras = tuple(train_cameras) if train_cameras is not None else SPIN_CAMERAS
        self.train_stride = train_stride

    def load(self) -> tuple[dict[str, PoseSet], dict[str, PoseSet]]:
        tests = []
        for t in self.test_sets:
            if t == "2929":
                tests.append(load_poseaug_test(self.root / "test_3dhp.npz", self.pck_joints))
            elif t == "2929-poseaug":  # PoseAug's published numbers: 16 joints, flip test
                s = load_poseaug_test(self.root / "test_3dhp.npz", "all")
                protocol = "PoseAug: 2,929 frames, all 16 joints, flip test-time augmentation"
                tests.append(
                    replace(
                        s, name=f"{s.name}.flip", meta={**s.meta, "flip_test": True, "protocol": protocol}
                    )
                )
            elif t == "full":
                tests.append(
                    load_official_test(
                        self.root / "mpi_inf_3dhp_test_set",
                        universal=self.universal,
                        valid_only=self.valid_only,
                        eval_joints=self.pck_joints,
                    )
                )
            else:
                tests.append(load_adaptpose_test(self.root / "data_3dhp_gt_test.npz", self.pck_joints))
        train = {}
        if self.target_train == "adaptpose":
            s = load_adaptpose_train_2d(self.root / "data_3dhp_gt_train.npz")
            train[s.name] = s
        elif self.target_train == "official":
            s = load_official_train_2d(self.root, cameras=self.train_cameras, stride=self.train_stride)
            train[s.name] = s
        return {s.name: s for s in tests}, train
