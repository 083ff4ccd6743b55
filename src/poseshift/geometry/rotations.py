"""Rotation representations, batched over any leading dimensions and differentiable.

Conventions: quaternions are (w, x, y, z); matrices act on column vectors
(``v' = R @ v``), so for row-vector poses of shape (..., J, 3) use ``X @ R.mT``.
Euler angles are intrinsic rotations applied in the order given by ``convention``.
"""

from __future__ import annotations

import torch

_EPS = 1e-8


def _skew(v: torch.Tensor) -> torch.Tensor:
    """(..., 3) -> (..., 3, 3) cross-product matrix."""
    x, y, z = v.unbind(-1)
    o = torch.zeros_like(x)
    return torch.stack([o, -z, y, z, o, -x, -y, x, o], dim=-1).reshape(*v.shape[:-1], 3, 3)


def axis_angle_to_matrix(aa: torch.Tensor) -> torch.Tensor:
    """Rodrigues' formula: axis-angle vectors (..., 3), angle = norm, to matrices (..., 3, 3).

    Uses the Taylor expansion near zero so the gradient is finite at the identity.
    """
    theta2 = (aa * aa).sum(-1, keepdim=True)[..., None]  # (..., 1, 1)
    theta = theta2.clamp_min(_EPS).sqrt()
    small = theta2 < 1e-6
    a = torch.where(small, 1 - theta2 / 6, torch.sin(theta) / theta)
    b = torch.where(small, 0.5 - theta2 / 24, (1 - torch.cos(theta)) / theta2.clamp_min(_EPS))
    k = _skew(aa)
    eye = torch.eye(3, dtype=aa.dtype, device=aa.device).expand(k.shape)
    return eye + a * k + b * (k @ k)


