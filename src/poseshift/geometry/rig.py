"""A virtual camera rig: films world joint sequences into camera-frame 3D and projected 2D.

Independent of where the motion comes from (DeepMimic clips, BVH mocap, evolved poses): give it
a (T, J, 3) sequence in a z-up world (metres, floor at Z = 0) and a :class:`CameraRig`, and
:func:`render` places the subject on the floor, draws cameras that look at it, and returns
camera-frame 3D, projected and screen-normalized 2D, normalized intrinsics and ids, for all
frames of all takes and cameras at once, as numpy arrays with the keys of the sample schema
(``data_modules.rig.pose_set_from_renders`` turns them into a dataset split).

Cameras follow H36M's conventions (DATA_FORMATS.md 2.1-2.4): a camera is an orientation
quaternion (camera to world) plus a centre, the camera frame is x right, y down, z forward,
and 2D comes from :func:`poseshift.geometry.camera.project` with normalized intrinsics.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch

from poseshift.geometry.camera import (
    H36M_CAMERAS,
    H36M_S1_EXTRINSICS,
    normalize_intrinsics,
    project,
)
from poseshift.geometry.rotations import matrix_to_quaternion, quaternion_to_matrix

log = logging.getLogger(__name__)

# Floor point nearest to the optical axes of the four S1 cameras (least squares; the axes pass
# 0.4 m above it). Subjects of the H36M preset are placed around here.
H36M_CAPTURE_CENTRE: tuple[float, float] = (-0.059, 0.320)
# Mean H36M focal length in pixels for a 1000-pixel-wide image; the reference for focal scales.
H36M_MEAN_FOCAL = float(np.mean([c[2][:2] for c in H36M_CAMERAS]))
MIN_DEPTH = 0.1  # metres; every joint must be at least this far in front of the camera
_UP = np.array([0.0, 0.0, 1.0])


def _pair(value: tuple[float, float] | list[float], name: str) -> tuple[float, float]:
    lo, hi = (float(v) for v in value)
    if lo > hi:
        raise ValueError(f"CameraRig.{name} must be (low, high) with low <= high, got {value}")
    return lo, hi


@dataclass
class CameraRig:
    """How cameras and the subject are drawn for each take of a sequence.

    Angles are in degrees, distances in metres. Orbit cameras (``h36m_extrinsics=False``) sit
    at ``distance`` from an aim point near the subject's mean pelvis, at ``elevation`` above
    its horizontal plane (0 = level, 90 = top-down, negative = looking up) and at
    ``azimuth`` around it, measured from the clip's initial forward axis (+X) turned by the
    subject's yaw, so ``azimuth = 0`` films the front of a subject facing +X.

    Args:
        num_cameras: cameras filming each take (the views of one placement of the subject).
        azimuth_range: range of the camera azimuth, drawn independently per camera.
        elevation_range: range of the camera elevation above the aim point.
        distance_range: range of the camera distance to the aim point.
        focal_scale_range: focal length as a multiple of the camera's own (H36M intrinsics)
            or of the mean H36M focal length (pinhole cameras); > 1 zooms in.
        h36m_intrinsics: use the intrinsics and distortion of the real H36M cameras (camera
            c of the preset, a random one of the four otherwise); else an ideal pinhole of
            size ``image_size`` with centred principal point and no distortion.
        image_size: (width, height) in pixels of pinhole cameras.
        h36m_extrinsics: use the four real H36M S1 cameras (position and orientation); the
            azimuth, elevation and distance ranges are then ignored.
        moving: the camera pans/tilts every frame to follow the subject's pelvis like a PTZ
            camera (smoothed causally over ``follow_lag`` seconds) and orbits around its
            start point at ``orbit_speed_range`` degrees per second.
        orbit_speed_range: azimuth drift of moving orbit cameras, degrees per second.
        follow_lag: causal smoothing window of the followed pelvis, seconds.
        aim_jitter: standard deviation of the aim point around the pelvis, per camera, so
            the subject is not always at the image centre.
        subject_yaw_range: rotation of the whole sequence about the vertical axis.
        subject_offset: radius of the disc (around the capture centre) in which the middle
            of the subject's floor trajectory is placed.
        max_redraws: rounds of redrawing the takes in which some joint of some frame is
            behind a camera or outside its image; frames still bad afterwards are dropped
            (and counted in a warning).
    """

    num_cameras: int = 4
    azimuth_range: tuple[float, float] = (-180.0, 180.0)
    elevation_range: tuple[float, float] = (0.0, 15.0)
    distance_range: tuple[float, float] = (4.5, 6.0)
    focal_scale_range: tuple[float, float] = (1.0, 1.0)
    h36m_intrinsics: bool = True
    image_size: tuple[int, int] = (1000, 1000)
    h36m_extrinsics: bool = False
    moving: bool = False
    orbit_speed_range: tuple[float, float] = (0.0, 0.0)
    follow_lag: float = 0.2
    aim_jitter: float = 0.2
    subject_yaw_range: tuple[float, float] = (-180.0, 180.0)
    subject_offset: float = 0.5
    max_redraws: int = 20

    def __post_init__(self) -> None:
        # normalize lists from YAML/CLI to tuples so configs hash and compare alike
        for name in (
            "azimuth_range",
            "elevation_range",
            "distance_range",
            "focal_scale_range",
            "orbit_speed_range",
            "subject_yaw_range",
        ):
            setattr(self, name, _pair(getattr(self, name), name))
        self.image_size = tuple(int(v) for v in self.image_size)
        if len(self.image_size) != 2 or min(self.image_size) <= 0:
            raise ValueError(f"CameraRig.image_size must be (width, height) > 0, got {self.image_size}")
        if self.num_cameras < 1:
            raise ValueError(f"CameraRig.num_cameras must be >= 1, got {self.num_cameras}")
        if self.h36m_extrinsics and self.num_cameras > len(H36M_S1_EXTRINSICS):
            raise ValueError(
                f"h36m_extrinsics has {len(H36M_S1_EXTRINSICS)} cameras, asked for {self.num_cameras}"
            )
        lo, hi = self.elevation_range
        if lo < -90 or hi > 90:
            raise ValueError(f"CameraRig.elevation_range must lie in [-90, 90], got {self.elevation_range}")
        if self.distance_range[0] <= 0 or self.focal_scale_range[0] <= 0:
            raise ValueError("CameraRig distance_range and focal_scale_range must be positive")
        if self.follow_lag < 0 or self.aim_jitter < 0 or self.subject_offset < 0 or self.max_redraws < 0:
            raise ValueError("CameraRig follow_lag, aim_jitter, subject_offset and max_redraws must be >= 0")

    @classmethod
    def h36m(cls, **overrides: object) -> CameraRig:
        """The four real H36M S1 cameras (extrinsics, intrinsics with distortion), filming a
        subject placed within 0.5 m of the capture-volume centre at any yaw."""
        settings: dict[str, object] = dict(
            num_cameras=4,
            h36m_intrinsics=True,
            h36m_extrinsics=True,
            subject_yaw_range=(-180.0, 180.0),
            subject_offset=0.5,
        )
        settings.update(overrides)
        return cls(**settings)  # type: ignore[arg-type]


def _uniform(rng: np.random.Generator, bounds: tuple[float, float], shape: tuple[int, ...]) -> np.ndarray:
    return rng.uniform(bounds[0], bounds[1], size=shape)


def _look_at(position: np.ndarray, target: np.ndarray, fallback_az: np.ndarray) -> np.ndarray:
    """Camera-to-world quaternions (..., 4) of cameras at ``position`` looking at ``target``.

    The image x axis stays horizontal (no roll). Straight up or down the horizon is undefined,
    so the right vector then comes from ``fallback_az``, the camera's azimuth around the target.
    """
    fwd = target - position
    fwd = fwd / np.linalg.norm(fwd, axis=-1, keepdims=True)
    right = np.cross(fwd, _UP)
    norm = np.linalg.norm(right, axis=-1, keepdims=True)
    fallback = np.stack([-np.sin(fallback_az), np.cos(fallback_az), np.zeros_like(fallback_az)], -1)
    right = np.where(norm > 1e-6, right / np.maximum(norm, 1e-12), fallback)
    down = np.cross(fwd, right)  # x right, y down, z forward is right-handed
    matrix = np.stack([right, down, fwd], axis=-1)  # columns: camera axes in world coordinates
    return matrix_to_quaternion(torch.from_numpy(matrix)).numpy()


def _causal_mean(x: np.ndarray, window: int, axis: int) -> np.ndarray:
    """Mean over the last ``window`` samples along ``axis`` (fewer at the start)."""
    x = np.moveaxis(x, axis, 0)
    cs = np.cumsum(x, axis=0)
    lagged = np.concatenate([np.zeros((window,) + x.shape[1:]), cs[:-window]], axis=0)[: len(x)]
    count = np.minimum(np.arange(1, len(x) + 1), window).reshape((-1,) + (1,) * (x.ndim - 1))
    return np.moveaxis((cs - lagged) / count, 0, axis)


def _draw_takes(
    seq: np.ndarray, rig: CameraRig, rng: np.random.Generator, takes: int, fps: float
) -> dict[str, np.ndarray]:
    """Random placement and cameras for ``takes`` takes: arrays with leading (K, C, ...)."""
    k, c, t = takes, rig.num_cameras, seq.shape[0]
    # subject: centre of its floor trajectory to the capture centre + offset, then yaw
    root_xy = seq[:, 0, :2]
    mid = (root_xy.min(0) + root_xy.max(0)) / 2
    yaw = np.radians(_uniform(rng, rig.subject_yaw_range, (k,)))
    radius = rig.subject_offset * np.sqrt(rng.uniform(size=k))
    angle = rng.uniform(0, 2 * np.pi, size=k)
    centre = np.array(H36M_CAPTURE_CENTRE) if rig.h36m_extrinsics else np.zeros(2)
    shift = centre + radius[:, None] * np.stack([np.cos(angle), np.sin(angle)], -1)  # (K, 2)
    cos, sin = np.cos(yaw), np.sin(yaw)
    rot = np.zeros((k, 3, 3))
    rot[:, 0, 0], rot[:, 0, 1], rot[:, 1, 0], rot[:, 1, 1], rot[:, 2, 2] = cos, -sin, sin, cos, 1.0
    local = seq - np.array([mid[0], mid[1], 0.0])
    placed = np.einsum("kab,tjb->ktja", rot, local)
    placed[..., :2] += shift[:, None, None, :]

    # aim points: (K, C, T, 3), the (smoothed) pelvis plus a per-camera offset
    pelvis = placed[:, :, 0]  # (K, T, 3)
    jitter = rng.normal(0.0, rig.aim_jitter, size=(k, c, 1, 3))
    if rig.moving:
        window = max(1, int(round(rig.follow_lag * fps)))
        aim = _causal_mean(pelvis, window, axis=1)[:, None] + jitter
    else:
        aim = np.broadcast_to(pelvis.mean(1)[:, None, None], (k, c, 1, 3)) + jitter
    hub = pelvis.mean(1)[:, None, None]  # what orbit cameras are placed around: (K, 1, 1, 3)

    if rig.h36m_extrinsics:
        quat = np.array([e[0] for e in H36M_S1_EXTRINSICS[:c]], dtype=np.float64)
        position = np.array([e[1] for e in H36M_S1_EXTRINSICS[:c]], dtype=np.float64)
        position = np.broadcast_to(position[None, :, None], (k, c, 1, 3))
        if rig.moving:
            rel = position - hub
            az = np.broadcast_to(np.arctan2(rel[..., 1], rel[..., 0]), (k, c, t))
            quat = _look_at(np.broadcast_to(position, (k, c, t, 3)), aim, az)
        else:
            quat = np.broadcast_to(quat[None, :, None], (k, c, 1, 4))
    else:
        az = np.radians(_uniform(rng, rig.azimuth_range, (k, c))) + yaw[:, None]
        el = np.radians(_uniform(rng, rig.elevation_range, (k, c)))
        dist = _uniform(rng, rig.distance_range, (k, c))
        if rig.moving:
            speed = np.radians(_uniform(rng, rig.orbit_speed_range, (k, c)))
            az = az[..., None] + speed[..., None] * (np.arange(t) / fps)  # (K, C, T)
        else:
            az = az[..., None]  # (K, C, 1)
        el, dist = el[..., None], dist[..., None]
        offset = dist[..., None] * np.stack(
            [np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el) * np.ones_like(az)], -1
        )
        shape = np.broadcast_shapes(offset.shape, aim.shape)  # (K, C, T, 3), T = 1 when static
        position = np.broadcast_to(hub + offset, shape)
        quat = _look_at(position, np.broadcast_to(aim, shape), np.broadcast_to(az, shape[:-1]))

    # intrinsics in pixels, then normalized
    scale = _uniform(rng, rig.focal_scale_range, (k, c))
    if rig.h36m_intrinsics:
        which = np.broadcast_to(np.arange(c), (k, c)) if rig.h36m_extrinsics else rng.integers(0, 4, (k, c))
        table = np.array([cam[2] for cam in H36M_CAMERAS], dtype=np.float64)
        sizes = np.array([cam[1] for cam in H36M_CAMERAS], dtype=np.float64)
        pixel = table[which].copy()
        size = sizes[which]
    else:
        w, h = rig.image_size
        pixel = np.zeros((k, c, 9))
        pixel[..., 0:2] = H36M_MEAN_FOCAL * w / 1000.0
        pixel[..., 2:4] = (w / 2, h / 2)
        size = np.broadcast_to(np.array([w, h], dtype=np.float64), (k, c, 2)).copy()
    pixel[..., 0:2] *= scale[..., None]
    intr = normalize_intrinsics(
        torch.from_numpy(pixel), torch.from_numpy(size[..., 0]), torch.from_numpy(size[..., 1])
    ).numpy()
    # own, writable copies: render() overwrites redrawn takes in place
    return {
        "placed": placed,
        "quat": np.array(quat),
        "position": np.array(position),
        "intrinsics": intr,
        "image_size": np.array(size),
    }


def _view(draw: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Camera-frame 3D (K, C, T, J, 3), 2D (K, C, T, J, 2) and validity (K, C, T) of draws."""
    placed = draw["placed"]  # (K, T, J, 3)
    # X_c = R^T (X_w - centre) with R = R(q) camera-to-world, i.e. world_to_camera (DATA_FORMATS
    # 2.2; a test checks they agree) as one batched matmul, several times faster than
    # quaternion_rotate on broadcast (K, C, T, J) tensors.
    rot = quaternion_to_matrix(torch.from_numpy(draw["quat"]))  # (K, C, T or 1, 3, 3)
    centre = torch.from_numpy(draw["position"])[..., None, :]  # (K, C, T or 1, 1, 3)
    cam = ((torch.from_numpy(placed)[:, None] - centre) @ rot).float()
    # float32 like the stored sets, and (K, C, 1, 9) intrinsics broadcast over frames rather than
    # expanded: the projection dominated build time, and this made it ~8x faster on CPU
    uv = project(cam, torch.from_numpy(draw["intrinsics"]).float()[:, :, None])
    cam_np, uv_np = cam.numpy(), uv.numpy()
    depth = cam_np[..., 2]
    safe = np.where(depth > MIN_DEPTH, depth, 1.0)
    ratio = np.abs(cam_np[..., :2] / safe[..., None])
    aspect = (draw["image_size"][..., 1] / draw["image_size"][..., 0])[:, :, None, None]  # h / w
    ok = (
        (depth > MIN_DEPTH)
        & (ratio <= 1.0).all(-1)  # inside project()'s clamp, so the clamp never changes a point
        & (np.abs(uv_np[..., 0]) <= 1.0)
        & (np.abs(uv_np[..., 1]) <= aspect)
    )
    return {"cam": cam_np, "uv": uv_np, "valid": ok.all(-1)}


