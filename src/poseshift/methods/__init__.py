"""Lifting methods, one LightningModule each."""

from poseshift.methods.base import LiftingModule
from poseshift.methods.baseline import Baseline

__all__ = ["Baseline", "LiftingModule"]
