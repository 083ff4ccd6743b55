"""Joints <-> bone vectors for a kinematic tree, batched over any leading dimensions.

Bone ``k`` ends at joint ``k + 1`` (see :mod:`poseshift.geometry.skeleton`) and points from
the parent to the child. Every function here is differentiable and works on tensors of
shape (..., J, D) / (..., B, D); D is 3 for poses but nothing below depends on it.
"""

from __future__ import annotations

from functools import lru_cache

import torch

from poseshift.geometry.skeleton import H36M17, Skeleton

_EPS = 1e-8


def _check_count(x: torch.Tensor, expected: int, what: str, name: str) -> None:
    if x.dim() < 2 or x.shape[-2] != expected:
        raise ValueError(f"{name} must have shape (..., {expected}, D) ({what}), got {tuple(x.shape)}")


@lru_cache(maxsize=32)
def _index_tensors(parents: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    children = torch.arange(1, len(parents))
    return children, torch.tensor(parents[1:])


@lru_cache(maxsize=32)
def _ancestor_matrix_cpu(parents: tuple[int, ...]) -> torch.Tensor:
    # Built once per tree with a Python walk; parents precede children, so a joint's row
    # is its parent's row plus its own bone.
    nj = len(parents)
    a = torch.zeros(nj, nj - 1, dtype=torch.float64)
    for j in range(1, nj):
        a[j] = a[parents[j]]
        a[j, j - 1] = 1.0
    return a


def ancestor_matrix(
    skeleton: Skeleton = H36M17, dtype: torch.dtype = torch.float32, device: torch.device | str | None = None
) -> torch.Tensor:
    """(J, B) 0/1 matrix A with ``A[j, b] = 1`` iff bone b lies on the path root -> j.

    ``A @ bones`` rebuilds root-at-origin joints; ``A`` is the inverse of the incidence map
    restricted to poses with the root at the origin.
    """
    # copy so callers cannot modify the cached matrix in place
    return _ancestor_matrix_cpu(skeleton.parents).to(dtype=dtype, device=device, copy=True)


def joints_to_bones(pose: torch.Tensor, skeleton: Skeleton = H36M17) -> torch.Tensor:
    """Poses (..., J, D) to bone vectors (..., B, D), child minus parent (the map H)."""
    _check_count(pose, skeleton.num_joints, "joints", "pose")
    children, parents = _index_tensors(skeleton.parents)
    dev = pose.device
    return pose.index_select(-2, children.to(dev)) - pose.index_select(-2, parents.to(dev))


def bones_to_joints(
    bones: torch.Tensor, skeleton: Skeleton = H36M17, root: torch.Tensor | None = None
) -> torch.Tensor:
    """Bone vectors (..., B, D) to poses (..., J, D), the inverse of :func:`joints_to_bones`.

    ``root`` is the position of joint 0, (..., D) or (..., 1, D) like ``pose[..., :1, :]``,
    broadcast against the leading dims; ``None`` puts the root at the origin. The chains are
    accumulated with a single matmul by :func:`ancestor_matrix`.
    """
    _check_count(bones, skeleton.num_bones, "bones", "bones")
    a = ancestor_matrix(skeleton, dtype=bones.dtype, device=bones.device)
    # einsum runs one (J, B) x (B, N) product; ``a @ bones`` broadcasts into N tiny matmuls,
    # ~9x slower on CPU for a batch of 27-frame windows
    joints = torch.einsum("jb,...bd->...jd", a, bones)
    if root is not None:
        if root.shape[-1] != bones.shape[-1]:
            raise ValueError(f"root must end in {bones.shape[-1]} coordinates, got shape {tuple(root.shape)}")
        if not (root.dim() == bones.dim() and root.shape[-2] == 1):
            root = root.unsqueeze(-2)
        joints = joints + root
    return joints


def bone_lengths(pose: torch.Tensor, skeleton: Skeleton = H36M17) -> torch.Tensor:
    """Bone lengths (..., B) of poses (..., J, D)."""
    return torch.linalg.vector_norm(joints_to_bones(pose, skeleton), dim=-1)


def _unit(v: torch.Tensor, eps: float) -> torch.Tensor:
    # clamping the norm keeps zero-length bones at zero with a finite gradient
    return v / torch.linalg.vector_norm(v, dim=-1, keepdim=True).clamp_min(eps)


def bone_directions(pose: torch.Tensor, skeleton: Skeleton = H36M17, eps: float = _EPS) -> torch.Tensor:
    """Unit bone vectors (..., B, D) of poses (..., J, D); zero-length bones stay zero."""
    return _unit(joints_to_bones(pose, skeleton), eps)


def compose_bones(directions: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Bone vectors (..., B, D) from directions (..., B, D) and lengths (..., B).

    Directions are used as given (not renormalized); lengths broadcast, so a (B,) template
    can be applied to a whole batch.
    """
    return directions * lengths.unsqueeze(-1)


def set_bone_lengths(
    pose: torch.Tensor, lengths: torch.Tensor, skeleton: Skeleton = H36M17, eps: float = _EPS
) -> torch.Tensor:
    """Poses (..., J, D) with every bone rescaled to ``lengths`` (..., B) or (B,).

    Bone directions and the root position are kept, so only the limb proportions change.
    """
    if lengths.shape[-1] != skeleton.num_bones:
        raise ValueError(f"lengths must end in {skeleton.num_bones} bones, got shape {tuple(lengths.shape)}")
    bones = compose_bones(bone_directions(pose, skeleton, eps), lengths)
    return bones_to_joints(bones, skeleton, root=pose[..., 0, :])
