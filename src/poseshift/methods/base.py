"""What every lifting method shares: a 2D-to-3D lifter and its evaluation on named test sets.

Methods subclass :class:`LiftingModule` and add their own networks, optimizers and
``training_step``. Validation runs on the source validation split (the default for
checkpoint selection); testing runs on every test set of the DataModule, each logged
under its own name: ``test/<set>/mpjpe``, ``test/<set>/pa_mpjpe``, ``test/<set>/pck``,
``test/<set>/auc``.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, ClassVar

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback
from torch import nn

from poseshift.geometry.skeleton import H36M17, Skeleton
from poseshift.metrics import pose_metrics
from poseshift.models import build_backbone


def _metric_key(name: str) -> str:
    # ModuleDict keys may not contain dots
    return name.replace(".", "_")


class LiftingModule(pl.LightningModule):
    """Base LightningModule: owns ``self.lifter`` and the evaluation protocol.

    Args:
        backbone: lifter architecture, one of ``poseshift.models.BACKBONES`` (ignored when a
            subclass passes its own ``lifter``).
        backbone_kwargs: constructor arguments of the backbone (sizes, dropout, ...).
        pck_joints: joints that PCK/AUC (and MPJPE) are computed over: ``"all"`` or a
            named set such as ``"official14"`` (the 3DHP protocol).
        flip_test: average the prediction with that of the left/right-mirrored input,
            as PoseAug does on 3DHP.
        monitor: metric that selects the best checkpoint (source validation by default).
        per_action: also report each test set's metrics per action and as the unweighted
            mean over actions (``<metric>_action_wise``, the VideoPose3D/EvoSkeleton H36M
            protocol); the plain keys stay the pooled mean over all frames.

    A test set whose ``PoseSet.meta`` has ``"eval_joints"`` (e.g. ``"official14"`` for 3DHP)
    is evaluated on those joints instead of ``pck_joints``.
    """

    # True for methods whose schedules (LR decay, stages, ...) need trainer.max_epochs >= 0
    needs_finite_epochs: ClassVar[bool] = False

    def __init__(
        self,
        backbone: str = "simple_baseline",
        backbone_kwargs: dict[str, Any] | None = None,
        pck_joints: str = "all",
        flip_test: bool = False,
        monitor: str = "val/mpjpe",
        per_action: bool = False,
        *,
        lifter: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.skeleton: Skeleton = H36M17
        self.lifter = lifter if lifter is not None else build_backbone(backbone, **(backbone_kwargs or {}))
        self.pck_joints = pck_joints
        self.flip_test = flip_test
        self.monitor = monitor
        self.per_action = per_action
        self.val_metrics = pose_metrics(joints=pck_joints)
        self.test_metrics = nn.ModuleDict()
        self.register_buffer("_flip_perm", torch.tensor(self.skeleton.flip_permutation), persistent=False)

    # -- lifting --------------------------------------------------------------------------------
    def forward(self, pose2d: torch.Tensor) -> torch.Tensor:
        """Lift screen-normalized 2D (B, J, 2) to root-relative 3D (B, J, 3) in metres."""
        return self.lifter(pose2d)

    def lift_for_eval(self, pose2d: torch.Tensor) -> torch.Tensor:
        """Prediction used for metrics and ``predict``: optionally flip-averaged."""
        pred = self(pose2d)
        if self.flip_test:
            mirror = torch.tensor([-1.0, 1.0], device=pose2d.device, dtype=pose2d.dtype)
            flipped = self(pose2d[..., self._flip_perm, :] * mirror)
            flipped = flipped[..., self._flip_perm, :] * torch.cat([mirror, mirror.new_ones(1)])
            pred = (pred + flipped) / 2
        return pred

    # -- evaluation -----------------------------------------------------------------------------
    def _test_poses(self) -> dict[str, Any]:
        """The DataModule's test PoseSets by name (empty for a DataModule without them)."""
        dm = getattr(self.trainer, "datamodule", None)
        sets = getattr(dm, "sets", None)
        return dict(sets.test) if sets is not None else {}

    @property
    def test_set_names(self) -> list[str]:
        dm = getattr(self.trainer, "datamodule", None)
        if dm is None or not hasattr(dm, "test_set_names"):
            return ["test"]
        return dm.test_set_names

    def setup(self, stage: str) -> None:
        if stage == "fit":
            self.check_schedule()
        if stage not in ("test", "fit"):
            return
        poses = self._test_poses()
        for name in self.test_set_names:
            key = _metric_key(name)
            if key in self.test_metrics:
                continue
            meta = poses[name].meta if name in poses else {}
            actions = poses[name].action_names if name in poses else ()
            self.test_metrics[key] = pose_metrics(
                joints=meta.get("eval_joints", self.pck_joints),
                per_action=self.per_action,
                num_actions=max(1, len(actions)) if self.per_action else None,
            )

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self.val_metrics.update(self.lift_for_eval(batch["pose2d"]), batch["pose3d"])

    def on_validation_epoch_end(self) -> None:
        # compute() syncs the summed states across processes, so no sync_dist here
        values = self.val_metrics.compute()
        self.log_dict({f"val/{k}": v for k, v in values.items()}, prog_bar=True)
        self.val_metrics.reset()

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int, dataloader_idx: int = 0) -> None:
        name = self.test_set_names[dataloader_idx]
        self.test_metrics[_metric_key(name)].update(
            self.lift_for_eval(batch["pose2d"]), batch["pose3d"], action=batch.get("action")
        )

    def on_test_epoch_end(self) -> None:
        poses = self._test_poses()
        for name in self.test_set_names:
            metrics = self.test_metrics[_metric_key(name)]
            actions = poses[name].action_names if name in poses else ()
            logged: dict[str, torch.Tensor] = {}
            # MetricCollection flattens per-action results to <metric>_all / _action_wise / _per_action
            for key, value in metrics.compute().items():
                if key.endswith("_per_action"):
                    metric = key.removesuffix("_per_action")
                    for i, per in enumerate(value):
                        if torch.isfinite(per):  # skip actions with no frames in this set
                            label = actions[i] if i < len(actions) else str(i)
                            logged[f"test/{name}/{metric}/{label}"] = per
                else:
                    logged[f"test/{name}/{key.removesuffix('_all')}"] = value
            self.log_dict(logged, add_dataloader_idx=False)
            metrics.reset()

    def predict_step(
        self, batch: dict[str, torch.Tensor], batch_idx: int, dataloader_idx: int = 0
    ) -> torch.Tensor:
        return self.lift_for_eval(batch["pose2d"])

    def configure_callbacks(self) -> list[Callback]:
        """Print test results; when fitting, keep the checkpoints under
        ``<default_root_dir>/checkpoints`` (:class:`~poseshift.callbacks.LiftingCheckpoint`: best by
        ``monitor``, ``last.ckpt`` every epoch, ``interrupted.ckpt`` on Ctrl-C), replacing
        Lightning's default one.

        Nothing is added twice (``test`` after ``fit`` on the same trainer), no checkpoint
        callback is added outside ``fit`` or with ``enable_checkpointing=False``.
        """
        from poseshift.callbacks import LiftingCheckpoint, ResultsTable

        trainer = self.trainer
        callbacks: list[Callback] = []
        if not any(isinstance(c, ResultsTable) for c in trainer.callbacks):
            callbacks.append(ResultsTable())
        fitting = trainer.state.fn == "fit"
        default = trainer.checkpoint_callback
        if fitting and default is not None and not isinstance(default, LiftingCheckpoint):
            dirpath = Path(trainer.default_root_dir) / "checkpoints"
            callbacks.append(LiftingCheckpoint(monitor=self.monitor, dirpath=dirpath))
        return callbacks

    def check_schedule(self) -> None:
        """Refuse (or, for methods without a schedule, loudly allow) ``trainer.max_epochs = -1``.

        Methods whose schedules depend on the run's length set ``needs_finite_epochs``.
        """
        max_epochs = self.trainer.max_epochs
        if max_epochs is not None and max_epochs >= 0:
            return
        name = type(self).__name__
        if not self.needs_finite_epochs and self.trainer.max_steps >= 0:
            return  # bounded by max_steps
        if self.needs_finite_epochs:
            raise ValueError(
                f"--trainer.max_epochs {max_epochs}: {name}'s schedule is defined over a finite number "
                "of epochs; set --trainer.max_epochs N"
            )
        warnings.warn(
            f"--trainer.max_epochs {max_epochs}: {name} trains until you stop it (Ctrl-C keeps "
            "checkpoints/last.ckpt; `--ckpt_path last` resumes)",
            UserWarning,
            stacklevel=2,
        )

    # -- helpers for manual optimization ----------------------------------------------------------
    def optimizer_step_with_clip(
        self, optimizer: torch.optim.Optimizer, loss: torch.Tensor, max_norm: float | None
    ) -> None:
        """zero_grad, backward, clip (if ``max_norm``), step: one player's update."""
        optimizer.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        if max_norm:
            self.clip_gradients(optimizer, gradient_clip_val=max_norm, gradient_clip_algorithm="norm")
        optimizer.step()
