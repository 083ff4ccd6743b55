"""Pose generators (augmentors) shared by the adversarial methods: plain ``nn.Module``s.

:class:`PoseAugmentor` is PoseAug's G (BA -> BL -> RT, each a noise-conditioned MLP on the
original pose); the geometric operations themselves live in :mod:`poseshift.augment`, so other
generators compose the same ops.
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


class PoseAugmentor(nn.Module):
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
        self.ba = noise_mlp(j3 + noise_dim, 3 * nb, width, num_stages) if use_ba else None
        self.bl = noise_mlp(j3 + nb + noise_dim, len(bl_groups), width, num_stages) if use_bl else None
        self.rot = noise_mlp(j3 + noise_dim, 3, width, num_stages) if use_rt else None
        self.trans = noise_mlp(j3 + noise_dim, 3, width, num_stages) if use_rt else None
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


__all__ = ["PoseAugmentor", "noise_mlp"]
