"""Feedback errors and hard-ratio selection."""

from __future__ import annotations

import pytest
import torch

from poseshift.adversarial import feedback_matrix, grouped_pose_error, hard_ratio_mask
from poseshift.metrics.functional import joint_errors


def test_feedback_groups_weight_joints_like_the_reference():
    m = feedback_matrix()
    err = torch.zeros(1, 17, 3)
    err[0, 1, 0] = 0.1  # r_hip, weight 5, group 0 of 4 joints
    err[0, 10, 0] = 0.2  # head_top, weight 1, group 1 of 5 joints
    err[0, 9, 0] = 5.0  # neck_nose: in no group
    got = grouped_pose_error(err, torch.zeros(1, 17, 3), m)
    torch.testing.assert_close(got, torch.tensor([[0.5 / 4, 0.2 / 5, 0.0]]))


def test_grouped_error_is_built_on_the_metrics_joint_errors():
    torch.manual_seed(0)
    pred, target = torch.randn(4, 17, 3), torch.randn(4, 17, 3) + 2.0
    m = feedback_matrix()
    expected = joint_errors(pred, target - target[:, :1]) @ m
    torch.testing.assert_close(grouped_pose_error(pred, target, m), expected)


def test_hard_ratio_selection_keeps_exactly_the_band():
    # AdaptPose's code: keep when (ratio - 17)^2 < 16^2, i.e. 1 < ratio < 33
    ratio = torch.tensor([0.5, 1.0, 1.01, 17.0, 32.99, 33.0, 40.0])
    assert hard_ratio_mask(ratio, 17.0, 16.0).tolist() == [False, False, True, True, True, False, False]
    grouped = torch.tensor([[1.0, 3.0, 5.0], [40.0, 40.0, 40.0]])  # group means 3 and 40
    assert hard_ratio_mask(grouped, 17.0, 16.0).tolist() == [True, False]


def test_inband_feedback_is_the_reverse_of_the_code_band():
    from poseshift.adversarial import feedback_inband_loss, feedback_ratio_loss

    orig = torch.ones(4, 3)
    inside, outside = torch.full((4, 3), 20.0), torch.full((4, 3), 40.0)  # c = 17, d = 15
    assert float(feedback_inband_loss(inside, orig, 17.0, 15.0)) == pytest.approx(9.0)
    assert float(feedback_inband_loss(outside, orig, 17.0, 15.0)) == 0.0
    assert float(feedback_ratio_loss(inside, orig, 17.0, 15.0)) == 0.0
    assert float(feedback_ratio_loss(outside, orig, 17.0, 15.0)) == pytest.approx(23.0**2)


def test_projection_shape_loss_and_scale_normalized_error():
    from poseshift.adversarial import projection_shape_loss, scale_normalized_error

    torch.manual_seed(0)
    pred = torch.randn(5, 17, 3)
    pred = pred - pred[:, :1]
    flat = pred[..., :2] * 0.3 + torch.tensor([0.2, -0.1])  # the same shape, moved and scaled
    assert float(projection_shape_loss(pred, flat)) < 1e-5
    assert float(projection_shape_loss(pred, flat.flip(-1))) > 0.1
    x = torch.randn(5, 17, 2)
    assert float(scale_normalized_error(2.5 * x, x)) < 1e-5
    assert float(scale_normalized_error(x + 0.3, x)) > 0.1
