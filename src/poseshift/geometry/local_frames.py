"""Hierarchical local-frame pose representation (EvoSkeleton, the paper's Algorithm 2), batched.

A pose is split into a *torso* (pelvis->hips, pelvis->spine, spine->thorax, thorax->shoulders),
kept as global bone directions, and ten *limb* bones, each expressed as a unit direction in
a local coordinate frame attached at its parent joint:

* first-level limbs (thighs, upper arms, thorax->neck) use a torso frame built by
  Gram-Schmidt: the upper frame from ``r_shoulder - l_shoulder`` and the back bone
  ``spine - thorax``, the lower frame from ``r_hip - l_hip`` and the back bone;
* second-level limbs (shins, forearms, neck->head) use a frame built from their parent
  bone's direction ``u``, a reference direction ``a`` fixed in the torso frame and
  ``v = normalize(a x u)``, ``w = u x v`` (Algorithm 2, lines 9-12).

Because every frame is a function of the torso and the parent limbs only, a pose can be
rebuilt from (torso directions, limb local directions, all bone lengths, root), and
:func:`from_local` inverts :func:`to_local` up to floating-point rounding. Editing a limb's
local direction (crossover, mutation) moves its whole sub-tree rigidly, and rotating the
torso directions rotates the whole body. Everything is batched over leading dimensions.

The reference directions ``a`` are chosen along axes that the parent limb rarely points
along in either sense, so the frame stays far from its ``a x u = 0`` singularity on common
poses; a fallback axis keeps it defined (and the round trip exact) even there.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from poseshift.geometry.bones import bones_to_joints, joints_to_bones
from poseshift.geometry.skeleton import H36M17, Skeleton

_EPS = 1e-8

# H36M17 bone ids (bone k ends at joint k + 1)
TORSO_BONES: tuple[int, ...] = (0, 3, 6, 7, 10, 13)
"""pelvis->r_hip, pelvis->l_hip, pelvis->spine, spine->thorax, thorax->l_shoulder, thorax->r_shoulder."""
LIMB_BONES: tuple[int, ...] = (1, 2, 4, 5, 8, 9, 11, 12, 14, 15)
"""r_thigh, r_shin, l_thigh, l_shin, neck, head, l_upper_arm, l_forearm, r_upper_arm, r_forearm."""
LIMB_NAMES: dict[int, str] = {
    1: "r_thigh",
    2: "r_shin",
    4: "l_thigh",
    5: "l_shin",
    8: "neck",
    9: "head",
    11: "l_upper_arm",
    12: "l_forearm",
    14: "r_upper_arm",
    15: "r_forearm",
}
# first-level limb -> torso frame ("upper" / "lower")
FIRST_LEVEL: dict[int, str] = {1: "lower", 4: "lower", 8: "upper", 11: "upper", 14: "upper"}
# second-level limb -> parent limb
SECOND_LEVEL: dict[int, int] = {2: 1, 5: 4, 9: 8, 12: 11, 15: 14}
# Reference direction ``a`` of each second-level limb, in its torso frame's coordinates
# (e1 = towards the right shoulder/hip, e2 = down the back bone, e3 = e1 x e2 = forward).
# The frame is singular where the parent limb is parallel *or antiparallel* to ``a``, so the
# axis is chosen with both ends rare: the thighs' and neck's sideways-horizontal axis (the
# thigh hanging down is then far from it and the knee bends in the (u, v) plane), and for
# the upper arms the horizontal back-medial / front-lateral diagonal.
REFERENCE_DIRECTIONS: dict[int, tuple[float, float, float]] = {
    2: (1.0, 0.0, 0.0),  # r_shin, parent r_thigh
    5: (1.0, 0.0, 0.0),  # l_shin, parent l_thigh
    9: (1.0, 0.0, 0.0),  # head, parent neck
    12: (0.7071067811865476, 0.0, -0.7071067811865476),  # l_forearm: back towards the right side
    15: (-0.7071067811865476, 0.0, -0.7071067811865476),  # r_forearm: back towards the left side
}
# used instead of ``a`` when the parent limb is (nearly) parallel to it
FALLBACK_DIRECTION: tuple[float, float, float] = (0.0, 0.0, 1.0)


@dataclass
class LocalPose:
    """A batch of poses in the hierarchical representation (leading dims ``...``).

    Attributes:
        directions: (..., B, 3) unit bone directions: torso bones (``TORSO_BONES``) in the
            global frame, limb bones (``LIMB_BONES``) in their local frames.
        lengths: (..., B) bone lengths.
        root: (..., 3) position of joint 0.
    """

    directions: torch.Tensor
    lengths: torch.Tensor
    root: torch.Tensor

    def index(self, idx: torch.Tensor | slice) -> LocalPose:
        """The poses selected by ``idx`` along the first dimension."""
        return LocalPose(self.directions[idx], self.lengths[idx], self.root[idx])

    def __len__(self) -> int:
        return self.directions.shape[0]


def _unit(v: torch.Tensor) -> torch.Tensor:
    return v / torch.linalg.vector_norm(v, dim=-1, keepdim=True).clamp_min(_EPS)


def gram_schmidt(v1: torch.Tensor, v2: torch.Tensor) -> torch.Tensor:
    """Orthonormal frames (..., 3, 3) whose columns are ``v1``, ``v2`` orthogonalized, and their cross.

    This is GramSchmidt(v1, v2, v1 x v2) of Algorithm 2: the third input only fixes the
    handedness, so the third column is ``e1 x e2``.
    """
    e1 = _unit(v1)
    e2 = _unit(v2 - (v2 * e1).sum(-1, keepdim=True) * e1)
    e3 = torch.linalg.cross(e1, e2, dim=-1)
    return torch.stack([e1, e2, e3], dim=-1)


def _check_skeleton(skeleton: Skeleton) -> None:
    if skeleton.parents != H36M17.parents:
        raise ValueError("local frames are defined for the H36M17 joint layout only")


def torso_frames(torso_bones: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(upper, lower) torso frames (..., 3, 3) from all 16 global bone vectors (..., 16, 3).

    Only the torso bones are read: ``r_shoulder - l_shoulder = b13 - b10``, the back bone
    ``spine - thorax = -b7`` and ``r_hip - l_hip = b0 - b3``.
    """
    back = -torso_bones[..., 7, :]
    upper = gram_schmidt(torso_bones[..., 13, :] - torso_bones[..., 10, :], back)
    lower = gram_schmidt(torso_bones[..., 0, :] - torso_bones[..., 3, :], back)
    return upper, lower


