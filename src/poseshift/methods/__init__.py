"""Lifting methods, one LightningModule each."""

from poseshift.methods.base import LiftingModule
from poseshift.methods.baseline import Baseline
from poseshift.methods.evoskeleton import CascadeLifter, EvoSkeleton
from poseshift.methods.poseaug import PoseAug

__all__ = ["Baseline", "CascadeLifter", "EvoSkeleton", "LiftingModule", "PoseAug"]
