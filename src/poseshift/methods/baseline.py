"""Supervised lifting baseline: the lifter trained with MSE on source 2D-3D pairs.

Schedule as in PoseAug's ``run_baseline.py`` (METHODS.md section 1): Adam, learning rate
``lr * decay ** (step // decay_steps)`` updated per step, gradient norm clipped at 1. The one
player is the lifter ``"p"`` (see :class:`~poseshift.methods.adversarial.AdversarialModule`).
"""

from __future__ import annotations

from typing import Any

import torch

from poseshift.batches import TrainBatch
from poseshift.methods.adversarial import AdversarialModule, Player
from poseshift.methods.base import DEFAULT_EVALUATION, Evaluation


class Baseline(AdversarialModule):
    """Supervised baseline lifter.

    Args:
        backbone: lifter architecture, one of ``poseshift.models.BACKBONES``.
        backbone_kwargs: constructor arguments of the backbone (sizes, dropout, ...).
        lr: initial Adam learning rate (reference: 1e-3; 2e-2 for SemGCN).
        lr_decay: multiplicative learning-rate decay applied every ``lr_decay_steps`` steps.
        lr_decay_steps: optimizer steps between decays (reference: 100000).
        max_grad_norm: gradient-norm clip (reference: 1); 0 disables clipping.
        weight_decay: Adam weight decay (reference: 0).
        evaluation: evaluation options (:class:`~poseshift.methods.base.Evaluation`).
        finite_check_every: player steps between host checks that losses and gradients are finite
            (``None``: every step on CPU, every 100 on an accelerator).
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
        evaluation: Evaluation = DEFAULT_EVALUATION,
        finite_check_every: int | None = None,
    ) -> None:
        super().__init__(backbone, backbone_kwargs, evaluation, finite_check_every=finite_check_every)
        self.save_hyperparameters()

    def configure_players(self) -> dict[str, Player]:
        hp = self.hparams
        decay, every = hp.lr_decay, hp.lr_decay_steps

        def staircase(step: int) -> float:
            return decay ** (step // every)

        return {
            "p": Player(
                self.lifter,
                hp.lr,
                weight_decay=hp.weight_decay,
                max_grad_norm=hp.max_grad_norm,
                lr_lambda=staircase,
                interval="step",
            )
        }

    def training_step(self, batch: TrainBatch, batch_idx: int) -> torch.Tensor:
        source = batch["source"]
        loss = torch.nn.functional.mse_loss(self(source["pose2d"]), source["pose3d"])
        self.player_step("p", loss)
        self.log("train/loss", loss, prog_bar=True)
        return loss
