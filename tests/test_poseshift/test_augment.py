"""The shared augmentation ops keep what they must and are differentiable."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from poseshift.augment import (
    BA_FROZEN_BONES_H36M17,
    BL_GROUPS_H36M17,
    bone_angle_perturb,
    bone_length_scale,
    expand_shared,
    group_matrix,
    in_frame,
    median_bone_lengths,
    reproject,
    rigid_transform,
    swap_bone_lengths,
)
from poseshift.geometry import (
    H36M17,
    axis_angle_to_matrix,
    bone_directions,
    bone_lengths,
    h36m_intrinsics,
    project,
    random_rotation,
)


def poses(n: int = 16, seed: int = 0) -> torch.Tensor:
    """Random absolute poses in front of the camera (double precision for tight checks)."""
    g = torch.Generator().manual_seed(seed)
    bones = torch.randn(n, H36M17.num_bones, 3, generator=g, dtype=torch.float64) * 0.2
    from poseshift.geometry import bones_to_joints

    root = torch.stack(
        [torch.rand(n, generator=g) - 0.5, torch.rand(n, generator=g) - 0.5, 4 + torch.rand(n, generator=g)],
        -1,
    ).double()
    return bones_to_joints(bones, H36M17, root=root)


def test_bl_groups_cover_every_bone_once_and_are_left_right_symmetric():
    m = group_matrix(BL_GROUPS_H36M17)
    assert m.shape == (9, 16)
    assert torch.equal(m.sum(0), torch.ones(16))
    flip = H36M17.bone_flip_permutation
    # a group's mirror image is the same group: left and right share one ratio
    assert torch.equal(m[:, flip], m)


def test_bone_length_scale_keeps_directions_root_and_symmetry():
    x = poses()
    gamma = torch.rand(x.shape[0], 9, dtype=x.dtype) * 0.4 - 0.2
    ratios = 1 + expand_shared(gamma, group_matrix(BL_GROUPS_H36M17, dtype=x.dtype))
    y = bone_length_scale(x, ratios)
    torch.testing.assert_close(bone_directions(y), bone_directions(x))
    torch.testing.assert_close(y[:, 0], x[:, 0])
    torch.testing.assert_close(bone_lengths(y), bone_lengths(x) * ratios)
    flip = H36M17.bone_flip_permutation
    got = bone_lengths(y) / bone_lengths(x)
    torch.testing.assert_close(got, got[:, flip])  # left and right changed by the same ratio


def test_bone_angle_perturb_keeps_lengths_root_and_frozen_bones():
    x = poses()
    delta = torch.randn(x.shape[0], 16, 3, dtype=x.dtype)
    y, diff = bone_angle_perturb(x, delta)
    torch.testing.assert_close(bone_lengths(y), bone_lengths(x))
    torch.testing.assert_close(y[:, 0], x[:, 0])
    frozen = list(BA_FROZEN_BONES_H36M17)
    torch.testing.assert_close(bone_directions(y)[:, frozen], bone_directions(x)[:, frozen])
    assert diff[:, frozen].abs().max() < 1e-12
    free = [b for b in range(16) if b not in frozen]
    cos = (bone_directions(y)[:, free] * bone_directions(x)[:, free]).sum(-1)
    torch.testing.assert_close(diff[:, free], 1 - cos)
    assert diff[:, free].mean() > 0.05  # it did turn the other bones


def test_bone_angle_perturb_zero_residual_is_identity():
    x = poses()
    y, diff = bone_angle_perturb(x, torch.zeros(x.shape[0], 16, 3, dtype=x.dtype))
    torch.testing.assert_close(y, x)
    torch.testing.assert_close(diff, torch.zeros_like(diff))


def test_rigid_transform_keeps_shape_up_to_rotation_and_sets_root():
    x = poses()
    aa = torch.randn(x.shape[0], 3, dtype=x.dtype)
    t = torch.randn(x.shape[0], 3, dtype=x.dtype)
    y = rigid_transform(x, aa, t)
    torch.testing.assert_close(y[:, 0], t)
    rel_x, rel_y = x - x[:, :1], y - y[:, :1]
    rot = axis_angle_to_matrix(aa)
    torch.testing.assert_close(rel_y, rel_x @ rot.transpose(-1, -2))
    torch.testing.assert_close(bone_lengths(y), bone_lengths(x))
    # pairwise distances are what "shape up to rotation" means
    torch.testing.assert_close(torch.cdist(rel_y, rel_y), torch.cdist(rel_x, rel_x))


def test_rigid_transform_matches_rotation_matrix_convention():
    x = poses(4)
    rot = random_rotation(4, dtype=x.dtype)
    from poseshift.geometry import matrix_to_axis_angle

    y = rigid_transform(x, matrix_to_axis_angle(rot), x[:, 0])
    torch.testing.assert_close(y - y[:, :1], torch.einsum("nij,nkj->nki", rot, x - x[:, :1]))


def test_ops_are_differentiable_in_their_parameters():
    x = poses(4)
    delta = torch.randn(4, 16, 3, dtype=x.dtype, requires_grad=True)
    ratios = (1 + 0.1 * torch.randn(4, 16, dtype=x.dtype)).requires_grad_()
    aa = (0.3 * torch.randn(4, 3, dtype=x.dtype)).requires_grad_()
    t = torch.tensor([[0.1, 0.0, 4.0]] * 4, dtype=x.dtype, requires_grad=True)
    y, _ = bone_angle_perturb(x, delta)
    y = rigid_transform(bone_length_scale(y, ratios), aa, t)
    reproject(y, h36m_intrinsics()[0][:1].double().expand(4, 9)).sum().backward()
    for p in (delta, ratios, aa, t):
        assert p.grad is not None and p.grad.abs().sum() > 0
    assert torch.autograd.gradcheck(
        lambda a: rigid_transform(x[:1], a, x[:1, 0]), (aa[:1].detach().requires_grad_(),)
    )


def test_swap_bone_lengths_uses_template_rows():
    x = poses(32)
    templates = torch.rand(3, 16, dtype=x.dtype) * 0.3 + 0.1
    y = swap_bone_lengths(x, templates, generator=torch.Generator().manual_seed(0))
    lengths = bone_lengths(y)
    match = (lengths[:, None] - templates[None]).abs().amax(-1) < 1e-9
    assert torch.all(match.sum(1) == 1)
    torch.testing.assert_close(bone_directions(y), bone_directions(x))


def test_templates_are_per_owner_and_symmetric():
    x = poses(20)
    owner = torch.tensor([0] * 10 + [7] * 10)
    tmpl = median_bone_lengths(x, owner)
    assert tmpl.shape == (2, 16)
    torch.testing.assert_close(tmpl, tmpl[:, H36M17.bone_flip_permutation])


def test_reproject_and_in_frame():
    k = h36m_intrinsics()[0][:1].double()
    x = poses(6)
    torch.testing.assert_close(reproject(x, k.expand(6, 9)), project(x, k.expand(6, 9)))
    p = torch.zeros(3, 17, 2)
    p[1, 4, 0] = 1.5
    p[2, 3, 1] = -1.5
    assert in_frame(p).tolist() == [True, False, True]  # the reference only checks > 1
    assert in_frame(p, lower=True).tolist() == [True, False, False]


def test_rodrigues_angle_is_norm():
    aa = torch.tensor([[0.0, 0.0, math.pi / 2]], dtype=torch.float64)
    y = rigid_transform(
        torch.tensor([[[0.0, 0, 0], [1.0, 0, 0]]], dtype=torch.float64), aa, torch.zeros(1, 3)
    )
    torch.testing.assert_close(y[0, 1], torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64))


def test_geodesic_angle_folds_axis_angle_norms_past_180_degrees():
    from poseshift.augment import geodesic_angle_deg

    aa = torch.tensor([[0.0, 0.0, math.pi / 2], [0.0, 0.0, 1.5 * math.pi], [math.pi, math.pi, math.pi]])
    got = geodesic_angle_deg(aa)
    norm = math.degrees(math.pi * math.sqrt(3))
    torch.testing.assert_close(got, torch.tensor([90.0, 90.0, 360.0 - norm]))
    # it is the angle of the rotation matrix
    from poseshift.geometry import axis_angle_to_matrix

    r = axis_angle_to_matrix(aa)
    trace_angle = torch.rad2deg(torch.acos(((r.diagonal(dim1=-2, dim2=-1).sum(-1) - 1) / 2).clamp(-1, 1)))
    torch.testing.assert_close(got, trace_angle, atol=1e-3, rtol=1e-4)


def test_in_view_rejects_clamped_and_behind_the_camera_poses():
    from poseshift.augment import in_view

    pose = torch.zeros(3, 17, 3)
    pose[..., 2] = 5.0
    pose[1, 3, 0] = 6.0  # |X/Z| = 1.2: clamped by the projection
    pose[2, 5, 2] = -1.0  # behind the camera
    assert in_view(pose).tolist() == [True, False, False]


def test_bone_templates_file_is_checked(tmp_path):
    from poseshift.augment import load_bone_templates

    rows = np.full((5, 16), 0.25, dtype=np.float32)
    np.save(tmp_path / "t.npy", rows)
    np.savez(tmp_path / "t.npz", templates=rows)
    assert torch.equal(load_bone_templates(tmp_path / "t.npy"), load_bone_templates(tmp_path / "t.npz"))
    np.save(tmp_path / "mm.npy", rows * 1000)
    with pytest.raises(ValueError, match="millimetres"):
        load_bone_templates(tmp_path / "mm.npy")
    np.save(tmp_path / "shape.npy", rows[:, :15])
    with pytest.raises(ValueError, match=r"shape \(K, 16\)"):
        load_bone_templates(tmp_path / "shape.npy")
    with pytest.raises(FileNotFoundError, match="not found"):
        load_bone_templates(tmp_path / "none.npy")


def test_rotate_about_axis_matches_rodrigues_matrices():
    from poseshift.geometry import random_unit_vectors, rotate_about_axis

    torch.manual_seed(0)
    v, axis, angle = torch.randn(7, 3), torch.randn(7, 3), torch.rand(7) * 3
    want = (axis_angle_to_matrix(axis / axis.norm(dim=-1, keepdim=True) * angle[:, None]) @ v[..., None])[
        ..., 0
    ]
    torch.testing.assert_close(rotate_about_axis(v, axis, angle), want, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(random_unit_vectors((50,)).norm(dim=-1), torch.ones(50))


def test_bone_perturbation_keeps_lengths_and_root_and_stays_under_its_bound():
    from poseshift.augment import perturb_bone_directions
    from poseshift.geometry import joints_to_bones

    torch.manual_seed(0)
    pose = torch.randn(64, 17, 3)
    out = perturb_bone_directions(pose, 10.0)
    torch.testing.assert_close(bone_lengths(out), bone_lengths(pose), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out[:, 0], pose[:, 0])
    a, b = joints_to_bones(pose), joints_to_bones(out)
    cos = (a * b).sum(-1) / (a.norm(dim=-1) * b.norm(dim=-1))
    angle = torch.rad2deg(torch.acos(cos.clamp(-1, 1)))
    assert float(angle.max()) <= 10.0 + 1e-2 and float(angle.mean()) > 2.0


def test_frobenius_normalize_matches_the_data_modules():
    import numpy as np

    from data_modules.common import frobenius_normalize as np_frob
    from poseshift.geometry import frobenius_normalize

    x = np.random.default_rng(0).normal(size=(5, 17, 2)).astype(np.float32)
    torch.testing.assert_close(frobenius_normalize(torch.from_numpy(x)), torch.from_numpy(np_frob(x)))


# -- GPA (PoseDA) ----------------------------------------------------------------------------------


def body_poses(n: int, seed: int) -> torch.Tensor:
    """Root-relative human-sized poses (double): the synthetic rest pose, noise, random yaw."""
    from helpers import synthetic_set

    return torch.as_tensor(synthetic_set(n, seed, "x").pose3d, dtype=torch.float64)


def mixed_cameras(n: int) -> torch.Tensor:
    """Pinhole intrinsics (n, 9) cycling through three very different focal lengths (fy != fx)."""
    k = torch.zeros(n, 9, dtype=torch.float64)
    k[:, :2] = torch.tensor([1.2, 2.3, 3.4], dtype=torch.float64).repeat(n // 3 + 1)[:n, None]
    k[:, 1] *= 0.9
    k[:, 2] = torch.linspace(-0.05, 0.05, n, dtype=torch.float64)
    k[:, 3] = 0.02
    return k


def target_batch(n: int = 30) -> tuple[torch.Tensor, torch.Tensor]:
    """Target 2D of other people at other places, filmed by mixed cameras, and their intrinsics."""
    g = torch.Generator().manual_seed(3)
    other = body_poses(n, 7)
    root = torch.stack(
        [
            torch.rand(n, generator=g, dtype=torch.float64) - 0.5,
            (torch.rand(n, generator=g, dtype=torch.float64) - 0.5) * 0.6,
            3 + 6 * torch.rand(n, generator=g, dtype=torch.float64),
        ],
        -1,
    )
    k = mixed_cameras(n)
    return project(other + root[:, None], k), k


def box_tolerance(placed: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """The bound on |box_size(projection) - box_size(target)| GPA guarantees (per sample).

    GPA matches boxes under the approximation that every joint is at the root's depth Z_r. With
    d_j = Z_j - Z_r the exact pinhole projection is x_j - c = (x^_j - c) / (1 + d_j / Z_r), where x^_j
    is the approximate one, so |x_j - x^_j| <= |x^_j - c| * delta / (1 - delta), delta = max_j |d_j| / Z_r.
    A box side (max - min) moves by at most twice the largest such shift, and the approximate sides
    sum to the target's by construction, hence
    |(dx + dy) - (dx_t + dy_t)| <= 2 (max_j |x^_j - cx| + max_j |y^_j - cy|) delta / (1 - delta).
    """
    z_root = placed[:, :1, 2]
    delta = ((placed[..., 2] - z_root).abs() / z_root).amax(-1)
    approx = k[:, None, :2] * placed[..., :2] / z_root[..., None]  # x^_j - c
    spread = approx.abs().amax(1).sum(-1)
    return 2 * spread * delta / (1 - delta)


def test_gpa_puts_the_root_on_the_target_root_and_the_box_on_the_target_box():
    from poseshift.augment import box_size, global_position_alignment, in_view

    target2d, k = target_batch()
    source = body_poses(30, 1)
    placed = global_position_alignment(source, target2d, k)
    assert (placed[..., 2] > 0).all() and in_view(placed).all()  # in front, nothing clamped
    torch.testing.assert_close(placed - placed[:, :1], source - source[:, :1])  # only moved
    proj = project(placed, k)
    torch.testing.assert_close(proj[:, 0], target2d[:, 0], atol=1e-10, rtol=0)
    err = (box_size(proj) - box_size(target2d)).abs()
    tol = box_tolerance(placed, k)
    assert (err <= tol + 1e-12).all(), (err - tol).max()
    # the bound is tight enough to mean something: a few per cent of the box
    assert (tol / box_size(target2d)).median() < 0.1
    # a pose with every joint at the root's depth matches the box exactly
    flat = source.clone()
    flat[..., 2] = 0.0
    placed_flat = global_position_alignment(flat, target2d, k)
    torch.testing.assert_close(box_size(project(placed_flat, k)), box_size(target2d), atol=1e-10, rtol=0)


def test_gpa_depth_is_the_papers_closed_form():
    from poseshift.augment import gpa_root

    source = body_poses(6, 2)
    target2d, k = target_batch(6)
    root = gpa_root(source, target2d, k)
    d_x = source[..., 0].amax(-1) - source[..., 0].amin(-1)
    d_y = source[..., 1].amax(-1) - source[..., 1].amin(-1)
    box = (target2d.amax(-2) - target2d.amin(-2)).sum(-1)
    depth = (k[:, 0] * d_x + k[:, 1] * d_y) / box
    torch.testing.assert_close(root[:, 2], depth)
    torch.testing.assert_close(root[:, :2], depth[:, None] * (target2d[:, 0] - k[:, 2:4]) / k[:, :2])
    assert (root[:, 2] > 0).all()


def released_gpa(source: torch.Tensor, target2d: torch.Tensor, cam: torch.Tensor) -> torch.Tensor:
    """The README function of the PoseDA authors, restated (without its random pairing): depth from
    the first row's focal length, root from each row's own principal point and focal length."""
    s = ((target2d.amax(1) - target2d.amin(1)).sum(-1)) / 2
    d = source[..., :2].amax(1) - source[..., :2].amin(1)
    z = (cam[0, 0] * d[:, 0] + cam[0, 1] * d[:, 1]) / (2 * s)
    uv = (target2d[:, 0] - cam[:, 2:4]) / cam[:, 0:2]
    root = torch.stack([z * uv[:, 0], z * uv[:, 1], z], -1)
    return source - source[:, :1] + root[:, None]


def test_per_sample_intrinsics_differ_from_the_released_row0_on_a_mixed_camera_batch():
    from poseshift.augment import box_size, global_position_alignment

    target2d, k = target_batch()
    source = body_poses(30, 1)
    own = global_position_alignment(source, target2d, k)
    row0 = global_position_alignment(source, target2d, k, row0_focal=True)
    torch.testing.assert_close(row0, released_gpa(source, target2d, k))  # the flag is the release
    same_camera = k[:, 0] == k[0, 0]
    torch.testing.assert_close(row0[same_camera], own[same_camera])
    assert not torch.allclose(row0[~same_camera], own[~same_camera])
    # with row 0's focal length the other cameras' boxes miss the target beyond GPA's bound, by
    # tens of per cent of the box (the depth is off by the focal-length ratio)
    miss = (box_size(project(row0, k)) - box_size(target2d)).abs()
    assert (miss[~same_camera] > box_tolerance(row0, k)[~same_camera]).all()
    assert (miss / box_size(target2d))[~same_camera].min() > 0.2
    assert (miss[same_camera] <= box_tolerance(row0, k)[same_camera] + 1e-12).all()


def test_gpa_is_batched_over_leading_dims_and_differentiable():
    from poseshift.augment import global_position_alignment

    target2d, k = target_batch(6)
    source = body_poses(6, 2).requires_grad_()
    flat = global_position_alignment(source, target2d, k)
    stacked = global_position_alignment(
        source.reshape(2, 3, 17, 3), target2d.reshape(2, 3, 17, 2), k.reshape(2, 3, 9)
    )
    torch.testing.assert_close(stacked.reshape(6, 17, 3), flat)
    project(flat, k).sum().backward()
    assert source.grad is not None and source.grad.abs().sum() > 0


def test_box_normalize_crops_and_keeps_the_aspect_only_when_square():
    from poseshift.augment import box_normalize

    x = target_batch(8)[0].float()
    crop, square = box_normalize(x), box_normalize(x, square=True)
    torch.testing.assert_close(crop.amin(1), -torch.ones(8, 2))
    torch.testing.assert_close(crop.amax(1), torch.ones(8, 2))
    extent = square.amax(1) - square.amin(1)
    torch.testing.assert_close(extent.amax(-1), torch.full((8,), 2.0))
    src_extent = x.amax(1) - x.amin(1)
    torch.testing.assert_close(extent[:, 0] / extent[:, 1], src_extent[:, 0] / src_extent[:, 1])
    # position and scale in the image are gone
    torch.testing.assert_close(box_normalize(3 * x + 0.4, square=True), square, atol=1e-5, rtol=1e-5)


def test_random_baselines_turn_about_the_vertical_and_scale_bone_groups():
    from poseshift.augment import random_bone_scale, random_vertical_rotation

    x = poses(64)
    y = random_vertical_rotation(x, 30.0, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(y[..., 1], x[..., 1])  # heights unchanged
    torch.testing.assert_close(y[:, 0], x[:, 0])
    rel_x, rel_y = (x - x[:, :1])[..., [0, 2]], (y - y[:, :1])[..., [0, 2]]
    cos = (rel_x * rel_y).sum(-1) / (rel_x.norm(dim=-1) * rel_y.norm(dim=-1)).clamp_min(1e-12)
    angle = torch.rad2deg(torch.acos(cos[:, 1:].clamp(-1, 1))).amax(-1)
    assert angle.max() <= 30.0 + 1e-6 and angle.max() > 20.0
    groups = group_matrix(BL_GROUPS_H36M17, dtype=x.dtype)
    z = random_bone_scale(x, 0.2, groups, generator=torch.Generator().manual_seed(0))
    ratio = bone_lengths(z) / bone_lengths(x)
    assert ((ratio >= 0.8 - 1e-9) & (ratio <= 1.2 + 1e-9)).all() and ratio.std() > 0.05
    torch.testing.assert_close(ratio, ratio[:, H36M17.bone_flip_permutation])
    torch.testing.assert_close(bone_directions(z), bone_directions(x))
