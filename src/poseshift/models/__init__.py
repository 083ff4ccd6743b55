"""Networks as plain ``nn.Module``s: lifting backbones, the cascade, generators and discriminators.

Every backbone maps normalized 2D poses (B, J, 2) -- or (B, T, J, 2) for a temporal
VideoPose3D with ``T == receptive_field`` -- to root-relative 3D (B, J, 3) whose root row
(joint 0) is exactly zero, takes a ``skeleton`` (default ``H36M17``) and exposes
``receptive_field`` (1 for single-frame models). SimpleBaseline and VideoPose3D predict
the J-1 non-root joints and pad a zero root; SemGCN and STGCN predict all J joints and
subtract the predicted root.
"""

from __future__ import annotations

from torch import nn

from poseshift.models.blocks import ResidualLinearBlock, ResidualMLP, kaiming_init_linear
from poseshift.models.cascade import CascadeLifter
from poseshift.models.discriminators import (
    ConsistencyCritic,
    GroupedLinear,
    KCSDiscriminator,
    PoseDiscriminator2D,
    TemporalDiscriminator2D,
)
from poseshift.models.generators import (
    CameraGenerator,
    DepthLifter,
    LocalPoseAugmentor,
    MotionGenerator,
    PoseAugmentor,
    ReprojectionNet,
)
from poseshift.models.semgcn import SemGCN, SemGraphConv
from poseshift.models.simple_baseline import SimpleBaseline
from poseshift.models.stgcn import STGCN
from poseshift.models.videopose import VideoPose3D

BACKBONES: dict[str, type[nn.Module]] = {
    "simple_baseline": SimpleBaseline,
    "videopose": VideoPose3D,
    "semgcn": SemGCN,
    "stgcn": STGCN,
}


def build_backbone(name: str, **kwargs: object) -> nn.Module:
    """Instantiate the backbone registered as ``name`` with constructor ``kwargs``."""
    try:
        cls = BACKBONES[name]
    except KeyError:
        known = ", ".join(sorted(BACKBONES))
        raise ValueError(f"unknown backbone {name!r}; known backbones: {known}") from None
    return cls(**kwargs)


__all__ = [
    "BACKBONES",
    "CameraGenerator",
    "CascadeLifter",
    "ConsistencyCritic",
    "DepthLifter",
    "GroupedLinear",
    "KCSDiscriminator",
    "MotionGenerator",
    "LocalPoseAugmentor",
    "PoseAugmentor",
    "PoseDiscriminator2D",
    "ReprojectionNet",
    "TemporalDiscriminator2D",
    "ResidualLinearBlock",
    "ResidualMLP",
    "STGCN",
    "SemGCN",
    "SemGraphConv",
    "SimpleBaseline",
    "VideoPose3D",
    "build_backbone",
    "kaiming_init_linear",
]
