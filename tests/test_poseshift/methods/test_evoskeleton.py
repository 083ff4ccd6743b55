"""EvoSkeleton cascade: z-scoring, residual stages, stage-by-stage training with one optimizer each."""

from __future__ import annotations

import copy

import pytest
import pytorch_lightning as pl
import torch
from helpers import REPO_ROOT, SyntheticDataModule, fit_and_test_in_bf16

from poseshift.methods.evoskeleton import CascadeLifter, EvoSkeleton
from poseshift.trainers import quiet_trainer


def _state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return all(torch.equal(a[k], b[k]) for k in a)


def test_cascade_lifter_shapes_and_zscore():
    lifter = CascadeLifter(num_learners=3, num_blocks=1, width=16)
    g = torch.Generator().manual_seed(0)
    x2d = torch.randn(64, 17, 2, generator=g) * 0.3 + 0.1
    y3d = torch.randn(64, 17, 3, generator=g) * 0.2
    y3d[:, 0] = 0
    lifter.set_statistics(x2d, y3d)
    z = lifter.normalize_input(x2d)
    assert torch.allclose(z.mean(0), torch.zeros(34), atol=1e-5)
    assert torch.allclose(z.std(0), torch.ones(34), atol=1e-4)
    assert torch.allclose(lifter.normalize_target(y3d).std(0), torch.ones(48), atol=1e-4)
    lifter.eval()
    out = lifter(x2d)
    assert out.shape == (64, 17, 3) and torch.equal(out[:, 0], torch.zeros(64, 3))
    # the prediction is the sum of the learners in normalized space, then un-normalized
    parts = sum(m(z) for m in lifter.learners)
    assert torch.allclose(out[:, 1:].reshape(64, -1), parts * lifter.out_std + lifter.out_mean, atol=1e-5)
    assert torch.allclose(
        lifter(x2d, learners=1)[:, 1:].reshape(64, -1),
        lifter.learners[0](z) * lifter.out_std + lifter.out_mean,
        atol=1e-5,
    )


class _Snapshots(pl.Callback):
    """State of every learner at the end of each training epoch."""

    def __init__(self) -> None:
        self.states: list[list[dict[str, torch.Tensor]]] = []

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.states.append([_state(m) for m in pl_module.lifter.learners])


def test_each_stage_trains_only_its_own_learner(tmp_path, capsys):
    model = EvoSkeleton(num_learners=2, num_blocks=1, width=32, epochs_per_stage=2, lr=1e-2)
    initial = [_state(m) for m in model.lifter.learners]
    snaps = _Snapshots()
    dm = SyntheticDataModule(num_train=128, num_test=16, batch_size=32)
    trainer = quiet_trainer(
        max_epochs=4,
        logger=pl.loggers.CSVLogger(tmp_path),
        callbacks=[snaps],
        num_sanity_val_steps=0,
        log_every_n_steps=1,
    )
    model.configure_callbacks = lambda: []  # keep the test free of checkpoint files
    trainer.fit(model, datamodule=dm)
    s = snaps.states
    assert len(s) == 4
    # epochs 0-1 (stage 0): learner 0 changes, learner 1 (weights and BN buffers) does not
    assert not _same(s[0][0], initial[0]) and not _same(s[1][0], s[0][0])
    assert _same(s[1][1], initial[1])
    # epochs 2-3 (stage 1): learner 0 frozen, learner 1 trains
    assert _same(s[3][0], s[1][0])
    assert not _same(s[3][1], s[1][1])
    # one Adam per learner, each over its own parameters only
    opts = trainer.optimizers
    assert len(opts) == 2
    for opt, learner in zip(opts, model.lifter.learners, strict=True):
        assert {id(p) for g in opt.param_groups for p in g["params"]} == {id(p) for p in learner.parameters()}
    # the schedule is visible: logged stage and a message at each switch
    assert float(trainer.logged_metrics["train/stage"]) == 1.0
    out = capsys.readouterr().out
    assert "cascade stage 1/2" in out and "cascade stage 2/2" in out
    assert int(model.lifter.active) == 2
    # evaluation works unchanged through LiftingModule
    results = trainer.test(model, datamodule=dm, verbose=False)[0]
    assert {"test/alpha/mpjpe", "test/beta/mpjpe"} <= set(results)


def test_later_stage_fits_the_residual():
    model = EvoSkeleton(num_learners=2, num_blocks=1, width=16, epochs_per_stage=1)
    lifter = model.lifter
    g = torch.Generator().manual_seed(1)
    batch = {"pose2d": torch.randn(16, 17, 2, generator=g), "pose3d": torch.randn(16, 17, 3, generator=g)}
    lifter.set_statistics(batch["pose2d"], batch["pose3d"])
    model.freeze_for_stage(1)
    assert not lifter.learners[0].training and lifter.learners[1].training
    assert not any(p.requires_grad for p in lifter.learners[0].parameters())
    x = lifter.normalize_input(batch["pose2d"])
    residual = lifter.normalize_target(batch["pose3d"]) - lifter.predict_normalized(x, 1)
    # a learner that outputs exactly the residual would make the cascade exact
    lifter.eval()
    full = lifter.predict_normalized(x, 1) + residual
    assert torch.allclose(
        full * lifter.out_std + lifter.out_mean, batch["pose3d"][:, 1:].reshape(16, -1), atol=1e-5
    )


def test_stage_of_epoch_schedule():
    model = EvoSkeleton(num_learners=3, num_blocks=1, width=8, epochs_per_stage=5)
    assert [model.stage_of_epoch(e) for e in (0, 4, 5, 9, 10, 14, 15, 30)] == [0, 0, 1, 1, 2, 2, 2, 2]
    with pytest.raises(ValueError):
        EvoSkeleton(epochs_per_stage=0)


def test_checkpoint_keeps_statistics_and_active_learners():
    model = EvoSkeleton(num_learners=2, num_blocks=1, width=8)
    model.lifter.in_mean.fill_(0.5)
    model.lifter.active.fill_(1)
    clone = EvoSkeleton(num_learners=2, num_blocks=1, width=8)
    clone.load_state_dict(copy.deepcopy(model.state_dict()))
    assert torch.equal(clone.lifter.in_mean, model.lifter.in_mean) and int(clone.lifter.active) == 1


def test_mocap_configs_parse(capsys):

    from poseshift.cli import main

    root = REPO_ROOT / "experiments" / "evoskeleton"
    for name in ("mocap_BC.yaml", "mocap_BCE.yaml"):
        assert main(["fit", "--config", str(root / name), "--print_config"]) == 0
        out = capsys.readouterr().out
        assert "EvoSkeleton" in out and "epochs_per_stage: 20" in out
    assert "EvolvedDataModule" in out and "MocapDataModule" in out


def test_trains_both_learners_and_tests_under_bf16_autocast():
    pl.seed_everything(0)
    model = EvoSkeleton(num_learners=2, num_blocks=1, width=16, epochs_per_stage=1)
    fit_and_test_in_bf16(model, SyntheticDataModule(num_train=96, batch_size=32), max_epochs=2)
