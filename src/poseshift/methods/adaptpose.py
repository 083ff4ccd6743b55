"""AdaptPose (Gholami et al., CVPR'22): a learnable motion generator, adapted to a target domain's
2D poses by a domain discriminator, whose selected 2D-3D motions fine-tune a temporal lifter.

Numbers and update order follow the released code (``mgholamikn/AdaptPose``, METHODS.md
section 3); where the paper and the code disagree both are here and the default is the code's,
the one that produced the published numbers:

======================  ==============================================  ==========================
switch                  code (default)                                  paper
======================  ==============================================  ==========================
camera_sample           ``"code"``: ``torch.normal``, no gradient to     ``"reparameterized"``
                        mu and sigma (the R trunk learns only via the
                        angle unit)
proj_loss               ``"code"``: no gradient to G (its forward on     ``"paper"``: eq. 18-19,
                        target 2D, in train mode, still moves the        gradient through the
                        lifter's BatchNorm statistics)                   generated 2D
feedback                ``"ratio"``: zero inside the band, quadratic    ``"inband"``: eq. 21,
                        outside                                          quadratic inside, zero out
d3d_perturb_deg         0 (commented out in the code)                    10 (sec. 4.3)
d3d_full_kcs            off (not in the code)                            on: a KCS branch on the
                                                                         unperturbed 3D
d2d_kcs                 off (``Pos2dDiscriminator_kcs`` never built)     on: 2D-KCS branch
static_root             on: the generated motion has no trajectory       (not said)
selection               RT ratio mean over groups in (1, 33), i.e.       eq. 14 with a, b
                        ``selection_band=(17, 16)``
domain_2d               ``"target"`` (Ski: the code uses source 2D,      ``"target"``
                        ``"source"``; also Table 5's rows without DD)
======================  ==============================================  ==========================

Skeleton: poseshift's H36M-17 (16 bones) for the code's 16 joints; the BL groups and feedback
weights map as in PoseAug (:mod:`poseshift.methods.poseaug`). The temporal stride (the code's 1
or 2, the paper's 2..5) is the DataModule's ``random_stride_min``/``random_stride``.

Departures that only cut work or fix the bookkeeping: the G adversarial terms omit the
constant real-sample term (as the code, which uses only the fake term); each D loss runs real
and fake through one forward; the feedback's BA and RT pairs share one lifter pass
(``batched_feedback``); the code's sections overlap by one iteration (301 of every 300) and
loop over the whole loader five times per epoch, here an epoch is cut into ``sections`` equal
parts; a one-frame window gets the whole BG3 rotation (the code's ``t / T`` gives none).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from poseshift.adversarial import (
    FakePool,
    hard_ratio_mask,
    lsgan_discriminator_loss,
    lsgan_generator_loss,
    projection_shape_loss,
    scale_normalized_error,
)
from poseshift.augment import augmentation_stats, in_frame, perturb_bone_directions, reproject
from poseshift.batches import PoseBatch, TrainBatch
from poseshift.geometry.camera import frobenius_normalize, project
from poseshift.loggers import log_histograms
from poseshift.methods.adversarial import Player
from poseshift.methods.augmentation import FeedbackAugmentation
from poseshift.methods.base import DEFAULT_EVALUATION, Evaluation
from poseshift.models import KCSDiscriminator, MotionGenerator, PoseDiscriminator2D

BUFFER_KEYS = ("fake2d", "fake3d", "keep", "real2d", "real3d")
ESTIMATOR_SCHEDULES = ("sections", "iteration")
PROJ_LOSSES = ("code", "paper", "off")
DOMAINS_2D = ("target", "source")
POSE2D_NORMS = ("screen", "frobenius")


class AdaptPose(FeedbackAugmentation):
    """AdaptPose: lifter + motion generator G + D3d (part-aware KCS) + domain discriminator D2d.

    One ``training_step`` (manual optimization) on a batch of source windows, as the code:

    1. **G step**: generate windows (bone motion -> BL -> RT, one camera per window), project
       them with each sample's intrinsics, loss ``w2d * L_adv(D2d(mid frame of x_rt)) + w3d *
       L_adv(D3d(mid frame of X_ba)) + wreg * L_diff (+ feedback + w_proj * L_proj after warm-up)``;
    2. every ``d_every`` G steps: **D3d step** (real: source 3D frames drawn independently,
       optionally perturbed; fake: the BA middle frames through the pool), then **D2d step**
       (real: the batch's target-domain 2D middle frames; fake: the generated ones, pooled);
    3. **selection**: keep the generated windows whose RT error ratio lies in the band and whose
       every frame is in the image (kept fractions logged);
    4. **estimator** (after warm-up): ``"sections"`` (code): buffer the selected windows, one
       lifter pass over them at the end of each of ``sections`` parts of the epoch (or every
       ``section_steps`` G steps), and one pass over the epoch's real source windows at its
       end; ``"iteration"``: one lifter step on selected + real windows after every G step.

    All players decay linearly per epoch (code) or, with ``schedule_steps``, per G step. The
    lifter may take windows (VideoPose3D 27 frames, the default) or single frames (it then
    sees every window's middle frame).

    Memory: with ``"sections"`` the epoch's real windows wait on the device for the epoch-end
    pass (the code re-reads them from its loader): about 3.7 KB per 27-frame window, ~6 GB for
    an H36M epoch of 1.5 M windows, plus one section's selected windows; a mid-epoch checkpoint
    carries them too (so a resume trains on them).

    Args:
        backbone: the lifter architecture (see :class:`~poseshift.methods.base.LiftingModule`).
        backbone_kwargs: constructor arguments of the lifter; ``None`` with ``videopose`` gives
            the code's 27-frame model (``filter_widths: [3, 3, 3]``).
        pretrained: path to a poseshift checkpoint whose lifter weights start the lifter (the
            code starts from a VideoPose3D trained on the source).
        lr_g: Adam learning rate of G (1e-4).
        lr_d: Adam learning rate of both discriminators (1e-4).
        lr_p: Adam learning rate of the lifter (1e-4).
        epochs: E of the LR decay and the beta ramp; ``None`` = ``trainer.max_epochs``.
        warmup: epochs of GAN-only training (no feedback loss, no lifter updates) (2).
        schedule_steps: run the LR decay and the beta ramp over this many G steps instead of
            ``epochs`` epochs (the code: ~75,000 = 50 epochs of ~1,500); ``None`` = per epoch.
        warmup_steps: warm-up length in G steps instead of ``warmup`` epochs.
        estimator_schedule: ``"sections"`` (code) or ``"iteration"`` (a plain step schedule).
        sections: parts per epoch, each followed by a lifter pass over its selected windows (5).
        section_steps: G steps per section instead (a budget in steps); ``None`` = ``sections``.
        d_every: D steps once per this many G steps (2).
        max_grad_norm: gradient clip of every player (1).
        bone_generator: ``"bg3"`` (code and paper), ``"bg1"`` or ``"bg2"`` (paper Table 6).
        use_ba: generate bone motion (Table 5 "BG" with ``use_bl``).
        use_bl: generate bone-length changes.
        use_rt: generate cameras (Table 5 "Cam").
        rotation: camera rotation: ``"axis_angle"``, ``"quaternion"`` or ``"euler"`` (Table 7).
        probabilistic_camera: sample the rotation from a learned Gaussian (Table 7).
        camera_sample: ``"code"`` (``torch.normal``: no gradient to mu, sigma) or ``"reparameterized"``.
        camera_head: ``"hidden"`` (code: the R trunk's hidden units are mu, sigma, angle) or ``"linear"``.
        static_root: every generated frame's root at the generated translation (code); ``False``
            keeps the source trajectory, turned with the window.
        use_d3d: the 3D discriminator.
        use_d2d: the 2D (domain) discriminator.
        domain_2d: D2d's real samples: ``"target"`` (the batch's target-domain 2D; needs the
            DataModule's ``train_target``) or ``"source"`` (source 2D drawn independently: the
            code's Ski setting, and Table 5's rows without the domain discriminator).
        d2d_kcs: add the paper's 2D-KCS branch to D2d.
        d3d_full_kcs: add the paper's full-KCS branch on the unperturbed 3D to D3d.
        d3d_perturb_deg: turn every bone of D3d's real poses by a random angle up to this many
            degrees (paper: 10; code: 0).
        d3d_input: which generated pose D3d judges: ``"ba"`` (code) or ``"rt"``.
        use_feedback: the hard-ratio feedback loss.
        feedback: ``"ratio"`` (code) or ``"inband"`` (paper eq. 21).
        beta_ba: (start, end) of the BA band centre c_BA, linear over the schedule (3 -> 5).
        beta_rt: (start, end) of the RT band centre c_RT (17 -> 17).
        band_ba: half width d_BA (2).
        band_rt: half width d_RT (15).
        w_fb_ba: weight of the BA feedback term (0.1).
        w_fb_rt: weight of the RT feedback term (0.01).
        proj_loss: ``"code"``, ``"paper"`` or ``"off"`` (see the module docstring).
        w_proj: weight of L_proj (code: 1e-4; the paper's eq. 22 sums it with weight 1).
        w_adv2d: weight of G's D2d term (1).
        w_adv3d: weight of G's D3d term (6).
        w_reg: weight of L_diff (3).
        ba_range: (centre, half width) of the band on the per-frame mean BA ``1 - cos``.
        blr_reg: rectified-L2 threshold on the BL residuals (0.1).
        blr_limit: BL residual bound (0.2).
        use_selection: keep only generated windows inside the selection band (Table 5 "Select").
        selection_band: (a, b): keep when ``(mean RT error ratio - a)^2 < b^2`` (code: 17, 16).
        g_width: generator MLP width (256).
        g_stages: generator MLP blocks (2).
        noise_dim: noise size of the bone-motion, R and T sub-nets (45).
        bl_noise_dim: noise size of the BL sub-net (48).
        frames: window length G generates; ``None`` = the lifter's receptive field.
        d3d_width: KCS path width (256).
        pool_size: fake pool capacity per D (4096).
        pose2d_norm: how generated 2D is normalized for D2d and the lifter: ``"screen"`` (the
            projection, H36M/3DHP/3DPW) or ``"frobenius"`` (root-centred, unit Frobenius norm:
            the paper's Ski setting; the data must be normalized the same way).
        estimator_batch_size: batch of the lifter passes (``None`` = the training batch size).
        batched_feedback: one lifter pass over the BA and RT feedback windows instead of two.
        feedback_train_mode: keep the lifter in train() mode in the feedback passes (code: True).
        log_every_n_steps_hist: G steps between generator histograms (0 disables).
        evaluation: evaluation options (:class:`~poseshift.methods.base.Evaluation`).
        finite_check_every: player steps between host checks that losses and gradients are finite
            (``None``: every step on CPU, every 100 on an accelerator).
    """

    BUFFER_KEYS = BUFFER_KEYS
    BUFFER_CHECKPOINT_KEY = "adaptpose_buffer"
    LOG_PREFIX = "adaptpose"

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
        estimator_schedule: str = "sections",
        sections: int = 5,
        section_steps: int | None = None,
        d_every: int = 2,
        max_grad_norm: float = 1.0,
        bone_generator: str = "bg3",
        use_ba: bool = True,
        use_bl: bool = True,
        use_rt: bool = True,
        rotation: str = "axis_angle",
        probabilistic_camera: bool = True,
        camera_sample: str = "code",
        camera_head: str = "hidden",
        static_root: bool = True,
        use_d3d: bool = True,
        use_d2d: bool = True,
        domain_2d: str = "target",
        d2d_kcs: bool = False,
        d3d_full_kcs: bool = False,
        d3d_perturb_deg: float = 0.0,
        d3d_input: str = "ba",
        use_feedback: bool = True,
        feedback: str = "ratio",
        beta_ba: tuple[float, float] = (3.0, 5.0),
        beta_rt: tuple[float, float] = (17.0, 17.0),
        band_ba: float = 2.0,
        band_rt: float = 15.0,
        w_fb_ba: float = 0.1,
        w_fb_rt: float = 0.01,
        proj_loss: str = "code",
        w_proj: float = 1e-4,
        w_adv2d: float = 1.0,
        w_adv3d: float = 6.0,
        w_reg: float = 3.0,
        ba_range: tuple[float, float] = (0.205, 0.165),
        blr_reg: float = 0.1,
        blr_limit: float = 0.2,
        use_selection: bool = True,
        selection_band: tuple[float, float] = (17.0, 16.0),
        g_width: int = 256,
        g_stages: int = 2,
        noise_dim: int = 45,
        bl_noise_dim: int = 48,
        frames: int | None = None,
        d3d_width: int = 256,
        pool_size: int = 4096,
        pose2d_norm: str = "screen",
        estimator_batch_size: int | None = None,
        batched_feedback: bool = True,
        feedback_train_mode: bool = True,
        log_every_n_steps_hist: int = 0,
        evaluation: Evaluation = DEFAULT_EVALUATION,
        finite_check_every: int | None = None,
    ) -> None:
        if backbone_kwargs is None and backbone == "videopose":
            backbone_kwargs = {"filter_widths": [3, 3, 3]}  # the code's 27-frame VideoPose3D
        super().__init__(backbone, backbone_kwargs, evaluation, pretrained, finite_check_every)
        for name, value, allowed in (
            ("estimator_schedule", estimator_schedule, ESTIMATOR_SCHEDULES),
            ("proj_loss", proj_loss, PROJ_LOSSES),
            ("domain_2d", domain_2d, DOMAINS_2D),
            ("pose2d_norm", pose2d_norm, POSE2D_NORMS),
            ("feedback", feedback, ("ratio", "inband")),
            ("d3d_input", d3d_input, ("ba", "rt")),
        ):
            if value not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
        for name, value in (("schedule_steps", schedule_steps), ("section_steps", section_steps)):
            if value is not None and value < 1:
                raise ValueError(f"{name} must be a positive number of G steps or null, got {value}")
        if warmup_steps is not None and warmup_steps < 0:
            raise ValueError(f"warmup_steps must be >= 0 or null, got {warmup_steps}")
        if sections < 1 or d_every < 1:
            raise ValueError(f"sections and d_every must be >= 1, got {sections} and {d_every}")
        if not (use_ba or use_bl or use_rt):
            raise ValueError("AdaptPose needs at least one of BA, BL, RT; use Baseline for none")
        if not 0 <= d3d_perturb_deg <= 180:
            raise ValueError(f"d3d_perturb_deg must be in [0, 180], got {d3d_perturb_deg}")
        rf = int(getattr(self.lifter, "receptive_field", 1))
        frames = rf if frames is None else frames
        if rf not in (1, frames):
            raise ValueError(
                f"the lifter takes {rf}-frame windows but G generates {frames}-frame ones; "
                "a lifter must take the whole window or single frames (it then sees the middle one)"
            )
        self.save_hyperparameters()
        sk = self.skeleton
        self.generator = MotionGenerator(
            sk,
            g_width,
            g_stages,
            noise_dim,
            bl_noise_dim,
            frames,
            bone_generator,
            use_ba,
            use_bl,
            use_rt,
            blr_limit,
            rotation,
            probabilistic_camera,
            camera_sample,
            camera_head,
            static_root,
        )
        self.d3d = KCSDiscriminator(sk, "part", d3d_width, full_branch=d3d_full_kcs) if use_d3d else None
        self.d2d = PoseDiscriminator2D(sk.num_joints, kcs_branch=d2d_kcs, skeleton=sk) if use_d2d else None
        self.pool3d = FakePool(pool_size, (sk.num_joints, 3)) if use_d3d else None
        self.pool2d = FakePool(pool_size, (sk.num_joints, 2)) if use_d2d else None
        self._init_feedback_state(beta_ba, beta_rt)
        # per-process stores of the whole source training set (D-real draws), not state
        self._real_pose3d: torch.Tensor | None = None
        self._real_pose2d: torch.Tensor | None = None
        self._epoch_batches = 0

    # -- players and data -------------------------------------------------------------------------
    def configure_players(self) -> dict[str, Player]:
        """G, D3d, D2d (those that exist) and the lifter, each Adam with the code's linear decay."""
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
        # D3d's reals (and D2d's with domain_2d="source"): the whole source set, on the device once
        train = self.training_poses()
        self._real_pose3d = train["pose3d"].to(self.device)
        self._real_pose2d = train["pose2d"].to(self.device)

    @property
    def receptive_field(self) -> int:
        """Frames the lifter reads (1 = single frames)."""
        return int(getattr(self.lifter, "receptive_field", 1))

    def lift(self, pose2d: torch.Tensor) -> torch.Tensor:
        """The lifter on windows (B, T, J, 2) or frames (B, J, 2); a single-frame lifter gets the
        windows' middle frames."""
        if pose2d.dim() == 4 and self.receptive_field == 1:
            pose2d = pose2d[:, pose2d.shape[1] // 2]
        return self.lifter(pose2d)

    def forward(self, pose2d: torch.Tensor) -> torch.Tensor:
        """Lift screen-normalized 2D windows or frames to root-relative 3D (B, J, 3), metres."""
        return self.lift(pose2d)

    def _source_window(self, source: PoseBatch) -> torch.Tensor:
        """The batch's absolute camera-frame 3D windows (B, T, J, 3) (T = 1 for single frames)."""
        if "pose3d_window" in source:
            return source["pose3d_window"] + source["root3d_window"][:, :, None]
        if source["pose2d"].dim() == 4:
            raise RuntimeError(
                "AdaptPose generates 3D windows from the source's 3D windows: set the DataModule's "
                "window_3d: true (with receptive_field > 1)"
            )
        return (source["pose3d"] + source["root3d"][:, None])[:, None]

    def _norm2d(self, pose2d: torch.Tensor) -> torch.Tensor:
        return frobenius_normalize(pose2d) if self.hparams.pose2d_norm == "frobenius" else pose2d

    def _domain_2d(self, batch: TrainBatch, n: int) -> torch.Tensor:
        """D2d's real 2D frames (n, J, 2): target-domain middle frames, or source 2D draws."""
        if self.hparams.domain_2d == "source":
            assert self._real_pose2d is not None
            pose = self._real_pose2d[torch.randint(len(self._real_pose2d), (n,), device=self.device)]
            return pose[:, pose.shape[1] // 2] if pose.dim() == 4 else pose
        target = batch.get("target")
        if target is None:
            raise RuntimeError(
                "AdaptPose's domain discriminator needs target-domain 2D in the batches: set the "
                "DataModule's train_target to one of its unlabeled target sets (or domain_2d: source)"
            )
        pose = target["pose2d"]
        return pose[:, pose.shape[1] // 2] if pose.dim() == 4 else pose

    def _target_windows(self, batch: TrainBatch, reals2d: torch.Tensor) -> torch.Tensor:
        """The lifter's view of target-domain 2D for L_proj: the served windows (paper), or, as the
        code, each target frame repeated over the window."""
        target = batch.get("target")
        if self.hparams.proj_loss == "paper" and target is not None and self.hparams.domain_2d == "target":
            return target["pose2d"]
        rf = self.receptive_field
        return reals2d if rf == 1 else reals2d[:, None].expand(-1, rf, -1, -1)

    # -- the algorithm ------------------------------------------------------------------------------
    def training_step(self, batch: TrainBatch, batch_idx: int) -> None:
        self._epoch_batches += 1
        hp = self.hparams
        source = batch["source"]
        window = self._source_window(source)
        cam = source["intrinsics"][:, None]  # (B, 1, 9): one camera for all frames of a window
        iteration = self.global_step_g  # the code's train_iter_num before this G step
        warm = self.after_warmup  # one answer for the whole iteration (it may flip at its G step)
        self._step_beta(iteration)
        mid = window.shape[1] // 2

        # 1. generator step (only G's weights get gradients)
        gen = self.generator(window)
        screen_rt = reproject(gen["pose_rt"], cam)
        x2d_ba, x2d_rt = self._norm2d(reproject(gen["pose_ba"], cam)), self._norm2d(screen_rt)
        fake3d = (gen["pose_ba"] if hp.d3d_input == "ba" else gen["pose_rt"])[:, mid]
        fake2d = x2d_rt[:, mid]
        reals2d = (
            self._domain_2d(batch, len(window)) if (self.d2d is not None or hp.proj_loss != "off") else None
        )
        losses: dict[str, torch.Tensor] = {}
        if self.d3d is not None:
            losses["adv3d"] = lsgan_generator_loss(self.d3d(fake3d), hp.w_adv3d)
        if self.d2d is not None:
            losses["adv2d"] = lsgan_generator_loss(self.d2d(fake2d), hp.w_adv2d)
        losses["reg"] = hp.w_reg * self.regularizer(gen)
        # the code evaluates the feedback every step (in train mode its passes move the lifter's
        # BatchNorm statistics during warm-up too) and adds it to G's loss after warm-up
        rt3d = gen["pose_rt"][:, mid]
        with torch.set_grad_enabled(warm):
            orig, ba, rt = self.feedback_errors(
                [
                    (self._norm2d(reproject(window, cam)), window[:, mid]),
                    (x2d_ba, gen["pose_ba"][:, mid]),
                    (x2d_rt, rt3d),
                ]
            )
            proj = (
                self.projection_loss(batch, reals2d, fake2d, source["intrinsics"])
                if reals2d is not None
                else None
            )
        ratio_rt = (rt / orig).detach()
        if warm and hp.use_feedback:
            losses["feedback"] = self.feedback_loss(orig, ba, rt)
        if warm and proj is not None:
            losses["proj"] = hp.w_proj * proj
        self.log_dict(
            {"adaptpose/ratio_ba": (ba / orig).detach().mean(), "adaptpose/ratio_rt": ratio_rt.mean()}
        )
        g_loss = self.player_step("g", losses)
        self.log_dict({f"train/g_{k}": v.detach() for k, v in losses.items()})
        self.log("train/g_loss", g_loss.detach(), prog_bar=True)

        # 2. discriminator steps every d_every G steps (fakes detached: G is untouched)
        if iteration % hp.d_every == 0:
            if self.d3d is not None:
                self.log("train/d3d_loss", self.player_step("d3d", self._d3d_loss(fake3d.detach())).detach())
            if self.d2d is not None:
                assert reals2d is not None
                d_loss = lsgan_discriminator_loss(self.d2d, reals2d, self.pool2d(fake2d.detach()))
                self.log("train/d2d_loss", self.player_step("d2d", d_loss).detach())

        # 3. selection: in the RT ratio band, every frame in the image (the projection before any
        # normalization; the code checks only the upper bound)
        in_image = in_frame(screen_rt.detach()).all(-1)
        in_band = hard_ratio_mask(ratio_rt, *hp.selection_band)
        keep = in_image & in_band if hp.use_selection else in_image
        self.log_dict(
            {
                "adaptpose/kept_fraction": keep.float().mean(),
                "adaptpose/kept_in_frame": in_image.float().mean(),
                "adaptpose/kept_in_band": in_band.float().mean(),
            }
        )
        self._record_stats(gen)
        if not warm:
            return  # the lifter is not trained during warm-up

        # 4. estimator: selected generated windows and the real source windows
        fake_in, fake_out = self._lifter_view(x2d_rt.detach()), (rt3d - rt3d[:, :1]).detach()
        real_in, real_out = self._lifter_view(source["pose2d"]), source["pose3d"]
        if hp.estimator_schedule == "iteration":
            # boolean selection waits for the device; a step schedule needs it every step
            x2d, x3d = torch.cat([fake_in[keep], real_in]), torch.cat([fake_out[keep], real_out])
            self.log("train/p_loss", self.player_step("p", F.mse_loss(self.lift(x2d), x3d)).detach())
            return
        for key, value in zip(BUFFER_KEYS, (fake_in, fake_out, keep, real_in, real_out), strict=True):
            self._buffer[key].append(value.detach())
        if self._section_ends(batch_idx):
            self._fake_pass()

    def _lifter_view(self, pose2d: torch.Tensor) -> torch.Tensor:
        # what the lifter reads of a window: all of it, or its middle frame (smaller buffers)
        if pose2d.dim() == 4 and self.receptive_field == 1:
            return pose2d[:, pose2d.shape[1] // 2]
        return pose2d

    def _d3d_loss(self, fake3d: torch.Tensor) -> torch.Tensor:
        """LSGAN D3d loss: source frames drawn independently (part paths: perturbed) vs pooled fakes."""
        assert self.d3d is not None and self.pool3d is not None and self._real_pose3d is not None
        n = len(fake3d)
        real = self._real_pose3d[torch.randint(len(self._real_pose3d), (n,), device=fake3d.device)]
        fake = self.pool3d(fake3d)
        if self.hparams.d3d_perturb_deg > 0:
            perturbed = perturb_bone_directions(real, self.hparams.d3d_perturb_deg, self.skeleton)
            return lsgan_discriminator_loss(self.d3d, (real, perturbed), (fake, fake))
        return lsgan_discriminator_loss(self.d3d, real, fake)

    def projection_loss(
        self, batch: TrainBatch, reals2d: torch.Tensor, fake2d: torch.Tensor, intrinsics: torch.Tensor
    ) -> torch.Tensor | None:
        """L_proj (without its weight), or ``None`` when off.

        ``"paper"``: :func:`~poseshift.adversarial.projection_shape_loss` between the lifter's
        prediction on the target windows (no graph) and the generated 2D middle frames, so the
        gradient reaches G. ``"code"``: the code's ``n_mpjpe`` between each root-centred target
        frame and the projection, with the batch's source intrinsics, of the prediction on that
        frame repeated over the window; every input comes from data and the frozen lifter, so
        it is a constant for G (computed without a graph, logged, and its forward in train mode
        moves the lifter's BatchNorm statistics towards the target, as in the code).
        """
        mode = self.hparams.proj_loss
        if mode == "off":
            return None
        was_training = self.lifter.training
        self.lifter.train(self.hparams.feedback_train_mode)
        try:
            with torch.no_grad():
                pred = self.lift(self._target_windows(batch, reals2d))
        finally:
            self.lifter.train(was_training)
        if mode == "paper":
            return projection_shape_loss(pred, fake2d)
        with torch.no_grad():
            # the code projects the root-relative prediction (root at depth 0; its 1e-6 keeps X/Z finite)
            proj = project(pred + pred.new_tensor([0.0, 0.0, 1e-6]), intrinsics)
            return scale_normalized_error(proj - proj[:, :1], reals2d - reals2d[:, :1])

    # -- sections and passes --------------------------------------------------------------------------
    def _section_ends(self, batch_idx: int) -> bool:
        """Whether this batch closes a section (its selected windows then train the lifter)."""
        hp = self.hparams
        if hp.section_steps is not None:
            return self.global_step_g % hp.section_steps == 0
        n = self.trainer.num_training_batches
        if not isinstance(n, int) or n <= 0:
            return False  # unknown epoch length: the epoch end closes the only section
        ends = {round((k + 1) * n / hp.sections) for k in range(hp.sections)}
        return batch_idx + 1 in ends

    def _batch_size(self) -> int:
        return self.hparams.estimator_batch_size or int(self._buffer["real2d"][0].shape[0])

    def _fake_pass(self) -> None:
        """One lifter pass over the buffered selected windows; the buffer's fakes are dropped."""
        if not self._buffer["keep"]:
            return
        bs = self._batch_size()
        x2d, x3d = self._buffered("fake2d", "fake3d", mask_key="keep")
        self.log("adaptpose/section_windows", float(len(x2d)))
        self.log("train/p_loss_fake", self.estimator_pass(x2d, x3d, bs))
        for key in ("fake2d", "fake3d", "keep"):
            self._buffer[key].clear()

    def on_train_epoch_batches_end(self) -> None:
        # the code: the last section's pass, then one pass over the epoch's real source windows
        if self.hparams.estimator_schedule != "sections" or not self._buffer["real2d"]:
            return
        self._fake_pass()
        real2d, real3d = self._buffered("real2d", "real3d")
        self.log("train/p_loss_real", self.estimator_pass(real2d, real3d, self._batch_size()))
        for v in self._buffer.values():
            v.clear()

    def on_train_epoch_end(self) -> None:
        super().on_train_epoch_end()
        ran, self._epoch_batches = self._epoch_batches, 0
        if ran == 0 and self.trainer.num_training_batches:
            raise RuntimeError(
                f"AdaptPose: no training batch ran in epoch {self.current_epoch}: the training loader "
                "gave none (a target set smaller than one batch per process ends a combined "
                "loader at once); use a smaller batch or a larger train_target set"
            )

    # -- logging extras ------------------------------------------------------------------------------
    def _record_stats(self, gen: dict[str, torch.Tensor]) -> None:
        stats = augmentation_stats(gen["axis_angle"], gen["translation"], gen["ratios"], gen["ba_diff"])
        self.log_dict({f"aug/{k}_mean": v.mean() for k, v in stats.items()})
        self.log("aug/camera_sigma_mean", gen["camera_sigma"].detach().mean())
        every = self.hparams.log_every_n_steps_hist
        if every and self.global_step_g % every == 0:
            log_histograms(self.loggers, {f"aug/{k}": v for k, v in stats.items()}, self.global_step)


__all__ = ["AdaptPose"]
