"""Invariants of poseshift.geometry: bones, rotations, cameras, KCS features and Procrustes."""

from __future__ import annotations

import math

import pytest
import torch

from poseshift.geometry import (
    H36M17,
    H36M_CAMERAS,
    H36M_S1_EXTRINSICS,
    Skeleton,
    ancestor_matrix,
    axis_angle_to_matrix,
    bone_directions,
    bone_lengths,
    bones_to_joints,
    camera_to_world,
    compose_bones,
    euler_to_matrix,
    joints_to_bones,
    kcs,
    kcs_weights,
    matrix_to_axis_angle,
    matrix_to_euler,
    matrix_to_quaternion,
    normalize_intrinsics,
    normalize_screen,
    part_kcs,
    procrustes_align,
    project,
    project_pinhole,
    quaternion_rotate,
    quaternion_slerp,
    quaternion_to_matrix,
    random_rotation,
    rotate_about_axis,
    set_bone_lengths,
    unnormalize_screen,
    weighted_kcs,
    world_to_camera,
)

# H36M-17 bone lengths in metres (roughly PoseAug's S1 template, plus the nose/head split)
TEMPLATE = torch.tensor(
    [0.133, 0.443, 0.454, 0.133, 0.443, 0.454, 0.233, 0.257]
    + [0.12, 0.115, 0.151, 0.279, 0.252, 0.151, 0.279, 0.252],
    dtype=torch.float64,
)


def f64(values) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64)


@pytest.fixture
def gen() -> torch.Generator:
    return torch.Generator().manual_seed(0)


def random_poses(n: int, gen: torch.Generator) -> torch.Tensor:
    """(n, 17, 3) float64 poses with template bone lengths, random directions and root."""
    dirs = torch.randn(n, 16, 3, generator=gen, dtype=torch.float64)
    dirs = dirs / dirs.norm(dim=-1, keepdim=True)
    # built by an explicit chain walk so the fixture does not depend on bones_to_joints
    joints = [torch.randn(n, 3, generator=gen, dtype=torch.float64)]
    for j in range(1, 17):
        joints.append(joints[H36M17.parents[j]] + dirs[:, j - 1] * TEMPLATE[j - 1])
    return torch.stack(joints, dim=1)


def rotate(pose: torch.Tensor, rot: torch.Tensor) -> torch.Tensor:
    """Rotate row-vector poses (..., J, 3) by column-vector matrices (..., 3, 3)."""
    return pose @ rot.transpose(-1, -2)


# --------------------------------------------------------------------------------------- bones


def test_joints_to_bones_is_child_minus_parent(gen):
    x = torch.randn(4, 17, 3, generator=gen)
    b = joints_to_bones(x)
    assert b.shape == (4, 16, 3)
    torch.testing.assert_close(b[:, 0], x[:, 1] - x[:, 0])  # pelvis -> r_hip
    torch.testing.assert_close(b[:, 13], x[:, 14] - x[:, 8])  # thorax -> r_shoulder
    torch.testing.assert_close(b, H36M17.incidence().T @ x)


def test_bones_round_trip_both_ways(gen):
    x = torch.randn(2, 3, 17, 3, generator=gen, dtype=torch.float64)
    back = bones_to_joints(joints_to_bones(x), root=x[..., 0, :])
    torch.testing.assert_close(back, x, atol=1e-12, rtol=0)
    # the root may also keep its joint axis
    torch.testing.assert_close(bones_to_joints(joints_to_bones(x), root=x[..., :1, :]), back)
    b = torch.randn(5, 16, 3, generator=gen, dtype=torch.float64)
    torch.testing.assert_close(joints_to_bones(bones_to_joints(b)), b, atol=1e-12, rtol=0)


def test_bones_to_joints_without_root_starts_at_origin(gen):
    x = random_poses(3, gen)
    rebuilt = bones_to_joints(joints_to_bones(x))
    assert torch.all(rebuilt[:, 0] == 0)
    torch.testing.assert_close(rebuilt, x - x[:, :1])


