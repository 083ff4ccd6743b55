"""Discriminators: the KCS modes read what they claim, the 2D variants take and return the right shapes,
Deng et al.'s three-branch critic reads the (weighted) KCS of its 3D input."""

from __future__ import annotations

import pytest
import torch
from helpers import synthetic_set

from poseshift.geometry import kcs, weighted_kcs
from poseshift.models import ConsistencyCritic, KCSDiscriminator, PoseDiscriminator2D, TemporalDiscriminator2D
from poseshift.models.discriminators import kcs_features


def poses(n: int = 8) -> torch.Tensor:
    s = synthetic_set(n, 3, "x")
    return torch.as_tensor(s.pose3d) + torch.as_tensor(s.root3d)[:, None]


def test_weighted_mode_reads_deng_et_al_weighted_kcs():
    x = poses()
    torch.testing.assert_close(kcs_features(x, "weighted"), weighted_kcs(x).flatten(-2).unsqueeze(1))
    d = KCSDiscriminator(mode="weighted", width=16)
    assert d(x).shape == (8, 1)
    with pytest.raises(ValueError, match="KCS mode"):
        KCSDiscriminator(mode="diagonal")


def test_2d_discriminator_with_kcs_branch_sees_the_2d_kcs():
    torch.manual_seed(0)
    x2d = torch.randn(8, 17, 2)
    plain, branch = PoseDiscriminator2D(), PoseDiscriminator2D(kcs_branch=True)
    assert plain(x2d).shape == branch(x2d).shape == (8, 1)
    assert plain.kcs is None and branch.kcs is not None
    # the branch is used: scaling one bone changes the KCS path's input, and the output with it
    out = branch(x2d)
    out.sum().backward()
    assert branch.kcs[0].weight.grad.abs().sum() > 0


def test_plain_2d_discriminator_keeps_the_reference_layout():
    d = PoseDiscriminator2D()
    names = [n for n, _ in d.named_parameters()]
    assert names[:2] == ["l1.weight", "l1.bias"] and names[-2:] == ["out.weight", "out.bias"]
    assert sum(p.numel() for p in d.parameters()) == 34 * 100 + 100 + 4 * (100 * 100 + 100) + 101


def test_temporal_discriminator_reads_motion_not_position():
    torch.manual_seed(0)
    d = TemporalDiscriminator2D(frames=5)
    w = torch.randn(4, 5, 17, 2)
    torch.testing.assert_close(d(w), d(w + 0.3))  # a constant shift has no motion
    with pytest.raises(ValueError, match="windows"):
        d(torch.randn(4, 17, 2))


def test_full_kcs_branch_reads_the_unperturbed_pose_and_the_parts_the_perturbed_one():
    from poseshift.augment import perturb_bone_directions

    torch.manual_seed(0)
    pose = torch.randn(6, 17, 3)
    turned = perturb_bone_directions(pose, 10.0)
    d = KCSDiscriminator(width=16, full_branch=True)
    both = d(pose, turned)
    assert both.shape == (6, 6)
    torch.testing.assert_close(both[:, 5], d(pose)[:, 5])  # full branch: the original pose
    torch.testing.assert_close(both[:, :5], d(turned)[:, :5])  # part paths: the perturbed one
    assert not torch.allclose(both[:, :5], d(pose)[:, :5])


def test_poseda_critic_paths_are_four_layer_residual_mlps():
    d = KCSDiscriminator(width=16, mid=None)
    assert d.l5 is None and d.l4.weight.shape == (5, 16, 1)
    assert sum(p.numel() for p in d.parameters()) == 5 * ((256 * 16 + 16) + 2 * (16 * 16 + 16) + (16 + 1))
    x = poses()
    assert d(x).shape == (8, 5)
    # the skip: with the middle layers zeroed the path still reads the input
    with torch.no_grad():
        d.l2.weight.zero_(), d.l2.bias.zero_(), d.l3.weight.zero_(), d.l3.bias.zero_()
    assert d(x).std() > 0


def test_part_length_mode_keeps_bone_lengths_in_the_parts():
    from poseshift.augment import bone_length_scale

    x = poses()
    ratios = torch.full((8, 16), 1.3)
    unit, lengths = kcs_features(x, "part"), kcs_features(x, "part_length")
    assert unit.shape == lengths.shape == (8, 5, 256)
    torch.testing.assert_close(kcs_features(bone_length_scale(x, ratios), "part"), unit, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(
        kcs_features(bone_length_scale(x, ratios), "part_length"), 1.69 * lengths, atol=1e-5, rtol=1e-5
    )


def _branch_input(critic: ConsistencyCritic, pose3d: torch.Tensor, pose2d: torch.Tensor) -> torch.Tensor:
    seen = []
    hook = critic.branch_kcs[0].register_forward_hook(lambda m, inp, out: seen.append(inp[0]))
    critic(pose3d, pose2d)
    hook.remove()
    return seen[0]


def test_consistency_critic_kcs_branch_reads_the_weighted_kcs_of_its_3d_input():
    torch.manual_seed(0)
    x = poses() - poses()[:, :1]
    x2d = torch.randn(8, 17, 2)
    critic = ConsistencyCritic(width=16)
    assert critic(x, x2d).shape == (8, 1)
    torch.testing.assert_close(_branch_input(critic, x, x2d), weighted_kcs(x).flatten(1))
    plain = ConsistencyCritic(kcs="plain", width=16)
    torch.testing.assert_close(_branch_input(plain, x, x2d), kcs(x).flatten(1))
    # the weights matter: far bone pairs are damped, so the two branches read different inputs
    assert not torch.allclose(weighted_kcs(x), kcs(x))
    none = ConsistencyCritic(kcs="none", width=16)
    assert none.branch_kcs is None and none.head[0].in_features == 32
    assert none(x, x2d).shape == (8, 1)
    with pytest.raises(ValueError, match="kcs"):
        ConsistencyCritic(kcs="part")


def test_consistency_critic_branches_and_heads():
    torch.manual_seed(0)
    x, x2d = torch.randn(8, 17, 3), torch.randn(8, 17, 2)
    critic = ConsistencyCritic(width=16)
    # 3D: FC + a residual block; 2D: one FC; the paper's head: one FC on the 3 x 16 features
    assert [type(m).__name__ for m in critic.branch3d] == ["Linear", "LeakyReLU", "ResidualLinearBlock"]
    assert critic.branch3d[2].residual and [type(m).__name__ for m in critic.branch2d] == [
        "Linear",
        "LeakyReLU",
    ]
    assert len(critic.head) == 1 and critic.head[0].in_features == 48
    # every branch reaches the score
    critic(x, x2d).sum().backward()
    for branch in (critic.branch3d[0], critic.branch2d[0], critic.branch_kcs[0]):
        assert branch.weight.grad.abs().sum() > 0
    # the single FC head scores a sum of per-branch terms: swapping which 2D goes with which 3D
    # leaves the batch total unchanged; RepNet's hidden head sees the pairing
    paired = critic(x, x2d).sum()
    torch.testing.assert_close(critic(x, x2d.flip(0)).sum(), paired)
    hidden = ConsistencyCritic(width=16, head_hidden=8)
    assert not torch.allclose(hidden(x, x2d.flip(0)).sum(), hidden(x, x2d).sum())