def rotate_about_axis(v: torch.Tensor, axis: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    """Rotate vectors ``v`` (..., 3) about ``axis`` (..., 3) by ``angle`` (...) radians (Rodrigues).

    The axis is normalized here (a zero axis leaves ``v`` unchanged); all three broadcast. Rotating
    the vectors directly costs a fraction of building (..., 3, 3) matrices first, which matters
    when every bone of every frame of a batch of windows gets its own rotation. Mixed dtypes (a
    network's bf16 output under autocast turning float32 bones) compute in the wider one.
    """
    dtype = torch.promote_types(v.dtype, axis.dtype)
    v, axis, angle = v.to(dtype), axis.to(dtype), angle.to(dtype)
    k = axis / torch.linalg.vector_norm(axis, dim=-1, keepdim=True).clamp_min(_EPS)
    k, v = torch.broadcast_tensors(k, v)
    c, s = torch.cos(angle).unsqueeze(-1), torch.sin(angle).unsqueeze(-1)
    kv = (k * v).sum(-1, keepdim=True)
    return v * c + torch.cross(k, v, dim=-1) * s + k * kv * (1 - c)


def random_unit_vectors(
    shape: tuple[int, ...],
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Directions (*shape, 3) uniformly distributed on the sphere (normalized Gaussians)."""
    v = torch.randn(*shape, 3, generator=generator, dtype=dtype, device=device)
    return v / torch.linalg.vector_norm(v, dim=-1, keepdim=True).clamp_min(_EPS)


def matrix_to_quaternion(m: torch.Tensor) -> torch.Tensor:
    """Rotation matrices (..., 3, 3) to unit quaternions (..., 4) with w >= 0."""
    m00, m11, m22 = m[..., 0, 0], m[..., 1, 1], m[..., 2, 2]
    # four candidate solutions; pick the numerically best-conditioned one per element
    q_abs = (
        torch.stack(
            [1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22],
            dim=-1,
        )
        .clamp_min(0)
        .sqrt()
    )
    cands = torch.stack(
        [
            torch.stack(
                [
                    q_abs[..., 0] ** 2,
                    m[..., 2, 1] - m[..., 1, 2],
                    m[..., 0, 2] - m[..., 2, 0],
                    m[..., 1, 0] - m[..., 0, 1],
                ],
                -1,
            ),
            torch.stack(
                [
                    m[..., 2, 1] - m[..., 1, 2],
                    q_abs[..., 1] ** 2,
                    m[..., 1, 0] + m[..., 0, 1],
                    m[..., 0, 2] + m[..., 2, 0],
                ],
                -1,
            ),
            torch.stack(
                [
                    m[..., 0, 2] - m[..., 2, 0],
                    m[..., 1, 0] + m[..., 0, 1],
                    q_abs[..., 2] ** 2,
                    m[..., 2, 1] + m[..., 1, 2],
                ],
                -1,
            ),
            torch.stack(
                [
                    m[..., 1, 0] - m[..., 0, 1],
                    m[..., 2, 0] + m[..., 0, 2],
                    m[..., 2, 1] + m[..., 1, 2],
                    q_abs[..., 3] ** 2,
                ],
                -1,
            ),
        ],
        dim=-2,
    ) / (2 * q_abs[..., None].clamp_min(0.1))
    best = q_abs.argmax(-1)
    q = torch.gather(cands, -2, best[..., None, None].expand(*best.shape, 1, 4)).squeeze(-2)
    q = q / q.norm(dim=-1, keepdim=True)
    return torch.where(q[..., :1] < 0, -q, q)


def quaternion_to_matrix(q: torch.Tensor) -> torch.Tensor:
    """Quaternions (..., 4), (w, x, y, z), normalized first, to matrices (..., 3, 3)."""
    q = q / q.norm(dim=-1, keepdim=True).clamp_min(_EPS)
    w, x, y, z = q.unbind(-1)
    return torch.stack(
        [
            1 - 2 * (y * y + z * z),
            2 * (x * y - w * z),
            2 * (x * z + w * y),
            2 * (x * y + w * z),
            1 - 2 * (x * x + z * z),
            2 * (y * z - w * x),
            2 * (x * z - w * y),
            2 * (y * z + w * x),
            1 - 2 * (x * x + y * y),
        ],
        dim=-1,
    ).reshape(*q.shape[:-1], 3, 3)


def quaternion_rotate(q: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Rotate vectors v (..., 3) by quaternions q (..., 4) (broadcasting; mixed dtypes: the wider)."""
    dtype = torch.promote_types(q.dtype, v.dtype)
    q, v = q.to(dtype), v.to(dtype)
    q = q / q.norm(dim=-1, keepdim=True).clamp_min(_EPS)
    w, u = q[..., :1], q[..., 1:]
    uv = torch.cross(u.expand_as(v), v, dim=-1)
    return v + 2 * (w * uv + torch.cross(u.expand_as(v), uv, dim=-1))


def quaternion_slerp(q0: torch.Tensor, q1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation between unit quaternions (..., 4) at fractions t (...,)."""
    q0 = q0 / q0.norm(dim=-1, keepdim=True).clamp_min(_EPS)
    q1 = q1 / q1.norm(dim=-1, keepdim=True).clamp_min(_EPS)
    dot = (q0 * q1).sum(-1, keepdim=True)
    q1 = torch.where(dot < 0, -q1, q1)  # take the short way round
    dot = dot.abs().clamp(max=1.0)
    t = t[..., None]
    omega = torch.acos(dot)
    so = torch.sin(omega)
    near = so < 1e-6
    w0 = torch.where(near, 1 - t, torch.sin((1 - t) * omega) / so.clamp_min(_EPS))
    w1 = torch.where(near, t, torch.sin(t * omega) / so.clamp_min(_EPS))
    q = w0 * q0 + w1 * q1
    return q / q.norm(dim=-1, keepdim=True)


def matrix_to_axis_angle(m: torch.Tensor) -> torch.Tensor:
    """Rotation matrices (..., 3, 3) to axis-angle vectors (..., 3) with angle in [0, pi]."""
    q = matrix_to_quaternion(m)
    s = q[..., 1:].norm(dim=-1, keepdim=True)
    angle = 2 * torch.atan2(s, q[..., :1])
    scale = torch.where(s > 1e-6, angle / s.clamp_min(_EPS), 2 / q[..., :1].clamp_min(_EPS))
    return q[..., 1:] * scale


def _axis_rotation(axis: str, angle: torch.Tensor) -> torch.Tensor:
    c, s = torch.cos(angle), torch.sin(angle)
    o, i = torch.zeros_like(angle), torch.ones_like(angle)
    rows = {
        "x": [i, o, o, o, c, -s, o, s, c],
        "y": [c, o, s, o, i, o, -s, o, c],
        "z": [c, -s, o, s, c, o, o, o, i],
    }[axis]
    return torch.stack(rows, -1).reshape(*angle.shape, 3, 3)


def vertical_rotation(angle: torch.Tensor) -> torch.Tensor:
    """Rotations (..., 3, 3) by ``angle`` (radians, any shape) about the camera's vertical axis (y).

    poseshift's camera frame has x right, y down, z forward, so this is a turn of the subject
    in place (a yaw) when the camera is level; heights (y) are unchanged.
    """
    return _axis_rotation("y", angle)


def rotate_about_vertical(pose: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    """Turn (B, J, 3) poses about the vertical axis through their root (joint 0) by ``angle`` (B,).

    Bone lengths and every joint's height (y) are kept; the root stays where it is.
    """
    root = pose[..., :1, :]
    return (pose - root) @ vertical_rotation(angle).mT + root


def euler_to_matrix(angles: torch.Tensor, convention: str = "xyz") -> torch.Tensor:
    """Euler angles (..., 3) in radians to matrices, R = R_a(angles[0]) R_b(angles[1]) R_c(angles[2]).

    ``convention`` names the axes a, b, c (e.g. ``"xyz"``, ``"zyx"``); this is the
    intrinsic-rotation reading of the angles.
    """
    if len(convention) != 3 or set(convention) - set("xyz"):
        raise ValueError(f"euler convention must be three of 'xyz', got {convention!r}")
    mats = [_axis_rotation(ax, a) for ax, a in zip(convention, angles.unbind(-1), strict=True)]
    return mats[0] @ mats[1] @ mats[2]


def matrix_to_euler(m: torch.Tensor, convention: str = "xyz") -> torch.Tensor:
    """Inverse of :func:`euler_to_matrix` for Tait-Bryan conventions (three distinct axes).

    The middle angle lies in [-pi/2, pi/2]; at gimbal lock the split between the
    outer two angles is one of many valid choices.
    """
    if len(set(convention)) != 3 or set(convention) - set("xyz"):
        raise ValueError(f"matrix_to_euler supports Tait-Bryan conventions like 'xyz', got {convention!r}")
    i, j, k = ("xyz".index(a) for a in convention)
    # sign of the permutation (i, j, k) decides the signs in the closed form
    sign = 1.0 if (j - i) % 3 == 1 else -1.0
    b = torch.asin((sign * m[..., i, k]).clamp(-1, 1))
    a = torch.atan2(-sign * m[..., j, k], m[..., k, k])
    c = torch.atan2(-sign * m[..., i, j], m[..., i, i])
    return torch.stack([a, b, c], dim=-1)


def random_rotation(
    n: int, generator: torch.Generator | None = None, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """n uniformly distributed rotation matrices (via normalized Gaussian quaternions)."""
    q = torch.randn(n, 4, generator=generator, dtype=dtype)
    return quaternion_to_matrix(q)
