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
head_top where the reference has its head joint (see :data:`FEEDBACK_WEIGHTS_H36M17`).

Departures from the reference that only cut work (no gradient changes): the G adversarial
loss omits the constant ``MSE(D(real), 0)`` term (no gradient to G; the logged value lacks
it); each D loss runs real and fake through one forward (the Ds have no BatchNorm); the
feedback's reference pair is lifted without a graph and the BA and RT pairs share one batched
pass (``batched_feedback``; in train mode BatchNorm then pools the statistics of those two
batches, set it False for one pass each as the reference). Regularizer: the code's element-wise
form (the paper's eq. 10 thresholds the mean instead); it is the one that produced the numbers.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from poseshift.augment import (
    BA_FROZEN_BONES_H36M17,
    BL_GROUPS_H36M17,
    augmentation_stats,
    bone_angle_perturb,
    bone_length_scale,
    bone_length_templates,
    expand_shared,
    group_matrix,
    in_frame,
    reproject,
    rigid_transform,
    swap_bone_lengths,
)
from poseshift.geometry.bones import bone_lengths
from poseshift.geometry.kcs import kcs, part_kcs
from poseshift.geometry.skeleton import H36M17, Skeleton
from poseshift.methods.base import LiftingModule
from poseshift.models.blocks import ResidualMLP, kaiming_init_linear

SCRATCH = "scratch"  # ``pretrained`` value that trains the lifter from random weights on purpose

# -- losses --------------------------------------------------------------------------------------


def range_loss(
    a: torch.Tensor, center: float | torch.Tensor, half_width: float | torch.Tensor
) -> torch.Tensor:
    """``mean[(a - m)^2 * 1{(a - m)^2 > w^2}]``: zero inside the band ``|a - m| <= w``, quadratic outside."""
    d2 = (a - center) ** 2
    return torch.where(d2 > half_width**2, d2, torch.zeros_like(d2)).mean()


def rectified_l2(gamma: torch.Tensor, threshold: float) -> torch.Tensor:
    """Element-wise rectified L2 ``mean[g^2 * 1{g^2 > t^2}]`` (the code's form of the paper's eq. 10)."""
    return range_loss(gamma, 0.0, threshold)


def lsgan_loss(pred: torch.Tensor, target: float) -> torch.Tensor:
    """Least-squares GAN loss ``mean[(D(x) - target)^2]`` (paper eq. 12)."""
    return F.mse_loss(pred, torch.full_like(pred, target))


