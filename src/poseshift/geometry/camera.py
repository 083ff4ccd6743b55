"""Cameras: the H36M/VideoPose3D projection model, pinhole projection and 2D normalization.

Intrinsics travel as a 9-vector ``[fx, fy, cx, cy, k1, k2, k3, p1, p2]``. In training
code they are *screen-normalized* (``f_n = 2 f / w``, ``c_n`` normalized like a point,
distortion unchanged; DATA_FORMATS.md 2.4), so projecting camera-frame metres gives
screen-normalized 2D directly.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from poseshift.geometry.rotations import quaternion_rotate
from poseshift.geometry.skeleton import H36M17, Skeleton

INTRINSICS_DIM = 9


def _check_intrinsics(intrinsics: torch.Tensor) -> None:
    if intrinsics.shape[-1] != INTRINSICS_DIM:
        raise ValueError(
            "intrinsics must end in 9 values [fx, fy, cx, cy, k1, k2, k3, p1, p2], "
            f"got shape {tuple(intrinsics.shape)}"
        )


def project(points: torch.Tensor, intrinsics: torch.Tensor, clamp: bool = True) -> torch.Tensor:
    """Project camera-frame points (..., J, 3) with distortion to (..., J, 2).

    ``intrinsics`` is (..., 9) and broadcasts over the joint axis. The model is
    VideoPose3D's: radial k1..k3 and tangential p1, p2. With ``clamp`` the normalized
    image coordinates X/Z, Y/Z are clamped to [-1, 1] as the reference code does,
    which keeps the polynomial from exploding for points far off-axis.
    """
    _check_intrinsics(intrinsics)
    k = intrinsics[..., None, :]  # broadcast over joints
    f, c = k[..., 0:2], k[..., 2:4]
    radial, tangential = k[..., 4:7], k[..., 7:9]
    xy = points[..., :2] / _safe_depth(points[..., 2:3])
    if clamp:
        xy = xy.clamp(-1, 1)
    r2 = (xy * xy).sum(-1, keepdim=True)
    rad = 1 + radial[..., 0:1] * r2 + radial[..., 1:2] * r2**2 + radial[..., 2:3] * r2**3
    tan = (tangential * xy).sum(-1, keepdim=True)
    xy_d = xy * (rad + tan) + tangential * r2
    return f * xy_d + c


def _safe_depth(z: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Depths with |z| < eps replaced by eps: a point on the camera plane (a generator's
    ``t_z = raw**2`` can underflow to 0) would make x / z infinite and, through the clamp, its
    gradient NaN (0 * inf). Every other depth is used as it is."""
    return torch.where(z.abs() < eps, torch.full_like(z, eps), z)


def project_pinhole(points: torch.Tensor, intrinsics: torch.Tensor) -> torch.Tensor:
    """Project camera-frame points (..., J, 3) without distortion; intrinsics (..., >=4)."""
    k = intrinsics[..., None, :]
    return k[..., 0:2] * points[..., :2] / points[..., 2:3] + k[..., 2:4]


def normalize_screen(
    uv: torch.Tensor, width: torch.Tensor | float, height: torch.Tensor | float
) -> torch.Tensor:
    """Pixels (..., 2) to screen-normalized coordinates; both axes are divided by the width.

    ``width``/``height`` broadcast against ``uv[..., 0]`` (pass (B, 1) for per-sample sizes
    over (B, J, 2)).
    """
    w = torch.as_tensor(width, dtype=uv.dtype, device=uv.device)
    h = torch.as_tensor(height, dtype=uv.dtype, device=uv.device)
    return torch.stack([2 * uv[..., 0] / w - 1, 2 * uv[..., 1] / w - h / w], dim=-1)


def frobenius_normalize(pose2d: torch.Tensor, root: int = 0, eps: float = 1e-8) -> torch.Tensor:
    """Root-centre 2D poses (..., J, 2) and divide each by its Frobenius norm.

    AdaptPose's 2D normalization for Ski-Pose (its crops are centred on the athlete, so position
    and scale carry no information); the same as ``data_modules.common.frobenius_normalize``.
    """
    centred = pose2d - pose2d[..., root : root + 1, :]
    norm = torch.linalg.vector_norm(centred, dim=(-2, -1), keepdim=True)
    return centred / norm.clamp_min(eps)


def unnormalize_screen(
    xy: torch.Tensor, width: torch.Tensor | float, height: torch.Tensor | float
) -> torch.Tensor:
    """Inverse of :func:`normalize_screen`: screen-normalized (..., 2) back to pixels."""
    w = torch.as_tensor(width, dtype=xy.dtype, device=xy.device)
    h = torch.as_tensor(height, dtype=xy.dtype, device=xy.device)
    return torch.stack([(xy[..., 0] + 1) * w / 2, (xy[..., 1] + h / w) * w / 2], dim=-1)


