"""What PoseAug and AdaptPose share: a generator trained against discriminators, with the lifter's
error as feedback, whose in-band samples train the lifter.

:class:`FeedbackAugmentation` holds the pieces both methods run the same way, so each exists
once: the players and their linear LR decay (per epoch, or per generator step with a budget in
G steps), the warm-up (in epochs or G steps), the linear ramp of the feedback band centres
(beta), the grouped feedback errors and the three forms of the band loss, the BA/BL
regularizer, shuffled lifter passes over buffered pairs (exact step counts under DDP) and the
buffer's place in checkpoints. The subclasses hold their algorithm: what G generates, what
the discriminators see and when the lifter trains.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from poseshift.adversarial import (
    bone_change_regularizer,
    feedback_exp_loss,
    feedback_inband_loss,
    feedback_matrix,
    feedback_ratio_loss,
    grouped_pose_error,
)
from poseshift.methods.adversarial import AdversarialModule, Player

log = logging.getLogger(__name__)

FEEDBACK_FORMS = ("ratio", "exp", "inband")


class FeedbackAugmentation(AdversarialModule):
    """Base of the learnable-augmentation methods (PoseAug, AdaptPose).

    A subclass calls ``save_hyperparameters()`` with (at least) ``lr_g``, ``lr_d``, ``lr_p``,
    ``epochs``, ``warmup``, ``schedule_steps``, ``warmup_steps``, ``max_grad_norm``, ``beta_ba``,
    ``beta_rt``, ``band_ba``, ``band_rt``, ``w_fb_ba``, ``w_fb_rt``, ``feedback``, ``ba_range``,
    ``blr_reg``, ``batched_feedback`` and ``feedback_train_mode``, builds ``self.generator``
    (with ``ba``/``bl`` sub-nets or ``None``) and calls :meth:`_init_feedback_state`.

    Args:
        backbone: lifter architecture (see :class:`~poseshift.methods.base.LiftingModule`).
        backbone_kwargs: constructor arguments of the lifter.
        evaluation: evaluation options (:class:`~poseshift.methods.base.Evaluation`).
        pretrained: checkpoint whose lifter weights start the lifter when a fresh fit starts.
        finite_check_every: player steps between host checks that losses and gradients are finite.
        lifter: a ready lifter network (keyword only).
    """

    BUFFER_KEYS: tuple[str, ...] = ()
    BUFFER_CHECKPOINT_KEY = "augmentation_buffer"
    LOG_PREFIX = "augmentation"

    def _init_feedback_state(self, beta_ba: tuple[float, float], beta_rt: tuple[float, float]) -> None:
        """Register the feedback matrix, the current betas (state) and the empty pair buffer."""
        self.register_buffer("fb_matrix", feedback_matrix(), persistent=False)
        # current betas: state (saved in checkpoints), recomputed at every epoch start or G step
        self.register_buffer("beta", torch.tensor([beta_ba[0], beta_rt[0]]))
        self._buffer: dict[str, list[torch.Tensor]] = {k: [] for k in self.BUFFER_KEYS}

    # -- players ----------------------------------------------------------------------------------
    def _decaying_players(self, nets: dict[str, tuple[nn.Module | None, float]]) -> dict[str, Player]:
        """The players that exist, each Adam with the references' linear decay ``1 - c / (C + 1)``:
        per epoch over ``epochs``, or, with ``schedule_steps``, per G step (every player's LR)."""
        hp = self.hparams
        total = hp.schedule_steps if hp.schedule_steps is not None else self._epochs()
        interval = "g" if hp.schedule_steps is not None else "epoch"

        def decay(count: int) -> float:
            return 1.0 - min(count, total) / (total + 1)

        return {
            name: Player(module, lr, max_grad_norm=hp.max_grad_norm, lr_lambda=decay, interval=interval)
            for name, (module, lr) in nets.items()
            if module is not None
        }

    def _epochs(self) -> int:
        if self.hparams.epochs is not None:
            return int(self.hparams.epochs)
        trainer = getattr(self, "_trainer", None)
        max_epochs = getattr(trainer, "max_epochs", None) if trainer is not None else None
        return int(max_epochs) if max_epochs and max_epochs > 0 else 50

    def epochs_needed(self) -> str | None:
        hp = self.hparams
        if hp.schedule_steps is None and hp.epochs is None:  # E would silently fall back to 50
            return (
                f"{type(self).__name__}'s LR decay and beta ramp run over trainer.max_epochs "
                "(model.init_args.epochs is null); set --trainer.max_epochs N, "
                "--model.init_args.epochs E or --model.init_args.schedule_steps S"
            )
        return None

    def on_train_start(self) -> None:
        steps = self.hparams.schedule_steps
        batches = self.trainer.num_training_batches
        planned = (self.trainer.max_epochs or 0) * batches if math.isfinite(batches) else 0
        if steps is not None and planned > 0 and planned != steps:
            log.warning(
                "%s: the LR decay and the beta ramp run over schedule_steps=%d G steps, but the "
                "trainer runs %d (max_epochs x batches per epoch)",
                type(self).__name__,
                steps,
                planned,
            )

    # -- schedules ----------------------------------------------------------------------------------
    @property
    def epoch(self) -> int:
        """The references' 1-based epoch counter (their epoch 0 is evaluation only)."""
        return self.current_epoch + 1

    @property
    def global_step_g(self) -> int:
        """G steps taken so far (the references' ``train_iter_num``); kept in the checkpoint."""
        return self.steps_of("g")

    def beta_at(self, epoch: int) -> torch.Tensor:
        """(beta_ba, beta_rt) at a 1-based epoch: linear from start (epoch 0) to end (epoch E)."""
        return torch.tensor(self.beta_at_fraction(epoch / self._epochs()))

    def beta_at_fraction(self, fraction: float) -> tuple[float, float]:
        """(beta_ba, beta_rt) a ``fraction`` of the way through the schedule."""
        hp = self.hparams
        return (
            hp.beta_ba[0] + (hp.beta_ba[1] - hp.beta_ba[0]) * fraction,
            hp.beta_rt[0] + (hp.beta_rt[1] - hp.beta_rt[0]) * fraction,
        )

    @property
    def after_warmup(self) -> bool:
        """Feedback and lifter updates are on: after ``warmup`` epochs, or ``warmup_steps`` G steps."""
        if self.hparams.warmup_steps is not None:
            return self.global_step_g >= self.hparams.warmup_steps
        return self.epoch > self.hparams.warmup

    def on_train_epoch_start(self) -> None:
        if self.hparams.schedule_steps is None:
            self.beta.copy_(self.beta_at(self.epoch))
            self.log(f"{self.LOG_PREFIX}/beta_ba", self.beta[0])
            self.log(f"{self.LOG_PREFIX}/beta_rt", self.beta[1])

    def _step_beta(self, iteration: int) -> None:
        """With ``schedule_steps``: beta during G step k (1-based) is k / S of the way along the ramp."""
        steps = self.hparams.schedule_steps
        if steps is None:
            return
        beta_ba, beta_rt = self.beta_at_fraction(min(iteration + 1, steps) / steps)
        self.beta[0].fill_(beta_ba)
        self.beta[1].fill_(beta_rt)
        self.log_dict({f"{self.LOG_PREFIX}/beta_ba": beta_ba, f"{self.LOG_PREFIX}/beta_rt": beta_rt})

    # -- losses -----------------------------------------------------------------------------------------
    def regularizer(self, aug: dict[str, torch.Tensor]) -> torch.Tensor:
        """``R(mean_bones(1 - cos); m, w) + RL2(blr; t)`` over the sub-nets G has."""
        hp = self.hparams
        ba = aug["ba_diff"] if self.generator.ba is not None else None
        bl = aug["blr"] if self.generator.bl is not None else None
        if ba is None and bl is None:
            return aug["ba_diff"].new_zeros(())
        return bone_change_regularizer(ba, bl, tuple(hp.ba_range), hp.blr_reg)

    def feedback_errors(self, pairs: list[tuple[torch.Tensor, torch.Tensor]]) -> list[torch.Tensor]:
        """Grouped lifter errors (B, 3) of (lifter input, 3D target (B, J, 3)) pairs; only G's
        weights get gradients (the lifter's are left out of the step).

        The first pair is the un-augmented reference: its error carries no gradient to G, so it
        is evaluated without a graph. The others share one batched pass unless
        ``batched_feedback`` is off (then one pass each, as the references). The lifter runs in
        train mode when ``feedback_train_mode`` (the references: BatchNorm statistics move and
        dropout is on).
        """
        was_training = self.lifter.training
        self.lifter.train(self.hparams.feedback_train_mode)
        try:
            with torch.no_grad():
                pred = [self.lift(pairs[0][0])]
            rest = pairs[1:]
            if self.hparams.batched_feedback and len(rest) > 1:
                pred += list(self.lift(torch.cat([p[0] for p in rest])).split([len(p[0]) for p in rest]))
            else:
                pred += [self.lift(p[0]) for p in rest]
        finally:
            self.lifter.train(was_training)
        return [grouped_pose_error(y, p[1], self.fb_matrix) for y, p in zip(pred, pairs, strict=True)]

    def lift(self, pose2d: torch.Tensor) -> torch.Tensor:
        """The lifter on a batch of its inputs (subclasses adapt windows to the lifter here)."""
        return self.lifter(pose2d)

    def feedback_loss(self, orig: torch.Tensor, ba: torch.Tensor, rt: torch.Tensor) -> torch.Tensor:
        """``w_ba * F(L_ba, L_orig; beta_ba) + w_rt * F(L_rt, L_orig; beta_rt)`` in the chosen form:
        ``"ratio"`` (the code of both references), ``"exp"`` (PoseAug's paper) or ``"inband"``
        (AdaptPose's paper)."""
        hp = self.hparams
        beta_ba, beta_rt = self.beta[0], self.beta[1]
        if hp.feedback == "ratio":
            terms = (
                feedback_ratio_loss(ba, orig, beta_ba, hp.band_ba),
                feedback_ratio_loss(rt, orig, beta_rt, hp.band_rt),
            )
        elif hp.feedback == "inband":
            terms = (
                feedback_inband_loss(ba, orig, beta_ba, hp.band_ba),
                feedback_inband_loss(rt, orig, beta_rt, hp.band_rt),
            )
        else:
            terms = feedback_exp_loss(ba, orig, beta_ba), feedback_exp_loss(rt, orig, beta_rt)
        return hp.w_fb_ba * terms[0] + hp.w_fb_rt * terms[1]

    # -- the estimator ------------------------------------------------------------------------------------
    def estimator_pass(self, x2d: torch.Tensor, x3d: torch.Tensor, batch_size: int) -> torch.Tensor:
        """One shuffled pass of lifter steps over (lifter input, root-relative 3D) pairs; returns
        the mean loss."""
        n = len(x2d)
        if self._distributed:  # equal step counts on every process, or the all-reduces deadlock
            count = torch.tensor(n, device=x2d.device)
            dist.all_reduce(count, op=dist.ReduceOp.MIN)
            n = int(count)
        if n == 0:
            return torch.zeros((), device=x2d.device)
        perm = torch.randperm(len(x2d), device=x2d.device)[:n]
        total = x2d.new_zeros(())
        steps = 0
        self.lifter.train()
        for start in range(0, n, batch_size):
            idx = perm[start : start + batch_size]
            if len(idx) < 2:  # BatchNorm cannot train on one sample (the references skip it too)
                break
            with self.precision_context():  # the epoch-end passes run outside training_step
                mse = F.mse_loss(self.lift(x2d[idx]), x3d[idx])
            loss = self.player_step("p", mse)
            total, steps = total + loss.detach(), steps + 1
        return total / max(steps, 1)

    def _buffered(self, *keys: str, mask_key: str | None = None) -> list[torch.Tensor]:
        """The buffered batches of ``keys``, concatenated (rows where ``mask_key`` is true)."""
        out = [torch.cat([t.to(self.device) for t in self._buffer[k]]) for k in keys]
        if mask_key is not None:
            keep = torch.cat([t.to(self.device) for t in self._buffer[mask_key]])
            out = [t[keep] for t in out]
        return out

    # -- checkpoints ----------------------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        # a mid-epoch checkpoint carries the partial buffer so a resume trains on it too
        checkpoint[self.BUFFER_CHECKPOINT_KEY] = {k: [t.cpu() for t in v] for k, v in self._buffer.items()}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_load_checkpoint(checkpoint)
        saved = checkpoint.get(self.BUFFER_CHECKPOINT_KEY)
        if saved:
            self._buffer = {k: list(saved.get(k, [])) for k in self.BUFFER_KEYS}


__all__ = ["FEEDBACK_FORMS", "FeedbackAugmentation"]
