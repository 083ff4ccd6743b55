"""The supervised baseline: its step trains the lifter, its schedule, flip test, DDP evaluation."""

from __future__ import annotations

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from helpers import SyntheticDataModule, fit_and_test_in_bf16

from poseshift.methods import Baseline, Evaluation
from poseshift.trainers import quiet_trainer

SMALL = {"linear_size": 64, "num_stages": 1}


def test_training_reduces_loss_and_changes_only_the_lifter():
    pl.seed_everything(0)
    model = Baseline(backbone_kwargs=SMALL, lr=1e-2)
    dm = SyntheticDataModule(num_train=128, batch_size=32)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    trainer = quiet_trainer()
    trainer.validate(model, datamodule=dm, verbose=False)
    initial = float(trainer.callback_metrics["val/mpjpe"])
    trainer = quiet_trainer(max_epochs=15, limit_val_batches=0)
    trainer.fit(model, datamodule=dm)
    trainer = quiet_trainer()
    trainer.validate(model, datamodule=dm, verbose=False)
    final = float(trainer.callback_metrics["val/mpjpe"])
    assert final < 0.7 * initial, (initial, final)
    changed = [k for k, v in model.state_dict().items() if not torch.equal(v, before.get(k, v))]
    weights = [k for k in changed if k != "player_steps"]  # the step count is bookkeeping
    assert weights and all(k.startswith("lifter.") for k in weights)
    assert model.steps_of("p") == 15 * 4  # 128 samples in batches of 32, 15 epochs


def test_learning_rate_staircase():
    model = Baseline(backbone_kwargs=SMALL, lr=1.0, lr_decay=0.5, lr_decay_steps=3)
    (opt,), (sched,) = model.configure_optimizers()
    lrs = []
    for _ in range(7):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs == [1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.25]


def test_flip_test_is_mirror_equivariant():
    torch.manual_seed(0)
    model = Baseline(backbone_kwargs=SMALL, evaluation=Evaluation(flip_test=True)).eval()
    x = torch.randn(8, 17, 2)
    perm = model.skeleton.flip_permutation
    mirror2, mirror3 = torch.tensor([-1.0, 1.0]), torch.tensor([-1.0, 1.0, 1.0])
    with torch.no_grad():
        out = model.lift_for_eval(x)
        out_of_mirrored = model.lift_for_eval(x[:, perm] * mirror2)
    torch.testing.assert_close(out_of_mirrored, out[:, perm] * mirror3, atol=1e-5, rtol=1e-5)
    model.evaluation = Evaluation(flip_test=False)
    with torch.no_grad():
        assert not torch.allclose(
            model.lift_for_eval(x[:, perm] * mirror2), out[:, perm] * mirror3, atol=1e-3
        )


def test_test_metrics_are_named_per_test_set():
    torch.manual_seed(0)
    model = Baseline(backbone_kwargs=SMALL)
    results = quiet_trainer().test(model, datamodule=SyntheticDataModule(), verbose=False)
    keys = set(results[0]) | set(results[1])
    assert {"test/alpha/mpjpe", "test/alpha/pa_mpjpe", "test/beta/pck", "test/beta/auc"} <= keys
    assert results[0]["test/alpha/mpjpe"] != results[1]["test/beta/mpjpe"]


@pytest.mark.slow
def test_ddp_spawn_two_processes_matches_one(tmp_path):
    torch.manual_seed(0)
    model = Baseline(backbone_kwargs=SMALL)
    dm = SyntheticDataModule(num_test=101)  # odd sizes: a padding sampler would double-count
    single = quiet_trainer().test(model, datamodule=dm, verbose=False)
    ddp = quiet_trainer(strategy="ddp_spawn", devices=2, default_root_dir=tmp_path).test(
        model, datamodule=SyntheticDataModule(num_test=101), verbose=False
    )
    for one, two in zip(single, ddp, strict=True):
        assert one.keys() == two.keys()
        for key in one:
            assert two[key] == pytest.approx(one[key], rel=1e-5, abs=1e-4), key


@pytest.mark.slow
def test_ddp_spawn_fit_runs(tmp_path):
    torch.manual_seed(0)
    model = Baseline(backbone_kwargs=SMALL)
    before = [p.detach().clone() for p in model.lifter.parameters()]
    trainer = quiet_trainer(
        strategy="ddp_spawn", devices=2, max_steps=3, default_root_dir=tmp_path, limit_val_batches=2
    )
    trainer.fit(model, datamodule=SyntheticDataModule(num_train=128))
    # ddp_spawn trains in child processes and sends rank 0's weights back to this one
    changed = [not torch.equal(a, b) for a, b in zip(before, model.lifter.parameters(), strict=True)]
    assert sum(changed) > len(changed) // 2, changed


def test_per_action_breakdown_is_logged_and_consistent():
    torch.manual_seed(0)
    model = Baseline(backbone_kwargs=SMALL, evaluation=Evaluation(per_action=True))
    dm = SyntheticDataModule()
    results = quiet_trainer().test(model, datamodule=dm, verbose=False)[0]
    dm.setup()
    alpha = dm.sets.test["alpha"]
    counts = np.bincount(alpha.action, minlength=2)
    per = np.array([results["test/alpha/mpjpe/a"], results["test/alpha/mpjpe/b"]])
    # pooled = frame-weighted mean of the per-action values; action-wise = their plain mean
    assert results["test/alpha/mpjpe"] == pytest.approx((per * counts).sum() / counts.sum(), rel=1e-4)
    assert results["test/alpha/mpjpe_action_wise"] == pytest.approx(per.mean(), rel=1e-4)


