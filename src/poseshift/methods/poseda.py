"""PoseDA (Chai et al., ICCV'23): global position alignment (GPA) and local pose augmentation
(LPA) trained against an anchor WGAN critic, for unsupervised domain adaptation of a lifter.

An implementation from the paper: the authors released only the GPA function (their README),
which :func:`poseshift.augment.global_position_alignment` follows with two corrections the
issue asks for (each sample's own intrinsics for the depth, the suite's ``[f, c]`` order and
/w normalization; ``gpa_row0_focal`` reproduces the released row-0 behaviour). Everything else
comes from the paper text and Algorithm 1; where it is silent, the choice is ours, documented
here and switchable:

* **generator** (paper: three sequential "3-layer residual MLPs with LeakyReLU" for bone angle,
  bone length and rotation, each fed the previous output and noise, conditioned on the source):
  :class:`~poseshift.models.LocalPoseAugmentor`; PoseAug's heads and squashing (BA residual on
  unit bones with pelvis->spine->thorax held, BL ``0.2 tanh`` on 9 shared groups, rotation
  ``pi tanh`` per axis-angle component), width 256, noise 48, BatchNorm, 3 Linear layers each.
* **anchor critic** (paper: PoseAug's five parts on KCS, each a "4-layer residual MLP with
  LeakyReLU", WGAN, RMSProp): :class:`~poseshift.models.KCSDiscriminator` with ``mid=None``,
  width 256; its score is the mean of the five part scores. Weight clipping at 0.01 (Arjovsky
  et al., whose WGAN also uses RMSProp) by default, or the gradient penalty (weight 10).
* **what the critic cannot see**: part-aware KCS of unit bones is invariant to bone lengths and
  to rotation, so the paper's critic gives the BL and R sub-nets no gradient at all; they stay
  the random, noise-conditioned augmentations of their initialisation (bounded by ``blr_limit``
  and ``rot_limit``). ``critic_kcs="part_length"`` keeps bone lengths in the parts so BL is
  judged; the 2D critic (``d2d``) is the only signal that reaches R (through GPA and projection).
* **schedule** (Algorithm 1): every training batch is one iteration: generate with G frozen,
  one critic step; every ``n_critic``-th iteration one G step on a fresh generation; after the
  warm-up (``warmup`` epochs, paper 5, or ``warmup_steps`` iterations) one lifter step per
  iteration on the 1:1 mix of that iteration's augmented pairs (LPA -> GPA -> projection with
  the target intrinsics) and the source pairs (both halves concatenated: 2B samples per step).
* **optimizers**: lr 1e-4 for everything (paper); the critics use RMSProp (paper); G and the
  lifter Adam (not stated; ``g_optimizer`` switches G to RMSProp). G and the lifter are clipped
  to gradient norm 1 as in PoseAug; the critics are not (clipping their gradients would fight
  the weight clipping or the penalty). No LR decay (none is mentioned).
* **critic reals**: source 3D drawn independently of the G batch from the whole source
  training set (as PoseAug's D3d), or the lifter's predictions on target 2D (Table 7 "T").
* **target 2D**: each source sample is paired with the sample at the same position of the
  batch's target half, which the DataModule draws afresh every epoch (the paper re-pairs every
  epoch; the released function permutes inside, which the shuffled loader makes unnecessary).
* **source pairs**: unchanged by default; ``gpa_source`` also moves them with GPA (to a
  different target sample of the batch) and re-projects them with the target intrinsics.
* **pairs whose 2D is not their 3D's projection** (a joint behind the camera or beyond the
  projection's clamp after GPA) get zero weight in the lifter loss (``view_filter``); they are
  replaced by their source pair so that the batch keeps its size without a host sync.
* **lifter in the loops**: the Table 7 "T" inputs are the current lifter's predictions (eval
  mode, no gradient; during the warm-up that is the pretrained lifter).

The LPA-only row (``use_gpa=False``) keeps each augmented pose at its source root and projects
it with the source camera; the GPA-only row (``use_lpa=False``) has no adversarial players and
no warm-up. ``random_rotation_deg`` / ``random_bone_length`` replace the learned LPA by random
ones (Table 6); ``input_norm`` lifts crop-normalized 2D instead of screen-normalized (Table 5).
"""