def test_ancestor_matrix_paths():
    a = ancestor_matrix()
    assert a.shape == (17, 16)
    assert a[0].sum() == 0
    # r_wrist (16): pelvis->spine, spine->thorax, thorax->r_shoulder, r_upper arm, r_forearm
    assert torch.nonzero(a[16]).flatten().tolist() == [6, 7, 13, 14, 15]
    assert torch.nonzero(a[3]).flatten().tolist() == [0, 1, 2]


def test_bones_reject_wrong_joint_count():
    with pytest.raises(ValueError, match="pose"):
        joints_to_bones(torch.zeros(2, 16, 3))
    with pytest.raises(ValueError, match="bones"):
        bones_to_joints(torch.zeros(2, 17, 3))


def test_lengths_directions_compose(gen):
    x = random_poses(4, gen)
    torch.testing.assert_close(bone_lengths(x), TEMPLATE.expand(4, 16))
    d = bone_directions(x)
    torch.testing.assert_close(d.norm(dim=-1), torch.ones(4, 16, dtype=torch.float64))
    torch.testing.assert_close(compose_bones(d, bone_lengths(x)), joints_to_bones(x))


def test_set_bone_lengths_keeps_directions_and_root(gen):
    x = random_poses(4, gen)
    new = torch.rand(4, 16, generator=gen, dtype=torch.float64) * 0.5 + 0.05
    y = set_bone_lengths(x, new)
    torch.testing.assert_close(bone_lengths(y), new)
    torch.testing.assert_close(bone_directions(y), bone_directions(x))
    torch.testing.assert_close(y[:, 0], x[:, 0])
    # the pose really changed (the lengths differ from the template)
    assert (y - x).abs().max() > 1e-2
    # a single (B,) template broadcasts over the batch
    longer = TEMPLATE * 1.1
    torch.testing.assert_close(bone_lengths(set_bone_lengths(x, longer)), longer.expand(4, 16))


def test_zero_length_bone_has_finite_gradient(gen):
    x = random_poses(1, gen)
    x[:, 10] = x[:, 9]  # head_top on the nose: bone 9 has zero length
    x.requires_grad_(True)
    d = bone_directions(x)
    assert torch.all(d[:, 9] == 0)
    set_bone_lengths(x, TEMPLATE).sum().backward()
    assert torch.isfinite(x.grad).all()


# ----------------------------------------------------------------------------------- rotations


def _assert_rotation(m: torch.Tensor) -> None:
    eye = torch.eye(3, dtype=m.dtype).expand_as(m)
    torch.testing.assert_close(m @ m.transpose(-1, -2), eye, atol=1e-10, rtol=0)
    ones = torch.ones(m.shape[:-2], dtype=m.dtype)
    torch.testing.assert_close(torch.linalg.det(m), ones, atol=1e-10, rtol=0)


def test_axis_angle_matrix_round_trip(gen):
    axis = torch.randn(64, 3, generator=gen, dtype=torch.float64)
    axis = axis / axis.norm(dim=-1, keepdim=True)
    angle = torch.rand(64, 1, generator=gen, dtype=torch.float64) * (math.pi - 1e-3)
    aa = axis * angle
    m = axis_angle_to_matrix(aa)
    _assert_rotation(m)
    torch.testing.assert_close(matrix_to_axis_angle(m), aa, atol=1e-8, rtol=0)
    # Rodrigues against a known case: +90 degrees about z maps x to y
    rz = axis_angle_to_matrix(torch.tensor([0.0, 0.0, math.pi / 2], dtype=torch.float64))
    torch.testing.assert_close(
        rz @ torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64),
        torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64),
        atol=1e-12,
        rtol=0,
    )


def test_axis_angle_gradient_finite_at_identity():
    aa = torch.zeros(2, 3, requires_grad=True)
    axis_angle_to_matrix(aa).sum().backward()
    assert torch.isfinite(aa.grad).all()


