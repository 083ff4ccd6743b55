"""Hierarchical local-frame representation: exact round trip, orthonormal frames, invariances."""

from __future__ import annotations

import pytest
import torch
from helpers import synthetic_set

from poseshift.geometry.bones import bone_lengths
from poseshift.geometry.local_frames import (
    LIMB_BONES,
    LocalPose,
    bone_frames,
    from_local,
    from_spherical,
    gram_schmidt,
    limb_angles,
    to_local,
    to_spherical,
)
from poseshift.geometry.rotations import random_rotation


@pytest.fixture(scope="module")
def poses() -> torch.Tensor:
    p = torch.from_numpy(synthetic_set(200, 3, "p").pose3d).double()
    return p + torch.randn(200, 1, 3, dtype=torch.float64)  # non-zero roots


def test_round_trip_is_exact_float64(poses):
    back = from_local(to_local(poses))
    assert torch.allclose(back, poses, atol=1e-12, rtol=0)


def test_round_trip_float32_and_leading_dims(poses):
    p = poses.float().reshape(10, 20, 17, 3)
    lp = to_local(p)
    assert lp.directions.shape == (10, 20, 16, 3) and lp.lengths.shape == (10, 20, 16)
    assert torch.allclose(from_local(lp), p, atol=2e-6, rtol=0)


def test_round_trip_random_limbs():
    # arbitrary (even implausible) limb directions survive the round trip too
    g = torch.Generator().manual_seed(0)
    p = torch.randn(300, 17, 3, generator=g, dtype=torch.float64)
    assert torch.allclose(from_local(to_local(p)), p, atol=1e-9, rtol=0)


def test_frames_are_rotations(poses):
    f = bone_frames(poses)
    eye = torch.eye(3, dtype=f.dtype)
    assert torch.allclose(f.mT @ f, eye.expand_as(f), atol=1e-12)
    assert torch.allclose(torch.linalg.det(f), torch.ones(f.shape[:-2], dtype=f.dtype), atol=1e-12)


def test_gram_schmidt_columns():
    g = torch.Generator().manual_seed(1)
    v1, v2 = torch.randn(2, 50, 3, generator=g, dtype=torch.float64)
    f = gram_schmidt(v1, v2)
    assert torch.allclose(f[..., 0], v1 / v1.norm(dim=-1, keepdim=True))
    assert torch.allclose(torch.linalg.det(f), torch.ones(50, dtype=f.dtype))


def test_local_directions_invariant_to_global_rotation(poses):
    # limb local directions describe posture only: a rigid rotation changes the torso only
    r = random_rotation(1, generator=torch.Generator().manual_seed(2), dtype=torch.float64)[0]
    a, b = to_local(poses), to_local(poses @ r.T)
    limbs = list(LIMB_BONES)
    assert torch.allclose(a.directions[:, limbs], b.directions[:, limbs], atol=1e-10)
    assert torch.allclose(a.lengths, b.lengths)


def test_lengths_and_unit_directions(poses):
    lp = to_local(poses)
    assert torch.allclose(lp.lengths, bone_lengths(poses))
    assert torch.allclose(lp.directions.norm(dim=-1), torch.ones(200, 16, dtype=torch.float64))


def test_limb_edit_moves_only_its_subtree(poses):
    lp = to_local(poses)
    d = lp.directions.clone()
    d[:, 1] = torch.tensor([0.0, 0.0, 1.0], dtype=d.dtype)  # right thigh: new local direction
    moved = from_local(LocalPose(d, lp.lengths, lp.root))
    changed = (moved - poses).norm(dim=-1).amax(0) > 1e-9
    assert changed.nonzero().flatten().tolist() == [2, 3]  # r_knee and r_ankle only


def test_spherical_round_trip():
    g = torch.Generator().manual_seed(3)
    v = torch.randn(100, 3, generator=g, dtype=torch.float64)
    s = to_spherical(v)
    assert (s[:, 1].abs() <= torch.pi).all() and (s[:, 2].abs() <= torch.pi / 2).all()
    assert torch.allclose(from_spherical(s), v, atol=1e-12)


def test_limb_angles_shape(poses):
    assert limb_angles(to_local(poses)).shape == (200, 10, 2)


def test_rejects_other_skeletons(poses):
    from poseshift.geometry.skeleton import Skeleton

    other = Skeleton(names=("a", "b", "c"), parents=(-1, 0, 1), left=(), right=())
    with pytest.raises(ValueError, match="H36M17"):
        to_local(poses[:, :3], other)
