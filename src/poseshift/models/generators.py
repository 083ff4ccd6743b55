"""Pose generators (augmentors) shared by the adversarial methods: plain ``nn.Module``s.

* :class:`PoseAugmentor` is PoseAug's G (BA -> BL -> RT, each a noise-conditioned MLP on the
  original pose);
* :class:`LocalPoseAugmentor` is PoseDA's LPA generator (BA -> BL -> R, each a residual MLP
  on the condition pose, the previous sub-net's output and noise; no translation).

Both share :class:`AugmentorHeads`, which turns the sub-nets' raw outputs into BA, BL and
rotation parameters with PoseAug's squashing; the geometric operations themselves live in
:mod:`poseshift.augment`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from poseshift.augment import (
    BA_FROZEN_BONES_H36M17,
    BL_GROUPS_H36M17,
    bone_angle_perturb,
    bone_length_scale,
    expand_shared,
    group_matrix,
    rigid_transform,
)
from poseshift.geometry.bones import bone_lengths
from poseshift.geometry.skeleton import H36M17, Skeleton
from poseshift.models.blocks import ResidualMLP, kaiming_init_linear


def noise_mlp(in_features: int, out_features: int, width: int, num_stages: int) -> ResidualMLP:
    """PoseAug's generator trunk: Linear+BN+LReLU, then skip-free [Linear, BN, LReLU] x2 blocks, head.

    Residual connections are off, as in the reference (METHODS.md 2.1).
    """
    return ResidualMLP(
        in_features,
        out_features,
        width=width,
        num_stages=num_stages,
        dropout=0.0,
        residual=False,
        activation=nn.LeakyReLU,
    )


class AugmentorHeads(nn.Module):
    """What PoseAug's and PoseDA's generators share: noise, and BA / BL / rotation from raw head outputs.

    Subclasses build the sub-nets; these methods apply PoseAug's squashing (METHODS.md 2.2):
    BA adds the raw (nb, 3) output to the unit bone directions (``ba_frozen`` held), BL maps
    ``blr_limit * tanh(raw)`` per shared group (``bl_held_groups`` held at 0) to every bone, and
    the rotation is the axis-angle ``rot_limit * tanh(raw)``.

    Args:
        skeleton: joint layout.
        noise_dim: Gaussian noise size per sub-net.
        blr_limit: BL residual bound, ``ratio = 1 + blr_limit * tanh(.)``.
        rot_limit: bound of each axis-angle component, radians (PoseAug: pi).
        bl_groups: bones sharing one BL ratio (left = right).
        ba_frozen: bones BA may not turn.
        bl_held_groups: BL groups whose ratio is held at 1 (the reference holds spine->thorax).
    """

    def __init__(
        self,
        skeleton: Skeleton = H36M17,
        noise_dim: int = 48,
        blr_limit: float = 0.2,
        rot_limit: float = math.pi,
        bl_groups: Sequence[Sequence[int]] = BL_GROUPS_H36M17,
        ba_frozen: Sequence[int] = BA_FROZEN_BONES_H36M17,
        bl_held_groups: Sequence[int] = (4,),
    ) -> None:
        super().__init__()
        self.skeleton = skeleton
        self.noise_dim = noise_dim
        self.blr_limit = blr_limit
        self.rot_limit = rot_limit
        self.ba_frozen = tuple(ba_frozen)
        self.register_buffer("bl_groups", group_matrix(bl_groups, skeleton.num_bones), persistent=False)
        held = torch.ones(len(bl_groups))
        held[list(bl_held_groups)] = 0.0
        self.register_buffer("bl_keep", held, persistent=False)

    def _with_noise(self, *features: torch.Tensor) -> torch.Tensor:
        x = torch.cat(features, dim=-1)
        return torch.cat([x, torch.randn(x.shape[0], self.noise_dim, device=x.device, dtype=x.dtype)], dim=-1)

    def apply_ba(self, pose: torch.Tensor, raw: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """BA from raw (B, 3 nb) outputs: the turned poses and ``1 - cos`` per bone (B, nb)."""
        delta = raw.reshape(pose.shape[0], self.skeleton.num_bones, 3)
        return bone_angle_perturb(pose, delta, self.ba_frozen, self.skeleton)

    def apply_bl(
        self, pose: torch.Tensor, raw: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """BL from raw (B, G) outputs: the rescaled poses, the shared residuals (B, G), the ratios (B, nb)."""
        blr = self.blr_limit * torch.tanh(raw * self.bl_keep)
        ratios = 1 + expand_shared(blr, self.bl_groups)
        return bone_length_scale(pose, ratios, self.skeleton), blr, ratios

    def axis_angle(self, raw: torch.Tensor) -> torch.Tensor:
        """Rotation vectors (B, 3) from raw (B, 3) outputs."""
        return self.rot_limit * torch.tanh(raw)


class PoseAugmentor(AugmentorHeads):
    """The augmentor G: BA -> BL -> RT, each a noise-conditioned MLP on the *original* pose.

    Args:
        skeleton: joint layout.
        width: hidden width of each sub-net (reference 256).
        num_stages: blocks per sub-net (reference 2).
        noise_dim: Gaussian noise size per sub-net (reference 48).
        use_ba: build the bone-angle sub-net (else BA is the identity and has no weights).
        use_bl: build the bone-length sub-net.
        use_rt: build the rotation and translation sub-nets.
        blr_limit: BL residual bound, ``ratio = 1 + blr_limit * tanh(.)`` (reference 0.2).
        bl_groups: bones sharing one BL ratio (left = right).
        ba_frozen: bones BA may not turn.
        bl_held_groups: BL groups whose ratio is held at 1 (the reference holds spine->thorax).
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
        super().__init__(skeleton, noise_dim, blr_limit, math.pi, bl_groups, ba_frozen, bl_held_groups)
        j3, nb = 3 * skeleton.num_joints, skeleton.num_bones
        self.ba = noise_mlp(j3 + noise_dim, 3 * nb, width, num_stages) if use_ba else None
        self.bl = noise_mlp(j3 + nb + noise_dim, len(bl_groups), width, num_stages) if use_bl else None
        self.rot = noise_mlp(j3 + noise_dim, 3, width, num_stages) if use_rt else None
        self.trans = noise_mlp(j3 + noise_dim, 3, width, num_stages) if use_rt else None
        kaiming_init_linear(self)

    def forward(self, pose: torch.Tensor) -> dict[str, torch.Tensor]:
        """Augment absolute camera-frame poses (B, J, 3).

        Returns a dict: ``pose_ba``, ``pose_bl``, ``pose_rt`` (B, J, 3, absolute), ``ba_diff`` (B, nb),
        ``blr`` (B, 9) shared BL residuals, ``ratios`` (B, nb), ``axis_angle`` and ``translation`` (B, 3).
        """
        b, nb = pose.shape[0], self.skeleton.num_bones
        flat = (pose - pose[:, :1]).reshape(b, -1)  # every sub-net sees the original root-relative pose
        if self.ba is not None:
            pose_ba, ba_diff = self.apply_ba(pose, self.ba(self._with_noise(flat)))
        else:
            pose_ba, ba_diff = pose, pose.new_zeros(b, nb)
        if self.bl is not None:
            raw = self.bl(self._with_noise(flat, bone_lengths(pose, self.skeleton)))
            pose_bl, blr, ratios = self.apply_bl(pose_ba, raw)
        else:
            blr, ratios, pose_bl = pose.new_zeros(b, self.bl_groups.shape[0]), pose.new_ones(b, nb), pose_ba
        if self.rot is not None and self.trans is not None:
            axis_angle = self.axis_angle(self.rot(self._with_noise(flat)))
            raw_t = self.trans(self._with_noise(flat))
            # t is the new absolute root; t_z = raw^2 keeps it in front of the camera plane
            translation = torch.cat([raw_t[:, :2], raw_t[:, 2:] ** 2], dim=-1)
            pose_rt = rigid_transform(pose_bl, axis_angle, translation)
        else:
            axis_angle, translation, pose_rt = pose.new_zeros(b, 3), pose_bl[:, 0], pose_bl
        return {
            "pose_ba": pose_ba,
            "ba_diff": ba_diff,
            "pose_bl": pose_bl,
            "blr": blr,
            "ratios": ratios,
            "axis_angle": axis_angle,
            "translation": translation,
            "pose_rt": pose_rt,
        }


