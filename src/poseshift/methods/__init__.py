"""Lifting methods, one LightningModule each, on one base that owns the players and evaluation."""

from poseshift.methods.adversarial import AdversarialModule, NonFiniteLossError, Player
from poseshift.methods.base import Evaluation, LiftingModule
from poseshift.methods.baseline import Baseline
from poseshift.methods.evoskeleton import EvoSkeleton
from poseshift.methods.poseaug import PoseAug
from poseshift.methods.syncadv import SyncAdv

__all__ = [
    "AdversarialModule",
    "Baseline",
    "Evaluation",
    "EvoSkeleton",
    "LiftingModule",
    "NonFiniteLossError",
    "Player",
    "PoseAug",
    "SyncAdv",
]
