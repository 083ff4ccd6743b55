"""What every lifting method shares: a 2D-to-3D lifter and its evaluation on named test sets.

Methods subclass :class:`LiftingModule` (or :class:`~poseshift.methods.adversarial.AdversarialModule`
for methods that train several networks) and add their own networks, optimizers and
``training_step``. Validation runs on the source validation split (the default for checkpoint
selection); testing runs on every test set of the DataModule, each logged under its own name:
``test/<set>/mpjpe``, ``test/<set>/pa_mpjpe``, ``test/<set>/pck``, ``test/<set>/auc``.

Evaluation facts (each set's joints and action names) come from the DataModule's documented
accessors (:class:`poseshift.batches.PoseDataSource`), never from its internals.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback, ModelCheckpoint
from torch import nn

from poseshift.batches import PoseBatch, PoseDataSource, TestSetInfo
from poseshift.geometry.camera import add_pixel_noise
from poseshift.geometry.skeleton import H36M17, Skeleton
from poseshift.metrics import pose_metrics
from poseshift.models import build_backbone


def _metric_key(name: str) -> str:
    # ModuleDict keys may not contain dots
    return name.replace(".", "_")


@dataclass(frozen=True)
class Evaluation:
    """Evaluation and checkpoint-selection options shared by every method.

    Args:
        pck_joints: joints that PCK/AUC (and MPJPE) are computed over: ``"all"`` or a named set
            such as ``"official14"`` (the 3DHP protocol). A test set's own evaluation joints
            (e.g. 3DHP's ``official14``) take precedence.
        flip_test: average the prediction with that of the left/right-mirrored input, as
            PoseAug does on 3DHP.
        monitor: metric that selects the best checkpoint (source validation by default).
        per_action: also report each test set's metrics per action and as the unweighted mean
            over actions (``<metric>_action_wise``, the VideoPose3D/EvoSkeleton H36M protocol);
            the plain keys stay the pooled mean over all frames.
        noise_px: robustness to detector noise: add Gaussian noise of this many pixels (standard
            deviation per coordinate) to the test 2D before lifting, converted to screen units
            with each sample's image width (Deng et al.'s Table 3 uses 5, 10, 15, 20); 0 = none.
            Test sets only (validation and checkpoint selection stay clean).
        noise_seed: seed of the test noise (each process draws from its own generator seeded
            with ``noise_seed + rank``, so noisy numbers are one fixed draw per process count).
        depth_error: also report ``z_error``, the mean per-joint depth error in mm (the paper's
            "only z" rows).
    """

    pck_joints: str = "all"
    flip_test: bool = False
    monitor: str = "val/mpjpe"
    per_action: bool = False
    noise_px: float = 0.0
    noise_seed: int = 0
    depth_error: bool = False

    def __post_init__(self) -> None:
        if self.noise_px < 0:
            raise ValueError(f"noise_px must be >= 0, got {self.noise_px}")


# the default of every method's ``evaluation`` argument (frozen, so one shared instance is safe)
DEFAULT_EVALUATION = Evaluation()
# checkpoints store it among the hyperparameters; let torch's safe (weights-only) loader accept it
torch.serialization.add_safe_globals([Evaluation])


class LiftingModule(pl.LightningModule):
    """Base LightningModule: owns ``self.lifter`` and the evaluation protocol.

    Args:
        backbone: lifter architecture, one of ``poseshift.models.BACKBONES`` (ignored when a
            subclass passes its own ``lifter``).
        backbone_kwargs: constructor arguments of the backbone (sizes, dropout, ...).
        evaluation: evaluation options (:class:`Evaluation`).
        lifter: a ready lifter network (keyword only; for subclasses that build their own).
    """

    def __init__(
        self,
        backbone: str = "simple_baseline",
        backbone_kwargs: dict[str, Any] | None = None,
        evaluation: Evaluation = DEFAULT_EVALUATION,
        *,
        lifter: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.skeleton: Skeleton = H36M17
        self.lifter = lifter if lifter is not None else build_backbone(backbone, **(backbone_kwargs or {}))
        self.evaluation = evaluation
        self.val_metrics = pose_metrics(joints=self.evaluation.pck_joints)
        self.test_metrics = nn.ModuleDict()
        self.register_buffer("_flip_perm", torch.tensor(self.skeleton.flip_permutation), persistent=False)
        self._noise_generator: torch.Generator | None = None

    # -- lifting --------------------------------------------------------------------------------
    def forward(self, pose2d: torch.Tensor) -> torch.Tensor:
        """Lift screen-normalized 2D (B, J, 2) to root-relative 3D (B, J, 3) in metres."""
        return self.lifter(pose2d)

    def lift_for_eval(self, pose2d: torch.Tensor) -> torch.Tensor:
        """Prediction used for metrics and ``predict``: optionally flip-averaged."""
        pred = self(pose2d)
        if self.evaluation.flip_test:
            mirror = torch.tensor([-1.0, 1.0], device=pose2d.device, dtype=pose2d.dtype)
            flipped = self(pose2d[..., self._flip_perm, :] * mirror)
            flipped = flipped[..., self._flip_perm, :] * torch.cat([mirror, mirror.new_ones(1)])
            pred = (pred + flipped) / 2
        return pred

    # -- data access ------------------------------------------------------------------------------
    @property
    def data_source(self) -> PoseDataSource | None:
        """The DataModule when it offers poseshift's accessors (:class:`PoseDataSource`), else None."""
        trainer = getattr(self, "_trainer", None)
        dm = getattr(trainer, "datamodule", None) if trainer is not None else None
        return dm if isinstance(dm, PoseDataSource) else None

    def training_poses(self) -> PoseBatch:
        """The whole labeled source training split (CPU tensors), from the DataModule's accessor."""
        source = self.data_source
        if source is None:
            raise RuntimeError(
                f"{type(self).__name__} needs the whole source training set: use a poseshift "
                "DataModule (data_modules.*), which provides training_poses()"
            )
        return source.training_poses()

    @property
    def test_set_names(self) -> list[str]:
        source = self.data_source
        return list(source.test_set_info()) if source is not None else ["test"]

    def _test_set_info(self) -> dict[str, TestSetInfo]:
        source = self.data_source
        return source.test_set_info() if source is not None else {}

    # -- evaluation -----------------------------------------------------------------------------
    def setup(self, stage: str) -> None:
        if stage not in ("test", "fit"):
            return
        infos = self._test_set_info()
        for name in self.test_set_names:
            key = _metric_key(name)
            if key in self.test_metrics:
                continue
            info = infos.get(name, TestSetInfo(name))
            per_action = self.evaluation.per_action
            self.test_metrics[key] = pose_metrics(
                joints=info.eval_joints if info.eval_joints is not None else self.evaluation.pck_joints,
                per_action=per_action,
                num_actions=max(1, len(info.action_names)) if per_action else None,
                depth_error=self.evaluation.depth_error,
            )

    def predict_for_metrics(self, batch: PoseBatch, pose2d: torch.Tensor) -> torch.Tensor:
        """The prediction a validation or test batch is scored on: ``lift_for_eval(pose2d)``.

        A method whose evaluation protocol uses more of the batch (e.g. a ground-truth scale)
        overrides this.
        """
        return self.lift_for_eval(pose2d)

    def validation_step(self, batch: PoseBatch, batch_idx: int) -> None:
        self.val_metrics.update(self.predict_for_metrics(batch, batch["pose2d"]), batch["pose3d"])

    def on_validation_epoch_end(self) -> None:
        # compute() syncs the summed states across processes, so no sync_dist here
        values = self.val_metrics.compute()
        self.log_dict({f"val/{k}": v for k, v in values.items()}, prog_bar=True)
        self.val_metrics.reset()

    def on_test_epoch_start(self) -> None:
        if self.evaluation.noise_px > 0:
            # one generator per process on the model's device: the draws stay on the device
            seed = self.evaluation.noise_seed + self.global_rank
            self._noise_generator = torch.Generator(device=self.device).manual_seed(seed)

    def test_input(self, batch: PoseBatch) -> torch.Tensor:
        """The 2D a test batch is lifted from: ``pose2d``, plus pixel noise with ``evaluation.noise_px``."""
        pose2d = batch["pose2d"]
        if self.evaluation.noise_px <= 0:
            return pose2d
        if "image_size" not in batch:
            raise ValueError(
                "evaluation.noise_px needs each test sample's image size (batch['image_size']) "
                "to convert pixels to screen units; this test set does not provide it"
            )
        return add_pixel_noise(
            pose2d, batch["image_size"][:, 0], self.evaluation.noise_px, self._noise_generator
        )

    def test_step(self, batch: PoseBatch, batch_idx: int, dataloader_idx: int = 0) -> None:
        name = self.test_set_names[dataloader_idx]
        self.test_metrics[_metric_key(name)].update(
            self.predict_for_metrics(batch, self.test_input(batch)),
            batch["pose3d"],
            action=batch.get("action"),
        )

    def on_test_epoch_end(self) -> None:
        infos = self._test_set_info()
        for name in self.test_set_names:
            metrics = self.test_metrics[_metric_key(name)]
            actions = infos[name].action_names if name in infos else ()
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

    def predict_step(self, batch: PoseBatch, batch_idx: int, dataloader_idx: int = 0) -> torch.Tensor:
        return self.lift_for_eval(batch["pose2d"])

    def configure_callbacks(self) -> list[Callback]:
        """Keep the best checkpoint by ``monitor`` (replacing Lightning's default one) and print results.

        With ``enable_checkpointing=False`` no checkpoint callback is added.
        """
        from poseshift.callbacks import ResultsTable

        callbacks: list[Callback] = [ResultsTable()]
        if self.trainer.checkpoint_callback is not None:
            callbacks.append(
                ModelCheckpoint(
                    monitor=self.evaluation.monitor,
                    mode="min",
                    save_last=True,
                    filename="best-{epoch:03d}",
                    auto_insert_metric_name=False,
                )
            )
        return callbacks