def add_pixel_noise(
    pose2d: torch.Tensor,
    image_width: torch.Tensor,
    sigma_px: float,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Screen-normalized 2D (B, ..., 2) plus Gaussian noise of ``sigma_px`` pixels per coordinate.

    Screen normalization divides both axes by the image width w (``u_n = 2u/w - 1``), so one
    pixel is ``2/w`` normalized units: the noise of sample b has standard deviation
    ``2 sigma_px / w_b``, with ``image_width`` (B,) the samples' widths in pixels. Draws come
    from ``generator`` (on the poses' device) when given.
    """
    shape = (pose2d.shape[0],) + (1,) * (pose2d.dim() - 1)
    std = (2.0 * sigma_px / image_width.to(pose2d.dtype)).reshape(shape)
    noise = torch.randn(pose2d.shape, generator=generator, device=pose2d.device, dtype=pose2d.dtype)
    return pose2d + noise * std


def normalize_intrinsics(
    intrinsics: torch.Tensor, width: torch.Tensor | float, height: torch.Tensor | float
) -> torch.Tensor:
    """Pixel intrinsics (..., 9) to screen-normalized ones (f scaled by 2/w, c like a point)."""
    _check_intrinsics(intrinsics)
    w = torch.as_tensor(width, dtype=intrinsics.dtype, device=intrinsics.device)[..., None]
    f = intrinsics[..., 0:2] * 2 / w
    c = normalize_screen(intrinsics[..., 2:4], width, height)
    return torch.cat([f, c, intrinsics[..., 4:]], dim=-1)


def world_to_camera(
    points: torch.Tensor, orientation: torch.Tensor, translation: torch.Tensor
) -> torch.Tensor:
    """World points (..., J, 3) into a camera's frame.

    ``orientation`` (..., 4) is the H36M quaternion (w, x, y, z) rotating camera-frame
    vectors into the world; ``translation`` (..., 3) is the camera centre in the world.
    """
    q_inv = orientation * orientation.new_tensor([1.0, -1.0, -1.0, -1.0])
    return quaternion_rotate(q_inv[..., None, :], points - translation[..., None, :])


def camera_to_world(
    points: torch.Tensor, orientation: torch.Tensor, translation: torch.Tensor
) -> torch.Tensor:
    """Inverse of :func:`world_to_camera`."""
    return quaternion_rotate(orientation[..., None, :], points) + translation[..., None, :]


def root_relative(pose: torch.Tensor, root: int = 0) -> torch.Tensor:
    """Subtract the root joint from every joint of (..., J, D) poses."""
    return pose - pose[..., root : root + 1, :]


# Human3.6M intrinsics in pixels (DATA_FORMATS.md 3.4), shared by all subjects:
# id, (width, height), [fx, fy, cx, cy, k1, k2, k3, p1, p2].
H36M_CAMERAS: tuple[tuple[str, tuple[int, int], tuple[float, ...]], ...] = (
    (
        "54138969",
        (1000, 1002),
        (
            1145.0494384765625,
            1143.7811279296875,
            512.54150390625,
            515.4514770507812,
            -0.20709891617298126,
            0.24777518212795258,
            -0.0030751503072679043,
            -0.0009756988729350269,
            -0.00142447161488235,
        ),
    ),
    (
        "55011271",
        (1000, 1000),
        (
            1149.6756591796875,
            1147.5916748046875,
            508.8486328125,
            508.0649108886719,
            -0.1942136287689209,
            0.2404085397720337,
            0.006819975562393665,
            -0.0016190266469493508,
            -0.0027408944442868233,
        ),
    ),
    (
        "58860488",
        (1000, 1000),
        (
            1149.1407470703125,
            1148.7989501953125,
            519.8158569335938,
            501.40264892578125,
            -0.2083381861448288,
            0.25548800826072693,
            -0.0024604974314570427,
            0.0014843869721516967,
            -0.0007599993259645998,
        ),
    ),
    (
        "60457274",
        (1000, 1002),
        (
            1145.5113525390625,
            1144.77392578125,
            514.9682006835938,
            501.88201904296875,
            -0.198384091258049,
            0.21832367777824402,
            -0.008947807364165783,
            -0.0005872055771760643,
            -0.0018133620033040643,
        ),
    ),
)

# S1 extrinsics (DATA_FORMATS.md 3.5): camera-to-world quaternion (w, x, y, z) and centre in metres.
# Used to place virtual cameras the way H36M's are placed around the subject.
H36M_S1_EXTRINSICS: tuple[tuple[tuple[float, float, float, float], tuple[float, float, float]], ...] = (
    (
        (0.1407056450843811, -0.1500701755285263, -0.755240797996521, 0.6223280429840088),
        (1.8411070556640625, 4.95528466796875, 1.5634454345703125),
    ),
    (
        (0.6157187819480896, -0.764836311340332, -0.14833825826644897, 0.11794740706682205),
        (1.761278564453125, -5.078006835937500, 1.6062650146484375),
    ),
    (
        (0.14651472866535187, -0.14647851884365082, 0.7653023600578308, -0.6094175577163696),
        (-1.8467777099609375, 5.21504638671875, 1.491972412109375),
    ),
    (
        (0.5834008455276489, -0.7853162288665771, 0.14548823237419128, -0.14749594032764435),
        (-1.7947896728515625, -3.722698974609375, 1.5748927001953125),
    ),
)


def h36m_intrinsics(normalized: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """The four H36M cameras as ((4, 9) intrinsics, (4, 2) image sizes (w, h))."""
    k = torch.tensor([c[2] for c in H36M_CAMERAS], dtype=torch.float64)
    size = torch.tensor([c[1] for c in H36M_CAMERAS], dtype=torch.float64)
    if normalized:
        k = normalize_intrinsics(k, size[:, 0:1].squeeze(-1), size[:, 1:2].squeeze(-1))
    return k.float(), size.float()


def body_frame_viewpoint(
    pose: torch.Tensor, skeleton: Skeleton = H36M17
) -> tuple[torch.Tensor, torch.Tensor]:
    """Azimuth and elevation (deg) of the camera seen from the body of absolute poses (N, J, 3).

    Body frame: x from the left to the right hip, y up the spine (pelvis -> thorax, made
    orthogonal to x), z = y cross x (the facing direction). The camera sits at the origin, so a
    subject facing it is at azimuth 0, elevation 0.
    """
    r_hip, l_hip = skeleton.index("r_hip"), skeleton.index("l_hip")
    thorax = skeleton.index("thorax")
    x = F.normalize(pose[:, r_hip] - pose[:, l_hip], dim=-1)
    up = pose[:, thorax] - pose[:, 0]
    y = F.normalize(up - (up * x).sum(-1, keepdim=True) * x, dim=-1)
    z = torch.cross(y, x, dim=-1)  # facing direction: up x right
    cam = F.normalize(-pose[:, 0], dim=-1)
    cx, cy, cz = (cam * x).sum(-1), (cam * y).sum(-1), (cam * z).sum(-1)
    return torch.rad2deg(torch.atan2(cx, cz)), torch.rad2deg(torch.asin(cy.clamp(-1, 1)))


def estimate_root(
    pose3d_rel: np.ndarray, pose2d: np.ndarray, intrinsics: np.ndarray, exclude: tuple[int, ...] = ()
) -> np.ndarray:
    """Camera-frame root positions (N, 3) from root-relative 3D, 2D and pinhole intrinsics (numpy).

    Files that store only root-relative 3D (PoseAug's 3DHP test, Ski) lose the root; it is
    recovered as the translation t minimizing the reprojection error in the linearized
    pinhole equations ``f (X_j + t_x) = (u_j - c)(Z_j + t_z)`` (least squares over joints,
    solved for all samples at once). Exact when 2D is an undistorted projection of the 3D.
    ``exclude`` leaves out joints that were interpolated rather than measured.
    """
    if exclude:
        keep = [j for j in range(pose2d.shape[1]) if j not in exclude]
        pose3d_rel, pose2d = pose3d_rel[:, keep], pose2d[:, keep]
    f = intrinsics[:, None, 0:2].astype(np.float64)
    c = intrinsics[:, None, 2:4].astype(np.float64)
    d = pose2d.astype(np.float64) - c  # (N, J, 2)
    p = pose3d_rel.astype(np.float64)
    n, j = d.shape[:2]
    a = np.zeros((n, j, 2, 3))
    a[..., 0, 0] = f[..., 0]
    a[..., 1, 1] = f[..., 1]
    a[..., :, 2] = -d
    b = d * p[..., 2:3] - f * p[..., :2]
    a = a.reshape(n, 2 * j, 3)
    b = b.reshape(n, 2 * j)
    ata = a.transpose(0, 2, 1) @ a
    atb = (a.transpose(0, 2, 1) @ b[..., None])[..., 0]
    return np.linalg.solve(ata, atb[..., None])[..., 0].astype(np.float32)
