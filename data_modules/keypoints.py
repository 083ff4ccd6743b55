"""A video's 2D keypoints from a detector's files, checked and mapped to H36M-17, for ``predict``.

:func:`load_video` reads any file :mod:`data_modules.detectors` accepts (npz/npy arrays,
COCO-style JSON, MMPose JSON, OpenPose JSON folders), then:

1. **layout**: ``coco17``, ``body25``, ``coco18`` or ``h36m17``, from ``layout`` or the joint count
   (25 = BODY-25, 18 = COCO-18; 17 joints are COCO-17 when joints 0-4 form a head-sized cluster
   (nose, eyes, ears) and H36M-17 when they span the legs (pelvis, right leg, left hip));
2. **one person per frame**: the one with the largest box around its confident keypoints, or
   the given ``track_id``; frames without one are reported and not lifted;
3. **checks** (one error naming the file, frame and joint, and what to do): NaN/inf, all-zero
   frames, confident keypoints outside the image, image sizes that disagree, keypoints that
   span under 2 pixels (normalized coordinates read as pixels), pixels given as ``pose2d``;
4. **mapping to H36M-17** by the formulas of :mod:`data_modules.skeletons`;
5. **low confidence** (score below ``min_score``): ``fill`` takes the joint from the nearest
   earlier frame where it was confident (the first confident frame for the video's start) and
   fails when that is more than ``max_fill_frames`` frames away; ``fail`` stops at the first one;
6. **screen normalization** with the image size (both axes divided by the width).

``KeypointsDataModule`` serves the result to ``poseshift predict``, as single frames or, for
temporal lifters, as edge-padded windows over the video (one sequence).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from data_modules.detectors import Detections, KeypointWarning, read_detections
from data_modules.schema import DataFormatError, PoseDataset, collate_batch
from data_modules.skeletons import KEYPOINT_LAYOUTS, KeypointLayout, get_keypoint_layout, map_keypoints
from data_modules.temporal import WindowedPoseDataset
from poseshift.geometry.camera import normalize_screen, unnormalize_screen
from poseshift.geometry.skeleton import JOINT_NAMES, NUM_JOINTS

__all__ = ["KeypointWarning", "KeypointsDataModule", "Video2D", "load_keypoints", "load_video"]

LAYOUT_BY_COUNT = {25: "body25", 18: "coco18"}
# 17 joints: median over frames of the RMS spread of joints 0-4 over that of the whole pose.
# On the embedded mocap filmed from all round, COCO's face gives medians of 0.16-0.21 and H36M's
# pelvis and legs 0.65-0.73, even crawling, rolling and cartwheeling; in between it is unclear.
COCO_HEAD_RATIO = 0.35
H36M_LEG_RATIO = 0.45
# a confident keypoint may lie this fraction of the image size outside it (detectors extrapolate
# a little past the border for truncated limbs)
OUTSIDE_MARGIN = 0.02
# screen-normalized coordinates lie within about [-1, 1]; larger values are pixels
NORMALIZED_LIMIT = 4.0
# the smallest score that counts as detected (a keypoint at (0, 0) or with score 0 is not)
UNDETECTED = 1e-9


@dataclass
class Video2D:
    """One person's 2D poses through a video, in H36M-17 order, ready to lift.

    Attributes:
        source: the file or folder read.
        layout: the detector layout it was read in.
        frames: (N,) frame numbers of the lifted frames.
        keypoints: (N, 17, 2) pixels after mapping and filling (screen-normalized when the
            file had ``pose2d`` and no image size).
        pose2d: (N, 17, 2) screen-normalized, the lifter's input.
        image_size: (N, 2) width and height in pixels, or None (``pose2d`` without a size).
        score: (N, 17) confidence of each mapped joint (lowest of the joints it is made from).
        filled: (N, 17) joints taken from another frame because they were not confident.
        frames_without_person: frame numbers where nobody (or not the requested track) was found.
        notes: what was read and done, one line each, for the log.
    """

    source: str
    layout: str
    frames: np.ndarray
    keypoints: np.ndarray
    pose2d: np.ndarray
    image_size: np.ndarray | None
    score: np.ndarray
    filled: np.ndarray
    frames_without_person: np.ndarray
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.frames)


def _ranges(frames: np.ndarray, limit: int = 6) -> str:
    """'3-5, 9, 12-20' for sorted frame numbers (at most ``limit`` runs, then '...')."""
    if len(frames) == 0:
        return "none"
    breaks = np.flatnonzero(np.diff(frames) != 1) + 1
    runs = [(int(r[0]), int(r[-1])) for r in np.split(frames, breaks)]
    text = ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in runs[:limit])
    return text + (", ..." if len(runs) > limit else "")


def _rms_spread(xy: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """(F,) RMS distance of the ``ok`` keypoints of (F, K, 2) from their centroid."""
    w = ok.astype(np.float64)
    n = np.maximum(w.sum(-1, keepdims=True), 1)
    centre = (xy * w[..., None]).sum(-2) / n
    d2 = ((xy - centre[:, None]) ** 2).sum(-1)
    return np.sqrt((d2 * w).sum(-1) / n[:, 0])


def detect_layout_17(xy: np.ndarray, ok: np.ndarray) -> tuple[str | None, float]:
    """COCO-17 or H36M-17 for (F, K=17, 2) keypoints, from how tight joints 0-4 cluster.

    Returns the layout (None when unclear) and the median ratio it was decided on.
    """
    usable = ok[:, :5].sum(-1) >= 3
    usable &= ok.sum(-1) >= 8
    if not usable.any():
        return None, float("nan")
    whole = _rms_spread(xy[usable], ok[usable])
    head = _rms_spread(xy[usable, :5], ok[usable, :5])
    ratio = float(np.median(head / np.maximum(whole, 1e-9)))
    if ratio < COCO_HEAD_RATIO:
        return "coco17", ratio
    if ratio > H36M_LEG_RATIO:
        return "h36m17", ratio
    return None, ratio


class _Loader:
    """The steps of :func:`load_video`, sharing the file's name for messages."""

    def __init__(self, det: Detections, layout: str, min_score: float) -> None:
        self.det = det
        self.src = det.source
        self.layout_option = layout
        self.min_score = min_score
        # undetected keypoints have score 0 and are never trusted, even with min_score 0
        self.threshold = max(min_score, UNDETECTED)
        self.notes: list[str] = []

    def fail(self, message: str) -> NoReturn:
        raise DataFormatError(message)

    # -- 1. layout ------------------------------------------------------------------------------
    def resolve_layout(self) -> KeypointLayout:
        det, k = self.det, self.det.num_joints
        finite = np.isfinite(det.xy).all(-1) & np.isfinite(det.score)
        ok = det.present[..., None] & finite & (det.score > 0)
        if self.layout_option != "auto":
            lay = get_keypoint_layout(self.layout_option)
            if lay.num_joints != k:
                self.fail(
                    f"{self.src}: --data.layout {lay.name} has {lay.num_joints} joints but {det.key} "
                    f"has {k}; use --data.layout auto or the detector's layout"
                )
            self.notes.append(f"layout {lay.name} (--data.layout): {lay.note}")
            return lay
        if k in LAYOUT_BY_COUNT:
            lay = KEYPOINT_LAYOUTS[LAYOUT_BY_COUNT[k]]
            self.notes.append(f"layout {lay.name} (detected from {k} joints): {lay.note}")
            return lay
        if k != NUM_JOINTS:
            self.fail(
                f"{self.src}: {det.key} has {k} joints per person; supported: 17 (COCO-17 or H36M-17), "
                "18 (OpenPose COCO-18), 25 (OpenPose BODY-25)"
            )
        flat_xy = det.xy.reshape(-1, k, 2)
        name, ratio = detect_layout_17(np.where(ok.reshape(-1, k)[..., None], flat_xy, 0), ok.reshape(-1, k))
        if name is None:
            self.fail(
                f"{self.src}: 17 joints, but their order is unclear (joints 0-4 spread {ratio:.2f} of the "
                f"pose; COCO-17's face < {COCO_HEAD_RATIO}, H36M-17's legs > {H36M_LEG_RATIO}); "
                "set --data.layout coco17 or h36m17"
            )
        lay = KEYPOINT_LAYOUTS[name]
        what = "a head-sized cluster" if name == "coco17" else "the pelvis and legs"
        self.notes.append(
            f"layout {lay.name} (detected: 17 joints, joints 0-4 span {ratio:.2f} of the pose, {what}): "
            f"{lay.note}"
        )
        return lay

    # -- 2. values --------------------------------------------------------------------------------
    def check_finite(self, lay: KeypointLayout) -> None:
        det = self.det
        bad = ~(np.isfinite(det.xy).all(-1) & np.isfinite(det.score)) & det.present[..., None]
        if bad.any():
            f, p, j = (int(i[0]) for i in np.nonzero(bad))
            count = int(bad.any(axis=(1, 2)).sum())
            self.fail(
                f"{det.where(f)}, joint {lay.joint_names[j]}: NaN or inf in {det.key} (person {p}); "
                f"{count} frame(s) affected. Write missing joints as (0, 0) with score 0, or drop the frames"
            )

    def image_size(self, width: float | None, height: float | None) -> np.ndarray | None:
        det = self.det
        opts = None
        if (width is None) != (height is None):
            self.fail(f"{self.src}: give both --data.width and --data.height (got only one)")
        if width is not None and height is not None:
            opts = np.array([width, height], dtype=np.float64)
            if not (np.isfinite(opts).all() and (opts > 0).all()):
                self.fail(
                    f"--data.width/--data.height: the image size must be positive pixels, got {width} x "
                    f"{height}; pass the video's width and height"
                )
        size = det.image_size
        if size is not None:
            bad = ~(np.isfinite(size) & (size > 0)).all(-1)
            if bad.any() and opts is None:
                i = int(np.flatnonzero(bad)[0])
                self.fail(
                    f"{det.where(i)}: image_size must be positive (width, height) pixels, got "
                    f"{size[i].tolist()}; fix it in the file or pass --data.width and --data.height"
                )
            if opts is not None:
                known = ~bad
                differ = known & (np.abs(size - opts) > 0.5).any(-1)
                if differ.any():
                    i = int(np.flatnonzero(differ)[0])
                    self.fail(
                        f"{det.where(i)}: the file's image size {size[i, 0]:g} x {size[i, 1]:g} differs "
                        f"from --data.width/--data.height {width:g} x {height:g}; drop the options or fix "
                        "them"
                    )
                size = np.broadcast_to(opts, size.shape).copy()
            origin = "the file" if opts is None else "--data.width/--data.height"
            self.notes.append(f"image size {_size_text(size)} ({origin})")
            return size
        if opts is not None:
            self.notes.append(f"image size {opts[0]:g} x {opts[1]:g} (--data.width/--data.height)")
            return np.broadcast_to(opts, (len(det.frames), 2)).copy()
        if det.normalized:
            return None
        self.fail(
            f"{self.src}: keypoints are in pixels, so the image size is needed: pass --data.width and "
            "--data.height (the video's size) or add 'image_size' to the npz file"
        )

    # -- 3. one person per frame ------------------------------------------------------------------
    def choose_person(self, track_id: int | None) -> tuple[np.ndarray, np.ndarray]:
        """Slot index per frame (F,) and a mask of frames that have a person."""
        det = self.det
        people = det.xy.shape[1]
        candidate = det.present.copy()
        if track_id is not None:
            if (det.track < 0).all():
                self.fail(
                    f"{self.src}: --data.track_id {track_id} was given but the file has no track ids; "
                    "leave it unset to take the largest person of each frame"
                )
            candidate &= det.track == track_id
            if not candidate.any():
                known = np.unique(det.track[det.track >= 0])
                self.fail(
                    f"{self.src}: no person has track id {track_id}; the file has {known.tolist()[:20]}"
                )
        ok = (det.score >= self.threshold) & candidate[..., None]
        lo = np.where(ok[..., None], det.xy, np.inf).min(-2)
        hi = np.where(ok[..., None], det.xy, -np.inf).max(-2)
        area = np.where(ok.any(-1), np.prod(np.clip(hi - lo, 0, None), -1), -1.0)
        area = np.where(candidate, np.nan_to_num(area, nan=-1.0), -2.0)
        slot = area.argmax(-1)
        has = candidate.any(-1)
        if people > 1 or track_id is not None:
            rule = (
                f"track {track_id}" if track_id is not None else "the largest (--data.track_id to follow one)"
            )
            self.notes.append(f"people: up to {people} per frame; took {rule}")
        return slot, has

    def check_values(
        self,
        xy: np.ndarray,
        score: np.ndarray,
        frames_idx: np.ndarray,
        lay: KeypointLayout,
        size: np.ndarray | None,
    ) -> None:
        det = self.det
        detected = score > 0
        empty = ~detected.any(-1)
        if empty.any():
            i = int(frames_idx[np.flatnonzero(empty)[0]])
            n = int(empty.sum())
            bad_frames = _ranges(det.frames[frames_idx[empty]])
            self.fail(
                f"{det.where(i)}: every keypoint is (0, 0) or has score 0 ({n} such frame(s): "
                f"{bad_frames}); nothing can be lifted from them: drop them from the file (npz: keep the "
                "other frames' numbers in 'frame')"
            )
        confident = score >= self.threshold
        if det.normalized:
            big = confident & (np.abs(xy) > NORMALIZED_LIMIT).any(-1)
            if big.any():
                r, j = (int(a[0]) for a in np.nonzero(big))
                self.fail(
                    f"{det.where(int(frames_idx[r]))}, joint {lay.joint_names[j]}: pose2d value "
                    f"{xy[r, j].round(1).tolist()} is far outside [-1, 1]: these look like pixels. Save "
                    "them as 'keypoints' with 'image_size' (or pass --data.width/--data.height)"
                )
            return
        assert size is not None
        lo = np.where(confident[..., None], xy, np.inf).min(-2)
        hi = np.where(confident[..., None], xy, -np.inf).max(-2)
        extent = np.max(np.where(np.isfinite(hi - lo), hi - lo, 0), -1)
        tiny = confident.sum(-1) >= 2
        tiny &= extent < 2.0
        if tiny.any():
            r = int(np.flatnonzero(tiny)[0])
            self.fail(
                f"{det.where(int(frames_idx[r]))}: the keypoints span {extent[r]:.3g} pixels: they look "
                "normalized, not pixels. Write pixel coordinates (OpenPose: --keypoint_scale 0), or save "
                "screen-normalized ones as 'pose2d' in an npz"
            )
        margin = OUTSIDE_MARGIN * size[:, None, :]
        outside = confident & ((xy < -margin) | (xy > size[:, None, :] + margin)).any(-1)
        if outside.any():
            r, j = (int(a[0]) for a in np.nonzero(outside))
            frac = float(outside.any(-1).mean())
            hint = (
                "the image size looks wrong: pass the video's size as --data.width/--data.height"
                if frac > 0.2
                else "if the image size is right, the detector's output is corrupt here: drop the frame "
                "or lower that keypoint's score below --data.min_score"
            )
            self.fail(
                f"{det.where(int(frames_idx[r]))}, joint {lay.joint_names[j]}: keypoint "
                f"({xy[r, j, 0]:.1f}, {xy[r, j, 1]:.1f}) with score {score[r, j]:.2f} lies outside the "
                f"{size[r, 0]:g} x {size[r, 1]:g} image ({int(outside.sum())} keypoints in "
                f"{int(outside.any(-1).sum())} of {len(xy)} frames); {hint}"
            )

    # -- 5. low confidence ------------------------------------------------------------------------
    def low_confidence(
        self,
        xy17: np.ndarray,
        score17: np.ndarray,
        frames: np.ndarray,
        lay: KeypointLayout,
        mode: str,
        max_fill: int,
        where: Callable[[int], str],
    ) -> tuple[np.ndarray, np.ndarray]:
        low = score17 < self.threshold
        if not low.any():
            return xy17, low

        def name(j: int) -> str:
            src = lay.sources(j)
            return JOINT_NAMES[j] + ("" if src == (JOINT_NAMES[j],) else f" (from {', '.join(src)})")

        if mode == "fail":
            r, j = (int(a[0]) for a in np.nonzero(low))
            self.fail(
                f"{where(r)}, joint {name(j)}: score {score17[r, j]:.2f} is below --data.min_score "
                f"{self.min_score:g} ({int(low.sum())} such joints in {int(low.any(-1).sum())} frames); "
                "use --data.low_confidence fill to take them from the previous frame, or lower "
                "--data.min_score"
            )
        never = low.all(0)
        if never.any():
            j = int(np.flatnonzero(never)[0])
            self.fail(
                f"{self.src}, joint {name(j)}: not confident (score >= --data.min_score "
                f"{self.min_score:g}) in any of the {len(frames)} frames (best {score17[:, j].max():.2f}); "
                "lower --data.min_score or check the layout"
            )
        n = len(frames)
        idx = np.where(~low, np.arange(n)[:, None], -1)
        prev = np.maximum.accumulate(idx, axis=0)  # latest confident frame at or before each one
        first = (~low).argmax(0)
        src_idx = np.where(prev >= 0, prev, first[None, :])
        gap = np.abs(frames[:, None] - frames[src_idx])
        too_far = low & (gap > max_fill)
        if too_far.any():
            r, j = (int(a[0]) for a in np.nonzero(too_far))
            self.fail(
                f"{where(r)}, joint {name(j)}: not confident for {int(gap[r, j])} frames (more than "
                f"--data.max_fill_frames {max_fill}), so it cannot be filled from frame "
                f"{int(frames[src_idx[r, j]])}; raise --data.max_fill_frames, lower --data.min_score, or cut "
                "the video there"
            )
        filled = np.take_along_axis(xy17, src_idx[..., None], axis=0)
        out = np.where(low[..., None], filled, xy17)
        counts = low.sum(0)
        worst = int(counts.argmax())
        self.notes.append(
            f"low confidence (< {self.min_score:g}): {int(low.sum())} joints in "
            f"{int(low.any(-1).sum())} of {n} frames filled from the nearest confident frame (most: "
            f"{JOINT_NAMES[worst]}, {int(counts[worst])} frames)"
        )
        return out, low


