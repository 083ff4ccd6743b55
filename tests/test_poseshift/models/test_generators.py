"""Generators: PoseDA's LPA keeps what each stage must, is conditioned, and what its critic can judge."""

from __future__ import annotations

import pytest
import torch
from helpers import synthetic_set

from poseshift.geometry import bone_directions, bone_lengths
from poseshift.models import KCSDiscriminator, LocalPoseAugmentor
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
