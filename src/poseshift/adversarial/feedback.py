"""The lifter's error as a training signal: PoseAug's feedback loss and AdaptPose's sample selection.

The augmentor is asked to make poses harder for the current lifter, but not too hard: the
per-sample error ratio ``L(augmented) / L(original)`` is kept inside a band. The error itself
is :func:`grouped_pose_error`, the weighted per-group mean joint error of the references
(METHODS.md 2.3), built on the metrics' :func:`~poseshift.metrics.functional.joint_errors`.

Three forms of the band loss: :func:`feedback_ratio_loss` (both references' code: zero inside
the band, quadratic outside), :func:`feedback_inband_loss` (AdaptPose's paper, eq. 21: quadratic
inside the band, zero outside) and :func:`feedback_exp_loss` (PoseAug's paper, eq. 9).
AdaptPose's sample selection is :func:`hard_ratio_mask`; its reprojection loss is
:func:`projection_shape_loss` (paper) or :func:`scale_normalized_error` (what its code computes).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from poseshift.adversarial.losses import range_loss
from poseshift.metrics.functional import joint_errors

# Feedback error weights and groups (METHODS.md 2.3) on H36M-17: the reference's 16-joint weights
# with neck_nose (no counterpart) weighted 1 and in no group; head_top takes the head's place in G2.
FEEDBACK_WEIGHTS_H36M17: tuple[float, ...] = (1, 5, 2, 1, 5, 2, 1, 1, 1, 1, 1, 5, 2, 1, 5, 2, 1)
FEEDBACK_GROUPS_H36M17: tuple[tuple[int, ...], ...] = (
    (1, 4, 11, 14),  # hips, shoulders
    (2, 5, 10, 12, 15),  # knees, head top, elbows
    (3, 6, 13, 16),  # ankles, wrists
)


def feedback_matrix(
    weights: Sequence[float] = FEEDBACK_WEIGHTS_H36M17,
    groups: Sequence[Sequence[int]] = FEEDBACK_GROUPS_H36M17,
) -> torch.Tensor:
    """(J, G) matrix M with ``errors @ M`` = the weighted per-group mean joint error."""
    m = torch.zeros(len(weights), len(groups))
    for g, joints in enumerate(groups):
        for j in joints:
            m[j, g] = weights[j] / len(joints)
    return m


def grouped_pose_error(pred: torch.Tensor, target: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """(B, G) weighted per-group mean Euclidean joint error (not squared), targets made root-relative."""
    return joint_errors(pred, target - target[..., :1, :]) @ matrix


def feedback_exp_loss(
    aug_error: torch.Tensor, orig_error: torch.Tensor, beta: float | torch.Tensor
) -> torch.Tensor:
    """PoseAug paper eq. (9): ``mean |1 - exp(L(X') - beta L(X))|``."""
    return (1 - torch.exp(aug_error - beta * orig_error)).abs().mean()


def feedback_ratio_loss(
    aug_error: torch.Tensor, orig_error: torch.Tensor, beta: float | torch.Tensor, band: float
) -> torch.Tensor:
    """The references' feedback: range loss on the error ratio ``L(X') / L(X)`` in ``beta +- band``."""
    return range_loss(aug_error / orig_error, beta, band)


def feedback_inband_loss(
    aug_error: torch.Tensor, orig_error: torch.Tensor, center: float | torch.Tensor, half_width: float
) -> torch.Tensor:
    """AdaptPose paper eq. (20-21): ``f = (L'/L - c)^2``; ``mean[f * 1{f < d^2}]``.

    Inside the band the ratio is pulled to its centre c; outside it gets no gradient. The
    released code uses the reverse (:func:`feedback_ratio_loss`). The paper's L is an L2 loss;
    here it is the same grouped error as the code's, so the two forms differ only in the band.
    """
    f = (aug_error / orig_error - center) ** 2
    return torch.where(f < half_width**2, f, torch.zeros_like(f)).mean()


def projection_shape_loss(pred3d: torch.Tensor, pose2d: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """AdaptPose paper eq. (18-19): L1 between the scale-normalized orthographic projection of
    the lifter's 3D prediction (B, J, 3) and scale-normalized 2D poses (B, J, 2).

    Both are root-centred before dividing by their Frobenius norms (the paper's eq. 18 does
    not say; without it the screen position of the 2D would dominate the norm). Per sample the
    L1 norm over joints and coordinates; mean over the batch. The gradient reaches whatever
    produced ``pose2d`` (AdaptPose's generated 2D); compute ``pred3d`` without a graph.
    """
    proj = pred3d[..., :2] - pred3d[..., :1, :2]
    flat = pose2d - pose2d[..., :1, :]
    proj = proj / torch.linalg.vector_norm(proj, dim=(-2, -1), keepdim=True).clamp_min(eps)
    flat = flat / torch.linalg.vector_norm(flat, dim=(-2, -1), keepdim=True).clamp_min(eps)
    return (proj - flat).abs().sum((-2, -1)).mean()


def scale_normalized_error(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Mean joint error after the least-squares scale of ``pred`` onto ``target`` (..., J, D), per
    sample (the references' ``n_mpjpe``; their eps)."""
    # means over joints, as the references (their eps then has the same effect)
    dot = (target * pred).sum(-1, keepdim=True).mean(-2, keepdim=True)
    scale = dot / ((pred * pred).sum(-1, keepdim=True).mean(-2, keepdim=True) + eps)
    return torch.linalg.vector_norm(scale * pred - target, dim=-1).mean()


def hard_ratio_mask(ratio: torch.Tensor, center: float, half_width: float) -> torch.Tensor:
    """(B,) samples whose error ratio (B,) or (B, G) (mean over groups) lies strictly inside the band.

    AdaptPose's selection (its paper's a, b; the code's 17 and 16): keep a generated sample
    when ``(ratio - a)^2 < b^2``, i.e. neither too easy nor too hard for the current lifter.
    """
    if ratio.dim() > 1:
        ratio = ratio.mean(-1)
    return (ratio - center) ** 2 < half_width**2


__all__ = [
    "FEEDBACK_GROUPS_H36M17",
    "FEEDBACK_WEIGHTS_H36M17",
    "feedback_exp_loss",
    "feedback_inband_loss",
    "feedback_matrix",
    "feedback_ratio_loss",
    "grouped_pose_error",
    "hard_ratio_mask",
    "projection_shape_loss",
    "scale_normalized_error",
]
