"""3D pose metrics: torchmetrics classes (:mod:`.pose`) over a functional core (:mod:`.functional`)."""

from poseshift.metrics import functional
from poseshift.metrics.pose import (
    AUC,
    JOINT_SETS,
    MPJPE,
    PAMPJPE,
    PCK,
    DepthError,
    pose_metrics,
    resolve_joints,
)

__all__ = [
    "AUC",
    "JOINT_SETS",
    "MPJPE",
    "PAMPJPE",
    "PCK",
    "DepthError",
    "functional",
    "pose_metrics",
    "resolve_joints",
]