def test_matrix_quaternion_round_trip(gen):
    m = random_rotation(256, generator=gen, dtype=torch.float64)
    _assert_rotation(m)
    q = matrix_to_quaternion(m)
    torch.testing.assert_close(q.norm(dim=-1), torch.ones(256, dtype=torch.float64))
    assert torch.all(q[:, 0] >= 0)
    torch.testing.assert_close(quaternion_to_matrix(q), m, atol=1e-10, rtol=0)
    # angles near pi exercise the non-trace branches of the conversion
    near_pi = axis_angle_to_matrix(f64([[math.pi - 1e-4, 0.0, 0.0], [0.0, 0.0, math.pi]]))
    back = quaternion_to_matrix(matrix_to_quaternion(near_pi))
    torch.testing.assert_close(back, near_pi, atol=1e-10, rtol=0)


def test_quaternion_rotate_matches_matrix(gen):
    q = torch.randn(32, 4, generator=gen, dtype=torch.float64)
    v = torch.randn(32, 3, generator=gen, dtype=torch.float64)
    expected = (quaternion_to_matrix(q) @ v.unsqueeze(-1)).squeeze(-1)
    torch.testing.assert_close(quaternion_rotate(q, v), expected)


def test_rotations_of_float32_vectors_by_bf16_network_outputs_stay_float32(gen):
    # under bf16 autocast a generator's outputs are bf16 while the poses they turn are float32
    v = torch.randn(8, 5, 3, generator=gen)
    axis, angle, q = torch.randn(8, 5, 3, generator=gen), torch.randn(8, 5, generator=gen), torch.randn(8, 4)
    turned = rotate_about_axis(v, axis.bfloat16(), angle.bfloat16())
    assert turned.dtype == torch.float32
    torch.testing.assert_close(
        turned, rotate_about_axis(v, axis.bfloat16().float(), angle.bfloat16().float())
    )
    by_q = quaternion_rotate(q.bfloat16(), v[:, 0])
    assert by_q.dtype == torch.float32
    torch.testing.assert_close(by_q, quaternion_rotate(q.bfloat16().float(), v[:, 0]))


@pytest.mark.parametrize("convention", ["xyz", "xzy", "yxz", "yzx", "zxy", "zyx"])
def test_euler_round_trip(gen, convention):
    angles = (torch.rand(64, 3, generator=gen, dtype=torch.float64) * 2 - 1) * torch.tensor(
        [math.pi * 0.99, math.pi / 2 * 0.99, math.pi * 0.99], dtype=torch.float64
    )
    m = euler_to_matrix(angles, convention)
    _assert_rotation(m)
    torch.testing.assert_close(matrix_to_euler(m, convention), angles, atol=1e-8, rtol=0)


def test_euler_composition_order():
    a, b, c = 0.3, -0.7, 1.1
    one = euler_to_matrix(f64([a, b, c]), "zyx")
    parts = [euler_to_matrix(f64(v), "zyx") for v in ([a, 0, 0], [0, b, 0], [0, 0, c])]
    torch.testing.assert_close(one, parts[0] @ parts[1] @ parts[2])
    # the first angle of "zyx" is about z
    torch.testing.assert_close(parts[0], axis_angle_to_matrix(f64([0.0, 0.0, a])))