from __future__ import annotations

import logging
import math
from typing import Any

import torch
from torch import nn

from poseshift.adversarial import clip_weights, gradient_penalty, wgan_critic_loss, wgan_generator_loss
from poseshift.augment import (
    BL_GROUPS_H36M17,
    augmentation_stats,
    box_normalize,
    global_position_alignment,
    group_matrix,
    in_view,
    random_bone_scale,
    random_vertical_rotation,
    reproject,
)
from poseshift.batches import PoseBatch, TrainBatch
from poseshift.methods.adversarial import AdversarialModule, Player
from poseshift.methods.base import DEFAULT_EVALUATION, Evaluation
from poseshift.models import KCSDiscriminator, LocalPoseAugmentor, PoseDiscriminator2D

log = logging.getLogger(__name__)

SOURCES = ("source", "target")
INPUT_NORMS = ("screen", "crop", "square_crop")


def critic_score(critic: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """One scalar score per sample (B,): the mean of a critic's (B, P) part scores.

    The WGAN losses and the gradient penalty use this same scalar, so the penalty bounds the
    gradient of the function the losses train (the mean of parts, not their sum).
    """
    return critic(x).mean(-1)


class PoseDA(AdversarialModule):
    """PoseDA: lifter + LPA generator G + anchor WGAN critic on part-aware KCS (+ optional 2D critic).

    Players: ``"g"``, ``"d3d"`` (and ``"d2d"``) when LPA is on, and the lifter ``"p"``. See the
    module docstring for the algorithm and for which choices are the paper's and which are ours.

    Args:
        backbone: the lifter architecture (paper default VideoPose3D 1-frame).
        backbone_kwargs: constructor arguments of the lifter.
        pretrained: checkpoint whose lifter weights start the lifter (the paper starts from a
            source-pretrained lifter).
        lr_g: learning rate of G (paper: 1e-4 for all networks).
        lr_d: RMSProp learning rate of the critics.
        lr_p: Adam learning rate of the lifter.
        g_optimizer: ``"adam"`` (ours) or ``"rmsprop"`` for G.
        max_grad_norm: gradient-norm clip of G and the lifter (critics are not clipped).
        use_gpa: global position alignment of the augmented pairs (else they keep the source root
            and camera: the LPA-only row).
        use_lpa: the learned local pose augmentation (G and critics); off with ``use_gpa``: the
            GPA-only row.
        gpa_source: also move the source pairs with GPA and re-project them with the target
            intrinsics (the paper does not say; off).
        gpa_row0_focal: compute every sample's GPA depth with the first sample's focal length,
            as the released function does (a labelled reproduction flag; wrong for mixed cameras).
        use_ba: LPA's bone-angle sub-net.
        use_bl: LPA's bone-length sub-net.
        use_rot: LPA's rotation sub-net.
        random_rotation_deg: with ``use_lpa=False``: rotate every augmented pose about the camera's
            vertical axis by a uniform angle in +- this many degrees (Table 6 "RR"; 0 = off).
        random_bone_length: with ``use_lpa=False``: scale each bone group by a uniform factor in
            1 +- this (Table 6 "BL"; 0 = off).
        n_critic: critic steps per G step (paper: 5).
        critic_constraint: ``"clip"`` (weight clipping, default) or ``"gp"`` (gradient penalty).
        clip_value: weight-clipping bound (0.01).
        gp_weight: weight of the gradient penalty (10).
        critic_kcs: the anchor critic's input: ``"part"`` (PoseAug's five parts, unit bones),
            ``"part_length"`` (the parts with bone lengths) or ``"full"`` (whole-body KCS).
        d_width: hidden width of the anchor critic's paths (256).
        g_condition: what G is conditioned on: ``"source"`` (paper) or ``"target"`` (the lifter's
            predictions on the batch's target 2D; Table 7).
        d3d_real: the anchor critic's real samples: ``"source"`` 3D (paper) or ``"target"`` (the
            lifter's predictions on target 2D; Table 7).
        d2d: a 2D WGAN critic on the projected augmented 2D: ``None`` (paper), ``"target"`` (real:
            target 2D) or ``"source"`` (real: source 2D) (Table 7 / Table C).
        w_adv3d: weight of G's anchor-critic term ("weighted adversarial losses"; 1).
        w_adv2d: weight of G's 2D-critic term (1).
        warmup: epochs in which only G and the critics train (paper: 5).
        warmup_steps: warm-up in iterations (training batches, one critic step each) instead of
            epochs; ``None`` = ``warmup`` epochs.
        g_width: hidden width of G's sub-nets (256).
        g_block_layers: Linear layers in each sub-net's residual block (1: 3 Linear layers in all).
        noise_dim: noise size per sub-net (48).
        blr_limit: BL residual bound (0.2).
        rot_limit: bound of each axis-angle component of R, radians (pi).
        view_filter: give zero lifter weight to augmented pairs with a joint behind the camera
            or outside the projection's clamp.
        input_norm: 2D the lifter reads (training and evaluation): ``"screen"`` (the suite's
            screen normalization), ``"crop"`` or ``"square_crop"`` (Table 5's alternatives).
        log_histograms_every: G steps between augmentation histograms (0 disables).
        evaluation: evaluation options (:class:`~poseshift.methods.base.Evaluation`).
        finite_check_every: player steps between host checks that losses and gradients are finite.
    """

    def __init__(
        self,
        backbone: str = "videopose",
        backbone_kwargs: dict[str, Any] | None = None,
        pretrained: str | None = None,
        lr_g: float = 1e-4,
        lr_d: float = 1e-4,
        lr_p: float = 1e-4,
        g_optimizer: str = "adam",
        max_grad_norm: float = 1.0,
        use_gpa: bool = True,
        use_lpa: bool = True,
        gpa_source: bool = False,
        gpa_row0_focal: bool = False,
        use_ba: bool = True,
        use_bl: bool = True,
        use_rot: bool = True,
        random_rotation_deg: float = 0.0,
        random_bone_length: float = 0.0,
        n_critic: int = 5,
        critic_constraint: str = "clip",
        clip_value: float = 0.01,
        gp_weight: float = 10.0,
        critic_kcs: str = "part",
        d_width: int = 256,
        g_condition: str = "source",
        d3d_real: str = "source",
        d2d: str | None = None,
        w_adv3d: float = 1.0,
        w_adv2d: float = 1.0,
        warmup: int = 5,
        warmup_steps: int | None = None,
        g_width: int = 256,
        g_block_layers: int = 1,
        noise_dim: int = 48,
        blr_limit: float = 0.2,
        rot_limit: float = math.pi,
        view_filter: bool = True,
        input_norm: str = "screen",
        log_histograms_every: int = 0,
        evaluation: Evaluation = DEFAULT_EVALUATION,
        finite_check_every: int | None = None,
    ) -> None:
        super().__init__(backbone, backbone_kwargs, evaluation, pretrained, finite_check_every)
        if critic_constraint not in ("clip", "gp"):
            raise ValueError(f"critic_constraint must be 'clip' or 'gp', got {critic_constraint!r}")
        if critic_kcs not in ("part", "part_length", "full"):
            raise ValueError(f"critic_kcs must be 'part', 'part_length' or 'full', got {critic_kcs!r}")
        if g_condition not in SOURCES or d3d_real not in SOURCES or d2d not in (None, *SOURCES):
            raise ValueError(
                f"g_condition and d3d_real must be 'source' or 'target', d2d null, 'source' or 'target'; "
                f"got {g_condition!r}, {d3d_real!r}, {d2d!r}"
            )
        if input_norm not in INPUT_NORMS:
            raise ValueError(f"input_norm must be one of {INPUT_NORMS}, got {input_norm!r}")
        if g_optimizer not in ("adam", "rmsprop"):
            raise ValueError(f"g_optimizer must be 'adam' or 'rmsprop', got {g_optimizer!r}")
        if n_critic < 1 or warmup < 0 or (warmup_steps is not None and warmup_steps < 0):
            raise ValueError("n_critic must be >= 1 and warm-ups >= 0")
        if use_lpa and (random_rotation_deg or random_bone_length):
            raise ValueError(
                "random_rotation_deg / random_bone_length replace the learned LPA: set use_lpa false"
            )
        self.save_hyperparameters()
        sk = self.skeleton
        self.generator: LocalPoseAugmentor | None = None
        self.d3d: KCSDiscriminator | None = None
        self.d2d: PoseDiscriminator2D | None = None
        if use_lpa:
            self.generator = LocalPoseAugmentor(
                sk, g_width, g_block_layers, noise_dim, use_ba, use_bl, use_rot, blr_limit, rot_limit
            )
            self.d3d = KCSDiscriminator(sk, critic_kcs, d_width, mid=None)
            self.d2d = PoseDiscriminator2D(sk.num_joints) if d2d is not None else None
        self.register_buffer("bl_groups", group_matrix(BL_GROUPS_H36M17, sk.num_bones), persistent=False)
        # per-process store (not state): the critic's real source poses, on the device
        self._real_pose: torch.Tensor | None = None

    # -- players and data -------------------------------------------------------------------------
    def configure_players(self) -> dict[str, Player]:
        """G (Adam or RMSProp), the critics (RMSProp, unclipped gradients) and the lifter (Adam)."""
        hp = self.hparams
        players: dict[str, Player] = {}
        if self.generator is not None:
            players["g"] = Player(self.generator, hp.lr_g, hp.g_optimizer, max_grad_norm=hp.max_grad_norm)
        if self.d3d is not None:
            players["d3d"] = Player(self.d3d, hp.lr_d, "rmsprop")
        if self.d2d is not None:
            players["d2d"] = Player(self.d2d, hp.lr_d, "rmsprop")
        players["p"] = Player(self.lifter, hp.lr_p, max_grad_norm=hp.max_grad_norm)
        return players

    def on_fit_start(self) -> None:
        # the critic's real pool: every source training pose, moved to the device once
        if self.d3d is None or self.hparams.d3d_real != "source" or self.data_source is None:
            return  # without the DataModule's accessor the reals come from the batch itself
        self._real_pose = self.training_poses()["pose3d"].to(self.device, self.dtype)

    @property
    def needs_target(self) -> bool:
        """Whether training batches must carry target 2D (GPA or a Table 7 "T" input)."""
        hp = self.hparams
        uses_t = hp.g_condition == "target" or hp.d3d_real == "target" or hp.d2d == "target"
        return bool(hp.use_gpa) or (self.generator is not None and uses_t)

    @property
    def augments(self) -> bool:
        """Whether the lifter gets augmented pairs besides the source pairs."""
        hp = self.hparams
        return bool(hp.use_gpa or hp.use_lpa or hp.random_rotation_deg or hp.random_bone_length)

    @property
    def after_warmup(self) -> bool:
        """The lifter trains: after ``warmup`` epochs or ``warmup_steps`` iterations (critic steps).

        Without adversarial players there is nothing to warm up.
        """
        hp = self.hparams
        if self.d3d is None:
            return True
        if hp.warmup_steps is not None:
            return self.steps_of("d3d") >= hp.warmup_steps
        return self.current_epoch >= hp.warmup

    # -- lifting ----------------------------------------------------------------------------------
    def normalize_input(self, pose2d: torch.Tensor) -> torch.Tensor:
        """The lifter's view of screen-normalized 2D: unchanged, or crop-normalized (``input_norm``)."""
        norm = self.hparams.input_norm
        return pose2d if norm == "screen" else box_normalize(pose2d, square=norm == "square_crop")

    def forward(self, pose2d: torch.Tensor) -> torch.Tensor:
        return self.lifter(self.normalize_input(pose2d))

    @torch.no_grad()
    def lift_frozen(self, pose2d: torch.Tensor) -> torch.Tensor:
        """The current lifter's predictions in eval mode, without a graph (Table 7's "T" poses)."""
        was_training = self.lifter.training
        self.lifter.eval()
        try:
            return self(pose2d)
        finally:
            self.lifter.train(was_training)

    # -- the algorithm ------------------------------------------------------------------------------
    def training_step(self, batch: TrainBatch, batch_idx: int) -> None:
        hp = self.hparams
        source = batch["source"]
        if source["pose2d"].dim() != 3:
            raise ValueError(
                "PoseDA lifts single frames (the paper uses VideoPose3D 1-frame): set receptive_field 1"
            )
        n = source["pose3d"].shape[0]
        target = self._target(batch.get("target"), n)
        warm = self.after_warmup  # one answer for the whole iteration
        src3d = source["pose3d"]
        t_pose = None
        if self.generator is not None and "target" in (hp.g_condition, hp.d3d_real):
            t_pose = self.lift_frozen(target["pose2d"])
        cond = t_pose if hp.g_condition == "target" else None

        if self.generator is not None:
            # 1. critic step(s) on a generation with G frozen (Algorithm 1, lines 3-8)
            with torch.no_grad():
                aug = self.generator(src3d, cond)
            fake3d = aug["pose"]
            placed = self.place(fake3d, source, target)
            real3d = t_pose if hp.d3d_real == "target" else self._draw_real(src3d)
            self._critic_step("d3d", self.d3d, real3d, fake3d)
            if self.d2d is not None:
                real2d = target["pose2d"] if hp.d2d == "target" else source["pose2d"]
                self._critic_step("d2d", self.d2d, real2d, placed[1])
            # 2. every n_critic-th iteration a G step on a fresh generation (lines 9-15)
            if self.steps_of("d3d") % hp.n_critic == 0:
                self._generator_step(src3d, cond, source, target)
            self._log_augmentation(aug)
        else:
            fake3d = self._random_augment(src3d)
            placed = self.place(fake3d, source, target) if self.augments else None

        # 3. the lifter on the 1:1 mix of augmented and source pairs (lines 16-22)
        if not warm:
            return
        x2d, x3d, weight = self._source_pairs(source, target)
        if placed is not None:
            aug_abs, aug2d = placed
            aug3d = fake3d - fake3d[:, :1]
            valid = (
                in_view(aug_abs) if hp.view_filter else torch.ones_like(aug_abs[:, 0, 0], dtype=torch.bool)
            )
            # invalid pairs are swapped for their source pair with zero weight: no host sync
            keep = valid[:, None, None]
            aug2d = torch.where(keep, aug2d, source["pose2d"])
            aug3d = torch.where(keep, aug3d, src3d)
            self.log("poseda/kept_fraction", valid.float().mean())
            self.log("poseda/root_depth_mean", aug_abs[:, 0, 2].detach().mean())
            x2d, x3d = torch.cat([aug2d.detach(), x2d]), torch.cat([aug3d.detach(), x3d])
            weight = torch.cat([valid.to(weight.dtype), weight])
        err = (self(x2d) - x3d).pow(2).mean(dim=(-1, -2))
        p_loss = self.player_step("p", (weight * err).sum() / weight.sum())
        self.log("train/p_loss", p_loss.detach(), prog_bar=True)

    # -- pieces of the step ---------------------------------------------------------------------------
    def _target(self, target: PoseBatch | None, n: int) -> PoseBatch:
        if target is None:
            if self.needs_target:
                raise RuntimeError(
                    "PoseDA needs target-domain 2D and intrinsics in the batches (GPA, or a Table 7 'target' "
                    "input): set the DataModule's train_target to one of its unlabeled target sets"
                )
            return {}
        if target["pose2d"].dim() != 3:
            raise ValueError("PoseDA pairs single target frames: set receptive_field 1")
        if target["pose2d"].shape[0] < n:
            raise ValueError(
                f"the target batch ({target['pose2d'].shape[0]}) is smaller than the source batch ({n})"
            )
        return {"pose2d": target["pose2d"][:n], "intrinsics": target["intrinsics"][:n]}

    def place(
        self, pose: torch.Tensor, source: PoseBatch, target: PoseBatch, shift: int = 0
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Absolute camera-frame poses (B, J, 3) and their 2D for root-relative ``pose``: GPA with
        the paired target sample (``shift`` pairs sample i with target i - shift, cyclically) and its camera,
        or, without GPA, the source root and camera."""
        if not self.hparams.use_gpa:
            placed = pose - pose[:, :1] + source["root3d"][:, None]
            return placed, reproject(placed, source["intrinsics"])
        tgt2d, cam = target["pose2d"], target["intrinsics"]
        if shift:
            tgt2d, cam = tgt2d.roll(shift, 0), cam.roll(shift, 0)
        placed = global_position_alignment(pose, tgt2d, cam, self.hparams.gpa_row0_focal)
        return placed, reproject(placed, cam)

    def _source_pairs(
        self, source: PoseBatch, target: PoseBatch
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        src2d, src3d = source["pose2d"], source["pose3d"]
        if self.hparams.gpa_source and self.hparams.use_gpa:
            # a different target sample than the augmented copy of the same pose gets
            _, src2d = self.place(src3d, source, target, shift=1)
        return src2d, src3d, src3d.new_ones(src3d.shape[0])

    def _draw_real(self, batch_pose: torch.Tensor) -> torch.Tensor:
        """Real source poses for the anchor critic, drawn independently of the G batch."""
        n = batch_pose.shape[0]
        if self._real_pose is not None:
            return self._real_pose[torch.randint(len(self._real_pose), (n,), device=self._real_pose.device)]
        return batch_pose[torch.randperm(n, device=batch_pose.device)]

    def critic_loss(
        self, critic: nn.Module, real: torch.Tensor, fake: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """WGAN critic loss ``E[D(fake)] - E[D(real)]`` (+ the weighted gradient penalty on random
        interpolates of real and fake with ``critic_constraint="gp"``), by term."""
        n = real.shape[0]
        # the critics have no BatchNorm: real and fake share one forward
        scores = critic_score(critic, torch.cat([real, fake.detach()]))
        terms = {"wgan": wgan_critic_loss(scores[:n], scores[n:])}
        if self.hparams.critic_constraint == "gp":
            penalty = gradient_penalty(lambda x: critic_score(critic, x), real, fake)
            terms["gp"] = self.hparams.gp_weight * penalty
        return terms

    def _critic_step(self, name: str, critic: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> None:
        terms = self.critic_loss(critic, real, fake)
        self.player_step(name, terms)
        if self.hparams.critic_constraint == "clip":
            clip_weights(critic, self.hparams.clip_value)
        self.log(f"train/{name}_loss", terms["wgan"].detach())
        self.log(f"train/wasserstein_{name[1:]}", -terms["wgan"].detach())  # the critic's estimate
        if "gp" in terms:
            self.log(f"train/{name}_gp", terms["gp"].detach())

    def _generator_step(
        self, src3d: torch.Tensor, cond: torch.Tensor | None, source: PoseBatch, target: PoseBatch
    ) -> None:
        hp = self.hparams
        aug = self.generator(src3d, cond)
        losses = {"adv3d": hp.w_adv3d * wgan_generator_loss(critic_score(self.d3d, aug["pose"]))}
        if self.d2d is not None:
            _, aug2d = self.place(aug["pose"], source, target)
            losses["adv2d"] = hp.w_adv2d * wgan_generator_loss(critic_score(self.d2d, aug2d))
        g_loss = self.player_step("g", losses)
        self.log_dict({f"train/g_{k}": v.detach() for k, v in losses.items()})
        self.log("train/g_loss", g_loss.detach(), prog_bar=True)

    def _random_augment(self, pose: torch.Tensor) -> torch.Tensor:
        """Table 6's non-learned augmentations (identity when both are off)."""
        hp = self.hparams
        if hp.random_bone_length:
            pose = random_bone_scale(pose, hp.random_bone_length, self.bl_groups, skeleton=self.skeleton)
        if hp.random_rotation_deg:
            pose = random_vertical_rotation(pose, hp.random_rotation_deg)
        return pose

    def _log_augmentation(self, aug: dict[str, torch.Tensor]) -> None:
        zero = aug["axis_angle"].new_zeros(aug["axis_angle"].shape)
        stats = augmentation_stats(aug["axis_angle"], zero, aug["ratios"], aug["ba_diff"])
        self.log_dict(
            {f"aug/{k}_mean": v.mean() for k, v in stats.items() if not k.startswith("translation")}
        )
        every = self.hparams.log_histograms_every
        if every and self.steps_of("g") % every == 0:
            from poseshift.loggers import log_histograms

            log_histograms(
                self.loggers,
                {f"aug/{k}": v for k, v in stats.items() if not k.startswith("translation")},
                self.global_step,
            )
