"""``poseshift data check PATH`` and ``poseshift data convert ...``.

``check`` walks a folder, recognizes every dataset file poseshift reads by its published
name (table :data:`KNOWN_FILES`), loads each with the same reader the DataModules use and
prints one line per file: ``ok`` with a summary, or ``PROBLEM`` with the reader's message
(missing keys, shapes, NaNs, joint counts, millimetres where metres are expected, ...).
It also names files a dataset folder is missing (e.g. a 2D file without
``data_3d_h36m.npz``, or 3DHP test sequences without ``annot_data.mat``). Exit status 1
when anything is wrong.

``convert`` builds files from raw releases:

* ``h36m-h5 SRC OUT`` (alias ``h36m-cdf``): Martinez's ``S*/MyPoses/3D_positions/<Action>.h5``
  or the official ``S*/MyPoseFeatures/D3_Positions/<Action>.cdf`` (variable ``Pose``,
  (1, N, 96) mm, read with ``cdflib``) -> ``OUT/data_3d_h36m.npz`` (metres, VideoPose3D keys;
  S11 ``Directions`` dropped, action aliases applied).
* ``poseset FILE OUT``: any single file ``check`` recognizes -> the schema's own npz
  (``PoseSet.save``), which loads without any conversion.
"""

from __future__ import annotations

import argparse
import fnmatch
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

from data_modules.schema import DataFormatError, PoseSet

# file-name pattern -> (dataset, description)
KNOWN_FILES: dict[str, tuple[str, str]] = {
    "data_3d_h36m.npz": ("h36m", "H36M 3D (VideoPose3D)"),
    "data_2d_h36m_*.npz": ("h36m", "H36M 2D keypoints"),
    "test_3dhp.npz": ("3dhp", "3DHP PoseAug 2,929-frame test set"),
    "annot_data.mat": ("3dhp", "3DHP official test annotations"),
    "data_3dhp_gt_test.npz": ("3dhp", "3DHP AdaptPose test set"),
    "data_3dhp_gt_train.npz": ("3dhp", "3DHP AdaptPose training 2D"),
    "annot.mat": ("3dhp", "3DHP official training annotations (S*/Seq*/annot.mat)"),
    "*.pkl": ("3dpw", "3DPW official sequence"),
    "data_3dpw_gt_*.npz": ("3dpw", "3DPW AdaptPose npz"),
    "labels.h5": ("ski", "Ski-Pose PTZ labels"),
    "data_skii_gt_*.npz": ("ski", "Ski AdaptPose npz"),
    "*.bvh": ("bvh", "BVH motion capture (default joint map)"),
}


def _describe(s: PoseSet) -> str:
    depth = f", root depth {np.median(s.root3d[:, 2]):.2f} m" if s.root3d is not None and len(s) else ""
    return f"{len(s):,} poses, {s.num_joints} joints{', labeled' if s.labeled else ', 2D only'}{depth}"


def _check_h36m_3d(path: Path) -> str:
    from data_modules.h36m import TEST_SUBJECTS, TRAIN_SUBJECTS, load_positions_3d

    pos = load_positions_3d(path)
    missing = [s for s in TRAIN_SUBJECTS + TEST_SUBJECTS if s not in pos]
    if missing:
        raise DataFormatError(
            f"{path}: positions_3d: subjects {missing} missing (standard protocol needs S1-S11)"
        )
    frames = sum(len(a) for acts in pos.values() for a in acts.values())
    return f"{len(pos)} subjects, {sum(len(a) for a in pos.values())} sequences, {frames:,} frames"


