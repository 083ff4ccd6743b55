"""Temporal windows over a :class:`PoseSet` for temporal lifters (VideoPose3D, AdaptPose).

Sample ``i`` becomes the window of ``receptive_field`` (odd: 27, 81, 243, ...) 2D poses centred
on it, taken from the samples of the same contiguous sequence (consecutive samples with one
``sequence`` id). Frames beyond either end of the sequence repeat the edge frame, as
VideoPose3D pads its inputs (``np.pad(..., "edge")``), so every sample keeps a full window
and nothing is dropped. Labels (``pose3d``, ``root3d``) and ids stay those of the centre frame.

``random_stride > 1`` is AdaptPose's random temporal down-sampling for training: each sample
draws its own stride in ``min_stride..random_stride`` and its window skips frames accordingly
(``offsets * stride``), still clamped to the sequence. AdaptPose's code draws 1 or 2
(``min_stride=1, random_stride=2``); its paper says r in [2, 5] (``min_stride=2, random_stride=5``).

Batches carry ``pose2d`` as (B, T, J, 2); everything else as in :class:`PoseDataset`. With
``window_3d`` they also carry the window's 3D, ``pose3d_window`` (B, T, J, 3) and
``root3d_window`` (B, T, 3), gathered with the same indices (a temporal generator moves 3D clips).
"""

from __future__ import annotations

import numpy as np
import torch

from data_modules.schema import DataFormatError, PoseDataset, PoseSet


def sequence_bounds(sequence: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First index and one-past-last index of each sample's run of equal sequence ids."""
    n = len(sequence)
    if n == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    change = np.flatnonzero(np.diff(sequence) != 0) + 1
    starts = np.concatenate([[0], change])
    ends = np.concatenate([change, [n]])
    run = np.repeat(np.arange(len(starts)), ends - starts)
    return starts[run], ends[run]


class WindowedPoseDataset(PoseDataset):
    """A :class:`PoseDataset` whose ``pose2d`` is a window of ``receptive_field`` frames.

    Args:
        poses: the set, or aligned arrays with ``pose2d``, ``sequence`` and ``frame``; samples of
            one sequence must be consecutive and in time order.
        receptive_field: odd window length T.
        random_stride: largest per-sample stride drawn in training (1 = always contiguous).
        seed: seed of the stride draws.
        min_stride: smallest per-sample stride drawn (1).
        window_3d: also serve ``pose3d_window`` and ``root3d_window`` (labeled sets only).
    """

    def __init__(
        self,
        poses: PoseSet | dict[str, np.ndarray],
        receptive_field: int,
        random_stride: int = 1,
        seed: int = 0,
        window_3d: bool = False,
        min_stride: int = 1,
    ) -> None:
        if receptive_field < 1 or receptive_field % 2 == 0:
            raise ValueError(f"receptive_field must be a positive odd number, got {receptive_field}")
        if not 1 <= min_stride <= random_stride:
            raise ValueError(
                f"strides must satisfy 1 <= min_stride <= random_stride, got {min_stride}, {random_stride}"
            )
        # aligned arrays (e.g. one video of user keypoints) need 'pose2d', 'sequence' and 'frame'
        arrays = poses.arrays() if isinstance(poses, PoseSet) else poses
        where = f"{poses.source}: {poses.name}" if isinstance(poses, PoseSet) else "poses"
        sequence, frame = arrays["sequence"], arrays["frame"]
        runs = np.flatnonzero(np.diff(sequence) != 0)
        if len(np.unique(sequence)) != len(runs) + (len(sequence) > 0):
            raise DataFormatError(
                f"{where}.sequence: samples of a sequence are not "
                "consecutive; temporal windows need each sequence stored contiguously"
            )
        same = np.diff(sequence) == 0
        if (np.diff(frame)[same] <= 0).any():
            raise DataFormatError(f"{where}.frame: frames within a sequence are not increasing")
        super().__init__(poses)
        start, end = sequence_bounds(sequence)
        self._start = torch.from_numpy(start)
        self._last = torch.from_numpy(end - 1)
        pad = receptive_field // 2
        self._offsets = torch.arange(-pad, pad + 1)
        self.receptive_field = receptive_field
        self.random_stride = random_stride
        self.min_stride = min_stride
        self.window_3d = window_3d and "pose3d" in arrays and "root3d" in arrays
        self._generator = torch.Generator().manual_seed(seed)

    def window_indices(self, idx: torch.Tensor) -> torch.Tensor:
        """(B, T) sample indices of the windows centred on ``idx``, edge-clamped per sequence."""
        if self.random_stride > self.min_stride:
            stride = torch.randint(
                self.min_stride, self.random_stride + 1, (len(idx), 1), generator=self._generator
            )
        elif self.min_stride > 1:
            stride = torch.full((len(idx), 1), self.min_stride, dtype=torch.long)
        else:
            stride = torch.ones(len(idx), 1, dtype=torch.long)
        pos = idx[:, None] + self._offsets[None] * stride
        return torch.minimum(torch.maximum(pos, self._start[idx, None]), self._last[idx, None])

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        batch = self.__getitems__([index])
        return {k: v[0] for k, v in batch.items()}

    def __getitems__(self, indices: list[int]) -> dict[str, torch.Tensor]:
        idx = torch.as_tensor(indices, dtype=torch.long)
        batch = {k: v[idx] for k, v in self._tensors.items() if k != "pose2d"}
        window = self.window_indices(idx)
        batch["pose2d"] = self._tensors["pose2d"][window]
        if self.window_3d:
            batch["pose3d_window"] = self._tensors["pose3d"][window]
            batch["root3d_window"] = self._tensors["root3d"][window]
        return batch