def render(
    world_seq: np.ndarray,
    rig: CameraRig,
    rng: np.random.Generator,
    takes: int = 1,
    fps: float = 50.0,
    label: str = "sequence",
) -> dict[str, np.ndarray]:
    """Film a z-up world sequence (T, J, 3) with ``takes`` random draws of ``rig``.

    Returns per-sample arrays of the schema (``pose2d``, ``pose3d``, ``root3d``,
    ``intrinsics``, ``image_size``, ``camera``, ``frame``), plus ``take`` and ``sequence``
    (the view index ``take * num_cameras + camera``, unique per take and camera) and the
    0-d ``num_dropped``. Samples are ordered by take, camera, frame. Takes in which some
    frame has a joint behind a camera (depth <= 0.1 m) or outside its image are redrawn up to
    ``rig.max_redraws`` times; frames still bad are dropped with a logged warning. ``fps``
    converts frame indices to seconds for moving cameras; ``label`` names the sequence in
    the warning.
    """
    seq = np.asarray(world_seq, dtype=np.float64)
    if seq.ndim != 3 or seq.shape[-1] != 3 or len(seq) == 0:
        raise ValueError(f"render needs a (T, J, 3) world sequence with T > 0, got shape {seq.shape}")
    if not np.isfinite(seq).all():
        raise ValueError(f"{label}: world sequence contains NaN or inf")
    if takes < 1:
        raise ValueError(f"takes must be >= 1, got {takes}")
    draw = _draw_takes(seq, rig, rng, takes, fps)
    view = _view(draw)
    for _ in range(rig.max_redraws):
        bad = np.flatnonzero(~view["valid"].all(axis=(1, 2)))
        if len(bad) == 0:
            break
        redraw = _draw_takes(seq, rig, rng, len(bad), fps)
        review = _view(redraw)
        for key in draw:
            draw[key][bad] = redraw[key]
        for key in view:
            view[key][bad] = review[key]

    k, c, t = view["valid"].shape
    keep = view["valid"].reshape(-1)
    dropped = int((~keep).sum())
    if dropped:
        log.warning(
            "%s: dropped %d of %d frames with joints behind a camera or outside the image after %d redraws",
            label,
            dropped,
            keep.size,
            rig.max_redraws,
        )
    cam = view["cam"].reshape(k * c * t, *view["cam"].shape[3:])[keep]
    root = cam[:, 0]
    ids = np.indices((k, c, t)).reshape(3, -1)[:, keep]
    intr = np.broadcast_to(draw["intrinsics"][:, :, None], (k, c, t, 9)).reshape(-1, 9)[keep]
    size = np.broadcast_to(draw["image_size"][:, :, None], (k, c, t, 2)).reshape(-1, 2)[keep]
    return {
        "pose2d": view["uv"].reshape(k * c * t, -1, 2)[keep],
        "pose3d": cam - root[:, None],
        "root3d": root,
        "intrinsics": intr,
        "image_size": size,
        "camera": ids[1],
        "frame": ids[2],
        "take": ids[0],
        "sequence": ids[0] * c + ids[1],
        "num_dropped": np.array(dropped),
    }