def child_frame(parent_dir: torch.Tensor, torso_frame: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Frame (..., 3, 3) of a second-level limb: columns ``u``, ``normalize(a x u)``, ``u x v``.

    ``parent_dir`` (..., 3) is the parent limb's global direction, ``reference`` the (3,)
    direction ``a`` in the torso frame's coordinates.
    """
    u = _unit(parent_dir)
    # R @ a for a constant a: a weighted sum of the frame's columns
    a = (torso_frame * reference.to(parent_dir)).sum(-1)
    n = torch.linalg.cross(a, u, dim=-1)
    fallback = torch.linalg.cross(
        (torso_frame * parent_dir.new_tensor(FALLBACK_DIRECTION)).sum(-1), u, dim=-1
    )
    degenerate = torch.linalg.vector_norm(n, dim=-1, keepdim=True) < 1e-6
    v = _unit(torch.where(degenerate, fallback, n))
    w = torch.linalg.cross(u, v, dim=-1)
    return torch.stack([u, v, w], dim=-1)


def _limb_frames(
    global_dirs: torch.Tensor, upper: torch.Tensor, lower: torch.Tensor, bone: int
) -> torch.Tensor:
    if bone in FIRST_LEVEL:
        return upper if FIRST_LEVEL[bone] == "upper" else lower
    parent = SECOND_LEVEL[bone]
    torso = upper if FIRST_LEVEL[parent] == "upper" else lower
    ref = torch.tensor(REFERENCE_DIRECTIONS[bone], dtype=global_dirs.dtype, device=global_dirs.device)
    return child_frame(global_dirs[..., parent, :], torso, ref)


def bone_frames(pose: torch.Tensor, skeleton: Skeleton = H36M17) -> torch.Tensor:
    """Local frame of every bone (..., 16, 3, 3); torso bones get the identity (global frame)."""
    _check_skeleton(skeleton)
    bones = joints_to_bones(pose, skeleton)
    dirs = _unit(bones)
    upper, lower = torso_frames(bones)
    eye = torch.eye(3, dtype=pose.dtype, device=pose.device).expand(*pose.shape[:-2], 3, 3)
    frames = [eye] * skeleton.num_bones
    for b in LIMB_BONES:
        frames[b] = _limb_frames(dirs, upper, lower, b)
    return torch.stack(frames, dim=-3)


def to_local(pose: torch.Tensor, skeleton: Skeleton = H36M17) -> LocalPose:
    """Joint positions (..., 17, 3) to the hierarchical representation (Algorithm 2)."""
    _check_skeleton(skeleton)
    bones = joints_to_bones(pose, skeleton)
    lengths = torch.linalg.vector_norm(bones, dim=-1)
    dirs = bones / lengths.unsqueeze(-1).clamp_min(_EPS)
    upper, lower = torso_frames(bones)
    local = dirs.clone()
    for b in LIMB_BONES:
        frame = _limb_frames(dirs, upper, lower, b)
        # b_local = R^T b_global; elementwise, since batched 3x3 matmuls are slow on CPU
        local[..., b, :] = (frame * dirs[..., b, :, None]).sum(-2)
    return LocalPose(local, lengths, pose[..., 0, :].clone())


def from_local(local: LocalPose, skeleton: Skeleton = H36M17) -> torch.Tensor:
    """Inverse of :func:`to_local`: the hierarchical representation back to joints (..., 17, 3).

    Limb directions are renormalized first, so slightly non-unit edits are harmless.
    """
    _check_skeleton(skeleton)
    dirs = _unit(local.directions)
    torso_bones = dirs * local.lengths.unsqueeze(-1)
    upper, lower = torso_frames(torso_bones)
    glob = dirs.clone()
    # first-level limbs before their children: a child's frame needs its parent's global direction
    for b in (*FIRST_LEVEL, *SECOND_LEVEL):
        frame = _limb_frames(glob, upper, lower, b)
        glob[..., b, :] = (frame * dirs[..., b, None, :]).sum(-1)
    bones = glob * local.lengths.unsqueeze(-1)
    return bones_to_joints(bones, skeleton, root=local.root)


def to_spherical(v: torch.Tensor) -> torch.Tensor:
    """Vectors (..., 3) to (r, theta, phi) (..., 3): theta in (-pi, pi], phi in [-pi/2, pi/2].

    ``theta = atan2(y, x)`` and ``phi = atan2(z, sqrt(x^2 + y^2))``, the reference's convention.
    """
    x, y, z = v.unbind(-1)
    rho = torch.sqrt(x * x + y * y)
    return torch.stack([torch.sqrt(rho * rho + z * z), torch.atan2(y, x), torch.atan2(z, rho)], dim=-1)


def from_spherical(s: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`to_spherical`: (r, theta, phi) (..., 3) to vectors (..., 3)."""
    r, theta, phi = s.unbind(-1)
    cp = torch.cos(phi)
    return torch.stack([r * cp * torch.cos(theta), r * cp * torch.sin(theta), r * torch.sin(phi)], dim=-1)


def limb_angles(local: LocalPose) -> torch.Tensor:
    """(theta, phi) (..., 10, 2) in radians of the limb bones, in ``LIMB_BONES`` order."""
    return to_spherical(local.directions[..., list(LIMB_BONES), :])[..., 1:]