def test_a_test_sets_own_protocol_fixes_flip_test():
    from helpers import synthetic_set

    from data_modules.base import DomainSets

    class FlipBeta(SyntheticDataModule):
        def build_sets(self) -> DomainSets:
            sets = super().build_sets()
            sets.test["beta_flip"] = synthetic_set(self.num_test + 1, self.seed + 3, "beta_flip")
            sets.test["beta_flip"].meta["flip_test"] = True
            return sets

    pl.seed_everything(0)
    model = Baseline(backbone_kwargs=SMALL)
    dm = FlipBeta(num_test=17)
    metrics = quiet_trainer().test(model, datamodule=dm, verbose=False)
    values = {k: v for d in metrics for k, v in d.items()}
    assert values["test/beta/mpjpe"] != values["test/beta_flip/mpjpe"]  # same poses, other protocol
    flipped = Baseline(backbone_kwargs=SMALL, evaluation=Evaluation(flip_test=True))
    flipped.load_state_dict(model.state_dict())
    again = {k: v for d in quiet_trainer().test(flipped, datamodule=dm, verbose=False) for k, v in d.items()}
    assert again["test/beta/mpjpe"] == pytest.approx(values["test/beta_flip/mpjpe"], rel=1e-6)


def test_results_tables_carry_the_data_modules_notes(tmp_path):
    class Noted(SyntheticDataModule):
        def result_notes(self) -> list[str]:
            return ["natural selection: DEVIATION from the reference"]

    model = Baseline(backbone_kwargs=SMALL)
    quiet_trainer(default_root_dir=tmp_path).test(model, datamodule=Noted(), verbose=False)
    text = (tmp_path / "results.md").read_text()
    assert "| alpha |" in text and "Note: natural selection: DEVIATION from the reference" in text


def test_time_reversal_tta_and_hip_thorax_rescale():
    torch.manual_seed(0)
    kw = {"filter_widths": [3], "channels": 16}
    model = Baseline(backbone="videopose", backbone_kwargs=kw).eval()
    x = torch.randn(8, 3, 17, 2)
    with torch.no_grad():
        plain = model.lift_for_eval(x)
        model.evaluation = Evaluation(time_flip_test=True)
        torch.testing.assert_close(model.lift_for_eval(x), (model(x) + model(x.flip(1))) / 2)
        # with the mirror it is AdaptPose's 4-way average, unchanged by reversing the input in time
        model.evaluation = Evaluation(time_flip_test=True, flip_test=True)
        four = model.lift_for_eval(x)
        torch.testing.assert_close(model.lift_for_eval(x.flip(1)), four, atol=1e-6, rtol=1e-6)
        assert not torch.allclose(four, plain, atol=1e-4)
        # per-batch rescale: the plain prediction's mean pelvis-thorax length becomes 0.52 m
        model.evaluation = Evaluation(rescale_hip_thorax=0.52)
        scaled = model.lift_for_eval(x)
        length = (plain[:, 8] - plain[:, 0]).norm(dim=-1).mean()
        torch.testing.assert_close(scaled, plain * 0.52 / length)
        assert float((scaled[:, 8] - scaled[:, 0]).norm(dim=-1).mean()) == pytest.approx(0.52, rel=1e-5)


def test_noise_robustness_option_adds_seeded_pixel_noise_to_the_test_2d_only(tmp_path):
    """Evaluation.noise_px (any method): sigma pixels on the test 2D, in each sample's screen units."""
    torch.manual_seed(0)
    seen: list[torch.Tensor] = []

    class Recording(Baseline):
        def lift_for_eval(self, pose2d, flip_test=None):
            seen.append(pose2d)
            return super().lift_for_eval(pose2d, flip_test)

    dm = SyntheticDataModule(num_test=400)
    clean = Recording(backbone_kwargs=SMALL)

    def run(evaluation: Evaluation) -> dict:
        model = Recording(backbone_kwargs=SMALL, evaluation=evaluation)
        model.load_state_dict(clean.state_dict())
        seen.clear()
        out = quiet_trainer().test(model, datamodule=dm, verbose=False)[0]
        return out, torch.cat(seen)

    base, inputs = run(Evaluation())
    noisy, noisy_inputs = run(Evaluation(noise_px=10.0, depth_error=True))
    assert "z error (mm)" in (tmp_path / "results.md").read_text()  # the printed table shows it
    again, again_inputs = run(Evaluation(noise_px=10.0, depth_error=True))
    # the synthetic sets use the H36M cameras (images 1000 px wide): 10 px = 0.02 screen units
    assert (noisy_inputs - inputs).std().item() == pytest.approx(0.02, rel=0.05)
    assert torch.equal(noisy_inputs, again_inputs) and noisy == again  # one seeded draw
    other, other_inputs = run(Evaluation(noise_px=10.0, noise_seed=1))
    assert not torch.equal(other_inputs, noisy_inputs)
    assert noisy["test/alpha/mpjpe"] != base["test/alpha/mpjpe"] and "test/alpha/z_error" in noisy
    # validation (checkpoint selection) stays clean
    model = Recording(backbone_kwargs=SMALL, evaluation=Evaluation(noise_px=10.0))
    model.load_state_dict(clean.state_dict())
    seen.clear()
    quiet_trainer().validate(model, datamodule=dm, verbose=False)
    val = torch.as_tensor(dm.sets.val.pose2d).float()
    torch.testing.assert_close(torch.cat(seen), val)
    with pytest.raises(ValueError, match="noise_px"):
        Evaluation(noise_px=-1.0)
    model.on_test_epoch_start()
    with pytest.raises(ValueError, match="image size"):
        model.test_input({"pose2d": val[:4]})


def test_trains_and_tests_under_bf16_autocast():
    pl.seed_everything(0)
    fit_and_test_in_bf16(
        Baseline(backbone_kwargs=SMALL), SyntheticDataModule(num_train=96, batch_size=32), max_epochs=1
    )
