"""Per-frame outputs of ``poseshift predict``: a JSON file of every frame and renders of a frame range.

:class:`FrameOutputs` gathers, beside the lifted poses, what each predict batch carries about
its frames: ``frame`` (frame numbers), ``keypoints`` (the 2D input in pixels; otherwise the
centre frame of ``pose2d``), ``image_size``, ``score`` and ``filled`` (per-joint confidence and
whether the joint was filled from another frame). A DataModule may expose ``prediction_info``
(a dict, e.g. the source file and the frames without a person) that goes into the JSON header.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import BasePredictionWriter

from poseshift.geometry.skeleton import JOINT_NAMES
from poseshift.render import render_poses

DEFAULT_RENDER_FRAMES = 100  # a GIF of the first 100 lifted frames unless a range is given


def parse_frame_range(text: str | None) -> tuple[int, int] | None:
    """'START:STOP' (frame numbers, STOP excluded) or 'N' (one frame) -> (start, stop); None stays None."""
    if text is None:
        return None
    parts = str(text).split(":")
    try:
        if len(parts) == 1:
            start = int(parts[0])
            return start, start + 1
        if len(parts) == 2:
            start = int(parts[0]) if parts[0] else 0
            stop = int(parts[1]) if parts[1] else np.iinfo(np.int64).max
            if stop > start:
                return start, stop
    except ValueError:
        pass
    raise ValueError(
        f"--render_frames {text!r}: use START:STOP (frame numbers, STOP excluded) or one frame N"
    )


def write_frames_json(
    path: str | Path, pose3d: np.ndarray, extras: dict[str, np.ndarray], info: dict[str, Any] | None = None
) -> Path:
    """One JSON file: a header and, per lifted frame, its 3D pose, 2D input, scores and filled joints."""
    path = Path(path)
    n = len(pose3d)
    frames = extras.get("frame", np.arange(n))
    header: dict[str, Any] = {
        **(info or {}),
        "joint_names": list(JOINT_NAMES),
        "pose3d": "metres, camera frame (x right, y down, z forward), relative to the pelvis",
        "keypoints2d": "the lifter's 2D input in H36M-17 order: pixels (screen-normalized without an "
        "image size)",
    }
    rows = []
    for i in range(n):
        row: dict[str, Any] = {
            "frame": int(frames[i]),
            "pose3d": np.round(pose3d[i].astype(np.float64), 5).tolist(),
        }
        if "keypoints" in extras:
            row["keypoints2d"] = np.round(extras["keypoints"][i].astype(np.float64), 3).tolist()
        if "score" in extras:
            row["score"] = np.round(extras["score"][i].astype(np.float64), 3).tolist()
        if "filled" in extras:
            row["filled"] = [JOINT_NAMES[j] for j in np.flatnonzero(extras["filled"][i])]
        rows.append(row)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**header, "frames": rows}))
    return path


class FrameOutputs(BasePredictionWriter):
    """Write ``predict``'s per-frame JSON and/or renders of the 2D input beside the 3D pose.

    Args:
        json_path: JSON file of every lifted frame (None: no JSON).
        render_path: ``.png`` (a picture per frame) or ``.gif`` (an animation); None: no render.
        render_frames: 'START:STOP' frame numbers to render (STOP excluded) or one frame 'N';
            None renders the first 100 lifted frames (a .png: the first one).
        fps: frames per second of a GIF.
    """

    def __init__(
        self,
        json_path: str | None = None,
        render_path: str | None = None,
        render_frames: str | None = None,
        fps: float = 25.0,
    ) -> None:
        super().__init__(write_interval="epoch")
        if render_path is not None and Path(render_path).suffix.lower() not in (".png", ".gif"):
            raise ValueError(f"--predict_render {render_path}: the render is a .png or .gif file")
        if fps <= 0:
            raise ValueError(f"--render_fps must be positive, got {fps}")
        self.json_path = json_path
        self.render_path = render_path
        self.render_range = parse_frame_range(render_frames)
        self.fps = fps
        self._extras: dict[str, list[np.ndarray]] = {}

    def on_predict_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._extras = {}

    def on_predict_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if not isinstance(batch, dict):
            return
        picked: dict[str, torch.Tensor] = {
            k: batch[k] for k in ("frame", "keypoints", "image_size", "score", "filled") if k in batch
        }
        if "keypoints" not in picked and "pose2d" in batch:
            pose2d = batch["pose2d"]
            picked["keypoints"] = pose2d[:, pose2d.shape[1] // 2] if pose2d.dim() == 4 else pose2d
        for key, value in picked.items():
            self._extras.setdefault(key, []).append(value.detach().cpu().numpy())

    def write_on_epoch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, predictions: Any, batch_indices: Any
    ) -> None:
        if predictions and isinstance(predictions[0], list):
            predictions = [p for loader in predictions for p in loader]
        if not predictions:
            raise RuntimeError("predict produced no poses; nothing to write")
        poses = torch.cat(predictions).cpu().numpy().astype(np.float32)
        extras = {k: np.concatenate(v) for k, v in self._extras.items()}
        info = getattr(trainer.datamodule, "prediction_info", None)
        if self.json_path is not None:
            write_frames_json(self.json_path, poses, extras, info)
            print(f"wrote {len(poses)} frames to {self.json_path}", flush=True)
        if self.render_path is not None:
            self._render(self.render_path, poses, extras)

    def _render(self, path: str, poses: np.ndarray, extras: dict[str, np.ndarray]) -> None:
        frames = extras.get("frame", np.arange(len(poses)))
        if self.render_range is None:
            count = 1 if path.lower().endswith(".png") else DEFAULT_RENDER_FRAMES
            index = np.arange(min(count, len(poses)))
        else:
            start, stop = self.render_range
            index = np.flatnonzero((frames >= start) & (frames < stop))
            if len(index) == 0:
                raise ValueError(
                    f"--render_frames {start}:{stop} holds no lifted frame; lifted frames run from "
                    f"{int(frames.min())} to {int(frames.max())}"
                )
        if "keypoints" not in extras:
            raise ValueError("--predict_render needs the 2D input, but the predict batches carry no pose2d")
        size = extras.get("image_size")
        filled = extras.get("filled")
        written = render_poses(
            path,
            extras["keypoints"][index],
            poses[index],
            frames[index],
            None if size is None else size[index],
            None if filled is None else filled[index],
            fps=self.fps,
        )
        shown = (
            f"frame {int(frames[index[0]])}"
            if len(index) == 1
            else f"frames {int(frames[index[0]])}-{int(frames[index[-1]])} ({len(index)} of {len(poses)})"
        )
        where = written[0] if len(written) == 1 else f"{written[0].parent}/{Path(path).stem}_*.png"
        print(f"rendered {shown} to {where} (choose frames with --render_frames START:STOP)", flush=True)
