"""Writers of tiny dataset files in each published format (DATA_FORMATS.md section 8).

Poses are a standing rest pose with smooth random joint motion. Wherever the real files
store a projection, the stored 2D is the projection of the stored 3D under the stated
camera (H36M with distortion through ``poseshift.geometry.camera.project``), so tests
can check loaders by re-projecting.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch

from data_modules.h36m import H36M_EXTRINSICS, world_to_cameras
from data_modules.skeletons import from_h36m17, get_layout
from poseshift.geometry.camera import h36m_intrinsics, project, unnormalize_screen

# rest pose, z up, metres, pelvis at the origin (x = subject's left-to-right is -x here)
REST_WORLD = np.array(
    [
        [0, 0, 0],
        [-0.13, 0, 0],
        [-0.13, 0, -0.44],
        [-0.13, 0, -0.88],
        [0.13, 0, 0],
        [0.13, 0, -0.44],
        [0.13, 0, -0.88],
        [0, 0, 0.23],
        [0, 0, 0.49],
        [0, -0.05, 0.6],
        [0, 0, 0.72],
        [0.15, 0, 0.49],
        [0.15, 0, 0.21],
        [0.15, 0, -0.04],
        [-0.15, 0, 0.49],
        [-0.15, 0, 0.21],
        [-0.15, 0, -0.04],
    ],
    dtype=np.float64,
)

_PARENTS32 = [
    -1,
    0,
    1,
    2,
    3,
    4,
    0,
    6,
    7,
    8,
    9,
    0,
    11,
    12,
    13,
    14,
    12,
    16,
    17,
    18,
    19,
    20,
    19,
    22,
    12,
    24,
    25,
    26,
    27,
    28,
    27,
    30,
]
_USED32 = list(get_layout("h36m32").to_h36m17)


def motion(
    frames: int,
    rng: np.random.Generator,
    centre: tuple[float, float, float] = (0.0, 0.3, 0.9),
    noise: float = 0.04,
) -> np.ndarray:
    """(T, 17, 3) world poses (z up): rest pose + smooth joint noise + a slow walk around ``centre``."""
    steps = rng.normal(scale=noise / 4, size=(frames, 17, 3))
    wobble = np.cumsum(steps, axis=0)
    wobble -= wobble.mean(0)
    wobble = np.clip(wobble, -noise * 2, noise * 2)
    yaw = rng.uniform(-np.pi, np.pi) + np.linspace(0, rng.uniform(-1, 1), frames)
    c, s = np.cos(yaw), np.sin(yaw)
    rot = np.zeros((frames, 3, 3))
    rot[:, 0, 0], rot[:, 0, 1], rot[:, 1, 0], rot[:, 1, 1], rot[:, 2, 2] = c, -s, s, c, 1
    pose = np.einsum("tab,tjb->tja", rot, REST_WORLD[None] + wobble)
    drift = np.linspace(-0.2, 0.2, frames)[:, None] * rng.normal(size=3) * np.array([1, 1, 0])
    return pose + np.array(centre) + drift[:, None]


def to_h36m32(world17: np.ndarray) -> np.ndarray:
    """(T, 17, 3) -> (T, 32, 3): used joints filled, each unused one at its nearest used ancestor."""
    out = np.zeros(world17.shape[:-2] + (32, 3), dtype=world17.dtype)
    out[..., _USED32, :] = world17
    for j in range(32):
        if j not in _USED32:
            p = _PARENTS32[j]
            while p not in _USED32:
                p = _PARENTS32[p]
            out[..., j, :] = out[..., p, :]
    return out


def h36m_pixels(world17: np.ndarray, subject: str) -> np.ndarray:
    """(4, T, 17, 2) pixel projections of world poses in the subject's four cameras."""
    cams = torch.from_numpy(world_to_cameras(world17.astype(np.float32), subject))
    k, size = h36m_intrinsics(normalized=True)
    uv = project(cams, k[:, None])
    return unnormalize_screen(uv, size[:, 0, None, None], size[:, 1, None, None]).numpy()


