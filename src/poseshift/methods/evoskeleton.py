"""EvoSkeleton's cascaded lifter (TAG-Net geometry stage) trained stage by stage (Algorithm 3).

The lifter is a sum of T residual-MLP learners (width 1024, R blocks, BN, dropout 0.5, as the
reference ``FCModel``). Inputs (all J 2D joints) and outputs (the J-1 non-root joints,
root-relative) are z-scored with training-set statistics, as the reference does; learner t
regresses the residual ``y - sum_{s<t} D_s(x)`` in that normalized space, with the same 2D
input. Training is sequential: epochs ``[t E, (t+1) E)`` train learner t only, with its own
Adam optimizer, while the earlier learners stay frozen in eval mode (their BN statistics and
dropout are off, as when the reference precomputes the current estimates after a stage).
The stage being trained is logged as ``train/stage`` and announced at every switch.

Data evolution is offline: train on an evolved PoseSet with
:class:`data_modules.evolved.EvolvedDataModule` (alone, or mixed with the original data).
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import nn

from poseshift.batches import TrainBatch
from poseshift.geometry.skeleton import H36M17
from poseshift.methods.adversarial import AdversarialModule, Player
from poseshift.methods.base import DEFAULT_EVALUATION, Evaluation
from poseshift.models.cascade import CascadeLifter

log = logging.getLogger(__name__)


class EvoSkeleton(AdversarialModule):
    """Cascaded lifter trained learner by learner (the paper's Algorithm 3).

    Set ``trainer.max_epochs`` to ``num_learners * epochs_per_stage``; with fewer epochs the
    later learners are simply never trained (and not used), with more the last learner
    keeps training.

    Args:
        num_learners: cascade length T (reference: 2 for S1, 3 for the evolved full setting).
        num_blocks: residual blocks R per learner (2 / 3).
        width: learner width (1024).
        dropout: dropout rate (0.5).
        epochs_per_stage: epochs spent on each learner (reference 200).
        lr: Adam learning rate of every learner (1e-3, constant in the reference).
        weight_decay: Adam weight decay (0).
        max_grad_norm: gradient-norm clip; 0 (reference) disables.
        evaluation: evaluation options (:class:`~poseshift.methods.base.Evaluation`).
        finite_check_every: player steps between host checks that losses and gradients are finite
            (``None``: every step on CPU, every 100 on an accelerator).

    Each learner is a player (``"learner0"``, ``"learner1"``, ...) with its own Adam.
    """

    needs_finite_epochs = True  # stages are epoch ranges

    def __init__(
        self,
        num_learners: int = 2,
        num_blocks: int = 2,
        width: int = 1024,
        dropout: float = 0.5,
        epochs_per_stage: int = 200,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        max_grad_norm: float = 0.0,
        evaluation: Evaluation = DEFAULT_EVALUATION,
        finite_check_every: int | None = None,
    ) -> None:
        cascade = CascadeLifter(H36M17, num_learners, num_blocks, width, dropout)
        super().__init__(evaluation=evaluation, finite_check_every=finite_check_every, lifter=cascade)
        self.save_hyperparameters()
        if epochs_per_stage < 1:
            raise ValueError(f"epochs_per_stage must be >= 1, got {epochs_per_stage}")
        self._announced = -1

    # -- schedule -----------------------------------------------------------------------------------
    def stage_of_epoch(self, epoch: int) -> int:
        """Learner trained during ``epoch`` (0-based)."""
        return min(epoch // self.hparams.epochs_per_stage, self.lifter.num_learners - 1)

    @property
    def stage(self) -> int:
        return self.stage_of_epoch(self.current_epoch)

    def freeze_for_stage(self, stage: int) -> None:
        """Train mode and gradients for learner ``stage`` only; the others frozen in eval mode."""
        for t, m in enumerate(self.lifter.learners):
            m.train(t == stage and self.training)
            m.requires_grad_(t == stage)

    # -- fitting -----------------------------------------------------------------------------------
    def on_fit_start(self) -> None:
        pose2d, pose3d = self._training_arrays()
        self.lifter.set_statistics(pose2d.to(self.device), pose3d.to(self.device))
        expected = self.lifter.num_learners * self.hparams.epochs_per_stage
        if self.trainer.max_epochs not in (None, -1) and self.trainer.max_epochs != expected:
            log.warning(
                "EvoSkeleton: trainer.max_epochs = %s but %d learners x %d epochs_per_stage = %d",
                self.trainer.max_epochs,
                self.lifter.num_learners,
                self.hparams.epochs_per_stage,
                expected,
            )

    def _training_arrays(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.data_source is not None:
            train = self.training_poses()
            return train["pose2d"], train["pose3d"]
        dm = getattr(self.trainer, "datamodule", None)
        if dm is None or not hasattr(dm, "train_dataloader"):
            raise RuntimeError("EvoSkeleton needs a DataModule to compute its z-score statistics")
        # a DataModule without poseshift's accessors: one pass over its training loader
        xs, ys = [], []
        for batch in dm.train_dataloader():
            source = batch.get("source", batch)
            xs.append(source["pose2d"])
            ys.append(source["pose3d"])
        return torch.cat(xs), torch.cat(ys)

    def on_train_epoch_start(self) -> None:
        stage = self.stage
        self.lifter.active.fill_(stage + 1)
        if stage != self._announced:
            first = stage * self.hparams.epochs_per_stage
            msg = (
                f"cascade stage {stage + 1}/{self.lifter.num_learners}: training learner {stage} "
                f"from epoch {first} (earlier learners frozen)"
            )
            log.info(msg)
            if self.trainer.is_global_zero:
                print(msg, flush=True)
            self._announced = stage

    def training_step(self, batch: TrainBatch, batch_idx: int) -> torch.Tensor:
        stage = self.stage
        self.freeze_for_stage(stage)
        lifter, source = self.lifter, batch["source"]
        x = lifter.normalize_input(source["pose2d"])
        target = lifter.normalize_target(source["pose3d"])
        if stage > 0:
            with torch.no_grad():
                target = target - lifter.predict_normalized(x, stage)
        loss = nn.functional.mse_loss(lifter.learners[stage](x), target)
        self.player_step(f"learner{stage}", loss)
        self.log("train/loss", loss, prog_bar=True)
        self.log(f"train/loss_stage{stage}", loss)
        self.log("train/stage", float(stage), prog_bar=True)
        return loss

    def on_train_end(self) -> None:
        # after a complete schedule every learner is trained and used
        if self.current_epoch >= self.lifter.num_learners * self.hparams.epochs_per_stage - 1:
            self.lifter.active.fill_(self.lifter.num_learners)

    def configure_players(self) -> dict[str, Player]:
        hp = self.hparams
        return {
            f"learner{t}": Player(m, hp.lr, weight_decay=hp.weight_decay, max_grad_norm=hp.max_grad_norm)
            for t, m in enumerate(self.lifter.learners)
        }

    def forward(self, pose2d: torch.Tensor) -> torch.Tensor:
        return self.lifter(pose2d)


def cascade_summary(module: EvoSkeleton) -> dict[str, Any]:
    """A few facts for logs: learners, active learners, parameters per learner."""
    lifter = module.lifter
    return {
        "learners": lifter.num_learners,
        "active": int(lifter.active),
        "parameters_per_learner": sum(p.numel() for p in lifter.learners[0].parameters()),
    }