def test_slerp_endpoints_and_midpoint(gen):
    q0 = torch.nn.functional.normalize(torch.randn(16, 4, generator=gen, dtype=torch.float64), dim=-1)
    q1 = torch.nn.functional.normalize(torch.randn(16, 4, generator=gen, dtype=torch.float64), dim=-1)
    m0, m1 = quaternion_to_matrix(q0), quaternion_to_matrix(q1)
    zeros, ones = torch.zeros(16, dtype=torch.float64), torch.ones(16, dtype=torch.float64)
    torch.testing.assert_close(quaternion_to_matrix(quaternion_slerp(q0, q1, zeros)), m0)
    torch.testing.assert_close(quaternion_to_matrix(quaternion_slerp(q0, q1, ones)), m1)
    # the midpoint is halfway in rotation angle from both ends
    mid = quaternion_to_matrix(quaternion_slerp(q0, q1, 0.5 * ones))
    full = matrix_to_axis_angle(m0.transpose(-1, -2) @ m1).norm(dim=-1)
    half0 = matrix_to_axis_angle(m0.transpose(-1, -2) @ mid).norm(dim=-1)
    half1 = matrix_to_axis_angle(mid.transpose(-1, -2) @ m1).norm(dim=-1)
    torch.testing.assert_close(half0, full / 2)
    torch.testing.assert_close(half1, full / 2)
    # identical inputs take the small-angle branch without NaNs
    assert torch.isfinite(quaternion_slerp(q0, q0, 0.3 * ones)).all()


# -------------------------------------------------------------------------------------- camera


def _h36m_pixel_tables() -> tuple[torch.Tensor, torch.Tensor]:
    k = torch.tensor([c[2] for c in H36M_CAMERAS], dtype=torch.float64)
    size = torch.tensor([c[1] for c in H36M_CAMERAS], dtype=torch.float64)
    return k, size


def _points_in_front(gen: torch.Generator, n: int = 4) -> torch.Tensor:
    xy = (torch.rand(n, 17, 2, generator=gen, dtype=torch.float64) - 0.5) * 2
    z = torch.rand(n, 17, 1, generator=gen, dtype=torch.float64) * 4 + 3
    return torch.cat([xy, z], dim=-1)


def test_project_without_distortion_is_pinhole(gen):
    k, _ = _h36m_pixel_tables()
    k[:, 4:] = 0
    pts = _points_in_front(gen)
    torch.testing.assert_close(project(pts, k), project_pinhole(pts, k))
    # and with distortion on, the two differ
    k_d, _ = _h36m_pixel_tables()
    assert (project(pts, k_d) - project_pinhole(pts, k_d)).abs().max() > 0.1


def test_screen_normalization_round_trip(gen):
    uv = torch.rand(5, 17, 2, generator=gen, dtype=torch.float64) * 1000
    xy = normalize_screen(uv, 1000.0, 1002.0)
    torch.testing.assert_close(unnormalize_screen(xy, 1000.0, 1002.0), uv)
    # corners: [0, w] -> [-1, 1] on x, y divided by w as well
    corners = normalize_screen(f64([[0.0, 0.0], [1000.0, 1002.0]]), 1000.0, 1002.0)
    torch.testing.assert_close(corners, f64([[-1.0, -1.002], [1.0, 1.002]]))


def test_normalized_intrinsics_commute_with_projection(gen):
    k, size = _h36m_pixel_tables()  # distortion on
    w, h = size[:, 0:1], size[:, 1:2]  # (4, 1) broadcasts over joints
    pts = _points_in_front(gen)
    k_n = normalize_intrinsics(k, size[:, 0], size[:, 1])
    torch.testing.assert_close(project(pts, k_n), normalize_screen(project(pts, k), w, h))


def test_world_camera_inverse(gen):
    for q, t in H36M_S1_EXTRINSICS:
        q_t = torch.tensor(q, dtype=torch.float64)
        t_t = torch.tensor(t, dtype=torch.float64)
        pts = torch.randn(3, 17, 3, generator=gen, dtype=torch.float64)
        cam = world_to_camera(pts, q_t, t_t)
        torch.testing.assert_close(camera_to_world(cam, q_t, t_t), pts)
        # matrix form of DATA_FORMATS 2.2: X_c = R(q)^T (X_w - t)
        torch.testing.assert_close(cam, (pts - t_t) @ quaternion_to_matrix(q_t))


