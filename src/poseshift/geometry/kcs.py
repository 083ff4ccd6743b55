"""Kinematic chain space (KCS) features for pose discriminators.

* :func:`kcs` is Wandt et al.'s KCS, the Gram matrix of the bone vectors. With bones as
  rows (B, 3) it is ``B Bᵀ``; Deng et al. write ``BᵀB`` with bones as columns, the same matrix.
  The diagonal holds squared bone lengths, off-diagonal entries the angles scaled by lengths.
* :func:`part_kcs` is PoseAug's part-aware variant (METHODS.md 2.2): unit-length bones, one
  Gram matrix per body part with the other bones zeroed, so it never sees bone lengths.
* :func:`weighted_kcs` is Deng et al.'s wKCS (METHODS.md 6.2): KCS damped by the graph
  distance between bones.
"""

from __future__ import annotations

from functools import lru_cache

import torch

from poseshift.geometry.bones import joints_to_bones
from poseshift.geometry.skeleton import H36M17, Skeleton

_EPS = 1e-8


def _as_bones(pose_or_bones: torch.Tensor, skeleton: Skeleton) -> torch.Tensor:
    n = pose_or_bones.shape[-2] if pose_or_bones.dim() >= 2 else -1
    if n == skeleton.num_joints:
        return joints_to_bones(pose_or_bones, skeleton)
    if n == skeleton.num_bones:
        return pose_or_bones
    raise ValueError(
        f"expected poses (..., {skeleton.num_joints}, D) or bones (..., {skeleton.num_bones}, D), "
        f"got shape {tuple(pose_or_bones.shape)}"
    )


def _gram(bones: torch.Tensor) -> torch.Tensor:
    return bones @ bones.transpose(-1, -2)


def kcs(pose_or_bones: torch.Tensor, skeleton: Skeleton = H36M17) -> torch.Tensor:
    """KCS matrix (..., B, B) of poses (..., J, D) or bone vectors (..., B, D).

    Invariant to translation and rotation of the pose (it only holds inner products).
    """
    return _gram(_as_bones(pose_or_bones, skeleton))


@lru_cache(maxsize=32)
def _part_mask_cpu(parts: tuple[tuple[str, tuple[int, ...]], ...], num_bones: int) -> torch.Tensor:
    mask = torch.zeros(len(parts), num_bones, dtype=torch.float64)
    for p, (name, bones) in enumerate(parts):
        if any(not 0 <= b < num_bones for b in bones):
            raise ValueError(f"part {name!r} names bones outside 0..{num_bones - 1}: {bones}")
        mask[p, list(bones)] = 1.0
    return mask


def part_mask(
    skeleton: Skeleton = H36M17, dtype: torch.dtype = torch.float32, device: torch.device | str | None = None
) -> torch.Tensor:
    """(P, B) 0/1 membership of each bone in each of ``skeleton.parts`` (in dict order)."""
    if not skeleton.parts:
        raise ValueError("this skeleton defines no body parts for part-aware KCS")
    mask = _part_mask_cpu(tuple(skeleton.parts.items()), skeleton.num_bones)
    return mask.to(dtype=dtype, device=device, copy=True)


def part_kcs(
    pose_or_bones: torch.Tensor, skeleton: Skeleton = H36M17, eps: float = _EPS, unit: bool = True
) -> torch.Tensor:
    """Part-aware KCS (..., P, B, B): one Gram matrix of *unit* bones per body part.

    Bones outside a part are zeroed, as in PoseAug's D3d input, so each matrix is mostly
    zeros; flatten the last two dims to get PoseAug's per-part feature vector. Being built
    on unit bones, the result does not depend on bone lengths (nor on rotation/translation).
    ``unit=False`` keeps the bone lengths (Wandt's KCS restricted to each part).
    """
    bones = _as_bones(pose_or_bones, skeleton)
    if unit:
        bones = bones / torch.linalg.vector_norm(bones, dim=-1, keepdim=True).clamp_min(eps)
    mask = part_mask(skeleton, dtype=bones.dtype, device=bones.device)
    masked = bones.unsqueeze(-3) * mask.unsqueeze(-1)  # (..., P, B, D)
    return _gram(masked)


@lru_cache(maxsize=32)
def _kcs_weights_cpu(parents: tuple[int, ...]) -> torch.Tensor:
    # keyed by parents because a Skeleton (with its parts dict) is unhashable and the bone
    # graph depends on nothing else
    tree = Skeleton(names=tuple(str(j) for j in range(len(parents))), parents=parents, left=(), right=())
    d = tree.bone_graph_distance().to(torch.float64)
    # d <= 1 (the bone itself and bones sharing a joint) keeps full weight; farther pairs
    # decay as tanh(1/(d-1)). The clamp avoids a division by zero in the branch torch.where drops.
    far = torch.tanh(1.0 / (d - 1.0).clamp_min(1.0))
    return torch.where(d <= 1, torch.ones_like(d), far)


def kcs_weights(
    skeleton: Skeleton = H36M17, dtype: torch.dtype = torch.float32, device: torch.device | str | None = None
) -> torch.Tensor:
    """(B, B) wKCS weights of Deng et al.: 1 for graph distance d <= 1, else tanh(1/(d-1))."""
    w = _kcs_weights_cpu(skeleton.parents)
    return w.to(dtype=dtype, device=device, copy=True)


def weighted_kcs(pose_or_bones: torch.Tensor, skeleton: Skeleton = H36M17) -> torch.Tensor:
    """Deng et al.'s weighted KCS (..., B, B): ``kcs_weights ⊙ kcs``."""
    k = kcs(pose_or_bones, skeleton)
    return k * kcs_weights(skeleton, dtype=k.dtype, device=k.device)
