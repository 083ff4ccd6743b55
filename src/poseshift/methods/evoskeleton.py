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

from poseshift.geometry.skeleton import H36M17, Skeleton
from poseshift.methods.base import LiftingModule
from poseshift.models.blocks import ResidualMLP, check_pose2d, prepend_zero_root

log = logging.getLogger(__name__)


class CascadeLifter(nn.Module):
    """Sum of ``num_learners`` residual MLPs on z-scored 2D, output un-normalized to metres.

    Args:
        skeleton: joint layout (J joints in, J-1 non-root joints out).
        num_learners: cascade length T.
        num_blocks: residual blocks R per learner.
        width: hidden width d.
        dropout: dropout rate after every hidden layer.
    """

    receptive_field: int = 1

    def __init__(
        self,
        skeleton: Skeleton = H36M17,
        num_learners: int = 2,
        num_blocks: int = 2,
        width: int = 1024,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        if num_learners < 1:
            raise ValueError(f"num_learners must be >= 1, got {num_learners}")
        self.skeleton = skeleton
        self.num_joints = j = skeleton.num_joints
        self.learners = nn.ModuleList(
            ResidualMLP(2 * j, 3 * (j - 1), width=width, num_stages=num_blocks, dropout=dropout)
            for _ in range(num_learners)
        )
        self.register_buffer("in_mean", torch.zeros(2 * j))
        self.register_buffer("in_std", torch.ones(2 * j))
        self.register_buffer("out_mean", torch.zeros(3 * (j - 1)))
        self.register_buffer("out_std", torch.ones(3 * (j - 1)))
        # how many learners the prediction sums (grows as training proceeds; saved in checkpoints)
        self.register_buffer("active", torch.tensor(num_learners))

    @property
    def num_learners(self) -> int:
        return len(self.learners)

    def set_statistics(self, pose2d: torch.Tensor, pose3d: torch.Tensor) -> None:
        """z-score statistics from training 2D (N, J, 2) and root-relative 3D (N, J, 3)."""
        x = pose2d.reshape(len(pose2d), -1).double()
        y = pose3d[:, 1:].reshape(len(pose3d), -1).double()
        self.in_mean.copy_(x.mean(0))
        self.in_std.copy_(x.std(0).clamp_min(1e-6))
        self.out_mean.copy_(y.mean(0))
        self.out_std.copy_(y.std(0).clamp_min(1e-6))

    def normalize_input(self, pose2d: torch.Tensor) -> torch.Tensor:
        return (pose2d.reshape(len(pose2d), -1) - self.in_mean) / self.in_std

    def normalize_target(self, pose3d: torch.Tensor) -> torch.Tensor:
        return (pose3d[:, 1:].reshape(len(pose3d), -1) - self.out_mean) / self.out_std

    def predict_normalized(self, x: torch.Tensor, learners: int | None = None) -> torch.Tensor:
        """Sum of the first ``learners`` (default: the active ones) outputs, normalized space."""
        k = int(self.active) if learners is None else learners
        out = self.learners[0](x)
        for m in self.learners[1:k]:
            out = out + m(x)
        return out

    def forward(self, pose2d: torch.Tensor, learners: int | None = None) -> torch.Tensor:
        """(B, J, 2) screen-normalized 2D -> (B, J, 3) root-relative metres (zero root row)."""
        check_pose2d(pose2d, self.num_joints, type(self).__name__)
        y = self.predict_normalized(self.normalize_input(pose2d), learners)
        return prepend_zero_root(y * self.out_std + self.out_mean, self.num_joints)


class EvoSkeleton(LiftingModule):
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
        pck_joints, flip_test, monitor, per_action: see :class:`LiftingModule`.
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
        pck_joints: str = "all",
        flip_test: bool = False,
        monitor: str = "val/mpjpe",
        per_action: bool = False,
    ) -> None:
        cascade = CascadeLifter(H36M17, num_learners, num_blocks, width, dropout)
        super().__init__(
            pck_joints=pck_joints, flip_test=flip_test, monitor=monitor, per_action=per_action, lifter=cascade
        )
        self.save_hyperparameters()
        self.automatic_optimization = False
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
        dm = getattr(self.trainer, "datamodule", None)
        sets = getattr(dm, "sets", None)
        if sets is None and dm is not None and hasattr(dm, "setup"):
            dm.setup("fit")
            sets = getattr(dm, "sets", None)
        if sets is not None:
            return torch.from_numpy(sets.train.pose2d), torch.from_numpy(sets.train.pose3d)
        if dm is None or not hasattr(dm, "train_dataloader"):
            raise RuntimeError("EvoSkeleton needs a DataModule to compute its z-score statistics")
        # not a PoseDataModule: one pass over its training loader
        xs, ys = [], []
        for batch in dm.train_dataloader():
            xs.append(batch["pose2d"])
            ys.append(batch["pose3d"])
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

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        stage = self.stage
        self.freeze_for_stage(stage)
        lifter = self.lifter
        x = lifter.normalize_input(batch["pose2d"])
        target = lifter.normalize_target(batch["pose3d"])
        if stage > 0:
            with torch.no_grad():
                target = target - lifter.predict_normalized(x, stage)
        loss = nn.functional.mse_loss(lifter.learners[stage](x), target)
        optimizers = self.optimizers()
        # Lightning hands back a bare optimizer, not a list, when there is only one
        optimizer = optimizers[stage] if isinstance(optimizers, list) else optimizers
        self.optimizer_step_with_clip(optimizer, loss, self.hparams.max_grad_norm)
        self.log("train/loss", loss, prog_bar=True)
        self.log(f"train/loss_stage{stage}", loss)
        self.log("train/stage", float(stage), prog_bar=True)
        return loss

    def on_train_end(self) -> None:
        # after a complete schedule every learner is trained and used
        if self.current_epoch >= self.lifter.num_learners * self.hparams.epochs_per_stage - 1:
            self.lifter.active.fill_(self.lifter.num_learners)

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        return [
            torch.optim.Adam(m.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
            for m in self.lifter.learners
        ]

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