def _check_h36m_2d(path: Path) -> str:
    from data_modules.h36m import load_positions_2d, load_positions_3d

    pos2d, layout = load_positions_2d(path)
    for subject, acts in pos2d.items():
        for action, cams in acts.items():
            for c, arr in enumerate(cams):
                if not np.isfinite(arr).all():
                    raise DataFormatError(f"{path}: positions_2d[{subject!r}][{action!r}][{c}]: NaN or inf")
    three = path.parent / "data_3d_h36m.npz"
    if not three.is_file():
        raise DataFormatError(f"{path}: no data_3d_h36m.npz next to it; 2D files pair with it")
    pos3d = load_positions_3d(three)
    problems = []
    for subject, acts in pos3d.items():
        for action, arr in acts.items():
            cams = pos2d.get(subject, {}).get(action)
            if cams is None:
                problems.append(f"positions_2d[{subject!r}][{action!r}] missing")
            elif any(len(c) < len(arr) for c in cams):
                problems.append(
                    f"positions_2d[{subject!r}][{action!r}] shorter than the 3D ({len(arr)} frames)"
                )
    if problems:
        more = f" (+{len(problems) - 5} more)" if len(problems) > 5 else ""
        raise DataFormatError(f"{path}: " + "; ".join(problems[:5]) + more)
    return f"layout {layout}, {len(pos2d)} subjects"


def _load_for(path: Path) -> Callable[[], PoseSet] | None:
    """The reader of a recognized file, as a zero-argument loader of its PoseSet."""
    from data_modules import mpi_inf_3dhp, pw3d, ski

    name = path.name
    if name == "test_3dhp.npz":
        return lambda: mpi_inf_3dhp.load_poseaug_test(path)
    if name == "annot_data.mat":
        return lambda: mpi_inf_3dhp.load_official_test(path.parent.parent, sequences=(path.parent.name,))
    if name == "data_3dhp_gt_test.npz":
        return lambda: mpi_inf_3dhp.load_adaptpose_test(path)
    if name == "data_3dhp_gt_train.npz":
        return lambda: mpi_inf_3dhp.load_adaptpose_train_2d(path)
    if name == "annot.mat":
        seq, subject = path.parent, path.parent.parent
        return lambda: mpi_inf_3dhp.load_official_train_2d(
            subject.parent, subjects=(subject.name,), sequences=(seq.name,)
        )
    if fnmatch.fnmatch(name, "data_3dpw_gt_*.npz"):
        return lambda: pw3d.load_adaptpose(path, legs_swapped="test" in name)
    if name.endswith(".pkl"):
        return lambda: _pw3d_single(path)
    if name == "labels.h5":
        return lambda: ski.load_labels(path)
    if fnmatch.fnmatch(name, "data_skii_gt_*.npz"):
        return lambda: ski.load_adaptpose(path)
    return None


def _pw3d_single(path: Path) -> PoseSet:
    from data_modules import pw3d

    seq = pw3d.load_sequence(path)
    if "pose2d" not in seq:
        raise DataFormatError(f"{path}: no actor has a valid frame")
    n = len(seq["pose2d"])
    return PoseSet(
        pose2d=seq["pose2d"],
        pose3d=seq["pose3d"],
        root3d=seq["root3d"],
        intrinsics=np.tile(seq["intrinsics"], (n, 1)),
        image_size=np.tile(seq["image_size"], (n, 1)),
        subject=seq["actor"],
        action=np.zeros(n),
        camera=np.zeros(n),
        frame=seq["frame"],
        sequence=seq["actor"],
        name=seq["name"],
        source=str(path),
    )


def check_file(path: Path) -> tuple[bool, str]:
    """(ok, message) for one recognized file."""
    try:
        if path.name == "data_3d_h36m.npz":
            return True, _check_h36m_3d(path)
        if fnmatch.fnmatch(path.name, "data_2d_h36m_*.npz"):
            return True, _check_h36m_2d(path)
        if path.suffix == ".bvh":
            from data_modules.bvh import bvh_to_world

            world = bvh_to_world(path)
            return True, f"{len(world):,} frames at 50 fps mapped to H36M-17 with the default joint map"
        loader = _load_for(path)
        if loader is None:
            return False, f"{path}: not a file poseshift reads"
        return True, _describe(loader())
    except (DataFormatError, FileNotFoundError, ValueError, KeyError, OSError) as err:
        return False, str(err)


def _recognized(path: Path) -> bool:
    if path.suffix == ".pkl" and path.parent.parent.name != "sequenceFiles":
        return False  # only 3DPW's sequenceFiles/<split>/*.pkl are dataset pickles
    if path.name == "annot.mat" and not (
        path.parent.name.startswith("Seq") and path.parent.parent.name.startswith("S")
    ):
        return False  # only 3DHP's training S*/Seq*/annot.mat
    return any(fnmatch.fnmatch(path.name, pattern) for pattern in KNOWN_FILES)