def residual_noise_mlp(in_features: int, out_features: int, width: int, block_layers: int) -> ResidualMLP:
    """PoseDA's generator sub-net: Linear+BN+LReLU, one residual block of ``block_layers``
    [Linear, BN, LReLU] with its skip, and a Linear head (``block_layers=1``: 3 Linear layers,
    the paper's "3-layer residual MLP"; the paper gives no widths or normalization, so PoseAug's
    width and BatchNorm are kept)."""
    return ResidualMLP(
        in_features,
        out_features,
        width=width,
        num_stages=1,
        dropout=0.0,
        residual=True,
        activation=nn.LeakyReLU,
        block_layers=block_layers,
    )


class LocalPoseAugmentor(AugmentorHeads):
    """PoseDA's local pose augmentation G: BA -> BL -> R on root-relative poses, no translation.

    The three sub-nets run in sequence (PoseDA 4.2: "each network receives the output of the
    previous network as well as noise"); each also sees the condition pose (the source pose by
    default). Inputs: BA ``[cond, z]``, BL ``[cond, pose_ba, z]``, R ``[cond, pose_bl, z]``
    (flattened root-relative joints, fresh N(0, I) noise each). The transformations are applied
    to the source pose; the output stays root-relative, because GPA (or the source root) places it.

    Args:
        skeleton: joint layout.
        width: hidden width of each sub-net (PoseAug's 256; the paper gives none).
        block_layers: Linear layers in each sub-net's residual block (1: 3 Linear layers in all).
        noise_dim: Gaussian noise size per sub-net (PoseAug's 48).
        use_ba: build the bone-angle sub-net (else BA is the identity).
        use_bl: build the bone-length sub-net.
        use_rot: build the rotation sub-net.
        blr_limit: BL residual bound (PoseAug's 0.2).
        rot_limit: bound of each axis-angle component, radians (PoseAug's pi).
        bl_groups: bones sharing one BL ratio (left = right).
        ba_frozen: bones BA may not turn.
        bl_held_groups: BL groups whose ratio is held at 1.
    """

    def __init__(
        self,
        skeleton: Skeleton = H36M17,
        width: int = 256,
        block_layers: int = 1,
        noise_dim: int = 48,
        use_ba: bool = True,
        use_bl: bool = True,
        use_rot: bool = True,
        blr_limit: float = 0.2,
        rot_limit: float = math.pi,
        bl_groups: Sequence[Sequence[int]] = BL_GROUPS_H36M17,
        ba_frozen: Sequence[int] = BA_FROZEN_BONES_H36M17,
        bl_held_groups: Sequence[int] = (4,),
    ) -> None:
        super().__init__(skeleton, noise_dim, blr_limit, rot_limit, bl_groups, ba_frozen, bl_held_groups)
        if not (use_ba or use_bl or use_rot):
            raise ValueError("LocalPoseAugmentor needs at least one of BA, BL, R")
        j3, nb = 3 * skeleton.num_joints, skeleton.num_bones
        self.ba = residual_noise_mlp(j3 + noise_dim, 3 * nb, width, block_layers) if use_ba else None
        self.bl = (
            residual_noise_mlp(2 * j3 + noise_dim, len(bl_groups), width, block_layers) if use_bl else None
        )
        self.rot = residual_noise_mlp(2 * j3 + noise_dim, 3, width, block_layers) if use_rot else None
        kaiming_init_linear(self)

    def forward(self, pose: torch.Tensor, condition: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Augment poses (B, J, 3) (made root-relative), conditioned on ``condition`` (B, J, 3)
        (default: the poses themselves).

        Returns a dict: ``pose_ba``, ``pose_bl``, ``pose`` (B, J, 3, root-relative; ``pose`` is
        the final output), ``ba_diff`` (B, nb), ``blr`` (B, G), ``ratios`` (B, nb), ``axis_angle`` (B, 3).
        """
        b, nb = pose.shape[0], self.skeleton.num_bones
        pose = pose - pose[:, :1]
        cond = pose if condition is None else condition - condition[:, :1]
        cond = cond.reshape(b, -1)
        if self.ba is not None:
            pose_ba, ba_diff = self.apply_ba(pose, self.ba(self._with_noise(cond)))
        else:
            pose_ba, ba_diff = pose, pose.new_zeros(b, nb)
        if self.bl is not None:
            raw = self.bl(self._with_noise(cond, pose_ba.reshape(b, -1)))
            pose_bl, blr, ratios = self.apply_bl(pose_ba, raw)
        else:
            blr, ratios, pose_bl = pose.new_zeros(b, self.bl_groups.shape[0]), pose.new_ones(b, nb), pose_ba
        if self.rot is not None:
            axis_angle = self.axis_angle(self.rot(self._with_noise(cond, pose_bl.reshape(b, -1))))
            # rotation about the root (at the origin), which stays where it is
            out = rigid_transform(pose_bl, axis_angle, pose_bl[:, 0])
        else:
            axis_angle, out = pose.new_zeros(b, 3), pose_bl
        return {
            "pose_ba": pose_ba,
            "ba_diff": ba_diff,
            "pose_bl": pose_bl,
            "blr": blr,
            "ratios": ratios,
            "axis_angle": axis_angle,
            "pose": out,
        }


__all__ = ["AugmentorHeads", "LocalPoseAugmentor", "PoseAugmentor", "noise_mlp", "residual_noise_mlp"]
