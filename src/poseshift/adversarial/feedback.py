"""The lifter's error as a training signal: PoseAug's feedback loss and AdaptPose's sample selection.

The augmentor is asked to make poses harder for the current lifter, but not too hard: the
per-sample error ratio ``L(augmented) / L(original)`` is kept inside a band. The error itself
is :func:`grouped_pose_error`, the weighted per-group mean joint error of the references
(METHODS.md 2.3), built on the metrics' :func:`~poseshift.metrics.functional.joint_errors`.
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
    "feedback_matrix",
    "feedback_ratio_loss",
    "grouped_pose_error",
    "hard_ratio_mask",
]