def discriminator_loss(disc: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """LSGAN D loss ``0.5 [mean (D(real) - 1)^2 + mean D(fake)^2]``, real and fake in one forward.

    One batched forward is exact because PoseAug's discriminators have no BatchNorm.
    """
    out = disc(torch.cat([real, fake]))
    return 0.5 * (lsgan_loss(out[: len(real)], 1.0) + lsgan_loss(out[len(real) :], 0.0))


def feedback_exp_loss(
    aug_error: torch.Tensor, orig_error: torch.Tensor, beta: float | torch.Tensor
) -> torch.Tensor:
    """Paper eq. (9): ``mean |1 - exp(L(X') - beta L(X))|``."""
    return (1 - torch.exp(aug_error - beta * orig_error)).abs().mean()


def feedback_ratio_loss(
    aug_error: torch.Tensor, orig_error: torch.Tensor, beta: float | torch.Tensor, band: float
) -> torch.Tensor:
    """The code's feedback: range loss on the error ratio ``L(X') / L(X)`` in ``beta +- band``."""
    return range_loss(aug_error / orig_error, beta, band)


# Feedback error weights and groups (METHODS.md 2.3) on H36M-17: the reference's 16-joint weights
# with neck_nose (no counterpart) weighted 1 and in no group; head_top takes the head's place in G2.
FEEDBACK_WEIGHTS_H36M17: tuple[float, ...] = (1, 5, 2, 1, 5, 2, 1, 1, 1, 1, 1, 5, 2, 1, 5, 2, 1)
FEEDBACK_GROUPS_H36M17: tuple[tuple[int, ...], ...] = (
    (1, 4, 11, 14),  # hips, shoulders
    (2, 5, 10, 12, 15),  # knees, head top, elbows
    (3, 6, 13, 16),  # ankles, wrists
)


def feedback_matrix(
    weights: Sequence[float] = FEEDBACK_WEIGHTS_H36M17,
    groups: Sequence[Sequence[int]] = FEEDBACK_GROUPS_H36M17,
) -> torch.Tensor:
    """(J, G) matrix M with ``errors @ M`` = the weighted per-group mean joint error."""
    m = torch.zeros(len(weights), len(groups))
    for g, joints in enumerate(groups):
        for j in joints:
            m[j, g] = weights[j] / len(joints)
    return m


def grouped_pose_error(pred: torch.Tensor, target: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """(B, G) weighted per-group mean Euclidean joint error (not squared), targets made root-relative."""
    err = torch.linalg.vector_norm(pred - (target - target[..., :1, :]), dim=-1)
    return err @ matrix


# -- networks ------------------------------------------------------------------------------------


def _noisy_mlp(in_features: int, out_features: int, width: int, num_stages: int) -> ResidualMLP:
    # PoseAug's generator trunk: Linear+BN+LReLU then skip-free [Linear, BN, LReLU] x2 blocks
    return ResidualMLP(
        in_features,
        out_features,
        width=width,
        num_stages=num_stages,
        dropout=0.0,
        residual=False,
        activation=nn.LeakyReLU,
    )


class PoseAugmentor(nn.Module):
    """The augmentor G: BA -> BL -> RT, each a noise-conditioned MLP on the *original* pose.

    Args:
        skeleton: joint layout.
        width, num_stages: MLP width and blocks (reference 256, 2).
        noise_dim: Gaussian noise size per sub-net (reference 48).
        use_ba, use_bl, use_rt: ablation switches; a disabled op is the identity and has no weights.
        blr_limit: BL residual bound, ``ratio = 1 + blr_limit * tanh(.)`` (reference 0.2).
        bl_groups: bones sharing one BL ratio (left = right); entry 4 (spine->thorax) is held at 0.
        ba_frozen: bones BA may not turn.
    """

    def __init__(
        self,
        skeleton: Skeleton = H36M17,
        width: int = 256,
        num_stages: int = 2,
        noise_dim: int = 48,
        use_ba: bool = True,
        use_bl: bool = True,
        use_rt: bool = True,
        blr_limit: float = 0.2,
        bl_groups: Sequence[Sequence[int]] = BL_GROUPS_H36M17,
        ba_frozen: Sequence[int] = BA_FROZEN_BONES_H36M17,
        bl_held_groups: Sequence[int] = (4,),
    ) -> None:
        super().__init__()
        self.skeleton = skeleton
        self.noise_dim = noise_dim
        self.blr_limit = blr_limit
        self.ba_frozen = tuple(ba_frozen)
        j3, nb = 3 * skeleton.num_joints, skeleton.num_bones
        self.register_buffer("bl_groups", group_matrix(bl_groups, nb), persistent=False)
        held = torch.ones(len(bl_groups))
        held[list(bl_held_groups)] = 0.0
        self.register_buffer("bl_keep", held, persistent=False)
        self.ba = _noisy_mlp(j3 + noise_dim, 3 * nb, width, num_stages) if use_ba else None
        self.bl = _noisy_mlp(j3 + nb + noise_dim, len(bl_groups), width, num_stages) if use_bl else None
        self.rot = _noisy_mlp(j3 + noise_dim, 3, width, num_stages) if use_rt else None
        self.trans = _noisy_mlp(j3 + noise_dim, 3, width, num_stages) if use_rt else None
        kaiming_init_linear(self)

    def _with_noise(self, *features: torch.Tensor) -> torch.Tensor:
        x = torch.cat(features, dim=-1)
        return torch.cat([x, torch.randn(x.shape[0], self.noise_dim, device=x.device, dtype=x.dtype)], dim=-1)

    def forward(self, pose: torch.Tensor) -> dict[str, torch.Tensor]:
        """Augment absolute camera-frame poses (B, J, 3).

        Returns a dict: ``pose_ba``, ``pose_bl``, ``pose_rt`` (B, J, 3, absolute), ``ba_diff`` (B, nb),
        ``blr`` (B, 9) shared BL residuals, ``ratios`` (B, nb), ``axis_angle`` and ``translation`` (B, 3).
        """
        b, nb = pose.shape[0], self.skeleton.num_bones
        flat = (pose - pose[:, :1]).reshape(b, -1)  # every sub-net sees the original root-relative pose
        out: dict[str, torch.Tensor] = {}
        if self.ba is not None:
            delta = self.ba(self._with_noise(flat)).reshape(b, nb, 3)
            pose_ba, ba_diff = bone_angle_perturb(pose, delta, self.ba_frozen, self.skeleton)
        else:
            pose_ba, ba_diff = pose, pose.new_zeros(b, nb)
        if self.bl is not None:
            raw = self.bl(self._with_noise(flat, bone_lengths(pose, self.skeleton)))
            blr = self.blr_limit * torch.tanh(raw * self.bl_keep)
            ratios = 1 + expand_shared(blr, self.bl_groups)
            pose_bl = bone_length_scale(pose_ba, ratios, self.skeleton)
        else:
            blr, ratios, pose_bl = pose.new_zeros(b, self.bl_groups.shape[0]), pose.new_ones(b, nb), pose_ba
        if self.rot is not None and self.trans is not None:
            axis_angle = math.pi * torch.tanh(self.rot(self._with_noise(flat)))
            raw_t = self.trans(self._with_noise(flat))
            # t is the new absolute root; t_z = raw^2 keeps it in front of the camera plane
            translation = torch.cat([raw_t[:, :2], raw_t[:, 2:] ** 2], dim=-1)
            pose_rt = rigid_transform(pose_bl, axis_angle, translation)
        else:
            axis_angle, translation, pose_rt = pose.new_zeros(b, 3), pose_bl[:, 0], pose_bl
        out.update(
            pose_ba=pose_ba,
            ba_diff=ba_diff,
            pose_bl=pose_bl,
            blr=blr,
            ratios=ratios,
            axis_angle=axis_angle,
            translation=translation,
            pose_rt=pose_rt,
        )
        return out


class GroupedLinear(nn.Module):
    """P independent Linear layers applied to (N, P, in) at once (one batched matmul)."""

    def __init__(self, groups: int, in_features: int, out_features: int) -> None:
        super().__init__()
        # kaiming_normal_ weights (fan_in) and PyTorch-default biases, as nn.Linear + kaiming_init_linear
        self.weight = nn.Parameter(
            torch.randn(groups, in_features, out_features) * math.sqrt(2.0 / in_features)
        )
        bound = 1.0 / math.sqrt(in_features)
        self.bias = nn.Parameter(torch.empty(groups, out_features).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.einsum("npi,pio->npo", x, self.weight) + self.bias


class KCSDiscriminator(nn.Module):
    """D3d: one "KCS path" per body part on part-aware KCS (or one on the whole-body KCS).

    Path: L(in->w), LReLU -> L(w->w), LReLU -> L(w->w) + skip from the first output ->
    LReLU(L(w->100)) -> L(100->1). Output (B, P) logits (P = 5 parts, or 1 with ``mode="full"``).

    Args:
        skeleton: joint layout with ``parts`` (correct left/right labels).
        mode: ``"part"`` (PoseAug's part-aware KCS, unit bones) or ``"full"`` (Wandt's KCS with
            bone lengths, the Table 7 ablation).
        width: path width (reference 256, the class default 1000 is overridden there).
    """

    def __init__(
        self, skeleton: Skeleton = H36M17, mode: str = "part", width: int = 256, mid: int = 100
    ) -> None:
        super().__init__()
        if mode not in ("part", "full"):
            raise ValueError(f"KCS mode must be 'part' or 'full', got {mode!r}")
        self.skeleton, self.mode = skeleton, mode
        p = len(skeleton.parts) if mode == "part" else 1
        nb2 = skeleton.num_bones**2
        self.l1, self.l2, self.l3 = (
            GroupedLinear(p, nb2, width),
            GroupedLinear(p, width, width),
            GroupedLinear(p, width, width),
        )
        self.l4, self.l5 = GroupedLinear(p, width, mid), GroupedLinear(p, mid, 1)
        self.act = nn.LeakyReLU()

    def features(self, pose: torch.Tensor) -> torch.Tensor:
        """(B, J, 3) -> (B, P, nb*nb) KCS features."""
        if self.mode == "part":
            k = part_kcs(pose, self.skeleton)
        else:
            k = kcs(pose, self.skeleton).unsqueeze(1)
        return k.flatten(-2)

    def forward(self, pose: torch.Tensor) -> torch.Tensor:
        x = self.features(pose)
        h1 = self.act(self.l1(x))
        h3 = self.l3(self.act(self.l2(h1))) + h1
        return self.l5(self.act(self.l4(h3))).squeeze(-1)


class PoseDiscriminator2D(nn.Module):
    """D2d on the screen-normalized 2D pose (not root-centred, so it sees position and scale)."""

    def __init__(self, num_joints: int = H36M17.num_joints, width: int = 100) -> None:
        super().__init__()
        self.l1, self.l2, self.l3 = (
            nn.Linear(2 * num_joints, width),
            nn.Linear(width, width),
            nn.Linear(width, width),
        )
        self.l4, self.l5, self.out = nn.Linear(width, width), nn.Linear(width, width), nn.Linear(width, 1)
        self.act = nn.LeakyReLU()
        kaiming_init_linear(self)

    def forward(self, pose2d: torch.Tensor) -> torch.Tensor:
        x = pose2d.reshape(pose2d.shape[0], -1)
        d1 = self.act(self.l1(x))
        d3 = self.act(self.l3(self.act(self.l2(d1))) + d1)
        return self.out(self.act(self.l5(self.l4(d3))))


class FakePool(nn.Module):
    """Shrivastava et al.'s history of fakes (PoseAug's ``Sample_from_Pool``), vectorized.

    Until ``capacity`` samples are stored, incoming samples are stored and returned. Once full,
    each incoming sample is returned with p = 0.5, else a random stored sample is returned and
    replaced by it. The state is two buffers, so it is in ``state_dict`` and checkpoints.
    Vectorization differs from the per-sample loop only when two samples of one batch pick
    the same slot: both then return that slot's old content and one of them is stored.
    """

    def __init__(self, capacity: int, shape: Sequence[int]) -> None:
        super().__init__()
        self.capacity = capacity
        self.register_buffer("items", torch.zeros(capacity, *shape))
        self.register_buffer("count", torch.zeros((), dtype=torch.long))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.detach()
        n, free = x.shape[0], self.capacity - int(self.count)
        k = min(n, max(free, 0))
        if k:
            self.items[int(self.count) : int(self.count) + k] = x[:k]
            self.count += k
        if k == n:
            return x
        rest = x[k:]
        swap = torch.rand(len(rest), device=x.device) < 0.5
        slots = torch.randint(self.capacity, (len(rest),), device=x.device)
        old = self.items[slots]
        out = torch.where(swap.view(-1, *([1] * (x.dim() - 1))), old, rest)
        self.items[slots[swap]] = rest[swap]
        return torch.cat([x[:k], out])


# -- the LightningModule ----------------------------------------------------------------------------


@contextlib.contextmanager
def _frozen(*modules: nn.Module | None) -> Iterator[None]:
    """Temporarily stop weight gradients of ``modules`` (the reference's ``set_grad(.., False)``)."""
    params = [p for m in modules if m is not None for p in m.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


class PoseAug(LiftingModule):
    """PoseAug: lifter + augmentor G + discriminators D3d (part-aware KCS) and D2d.

    One ``training_step`` (manual optimization) on a source batch, as the reference:

    1. give the batch's 3D poses random bone-length templates and re-project them (the
       per-epoch swap; the lifter's own *real* pairs stay unswapped);
    2. **G step**: augment (BA -> BL -> RT), re-project with each sample's camera, loss
       ``w2d * L_adv(D2d(x_rt)) + w3d * L_adv(D3d(X_ba)) + wdiff * L_reg (+ L_fb after warm-up)``;
    3. every ``d_every`` steps: **D3d step** (real: swapped 3D drawn independently; fake:
       ``X_ba`` through the pool), then **D2d step** (real: their projections, optionally mixed
       with extra target 2D; fake: ``x_rt`` through the pool);
    4. **estimator**: keep the in-frame augmented pairs; ``"epoch"`` schedule: buffer them and,
       on the epoch's last batch, one pass over the buffer then one over the real pairs;
       ``"iteration"``: one step on augmented + real pairs now. Both only after warm-up.

    Schedulers (linear decay ``1 - e/(E+1)``) step once per epoch. Gradients of each player
    are clipped to ``max_grad_norm``. Under DDP each player's gradients are averaged explicitly
    (the DDP reducer is bypassed), so no unused-parameter handling is needed.

    With manual optimization Lightning's ``global_step`` counts the steps of every optimizer (up
    to four per batch, plus the epoch-end estimator passes): bound runs with ``max_epochs`` and
    ``limit_train_batches``; :attr:`global_step_g` counts G steps like the reference.

    Args:
        backbone, backbone_kwargs: the lifter (see :class:`LiftingModule`).
        pretrained: path to a :class:`~poseshift.methods.Baseline` checkpoint whose lifter
            weights start the lifter (the reference requires one); a fresh ``fit`` without one
            is refused, ``"scratch"`` trains the lifter from random weights on purpose.
        lr_g, lr_d, lr_p: Adam learning rates of G, both Ds and the lifter (reference 1e-4;
            lr_p 1e-3 for SemGCN).
        epochs: E of the LR decay and the beta schedule; ``None`` = ``trainer.max_epochs``.
        warmup: epochs of GAN-only training (no feedback, no estimator updates) (2).
        d_every: D steps once per this many G steps (``df`` = 2).
        max_grad_norm: gradient clip of every player (1).
        use_ba, use_bl, use_rt, use_feedback, use_d2d, use_d3d: ablation switches (Tables 5, 6).
        kcs_mode: ``"part"`` or ``"full"`` D3d input (Table 7).
        d3d_input: which pose D3d judges: ``"ba"`` (reference: BA output only) or ``"rt"``.
        feedback: ``"ratio"`` (code) or ``"exp"`` (paper eq. 9).
        beta_ba, beta_rt: (start, end) of the linear beta schedules (3 -> 5, 17 -> 17).
        band_ba, band_rt: half widths of the ratio bands (2, 15).
        w_fb_ba, w_fb_rt: feedback weights (0.1, 0.01).
        w_adv2d, w_adv3d, w_reg: G loss weights (1, 6, 3).
        ba_range: (centre, half width) of the band on the mean BA ``1 - cos`` (0.205, 0.165).
        blr_reg: rectified-L2 threshold on the BL residuals (0.1).
        blr_limit: BL residual bound (0.2).
        g_width, g_stages, noise_dim: generator MLP size (256, 2, 48).
        d3d_width: KCS path width (256).
        pool_size: fake pool capacity per D (4096).
        template_swap: give G inputs and D-real poses random per-subject bone-length templates.
        bone_templates: explicit (T, nb) templates in metres; ``None`` = per-subject medians of
            the source training set (for H36M that is the reference's S1/5/6/7/8 table).
        extra_2d: name of an unlabeled target 2D set of the DataModule mixed into D2d's real
            samples ("+Extra2D"); ``extra_2d_fraction`` of each real batch comes from it.
        estimator_schedule: ``"epoch"`` (code) or ``"iteration"`` (paper).
        estimator_batch_size: batch of the epoch-end passes (``None`` = the training batch size).
        batched_feedback: one lifter pass over the three feedback pairs instead of three.
        feedback_train_mode: keep the lifter in train() mode during feedback (reference: True).
        in_frame_lower: also drop augmented pairs with a coordinate < -1 (reference: False).
        log_every_n_steps_hist: steps between augmentation histograms (0 disables).
        figure_every_n_epochs: epochs between Figure-7 plots (0 disables).
    """

    needs_finite_epochs = True  # the LR decay and the beta schedule run over the epochs

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
        extra_2d: str | None = None,
        extra_2d_fraction: float = 0.5,
        estimator_schedule: str = "epoch",
        estimator_batch_size: int | None = None,
        batched_feedback: bool = True,
        feedback_train_mode: bool = True,
        in_frame_lower: bool = False,
        log_every_n_steps_hist: int = 0,
        figure_every_n_epochs: int = 0,
        pck_joints: str = "all",
        flip_test: bool = False,
        monitor: str = "val/mpjpe",
        per_action: bool = False,
    ) -> None:
        super().__init__(
            backbone,
            backbone_kwargs,
            pck_joints=pck_joints,
            flip_test=flip_test,
            monitor=monitor,
            per_action=per_action,
        )
        if feedback not in ("ratio", "exp"):
            raise ValueError(f"feedback must be 'ratio' or 'exp', got {feedback!r}")
        if estimator_schedule not in ("epoch", "iteration"):
            raise ValueError(f"estimator_schedule must be 'epoch' or 'iteration', got {estimator_schedule!r}")
        if d3d_input not in ("ba", "rt"):
            raise ValueError(f"d3d_input must be 'ba' or 'rt', got {d3d_input!r}")
        if not (use_ba or use_bl or use_rt):
            raise ValueError("PoseAug needs at least one of BA, BL, RT; use Baseline for none")
        self.save_hyperparameters()
        self.automatic_optimization = False
        sk = self.skeleton
        self.generator = PoseAugmentor(sk, g_width, g_stages, noise_dim, use_ba, use_bl, use_rt, blr_limit)
        self.d3d = KCSDiscriminator(sk, kcs_mode, d3d_width) if use_d3d else None
        self.d2d = PoseDiscriminator2D(sk.num_joints) if use_d2d else None
        self.pool3d = FakePool(pool_size, (sk.num_joints, 3)) if use_d3d else None
        self.pool2d = FakePool(pool_size, (sk.num_joints, 2)) if use_d2d else None
        self.register_buffer("fb_matrix", feedback_matrix(), persistent=False)
        # current betas: state (saved in checkpoints), recomputed at every epoch start
        self.register_buffer("beta", torch.tensor([beta_ba[0], beta_rt[0]]))
        templates = (
            torch.tensor(bone_templates) if bone_templates is not None else torch.empty(0, sk.num_bones)
        )
        self.register_buffer("templates", templates)
        self.register_buffer("g_steps", torch.zeros((), dtype=torch.long))  # the reference's train_iter_num
        self._opt_names = list(self._players())  # optimizer order: g, d3d, d2d, p
        # per-process data stores (not state): D-real source poses, extra target 2D, epoch buffer
        self._real3d: torch.Tensor | None = None
        self._real_cam: torch.Tensor | None = None
        self._extra2d: torch.Tensor | None = None
        self._buffer: dict[str, list[torch.Tensor]] = {"aug2d": [], "aug3d": [], "real2d": [], "real3d": []}
        self._stats: list[dict[str, torch.Tensor]] = []

    # -- setup ------------------------------------------------------------------------------------
    def load_pretrained(self, path: str) -> None:
        """Load the lifter weights of a Baseline (or any LiftingModule) checkpoint."""
        state = torch.load(path, map_location="cpu", weights_only=False)
        state = state.get("state_dict", state)
        lifter = {k[len("lifter.") :]: v for k, v in state.items() if k.startswith("lifter.")}
        if not lifter:
            raise ValueError(f"{path}: no 'lifter.*' weights found (is it a poseshift checkpoint?)")
        self.lifter.load_state_dict(lifter)

    def setup(self, stage: str) -> None:
        super().setup(stage)
        if stage != "fit":
            return
        # a fresh fit starts from the pretrained baseline; a resumed one restores its own
        # checkpoint, and loading a finished model never needs the baseline file
        if self.trainer.ckpt_path is None:
            pretrained = self.hparams.pretrained
            if pretrained is None:
                raise ValueError(
                    "--model.init_args.pretrained: PoseAug starts from a trained baseline of the same "
                    "backbone (as the reference does); pass its checkpoint (poseshift fit --config "
                    "experiments/baseline/...), or `scratch` to train the lifter from random weights"
                )
            if pretrained != SCRATCH:
                self.load_pretrained(pretrained)
        sets = getattr(getattr(self.trainer, "datamodule", None), "sets", None)
        train = getattr(sets, "train", None)
        if train is None or train.pose3d is None:
            return  # no access to the whole source set: D-real poses come from the batch itself
        pose = torch.as_tensor(train.pose3d) + torch.as_tensor(train.root3d)[:, None]
        self._real3d, self._real_cam = pose, torch.as_tensor(train.intrinsics)
        if self.templates.numel() == 0 and self.hparams.template_swap:
            self.templates = bone_length_templates(pose, torch.as_tensor(train.subject), self.skeleton)
        name = self.hparams.extra_2d
        if name is not None:
            if name not in sets.target_train:
                raise ValueError(
                    f"extra_2d={name!r} is not a target set; available: {list(sets.target_train)}"
                )
            self._extra2d = torch.as_tensor(sets.target_train[name].pose2d)

    def configure_optimizers(self) -> tuple[list[torch.optim.Optimizer], list[Any]]:
        """Adam for G, D3d, D2d, lifter (those that exist), each with the reference's linear decay."""
        hp = self.hparams
        lrs = {"g": hp.lr_g, "d3d": hp.lr_d, "d2d": hp.lr_d, "p": hp.lr_p}
        opts = [torch.optim.Adam(self._players()[n].parameters(), lr=lrs[n]) for n in self._opt_names]
        total = self._epochs()
        scheds = [torch.optim.lr_scheduler.LambdaLR(o, lambda e: 1.0 - e / (total + 1)) for o in opts]
        return opts, scheds

    def _players(self) -> dict[str, nn.Module]:
        players = {"g": self.generator, "d3d": self.d3d, "d2d": self.d2d, "p": self.lifter}
        return {k: v for k, v in players.items() if v is not None}

    def _epochs(self) -> int:
        if self.hparams.epochs is not None:
            return int(self.hparams.epochs)
        trainer = getattr(self, "_trainer", None)
        max_epochs = getattr(trainer, "max_epochs", None) if trainer is not None else None
        return int(max_epochs) if max_epochs and max_epochs > 0 else 50

    def _opt(self, name: str) -> Any:
        opts = self.optimizers()
        opts = opts if isinstance(opts, list) else [opts]
        return opts[self._opt_names.index(name)]

    # -- schedules ----------------------------------------------------------------------------------
    @property
    def epoch(self) -> int:
        """The reference's 1-based epoch counter (its epoch 0 is evaluation only)."""
        return self.current_epoch + 1

    def beta_at(self, epoch: int) -> torch.Tensor:
        """(beta_ba, beta_rt) at a 1-based epoch: linear from start (epoch 0) to end (epoch E)."""
        hp, frac = self.hparams, epoch / self._epochs()
        return torch.tensor(
            [
                hp.beta_ba[0] + (hp.beta_ba[1] - hp.beta_ba[0]) * frac,
                hp.beta_rt[0] + (hp.beta_rt[1] - hp.beta_rt[0]) * frac,
            ]
        )

    @property
    def after_warmup(self) -> bool:
        return self.epoch > self.hparams.warmup

    def on_train_epoch_start(self) -> None:
        self.beta.copy_(self.beta_at(self.epoch))
        self.log("poseaug/beta_ba", self.beta[0])
        self.log("poseaug/beta_rt", self.beta[1])

    def on_train_epoch_end(self) -> None:
        scheds = self.lr_schedulers()
        with warnings.catch_warnings():
            # The reference steps every player's scheduler each epoch, also when that player's
            # optimizer did not step (the lifter during warm-up): torch then warns about the call
            # order, which is intended here.
            warnings.filterwarnings("ignore", message=r"Detected call of `lr_scheduler\.step\(\)` before")
            for sched in scheds if isinstance(scheds, list) else [scheds]:
                sched.step()
        self._sync_lifter_buffers()
        if (
            self._stats
            and self.hparams.figure_every_n_epochs
            and self.epoch % self.hparams.figure_every_n_epochs == 0
        ):
            self._log_figure()
        self._stats.clear()

    # -- distributed helpers ------------------------------------------------------------------------
    @property
    def _distributed(self) -> bool:
        return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1

    def _sync_grads(self, module: nn.Module) -> None:
        """Average one player's gradients over processes (one all-reduce of a flat buffer)."""
        if not self._distributed:
            return
        params = [p for p in module.parameters() if p.requires_grad]
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        flat /= dist.get_world_size()
        offset = 0
        for p in params:
            n = p.numel()
            p.grad = flat[offset : offset + n].view_as(p).clone()
            offset += n

    def _sync_lifter_buffers(self) -> None:
        # BN statistics are not broadcast when the reducer is bypassed; align them for evaluation
        if self._distributed:
            for buf in self.lifter.buffers():
                dist.broadcast(buf, src=0)

    def _no_reducer(self) -> contextlib.AbstractContextManager:
        # Bypass the DDP reducer: it expects every parameter's gradient after each backward,
        # which a multi-player step never provides. Gradients are averaged by _sync_grads.
        block = getattr(self.trainer.strategy, "block_backward_sync", None)
        return block() if block is not None else contextlib.nullcontext()

    def _step(self, name: str, module: nn.Module, loss: torch.Tensor) -> None:
        """zero_grad -> backward -> average over processes -> clip -> Adam step, for one player."""
        opt = self._opt(name)
        opt.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        self._sync_grads(module)
        if self.hparams.max_grad_norm:
            self.clip_gradients(
                opt, gradient_clip_val=self.hparams.max_grad_norm, gradient_clip_algorithm="norm"
            )
        opt.step()

    # -- data -----------------------------------------------------------------------------------
    def _swap(self, pose: torch.Tensor) -> torch.Tensor:
        if not self.hparams.template_swap or self.templates.numel() == 0:
            return pose
        return swap_bone_lengths(pose, self.templates)

    def _draw_real(self, pose: torch.Tensor, cam: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Real samples for the Ds: swapped source poses drawn independently of the G batch, and their 2D."""
        n = pose.shape[0]
        if self._real3d is not None:
            idx = torch.randint(len(self._real3d), (n,))
            pose, cam = self._real3d[idx].to(pose), self._real_cam[idx].to(cam)
        else:
            perm = torch.randperm(n, device=pose.device)
            pose, cam = pose[perm], cam[perm]
        pose = self._swap(pose)
        real2d = reproject(pose, cam)
        if self._extra2d is not None and self.hparams.extra_2d_fraction > 0:
            k = int(round(n * self.hparams.extra_2d_fraction))
            extra = self._extra2d[torch.randint(len(self._extra2d), (k,))].to(real2d)
            real2d = torch.cat([extra, real2d[k:]])
        return pose, real2d

    # -- losses --------------------------------------------------------------------------------------
    def regularizer(self, aug: dict[str, torch.Tensor]) -> torch.Tensor:
        """``R(mean_bones(1 - cos); m, w) + RL2(blr; t)``: keeps BA and BL inside their bands."""
        m, w = self.hparams.ba_range
        loss = aug["ba_diff"].new_zeros(())
        if self.generator.ba is not None:
            loss = loss + range_loss(aug["ba_diff"].mean(-1), m, w)
        if self.generator.bl is not None:
            loss = loss + rectified_l2(aug["blr"], self.hparams.blr_reg)
        return loss

    def feedback_errors(self, pairs: list[tuple[torch.Tensor, torch.Tensor]]) -> list[torch.Tensor]:
        """Grouped lifter errors (B, 3) of (2D, 3D) pairs; lifter weights frozen.

        The first pair is the un-augmented reference: its error carries no gradient to G, so it
        is evaluated without a graph (the backward then skips its rows). The others share one
        batched pass unless ``batched_feedback`` is off (then one pass each, as the reference).
        """
        was_training = self.lifter.training
        self.lifter.train(self.hparams.feedback_train_mode)
        try:
            with torch.no_grad():
                pred = [self.lifter(pairs[0][0])]
            rest = pairs[1:]
            if self.hparams.batched_feedback and len(rest) > 1:
                pred += list(self.lifter(torch.cat([p[0] for p in rest])).split([len(p[0]) for p in rest]))
            else:
                pred += [self.lifter(p[0]) for p in rest]
        finally:
            self.lifter.train(was_training)
        return [grouped_pose_error(y, p[1], self.fb_matrix) for y, p in zip(pred, pairs, strict=True)]

    def feedback_loss(self, orig: torch.Tensor, ba: torch.Tensor, rt: torch.Tensor) -> torch.Tensor:
        """``w_ba * F(L_ba, L_orig; beta_ba) + w_rt * F(L_rt, L_orig; beta_rt)`` in the chosen form."""
        hp = self.hparams
        beta_ba, beta_rt = self.beta[0], self.beta[1]
        if hp.feedback == "ratio":
            return hp.w_fb_ba * feedback_ratio_loss(
                ba, orig, beta_ba, hp.band_ba
            ) + hp.w_fb_rt * feedback_ratio_loss(rt, orig, beta_rt, hp.band_rt)
        return hp.w_fb_ba * feedback_exp_loss(ba, orig, beta_ba) + hp.w_fb_rt * feedback_exp_loss(
            rt, orig, beta_rt
        )

    # -- training ------------------------------------------------------------------------------------
    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        with self._no_reducer():
            self._training_step(batch, batch_idx)

    def _training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        hp = self.hparams
        cam = batch["intrinsics"]
        # 1. the G input: source 3D with random bone-length templates, re-projected
        pose = self._swap(batch["pose3d"] + batch["root3d"][:, None])
        pose2d = reproject(pose, cam)

        # 2. augmentor step (Ds and lifter frozen)
        with _frozen(self.d3d, self.d2d, self.lifter):
            aug = self.generator(pose)
            aug2d_ba = reproject(aug["pose_ba"], cam)
            aug2d_rt = reproject(aug["pose_rt"], cam)
            fake3d = aug["pose_ba"] if hp.d3d_input == "ba" else aug["pose_rt"]
            losses: dict[str, torch.Tensor] = {}
            if self.d3d is not None:
                losses["adv3d"] = hp.w_adv3d * 0.5 * lsgan_loss(self.d3d(fake3d), 1.0)
            if self.d2d is not None:
                losses["adv2d"] = hp.w_adv2d * 0.5 * lsgan_loss(self.d2d(aug2d_rt), 1.0)
            losses["reg"] = hp.w_reg * self.regularizer(aug)
            if hp.use_feedback and self.after_warmup:
                orig, ba, rt = self.feedback_errors(
                    [(pose2d, pose), (aug2d_ba, aug["pose_ba"]), (aug2d_rt, aug["pose_rt"])]
                )
                losses["feedback"] = self.feedback_loss(orig, ba, rt)
                self.log_dict(
                    {"poseaug/ratio_ba": (ba / orig).mean(), "poseaug/ratio_rt": (rt / orig).mean()}
                )
            g_loss = sum(losses.values())
            self._step("g", self.generator, g_loss)
        self.log_dict({f"train/g_{k}": v.detach() for k, v in losses.items()})
        self.log("train/g_loss", g_loss.detach(), prog_bar=True)

        # 3. discriminator steps every d_every G steps (G and lifter untouched: fakes are detached)
        if self.global_step_g % hp.d_every == 0 and (self.d3d is not None or self.d2d is not None):
            real3d, real2d = self._draw_real(pose, cam)
            if self.d3d is not None:
                d_loss = discriminator_loss(self.d3d, real3d, self.pool3d(fake3d.detach()))
                self._step("d3d", self.d3d, d_loss)
                self.log("train/d3d_loss", d_loss.detach())
            if self.d2d is not None:
                d_loss = discriminator_loss(self.d2d, real2d, self.pool2d(aug2d_rt.detach()))
                self._step("d2d", self.d2d, d_loss)
                self.log("train/d2d_loss", d_loss.detach())
        self.global_step_g += 1

        # 4. estimator: in-frame augmented pairs (root-relative targets) and the real pairs
        keep = in_frame(aug2d_rt, lower=hp.in_frame_lower)
        aug2d, aug3d = aug2d_rt.detach()[keep], aug["pose_rt"].detach()[keep]
        aug3d = aug3d - aug3d[:, :1]
        self.log("poseaug/kept_fraction", keep.float().mean())
        self._record_stats(aug)
        if hp.estimator_schedule == "iteration":
            if self.after_warmup:
                x2d, x3d = torch.cat([aug2d, batch["pose2d"]]), torch.cat([aug3d, batch["pose3d"]])
                p_loss = F.mse_loss(self.lifter(x2d), x3d)
                self._step("p", self.lifter, p_loss)
                self.log("train/p_loss", p_loss.detach(), prog_bar=True)
        elif self.after_warmup:  # nothing to buffer during warm-up: the lifter is not trained then
            for key, value in (
                ("aug2d", aug2d),
                ("aug3d", aug3d),
                ("real2d", batch["pose2d"]),
                ("real3d", batch["pose3d"]),
            ):
                self._buffer[key].append(value.detach())
            if batch_idx + 1 >= self.trainer.num_training_batches:  # the epoch's last batch
                bs = hp.estimator_batch_size or batch["pose2d"].shape[0]
                self.log("train/p_loss_aug", self.estimator_pass("aug", bs))
                self.log("train/p_loss_real", self.estimator_pass("real", bs))
                for v in self._buffer.values():
                    v.clear()

    @property
    def global_step_g(self) -> int:
        """G steps taken so far (the reference's ``train_iter_num``); kept in the checkpoint."""
        return int(self.g_steps)

    @global_step_g.setter
    def global_step_g(self, value: int) -> None:
        self.g_steps.fill_(value)

    def estimator_pass(self, which: str, batch_size: int) -> torch.Tensor:
        """One shuffled pass of lifter steps over the epoch's ``"aug"`` or ``"real"`` buffer; mean loss."""
        if not self._buffer[f"{which}2d"]:
            return torch.zeros(())
        # (.to: batches restored from a checkpoint come back on the CPU)
        x2d = torch.cat([t.to(self.device) for t in self._buffer[f"{which}2d"]])
        x3d = torch.cat([t.to(self.device) for t in self._buffer[f"{which}3d"]])
        n = len(x2d)
        if self._distributed:  # equal step counts on every process, or the all-reduces deadlock
            count = torch.tensor(n, device=x2d.device)
            dist.all_reduce(count, op=dist.ReduceOp.MIN)
            n = int(count)
        perm = torch.randperm(len(x2d), device=x2d.device)[:n]
        total = x2d.new_zeros(())
        steps = 0
        self.lifter.train()
        for start in range(0, n, batch_size):
            idx = perm[start : start + batch_size]
            if len(idx) < 2:  # BatchNorm cannot train on one sample (the reference skips it too)
                break
            loss = F.mse_loss(self.lifter(x2d[idx]), x3d[idx])
            self._step("p", self.lifter, loss)
            total, steps = total + loss.detach(), steps + 1
        return total / max(steps, 1)

    # -- checkpoint state ----------------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # a mid-epoch checkpoint carries the partial epoch buffer so a resume trains on it too
        checkpoint["poseaug_buffer"] = {k: [t.cpu() for t in v] for k, v in self._buffer.items()}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        saved = checkpoint.get("poseaug_buffer")
        if saved:
            self._buffer = {k: list(v) for k, v in saved.items()}

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
            self._log_histograms(stats)
        if self.hparams.figure_every_n_epochs and len(self._stats) < 8:  # a few batches are enough to plot
            keep = {"pose_rt": aug["pose_rt"].detach()[:256].cpu()}
            self._stats.append(keep)

    def _log_histograms(self, stats: dict[str, torch.Tensor]) -> None:
        for logger in self.loggers:
            exp = getattr(logger, "experiment", None)
            if hasattr(exp, "add_histogram"):  # TensorBoard
                for k, v in stats.items():
                    exp.add_histogram(f"aug/{k}", v, self.global_step)
            elif type(logger).__name__.endswith("WandbLogger"):
                import wandb

                logger.log_metrics(
                    {f"aug/{k}": wandb.Histogram(v.cpu().numpy()) for k, v in stats.items()},
                    step=self.global_step,
                )

    def _log_figure(self) -> None:
        if not self.trainer.is_global_zero or self._real3d is None:
            return
        n = min(2048, len(self._real3d))
        src = self._real3d[torch.randint(len(self._real3d), (n,))]
        aug = torch.cat([s["pose_rt"] for s in self._stats])
        fig = viewpoint_position_figure(src, aug, self.skeleton)
        for logger in self.loggers:
            exp = getattr(logger, "experiment", None)
            if hasattr(exp, "add_figure"):
                exp.add_figure("poseaug/figure7", fig, self.global_step)
            elif type(logger).__name__.endswith("WandbLogger"):
                import wandb

                logger.experiment.log({"poseaug/figure7": wandb.Image(fig)}, step=self.global_step)
        import matplotlib.pyplot as plt

        plt.close(fig)


def body_frame_viewpoint(
    pose: torch.Tensor, skeleton: Skeleton = H36M17
) -> tuple[torch.Tensor, torch.Tensor]:
    """Azimuth and elevation (deg) of the camera seen from the body of absolute poses (N, J, 3).

    Body frame: x from the left to the right hip, y up the spine (pelvis -> thorax, made
    orthogonal to x), z = y cross x (the facing direction). The camera sits at the origin, so a
    subject facing it is at azimuth 0, elevation 0.
    """
    r_hip, l_hip = skeleton.index("r_hip"), skeleton.index("l_hip")
    thorax = skeleton.index("thorax")
    x = F.normalize(pose[:, r_hip] - pose[:, l_hip], dim=-1)
    up = pose[:, thorax] - pose[:, 0]
    y = F.normalize(up - (up * x).sum(-1, keepdim=True) * x, dim=-1)
    z = torch.cross(y, x, dim=-1)  # facing direction: up x right
    cam = F.normalize(-pose[:, 0], dim=-1)
    cx, cy, cz = (cam * x).sum(-1), (cam * y).sum(-1), (cam * z).sum(-1)
    return torch.rad2deg(torch.atan2(cx, cz)), torch.rad2deg(torch.asin(cy.clamp(-1, 1)))


def viewpoint_position_figure(
    source: torch.Tensor, augmented: torch.Tensor, skeleton: Skeleton = H36M17
) -> Any:
    """Figure 7: source vs augmented absolute poses: view points (top), root positions (bottom)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(8, 7), sharex="row", sharey="row")
    for col, (name, pose) in enumerate((("source", source), ("augmented", augmented))):
        pose = pose.detach().float().cpu()
        az, el = body_frame_viewpoint(pose, skeleton)
        axes[0, col].scatter(az.numpy(), el.numpy(), s=2, alpha=0.3)
        axes[0, col].set(title=f"{name}: view point", xlabel="azimuth (deg)", ylabel="elevation (deg)")
        axes[1, col].scatter(pose[:, 0, 0].numpy(), pose[:, 0, 2].numpy(), s=2, alpha=0.3)
        axes[1, col].set(title=f"{name}: root position", xlabel="x (m)", ylabel="z / depth (m)")
    fig.tight_layout()
    return fig
