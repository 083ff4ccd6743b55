"""Functional core of the pose metrics: stateless per-joint and per-sample values.

The metric classes in :mod:`poseshift.metrics` accumulate these over batches (exactly under
DDP); training code uses the same functions directly, e.g. PoseAug's and AdaptPose's feedback
losses are built on :func:`joint_errors`. Inputs are poses (..., J, 3) in metres.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from poseshift.geometry.procrustes import procrustes_align

MM_PER_M = 1000.0
AUC_THRESHOLDS_MM: tuple[float, ...] = tuple(float(t) for t in range(0, 151, 5))


def joint_errors(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Euclidean distance per joint (..., J), in the unit of the inputs (not squared)."""
    return torch.linalg.vector_norm(pred - target, dim=-1)


def select_joints(pose: torch.Tensor, joints: Sequence[int] | None) -> torch.Tensor:
    """The joints ``joints`` of (..., J, D) poses (all of them for ``None``)."""
    if joints is None:
        return pose
    return pose.index_select(-2, torch.as_tensor(tuple(joints), device=pose.device))


def mpjpe(
    pred: torch.Tensor, target: torch.Tensor, joints: Sequence[int] | None = None, root_relative: bool = True
) -> torch.Tensor:
    """Per-sample mean per-joint position error (...,) in mm (Protocol #1)."""
    if root_relative:
        pred, target = pred - pred[..., :1, :], target - target[..., :1, :]
    return joint_errors(select_joints(pred, joints), select_joints(target, joints)).mean(-1) * MM_PER_M


def pa_mpjpe(
    pred: torch.Tensor, target: torch.Tensor, joints: Sequence[int] | None = None, root_relative: bool = True
) -> torch.Tensor:
    """Per-sample MPJPE (...,) in mm after similarity Procrustes alignment on ``joints`` (Protocol #2)."""
    if root_relative:
        pred, target = pred - pred[..., :1, :], target - target[..., :1, :]
    pred, target = select_joints(pred, joints), select_joints(target, joints)
    return joint_errors(procrustes_align(pred, target), target).mean(-1) * MM_PER_M


def pck_from_errors(errors_mm: torch.Tensor, threshold: float = 150.0) -> torch.Tensor:
    """Per-sample percentage (...,) of joints whose error (..., J) in mm is strictly below ``threshold``."""
    return (errors_mm < threshold).to(errors_mm.dtype).mean(dim=-1) * 100.0


def auc_from_errors(errors_mm: torch.Tensor, thresholds: Sequence[float] = AUC_THRESHOLDS_MM) -> torch.Tensor:
    """Per-sample mean over ``thresholds`` (...,) of the percentage of joints with error strictly below it.

    As the official MPI-INF-3DHP evaluator and the PoseAug/AdaptPose helper: a joint counts at
    threshold t only when its error is < t, so the 0 mm point is always 0 and a perfect
    prediction scores 100 * 30/31 = 96.77 over the default 0, 5, ..., 150 mm.
    """
    thr = torch.as_tensor(tuple(thresholds), dtype=errors_mm.dtype, device=errors_mm.device)
    return (errors_mm.unsqueeze(-1) < thr).to(errors_mm.dtype).mean(dim=(-2, -1)) * 100.0


__all__ = [
    "AUC_THRESHOLDS_MM",
    "MM_PER_M",
    "auc_from_errors",
    "joint_errors",
    "mpjpe",
    "pa_mpjpe",
    "pck_from_errors",
    "select_joints",
]
