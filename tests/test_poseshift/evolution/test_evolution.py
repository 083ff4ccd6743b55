"""EvoSkeleton evolution: operators, natural selection, the driver and the evolved DataModule."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from helpers import upright_poses

from poseshift.evolution import (
    AcceptAll,
    AkhterValidity,
    EvolutionConfig,
    LearnedValidity,
    camera_to_upright,
    choose_bones,
    crossover,
    evolve,
    finalize,
    mean_bone_lengths,
    mutate_bone_lengths,
    mutate_global,
    mutate_local,
    place_on_ground,
)
from poseshift.evolution.operators import subtree_table
from poseshift.geometry.local_frames import LIMB_BONES, TORSO_BONES, LocalPose, from_local, to_local


@pytest.fixture(scope="module")
def world() -> torch.Tensor:
    return upright_poses(400, 0)


@pytest.fixture(scope="module")
def local(world) -> LocalPose:
    return to_local(world)


@pytest.fixture(scope="module")
def model(local) -> LearnedValidity:
    return LearnedValidity().fit(local)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# -- crossover ---------------------------------------------------------------------------------
def test_crossover_conserves_limbs(local):
    father, mother = local.index(slice(0, 200)), local.index(slice(200, 400))
    son, daughter, swapped = crossover(father, mother, _gen(1))
    assert swapped.any(1).all()  # every pair exchanges a sub-tree
    assert not swapped[:, list(TORSO_BONES)].any()  # the torso never moves
    for b in range(16):
        kids = torch.stack([son.directions[:, b], daughter.directions[:, b]], 1)
        parents = torch.stack([father.directions[:, b], mother.directions[:, b]], 1)
        # the multiset {son, daughter} equals {father, mother}, bone by bone
        same = torch.isclose(kids, parents).all(-1).all(-1)
        flipped = torch.isclose(kids, parents.flip(1)).all(-1).all(-1)
        assert (same | flipped).all()
        if b in TORSO_BONES:
            assert torch.equal(son.directions[:, b], father.directions[:, b])
    # swapped bones come from the other parent, the rest from one's own
    m = swapped[..., None]
    assert torch.equal(son.directions, torch.where(m, mother.directions, father.directions))
    assert torch.equal(daughter.directions, torch.where(m, father.directions, mother.directions))
    # reference: the limbs take the other parent's lengths, the torso keeps its own
    limbs, torso = list(LIMB_BONES), list(TORSO_BONES)
    assert torch.equal(son.lengths[:, limbs], mother.lengths[:, limbs])
    assert torch.equal(son.lengths[:, torso], father.lengths[:, torso])
    assert torch.equal(son.root, father.root) and torch.equal(daughter.root, mother.root)


def test_crossover_subtrees_and_head_option():
    table = subtree_table()
    assert table.shape == (10, 16) and not table[:, [8, 9]].any()
    assert subtree_table(include_head=True)[:, [8, 9]].any()


def test_crossover_children_are_rebuildable(local):
    son, _, _ = crossover(local.index(slice(0, 50)), local.index(slice(50, 100)), _gen(2))
    joints = from_local(son)
    assert torch.isfinite(joints).all()
    # the son's torso is its father's
    father = from_local(local.index(slice(0, 50)))
    torso_joints = [0, 1, 4, 7, 8, 11, 14]
    assert torch.allclose(joints[:, torso_joints], father[:, torso_joints], atol=1e-9)


# -- mutation ----------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["axis", "spherical"])
def test_mutation_changes_only_chosen_bones(local, kind):
    d = local.directions[:100]
    cand = torch.zeros(100, 16, dtype=torch.bool)
    cand[:, [2, 11, 12]] = True
    chosen = choose_bones(cand, 0.5, "each", _gen(3))
    assert chosen.any() and not (chosen & ~cand).any()
    new = mutate_local(d, chosen, sigma_deg=20.0, kind=kind, generator=_gen(4))
    moved = (new - d).norm(dim=-1) > 1e-9
    assert torch.equal(moved, chosen)
    assert torch.allclose(new.norm(dim=-1), d.norm(dim=-1))  # rotations keep unit length
    # in joint space only the sub-trees of the chosen bones move
    before = from_local(local.index(slice(0, 100)))
    after = from_local(LocalPose(new, local.lengths[:100], local.root[:100]))
    joint_moved = (after - before).norm(dim=-1) > 1e-9
    subtree = {2: [3], 11: [12, 13], 12: [13]}
    for i in range(100):
        allowed = {j for b in chosen[i].nonzero().flatten().tolist() for j in subtree[b]}
        assert set(joint_moved[i].nonzero().flatten().tolist()) <= allowed


def test_mutation_never_touches_torso(local):
    chosen = torch.ones(50, 16, dtype=torch.bool)
    new = mutate_local(local.directions[:50], chosen, 30.0, "axis", _gen(5))
    assert torch.equal(new[:, list(TORSO_BONES)], local.directions[:50, list(TORSO_BONES)])


def test_mutation_one_bone_mode():
    cand = torch.zeros(500, 16, dtype=torch.bool)
    cand[:, list(LIMB_BONES)] = True
    chosen = choose_bones(cand, 1.0, "one", _gen(6))
    assert (chosen.sum(1) == 1).all()
    assert (choose_bones(cand, 0.3, "one", _gen(7)).sum(1) <= 1).all()


def test_axis_mutation_angle_statistics(local):
    # the rotation angle is N(0, sigma): the angle between old and new has rms ~ sigma
    d = local.directions[:, :].reshape(-1, 3)[:4000].reshape(250, 16, 3)
    chosen = torch.zeros(250, 16, dtype=torch.bool)
    chosen[:, list(LIMB_BONES)] = True
    new = mutate_local(d, chosen, 10.0, "axis", _gen(8))
    cos = (new * d).sum(-1)[:, list(LIMB_BONES)].clamp(-1, 1)
    # about one third of the rotations are about an axis near the bone and barely move it
    assert 1.0 < math.degrees(torch.acos(cos).pow(2).mean().sqrt()) < 10.5


def test_global_mutation_rotates_rigidly_about_root(local):
    lp = local.index(slice(0, 100))
    rotated, hit = mutate_global(lp, rate=0.5, sigma_deg=60.0, generator=_gen(9))
    assert 0 < hit.sum() < 100
    limbs = list(LIMB_BONES)
    assert torch.equal(rotated.directions[:, limbs], lp.directions[:, limbs])
    a, b = from_local(lp), from_local(rotated)
    assert torch.allclose(a[:, 0], b[:, 0])
    assert torch.allclose(a[~hit], b[~hit])
    # rigid: pairwise joint distances are preserved
    assert torch.allclose(torch.cdist(a, a), torch.cdist(b, b), atol=1e-9)
    assert ((a[hit] - b[hit]).norm(dim=-1).amax(-1) > 1e-6).all()


def test_bone_length_mutation_uses_templates(local):
    templates = mean_bone_lengths(local.lengths, torch.arange(400) % 3)
    assert templates.shape == (3, 16)
    new = mutate_bone_lengths(local.lengths, templates, 0.5, _gen(10))
    is_template = (new[:, None] == templates[None]).all(-1).any(-1)
    kept = (new == local.lengths).all(-1)
    assert (is_template | kept).all() and is_template.any() and kept.any()


def test_place_on_ground(world):
    lifted = world + torch.tensor([0.0, 0.0, 1.3], dtype=world.dtype)
    grounded = place_on_ground(lifted, 0.02, 0.003, generator=_gen(11))
    low = grounded[..., 2].amin(-1)
    assert (low - 0.02).abs().max() < 0.02 and low.std() > 0
    assert torch.allclose(grounded[..., :2], lifted[..., :2])


def test_camera_to_upright_is_a_rotation():
    m = camera_to_upright(torch.eye(3, dtype=torch.float64))
    assert torch.allclose(torch.linalg.det(m), torch.tensor(1.0, dtype=torch.float64))
    assert torch.allclose(camera_to_upright(torch.tensor([0.0, -1.0, 0.0])), torch.tensor([0.0, 0.0, 1.0]))


# -- validity ----------------------------------------------------------------------------------
def _bend(world: torch.Tensor, parent: int, joint: int, child: int, direction) -> torch.Tensor:
    """Move ``child`` so the bone joint->child points along ``direction`` (same length)."""
    out = world.clone()
    length = (world[:, child] - world[:, joint]).norm(dim=-1, keepdim=True)
    d = torch.tensor(direction, dtype=world.dtype)
    out[:, child] = world[:, joint] + length * d / d.norm()
    return out


def _facing(world: torch.Tensor) -> torch.Tensor:
    """Unit horizontal forward direction of each pose: up x (left -> right shoulder)."""
    across = world[:, 14] - world[:, 11]  # left to right shoulder
    fwd = torch.linalg.cross(
        torch.tensor([0.0, 0.0, 1.0], dtype=world.dtype).expand_as(across), across, dim=-1
    )
    return fwd / fwd.norm(dim=-1, keepdim=True)


def test_learned_validity_accepts_training_poses(local, model):
    assert LearnedValidity(margin_deg=0.0, parent_margin_deg=0.0).fit(local)(local).all()
    assert model(local).all()


def test_learned_validity_rejects_impossible_poses(world, model):
    w = world[:50]
    fwd = _facing(w)
    knee_forward = w.clone()
    for i in range(len(w)):  # test setup only: build the implausible poses one by one
        knee_forward[i] = _bend(w[i : i + 1], 1, 2, 3, fwd[i].tolist())[0]  # right shin forward, 90 deg
    assert not model(to_local(knee_forward)).any()
    # left elbow through the torso: the forearm points from the left elbow to the right hip
    elbow_in = w.clone()
    for i in range(len(w)):
        elbow_in[i] = _bend(w[i : i + 1], 11, 12, 13, (w[i, 1] - w[i, 12]).tolist())[0]
    assert not model(to_local(elbow_in)).any()
    per_bone = model.per_bone(to_local(elbow_in))
    assert not per_bone[:, LIMB_BONES.index(12)].any()  # blamed on the forearm
    assert per_bone[:, LIMB_BONES.index(2)].all()  # and not on the (untouched) right shin


def test_torso_typo_flag(world, local, model):
    # a thigh pointing straight forward-up: a first-level (torso-attached) bone out of range
    w = world[:30].clone()
    up = torch.tensor([0.0, 0.0, 1.0], dtype=w.dtype)
    for i in range(len(w)):
        hip, knee, ankle = w[i, 1], w[i, 2], w[i, 3]
        shift = hip + (knee - hip).norm() * up - knee
        w[i, 2], w[i, 3] = knee + shift, ankle + shift  # keep the shin's relative direction
    intended = model
    typo = LearnedValidity(reference_torso_typo=True).fit(local)
    thigh = LIMB_BONES.index(1)
    assert not intended(to_local(w)).any()
    assert not intended.per_bone(to_local(w))[:, thigh].any()
    # the typo never blames the thigh itself (its shin still fails: unseen parent direction)
    assert typo.per_bone(to_local(w))[:, thigh].all()
    others = [i for i, b in enumerate(LIMB_BONES) if b not in (1, 2)]
    assert typo.per_bone(to_local(w))[:, others].all()


def test_learned_validity_save_load(tmp_path, local):
    model = LearnedValidity(bin_deg=10.0, parent_bin_deg=20.0).fit(local)
    model.save(tmp_path / "v.npz")
    again = LearnedValidity.load(tmp_path / "v.npz")
    assert torch.equal(model.per_bone(local), again.per_bone(local))
    with pytest.raises(ValueError, match="divide 180"):
        LearnedValidity(bin_deg=7.0)


def _fake_constraints(folder, head_ok: bool = True, forearm_ok: bool = True) -> None:
    """Constraint files in the EvoSkeleton layout (object arrays of per-record tables)."""

    def records(make):
        arr = np.empty((1, 10), dtype=object)
        for r in range(10):
            arr[0, r] = make(r)
        return arr

    spread = records(lambda r: np.ones((121, 61)) * (head_ok or r != 4))
    plane = records(lambda r: np.broadcast_to(np.array([1.0, 0.0, 0.0, -2.0]), (121, 61, 4)).copy())
    e2 = records(lambda r: np.broadcast_to(np.array([0.0, 1.0, 0.0]), (121, 61, 3)).copy())
    bounds = records(
        lambda r: np.broadcast_to(
            np.array([-2.0, 2.0, -2.0, 2.0] if forearm_ok or r != 3 else [5.0, 6.0, 5.0, 6.0]), (121, 61, 4)
        ).copy()
    )
    np.save(
        folder / "jointAngleModel_v2.npy",
        {"angleSprd": spread, "sepPlane": plane, "E2": e2, "bounds": bounds},
    )
    rng = np.random.default_rng(0)
    np.save(folder / "staticPose.npy", {"di": rng.normal(size=(3, 16)), "a": np.array([[0.3], [0.2], [0.9]])})


def test_akhter_loader(tmp_path, world, local):
    _fake_constraints(tmp_path)
    model = AkhterValidity(tmp_path)
    assert model(local, world).all()
    # unit local vectors in the reference's frames (rotation invariant)
    lb = model.local_bones(world)
    assert torch.allclose(lb.norm(dim=-1), torch.ones(400, 9, dtype=lb.dtype))
    _fake_constraints(tmp_path, head_ok=False, forearm_ok=False)
    strict = AkhterValidity(tmp_path)
    per_bone = strict.per_bone(local, world)
    assert not per_bone[:, 0].any()  # head: its angle-spread table is empty
    assert not per_bone[:, 2].any()  # left forearm: outside its bounds
    assert per_bone[:, [1, 3, 4, 5, 6, 7, 8]].all()
    typo = AkhterValidity(tmp_path, reference_torso_typo=True).per_bone(local, world)
    assert typo[:, 0].all() and not typo[:, 2].any()  # the typo skips only torso-attached bones
    with pytest.raises(FileNotFoundError, match="learned validity"):
        AkhterValidity(tmp_path / "missing")


# -- driver ------------------------------------------------------------------------------------
def test_evolve_reaches_target_and_reports_acceptance(local, model):
    initial = LocalPose(local.directions.float(), local.lengths.float(), local.root.float())
    cfg = EvolutionConfig(target_ratio=2.0, chunk_size=16)  # tiny chunks exercise the chunking
    result = evolve(initial, cfg, model, _gen(12))
    assert len(result.population) == 800 and result.new_poses == 400
    assert torch.equal(result.population.directions[:400], initial.directions)
    assert len(result.stats) >= 2
    assert all(0 < s.acceptance <= 1 for s in result.stats)
    assert all(s.candidates == 2 * s.pairs for s in result.stats)
    assert model(result.population).all()  # every kept child passed selection
    world = finalize(result, cfg, mean_bone_lengths(initial.lengths), _gen(13))
    assert world.shape == (800, 17, 3) and torch.isfinite(world).all()
    assert ((world[..., 2].amin(-1) - 0.02).abs() < 0.02).all()


@pytest.mark.parametrize(
    "cfg",
    [
        EvolutionConfig(target_ratio=1.5, mutation=False),  # crossover only
        EvolutionConfig(target_ratio=1.5, crossover=False, mutation_kind="spherical", mutation_choice="one"),
    ],
)
def test_evolve_operator_ablations(local, cfg):
    result = evolve(local, cfg, AcceptAll(), _gen(14))
    assert len(result.population) == 600
    new = from_local(result.population.index(slice(400, None)))
    assert torch.isfinite(new).all()


def test_validity_kind_auto_prefers_akhter_files_and_the_learned_model_is_labelled(tmp_path):
    from poseshift.evolution import ValidityConfig, resolved_kind, validity_note

    assert resolved_kind(ValidityConfig()) == "learned"
    assert resolved_kind(ValidityConfig(constraints_dir=str(tmp_path))) == "akhter"
    assert resolved_kind(ValidityConfig(kind="none", constraints_dir=str(tmp_path))) == "none"
    assert "DEVIATION" in validity_note(ValidityConfig()) and "torso" in validity_note(ValidityConfig())
    assert "DEVIATION" not in validity_note(ValidityConfig(constraints_dir=str(tmp_path)))