def test_subject_projects_into_every_s1_camera():
    pelvis_world = torch.tensor([[0.0, 0.0, 0.9]], dtype=torch.float64)  # subject near the origin
    k, size = _h36m_pixel_tables()
    for cam_idx, (q, t) in enumerate(H36M_S1_EXTRINSICS):
        cam = world_to_camera(pelvis_world, f64(q), f64(t))
        assert cam[0, 2] > 1.0, "the subject must be in front of the camera"
        uv = project(cam, k[cam_idx])[0]
        assert 0 < uv[0] < size[cam_idx, 0] and 0 < uv[1] < size[cam_idx, 1], (cam_idx, uv)


# ----------------------------------------------------------------------------------------- KCS


def test_kcs_symmetric_lengths_and_invariances(gen):
    x = random_poses(6, gen)
    k = kcs(x)
    assert k.shape == (6, 16, 16)
    torch.testing.assert_close(k, k.transpose(-1, -2))
    torch.testing.assert_close(torch.diagonal(k, dim1=-2, dim2=-1), TEMPLATE.expand(6, 16) ** 2)
    rot = random_rotation(6, generator=gen, dtype=torch.float64)
    moved = rotate(x, rot) + torch.randn(6, 1, 3, generator=gen, dtype=torch.float64)
    torch.testing.assert_close(kcs(moved), k)
    torch.testing.assert_close(kcs(joints_to_bones(x)), k)  # bones in, same matrix
    # but it does see the pose: bending a knee changes it
    bent = x.clone()
    bent[:, 3] = bent[:, 2] + (bent[:, 2] - bent[:, 1]).flip(-1)
    assert (kcs(bent) - k).abs().max() > 1e-3


def test_kcs_rejects_wrong_count():
    with pytest.raises(ValueError, match="17"):
        kcs(torch.zeros(2, 15, 3))


def test_part_kcs_shape_masking_and_length_invariance(gen):
    x = random_poses(4, gen)
    pk = part_kcs(x)
    parts = list(H36M17.parts.values())
    assert pk.shape == (4, len(parts), 16, 16)
    for p, bones in enumerate(parts):
        outside = [b for b in range(16) if b not in bones]
        assert torch.all(pk[:, p][:, outside] == 0) and torch.all(pk[:, p][:, :, outside] == 0)
        diag = pk[:, p, list(bones), list(bones)]
        torch.testing.assert_close(diag, torch.ones(4, len(bones), dtype=torch.float64))
    stretched = set_bone_lengths(x, torch.rand(4, 16, generator=gen, dtype=torch.float64) + 0.1)
    torch.testing.assert_close(part_kcs(stretched), pk)
    # moving the left forearm changes the left-arm block only
    moved = x.clone()
    moved[:, 13] = moved[:, 12] + (moved[:, 13] - moved[:, 12]).flip(-1)
    diff = (part_kcs(moved) - pk).abs().amax(dim=(0, 2, 3))
    names = list(H36M17.parts)
    assert diff[names.index("left_arm")] > 1e-3
    assert diff[names.index("right_arm")] == 0 and diff[names.index("torso")] == 0


# weights by bone distance d from Deng et al. (METHODS.md 6.2)
PAPER_WEIGHTS = {0: 1.0, 1: 1.0, 2: 0.7616, 3: 0.4621, 4: 0.3215, 5: 0.2449, 6: 0.1974, 7: 0.1651}


def test_kcs_weights_match_paper_table():
    d = H36M17.bone_graph_distance()
    w = kcs_weights()
    assert w.shape == (16, 16)
    torch.testing.assert_close(w, w.T)
    seen = set()
    for dist, weight in PAPER_WEIGHTS.items():
        sel = d == dist
        if sel.any():
            seen.add(dist)
            torch.testing.assert_close(w[sel], torch.full_like(w[sel], weight), atol=5e-5, rtol=0)
    assert seen >= {0, 1, 2, 3, 4, 5, 6}