def _missing(files: list[Path]) -> list[str]:
    """Files a dataset folder should have next to the ones found."""
    problems = []
    names = {f.name for f in files}
    for f in files:
        if fnmatch.fnmatch(f.name, "data_2d_h36m_*.npz") and not (f.parent / "data_3d_h36m.npz").is_file():
            problems.append(f"{f.parent}: data_3d_h36m.npz missing (needed with {f.name})")
    if "data_3d_h36m.npz" in names and not any(fnmatch.fnmatch(n, "data_2d_h36m_*.npz") for n in names):
        problems.append("data_2d_h36m_<keypoints>.npz missing: only keypoints='project' will work")
    test_roots = {f.parent.parent for f in files if f.name == "annot_data.mat"}
    for root in sorted(test_roots):
        for ts in ("TS1", "TS2", "TS3", "TS4", "TS5", "TS6"):
            if not (root / ts / "annot_data.mat").is_file():
                problems.append(
                    f"{root / ts / 'annot_data.mat'}: missing (the official test set has TS1-TS6)"
                )
    splits = {f.parent.name for f in files if f.name == "labels.h5"}
    if splits and not {"train", "test"} <= splits:
        problems.append(f"Ski labels.h5 found for {sorted(splits)}; expected train/ and test/")
    return problems


def check(path: str | Path, out: Callable[[str], None] = print) -> int:
    """Check a file or every recognized file under a folder; returns 0 when all is well."""
    path = Path(path)
    if not path.exists():
        out(f"PROBLEM {path}: does not exist")
        return 1
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file() and _recognized(p))
    if not files:
        out(f"PROBLEM {path}: no dataset files found; known names: {', '.join(KNOWN_FILES)}")
        return 1
    bad = 0
    for f in files:
        ok, message = check_file(f)
        bad += not ok
        out(f"ok      {f}: {message}" if ok else f"PROBLEM {message}")
    for problem in _missing(files) if path.is_dir() else []:
        bad += 1
        out(f"PROBLEM {problem}")
    out(f"{len(files)} file(s) checked, {bad} problem(s)")
    return 1 if bad else 0


# -- convert ------------------------------------------------------------------------------------------


def convert_h36m_raw(src: str | Path, out: str | Path) -> Path:
    """Martinez h5 (or official CDF) H36M mocap -> ``data_3d_h36m.npz`` (metres)."""
    from data_modules.h36m import H36M_EXTRINSICS, action_category

    src, out = Path(src), Path(out)
    positions: dict[str, dict[str, np.ndarray]] = {}
    for subject in H36M_EXTRINSICS:
        h5_files = sorted((src / subject / "MyPoses" / "3D_positions").glob("*.h5"))
        cdf_files = sorted((src / subject / "MyPoseFeatures" / "D3_Positions").glob("*.cdf"))
        for f in h5_files or cdf_files:
            key = f.stem
            if subject == "S11" and key == "Directions":
                continue  # corrupted video in the release; every reference drops it
            cat = key.split(" ")[0]
            key = key.replace(cat, action_category(cat), 1)
            positions.setdefault(subject, {})[key] = _read_raw_h36m(f)
    if not positions:
        raise FileNotFoundError(
            f"{src}: no S*/MyPoses/3D_positions/*.h5 or S*/MyPoseFeatures/D3_Positions/*.cdf"
        )
    out.mkdir(parents=True, exist_ok=True)
    target = out / "data_3d_h36m.npz"
    np.savez_compressed(target, positions_3d=positions)
    return target


_MIN_HIP_MM = 20.0  # a hip bone shorter than 2 cm in the raw file means it is not in millimetres


