"""Generators: PoseDA's LPA keeps what each stage must, is conditioned, and what its critic can
judge; Deng et al.'s depth generator as a lifter (x, y kept from the input, metres restored) and the
reprojection network; PoseAug's augmentor is tested with PoseAug."""

from __future__ import annotations

import pytest
import torch
from helpers import synthetic_set

from poseshift.geometry import (
    H36M17,
    bone_directions,
    bone_lengths,
    mean_root_distance,
    normalize_scale,
    total_bone_length,
)
from poseshift.models import DepthLifter, KCSDiscriminator, LocalPoseAugmentor, ReprojectionNet
from poseshift.models.blocks import ResidualMLP


def poses(n: int = 16, seed: int = 1) -> torch.Tensor:
    return torch.as_tensor(synthetic_set(n, seed, "x").pose3d).float()


def test_residual_noise_mlp_has_three_linear_layers_and_a_skip():
    from poseshift.models.generators import residual_noise_mlp

    net = residual_noise_mlp(10, 4, width=8, block_layers=1)
    linears = [m for m in net.modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(10, 8), (8, 8), (8, 4)]
    assert all(block.residual for block in net.trunk[1:])
    assert isinstance(net, ResidualMLP)


def test_lpa_stages_keep_what_they_must_and_output_root_relative_poses():
    torch.manual_seed(0)
    g = LocalPoseAugmentor(width=16, noise_dim=8)
    x = poses()
    out = g(x + torch.tensor([0.3, -0.2, 5.0]))  # an absolute input is made root-relative
    for key in ("pose_ba", "pose_bl", "pose"):
        assert out[key][:, 0].abs().max() < 1e-6, key
    torch.testing.assert_close(bone_lengths(out["pose_ba"]), bone_lengths(x), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(
        bone_directions(out["pose_bl"]), bone_directions(out["pose_ba"]), atol=1e-5, rtol=1e-5
    )
    torch.testing.assert_close(
        bone_lengths(out["pose_bl"]), bone_lengths(x) * out["ratios"], atol=1e-5, rtol=1e-5
    )
    assert out["ratios"].min() >= 0.8 - 1e-6 and out["ratios"].max() <= 1.2 + 1e-6
    # R is a rotation about the root: distances between joints are kept
    torch.testing.assert_close(
        torch.cdist(out["pose"], out["pose"]),
        torch.cdist(out["pose_bl"], out["pose_bl"]),
        atol=1e-5,
        rtol=1e-5,
    )
    assert out["axis_angle"].abs().max() <= torch.pi


def test_lpa_is_conditioned_and_noisy():
    torch.manual_seed(0)
    g = LocalPoseAugmentor(width=16, noise_dim=8)
    x = poses()
    torch.manual_seed(1)
    a = g(x)["pose"]
    torch.manual_seed(1)
    b = g(x, poses(16, 2))["pose"]
    c = g(x)["pose"]  # fresh noise
    assert not torch.allclose(a, b) and not torch.allclose(a, c)
    with pytest.raises(ValueError, match="at least one"):
        LocalPoseAugmentor(use_ba=False, use_bl=False, use_rot=False)


def head_grads(g: LocalPoseAugmentor, critic: KCSDiscriminator) -> dict[str, float]:
    g.zero_grad()
    critic(g(poses())["pose"]).mean().backward()
    return {n: float(getattr(g, n).head.weight.grad.abs().sum()) for n in ("ba", "bl", "rot")}


def test_part_kcs_critic_cannot_train_bone_lengths_or_rotation():
    # PoseDA's anchor critic reads unit-bone part KCS: invariant to bone lengths and to rotation, so
    # only BA gets a gradient from it; keeping bone lengths in the parts lets it judge BL
    torch.manual_seed(0)
    g = LocalPoseAugmentor(width=16, noise_dim=8)
    part = head_grads(g, KCSDiscriminator(mode="part", width=16, mid=None))
    assert part["ba"] > 0 and part["bl"] < 1e-6 * part["ba"] and part["rot"] < 1e-6 * part["ba"]
    lengths = head_grads(g, KCSDiscriminator(mode="part_length", width=16, mid=None))
    assert (
        lengths["ba"] > 0 and lengths["bl"] > 1e-3 * lengths["ba"] and lengths["rot"] < 1e-6 * lengths["ba"]
    )


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