def _skipped_frames(frames: np.ndarray) -> np.ndarray:
    """Frame numbers missing from an otherwise regular numbering (a results file lists only frames
    with detections); the regular step is the most common one, so strided videos are not flagged."""
    if len(frames) < 2:
        return frames[:0]
    steps, counts = np.unique(np.diff(frames), return_counts=True)
    step = int(steps[counts.argmax()])
    span = (int(frames[-1]) - int(frames[0])) // step + 1
    if ((frames - frames[0]) % step).any() or span > 10 * len(frames):
        return frames[:0]  # no regular numbering to compare with
    return np.setdiff1d(np.arange(frames[0], frames[-1] + 1, step), frames)


def _size_text(size: np.ndarray) -> str:
    uniq = np.unique(size, axis=0)
    if len(uniq) == 1:
        return f"{uniq[0, 0]:g} x {uniq[0, 1]:g}"
    return f"{len(uniq)} sizes, e.g. {uniq[0, 0]:g} x {uniq[0, 1]:g}"


LOW_CONFIDENCE_MODES = ("fill", "fail")


def check_options(layout: str, min_score: float, low_confidence: str, max_fill_frames: int) -> None:
    """Refuse option values :func:`load_video` cannot use, naming the option."""
    if layout != "auto" and layout not in KEYPOINT_LAYOUTS:
        raise ValueError(f"--data.layout {layout!r}: use auto or one of {', '.join(KEYPOINT_LAYOUTS)}")
    if low_confidence not in LOW_CONFIDENCE_MODES:
        raise ValueError(f"--data.low_confidence {low_confidence!r}: use fill or fail")
    if not 0 <= min_score <= 1:
        raise ValueError(f"--data.min_score must be within [0, 1], got {min_score}")
    if max_fill_frames < 0:
        raise ValueError(f"--data.max_fill_frames must be >= 0, got {max_fill_frames}")


