"""AdversarialModule: a player step changes only its player, schedules, step counts, non-finite stops."""

from __future__ import annotations

import math

import pytest
import pytorch_lightning as pl
import torch
from helpers import SyntheticDataModule
from pytorch_lightning.callbacks import ModelCheckpoint
from torch import nn

from poseshift.methods import AdversarialModule, NonFiniteLossError, Player
from poseshift.trainers import quiet_trainer


class TwoPlayers(AdversarialModule):
    """A toy GAN on 3D poses: G perturbs them, D scores them; the lifter is a third player.

    Args:
        interval: when G's halving LR schedule advances.
        nan_at: G step at which G's loss becomes NaN (None: never).
        finite_check_every: passed to the base.
    """

    def __init__(
        self, interval: str = "step", nan_at: int | None = None, finite_check_every: int | None = None
    ):
        super().__init__(
            backbone_kwargs={"linear_size": 16, "num_stages": 1}, finite_check_every=finite_check_every
        )
        self.g, self.d = nn.Linear(3, 3), nn.Linear(3, 1)
        self.interval, self.nan_at = interval, nan_at

    def configure_players(self) -> dict[str, Player]:
        return {
            "g": Player(self.g, 1e-2, max_grad_norm=1.0, lr_lambda=lambda k: 0.5**k, interval=self.interval),
            "d": Player(self.d, 1e-2, optimizer="rmsprop"),
            "p": Player(self.lifter, 1e-3),
        }

    def training_step(self, batch, batch_idx):
        source = batch["source"]
        fake = self.g(source["pose3d"])
        adv = -self.d(fake).mean()
        if self.nan_at is not None and self.steps_of("g") + 1 == self.nan_at:
            adv = adv * float("nan")
        self.player_step("g", {"adv": adv, "size": fake.pow(2).mean()})
        self.player_step("d", self.d(fake.detach()).mean() - self.d(source["pose3d"]).mean())
        self.player_step("p", nn.functional.mse_loss(self(source["pose2d"]), source["pose3d"]))


def params(module: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def losses(model: TwoPlayers, x: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """One loss per player, each reaching the other players' weights too."""
    fake = model.g(x["pose3d"])
    return {
        "g": -model.d(fake).mean(),
        "d": model.d(fake).mean(),
        "p": nn.functional.mse_loss(model(x["pose2d"]), x["pose3d"]) + fake.mean(),
    }


def test_each_player_step_changes_only_its_player():
    pl.seed_everything(0)
    model = TwoPlayers()
    dm = SyntheticDataModule(num_train=64, batch_size=32)
    quiet_trainer(max_steps=0).fit(model, datamodule=dm)  # builds the optimizers, takes no step
    x = dm.training_poses()
    for name in ("g", "d", "p"):
        before = {n: params(m) for n, m in model.player_modules().items()}
        model.player_step(name, losses(model, x)[name])
        after = {n: params(m) for n, m in model.player_modules().items()}
        changed = {n for n in before if any(map(lambda a, b: not torch.equal(a, b), before[n], after[n]))}
        assert changed == {name}
        assert model.steps_of(name) == 1


def test_step_and_epoch_schedules_and_step_counts_are_state():
    pl.seed_everything(0)
    model = TwoPlayers(interval="step")
    dm = SyntheticDataModule(num_train=96, batch_size=32)
    quiet_trainer(max_epochs=2, limit_val_batches=0).fit(model, datamodule=dm)
    assert model.steps_of("g") == 6 and model.steps_of("d") == 6
    assert model.optimizers()[0].param_groups[0]["lr"] == pytest.approx(1e-2 * 0.5**6)
    per_epoch = TwoPlayers(interval="epoch")
    quiet_trainer(max_epochs=2, limit_val_batches=0).fit(per_epoch, datamodule=dm)
    assert per_epoch.optimizers()[0].param_groups[0]["lr"] == pytest.approx(1e-2 * 0.5**2)
    # the counts travel in the state dict (checkpoints, ddp_spawn's copy back)
    fresh = TwoPlayers()
    fresh.load_state_dict(model.state_dict())
    assert fresh.steps_of("g") == 6 and fresh.steps_of("p") == 6


def test_a_nan_loss_stops_training_naming_player_step_and_term_before_the_update():
    pl.seed_everything(0)
    model = TwoPlayers(nan_at=2)
    with pytest.raises(NonFiniteLossError, match=r"player 'g'.*step 2.*adv = nan"):
        quiet_trainer(max_epochs=1, limit_val_batches=0).fit(
            model, datamodule=SyntheticDataModule(num_train=96)
        )
    assert all(torch.isfinite(p).all() for p in model.g.parameters())  # the broken step was not taken


def test_a_deferred_check_writes_no_checkpoint_from_broken_weights(tmp_path):
    pl.seed_everything(0)
    model = TwoPlayers(nan_at=2, finite_check_every=1000)  # checked only before saving
    ckpt = ModelCheckpoint(dirpath=tmp_path, save_last=True)
    trainer = quiet_trainer(max_epochs=1, enable_checkpointing=True, callbacks=[ckpt], limit_val_batches=1)
    with pytest.raises(NonFiniteLossError, match="player 'g'"):
        trainer.fit(model, datamodule=SyntheticDataModule(num_train=96, batch_size=32))
    assert not list(tmp_path.glob("*.ckpt"))
    assert not math.isfinite(float(next(model.g.parameters()).sum()))  # they were broken


def test_players_train_under_bf16_mixed_precision():
    pl.seed_everything(0)
    model = TwoPlayers()
    before = params(model.g)
    trainer = quiet_trainer(max_epochs=1, limit_val_batches=0, precision="bf16-mixed")
    trainer.fit(model, datamodule=SyntheticDataModule(num_train=64, batch_size=32))
    assert model.steps_of("g") == 2 and all(p.dtype == torch.float32 for p in model.g.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, params(model.g), strict=True))


def test_checkpoints_carry_the_rng_state_and_a_resume_restores_it_before_its_first_batch(tmp_path):
    pl.seed_everything(0)
    model = TwoPlayers()
    dm = SyntheticDataModule(num_train=96, batch_size=32)
    draws: list[torch.Tensor] = []

    class SaveAndDraw(pl.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            if batch_idx == 0:
                trainer.save_checkpoint(tmp_path / "mid.ckpt")
                draws.append(torch.get_rng_state().clone())

    quiet_trainer(max_epochs=1, limit_val_batches=0, callbacks=[SaveAndDraw()]).fit(model, datamodule=dm)
    ckpt = torch.load(tmp_path / "mid.ckpt", weights_only=True)  # tensors only
    assert torch.equal(ckpt["rng_per_rank"][0]["torch"], draws[0])
    seen: list[torch.Tensor] = []
    resumed = TwoPlayers()
    torch.manual_seed(123)  # whatever the new process drew before
    resumed.on_train_batch_start = _restore_then_record(resumed, seen)
    quiet_trainer(max_epochs=1, limit_val_batches=0).fit(
        resumed, datamodule=dm, ckpt_path=tmp_path / "mid.ckpt"
    )
    # the first resumed batch starts from the state the interrupted run had after batch 0
    assert torch.equal(seen[0], draws[0]) and len(seen) == 2


def _restore_then_record(model, seen):
    original = model.on_train_batch_start

    def hook(batch, batch_idx):
        original(batch, batch_idx)
        seen.append(torch.get_rng_state().clone())

    return hook
