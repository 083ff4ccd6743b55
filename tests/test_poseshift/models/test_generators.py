"""Deng et al.'s depth generator as a lifter (x, y kept from the input, metres restored) and the
reprojection network; PoseAug's augmentor is tested with PoseAug."""

from __future__ import annotations

import pytest
import torch
from helpers import synthetic_set

from poseshift.geometry import H36M17, mean_root_distance, normalize_scale, total_bone_length
from poseshift.models import DepthLifter, ReprojectionNet


def sample(n: int = 32, seed: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    s = synthetic_set(n, seed, "x")
    return torch.as_tensor(s.pose2d).float(), torch.as_tensor(s.pose3d).float()


def test_the_generated_pose_keeps_the_normalized_input_2d_exactly_in_x_and_y():
    torch.manual_seed(0)
    lifter = DepthLifter(width=32, num_stages=2).train()
    pose2d, _ = sample()
    normalized, scale = lifter.normalize_input(pose2d)
    pose = lifter.generate(normalized)
    assert pose.shape == (32, 17, 3)
    assert torch.equal(pose[..., :2], normalized)  # exactly, in train mode with dropout too
    assert torch.equal(pose[:, 0], torch.zeros(32, 3))  # root-centred, depth included
    assert pose[..., 2].abs().sum() > 0
    # the normalized input is the screen 2D, root-centred, divided by its mean root distance
    torch.testing.assert_close(normalized * scale[:, None, None], pose2d - pose2d[:, :1])
    # the lifted pose in metres is the same shape: x, y proportional to the root-centred input 2D
    lifter.set_metric_reference(sample(64, 7)[1])
    metres = lifter.eval()(pose2d)
    centred = (pose2d - pose2d[:, :1])[:, 1:]
    factor = metres[:, 1:, :2] / centred
    torch.testing.assert_close(factor, factor[:, :1, :1].expand_as(factor))
    assert (factor > 0).all()


def test_metres_are_restored_from_the_source_body_size():
    _, truth = sample(64, 3)
    lifter = DepthLifter(width=16)
    assert not lifter.has_metric_reference  # NaN until set: an untrained lifter gives no metres
    lifter.set_metric_reference(truth)
    incidence = H36M17.incidence()
    assert lifter.metric_bone_length.item() == pytest.approx(
        total_bone_length(truth, incidence).mean().item()
    )
    assert lifter.metric_root_distance.item() == pytest.approx(mean_root_distance(truth).mean().item())
    # a scale-free pose of the right shape comes back in metres: exactly for a body of the
    # reference's total bone length (all synthetic bodies differ a little, so use one of them)
    one = truth[:1]
    lifter.set_metric_reference(one)
    shape_only = normalize_scale(one)[0] * 0.37  # any scale
    torch.testing.assert_close(lifter.to_metres(shape_only), one - one[:, :1])
    by_distance = DepthLifter(width=16, scale_restore="root_distance")
    by_distance.set_metric_reference(one)
    torch.testing.assert_close(by_distance.to_metres(shape_only), one - one[:, :1])
    with pytest.raises(ValueError, match="scale_restore"):
        DepthLifter(scale_restore="oracle")


def test_reprojection_network_maps_3d_to_2d():
    torch.manual_seed(0)
    net = ReprojectionNet(width=16)
    assert net(torch.randn(5, 17, 3)).shape == (5, 17, 2)
    assert len(net.mlp.trunk) == 2  # the input layer and one residual block (the paper)