def load_video(
    path: str | Path,
    layout: str = "auto",
    width: float | None = None,
    height: float | None = None,
    track_id: int | None = None,
    min_score: float = 0.3,
    low_confidence: str = "fill",
    max_fill_frames: int = 25,
) -> Video2D:
    """Read, check and map one video's keypoints; the arguments are :class:`KeypointsDataModule`'s."""
    check_options(layout, min_score, low_confidence, max_fill_frames)
    det = read_detections(path)
    ld = _Loader(det, layout, min_score)
    ld.notes.append(f"keypoints: {det.source} ({det.kind}, {len(det.frames)} frames)")
    if not det.present.any():
        ld.fail(
            f"{det.source}: no frame has a person (of {len(det.frames)} frames); there is nothing to lift"
        )
    lay = ld.resolve_layout()
    ld.check_finite(lay)
    size = ld.image_size(width, height)
    slot, has = ld.choose_person(track_id)
    missing = np.union1d(det.frames[~has], _skipped_frames(det.frames))
    if not has.any():
        ld.fail(
            f"{det.source}: no frame has a person{'' if track_id is None else f' with track id {track_id}'}"
        )
    keep = np.flatnonzero(has)
    xy = det.xy[keep, slot[keep]]
    score = det.score[keep, slot[keep]]
    frames = det.frames[keep]
    size = None if size is None else size[keep]
    if len(missing):
        total = len(np.union1d(det.frames, missing))
        ld.notes.append(
            f"frames without a person: {len(missing)} of {total} ({_ranges(missing)}), not lifted "
            "(temporal windows run across these gaps)"
        )
    ld.check_values(xy, score, keep, lay, size)
    xy17, score17 = map_keypoints(xy, score, lay, ld.threshold)
    xy17, filled = ld.low_confidence(
        xy17, score17, frames, lay, low_confidence, max_fill_frames, lambda r: det.where(int(keep[r]))
    )
    if size is None:  # pose2d without an image size: stays normalized
        pose2d = xy17
    else:
        t, s = torch.from_numpy(xy17), torch.from_numpy(size)
        w, h = s[:, 0:1], s[:, 1:2]
        if det.normalized:
            pose2d, xy17 = xy17, unnormalize_screen(t, w, h).numpy()
        else:
            pose2d = normalize_screen(t, w, h).numpy()
    return Video2D(
        source=det.source,
        layout=lay.name,
        frames=frames,
        keypoints=xy17.astype(np.float32),
        pose2d=pose2d.astype(np.float32),
        image_size=None if size is None else size.astype(np.float32),
        score=score17.astype(np.float32),
        filled=filled,
        frames_without_person=missing,
        notes=ld.notes,
    )


