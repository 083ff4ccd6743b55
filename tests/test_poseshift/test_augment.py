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