def test_right_hip_bone_distances_from_paper():
    # "three bones whose distances are 1 and two bones whose distances are 5" (Deng et al., Fig. 5)
    row = H36M17.bone_graph_distance()[0]
    assert int((row == 1).sum()) == 3 and int((row == 5).sum()) == 2
    assert int(row.max()) == 5
    assert torch.nonzero(row == 5).flatten().tolist() == [12, 15]  # the two forearms


def test_bone_distance_on_16_joint_skeleton_matches_methods_table():
    h36m16 = Skeleton(
        names=tuple(f"j{i}" for i in range(16)),
        parents=(-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 8, 10, 11, 8, 13, 14),
        left=(4, 5, 6, 10, 11, 12),
        right=(1, 2, 3, 13, 14, 15),
    )
    expected = torch.tensor(
        [
            [0, 1, 2, 1, 2, 3, 1, 2, 3, 3, 4, 5, 3, 4, 5],
            [1, 0, 1, 2, 3, 4, 2, 3, 4, 4, 5, 6, 4, 5, 6],
            [2, 1, 0, 3, 4, 5, 3, 4, 5, 5, 6, 7, 5, 6, 7],
            [1, 2, 3, 0, 1, 2, 1, 2, 3, 3, 4, 5, 3, 4, 5],
            [2, 3, 4, 1, 0, 1, 2, 3, 4, 4, 5, 6, 4, 5, 6],
            [3, 4, 5, 2, 1, 0, 3, 4, 5, 5, 6, 7, 5, 6, 7],
            [1, 2, 3, 1, 2, 3, 0, 1, 2, 2, 3, 4, 2, 3, 4],
            [2, 3, 4, 2, 3, 4, 1, 0, 1, 1, 2, 3, 1, 2, 3],
            [3, 4, 5, 3, 4, 5, 2, 1, 0, 1, 2, 3, 1, 2, 3],
            [3, 4, 5, 3, 4, 5, 2, 1, 1, 0, 1, 2, 1, 2, 3],
            [4, 5, 6, 4, 5, 6, 3, 2, 2, 1, 0, 1, 2, 3, 4],
            [5, 6, 7, 5, 6, 7, 4, 3, 3, 2, 1, 0, 3, 4, 5],
            [3, 4, 5, 3, 4, 5, 2, 1, 1, 1, 2, 3, 0, 1, 2],
            [4, 5, 6, 4, 5, 6, 3, 2, 2, 2, 3, 4, 1, 0, 1],
            [5, 6, 7, 5, 6, 7, 4, 3, 3, 3, 4, 5, 2, 1, 0],
        ]
    )
    assert torch.equal(h36m16.bone_graph_distance(), expected)
    row = expected[0]
    assert int((row == 1).sum()) == 3 and int((row == 5).sum()) == 2
    w = kcs_weights(h36m16, dtype=torch.float64)
    torch.testing.assert_close(w[2, 11], torch.tensor(math.tanh(1 / 6), dtype=torch.float64))  # d = 7


def test_weighted_kcs_is_weights_times_kcs(gen):
    x = random_poses(3, gen)
    wk = weighted_kcs(x)
    torch.testing.assert_close(wk, kcs(x) * kcs_weights(dtype=torch.float64))
    torch.testing.assert_close(torch.diagonal(wk, dim1=-2, dim2=-1), TEMPLATE.expand(3, 16) ** 2)
    # far pairs are damped: r_hip bone vs r_forearm (d = 5)
    torch.testing.assert_close(wk[:, 0, 15], kcs(x)[:, 0, 15] * math.tanh(1 / 4))


# ---------------------------------------------------------------------------------- Procrustes


