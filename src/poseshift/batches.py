"""What methods receive: the batch schema and the few documented things a DataModule may be asked.

A method sees data only through

* **batches**: evaluation batches are :class:`PoseBatch` dicts; a training batch is a
  :class:`TrainBatch`, ``{"source": PoseBatch}`` plus ``"target"`` (unlabeled target-domain
  2D, no ``pose3d``) when the DataModule serves one (``data.train_target``);
* **accessors** of :class:`PoseDataSource`, which the DataModules in ``data_modules``
  implement: the whole labeled training split (for statistics and discriminator "real" pools)
  and per-test-set evaluation facts.

The library never imports ``data_modules``; these types are the contract between the two.

=================  ===============  ==========================================================
key                shape            meaning
=================  ===============  ==========================================================
pose2d             (B, J, 2)        2D keypoints, screen-normalized (both axes / image width);
                   (B, T, J, 2)     T-frame windows centred on each sample (receptive_field T)
pose3d             (B, J, 3)        camera-frame 3D, root-relative, metres (labeled sets only)
root3d             (B, 3)           absolute camera-frame root position, metres
pose3d_window      (B, T, J, 3)     root-relative 3D of every window frame (``window_3d``)
root3d_window      (B, T, 3)        the window frames' roots (``window_3d``)
intrinsics         (B, 9)           normalized ``[fx, fy, cx, cy, k1, k2, k3, p1, p2]``
image_size         (B, 2)           width, height in pixels
subject, action,   (B,)             integer ids (action indexes ``TestSetInfo.action_names``)
camera, frame,
sequence
=================  ===============  ==========================================================
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, TypedDict, runtime_checkable

import torch


class PoseBatch(TypedDict, total=False):
    """A batch of samples (see the module docstring for shapes and units)."""

    pose2d: torch.Tensor
    pose3d: torch.Tensor
    root3d: torch.Tensor
    pose3d_window: torch.Tensor
    root3d_window: torch.Tensor
    intrinsics: torch.Tensor
    image_size: torch.Tensor
    subject: torch.Tensor
    action: torch.Tensor
    camera: torch.Tensor
    frame: torch.Tensor
    sequence: torch.Tensor


class TrainBatch(TypedDict, total=False):
    """A training batch: labeled source samples and, if served, unlabeled target-domain samples."""

    source: PoseBatch
    target: PoseBatch


@dataclass(frozen=True)
class TestSetInfo:
    """How a named evaluation set is scored.

    Args:
        name: the set's name (metric keys are ``<stage>/<name>/<metric>``).
        eval_joints: joints the metrics use: ``None`` (the method's own choice), a joint-set
            name such as ``"official14"``, or H36M-17 indices.
        action_names: names of the action ids (for per-action results).
        oracle: the set is a target test set used for model selection (report as oracle).
        flip_test: the set's protocol fixes flip test-time augmentation (e.g. PoseAug's 3DHP
            protocol); ``None`` = the method's ``evaluation.flip_test``.
    """

    name: str
    eval_joints: tuple[int, ...] | str | None = None
    action_names: tuple[str, ...] = ()
    oracle: bool = False
    flip_test: bool | None = None


@runtime_checkable
class PoseDataSource(Protocol):
    """The accessors a method may call on its DataModule (``self.trainer.datamodule``)."""

    def test_set_info(self) -> dict[str, TestSetInfo]:
        """Evaluation facts of every test set, by name, in dataloader order."""
        ...

    def validation_info(self) -> TestSetInfo:
        """Evaluation facts of the validation set (``oracle`` when it is a target test set)."""
        ...

    def training_poses(self) -> PoseBatch:
        """The whole labeled source training split as CPU tensors (single frames, no windows)."""
        ...


__all__ = ["PoseBatch", "PoseDataSource", "TestSetInfo", "TrainBatch"]
