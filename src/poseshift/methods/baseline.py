"""Supervised lifting baseline: the lifter trained with MSE on source 2D-3D pairs.

Schedule as in PoseAug's ``run_baseline.py`` (METHODS.md section 1): Adam, learning rate
``lr * decay ** (step // decay_steps)`` updated per step, gradient norm clipped at 1.
"""

from __future__ import annotations

from typing import Any

import torch

from poseshift.methods.base import LiftingModule


class Baseline(LiftingModule):
    """Supervised baseline lifter.

    Args:
        lr: initial Adam learning rate (reference: 1e-3; 2e-2 for SemGCN).
        lr_decay: multiplicative learning-rate decay applied every ``lr_decay_steps`` steps.
        lr_decay_steps: optimizer steps between decays (reference: 100000).
        max_grad_norm: gradient-norm clip (reference: 1); 0 disables clipping.
        weight_decay: Adam weight decay (reference: 0).
        **kwargs: see :class:`LiftingModule` (backbone, evaluation options).
    """

    def __init__(
        self,
        backbone: str = "simple_baseline",
        backbone_kwargs: dict[str, Any] | None = None,
        lr: float = 1e-3,
        lr_decay: float = 0.96,
        lr_decay_steps: int = 100_000,
        max_grad_norm: float = 1.0,
        weight_decay: float = 0.0,
        pck_joints: str = "all",
        flip_test: bool = False,
        monitor: str = "val/mpjpe",
        per_action: bool = False,
    ) -> None:
        super().__init__(backbone, backbone_kwargs, pck_joints, flip_test, monitor, per_action)
        self.save_hyperparameters()
        self.automatic_optimization = False

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        optimizer = self.optimizers()
        pred = self(batch["pose2d"])
        loss = torch.nn.functional.mse_loss(pred, batch["pose3d"])
        self.optimizer_step_with_clip(optimizer, loss, self.hparams.max_grad_norm)
        self.lr_schedulers().step()
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def configure_optimizers(self) -> dict[str, Any]:
        optimizer = torch.optim.Adam(
            self.lifter.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay
        )
        decay, every = self.hparams.lr_decay, self.hparams.lr_decay_steps
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: decay ** (step // every))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
