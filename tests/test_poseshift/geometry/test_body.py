"""Body measures (scale normalization, bone length, facing), turns about the vertical axis, pixel noise."""

from __future__ import annotations

import math

import pytest
import torch
from helpers import _REST, synthetic_set

from poseshift.geometry import (
    H36M17,
    add_pixel_noise,
    bone_lengths,
    facing_sine,
    mean_root_distance,
    normalize_scale,
    rotate_about_vertical,
    total_bone_length,
    vertical_rotation,
)


def poses(n: int = 16) -> torch.Tensor:
    s = synthetic_set(n, 4, "x")
    return (torch.as_tensor(s.pose3d) + torch.as_tensor(s.root3d)[:, None]).float()


def rest(n: int = 1) -> torch.Tensor:
    return torch.tensor(_REST, dtype=torch.float32).expand(n, -1, -1).clone()


def test_mean_root_distance_by_hand_and_normalization_round_trip():
    pose = torch.tensor([[[1.0, 1.0], [4.0, 5.0], [1.0, -1.0]]])  # distances 0, 5, 2
    assert mean_root_distance(pose).item() == pytest.approx(7 / 3)
    x = poses()
    normalized, scale = normalize_scale(x)
    torch.testing.assert_close(mean_root_distance(normalized), torch.ones(len(x)))
    assert torch.equal(normalized[:, 0], torch.zeros(len(x), 3))
    torch.testing.assert_close(normalized * scale[:, None, None], x - x[:, :1])
    # 2D as well, and invariant to where the pose is and how large it is
    x2d = x[..., :2]
    again, _ = normalize_scale(3.0 * x2d + torch.tensor([0.4, -0.2]))
    torch.testing.assert_close(again, normalize_scale(x2d)[0])


def test_total_bone_length_is_the_sum_of_bone_lengths_and_ignores_bending():
    x = poses()
    incidence = H36M17.incidence()
    torch.testing.assert_close(total_bone_length(x, incidence), bone_lengths(x).sum(-1))
    # bending the knee keeps the total bone length but shrinks the mean root distance
    bent = rest()
    bent[:, 3] = bent[:, 2] + torch.tensor([0.0, 0.0, -0.44])  # right shin forward, horizontal
    torch.testing.assert_close(total_bone_length(bent, incidence), total_bone_length(rest(), incidence))
    assert mean_root_distance(bent) < mean_root_distance(rest())


def test_turning_about_the_vertical_axis_keeps_bone_lengths_heights_and_root():
    x = poses()
    angle = torch.linspace(-math.pi, math.pi, len(x))
    turned = rotate_about_vertical(x, angle)
    torch.testing.assert_close(bone_lengths(turned), bone_lengths(x))
    assert torch.equal(turned[..., 1], x[..., 1])  # heights exactly
    torch.testing.assert_close(turned[:, 0], x[:, 0])
    assert not torch.allclose(turned, x)
    # a quarter turn takes +x (right) to -z (towards the camera): R_y(90) in a y-down frame
    torch.testing.assert_close(
        vertical_rotation(torch.tensor(math.pi / 2)) @ torch.tensor([1.0, 0.0, 0.0]),
        torch.tensor([0.0, 0.0, -1.0]),
    )
    torch.testing.assert_close(rotate_about_vertical(x, torch.zeros(len(x))), x)


def test_facing_sine_is_positive_for_a_correct_body_at_any_turn_and_negative_mirrored():
    # the rest pose faces the camera: nose towards -z, left shoulder at +x
    body = rest(24)
    turned = rotate_about_vertical(body, torch.linspace(-math.pi, math.pi, 24))
    assert (facing_sine(turned) > 0).all()
    depth_mirrored = turned * torch.tensor([1.0, 1.0, -1.0])
    assert (facing_sine(depth_mirrored) < 0).all()
    left_right = turned[:, H36M17.flip_permutation]  # labels swapped: the mirror image
    assert (facing_sine(left_right) < 0).all()
    # the paper's formula in its own frame (y up, z towards the camera) gives the same value
    paper = turned * torch.tensor([1.0, -1.0, -1.0])
    v = paper[:, 9] - paper[:, 8]
    w = paper[:, 11] - paper[:, 14]
    sin_beta = (v[:, 2] * w[:, 0] - v[:, 0] * w[:, 2]) / (v.norm(dim=-1) * w.norm(dim=-1))
    torch.testing.assert_close(facing_sine(turned), sin_beta)


def test_pixel_noise_has_the_standard_deviation_of_sigma_pixels_in_screen_units():
    g = torch.Generator().manual_seed(0)
    pose2d = torch.zeros(2, 20000, 17, 2)
    width = torch.tensor([1000.0, 2000.0])
    noisy = add_pixel_noise(pose2d, width, 10.0, g)
    # 10 px on a 1000 px wide image: 0.02 screen units; on 2000 px: 0.01
    assert noisy[0].std().item() == pytest.approx(0.02, rel=0.01)
    assert noisy[1].std().item() == pytest.approx(0.01, rel=0.01)
    assert abs(noisy.mean().item()) < 1e-4
    again = add_pixel_noise(pose2d, width, 10.0, torch.Generator().manual_seed(0))
    assert torch.equal(noisy, again)
    assert torch.equal(add_pixel_noise(pose2d, width, 0.0), pose2d)
