"""PoseAug (Zhang et al., CVPR'21): a learnable, differentiable 2D-3D pose augmentor trained
against part-aware-KCS and 2D discriminators, with the lifter's error as feedback.

Numbers follow the public code (``jfzhang95/PoseAug``, METHODS.md section 2); where it and the
paper disagree both are available and the code's choice is the default:

* feedback: ``feedback="ratio"`` (code: range loss on the error ratio with the beta schedule)
  or ``"exp"`` (paper eq. 9, ``|1 - exp(L' - beta L)|``);
* estimator schedule: ``estimator_schedule="epoch"`` (code: one pass over the epoch's
  augmented buffer, then one over the real pairs, at the end of each epoch) or
  ``"iteration"`` (paper: one estimator step on augmented + real pairs after every G step).

Skeleton: poseshift's H36M-17 (16 bones) instead of the reference's 16 joints (15 bones).
The 9 shared BL ratios map to bones by :data:`poseshift.augment.BL_GROUPS_H36M17` (the
reference's thorax->head ratio scales both neck bones); the feedback joint groups put
head_top where the reference has its head joint (see
:data:`poseshift.adversarial.FEEDBACK_WEIGHTS_H36M17`).

Departures from the reference that only cut work (no gradient changes): the G adversarial
loss omits the constant ``MSE(D(real), 0)`` term (no gradient to G; the logged value lacks
it); each D loss runs real and fake through one forward (the Ds have no BatchNorm); the
feedback's reference pair is lifted without a graph (it carries no gradient to G). The three
feedback pairs go through the lifter in three passes, as the reference, so train-mode BatchNorm
normalizes each pair with its own statistics; ``batched_feedback`` (off) sends the BA and RT
pairs through one pass instead, which pools their BatchNorm statistics: a behaviour change, not
a speed-up (measured side by side it saves nothing). Regularizer: the code's element-wise form
(the paper's eq. 10 thresholds the mean instead); it is the one that produced the numbers.

The networks live in :mod:`poseshift.models` (:class:`~poseshift.models.PoseAugmentor`,
:class:`~poseshift.models.KCSDiscriminator`, :class:`~poseshift.models.PoseDiscriminator2D`),
the losses, pool and feedback in :mod:`poseshift.adversarial`, the schedules, feedback and
estimator passes it shares with AdaptPose in
:class:`~poseshift.methods.augmentation.FeedbackAugmentation`, the update mechanics in
:class:`~poseshift.methods.adversarial.AdversarialModule`.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from poseshift.adversarial import (
    FakePool,
    lsgan_discriminator_loss,
    lsgan_generator_loss,
)
from poseshift.augment import (
    augmentation_stats,
    in_frame,
    in_view,
    load_bone_templates,
    median_bone_lengths,
    reproject,
    swap_bone_lengths,
)
from poseshift.batches import TrainBatch
from poseshift.loggers import log_figure, log_histograms
from poseshift.methods.adversarial import Player
from poseshift.methods.augmentation import FeedbackAugmentation
from poseshift.methods.base import DEFAULT_EVALUATION, Evaluation
from poseshift.models import KCSDiscriminator, PoseAugmentor, PoseDiscriminator2D

BUFFER_KEYS = ("aug2d", "aug3d", "keep", "real2d", "real3d")


class PoseAug(FeedbackAugmentation):
    """PoseAug: lifter + augmentor G + discriminators D3d (part-aware KCS) and D2d.

    One ``training_step`` (manual optimization) on a source batch, as the reference:

    1. give the batch's 3D poses random bone-length templates and re-project them (the
       per-epoch swap; the lifter's own *real* pairs stay unswapped);
    2. **G step**: augment (BA -> BL -> RT), re-project with each sample's camera, loss
       ``w2d * L_adv(D2d(x_rt)) + w3d * L_adv(D3d(X_ba)) + wdiff * L_reg (+ L_fb after warm-up)``;
    3. every ``d_every`` G steps: **D3d step** (real: swapped 3D drawn independently; fake:
       ``X_ba`` through the pool), then **D2d step** (real: their projections, optionally mixed
       with target-domain 2D; fake: ``x_rt`` through the pool);
    4. **estimator**: keep the in-frame augmented pairs; ``"epoch"`` schedule: buffer them and,
       after the epoch's last batch, one pass over the buffer then one over the real pairs;
       ``"iteration"``: one step on augmented + real pairs now. Both only after warm-up.

    Schedulers (linear decay ``1 - e/(E+1)``) step once per epoch. Gradients of each player
    are clipped to ``max_grad_norm``.

    With manual optimization Lightning's ``global_step`` counts the steps of every optimizer (up
    to four per batch, plus the epoch-end estimator passes): bound runs with ``max_epochs`` and
    ``limit_train_batches``; :attr:`global_step_g` counts G steps like the reference.

    Args:
        backbone: the lifter architecture (see :class:`~poseshift.methods.base.LiftingModule`).
        backbone_kwargs: constructor arguments of the lifter.
        pretrained: path to a :class:`~poseshift.methods.Baseline` checkpoint whose lifter
            weights start the lifter (the reference requires one): a fresh ``fit`` without one
            is refused; ``"scratch"`` trains the lifter from random weights on purpose.
        lr_g: Adam learning rate of G (reference 1e-4).
        lr_d: Adam learning rate of both discriminators (1e-4).
        lr_p: Adam learning rate of the lifter (1e-4; 1e-3 for SemGCN).
        epochs: E of the LR decay and the beta schedule; ``None`` = ``trainer.max_epochs``.
        warmup: epochs of GAN-only training (no feedback, no estimator updates) (2).
        schedule_steps: count the LR decay and the beta ramp in G steps over this many G steps
            instead of in epochs over ``epochs`` (the reference runs ~75,000 G steps: 50 epochs
            of ~1,500); every player's LR then decays per G step. ``None`` = per epoch (code).
        warmup_steps: warm-up length in G steps instead of ``warmup`` epochs (the reference's 2
            epochs are ~3,000 G steps); ``None`` = ``warmup`` epochs.
        d_every: D steps once per this many G steps (``df`` = 2).
        max_grad_norm: gradient clip of every player (1).
        use_ba: bone-angle augmentation (Table 5 ablation switch).
        use_bl: bone-length augmentation.
        use_rt: rotation and translation augmentation.
        use_feedback: the lifter-error feedback loss.
        use_d2d: the 2D discriminator (Table 6).
        use_d3d: the 3D discriminator (Table 6).
        kcs_mode: ``"part"`` or ``"full"`` D3d input (Table 7).
        d3d_input: which pose D3d judges: ``"ba"`` (reference: BA output only) or ``"rt"``.
        feedback: ``"ratio"`` (code) or ``"exp"`` (paper eq. 9).
        beta_ba: (start, end) of the linear BA beta schedule (3 -> 5).
        beta_rt: (start, end) of the RT beta schedule (17 -> 17).
        band_ba: half width of the BA ratio band (2).
        band_rt: half width of the RT ratio band (15).
        w_fb_ba: weight of the BA feedback term (0.1).
        w_fb_rt: weight of the RT feedback term (0.01).
        w_adv2d: weight of G's D2d term (1).
        w_adv3d: weight of G's D3d term (6).
        w_reg: weight of the BA/BL regularizer (3).
        ba_range: (centre, half width) of the band on the mean BA ``1 - cos`` (0.205, 0.165).
        blr_reg: rectified-L2 threshold on the BL residuals (0.1).
        blr_limit: BL residual bound (0.2).
        g_width: generator MLP width (256).
        g_stages: generator MLP blocks (2).
        noise_dim: noise size per generator sub-net (48).
        d3d_width: KCS path width (256).
        pool_size: fake pool capacity per D (4096).
        template_swap: give G inputs and D-real poses random per-subject bone-length templates.
        bone_templates: explicit (T, nb) templates in metres (first choice when given).
        bone_templates_file: (T, nb) templates in metres from an ``.npy`` or ``.npz`` (key
            ``templates``), e.g. the reference's ``hm36s15678_bl_templates`` (second choice).
        template_subjects: per-subject median templates of these subjects, asked from the
            DataModule (H36M's files hold every subject), e.g. ``[S1, S5, S6, S7, S8]``: the
            reference swaps in those five even when it trains on S1 alone (third choice).
            ``None`` of the three = the training split's own subjects (for the full H36M protocol
            that is the reference's S1/5/6/7/8 table; for S1 alone a single template, no swap).
        extra_2d: "+Extra2D": mix the batch's unlabeled target-domain 2D (``batch["target"]``,
            served when the DataModule has ``train_target`` set) into D2d's real samples.
        extra_2d_fraction: fraction of each D2d real batch that comes from the target 2D.
        estimator_schedule: ``"epoch"`` (code) or ``"iteration"`` (paper).
        estimator_batch_size: batch of the epoch-end passes (``None`` = the training batch size).
        batched_feedback: one lifter pass over the BA and RT feedback pairs instead of two; train-mode
            BatchNorm then pools the two batches' statistics (a behaviour change; the reference
            and the default use one pass per pair).
        feedback_train_mode: keep the lifter in train() mode during feedback (reference: True).
        in_frame_lower: also drop augmented pairs with a coordinate < -1 (reference: False).
        in_frame_filter: which augmented pairs the lifter trains on: ``"reference"`` (no 2D
            coordinate above 1 after the clamped projection; about 40 % of the pairs kept at
            initialisation have a clamped joint whose 2D does not match its 3D) or ``"strict"``
            (also every joint in front of the camera and unclamped, :func:`~poseshift.augment.in_view`).
            Both kept fractions are logged.
        log_every_n_steps_hist: G steps between augmentation histograms (0 disables).
        figure_every_n_epochs: epochs between Figure-7 plots (0 disables).
        evaluation: evaluation options (:class:`~poseshift.methods.base.Evaluation`).
        finite_check_every: player steps between host checks that losses and gradients are finite
            (``None``: every step on CPU, every 100 on an accelerator).
    """

    needs_finite_epochs = True  # the LR decay and the beta ramp run over a planned length
    requires_pretrained = True  # the reference always starts from a trained baseline
    BUFFER_KEYS = BUFFER_KEYS
    BUFFER_CHECKPOINT_KEY = "poseaug_buffer"
    LOG_PREFIX = "poseaug"

    def __init__(
        self,
        backbone: str = "videopose",
        backbone_kwargs: dict[str, Any] | None = None,
        pretrained: str | None = None,
        lr_g: float = 1e-4,
        lr_d: float = 1e-4,
        lr_p: float = 1e-4,
        epochs: int | None = None,
        warmup: int = 2,
        schedule_steps: int | None = None,
        warmup_steps: int | None = None,
        d_every: int = 2,
        max_grad_norm: float = 1.0,
        use_ba: bool = True,
        use_bl: bool = True,
        use_rt: bool = True,
        use_feedback: bool = True,
        use_d2d: bool = True,
        use_d3d: bool = True,
        kcs_mode: str = "part",
        d3d_input: str = "ba",
        feedback: str = "ratio",
        beta_ba: tuple[float, float] = (3.0, 5.0),
        beta_rt: tuple[float, float] = (17.0, 17.0),
        band_ba: float = 2.0,
        band_rt: float = 15.0,
        w_fb_ba: float = 0.1,
        w_fb_rt: float = 0.01,
        w_adv2d: float = 1.0,
        w_adv3d: float = 6.0,
        w_reg: float = 3.0,
        ba_range: tuple[float, float] = (0.205, 0.165),
        blr_reg: float = 0.1,
        blr_limit: float = 0.2,
        g_width: int = 256,
        g_stages: int = 2,
        noise_dim: int = 48,
        d3d_width: int = 256,
        pool_size: int = 4096,
        template_swap: bool = True,
        bone_templates: list[list[float]] | None = None,
        bone_templates_file: str | None = None,
        template_subjects: list[str] | None = None,
        extra_2d: bool = False,
        extra_2d_fraction: float = 0.5,
        estimator_schedule: str = "epoch",
        estimator_batch_size: int | None = None,
        batched_feedback: bool = False,
        feedback_train_mode: bool = True,
        in_frame_lower: bool = False,
        in_frame_filter: str = "reference",
        log_every_n_steps_hist: int = 0,
        figure_every_n_epochs: int = 0,
        evaluation: Evaluation = DEFAULT_EVALUATION,
        finite_check_every: int | None = None,
    ) -> None:
        super().__init__(backbone, backbone_kwargs, evaluation, pretrained, finite_check_every)
        if feedback not in ("ratio", "exp"):
            raise ValueError(f"feedback must be 'ratio' or 'exp', got {feedback!r}")
        if estimator_schedule not in ("epoch", "iteration"):
            raise ValueError(f"estimator_schedule must be 'epoch' or 'iteration', got {estimator_schedule!r}")
        if d3d_input not in ("ba", "rt"):
            raise ValueError(f"d3d_input must be 'ba' or 'rt', got {d3d_input!r}")
        if in_frame_filter not in ("reference", "strict"):
            raise ValueError(f"in_frame_filter must be 'reference' or 'strict', got {in_frame_filter!r}")
        for name, value in (("schedule_steps", schedule_steps), ("warmup_steps", warmup_steps)):
            if value is not None and value < (1 if name == "schedule_steps" else 0):
                raise ValueError(f"{name} must be a positive number of G steps or null, got {value}")
        if not (use_ba or use_bl or use_rt):
            raise ValueError("PoseAug needs at least one of BA, BL, RT; use Baseline for none")
        self.save_hyperparameters()
        sk = self.skeleton
        self.generator = PoseAugmentor(sk, g_width, g_stages, noise_dim, use_ba, use_bl, use_rt, blr_limit)
        self.d3d = KCSDiscriminator(sk, kcs_mode, d3d_width) if use_d3d else None
        self.d2d = PoseDiscriminator2D(sk.num_joints) if use_d2d else None
        self.pool3d = FakePool(pool_size, (sk.num_joints, 3)) if use_d3d else None
        self.pool2d = FakePool(pool_size, (sk.num_joints, 2)) if use_d2d else None
        self._init_feedback_state(beta_ba, beta_rt)
        templates = (
            torch.tensor(bone_templates) if bone_templates is not None else torch.empty(0, sk.num_bones)
        )
        self.register_buffer("templates", templates)
        # per-process stores (not state): D-real source poses on the device, the epoch buffer
        self._real_pose: torch.Tensor | None = None
        self._real_cam: torch.Tensor | None = None
        self._stats: list[torch.Tensor] = []

    # -- players and data -------------------------------------------------------------------------
    def configure_players(self) -> dict[str, Player]:
        """G, D3d, D2d (those that exist) and the lifter, each Adam with the reference's linear decay."""
        hp = self.hparams
        return self._decaying_players(
            {
                "g": (self.generator, hp.lr_g),
                "d3d": (self.d3d, hp.lr_d),
                "d2d": (self.d2d, hp.lr_d),
                "p": (self.lifter, hp.lr_p),
            }
        )

    def on_fit_start(self) -> None:
        # the D-real pool: the whole source training set, moved to the device once
        if self.data_source is None:
            return  # no access to the whole source set: D-real poses come from the batch itself
        train = self.training_poses()
        pose = train["pose3d"] + train["root3d"][:, None]
        if self.templates.numel() == 0 and self.hparams.template_swap:
            self.templates = self._bone_templates(pose, train["subject"]).to(self.device)
        self._real_pose, self._real_cam = pose.to(self.device), train["intrinsics"].to(self.device)

    def _bone_templates(self, pose: torch.Tensor, subject: torch.Tensor) -> torch.Tensor:
        hp = self.hparams
        if hp.bone_templates_file:
            return load_bone_templates(hp.bone_templates_file, self.skeleton)
        if hp.template_subjects:
            accessor = getattr(self.data_source, "bone_length_templates", None)
            if accessor is None:
                raise ValueError(
                    f"template_subjects: {type(self.data_source).__name__} cannot give bone-length "
                    "templates of named subjects; use bone_templates_file instead"
                )
            return accessor(list(hp.template_subjects))
        return median_bone_lengths(pose, subject, self.skeleton)

    # -- the algorithm ------------------------------------------------------------------------------
    def training_step(self, batch: TrainBatch, batch_idx: int) -> None:
        hp = self.hparams
        source = batch["source"]
        cam = source["intrinsics"]
        iteration = self.global_step_g  # the reference's train_iter_num before this G step
        warm = self.after_warmup  # one answer for the whole iteration (it may flip at its G step)
        self._step_beta(iteration)  # with schedule_steps, beta follows G steps

        # 1. the G input: source 3D with random bone-length templates, re-projected
        pose = self._swap(source["pose3d"] + source["root3d"][:, None])
        pose2d = reproject(pose, cam)

        # 2. augmentor step (only G's weights get gradients)
        aug = self.generator(pose)
        aug2d_ba, aug2d_rt = reproject(aug["pose_ba"], cam), reproject(aug["pose_rt"], cam)
        fake3d = aug["pose_ba"] if hp.d3d_input == "ba" else aug["pose_rt"]
        losses: dict[str, torch.Tensor] = {}
        if self.d3d is not None:
            losses["adv3d"] = lsgan_generator_loss(self.d3d(fake3d), hp.w_adv3d)
        if self.d2d is not None:
            losses["adv2d"] = lsgan_generator_loss(self.d2d(aug2d_rt), hp.w_adv2d)
        losses["reg"] = hp.w_reg * self.regularizer(aug)
        if hp.use_feedback and warm:
            orig, ba, rt = self.feedback_errors(
                [(pose2d, pose), (aug2d_ba, aug["pose_ba"]), (aug2d_rt, aug["pose_rt"])]
            )
            losses["feedback"] = self.feedback_loss(orig, ba, rt)
            self.log_dict({"poseaug/ratio_ba": (ba / orig).mean(), "poseaug/ratio_rt": (rt / orig).mean()})
        g_loss = self.player_step("g", losses)
        self.log_dict({f"train/g_{k}": v.detach() for k, v in losses.items()})
        self.log("train/g_loss", g_loss.detach(), prog_bar=True)

        # 3. discriminator steps every d_every G steps (fakes are detached: G is untouched)
        if iteration % hp.d_every == 0 and (self.d3d is not None or self.d2d is not None):
            real3d, real2d = self._draw_real(pose, cam, batch.get("target"))
            if self.d3d is not None:
                d_loss = self.player_step(
                    "d3d", lsgan_discriminator_loss(self.d3d, real3d, self.pool3d(fake3d.detach()))
                )
                self.log("train/d3d_loss", d_loss.detach())
            if self.d2d is not None:
                d_loss = self.player_step(
                    "d2d", lsgan_discriminator_loss(self.d2d, real2d, self.pool2d(aug2d_rt.detach()))
                )
                self.log("train/d2d_loss", d_loss.detach())

        # 4. estimator: in-frame augmented pairs (root-relative targets) and the real pairs
        keep_reference = in_frame(aug2d_rt, lower=hp.in_frame_lower)
        keep_strict = keep_reference & in_frame(aug2d_rt, lower=True) & in_view(aug["pose_rt"].detach())
        keep = keep_strict if hp.in_frame_filter == "strict" else keep_reference
        aug2d, aug3d = aug2d_rt.detach(), aug["pose_rt"].detach()
        aug3d = aug3d - aug3d[:, :1]
        self.log("poseaug/kept_fraction", keep.float().mean())
        self.log("poseaug/kept_fraction_reference", keep_reference.float().mean())
        self.log("poseaug/kept_fraction_strict", keep_strict.float().mean())
        self._record_stats(aug)
        if not warm:
            return  # the lifter is not trained during warm-up
        if hp.estimator_schedule == "iteration":
            # boolean selection waits for the device; the paper's schedule needs it every step
            x2d = torch.cat([aug2d[keep], source["pose2d"]])
            x3d = torch.cat([aug3d[keep], source["pose3d"]])
            p_loss = self.player_step("p", F.mse_loss(self.lifter(x2d), x3d))
            self.log("train/p_loss", p_loss.detach(), prog_bar=True)
        else:  # buffered whole, filtered once per epoch
            for key, value in zip(
                BUFFER_KEYS, (aug2d, aug3d, keep, source["pose2d"], source["pose3d"]), strict=True
            ):
                self._buffer[key].append(value.detach())

    def on_train_epoch_batches_end(self) -> None:
        # the code's schedule: one pass over the epoch's in-frame augmented pairs, then one over
        # the real pairs, before the epoch's evaluation
        if self.hparams.estimator_schedule != "epoch" or not self._buffer["keep"]:
            return
        bs = self.hparams.estimator_batch_size or int(self._buffer["real2d"][0].shape[0])
        aug2d, aug3d = self._buffered("aug2d", "aug3d", mask_key="keep")
        real2d, real3d = self._buffered("real2d", "real3d")
        self.log("train/p_loss_aug", self.estimator_pass(aug2d, aug3d, bs))
        self.log("train/p_loss_real", self.estimator_pass(real2d, real3d, bs))
        for v in self._buffer.values():
            v.clear()

    # -- pieces of the step ---------------------------------------------------------------------------
    def _swap(self, pose: torch.Tensor) -> torch.Tensor:
        if not self.hparams.template_swap or self.templates.numel() == 0:
            return pose
        return swap_bone_lengths(pose, self.templates)

    def _draw_real(
        self, pose: torch.Tensor, cam: torch.Tensor, target: dict[str, torch.Tensor] | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Real samples for the Ds: swapped source poses drawn independently of the G batch, their 2D
        (a ``extra_2d_fraction`` of it replaced by target-domain 2D with ``extra_2d``)."""
        n = pose.shape[0]
        if self._real_pose is not None:
            idx = torch.randint(len(self._real_pose), (n,), device=self._real_pose.device)
            pose, cam = self._real_pose[idx], self._real_cam[idx]
        else:
            perm = torch.randperm(n, device=pose.device)
            pose, cam = pose[perm], cam[perm]
        pose = self._swap(pose)
        real2d = reproject(pose, cam)
        if self.hparams.extra_2d and self.hparams.extra_2d_fraction > 0:
            if target is None:
                raise RuntimeError(
                    "PoseAug extra_2d needs target-domain 2D in the batches: set the DataModule's "
                    "train_target to one of its unlabeled target sets"
                )
            extra = target["pose2d"]
            extra = extra[:, extra.shape[1] // 2] if extra.dim() == 4 else extra  # windows: centre frame
            k = min(int(round(n * self.hparams.extra_2d_fraction)), len(extra))
            real2d = torch.cat([extra[:k].to(real2d), real2d[k:]])
        return pose, real2d

    # -- epoch end, checkpoints -------------------------------------------------------------------------
    def on_train_epoch_end(self) -> None:
        super().on_train_epoch_end()
        every = self.hparams.figure_every_n_epochs
        if self._stats and every and self.epoch % every == 0 and self.trainer.is_global_zero:
            if self._real_pose is not None:
                n = min(2048, len(self._real_pose))
                source = self._real_pose[
                    torch.randint(len(self._real_pose), (n,), device=self._real_pose.device)
                ]
                from poseshift.plots import viewpoint_position_figure

                figure = viewpoint_position_figure(source, torch.cat(self._stats), self.skeleton)
                log_figure(self.loggers, "poseaug/figure7", figure, self.global_step)
        self._stats.clear()

    def _load_from_state_dict(
        self, state_dict: dict[str, Any], prefix: str, *args: Any, **kwargs: Any
    ) -> None:
        # the templates buffer is sized by the data (one row per source subject): take the saved shape
        saved = state_dict.get(prefix + "templates")
        if saved is not None:
            self.templates = torch.empty_like(saved, device=self.templates.device)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    # -- logging extras ------------------------------------------------------------------------------
    def _record_stats(self, aug: dict[str, torch.Tensor]) -> None:
        stats = augmentation_stats(aug["axis_angle"], aug["translation"], aug["ratios"], aug["ba_diff"])
        self.log_dict({f"aug/{k}_mean": v.mean() for k, v in stats.items()})
        self.log("aug/rotation_deg_std", stats["rotation_deg"].std())
        every = self.hparams.log_every_n_steps_hist
        if every and self.global_step_g % every == 0:
            log_histograms(self.loggers, {f"aug/{k}": v for k, v in stats.items()}, self.global_step)
        if self.hparams.figure_every_n_epochs and len(self._stats) < 8:  # a few batches are enough to plot
            self._stats.append(aug["pose_rt"].detach()[:256].cpu())
