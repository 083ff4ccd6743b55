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
REST_WORLD = np.array([
    [0, 0, 0], [-0.13, 0, 0], [-0.13, 0, -0.44], [-0.13, 0, -0.88], [0.13, 0, 0], [0.13, 0, -0.44],
    [0.13, 0, -0.88], [0, 0, 0.23], [0, 0, 0.49], [0, -0.05, 0.6], [0, 0, 0.72], [0.15, 0, 0.49],
    [0.15, 0, 0.21], [0.15, 0, -0.04], [-0.15, 0, 0.49], [-0.15, 0, 0.21], [-0.15, 0, -0.04],
], dtype=np.float64)

_PARENTS32 = [-1, 0, 1, 2, 3, 4, 0, 6, 7, 8, 9, 0, 11, 12, 13, 14, 12, 16, 17, 18, 19, 20, 19, 22, 12, 24, 25,
              26, 27, 28, 27, 30]
_USED32 = list(get_layout("h36m32").to_h36m17)


def motion(frames: int, rng: np.random.Generator, centre: tuple[float, float, float] = (0.0, 0.3, 0.9),
           noise: float = 0.04) -> np.ndarray:
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


def write_h36m(root: str | Path, spec: dict[str, dict[str, int]] | None = None, seed: int = 0,
               variants: tuple[str, ...] = ("gt", "cpn_ft_h36m_dbb", "hr", "sh_ft_h36m"),
               compressed: bool = True) -> dict[str, dict[str, np.ndarray]]:
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
        p2d = {s: {a: [c.astype(np.float32) for c in x] for a, x in acts.items()} for s, acts in pixels.items()}
        save(root / "data_2d_h36m_gt.npz", positions_2d=p2d,
             metadata={"num_joints": 17, "keypoints_symmetry": sym17})
    if "cpn_ft_h36m_dbb" in variants:
        p2d = {s: {a: [(c + rng.normal(scale=5.0, size=c.shape)).astype(np.float32) for c in x]
                   for a, x in acts.items()} for s, acts in pixels.items()}
        first_s = next(iter(p2d))
        first_a = next(iter(p2d[first_s]))
        cam2 = p2d[first_s][first_a][2]
        p2d[first_s][first_a][2] = np.concatenate([cam2, cam2[-3:]])
        p2d["S2"] = {"Walking": [rng.uniform(300, 700, size=(9, 17, 2)).astype(np.float32) for _ in range(4)]}
        save(root / "data_2d_h36m_cpn_ft_h36m_dbb.npz", positions_2d=p2d,
             metadata={"layout_name": "h36m", "num_joints": 17, "keypoints_symmetry": sym17})
    for name, layout, sym in (("hr", "h36m16", [[4, 5, 6, 10, 11, 12], [1, 2, 3, 13, 14, 15]]),
                              ("sh_ft_h36m", "sh16", [[3, 4, 5, 13, 14, 15], [0, 1, 2, 10, 11, 12]])):
        if name in variants:
            p2d = {s: {a: [from_h36m17(c, layout).astype(np.float32) for c in x] for a, x in acts.items()}
                   for s, acts in pixels.items()}
            save(root / f"data_2d_h36m_{name}.npz", positions_2d=p2d,
                 metadata={"num_joints": 16, "keypoints_symmetry": sym})
    return world


def write_pickle_npz(path: Path, **arrays: object) -> None:
    """An npz whose values may be dicts (stored as 0-d object arrays, as the references do)."""
    np.savez(path, **arrays)


def write_pickle(path: Path, obj: object) -> None:
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)


assert set(H36M_EXTRINSICS) >= {s for s in DEFAULT_H36M}
