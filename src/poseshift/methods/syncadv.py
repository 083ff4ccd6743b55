"""SyncAdv-wKCS (Deng, Sun, Sun and Zhu, "3D Human Pose Estimation Based on 2D-3D Consistency with
Synchronized Adversarial Training"): a depth generator, a reprojection network and a three-branch
critic with a weighted kinematic chain space, the generator and reprojection network trained
synchronously by the same adversarial loss.

No code was published; this is an implementation from the paper (METHODS.md section 6). What the
paper fixes is the default; every choice it leaves open is ours, documented where it is made and
switchable where it matters:

=============================  ==================================================================
the paper fixes                 ours (switch)
=============================  ==================================================================
generator: 2D -> N depths,      widths 1024, dropout 0.5, LeakyReLU 0.01, kaiming init, depths made
Martinez-style, 2 res. blocks   root-relative (``g_width``, ``g_dropout``)
reprojection net: rotated 3D    same style, 1 residual block (``r_width``, ``r_dropout``)
-> 2D
rotation about the vertical     the range is a parameter (``rotation_range``; the paper's
axis, alpha ~ U[-pi, pi]        "small" angle is a row with pi/6)
critic: 3D (FC + res. block),   branch width 256 (``d_width``); the paper's single FC head is
2D (FC), wKCS (FC), concat,     additive in the branches, so it cannot judge 2D-3D agreement;
one FC                          ``d_head_hidden`` adds RepNet's hidden layer
WGAN, Adam 8e-5, (0, 0.9)       gradient penalty (lambda 10) or weight clipping (``lipschitz``);
                                one critic step per generator update, as the paper trains all three
                                networks "during each iteration" (``n_critic``; RepNet and WGAN-GP: 5)
L_angle, lambda = 1             nose = ``neck_nose``, neck = ``thorax`` on H36M-17; the sign is
                                rewritten for poseshift's camera frame (:func:`facing_sine`)
scale normalization (root,      applied to every 2D and 3D pose the networks see; the generated
mean root distance)             pose (unit 2D scale) is renormalized to unit 3D scale before the
                                reprojection net and critic (``renormalize_fake``), else its scale
                                alone would tell it from a real pose; metres at evaluation:
                                ``scale_restore`` (``"bone_length"``: the source mean total bone
                                length), ``oracle_scale`` (ground-truth scale, the paper-style
                                weakly supervised number, not a deployable one)
Sep vs Syn                      Sep = each generator iteration a generator step (adversarial +
                                L_angle, reprojection net fixed) then a reprojection step on its
                                own loss: MSE to the input 2D (Fig. 6a, ``sep_rep_loss``) or the
                                same adversarial loss (``"adversarial"``)
real (Y, X) = GT of the input   the source of each real branch is configurable
                                (``generator_input``, ``real_3d``, ``real_2d``) so target-domain
                                2D can feed the generator or the critic
=============================  ==================================================================

Players: the evaluated lifter (:class:`~poseshift.models.DepthLifter`) *is* the generator. In
Syn mode one player ``"g"`` owns the generator and the reprojection network, so one backward of
the one loss ``-D(fake) + lambda L_angle`` updates both in the same iteration; Adam is
element-wise, so this equals two Adam optimizers stepping on that loss (a joint gradient clip,
``max_grad_norm``, is the only place where the two would differ; it is off by default) and needs
no second backward (``retain_graph``). In Sep mode they are separate players ``"g"`` and ``"r"``.
The critic is ``"d"``. ``steps_of("g")`` counts generator (lifter) updates in both modes.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from poseshift.adversarial import (
    angle_loss,
    clip_weights,
    gradient_penalty,
    wgan_critic_loss,
    wgan_generator_loss,
)
from poseshift.batches import PoseBatch, TrainBatch
from poseshift.geometry.body import mean_root_distance, normalize_scale
from poseshift.geometry.camera import add_pixel_noise
from poseshift.geometry.rotations import rotate_about_vertical
from poseshift.methods.adversarial import AdversarialModule, Player
from poseshift.methods.base import DEFAULT_EVALUATION, Evaluation
from poseshift.models import ConsistencyCritic, DepthLifter, ReprojectionNet

TRAININGS = ("syn", "sep")
SEP_REP_LOSSES = ("reprojection", "adversarial")
GENERATOR_INPUTS = ("source", "target", "mixed")
REAL_3D = ("paired", "shuffled")
REAL_2D = ("paired", "target")
LIPSCHITZ = ("gp", "clip")


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}")


class SyncAdv(AdversarialModule):
    """SyncAdv-wKCS: depth generator (the lifter), reprojection network and a 2D-3D critic.

    One ``training_step`` per batch (manual optimization):

    1. the generator lifts its 2D (scale-normalized) to ``Y = (x, y, z)``; ``Y`` is turned about
       the vertical axis by ``alpha ~ U[-rotation_range, rotation_range]``, renormalized to unit
       scale, and the reprojection network maps it to 2D: the fake is ``(Y_rot, R(Y_rot))``;
    2. **critic step** on every batch: ``E[D(fake)] - E[D(real)]`` plus the gradient penalty
       (or followed by weight clipping), the fake made without a graph;
    3. after every ``n_critic``-th critic step, a **generator iteration**: Syn: one step of
       player ``"g"`` (generator + reprojection network) on ``-E[D(fake)] + w_angle L_angle``;
       Sep: a generator step on that loss (reprojection network fixed), then a reprojection step
       on its own loss.

    Args:
        training: ``"syn"`` (generator and reprojection network updated together by the same loss)
            or ``"sep"`` (separately, one after the other; the paper's ablation).
        kcs: the critic's KCS branch: ``"weighted"`` (wKCS), ``"plain"`` (Wandt's KCS) or ``"none"``.
        rotation_range: alpha ~ U[-rotation_range, rotation_range] radians (the paper: pi).
        w_angle: weight lambda of L_angle (the paper: 1).
        lipschitz: the critic's Lipschitz constraint: ``"gp"`` (gradient penalty) or ``"clip"``
            (weight clipping); the paper says "standard WGAN" only.
        gp_weight: gradient-penalty weight (Gulrajani et al. and RepNet: 10).
        clip_value: weight-clipping bound (Arjovsky et al.: 0.01).
        n_critic: critic steps per generator iteration (1: all three networks every batch, as the
            paper's "during each iteration"; RepNet and WGAN-GP: 5).
        lr: Adam learning rate of the generator and the reprojection network (the paper: 8e-5).
        lr_d: Adam learning rate of the critic (the paper: 8e-5).
        betas: Adam betas of all three networks (the paper: (0, 0.9)).
        max_grad_norm: gradient-norm clip of every player; 0 = none (the paper mentions none).
        g_width: generator width.
        g_stages: generator residual blocks (the paper: 2).
        g_dropout: generator dropout.
        r_width: reprojection network width.
        r_stages: reprojection network residual blocks (the paper: 1).
        r_dropout: reprojection network dropout.
        d_width: width of each critic branch.
        d_head_hidden: hidden units of the critic's head; 0 = the paper's single FC layer.
        sep_rep_loss: the reprojection network's own loss in Sep mode: ``"reprojection"`` (MSE of
            its 2D for the unrotated generated pose to the input 2D, the paper's Fig. 6a) or
            ``"adversarial"`` (the generator's adversarial term, only alternating).
        generator_input: 2D the generator lifts in training: ``"source"`` (the paper), the served
            target-domain 2D (``"target"``, needs the DataModule's ``train_target``) or ``"mixed"``
            (the first half of the source batch and the first half of the target batch, so an
            iteration lifts as many poses as with one domain).
        real_3d: the critic's real 3D: ``"paired"`` (the ground truth of the poses the generator
            lifts, the paper; needs ``generator_input="source"``) or ``"shuffled"`` (source poses
            in another order, unpaired).
        real_2d: the critic's real 2D: ``"paired"`` (the source 2D of the real 3D, the paper) or
            ``"target"`` (target-domain 2D, so the reprojections are pulled towards the target).
        renormalize_fake: scale the generated pose to unit mean root distance before the
            reprojection network and the critic, as the real poses (ours; see the module docstring).
        scale_restore: how the lifter's scale-free pose gets metres: ``"bone_length"`` (total bone
            length = the source mean) or ``"root_distance"`` (mean root distance = the source mean).
        oracle_scale: evaluate with each pose rescaled to its ground-truth mean root distance
            (the usual weakly supervised protocol; a diagnostic that needs the ground truth).
        train_noise_px: Gaussian noise (pixels) added to the source training 2D (the paper's noise
            table trains on noisy 2D); converted with each sample's image width.
        w_sup: weight of a supervised MSE between the generated and the ground-truth source poses
            (both scale-normalized); 0 = the paper (weakly supervised, no direct 3D loss). Ours,
            for cross-dataset use.
        evaluation: evaluation options (:class:`~poseshift.methods.base.Evaluation`).
        finite_check_every: player steps between host checks that losses and gradients are finite
            (``None``: every step on CPU, every 100 on an accelerator).
    """

    def __init__(
        self,
        training: str = "syn",
        kcs: str = "weighted",
        rotation_range: float = math.pi,
        w_angle: float = 1.0,
        lipschitz: str = "gp",
        gp_weight: float = 10.0,
        clip_value: float = 0.01,
        n_critic: int = 1,
        lr: float = 8e-5,
        lr_d: float = 8e-5,
        betas: tuple[float, float] = (0.0, 0.9),
        max_grad_norm: float = 0.0,
        g_width: int = 1024,
        g_stages: int = 2,
        g_dropout: float = 0.5,
        r_width: int = 1024,
        r_stages: int = 1,
        r_dropout: float = 0.5,
        d_width: int = 256,
        d_head_hidden: int = 0,
        sep_rep_loss: str = "reprojection",
        generator_input: str = "source",
        real_3d: str = "paired",
        real_2d: str = "paired",
        renormalize_fake: bool = True,
        scale_restore: str = "bone_length",
        oracle_scale: bool = False,
        train_noise_px: float = 0.0,
        w_sup: float = 0.0,
        evaluation: Evaluation = DEFAULT_EVALUATION,
        finite_check_every: int | None = None,
    ) -> None:
        _choice("training", training, TRAININGS)
        _choice("sep_rep_loss", sep_rep_loss, SEP_REP_LOSSES)
        _choice("generator_input", generator_input, GENERATOR_INPUTS)
        _choice("real_3d", real_3d, REAL_3D)
        _choice("real_2d", real_2d, REAL_2D)
        _choice("lipschitz", lipschitz, LIPSCHITZ)
        if real_3d == "paired" and generator_input != "source":
            raise ValueError(
                "real_3d='paired' takes the ground truth of the poses the generator lifts, which "
                "only the source has: use generator_input='source' or real_3d='shuffled'"
            )
        if w_sup > 0 and generator_input == "target":
            raise ValueError(
                "w_sup needs source poses in the generator's input (generator_input source or mixed)"
            )
        if n_critic < 1 or not 0 <= rotation_range <= math.pi or train_noise_px < 0:
            raise ValueError(
                f"need n_critic >= 1, 0 <= rotation_range <= pi and train_noise_px >= 0, got "
                f"{n_critic}, {rotation_range}, {train_noise_px}"
            )
        lifter = DepthLifter(
            width=g_width, num_stages=g_stages, dropout=g_dropout, scale_restore=scale_restore
        )
        super().__init__(evaluation=evaluation, finite_check_every=finite_check_every, lifter=lifter)
        self.save_hyperparameters()
        self.reprojection = ReprojectionNet(self.skeleton.num_joints, r_width, r_stages, r_dropout)
        self.critic = ConsistencyCritic(self.skeleton, kcs, d_width, d_head_hidden)

    # -- players ----------------------------------------------------------------------------------
    def configure_players(self) -> dict[str, Player]:
        """Syn: ``g`` (generator + reprojection network) and ``d``; Sep: ``g``, ``r`` and ``d``."""
        hp = self.hparams
        common = {"betas": tuple(hp.betas), "max_grad_norm": hp.max_grad_norm}
        if hp.training == "syn":
            # a transient container: one optimizer over both networks, no duplicate registration
            players = {"g": Player(nn.ModuleList([self.lifter, self.reprojection]), hp.lr, **common)}
        else:
            players = {
                "g": Player(self.lifter, hp.lr, **common),
                "r": Player(self.reprojection, hp.lr, **common),
            }
        players["d"] = Player(self.critic, hp.lr_d, **common)
        return players

    @property
    def generator_steps(self) -> int:
        """Generator (lifter) updates so far; kept in checkpoints."""
        return self.steps_of("g")

    # -- metres -----------------------------------------------------------------------------------
    def on_fit_start(self) -> None:
        # the lifter's metric references come from the source training poses, once (a resumed
        # or pretrained lifter brings its own in its buffers)
        if self.lifter.has_metric_reference:
            return
        if self.data_source is None:
            raise RuntimeError(
                "SyncAdv needs the source training poses to give its scale-free output metres: use a "
                "poseshift DataModule (data_modules.*), which provides training_poses()"
            )
        self.lifter.set_metric_reference(self.training_poses()["pose3d"])

    def _require_metres(self) -> None:
        if not self.lifter.has_metric_reference:
            raise RuntimeError(
                "this SyncAdv lifter has no metric reference (set when training starts from the source "
                "poses): evaluate a trained checkpoint"
            )

    def on_validation_start(self) -> None:
        self._require_metres()

    def on_test_start(self) -> None:
        self._require_metres()

    def on_predict_start(self) -> None:
        self._require_metres()

    def predict_for_metrics(
        self, batch: PoseBatch, pose2d: torch.Tensor, flip_test: bool | None = None
    ) -> torch.Tensor:
        pred = super().predict_for_metrics(batch, pose2d, flip_test)
        if self.hparams.oracle_scale:  # the ground truth's mean root distance (diagnostic protocol)
            ratio = mean_root_distance(batch["pose3d"]) / mean_root_distance(pred)
            pred = pred * ratio[:, None, None]
        return pred

    # -- the pieces of a step -----------------------------------------------------------------------
    def fake(self, pose2d: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Screen 2D (B, J, 2) -> (Y_rot, X_rep, Y): the critic's fake pair and the generated pose.

        ``Y`` keeps the normalized input 2D in x, y; ``Y_rot`` is ``Y`` turned about the vertical
        axis (and renormalized to unit mean root distance with ``renormalize_fake``);
        ``X_rep`` is the reprojection network's 2D for ``Y_rot``.
        """
        pose = self.lifter.generate(self.lifter.normalize_input(pose2d)[0])
        rng = self.hparams.rotation_range
        alpha = (2 * torch.rand(pose.shape[0], device=pose.device, dtype=pose.dtype) - 1) * rng
        rotated = rotate_about_vertical(pose, alpha)
        if self.hparams.renormalize_fake:
            rotated = rotated / mean_root_distance(rotated)[:, None, None]
        return rotated, self.reprojection(rotated), pose

    def critic_terms(
        self, real3d: torch.Tensor, real2d: torch.Tensor, fake3d: torch.Tensor, fake2d: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """The critic's loss terms: the negated Wasserstein estimate and (GP) the gradient penalty."""
        n_real = len(real3d)
        # one forward for real and fake (the critic has no batch statistics)
        scores = self.critic(torch.cat([real3d, fake3d]), torch.cat([real2d, fake2d]))
        terms = {"wasserstein": wgan_critic_loss(scores[:n_real], scores[n_real:])}
        if self.hparams.lipschitz == "gp":
            n = min(n_real, len(fake3d))  # interpolates pair real and fake rows one to one
            gp = gradient_penalty(self.critic, (real3d[:n], real2d[:n]), (fake3d[:n], fake2d[:n]))
            terms["gp"] = self.hparams.gp_weight * gp
        return terms

    def _inputs(
        self, batch: TrainBatch
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """(generator 2D, real 3D, real 2D, ground truth of the generator's leading source rows or None)."""
        hp = self.hparams
        source = batch["source"]
        x_src, y_src = source["pose2d"], source["pose3d"]
        if x_src.dim() != 3:
            raise ValueError("SyncAdv lifts single frames: use receptive_field 1")
        if hp.train_noise_px > 0:
            x_src = add_pixel_noise(x_src, source["image_size"][:, 0], hp.train_noise_px)
        x_tgt = None
        if hp.generator_input != "source" or hp.real_2d == "target":
            target = batch.get("target")
            if target is None:
                raise RuntimeError(
                    "SyncAdv with target-domain 2D (generator_input or real_2d) needs it in the batches: "
                    "set the DataModule's train_target to one of its unlabeled target sets"
                )
            x_tgt = target["pose2d"]
        y_gen = y_src  # the ground truth of the generator's source rows (the supervised term)
        if hp.generator_input == "source":
            gen2d = x_src
        elif hp.generator_input == "target":
            gen2d, y_gen = x_tgt, None
        else:  # half and half: the same number of lifted poses per iteration as one domain
            half = (len(x_src) + 1) // 2
            gen2d, y_gen = torch.cat([x_src[:half], x_tgt[: len(x_src) - half]]), y_src[:half]
        if hp.real_3d == "shuffled":
            perm = torch.randperm(len(y_src), device=y_src.device)
            y_real, x_real = y_src[perm], x_src[perm]
        else:
            y_real, x_real = y_src, x_src
        if hp.real_2d == "target":
            n = min(len(y_real), len(x_tgt))
            y_real, x_real = y_real[:n], x_tgt[:n]
        return gen2d, normalize_scale(y_real)[0], normalize_scale(x_real)[0], y_gen

    def generator_terms(
        self, fake3d: torch.Tensor, fake2d: torch.Tensor, pose: torch.Tensor, y_src: torch.Tensor | None
    ) -> dict[str, torch.Tensor]:
        """``-E[D(fake)]``, ``w_angle * L_angle`` of the generated poses (and the supervised term)."""
        hp = self.hparams
        terms = {"adv": wgan_generator_loss(self.critic(fake3d, fake2d))}
        if hp.w_angle:
            terms["angle"] = hp.w_angle * angle_loss(pose, self.skeleton)
        if hp.w_sup and y_src is not None:
            ours = normalize_scale(pose[: len(y_src)])[0]
            terms["sup"] = hp.w_sup * F.mse_loss(ours, normalize_scale(y_src)[0])
        return terms

    # -- the algorithm --------------------------------------------------------------------------------
    def training_step(self, batch: TrainBatch, batch_idx: int) -> None:
        hp = self.hparams
        gen2d, real3d, real2d, y_src = self._inputs(batch)
        generator_iteration = (self.steps_of("d") + 1) % hp.n_critic == 0

        # 1. critic step on every batch, on detached fakes. In a generator iteration the fake is
        # made once with its graph and reused below (the critic's backward does not enter it)
        with torch.set_grad_enabled(generator_iteration):
            fake3d, fake2d, pose = self.fake(gen2d)
        d_terms = self.critic_terms(real3d, real2d, fake3d.detach(), fake2d.detach())
        self.player_step("d", d_terms)
        if hp.lipschitz == "clip":
            clip_weights(self.critic, hp.clip_value)
        self.log("train/wasserstein", -d_terms["wasserstein"].detach(), prog_bar=True)
        if "gp" in d_terms:
            self.log("train/gp", d_terms["gp"].detach())
        if not generator_iteration:
            return

        # 2. generator iteration: the updated critic scores the same fakes
        g_terms = self.generator_terms(fake3d, fake2d, pose, y_src)
        self.player_step("g", g_terms)  # Syn: generator and reprojection network; Sep: generator only
        self.log_dict({f"train/g_{k}": v.detach() for k, v in g_terms.items()})
        if hp.training == "sep":
            r_loss = self.player_step("r", self.reprojection_loss(gen2d, pose, fake3d))
            self.log("train/r_loss", r_loss.detach())

    def reprojection_loss(
        self, gen2d: torch.Tensor, pose: torch.Tensor, fake3d: torch.Tensor
    ) -> torch.Tensor:
        """Sep mode's reprojection-network loss on this iteration's generated poses (``pose``, and
        ``fake3d``, their rotated version), which carry no gradient to the generator."""
        if self.hparams.sep_rep_loss == "adversarial":
            fake3d = fake3d.detach()
            return wgan_generator_loss(self.critic(fake3d, self.reprojection(fake3d)))
        # Fig. 6a: the 2D of the unrotated generated pose should be the input 2D
        unrotated = pose.detach()
        if self.hparams.renormalize_fake:
            unrotated = unrotated / mean_root_distance(unrotated)[:, None, None]
        return F.mse_loss(self.reprojection(unrotated), self.lifter.normalize_input(gen2d)[0])

    # -- epoch end, checkpoints -------------------------------------------------------------------------
    def on_train_epoch_end(self) -> None:
        super().on_train_epoch_end()
        # the base aligns the lifter's BatchNorm statistics across processes; do the same for the
        # reprojection network's so every process holds the same players
        if self._distributed:
            for buf in self.reprojection.buffers():
                dist.broadcast(buf, src=0)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        # the random rotations, dropout masks and penalty interpolations continue where they were
        # after a resume (Lightning keeps no RNG state); every process saves its own
        checkpoint["syncadv_rng"] = self._rng_states()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_load_checkpoint(checkpoint)
        states = checkpoint.get("syncadv_rng")
        if states:
            self._restore_rng(states)

    def _rng_states(self) -> list[dict[str, torch.Tensor]]:
        state = {"cpu": torch.get_rng_state()}
        if self.device.type == "cuda":
            state["cuda"] = torch.cuda.get_rng_state(self.device)
        if not self._distributed:
            return [state]
        gathered: list[Any] = [None] * dist.get_world_size()
        dist.all_gather_object(gathered, state)
        return gathered

    def _restore_rng(self, states: list[dict[str, torch.Tensor]]) -> None:
        rank = dist.get_rank() if self._distributed else 0
        world = dist.get_world_size() if self._distributed else 1
        if len(states) != world:
            warnings.warn(
                f"the checkpoint holds the random-number states of {len(states)} processes, this run has "
                f"{world}: random draws (rotations, dropout) do not continue as in the interrupted run",
                stacklevel=2,
            )
            return
        torch.set_rng_state(states[rank]["cpu"])
        if "cuda" in states[rank] and torch.cuda.is_available():
            torch.cuda.set_rng_state(states[rank]["cuda"], torch.cuda.current_device())