def _similar_copy(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    n = x.shape[:-2].numel()
    rot = random_rotation(n, generator=gen, dtype=x.dtype).reshape(*x.shape[:-2], 3, 3)
    s = torch.rand(*x.shape[:-2], 1, 1, generator=gen, dtype=x.dtype) * 2 + 0.5
    t = torch.randn(*x.shape[:-2], 1, 3, generator=gen, dtype=x.dtype)
    return s * rotate(x, rot) + t


def test_procrustes_recovers_similarity(gen):
    target = random_poses(6, gen).reshape(2, 3, 17, 3)
    pred = _similar_copy(target, gen)
    aligned = procrustes_align(pred, target)
    assert aligned.shape == target.shape
    assert (aligned - target).abs().max() < 1e-5
    assert (pred - target).abs().max() > 0.1
    # float32 in, float32 out, still accurate
    aligned32 = procrustes_align(pred.float(), target.float())
    assert aligned32.dtype == torch.float32
    assert (aligned32 - target.float()).abs().max() < 1e-5


@pytest.mark.parametrize("mirror", [False, True])
def test_procrustes_is_optimal(gen, mirror):
    target = random_poses(8, gen)
    pred = target + 0.05 * torch.randn(target.shape, generator=gen, dtype=torch.float64)
    if mirror:  # the best proper rotation then has det-corrected singular values and a smaller scale
        pred = pred * torch.tensor([1.0, -1.0, 1.0], dtype=torch.float64)
    aligned = procrustes_align(pred, target)
    err = (aligned - target).norm(dim=-1).pow(2).sum(-1)
    # nudging the optimal pose by a small rotation, scale or shift only makes it worse
    centre = aligned.mean(dim=1, keepdim=True)
    small_rot = axis_angle_to_matrix(f64([0.01, -0.02, 0.01]))
    for nudge in (
        lambda p: rotate(p - centre, small_rot) + centre,
        lambda p: (p - centre) * 1.01 + centre,
        lambda p: (p - centre) * 0.99 + centre,
        lambda p: p + 0.005,
    ):
        assert torch.all((nudge(aligned) - target).norm(dim=-1).pow(2).sum(-1) > err)


def test_procrustes_forbids_reflection_by_default(gen):
    target = random_poses(4, gen)
    mirrored = target * torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64)
    assert (procrustes_align(mirrored, target) - target).abs().max() > 1e-2
    assert (procrustes_align(mirrored, target, allow_reflection=True) - target).abs().max() < 1e-8


def test_procrustes_without_scale_keeps_size(gen):
    target = random_poses(4, gen)
    pred = 2 * rotate(target, random_rotation(4, generator=gen, dtype=torch.float64))
    aligned = procrustes_align(pred, target, scale=False)
    size = lambda p: (p - p.mean(1, keepdim=True)).norm(dim=(-2, -1))  # noqa: E731
    torch.testing.assert_close(size(aligned), size(pred))
    torch.testing.assert_close(procrustes_align(pred, target), target)


def test_procrustes_degenerate_inputs_stay_finite(gen):
    target = random_poses(3, gen)
    zeros = torch.zeros_like(target)
    out = procrustes_align(zeros, target)
    assert torch.isfinite(out).all()
    # s = 0, so everything lands on the target's centroid
    torch.testing.assert_close(out, target.mean(1, keepdim=True).expand_as(target))
    assert torch.isfinite(procrustes_align(zeros, zeros)).all()
    assert torch.isfinite(procrustes_align(target, zeros)).all()


def test_procrustes_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="same shape"):
        procrustes_align(torch.zeros(2, 17, 3), torch.zeros(2, 16, 3))


def test_a_point_on_the_camera_plane_projects_to_the_clamp_with_finite_gradients():
    from poseshift.geometry.camera import project

    k = torch.tensor([1.2, 1.2, 0.0, 0.0, 0.1, 0.01, 0.0, 0.001, 0.001])
    pose = torch.tensor([[[0.3, -0.2, 0.0], [0.1, 0.2, 4.0]]], requires_grad=True)  # z = 0 exactly
    out = project(pose, k)
    out.sum().backward()
    assert torch.isfinite(out).all() and torch.isfinite(pose.grad).all()
    torch.testing.assert_close(out[0, 1], project(pose[:, 1:].detach(), k)[0, 0])  # others unchanged
