"""2D keypoints from a user's npz file, for ``poseshift predict``.

Accepted layouts (H36M-17 joint order, see ``poseshift.geometry.skeleton``):

* ``pose2d`` (N, 17, 2): already screen-normalized (e.g. a file written by ``PoseSet.save``);
* ``keypoints`` (N, 17, 2) in pixels, with the image size either in the file
  (``image_size``: (2,) or (N, 2) as width, height) or given as ``width``/``height``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from data_modules.schema import DataFormatError, PoseDataset, collate_batch, open_npz
from poseshift.geometry.camera import normalize_screen
from poseshift.geometry.skeleton import NUM_JOINTS


def load_keypoints(path: str | Path, width: float | None = None, height: float | None = None) -> np.ndarray:
    """Screen-normalized (N, 17, 2) keypoints from ``path``; errors name the file and key."""
    path = Path(path)
    data = open_npz(path)
    key = "pose2d" if "pose2d" in data else "keypoints" if "keypoints" in data else None
    if key is None:
        raise DataFormatError(f"{path}: needs a 'pose2d' or 'keypoints' array; found {sorted(data)}")
    kp = np.asarray(data[key], dtype=np.float32)
    if kp.ndim != 3 or kp.shape[1:] != (NUM_JOINTS, 2):
        raise DataFormatError(f"{path}: {key} must have shape (N, {NUM_JOINTS}, 2), got {kp.shape}")
    if not np.isfinite(kp).all():
        bad = int((~np.isfinite(kp)).any(axis=(1, 2)).sum())
        raise DataFormatError(f"{path}: {key} has NaN or inf in {bad} of {len(kp)} poses")
    if key == "pose2d":
        return kp
    if "image_size" in data:
        size = np.asarray(data["image_size"], dtype=np.float32)
        if size.shape not in ((2,), (len(kp), 2)):
            raise DataFormatError(
                f"{path}: image_size must have shape (2,) or ({len(kp)}, 2) (width, height in pixels), "
                f"got {size.shape}"
            )
        size = np.broadcast_to(size, (len(kp), 2))
    elif width is not None and height is not None:
        size = np.broadcast_to(np.array([width, height], dtype=np.float32), (len(kp), 2))
    else:
        raise DataFormatError(
            f"{path}: 'keypoints' are in pixels, so the image size is needed: add 'image_size' to the file "
            "or pass --data.width and --data.height"
        )
    t = torch.from_numpy(kp)
    size_t = torch.from_numpy(np.ascontiguousarray(size))
    return normalize_screen(t, size_t[:, 0:1], size_t[:, 1:2]).numpy()


class KeypointsDataModule(pl.LightningDataModule):
    """Serves a keypoint file for ``predict``.

    Args:
        path: npz file with ``pose2d`` (normalized) or ``keypoints`` (pixels).
        width: image width in pixels, when ``keypoints`` has no ``image_size``.
        height: image height in pixels, likewise.
        batch_size: poses per forward pass.
    """

    def __init__(
        self, path: str, width: float | None = None, height: float | None = None, batch_size: int = 4096
    ) -> None:
        super().__init__()
        self.path = path
        self.width = width
        self.height = height
        self.batch_size = batch_size
        self.pose2d: np.ndarray | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.pose2d is None:
            self.pose2d = load_keypoints(self.path, self.width, self.height)

    def predict_dataloader(self) -> DataLoader:
        self.setup()
        dataset = PoseDataset({"pose2d": self.pose2d})
        return DataLoader(dataset, batch_size=self.batch_size, shuffle=False, collate_fn=collate_batch)