def h36m_sequences(spec: dict[str, dict[str, int]], seed: int = 0) -> dict[str, dict[str, np.ndarray]]:
    """World H36M-17 motions ``{subject: {action: (T, 17, 3)}}`` with the given frame counts."""
    rng = np.random.default_rng(seed)
    return {s: {a: motion(t, rng) for a, t in acts.items()} for s, acts in spec.items()}


DEFAULT_H36M = {
    "S1": {"Directions 1": 30, "Walking": 25, "TakingPhoto": 12},
    "S5": {"Directions": 20, "Walking 1": 18},
    "S9": {"Directions 1": 16, "Walking": 14},
    "S11": {"Walking 2": 15, "Eating": 11},
}


def write_h36m(
    root: str | Path,
    spec: dict[str, dict[str, int]] | None = None,
    seed: int = 0,
    variants: tuple[str, ...] = ("gt", "cpn_ft_h36m_dbb", "hr", "sh_ft_h36m"),
    compressed: bool = True,
) -> dict[str, dict[str, np.ndarray]]:
    """Write ``data_3d_h36m.npz`` and the 2D variants; returns the world H36M-17 motions.

    * ``gt``: VideoPose3D, 17 joints, exact projection, symmetry metadata;
    * ``cpn_ft_h36m_dbb``: 17 joints + 5 px noise, 3 extra trailing frames on camera 2 of
      the first sequence, an unlabeled subject S2 and ``layout_name``;
    * ``hr``: PoseAug 16 joints (H36M-16), exact projection;
    * ``sh_ft_h36m``: Stacked-Hourglass order, exact projection.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    save = np.savez_compressed if compressed else np.savez
    rng = np.random.default_rng(seed + 1)
    world = h36m_sequences(spec or DEFAULT_H36M, seed)
    pos3d = {s: {a: to_h36m32(x).astype(np.float32) for a, x in acts.items()} for s, acts in world.items()}
    save(root / "data_3d_h36m.npz", positions_3d=pos3d)
    pixels = {s: {a: h36m_pixels(x, s) for a, x in acts.items()} for s, acts in world.items()}
    sym17 = [[4, 5, 6, 11, 12, 13], [1, 2, 3, 14, 15, 16]]
    if "gt" in variants:
        p2d = {
            s: {a: [c.astype(np.float32) for c in x] for a, x in acts.items()} for s, acts in pixels.items()
        }
        save(
            root / "data_2d_h36m_gt.npz",
            positions_2d=p2d,
            metadata={"num_joints": 17, "keypoints_symmetry": sym17},
        )
    if "cpn_ft_h36m_dbb" in variants:
        p2d = {
            s: {
                a: [(c + rng.normal(scale=5.0, size=c.shape)).astype(np.float32) for c in x]
                for a, x in acts.items()
            }
            for s, acts in pixels.items()
        }
        first_s = next(iter(p2d))
        first_a = next(iter(p2d[first_s]))
        cam2 = p2d[first_s][first_a][2]
        p2d[first_s][first_a][2] = np.concatenate([cam2, cam2[-3:]])
        p2d["S2"] = {"Walking": [rng.uniform(300, 700, size=(9, 17, 2)).astype(np.float32) for _ in range(4)]}
        save(
            root / "data_2d_h36m_cpn_ft_h36m_dbb.npz",
            positions_2d=p2d,
            metadata={"layout_name": "h36m", "num_joints": 17, "keypoints_symmetry": sym17},
        )
    for name, layout, sym in (
        ("hr", "h36m16", [[4, 5, 6, 10, 11, 12], [1, 2, 3, 13, 14, 15]]),
        ("sh_ft_h36m", "sh16", [[3, 4, 5, 13, 14, 15], [0, 1, 2, 10, 11, 12]]),
    ):
        if name in variants:
            p2d = {
                s: {a: [from_h36m17(c, layout).astype(np.float32) for c in x] for a, x in acts.items()}
                for s, acts in pixels.items()
            }
            save(
                root / f"data_2d_h36m_{name}.npz",
                positions_2d=p2d,
                metadata={"num_joints": 16, "keypoints_symmetry": sym},
            )
    return world


def write_pickle_npz(path: Path, **arrays: object) -> None:
    """An npz whose values may be dicts (stored as 0-d object arrays, as the references do)."""
    np.savez(path, **arrays)


def write_pickle(path: Path, obj: object) -> None:
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)


def write_cdf_variable(
    path: Path, array: np.ndarray, name: str = "Pose", data_type: str = "CDF_DOUBLE"
) -> None:
    """One CDF file holding ``name`` as a single record of ``array.shape[1:]`` (cdflib's writer)."""
    from cdflib.cdfwrite import CDF

    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        path.unlink()
    writer = CDF(str(path), cdf_spec={"Majority": "row_major"})
    spec = {
        "Variable": name,
        "Data_Type": getattr(CDF, data_type),
        "Num_Elements": 1,
        "Rec_Vary": True,
        "Dim_Sizes": list(array.shape[1:]),
    }
    writer.write_var(spec, var_data=np.ascontiguousarray(array, dtype=np.float64))
    writer.close()


def write_h36m_cdf(
    root: Path, spec: dict[str, dict[str, int]], seed: int = 0, junk_unused: bool = True
) -> dict[str, dict[str, np.ndarray]]:
    """Official ``S*/MyPoseFeatures/D3_Positions/<Action>.cdf`` files (``Pose`` (1, T, 96), mm, world).

    ``junk_unused`` moves the 15 joints H36M-17 drops 3 m away, so a wrong 32 -> 17 map shows.
    Returns the world H36M-17 motions in metres, keyed by the raw (un-aliased) action names."""
    rng = np.random.default_rng(seed + 7)
    world = h36m_sequences(spec, seed)
    for subject, acts in world.items():
        for action, w17 in acts.items():
            w32 = to_h36m32(w17)
            if junk_unused:
                unused = [j for j in range(32) if j not in _USED32]
                w32[:, unused] += 3.0 + rng.uniform(size=(1, len(unused), 3))
            pose = (w32 * 1000).reshape(1, len(w32), 96)
            write_cdf_variable(root / subject / "MyPoseFeatures" / "D3_Positions" / f"{action}.cdf", pose)
    return world


assert set(H36M_EXTRINSICS) >= {s for s in DEFAULT_H36M}


# -- camera-frame poses (3DHP, 3DPW, Ski) ----------------------------------------------------------
def camera_poses(
    n: int, rng: np.random.Generator, depth: tuple[float, float] = (3.5, 5.0), spread: float = 0.4
) -> np.ndarray:
    """(n, 17, 3) absolute camera-frame H36M-17 poses (x right, y down, z forward), metres."""
    world = REST_WORLD[None] + rng.normal(scale=0.03, size=(n, 17, 3))
    yaw = rng.uniform(-np.pi, np.pi, n)
    c, s = np.cos(yaw), np.sin(yaw)
    rot = np.zeros((n, 3, 3))
    rot[:, 0, 0], rot[:, 0, 1], rot[:, 1, 0], rot[:, 1, 1], rot[:, 2, 2] = c, -s, s, c, 1
    world = np.einsum("nab,njb->nja", rot, world)
    cam = np.stack([world[..., 0], -world[..., 2], world[..., 1]], axis=-1)  # z up -> y down, y -> forward
    root = np.stack(
        [rng.uniform(-spread, spread, n), rng.uniform(-spread / 2, spread / 2, n), rng.uniform(*depth, n)],
        axis=1,
    )
    return cam + root[:, None]


def pinhole(points: np.ndarray, fx: float, fy: float, cx: float, cy: float) -> np.ndarray:
    """Pixels of camera-frame points (..., 3) under an undistorted pinhole camera."""
    return np.stack(
        [fx * points[..., 0] / points[..., 2] + cx, fy * points[..., 1] / points[..., 2] + cy], -1
    )


def screen(px: np.ndarray, w: float, h: float) -> np.ndarray:
    """Screen normalization (DATA_FORMATS.md 2.4), written independently of the library."""
    return np.stack([2 * px[..., 0] / w - 1, 2 * px[..., 1] / w - h / w], -1)


TS_STUDIO = (1500.172288, 1500.172288, 1017.38733568, 1043.03198208)
TS_OUTDOOR = (1683.98345952, 1683.98345952, 939.85754016, 560.14074317)


def write_poseaug_3dhp(path: Path, n: int = 20, seed: int = 0) -> np.ndarray:
    """PoseAug ``test_3dhp.npz``: the first round(n*2207/2929) frames studio, the rest outdoor.

    Returns the absolute camera-frame H36M-17 poses it was made from."""
    rng = np.random.default_rng(seed)
    cam = camera_poses(n, rng)
    studio = int(round(n * 2207 / 2929))
    px = np.concatenate([pinhole(cam[:studio], *TS_STUDIO), pinhole(cam[studio:], *TS_OUTDOOR)])
    norm = np.concatenate([screen(px[:studio], 2048, 2048), screen(px[studio:], 1920, 1080)])
    rel = cam - cam[:, :1]
    np.savez(path, pose3d=from_h36m17(rel, "h36m16"), pose2d=from_h36m17(norm, "h36m16"))
    return cam


def write_annot_data(
    path: Path,
    n: int = 12,
    seed: int = 0,
    outdoor: bool = False,
    invalid: tuple[int, ...] = (2, 5),
    univ_scale: float = 0.95,
    matlab_order: bool = False,
) -> np.ndarray:
    """Official ``TS*/annot_data.mat`` as HDF5: (N, 1, 17, k) arrays in the 3DHP test layout, mm.

    ``univ_annot3`` is ``annot3`` scaled about the pelvis; ``valid_frame`` is 0 at ``invalid``.
    Returns the absolute camera-frame H36M-17 poses in metres."""
    import h5py

    rng = np.random.default_rng(seed)
    cam = camera_poses(n, rng)
    px = pinhole(cam, *(TS_OUTDOOR if outdoor else TS_STUDIO))
    univ = (cam - cam[:, :1]) * univ_scale + cam[:, :1]
    valid = np.ones((n, 1))
    valid[list(invalid)] = 0
    arrays = {
        "annot2": from_h36m17(px, "mpi3dhp17")[:, None],
        "annot3": from_h36m17(cam * 1000, "mpi3dhp17")[:, None],
        "univ_annot3": from_h36m17(univ * 1000, "mpi3dhp17")[:, None],
        "valid_frame": valid,
        "activity_annotation": rng.integers(1, 8, size=(n, 1)).astype(np.float64),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        for k, v in arrays.items():
            f[k] = v.T if matlab_order else v
    return cam


def write_adaptpose_3dhp_test(
    path: Path, sizes: dict[str, int] | None = None, seed: int = 0
) -> dict[str, np.ndarray]:
    """AdaptPose ``data_3dhp_gt_test.npz``: ``{TS: (n, 16, 3)}`` mm absolute and ``{TS: (n, 16, 2)}`` px."""
    rng = np.random.default_rng(seed)
    sizes = sizes or {"TS1": 6, "TS3": 105, "TS5": 5}
    cams = {ts: camera_poses(n, rng) for ts, n in sizes.items()}
    p3 = {ts: from_h36m17(c * 1000, "h36m16").astype(np.float32) for ts, c in cams.items()}
    p2 = {
        ts: from_h36m17(
            pinhole(c, *(TS_STUDIO if ts in ("TS1", "TS2", "TS3", "TS4") else TS_OUTDOOR)), "h36m16"
        ).astype(np.float32)
        for ts, c in cams.items()
    }
    np.savez(path, positions_3d=p3, positions_2d=p2)
    return cams


def write_adaptpose_3dhp_train(path: Path, frames: int = 7, seed: int = 0) -> dict:
    """AdaptPose ``data_3dhp_gt_train.npz``: ``{S: {Seq: {cam: (F, 16, 2)}}}`` px, mirrored order."""
    rng = np.random.default_rng(seed)
    out: dict = {}
    truth: dict = {}
    for s in ("S1", "S2", "S3", "S4", "S5", "S6", "S7", "S8"):
        out[s], truth[s] = {}, {}
        for seq in ("Seq1", "Seq2"):
            out[s][seq], truth[s][seq] = {}, {}
            for cam in (0, 2):
                px = pinhole(camera_poses(frames, rng), *TS_STUDIO)
                truth[s][seq][cam] = px
                out[s][seq][cam] = from_h36m17(px, "adaptpose_3dhp_train16").astype(np.float32)
    np.savez(path, positions_2d=out)
    return truth


def train_camera(cam: int) -> tuple[float, float, float, float]:
    """(fx, fy, cx, cy) pixels of fixture training camera ``cam`` (distinct per camera)."""
    return (1450.0 + 10 * cam, 1452.0 + 10 * cam, 1020.0 + 2 * cam, 1030.0 - 3 * cam)


def write_calibration(path: Path, cameras: int = 14, intrinsic_numbers: int = 16) -> None:
    """``camera.calibration`` text: a header, then 7 lines per camera, values after an 11-char label.

    (Third-party readers slice ``line[11:-2]``, so values start at column 11 and end with " \\n".)"""
    lines = ["Skeletool Camera Calibration File V1.0"]
    for cam in range(cameras):
        fx, fy, cx, cy = train_camera(cam)
        k = [fx, 0, cx, 0, 0, fy, cy, 0, 0, 0, 1, 0, 0, 0, 0, 1][:intrinsic_numbers]
        ext = [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1]
        lines += [
            f"name          {cam}",
            f"{'sensor':<11}10 10",
            f"{'size':<11}2048 2048",
            f"{'animated':<11}0",
            f"{'intrinsic':<11}" + " ".join(f"{v:g}" for v in k) + " ",
            f"{'extrinsic':<11}" + " ".join(f"{v:g}" for v in ext) + " ",
            f"{'radial':<11}0",
        ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


def _cells(arrays: list[np.ndarray]) -> np.ndarray:
    cells = np.empty((len(arrays), 1), dtype=object)
    for i, a in enumerate(arrays):
        cells[i, 0] = a
    return cells


def write_3dhp_train_sequence(
    folder: Path,
    frames: int = 6,
    seed: int = 0,
    outside: dict[int, int] | None = None,
    calibration: bool = True,
    overrides: dict[str, object] | None = None,
) -> dict[int, np.ndarray]:
    """Official training ``annot.mat`` (+ ``camera.calibration``) for 14 cameras (scipy v5 MAT).

    ``annot2``/``annot3``/``univ_annot3`` are (14, 1) cells of (F, 56) px / (F, 84) mm in the
    28-joint layout; ``annot2`` is the projection of ``annot3`` with :func:`train_camera`.
    ``outside`` = ``{camera: frame}`` pushes that frame's left wrist (28-joint 11) off the image.
    ``overrides`` replace or (value ``None``) remove MAT variables. Returns ``{camera: (F, 17, 3)}``
    absolute camera-frame H36M-17 poses in metres."""
    from scipy.io import savemat

    rng = np.random.default_rng(seed)
    truth, a2, a3 = {}, [], []
    for cam in range(14):
        cam17 = camera_poses(frames, rng)
        full = from_h36m17(cam17, "mpi3dhp28")
        unmapped = [j for j in range(28) if j not in get_layout("mpi3dhp28").to_h36m17]
        full[:, unmapped] = cam17[:, :1] + np.array([0.3, 0.3, 0.0])  # off the mapped joints
        px = pinhole(full, *train_camera(cam))
        for c, f in (outside or {}).items():
            if c == cam:
                px[f, 11, 0] = -5.0
        truth[cam] = cam17
        a2.append(px.reshape(frames, 56))
        a3.append((full * 1000).reshape(frames, 84))
    mat: dict[str, object] = {
        "annot2": _cells(a2),
        "annot3": _cells(a3),
        "univ_annot3": _cells([a * 0.95 for a in a3]),
        "cameras": np.arange(14)[None],
        "frames": np.arange(frames)[:, None],
    }
    for key, value in (overrides or {}).items():
        if value is None:
            mat.pop(key, None)
        else:
            mat[key] = value
    folder.mkdir(parents=True, exist_ok=True)
    savemat(folder / "annot.mat", mat)
    if calibration:
        write_calibration(folder / "camera.calibration")
    return truth


# -- 3DPW -----------------------------------------------------------------------------------------------
def smpl24_from_h36m17(pose: np.ndarray) -> np.ndarray:
    """(…, 24, 3) SMPL-ordered joints whose mapped joints equal ``pose``; the rest near their neighbours."""
    out = np.zeros(pose.shape[:-2] + (24, 3), dtype=pose.dtype)
    for j, i in enumerate(get_layout("smpl24").to_h36m17):
        if i is not None:
            out[..., i, :] = pose[..., j, :]
    for extra, near in ((3, 0), (9, 7), (10, 7), (11, 8), (13, 8), (14, 8), (22, 13), (23, 16)):
        out[..., extra, :] = out[..., near, :] + 0.01
    return out


def write_pw3d_sequence(
    path: Path, frames: int = 8, actors: int = 2, seed: int = 0, invalid: int = 1, undetected: int = 2
) -> list[np.ndarray]:
    """An official-style 3DPW pickle (portrait 1080x1920, moving camera); returns camera-frame H36M-17
    poses per actor.

    Actor a has ``campose_valid`` False at frame ``invalid`` and no OpenPose detection at ``undetected``."""
    rng = np.random.default_rng(seed)
    k = np.array([[1960.0, 0, 540.0], [0, 1960.0, 960.0], [0, 0, 1]])
    cam_poses = np.tile(np.eye(4), (frames, 1, 1))
    yaw = np.linspace(0, 0.3, frames)
    cam_poses[:, 0, 0], cam_poses[:, 0, 2], cam_poses[:, 2, 0], cam_poses[:, 2, 2] = (
        np.cos(yaw),
        np.sin(yaw),
        -np.sin(yaw),
        np.cos(yaw),
    )
    cam_poses[:, :3, 3] = rng.normal(scale=0.05, size=(frames, 3))
    joints, valid, det, truth = [], [], [], []
    for _ in range(actors):
        cam = camera_poses(frames, rng, depth=(3.0, 5.0), spread=0.2)
        truth.append(cam)
        rot, t = cam_poses[:, :3, :3], cam_poses[:, :3, 3]
        world = np.einsum("nba,njb->nja", rot, cam - t[:, None])  # R^T (X_c - t)
        joints.append(smpl24_from_h36m17(world).reshape(frames, 72))
        ok = np.ones(frames, bool)
        ok[invalid] = False
        valid.append(ok)
        d = np.zeros((frames, 3, 18))
        d[:, 2] = 1.0
        d[undetected, 2] = 0.0
        det.append(d)
    data = {
        "sequence": path.stem,
        "genders": ["m"] * actors,
        "betas": [np.zeros(10)] * actors,
        "poses": [np.zeros((frames, 72))] * actors,
        "trans": [np.zeros((frames, 3))] * actors,
        "jointPositions": joints,
        "cam_poses": cam_poses,
        "campose_valid": valid,
        "cam_intrinsics": k,
        "img_frame_ids": np.arange(frames),
        "poses2d": det,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    write_pickle(path, data)
    return truth


def write_pw3d_adaptpose(path: Path, n: int = 9, seed: int = 0, legs_swapped: bool = True) -> np.ndarray:
    """AdaptPose ``data_3dpw_gt_*.npz``: plain arrays, metres, normalized (padded-square) 2D."""
    rng = np.random.default_rng(seed)
    cam = camera_poses(n, rng, spread=0.2)
    f = 2 * 1960 / 1920
    norm = f * cam[..., :2] / cam[..., 2:3]
    layout = "h36m16_legswap" if legs_swapped else "h36m16"
    np.savez(
        path,
        positions_3d=from_h36m17(cam, layout).astype(np.float32),
        positions_2d=from_h36m17(norm, layout).astype(np.float32),
    )
    return cam


# -- Ski -------------------------------------------------------------------------------------------------
def write_ski_labels(
    path: Path, n: int = 12, seed: int = 0, legs_swapped: bool = False, flat: bool = True
) -> np.ndarray:
    """Official-style ``labels.h5``: root-relative 3D (legs optionally swapped), crop 2D in [0, 1], K / 256.

    Returns the absolute camera-frame poses the 2D was projected from."""
    import h5py

    rng = np.random.default_rng(seed)
    cam = camera_poses(n, rng, depth=(8.0, 20.0), spread=0.0)
    fn = rng.uniform(1.5, 3.0, n) * cam[:, 0, 2] / 10  # zoom so the athlete fills the crop
    cx, cy = 0.5 + rng.normal(scale=0.01, size=n), 0.5 + rng.normal(scale=0.01, size=n)
    k = np.zeros((n, 3, 3))
    k[:, 0, 0], k[:, 1, 1], k[:, 0, 2], k[:, 1, 2], k[:, 2, 2] = fn, fn, cx, cy, 1 / 256
    uv = np.stack(
        [
            fn[:, None] * cam[..., 0] / cam[..., 2] + cx[:, None],
            fn[:, None] * cam[..., 1] / cam[..., 2] + cy[:, None],
        ],
        -1,
    )
    rel = cam - cam[:, :1]
    if legs_swapped:
        rel = rel[:, [0, 4, 5, 6, 1, 2, 3] + list(range(7, 17))]
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        f["seq"] = np.repeat(np.arange(3), n // 3 + 1)[:n]
        f["subj"] = np.full(n, 2)
        f["cam"] = np.arange(n) % 6
        f["frame"] = np.arange(n)
        f["3D"] = rel.reshape(n, 51) if flat else rel
        f["2D"] = uv.reshape(n, 34) if flat else uv
        f["cam_intrinsic"] = k
        f["cam_position"] = rng.normal(size=(n, 3))
        f["R_cam_2_world"] = np.tile(np.eye(3), (n, 1, 1))
    return cam


def write_ski_adaptpose(path: Path, n: int = 10, seed: int = 0) -> np.ndarray:
    """AdaptPose ``data_skii_gt_*.npz``: 16-joint crop-pixel 2D and metres 3D (root-relative)."""
    rng = np.random.default_rng(seed)
    cam = camera_poses(n, rng, depth=(8.0, 20.0), spread=0.0)
    px = 128 + 256 * 2.0 * cam[..., :2] / cam[..., 2:3]
    np.savez(
        path,
        positions_2d=from_h36m17(px, "h36m16").astype(np.float32),
        positions_3d=from_h36m17(cam - cam[:, :1], "h36m16").astype(np.float32),
    )
    return cam


ALL_H36M = {s: {"Directions 1": 10, "Walking": 12} for s in ("S1", "S5", "S6", "S7", "S8", "S9", "S11")}


def write_all(root: Path) -> None:
    """Every dataset in the folder layout the README documents: ``root/{h36m,3dhp,3dpw,ski}``."""
    write_h36m(root / "h36m", ALL_H36M, variants=("gt", "cpn_ft_h36m_dbb"))
    hp = root / "3dhp"
    hp.mkdir(parents=True, exist_ok=True)
    write_poseaug_3dhp(hp / "test_3dhp.npz")
    for i, ts in enumerate(("TS1", "TS2", "TS3", "TS4", "TS5", "TS6")):
        write_annot_data(hp / "mpi_inf_3dhp_test_set" / ts / "annot_data.mat", n=8, seed=i, outdoor=i >= 4)
    write_adaptpose_3dhp_test(hp / "data_3dhp_gt_test.npz")
    write_adaptpose_3dhp_train(hp / "data_3dhp_gt_train.npz", frames=3)
    pw = root / "3dpw"
    for split, names in (("train", ("courtyard_a_00",)), ("test", ("downtown_b_00", "office_c_01"))):
        for i, name in enumerate(names):
            write_pw3d_sequence(pw / "sequenceFiles" / split / f"{name}.pkl", seed=i)
    write_pw3d_adaptpose(pw / "data_3dpw_gt_test.npz")
    write_pw3d_adaptpose(pw / "data_3dpw_gt_train.npz", legs_swapped=False)
    ski = root / "ski"
    write_ski_labels(ski / "train" / "labels.h5", seed=1)
    write_ski_labels(ski / "test" / "labels.h5", seed=2, legs_swapped=True)
    write_ski_adaptpose(ski / "data_skii_gt_train.npz")
    write_ski_adaptpose(ski / "data_skii_gt_test.npz")


# -- BVH -------------------------------------------------------------------------------------------------
# CMU/cgspeed-style hierarchy: name, parent, rest position (z-up metres, as REST_WORLD), end-site offset
_BVH_JOINTS = [
    ("Hips", None, REST_WORLD[0], None),
    ("LeftUpLeg", "Hips", REST_WORLD[4], None),
    ("LeftLeg", "LeftUpLeg", REST_WORLD[5], None),
    ("LeftFoot", "LeftLeg", REST_WORLD[6], (0.0, -0.12, -0.04)),
    ("RightUpLeg", "Hips", REST_WORLD[1], None),
    ("RightLeg", "RightUpLeg", REST_WORLD[2], None),
    ("RightFoot", "RightLeg", REST_WORLD[3], (0.0, -0.12, -0.04)),
    ("Spine", "Hips", np.array([0, 0, 0.12]), None),
    ("Spine1", "Spine", REST_WORLD[7], None),
    ("Neck", "Spine1", REST_WORLD[8], None),
    ("Head", "Neck", REST_WORLD[9], tuple(REST_WORLD[10] - REST_WORLD[9])),
    ("LeftShoulder", "Neck", np.array([0.05, 0, 0.49]), None),
    ("LeftArm", "LeftShoulder", REST_WORLD[11], None),
    ("LeftForeArm", "LeftArm", REST_WORLD[12], None),
    ("LeftHand", "LeftForeArm", REST_WORLD[13], (0.0, 0.0, -0.08)),
    ("RightShoulder", "Neck", np.array([-0.05, 0, 0.49]), None),
    ("RightArm", "RightShoulder", REST_WORLD[14], None),
    ("RightForeArm", "RightArm", REST_WORLD[15], None),
    ("RightHand", "RightForeArm", REST_WORLD[16], (0.0, 0.0, -0.08)),
]


def _yup_cm(v: np.ndarray) -> str:
    """z-up metres -> y-up centimetres, as the file stores offsets."""
    x, y, z = np.asarray(v, dtype=np.float64) * 100
    return f"{x:.6f} {z:.6f} {-y:.6f}"


def write_bvh(
    path: Path,
    frames: int = 20,
    yaw_deg: np.ndarray | None = None,
    knee_deg: np.ndarray | None = None,
    frame_time: float = 1 / 120,
) -> None:
    """A y-up centimetre BVH with root translation, a root yaw (about up) and a left-knee bend per frame."""
    pos = {name: p for name, _, p, _ in _BVH_JOINTS}
    children: dict[str | None, list] = {}
    for j in _BVH_JOINTS:
        children.setdefault(j[1], []).append(j)
    lines = ["HIERARCHY"]

    def emit(joint: tuple, depth: int) -> None:
        name, parent, p, end = joint
        pad = "  " * depth
        offset = p - (pos[parent] if parent else 0)
        lines.append(f"{pad}{'JOINT' if parent else 'ROOT'} {name}")
        lines.append(pad + "{")
        lines.append(f"{pad}  OFFSET {_yup_cm(offset)}")
        chans = (
            "6 Xposition Yposition Zposition Zrotation Xrotation Yrotation"
            if not parent
            else "3 Zrotation Xrotation Yrotation"
        )
        lines.append(f"{pad}  CHANNELS {chans}")
        for child in children.get(name, []):
            emit(child, depth + 1)
        if end is not None:
            lines.extend(
                [f"{pad}  End Site", pad + "  {", f"{pad}    OFFSET {_yup_cm(np.array(end))}", pad + "  }"]
            )
        lines.append(pad + "}")

    emit(children[None][0], 0)
    yaw = np.zeros(frames) if yaw_deg is None else yaw_deg
    knee = np.zeros(frames) if knee_deg is None else knee_deg
    rows = []
    for t in range(frames):
        values = [2.0 * t, 95.0, 0.0, 0.0, 0.0, float(yaw[t])]  # root: position (cm), Z X Y rotation
        for name, _parent, _, _ in _BVH_JOINTS[1:]:
            values += [0.0, float(knee[t]) if name == "LeftLeg" else 0.0, 0.0]
        rows.append(" ".join(f"{v:.6f}" for v in values))
    lines += ["MOTION", f"Frames: {frames}", f"Frame Time: {frame_time:.8f}", *rows]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