def load_keypoints(
    path: str | Path, width: float | None = None, height: float | None = None, **options: Any
) -> np.ndarray:
    """Screen-normalized (N, 17, 2) H36M-17 keypoints of ``path`` (see :func:`load_video`)."""
    return load_video(path, width=width, height=height, **options).pose2d


class KeypointsDataModule(pl.LightningDataModule):
    """Serves one video's 2D keypoints (any detector file, see ``data_modules.detectors``) to ``predict``.

    Args:
        path: npz/npy file, COCO-style or MMPose JSON file, or OpenPose folder of per-frame JSON.
        layout: joint layout of the file: auto, coco17, body25, coco18 or h36m17.
        width: image width in pixels (needed when the file has no image size).
        height: image height in pixels (likewise).
        track_id: follow the person with this track id (npz with several people: the slot);
            unset = the largest person in each frame.
        min_score: keypoints scoring below this are not trusted (0 trusts every detected keypoint).
        low_confidence: fill (take the joint from the nearest confident frame) or fail.
        max_fill_frames: longest run of frames a joint may be filled across before it is an error.
        receptive_field: frames per window for temporal lifters; unset = the checkpoint's.
        batch_size: poses per forward pass.
    """

    def __init__(
        self,
        path: str,
        layout: str = "auto",
        width: float | None = None,
        height: float | None = None,
        track_id: int | None = None,
        min_score: float = 0.3,
        low_confidence: str = "fill",
        max_fill_frames: int = 25,
        receptive_field: int | None = None,
        batch_size: int = 4096,
    ) -> None:
        super().__init__()
        if batch_size <= 0:
            raise ValueError(f"--data.batch_size must be positive, got {batch_size}")
        if receptive_field is not None and (receptive_field < 1 or receptive_field % 2 == 0):
            raise ValueError(f"--data.receptive_field must be odd and >= 1, got {receptive_field}")
        check_options(layout, min_score, low_confidence, max_fill_frames)  # fail before the model loads
        self.path = path
        self.options = {
            "layout": layout,
            "width": width,
            "height": height,
            "track_id": track_id,
            "min_score": min_score,
            "low_confidence": low_confidence,
            "max_fill_frames": max_fill_frames,
        }
        self.receptive_field = receptive_field
        self.batch_size = batch_size
        self.video: Video2D | None = None

    @property
    def pose2d(self) -> np.ndarray | None:
        return None if self.video is None else self.video.pose2d

    def setup(self, stage: str | None = None) -> None:
        if self.video is None:
            self.video = load_video(self.path, **self.options)
            print("\n".join(self.video.notes), flush=True)

    def match_lifter(self, model: torch.nn.Module) -> None:
        """Take the receptive field from the checkpoint's lifter (called by ``poseshift predict``)."""
        lifter = getattr(model, "lifter", model)
        rf = int(getattr(lifter, "receptive_field", 1))
        if self.receptive_field is None:
            self.receptive_field = rf
        elif self.receptive_field != rf:
            raise ValueError(
                f"--data.receptive_field {self.receptive_field} does not match the model's receptive field "
                f"{rf}; leave it unset"
            )

    @property
    def prediction_info(self) -> dict[str, Any]:
        """What the prediction writer records beside the poses (JSON header)."""
        self.setup()
        assert self.video is not None
        return {
            "source": self.video.source,
            "layout": self.video.layout,
            "min_score": self.options["min_score"],
            "frames_without_person": self.video.frames_without_person.tolist(),
        }

    def predict_dataloader(self) -> DataLoader:
        self.setup()
        video = self.video
        assert video is not None
        arrays = {
            "pose2d": video.pose2d,
            "keypoints": video.keypoints,
            "score": video.score,
            "filled": video.filled,
            "frame": video.frames,
            "sequence": np.zeros(len(video), np.int64),  # one video = one sequence
        }
        if video.image_size is not None:
            arrays["image_size"] = video.image_size
        rf = self.receptive_field or 1
        if rf > 1:
            dataset: PoseDataset = WindowedPoseDataset(arrays, rf)
            print(f"temporal windows of {rf} frames over {len(video)} frames, edge-padded", flush=True)
        else:
            dataset = PoseDataset(arrays)
        return DataLoader(dataset, batch_size=self.batch_size, shuffle=False, collate_fn=collate_batch)
