"""poseshift.metrics against hand-computed values, invariances and accumulation rules."""

from __future__ import annotations

import math

import pytest
import torch

from poseshift.geometry import random_rotation
from poseshift.metrics import AUC, JOINT_SETS, MPJPE, PAMPJPE, PCK, pose_metrics

F64 = torch.float64


def offsets(*errors_m: float, joints: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """One sample whose joint j (0..len-1) is off by errors_m[j] metres along x; target at 0."""
    target = torch.zeros(1, joints, 3, dtype=F64)
    pred = target.clone()
    pred[0, : len(errors_m), 0] = torch.tensor(errors_m, dtype=F64)
    return pred, target


def random_batch(n: int, seed: int, joints: int = 17) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    target = torch.randn(n, joints, 3, generator=g) * 0.3
    pred = target + torch.randn(n, joints, 3, generator=g) * 0.08
    return pred, target


# --------------------------------------------------------------------------- hand-computed values


def test_mpjpe_hand_computed_in_mm():
    target = torch.zeros(2, 3, 3, dtype=F64)
    pred = torch.zeros(2, 3, 3, dtype=F64)
    pred[0, 1] = torch.tensor([0.003, 0.0, 0.0])  # 3 mm
    pred[0, 2] = torch.tensor([0.0, 0.0024, 0.0032])  # 4 mm
    pred[1, 2] = torch.tensor([0.0, 0.0, 0.012])  # 12 mm
    m = MPJPE()
    m.update(pred, target)
    # per-sample means 7/3 and 4 mm, then the mean over samples
    torch.testing.assert_close(m.compute(), torch.tensor((7 / 3 + 4) / 2))


def test_mpjpe_root_relative_switch():
    pred, target = random_batch(4, seed=1)
    shifted = pred + torch.tensor([0.5, -0.2, 3.0])  # global offset only
    rr = MPJPE()
    rr.update(shifted, target)
    ref = MPJPE()
    ref.update(pred, target)
    torch.testing.assert_close(rr.compute(), ref.compute())  # offset invisible root-relative
    absolute = MPJPE(root_relative=False)
    absolute.update(target + torch.tensor([0.0, 0.0, 0.25]), target)
    torch.testing.assert_close(absolute.compute(), torch.tensor(250.0))


def test_root_relative_subtracts_joint_zero_before_subsetting():
    pred, target = offsets(0.1, 0.0, 0.0)  # only the root is off by 100 mm
    m = MPJPE(joints=[1, 2])
    m.update(pred, target)
    # root-relative, joints 1 and 2 are then each 100 mm off
    torch.testing.assert_close(m.compute(), torch.tensor(100.0))
    m_abs = MPJPE(joints=[1, 2], root_relative=False)
    m_abs.update(pred, target)
    torch.testing.assert_close(m_abs.compute(), torch.tensor(0.0))


def test_pck_threshold_is_strict():
    below, target = offsets(0.1499, 0.1499, 0.1499)
    exact, _ = offsets(0.15, 0.15, 0.15)
    for pred, expected in ((below, 100.0), (exact, 0.0)):
        m = PCK(root_relative=False)
        m.update(pred, target)
        torch.testing.assert_close(m.compute(), torch.tensor(expected))


def test_pck_mixed_and_custom_threshold():
    pred, target = offsets(0.0, 0.05, 0.10, 0.16, 0.30, joints=5)
    m = PCK(root_relative=False)
    m.update(pred, target)
    torch.testing.assert_close(m.compute(), torch.tensor(60.0))  # 0, 50, 100 mm are below 150
    m50 = PCK(root_relative=False, threshold=50.0)
    m50.update(pred, target)
    torch.testing.assert_close(m50.compute(), torch.tensor(20.0))  # only the 0 mm joint


def test_auc_hand_computed():
    # 51 mm error: within thresholds 55..150 -> 20 of 31
    pred, target = offsets(0.051, 0.051, joints=2)
    m = AUC(root_relative=False)
    m.update(pred, target)
    torch.testing.assert_close(m.compute(), torch.tensor(20 / 31 * 100))
    # perfect prediction: every threshold but 0 mm (errors must be strictly below it) -> 30/31
    perfect = AUC()
    perfect.update(target, target)
    torch.testing.assert_close(perfect.compute(), torch.tensor(30 / 31 * 100))
    # an error exactly on a threshold does not count there: 125 mm -> thresholds 130..150, 5 of 31
    on, target_on = offsets(0.125, 0.125, joints=2)
    m_on = AUC(root_relative=False)
    m_on.update(on, target_on)
    torch.testing.assert_close(m_on.compute(), torch.tensor(5 / 31 * 100))
    # two joints at 52.5 and 152.5 mm: 20 and 0 thresholds -> mean 10/31
    pred2, target2 = offsets(0.0525, 0.1525, joints=2)
    m2 = AUC(root_relative=False)
    m2.update(pred2, target2)
    torch.testing.assert_close(m2.compute(), torch.tensor(10 / 31 * 100))


def test_auc_equals_mean_of_pck_curve():
    pred, target = random_batch(16, seed=2)
    auc = AUC(joints="official14")
    auc.update(pred, target)
    pcks = []
    for thr in range(0, 151, 5):
        p = PCK(joints="official14", threshold=thr)
        p.update(pred, target)
        pcks.append(p.compute())
    torch.testing.assert_close(auc.compute(), torch.stack(pcks).mean())
    assert 0 < auc.compute() < 100  # the batch is neither perfect nor hopeless


# ---------------------------------------------------------------------------------- joint subsets


def test_official14_ignores_pelvis_spine_and_nose():
    assert JOINT_SETS["official14"] == (10, 8, 14, 15, 16, 11, 12, 13, 1, 2, 3, 4, 5, 6)
    target = torch.zeros(2, 17, 3)
    pred = target.clone()
    pred[:, [0, 7, 9]] += 1.0  # 1 m off on the three excluded joints
    for metric, perfect in ((PCK, 100.0), (MPJPE, 0.0)):
        official, every = metric(joints="official14", root_relative=False), metric(root_relative=False)
        official.update(pred, target)
        every.update(pred, target)
        torch.testing.assert_close(official.compute(), torch.tensor(perfect))
        assert not torch.isclose(every.compute(), torch.tensor(perfect))
    # an included joint does count
    pred[:, 10] += 1.0
    m = PCK(joints="official14", root_relative=False)
    m.update(pred, target)
    torch.testing.assert_close(m.compute(), torch.tensor(13 / 14 * 100))


def test_joint_list_and_all_name():
    pred, target = offsets(0.0, 0.01, 0.03, joints=3)
    sub = MPJPE(joints=[2])
    sub.update(pred, target)
    torch.testing.assert_close(sub.compute(), torch.tensor(30.0))
    for spec in (None, "all"):
        m = MPJPE(joints=spec)
        m.update(pred, target)
        torch.testing.assert_close(m.compute(), torch.tensor(40 / 3))


# --------------------------------------------------------------------------------------- per action


def test_per_action_dict():
    target = torch.zeros(3, 2, 3, dtype=F64)
    pred = target.clone()
    pred[:, 1, 0] = torch.tensor([0.010, 0.030, 0.100])  # joint-1 errors 10, 30, 100 mm
    action = torch.tensor([0, 0, 2])
    m = MPJPE(per_action=True, num_actions=4)
    m.update(pred, target, action=action)
    out = m.compute()
    assert set(out) == {"all", "action_wise", "per_action"}
    # per-sample MPJPE (2 joints, root 0): 5, 15, 50 mm
    torch.testing.assert_close(out["all"], torch.tensor(70 / 3))
    expected = torch.tensor([10.0, math.nan, 50.0, math.nan])
    torch.testing.assert_close(out["per_action"], expected, equal_nan=True)
    torch.testing.assert_close(out["action_wise"], torch.tensor(30.0))  # unweighted over actions 0 and 2


def test_action_ignored_without_per_action():
    pred, target = random_batch(3, seed=3)
    m = MPJPE()
    m.update(pred, target, action=torch.tensor([0, 1, 2]))
    assert m.compute().dim() == 0


# --------------------------------------------------------------------------------------- invariances


def test_pa_mpjpe_invariant_to_similarity():
    g = torch.Generator().manual_seed(4)
    target = torch.randn(8, 17, 3, generator=g, dtype=F64) * 0.3
    rot = random_rotation(8, generator=g, dtype=F64)
    pred = 1.7 * target @ rot.transpose(-1, -2) + torch.tensor([0.3, -1.0, 4.0], dtype=F64)
    pa, p1 = PAMPJPE(), MPJPE()
    pa.update(pred, target)
    p1.update(pred, target)
    assert pa.compute() < 1e-6
    assert p1.compute() > 10.0
    # a mirrored pose cannot be rotated back
    mirrored = PAMPJPE()
    mirrored.update(target * torch.tensor([-1.0, 1.0, 1.0], dtype=F64), target)
    assert mirrored.compute() > 10.0


def test_pa_mpjpe_not_above_mpjpe():
    pred, target = random_batch(32, seed=5)
    pa, p1 = PAMPJPE(), MPJPE()
    pa.update(pred, target)
    p1.update(pred, target)
    assert 0 < pa.compute() < p1.compute()


# ------------------------------------------------------------------------------------- accumulation


@pytest.mark.parametrize("per_action", [False, True])
def test_several_updates_equal_one(per_action):
    pred, target = random_batch(20, seed=6)
    action = torch.arange(20) % 3
    kwargs = {"per_action": per_action, "num_actions": 3}
    split, whole = pose_metrics(**kwargs), pose_metrics(**kwargs)
    for lo, hi in ((0, 3), (3, 11), (11, 20)):  # uneven batches
        split.update(pred[lo:hi], target[lo:hi], action=action[lo:hi])
    whole.update(pred, target, action=action)
    a, b = split.compute(), whole.compute()
    assert set(a) == set(b)
    for key in a:
        torch.testing.assert_close(a[key], b[key], equal_nan=True)


def test_merged_states_equal_single_process():
    # what a DDP sum-reduction does: add the states of two "ranks" with different batch sizes
    pred, target = random_batch(10, seed=7)
    for cls in (MPJPE, PAMPJPE, PCK, AUC):
        rank0, rank1, single = cls(), cls(), cls()
        rank0.update(pred[:3], target[:3])
        rank1.update(pred[3:], target[3:])
        single.update(pred, target)
        rank0.merge_state(rank1)
        torch.testing.assert_close(rank0.compute(), single.compute())
        assert all(
            fx is torch.sum or getattr(fx, "__name__", "") in {"sum", "dim_zero_sum"}
            for fx in rank0._reductions.values()
        )


def test_collection_keeps_metrics_apart_after_perfect_first_batch():
    # a perfect first batch gives MPJPE and PA-MPJPE identical states; they must not be merged
    pred, target = random_batch(6, seed=8)
    metrics = pose_metrics()
    metrics.update(target[:2], target[:2])
    metrics.update(pred[2:], target[2:])
    pa = PAMPJPE()
    pa.update(target[:2], target[:2])
    pa.update(pred[2:], target[2:])
    out = metrics.compute()
    torch.testing.assert_close(out["pa_mpjpe"], pa.compute())
    assert out["pa_mpjpe"] < out["mpjpe"]


def test_pose_metrics_keys_and_forward():
    pred, target = random_batch(4, seed=9)
    metrics = pose_metrics(joints="official14")
    batch_values = metrics(pred, target)
    assert set(batch_values) == {"mpjpe", "pa_mpjpe", "pck", "auc"}
    torch.testing.assert_close(metrics.compute()["mpjpe"], batch_values["mpjpe"])
    per = pose_metrics(per_action=True, num_actions=2)
    per.update(pred, target, action=torch.tensor([0, 1, 1, 0]))
    assert "mpjpe_action_wise" in per.compute()


def test_depth_error_reads_only_z_in_mm():
    from poseshift.metrics import DepthError

    target = torch.zeros(2, 3, 3)
    pred = target.clone()
    pred[0, 1] = torch.tensor([0.3, 0.4, 0.012])  # 12 mm too deep (and far off in x, y)
    pred[1, 2, 2] = -0.006  # 6 mm too close
    metric = DepthError()
    metric.update(pred, target)
    assert metric.compute().item() == pytest.approx((12 / 3 + 6 / 3) / 2)
    out = pose_metrics(depth_error=True)(pred, target)
    assert set(out) == {"mpjpe", "pa_mpjpe", "pck", "auc", "z_error"}
    torch.testing.assert_close(out["z_error"], metric.compute())


# --------------------------------------------------------------------------------------- bad inputs


def test_shape_and_value_errors_name_the_argument():
    good = torch.zeros(2, 17, 3)
    m = MPJPE()
    with pytest.raises(ValueError, match="pred and target"):
        m.update(good, torch.zeros(2, 16, 3))
    with pytest.raises(ValueError, match=r"pred must have shape \(B, J, 3\)"):
        m.update(torch.zeros(2, 17, 2), good)
    with pytest.raises(ValueError, match="target must have shape"):
        m.update(good, torch.zeros(17, 3))
    bad = good.clone()
    bad[1, 4, 2] = float("nan")
    with pytest.raises(ValueError, match="target contains NaN"):
        m.update(good, bad)
    with pytest.raises(ValueError, match="pred contains NaN or infinite"):
        m.update(bad.nan_to_num(posinf=0.0) + float("inf"), good)
    with pytest.raises(ValueError, match="joints"):
        MPJPE(joints="official14").update(torch.zeros(2, 8, 3), torch.zeros(2, 8, 3))


def test_configuration_and_action_errors():
    with pytest.raises(ValueError, match="unknown joint set"):
        PCK(joints="official15")
    with pytest.raises(ValueError, match="num_actions"):
        MPJPE(per_action=True)
    m = MPJPE(per_action=True, num_actions=2)
    pose = torch.zeros(2, 17, 3)
    with pytest.raises(ValueError, match="action is required"):
        m.update(pose, pose)
    with pytest.raises(ValueError, match=r"action ids must lie in \[0, 2\)"):
        m.update(pose, pose, action=torch.tensor([0, 2]))
    with pytest.raises(ValueError, match="action must be an integer tensor"):
        m.update(pose, pose, action=torch.tensor([0.0, 1.0]))
