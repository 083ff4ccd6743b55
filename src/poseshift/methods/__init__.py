"""Lifting methods, one LightningModule each, on one base that owns the players and evaluation."""

from poseshift.methods.adaptpose import AdaptPose
from poseshift.methods.adversarial import AdversarialModule, NonFiniteLossError, Player
from poseshift.methods.augmentation import FeedbackAugmentation
from poseshift.methods.base import Evaluation, LiftingModule
from poseshift.methods.baseline import Baseline
from poseshift.methods.evoskeleton import EvoSkeleton
from poseshift.methods.poseaug import PoseAug
from poseshift.methods.poseda import PoseDA
from poseshift.methods.syncadv import SyncAdv

__all__ = [
    "AdaptPose",
    "AdversarialModule",
    "Baseline",
    "Evaluation",
    "EvoSkeleton",
    "FeedbackAugmentation",
    "LiftingModule",
    "NonFiniteLossError",
    "Player",
    "PoseAug",
    "PoseDA",
    "SyncAdv",
]