def _read_raw_h36m(path: Path) -> np.ndarray:
    """(N, 32, 3) metres from one raw file (h5: '3D_positions' (96, N); CDF: 'Pose' (1, N, 96)), mm."""
    if path.suffix == ".h5":
        import h5py

        with h5py.File(path, "r") as f:
            if "3D_positions" not in f:
                raise DataFormatError(f"{path}: missing dataset '3D_positions'; present: {list(f)}")
            raw = np.asarray(f["3D_positions"])
        if raw.ndim != 2 or raw.shape[0] != 96:
            raise DataFormatError(f"{path}: 3D_positions: expected shape (96, N), got {raw.shape}")
        arr = raw.T.reshape(-1, 32, 3)
        field = "3D_positions"
    else:
        arr = _read_pose_cdf(path).reshape(-1, 32, 3)
        field = "Pose"
    if not np.issubdtype(arr.dtype, np.number):
        raise DataFormatError(f"{path}: {field}: expected numbers, got {arr.dtype}")
    if not np.isfinite(arr).all():
        raise DataFormatError(f"{path}: {field}: NaN or inf in the mocap")
    if len(arr):
        bone = float(np.median(np.linalg.norm(arr[:, 1] - arr[:, 0], axis=-1)))
        if bone < _MIN_HIP_MM:
            raise DataFormatError(
                f"{path}: {field}: hip bone is {bone:.3g} units long; the raw release is in "
                "millimetres (about 130), these values look like metres or are not H36M-32 joints"
            )
    return (arr / 1000.0).astype(np.float32)


def _read_pose_cdf(path: Path) -> np.ndarray:
    """The ``Pose`` variable of an official ``D3_Positions/<Action>.cdf`` as (N, 96), in mm."""
    try:
        import cdflib
    except ImportError as err:  # pragma: no cover - cdflib is an install requirement
        raise ImportError(
            f"{path}: reading the official CDF files needs cdflib (pip install cdflib)"
        ) from err
    try:
        cdf = cdflib.CDF(str(path))
        info = cdf.cdf_info()
    except (OSError, ValueError) as err:
        raise DataFormatError(f"{path}: not a readable CDF file ({err})") from err
    names = list(info.zVariables) + list(info.rVariables)
    if "Pose" not in names:
        raise DataFormatError(f"{path}: missing variable 'Pose'; present: {names}")
    raw = cdf.varget("Pose")
    del cdf  # cdflib keeps the file open while the object lives
    raw = np.asarray(raw) if raw is not None else np.zeros((1, 0, 96))
    if raw.ndim == 2 and raw.shape[-1] == 96:
        raw = raw[None]  # a reader that drops the single record
    if raw.ndim != 3 or raw.shape[0] != 1 or raw.shape[2] != 96:
        raise DataFormatError(f"{path}: Pose: expected shape (1, N, 96) (32 joints x 3, mm), got {raw.shape}")
    return raw[0]


def convert_poseset(src: str | Path, out: str | Path) -> Path:
    """Any single recognized dataset file -> the schema's own npz."""
    src, out = Path(src), Path(out)
    loader = _load_for(src)
    if loader is None:
        raise ValueError(
            f"{src}: not a file 'poseshift data convert poseset' can read; known names: "
            f"{', '.join(p for p in KNOWN_FILES if not p.startswith('data_') or 'h36m' not in p)}"
        )
    poses = loader()
    out.parent.mkdir(parents=True, exist_ok=True)
    poses.save(out)
    return out


def main(argv: list[str] | None = None) -> int:
    """``poseshift data check|convert``; returns the exit status."""
    parser = argparse.ArgumentParser(prog="poseshift data", description="Check or convert dataset files.")
    sub = parser.add_subparsers(dest="command", required=True)
    p_check = sub.add_parser("check", help="name every problem in a dataset file or folder")
    p_check.add_argument("path")
    p_conv = sub.add_parser("convert", help="build poseshift-readable files from raw releases")
    conv = p_conv.add_subparsers(dest="kind", required=True)
    h5 = conv.add_parser(
        "h36m-h5",
        aliases=["h36m-cdf"],
        help="H36M raw mocap (Martinez h5 or official CDF) -> data_3d_h36m.npz",
    )
    h5.add_argument("src")
    h5.add_argument("out", help="output folder")
    ps = conv.add_parser("poseset", help="one recognized dataset file -> PoseSet npz")
    ps.add_argument("src")
    ps.add_argument("out", help="output .npz file")
    args = parser.parse_args(argv)
    if args.command == "check":
        return check(args.path)
    try:
        target = (
            convert_h36m_raw(args.src, args.out)
            if args.kind in ("h36m-h5", "h36m-cdf")
            else convert_poseset(args.src, args.out)
        )
    except (DataFormatError, OSError, ValueError, ImportError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
