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

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback
from torch import nn

from poseshift.batches import PoseBatch, PoseDataSource, TestSetInfo
from poseshift.geometry.camera import add_pixel_noise
from poseshift.geometry.skeleton import H36M17, Skeleton
from poseshift.metrics import pose_metrics
from poseshift.models import build_backbone
from poseshift.rng import capture_rng_per_rank, restore_rng, state_of_this_rank


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
        time_flip_test: for window inputs (B, T, J, 2), also average with the prediction of the
            time-reversed window; with ``flip_test`` this is AdaptPose's 4-way test-time
            augmentation (original, mirrored, reversed, mirrored and reversed). Not a standard
            protocol: off by default.
        rescale_hip_thorax: AdaptPose's code protocol, off by default (``None``): scale each
            evaluation *batch*'s predictions so that their mean pelvis-to-thorax length is this
            many metres (its code: 0.52, an anthropometric average). It uses a prior on the body
            size and its result depends on the evaluation batch size (the code's is 1024), so
            report it as a separate protocol.
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
    time_flip_test: bool = False
    rescale_hip_thorax: float | None = None
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

    # True for methods whose schedules (LR decay, stages, ...) are planned over a run that ends
    needs_finite_epochs: ClassVar[bool] = False

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
        self._rng_to_restore: dict[str, Any] | None = None
        self._noise_generator: torch.Generator | None = None

    # -- lifting --------------------------------------------------------------------------------
    def forward(self, pose2d: torch.Tensor) -> torch.Tensor:
        """Lift screen-normalized 2D (B, J, 2) to root-relative 3D (B, J, 3) in metres."""
        return self.lifter(pose2d)

    def lift_for_eval(self, pose2d: torch.Tensor, flip_test: bool | None = None) -> torch.Tensor:
        """Prediction used for metrics and ``predict``: optionally averaged over mirrored
        (``flip_test``; ``None``: ``evaluation.flip_test``) and time-reversed inputs, and optionally
        rescaled per batch (see :class:`Evaluation`)."""
        ev = self.evaluation
        inputs = [pose2d]
        if ev.time_flip_test and pose2d.dim() == 4:
            inputs.append(pose2d.flip(1))
        preds = [self(x) for x in inputs]
        scale = None
        if ev.rescale_hip_thorax is not None:  # from the plain prediction, as AdaptPose's code
            thorax = self.skeleton.index("thorax")
            length = torch.linalg.vector_norm(preds[0][:, thorax] - preds[0][:, 0], dim=-1).mean()
            scale = ev.rescale_hip_thorax / length.clamp_min(1e-8)
        if ev.flip_test if flip_test is None else flip_test:
            mirror = torch.tensor([-1.0, 1.0], device=pose2d.device, dtype=pose2d.dtype)
            back = torch.cat([mirror, mirror.new_ones(1)])
            preds += [
                self(x[..., self._flip_perm, :] * mirror)[..., self._flip_perm, :] * back for x in inputs
            ]
        pred = preds[0] if len(preds) == 1 else torch.stack(preds).mean(0)
        return pred if scale is None else pred * scale

    # -- exact resume ----------------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["rng_per_rank"] = capture_rng_per_rank()  # collective, as saving is under DDP

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        states = checkpoint.get("rng_per_rank")
        # restored before the first training batch, not now (see poseshift.rng)
        self._rng_to_restore = state_of_this_rank(states) if states else None

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        if self._rng_to_restore is not None:  # the first batch after a resume continues the saved draws
            restore_rng(self._rng_to_restore)
            self._rng_to_restore = None

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

    @property
    def validation_prefix(self) -> str:
        """``val``, or ``oracle:<set>`` when checkpoints are selected on a target test set."""
        source = self.data_source
        info = source.validation_info() if source is not None else None
        if info is None or not info.oracle:
            return "val"
        return info.name if info.name.startswith("oracle:") else f"oracle:{info.name}"

    @property
    def monitor(self) -> str:
        """The checkpoint metric: ``evaluation.monitor`` under the validation prefix."""
        monitor, prefix = self.evaluation.monitor, self.validation_prefix
        return prefix + monitor[3:] if monitor.startswith("val/") else monitor

    # -- evaluation -----------------------------------------------------------------------------
    def setup(self, stage: str) -> None:
        if stage == "fit":
            self.check_schedule()
        if stage not in ("test", "fit"):
            return
        infos = self._test_set_info()
        self._test_flip = {name: info.flip_test for name, info in infos.items()}
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

    def predict_for_metrics(
        self, batch: PoseBatch, pose2d: torch.Tensor, flip_test: bool | None = None
    ) -> torch.Tensor:
        """The prediction a validation or test batch is scored on: ``lift_for_eval(pose2d, flip_test)``.

        A method whose evaluation protocol uses more of the batch (e.g. a ground-truth scale)
        overrides this.
        """
        return self.lift_for_eval(pose2d, flip_test)

    def validation_step(self, batch: PoseBatch, batch_idx: int) -> None:
        self.val_metrics.update(self.predict_for_metrics(batch, batch["pose2d"]), batch["pose3d"])

    def on_validation_epoch_end(self) -> None:
        # compute() syncs the summed states across processes, so no sync_dist here
        values = self.val_metrics.compute()
        prefix = self.validation_prefix  # oracle selection is labelled in every logged key
        self.log_dict({f"{prefix}/{k}": v for k, v in values.items()}, prog_bar=True)
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
        flip = getattr(self, "_test_flip", {}).get(name)
        self.test_metrics[_metric_key(name)].update(
            self.predict_for_metrics(batch, self.test_input(batch), flip),
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

    def epochs_needed(self) -> str | None:
        """Why the method needs ``trainer.max_epochs`` even when ``max_steps`` ends the run (None:
        it does not); methods whose schedules count epochs over the run override this."""
        return None

    def check_schedule(self, max_epochs: int | None = None, max_steps: int | None = None) -> None:
        """Refuse ``trainer.max_epochs = -1`` where the schedule cannot run without it.

        A run that never ends is refused by methods with a planned schedule
        (``needs_finite_epochs``) and allowed, with a loud warning, otherwise; a run ended by
        ``max_steps`` is refused only when :meth:`epochs_needed` says why. The limits default to
        the attached trainer's (the CLI asks before the trainer starts).
        """
        if max_epochs is None and max_steps is None:
            max_epochs, max_steps = self.trainer.max_epochs, self.trainer.max_steps
        if max_epochs is not None and max_epochs >= 0:
            return
        name = type(self).__name__
        if max_steps is not None and max_steps >= 0:  # the run ends after max_steps
            why = self.epochs_needed()
            if why:
                raise ValueError(f"--trainer.max_epochs {max_epochs}: {why}")
            return
        if self.needs_finite_epochs:
            raise ValueError(
                f"--trainer.max_epochs {max_epochs}: {name}'s schedule is planned over the run's length, "
                "and this run would never end; set --trainer.max_epochs N (or --trainer.max_steps N)"
            )
        warnings.warn(
            f"--trainer.max_epochs {max_epochs}: {name} trains until you stop it (Ctrl-C keeps "
            "checkpoints/last.ckpt; `--ckpt_path last` resumes)",
            UserWarning,
            stacklevel=2,
        )
