"""LightningDataModules for poseshift: every dataset emits the schema in ``data_modules.schema``."""

from data_modules.base import DomainSets, PoseDataModule, UnpaddedDistributedSampler
from data_modules.keypoints import KeypointsDataModule
from data_modules.mocap import MocapDataModule
from data_modules.schema import DataFormatError, PoseDataset, PoseSet

__all__ = [
    "DataFormatError",
    "DomainSets",
    "KeypointsDataModule",
    "MocapDataModule",
    "PoseDataModule",
    "PoseDataset",
    "PoseSet",
    "UnpaddedDistributedSampler",
]
