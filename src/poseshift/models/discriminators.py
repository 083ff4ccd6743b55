"""Pose discriminators (critics) shared by the adversarial methods: plain ``nn.Module``s.

* :class:`KCSDiscriminator` (D3d): PoseAug's "KCS paths" on part-aware KCS (``part``), the
  same parts with bone lengths kept (``part_length``), Wandt's whole-body KCS (``full``) or
  Deng et al.'s weighted KCS (``weighted``); with ``mid=None`` each path is PoseDA's 4-layer
  residual MLP (its anchor critic).
* :class:`PoseDiscriminator2D` (D2d): PoseAug's 2D MLP, optionally with AdaptPose's 2D-KCS
  branch (the paper's domain discriminator).
* :class:`TemporalDiscriminator2D`: a D on the frame-to-frame motion of 2D windows.
* :class:`ConsistencyCritic`: Deng et al.'s three-branch critic on a (3D pose, 2D pose) pair,
  with a weighted-KCS, plain-KCS or no KCS branch.

None has BatchNorm, so real and fake samples may share one forward pass.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from poseshift.geometry.kcs import kcs, kcs_weights, part_kcs, weighted_kcs
from poseshift.geometry.skeleton import H36M17, Skeleton
from poseshift.models.blocks import ResidualLinearBlock, kaiming_init_linear

KCS_MODES = ("part", "part_length", "full", "weighted")
CRITIC_KCS = ("weighted", "plain", "none")


class GroupedLinear(nn.Module):
    """P independent Linear layers applied to (N, P, in) at once (one batched matmul).

    Args:
        groups: number of independent layers P.
        in_features: input size of each.
        out_features: output size of each.
    """

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


def kcs_features(pose: torch.Tensor, mode: str, skeleton: Skeleton = H36M17) -> torch.Tensor:
    """(B, J, D) poses -> (B, P, nb*nb) flattened KCS features (P = parts for ``part``, else 1)."""
    if mode == "part":
        k = part_kcs(pose, skeleton)
    elif mode == "part_length":
        k = part_kcs(pose, skeleton, unit=False)
    elif mode == "full":
        k = kcs(pose, skeleton).unsqueeze(1)
    elif mode == "weighted":
        k = weighted_kcs(pose, skeleton).unsqueeze(1)
    else:
        raise ValueError(f"KCS mode must be one of {KCS_MODES}, got {mode!r}")
    return k.flatten(-2)


class KCSDiscriminator(nn.Module):
    """D3d: one "KCS path" per body part on part-aware KCS (or one on the whole-body KCS).

    Path: L(in->w), LReLU -> L(w->w), LReLU -> L(w->w) + skip from the first output ->
    LReLU(L(w->mid)) -> L(mid->1). Output (B, P) logits (P = 5 parts, or 1 for ``full`` and
    ``weighted``), plus one more column with ``full_branch``. With ``mid=None`` the path ends
    LReLU -> L(w->1) after the skip: four Linear layers with one residual connection, our reading
    of PoseDA's "4-layer residual MLP" anchor critic (the paper gives no widths).

    Args:
        skeleton: joint layout with ``parts`` (correct left/right labels).
        mode: ``"part"`` (PoseAug's part-aware KCS, unit bones), ``"part_length"`` (the same five
            parts with bone lengths kept), ``"full"`` (Wandt's KCS with bone lengths, PoseAug's
            Table 7 ablation) or ``"weighted"`` (Deng et al.'s wKCS).
        width: path width (PoseAug's reference: 256; its class default of 1000 is overridden there).
        mid: width of the path's last hidden layer (100); ``None`` leaves that layer out.
        full_branch: add one path on the whole-body KCS (with bone lengths) of the *unperturbed*
            pose: AdaptPose's paper (sec. 4.3; not in its code) feeds perturbed 3D to the part
            paths and the original 3D to a KCS branch.
    """

    def __init__(
        self,
        skeleton: Skeleton = H36M17,
        mode: str = "part",
        width: int = 256,
        mid: int | None = 100,
        full_branch: bool = False,
    ) -> None:
        super().__init__()
        if mode not in KCS_MODES:
            raise ValueError(f"KCS mode must be one of {KCS_MODES}, got {mode!r}")
        self.skeleton, self.mode, self.full_branch = skeleton, mode, full_branch
        p = (len(skeleton.parts) if mode in ("part", "part_length") else 1) + int(full_branch)
        nb2 = skeleton.num_bones**2
        self.l1, self.l2, self.l3 = (
            GroupedLinear(p, nb2, width),
            GroupedLinear(p, width, width),
            GroupedLinear(p, width, width),
        )
        if mid is None:
            self.l4, self.l5 = GroupedLinear(p, width, 1), None
        else:
            self.l4, self.l5 = GroupedLinear(p, width, mid), GroupedLinear(p, mid, 1)
        self.act = nn.LeakyReLU()

    def features(self, pose: torch.Tensor) -> torch.Tensor:
        """(B, J, 3) -> (B, P, nb*nb) KCS features."""
        return kcs_features(pose, self.mode, self.skeleton)

    def forward(self, pose: torch.Tensor, perturbed: torch.Tensor | None = None) -> torch.Tensor:
        """Scores (B, P) of poses (B, J, 3); ``perturbed`` (B, J, 3), if given, is what the part
        paths read instead (the full branch always reads ``pose``)."""
        x = self.features(pose if perturbed is None else perturbed)
        if self.full_branch:
            x = torch.cat([x, kcs(pose, self.skeleton).flatten(-2).unsqueeze(1)], dim=1)
        h1 = self.act(self.l1(x))
        h3 = self.l3(self.act(self.l2(h1))) + h1
        if self.l5 is None:
            return self.l4(self.act(h3)).squeeze(-1)
        return self.l5(self.act(self.l4(h3))).squeeze(-1)


class PoseDiscriminator2D(nn.Module):
    """D2d on the screen-normalized 2D pose (not root-centred, so it sees position and scale).

    d1 = LReLU(L(2J->w)), d3 = LReLU(L(LReLU(L(d1))) + d1), then L -> LReLU(L) -> L(w->1)
    (PoseAug's ``Pos2dDiscriminator``). With ``kcs_branch`` (AdaptPose's paper, the code's unused
    ``Pos2dDiscriminator_kcs``) a second path reads the whole-body 2D KCS (in->256->256->256
    with a skip ->100) and the two 100-dim features are joined by L(200->100) -> LReLU -> L(100->1).

    Args:
        num_joints: joints J of the 2D pose.
        width: hidden width of the 2D MLP (100).
        kcs_branch: add the 2D-KCS path.
        skeleton: bone layout for the 2D KCS.
        kcs_width: hidden width of the KCS path (256).
    """

    def __init__(
        self,
        num_joints: int = H36M17.num_joints,
        width: int = 100,
        kcs_branch: bool = False,
        skeleton: Skeleton = H36M17,
        kcs_width: int = 256,
    ) -> None:
        super().__init__()
        self.l1, self.l2, self.l3 = (
            nn.Linear(2 * num_joints, width),
            nn.Linear(width, width),
            nn.Linear(width, width),
        )
        self.l4, self.l5, self.out = nn.Linear(width, width), nn.Linear(width, width), nn.Linear(width, 1)
        self.act = nn.LeakyReLU()
        self.skeleton = skeleton
        self.kcs = None
        if kcs_branch:
            nb2 = skeleton.num_bones**2
            self.kcs = nn.ModuleList(
                [
                    nn.Linear(nb2, kcs_width),
                    nn.Linear(kcs_width, kcs_width),
                    nn.Linear(kcs_width, kcs_width),
                    nn.Linear(kcs_width, width),
                ]
            )
            self.joint = nn.Sequential(nn.Linear(2 * width, width), nn.LeakyReLU(), nn.Linear(width, 1))
        kaiming_init_linear(self)

    def forward(self, pose2d: torch.Tensor) -> torch.Tensor:
        x = pose2d.reshape(pose2d.shape[0], -1)
        d1 = self.act(self.l1(x))
        d3 = self.act(self.l3(self.act(self.l2(d1))) + d1)
        d5 = self.act(self.l5(self.l4(d3)))
        if self.kcs is None:
            return self.out(d5)
        k1 = self.act(self.kcs[0](kcs(pose2d, self.skeleton).flatten(-2)))
        k3 = self.kcs[2](self.act(self.kcs[1](k1))) + k1
        k4 = self.act(self.kcs[3](self.act(k3)))
        return self.joint(torch.cat([d5, k4], dim=-1))


class TemporalDiscriminator2D(nn.Module):
    """D on the motion of 2D windows (B, T, J, 2): an MLP on the T-1 frame-to-frame differences.

    Sees how joints move rather than where they are (AdaptPose's code builds such a D over
    243 frames but never trains it; it is here for experiments on temporal realism).

    Args:
        frames: window length T.
        num_joints: joints J.
        width: hidden width.
    """

    def __init__(self, frames: int, num_joints: int = H36M17.num_joints, width: int = 256) -> None:
        super().__init__()
        if frames < 2:
            raise ValueError(f"a temporal discriminator needs windows of >= 2 frames, got {frames}")
        self.frames = frames
        self.net = nn.Sequential(
            nn.Linear((frames - 1) * num_joints * 2, width),
            nn.LeakyReLU(),
            nn.Linear(width, width),
            nn.LeakyReLU(),
            nn.Linear(width, 1),
        )
        kaiming_init_linear(self)

    def forward(self, window2d: torch.Tensor) -> torch.Tensor:
        if window2d.dim() != 4 or window2d.shape[1] != self.frames:
            raise ValueError(f"expected 2D windows (B, {self.frames}, J, 2), got {tuple(window2d.shape)}")
        motion = window2d[:, 1:] - window2d[:, :-1]
        return self.net(motion.flatten(1))


class ConsistencyCritic(nn.Module):
    """Deng et al.'s critic D*(Y, X, KCS(Y)) on a 3D pose Y (B, J, 3) and a 2D pose X (B, J, 2).

    Three branches of the same width ``w``, concatenated, then the head (paper Fig. 4):

    * 3D: ``L(3J->w), LReLU`` then a residual block ``x + [L, LReLU, L, LReLU](x)``;
    * 2D: ``L(2J->w), LReLU``;
    * KCS: ``L(nb*nb->w), LReLU`` on the weighted KCS of Y (``kcs="weighted"``), its plain KCS
      (``"plain"``, Wandt's) or absent (``"none"``); the KCS is computed inside from Y, so a
      gradient penalty on interpolated (Y, X) sees the KCS of the interpolate;
    * head: one ``L(k*w -> 1)`` (paper). A single linear layer on concatenated features makes
      the score a sum of a 3D, a 2D and a KCS term, which cannot judge whether X and Y agree;
      ``head_hidden > 0`` inserts ``L(k*w->h), LReLU`` before it (RepNet's head) so it can.

    No BatchNorm or dropout (the WGAN-GP penalty is per sample); output (B, 1).

    Args:
        skeleton: joint layout (bones for the KCS).
        kcs: ``"weighted"``, ``"plain"`` or ``"none"`` (the paper's KCS vs wKCS ablation).
        width: the width w of every branch (the paper: equal widths, value not given).
        head_hidden: hidden units of the head; 0 = the paper's single FC layer.
    """

    def __init__(
        self, skeleton: Skeleton = H36M17, kcs: str = "weighted", width: int = 1024, head_hidden: int = 0
    ) -> None:
        super().__init__()
        if kcs not in CRITIC_KCS:
            raise ValueError(f"kcs must be one of {CRITIC_KCS}, got {kcs!r}")
        if width < 1 or head_hidden < 0:
            raise ValueError(f"width must be >= 1 and head_hidden >= 0, got {width} and {head_hidden}")
        self.skeleton, self.kcs_mode = skeleton, kcs
        nj, nb = skeleton.num_joints, skeleton.num_bones
        self.branch3d = nn.Sequential(
            nn.Linear(3 * nj, width),
            nn.LeakyReLU(),
            ResidualLinearBlock(width, dropout=0.0, activation=nn.LeakyReLU, batch_norm=False),
        )
        self.branch2d = nn.Sequential(nn.Linear(2 * nj, width), nn.LeakyReLU())
        self.branch_kcs = nn.Sequential(nn.Linear(nb * nb, width), nn.LeakyReLU()) if kcs != "none" else None
        joined = width * (3 if self.branch_kcs is not None else 2)
        if head_hidden:
            self.head = nn.Sequential(
                nn.Linear(joined, head_hidden), nn.LeakyReLU(), nn.Linear(head_hidden, 1)
            )
        else:
            self.head = nn.Sequential(nn.Linear(joined, 1))
        kaiming_init_linear(self)
        # buffers, so a step on an accelerator builds nothing on the host
        self.register_buffer("incidence", skeleton.incidence(), persistent=False)
        weights = kcs_weights(skeleton) if kcs == "weighted" else torch.ones(nb, nb)
        self.register_buffer("kcs_weights", weights, persistent=False)

    def kcs_features(self, pose3d: torch.Tensor) -> torch.Tensor:
        """(B, J, 3) -> (B, nb*nb): the flattened (weighted) KCS the KCS branch reads."""
        bones = self.incidence.mT.to(pose3d.dtype) @ pose3d  # (B, nb, 3) child minus parent
        gram = bones @ bones.mT
        return (gram * self.kcs_weights.to(pose3d.dtype)).flatten(1)

    def forward(self, pose3d: torch.Tensor, pose2d: torch.Tensor) -> torch.Tensor:
        b = pose3d.shape[0]
        feats = [self.branch3d(pose3d.reshape(b, -1)), self.branch2d(pose2d.reshape(b, -1))]
        if self.branch_kcs is not None:
            feats.append(self.branch_kcs(self.kcs_features(pose3d)))
        return self.head(torch.cat(feats, dim=-1))


__all__ = [
    "CRITIC_KCS",
    "KCS_MODES",
    "ConsistencyCritic",
    "GroupedLinear",
    "KCSDiscriminator",
    "PoseDiscriminator2D",
    "TemporalDiscriminator2D",
    "kcs_features",
]
