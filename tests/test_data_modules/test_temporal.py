"""Temporal windows: edge padding at sequence ends, random strides, DataModule option."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from fixtures import write_h36m
from helpers import first_training_batch

from data_modules.h36m import H36MDataModule
from data_modules.schema import DataFormatError, PoseSet
from data_modules.temporal import WindowedPoseDataset, sequence_bounds


def _set(sequence: list[int], frame: list[int] | None = None) -> PoseSet:
    n = len(sequence)
    pose2d = np.zeros((n, 17, 2), np.float32)
    pose2d[:, :, 0] = np.arange(n)[:, None]  # x carries the sample index
    return PoseSet(
        pose2d=pose2d,
        pose3d=np.zeros((n, 17, 3)),
        root3d=np.zeros((n, 3)),
        intrinsics=np.zeros((n, 9)),
        image_size=np.ones((n, 2)),
        subject=np.zeros(n),
        action=np.zeros(n),
        camera=np.zeros(n),
        frame=np.arange(n) if frame is None else frame,
        sequence=sequence,
    )


def test_sequence_bounds() -> None:
    start, end = sequence_bounds(np.array([4, 4, 4, 7, 7, 1]))
    np.testing.assert_array_equal(start, [0, 0, 0, 3, 3, 5])
    np.testing.assert_array_equal(end, [3, 3, 3, 5, 5, 6])


def test_windows_repeat_edge_frames_within_each_sequence() -> None:
    ds = WindowedPoseDataset(_set([0] * 6 + [1] * 4), receptive_field=5)
    batch = ds.__getitems__([0, 1, 5, 6, 9])
    x = batch["pose2d"][..., 0, 0].long().tolist()
    assert x == [[0, 0, 0, 1, 2], [0, 0, 1, 2, 3], [3, 4, 5, 5, 5], [6, 6, 6, 7, 8], [7, 8, 9, 9, 9]]
    assert batch["pose2d"].shape == (5, 5, 17, 2) and batch["pose3d"].shape == (5, 17, 3)
    single = ds[6]
    assert single["pose2d"].shape == (5, 17, 2)


def test_random_stride_skips_frames_but_stays_in_the_sequence() -> None:
    ds = WindowedPoseDataset(_set([0] * 40), receptive_field=3, random_stride=3, seed=1)
    idx = torch.full((200,), 20)
    win = ds.window_indices(idx)
    steps = (win[:, 2] - win[:, 1]).unique().tolist()
    assert steps == [1, 2, 3] and ((win[:, 1] - win[:, 0]) == (win[:, 2] - win[:, 1])).all()
    edge = ds.window_indices(torch.tensor([39] * 50))
    assert edge.max() == 39


def test_stride_range_is_drawn_between_min_and_max() -> None:
    # AdaptPose's paper: r in [2, 5]; its code: 1 or 2
    ds = WindowedPoseDataset(_set([0] * 60), receptive_field=3, random_stride=5, seed=1, min_stride=2)
    win = ds.window_indices(torch.full((400,), 30))
    assert (win[:, 2] - win[:, 1]).unique().tolist() == [2, 3, 4, 5]
    fixed = WindowedPoseDataset(_set([0] * 60), receptive_field=3, random_stride=2, min_stride=2)
    assert (fixed.window_indices(torch.full((20,), 30))[:, 2] == 32).all()
    with pytest.raises(ValueError, match="min_stride"):
        WindowedPoseDataset(_set([0] * 10), receptive_field=3, random_stride=2, min_stride=3)


def test_bad_sequences_and_sizes() -> None:
    with pytest.raises(DataFormatError, match="not consecutive"):
        WindowedPoseDataset(_set([0, 1, 0]), receptive_field=3)
    with pytest.raises(DataFormatError, match="not increasing"):
        WindowedPoseDataset(_set([0, 0, 0], frame=[0, 2, 1]), receptive_field=3)
    with pytest.raises(ValueError, match="odd"):
        WindowedPoseDataset(_set([0, 0]), receptive_field=4)


def test_h36m_module_serves_windows(tmp_path) -> None:
    write_h36m(tmp_path, {"S1": {"Walking": 9}, "S9": {"Walking": 7}}, variants=("gt",))
    dm = H36MDataModule(
        str(tmp_path),
        train_subjects=["S1"],
        test_subjects=["S9"],
        receptive_field=27,
        random_stride=2,
        batch_size=4,
        eval_batch_size=8,
    )
    dm.setup()
    batch = next(iter(dm.test_dataloader()[0]))
    assert batch["pose2d"].shape == (8, 27, 17, 2)
    test = dm.sets.test[dm.test_set_names[0]]
    # the centre of each window is the sample itself; the first window starts with 13 copies of frame 0
    np.testing.assert_array_equal(batch["pose2d"][:, 13].numpy(), test.pose2d[:8])
    np.testing.assert_array_equal(batch["pose2d"][0, :14].numpy(), np.repeat(test.pose2d[:1], 14, 0))
    train = first_training_batch(dm)["source"]
    assert train["pose2d"].shape == (4, 27, 17, 2)


def test_window_3d_serves_the_3d_of_the_same_frames() -> None:
    poses = _set([0] * 6 + [1] * 4)
    poses.pose3d[:, :, 2] = np.arange(10)[:, None]  # z carries the sample index
    poses.root3d[:, 1] = np.arange(10)
    ds = WindowedPoseDataset(poses, receptive_field=5, window_3d=True)
    batch = ds.__getitems__([0, 5, 6])
    frames = batch["pose2d"][..., 0, 0].long()
    assert batch["pose3d_window"].shape == (3, 5, 17, 3) and batch["root3d_window"].shape == (3, 5, 3)
    assert torch.equal(batch["pose3d_window"][..., 0, 2].long(), frames)
    assert torch.equal(batch["root3d_window"][..., 1].long(), frames)
    assert torch.equal(batch["pose3d"][..., 0, 2].long(), torch.tensor([0, 5, 6]))  # centre frame
    plain = WindowedPoseDataset(poses, receptive_field=5)
    assert "pose3d_window" not in plain.__getitems__([0])
    unlabeled = WindowedPoseDataset(poses.unlabeled(), receptive_field=5, window_3d=True)
    assert "pose3d_window" not in unlabeled.__getitems__([0])
