"""Pose generators shared by the adversarial methods: plain ``nn.Module``s.

* :class:`PoseAugmentor` is PoseAug's G (BA -> BL -> RT, each a noise-conditioned MLP on the
  original pose); the geometric operations themselves live in :mod:`poseshift.augment`, so
  other generators compose the same ops.
* :class:`DepthLifter` is Deng et al.'s generator (2D -> one depth per joint) wrapped as a
  lifter, and :class:`ReprojectionNet` their reprojection network (rotated 3D -> 2D).
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
from poseshift.geometry.body import mean_root_distance, normalize_scale, total_bone_length
from poseshift.geometry.bones import bone_lengths
from poseshift.geometry.skeleton import H36M17, Skeleton
from poseshift.models.blocks import ResidualMLP, check_pose2d, kaiming_init_linear

SCALE_RESTORES = ("bone_length", "root_distance")


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


def martinez_mlp(
    in_features: int, out_features: int, width: int, num_stages: int, dropout: float
) -> ResidualMLP:
    """Deng et al.'s generator / reprojection trunk: Martinez's residual MLP with BN, LeakyReLU, dropout.

    ``Linear(in->width)+BN+LReLU+Drop``, ``num_stages`` residual blocks of two such layers, then
    ``Linear(width->out)``; every Linear weight ``kaiming_normal_`` as in Martinez/PoseAug.
    """
    mlp = ResidualMLP(
        in_features,
        out_features,
        width=width,
        num_stages=num_stages,
        dropout=dropout,
        activation=nn.LeakyReLU,
    )
    kaiming_init_linear(mlp)
    return mlp


class DepthLifter(nn.Module):
    """Deng et al.'s generator as a lifter: 2D -> one depth per joint, 3D pose = (x, y, z).

    The generator works on scale-free poses (the paper's preprocessing): the 2D input is
    root-centred and divided by its mean joint-to-root distance, the network predicts a depth
    z for each of the J joints, and the generated pose is ``(x_n, y_n, z - z_root)``, which
    keeps the normalized input 2D exactly in x and y (:meth:`generate`).

    :meth:`forward` is what poseshift evaluates: screen-normalized 2D (B, J, 2) -> root-relative
    3D (B, J, 3) in metres. The paper does not say how its scale-free output becomes
    millimetres; here the generated pose is scaled so that

    * ``"bone_length"`` (default): its total bone length equals :attr:`metric_bone_length`,
      the mean total bone length of the source training poses. The sum of bone lengths does
      not change when a body bends, so a correctly shaped pose of an average-sized body comes
      out in exact metres;
    * ``"root_distance"``: its mean joint-to-root distance equals :attr:`metric_root_distance`,
      the source mean of the paper's own normalizer (which shrinks when the body crouches, so
      curled poses come out too large).

    The two references are buffers (saved in checkpoints), set by the method from the source
    training set before training (:meth:`set_metric_reference`).

    Args:
        skeleton: joint layout; J = ``skeleton.num_joints``.
        width: hidden width of the generator MLP (Martinez: 1024).
        num_stages: residual blocks (the paper: 2).
        dropout: dropout rate after each activation (Martinez: 0.5).
        scale_restore: how metres are restored, ``"bone_length"`` or ``"root_distance"``.
    """

    receptive_field: int = 1

    def __init__(
        self,
        skeleton: Skeleton = H36M17,
        width: int = 1024,
        num_stages: int = 2,
        dropout: float = 0.5,
        scale_restore: str = "bone_length",
    ) -> None:
        super().__init__()
        if scale_restore not in SCALE_RESTORES:
            raise ValueError(f"scale_restore must be one of {SCALE_RESTORES}, got {scale_restore!r}")
        self.skeleton = skeleton
        self.num_joints = skeleton.num_joints
        self.scale_restore = scale_restore
        self.generator = martinez_mlp(2 * self.num_joints, self.num_joints, width, num_stages, dropout)
        self.register_buffer("incidence", skeleton.incidence(), persistent=False)
        # NaN until set from the source data: a lifter that was never given metres fails loudly
        self.register_buffer("metric_bone_length", torch.tensor(float("nan")))
        self.register_buffer("metric_root_distance", torch.tensor(float("nan")))

    @torch.no_grad()
    def set_metric_reference(self, poses: torch.Tensor) -> None:
        """Set both metric references from (N, J, 3) source poses in metres."""
        # once, before training, on the host in float64 (the sums run over the whole training set)
        poses = poses.detach().cpu().double()
        self.metric_bone_length.fill_(float(total_bone_length(poses, self.incidence.cpu().double()).mean()))
        self.metric_root_distance.fill_(float(mean_root_distance(poses).mean()))

    @property
    def has_metric_reference(self) -> bool:
        return bool(torch.isfinite(self.metric_bone_length)) and bool(
            torch.isfinite(self.metric_root_distance)
        )

    def normalize_input(self, pose2d: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, J, 2) screen 2D -> root-centred 2D with unit mean root distance, and the scales (B,)."""
        return normalize_scale(pose2d)

    def generate(self, pose2d_normalized: torch.Tensor) -> torch.Tensor:
        """Normalized 2D (B, J, 2) -> the generated pose (B, J, 3): the input x, y and the depths.

        Depths are made relative to the root's so the pose is root-centred like the 2D.
        """
        b = pose2d_normalized.shape[0]
        z = self.generator(pose2d_normalized.reshape(b, 2 * self.num_joints))
        return torch.cat([pose2d_normalized, (z - z[:, :1]).unsqueeze(-1)], dim=-1)

    def to_metres(self, pose: torch.Tensor) -> torch.Tensor:
        """Scale scale-free root-centred poses (B, J, 3) to metres by :attr:`scale_restore`."""
        if self.scale_restore == "bone_length":
            size, reference = total_bone_length(pose, self.incidence), self.metric_bone_length
        else:
            size, reference = mean_root_distance(pose), self.metric_root_distance
        return pose * (reference.to(pose.dtype) / size.clamp_min(1e-8))[:, None, None]

    def forward(self, pose2d: torch.Tensor) -> torch.Tensor:
        """(B, J, 2) screen-normalized 2D -> (B, J, 3) root-relative 3D in metres."""
        check_pose2d(pose2d, self.num_joints, type(self).__name__)
        return self.to_metres(self.generate(self.normalize_input(pose2d)[0]))


class ReprojectionNet(nn.Module):
    """Deng et al.'s reprojection network: a (rotated) 3D pose (B, J, 3) -> a 2D pose (B, J, 2).

    The generator's Martinez-style MLP with one residual block (the paper).

    Args:
        num_joints: joints J.
        width: hidden width (1024, as the generator).
        num_stages: residual blocks (the paper: 1).
        dropout: dropout rate (0.5, as the generator).
    """

    def __init__(
        self,
        num_joints: int = H36M17.num_joints,
        width: int = 1024,
        num_stages: int = 1,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        self.num_joints = num_joints
        self.mlp = martinez_mlp(3 * num_joints, 2 * num_joints, width, num_stages, dropout)

    def forward(self, pose3d: torch.Tensor) -> torch.Tensor:
        b = pose3d.shape[0]
        return self.mlp(pose3d.reshape(b, 3 * self.num_joints)).reshape(b, self.num_joints, 2)


__all__ = [
    "SCALE_RESTORES",
    "DepthLifter",
    "PoseAugmentor",
    "ReprojectionNet",
    "martinez_mlp",
    "noise_mlp",
]
