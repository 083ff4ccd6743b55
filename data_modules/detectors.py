"""Readers for the files 2D pose detectors write: every person of every frame, as arrays.

One file (or OpenPose folder) is one video. Supported:

* **npz / npy arrays**: ``keypoints`` in pixels, (N, K, 2) or with scores (N, K, 3), or with
  several people per frame (N, P, K, 2|3) (person slots padded with zeros); or ``pose2d``
  (N, K, 2), already screen-normalized (``PoseSet.save`` writes it). Optional npz keys:
  ``scores`` ((N, K) or (N, P, K)), ``frame`` ((N,) frame numbers), ``image_size`` ((2,) or
  (N, 2), width and height in pixels). A ``.npy`` file holds the ``keypoints`` array alone.
* **COCO-style JSON**: a results list ``[{"image_id" | "frame_id" | "frame": ..., "keypoints":
  [x, y, score] * K, "track_id": ...}, ...]`` (MMPose, Detectron2, YOLO-pose exports); a COCO
  dataset dict (``images`` with width/height and ``annotations`` whose third value is a
  visibility flag); MMPose's ``--save-predictions`` dict (``instance_info`` per frame, with
  ``keypoints`` [[x, y], ...] and ``keypoint_scores``).
* **OpenPose JSON**: a folder of per-frame ``*_keypoints.json`` files (``people[].pose_keypoints_2d``
  triplets; the frame number is the last number in the file name), or one such file.

A keypoint at exactly (0, 0) counts as not detected (score 0): OpenPose and COCO write missing
joints that way. Readers check only the container; :mod:`data_modules.keypoints` checks values.
"""

from __future__ import annotations

import json
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from data_modules.schema import DataFormatError, open_npz

_LAST_NUMBER = re.compile(r"(\d+)(?!.*\d)")


class KeypointWarning(UserWarning):
    """Input that is probably meant but loses information (e.g. integer pixel coordinates)."""


@dataclass
class Detections:
    """Everyone a detector found in one video, before a person is chosen per frame.

    Attributes:
        source: the file or folder read.
        kind: what it was read as (stated in the log).
        key: the field the keypoints came from, for messages.
        frames: (F,) frame numbers, strictly increasing.
        xy: (F, P, K, 2) keypoints, pixels (or screen-normalized when ``normalized``).
        score: (F, P, K) confidences; 1 where the file has none, 0 for (0, 0) keypoints.
        present: (F, P) whether a person fills the slot.
        track: (F, P) track ids, -1 where the file gives none.
        image_size: (F, 2) width and height in pixels, or None when the file has none.
        normalized: ``xy`` is already screen-normalized (``pose2d``).
        has_scores: the file gave confidences.
        frame_files: per-frame file names (OpenPose folders), for messages.
    """

    source: str
    kind: str
    key: str
    frames: np.ndarray
    xy: np.ndarray
    score: np.ndarray
    present: np.ndarray
    track: np.ndarray
    image_size: np.ndarray | None = None
    normalized: bool = False
    has_scores: bool = True
    frame_files: list[str] | None = None

    @property
    def num_joints(self) -> int:
        return self.xy.shape[2]

    def where(self, i: int) -> str:
        """'<file>: frame <n>' for the frame at position ``i`` (its own file for OpenPose folders)."""
        if self.frame_files is not None:
            return f"{self.frame_files[i]}: frame {int(self.frames[i])}"
        return f"{self.source}: frame {int(self.frames[i])}"


def read_detections(path: str | Path) -> Detections:
    """Read any supported file or OpenPose folder (see the module docstring)."""
    path = Path(path)
    if path.is_dir():
        return _read_openpose_dir(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file or folder not found")
    if path.stat().st_size == 0:
        raise DataFormatError(f"{path}: the file is empty")
    suffix = path.suffix.lower()
    if suffix == ".npz":
        return _read_npz(path)
    if suffix == ".npy":
        return _read_npy(path)
    if suffix == ".json":
        return _read_json_file(path)
    raise DataFormatError(
        f"{path}: unknown file type {suffix or '(none)'}; use .npz, .npy, .json or an OpenPose folder"
    )


# -- arrays -------------------------------------------------------------------------------------
def _numeric(path: Path, key: str, value: np.ndarray, pixels: bool) -> np.ndarray:
    """Float64 copy of a coordinate array, refusing strings/objects/bools, warning on integers."""
    kind = value.dtype.kind
    if kind == "f":
        return value.astype(np.float64)
    if kind in "iu":
        if not pixels:
            raise DataFormatError(
                f"{path}: {key} holds integers ({value.dtype}); screen-normalized coordinates are "
                "fractions in [-1, 1]. Pixel coordinates belong in 'keypoints' (with 'image_size')"
            )
        warnings.warn(
            f"{path}: {key} holds integers ({value.dtype}); read as whole pixels (sub-pixel "
            "precision is lost; save float coordinates if the detector has them)",
            KeypointWarning,
            stacklevel=3,
        )
        return value.astype(np.float64)
    raise DataFormatError(f"{path}: {key} must hold numbers, got dtype {value.dtype}")


def _split_scores(path: Path, key: str, kp: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """(..., K, 2|3) -> coordinates and the third channel as scores (None for 2 channels)."""
    if kp.ndim not in (3, 4) or kp.shape[-1] not in (2, 3):
        raise DataFormatError(
            f"{path}: {key} must have shape (frames, joints, 2 or 3) or (frames, people, joints, 2 or 3), "
            f"got {kp.shape}"
        )
    if kp.shape[0] == 0:
        raise DataFormatError(f"{path}: {key} holds 0 frames; there is nothing to lift")
    if kp.shape[-1] == 3:
        return kp[..., :2], kp[..., 2]
    return kp, None


def _from_array(
    path: Path, key: str, kp: np.ndarray, scores: np.ndarray | None, normalized: bool, kind: str
) -> Detections:
    xy, channel = _split_scores(path, key, kp)
    if scores is not None and channel is not None:
        raise DataFormatError(f"{path}: scores given twice, as {key}[..., 2] and as 'scores'; keep one")
    given = channel if channel is not None else scores
    if xy.ndim == 3:  # one person per frame
        xy = xy[:, None]
        given = None if given is None else given[:, None]
    if given is not None:
        if given.dtype.kind not in "iuf":
            raise DataFormatError(f"{path}: scores must be numbers, got dtype {given.dtype}")
        if given.shape != xy.shape[:-1]:
            raise DataFormatError(f"{path}: scores must have shape {xy.shape[:-1]}, got {given.shape}")
    n, p = xy.shape[:2]
    detected = (xy != 0).any(-1)
    score = np.where(detected, 1.0 if given is None else given.astype(np.float64), 0.0)
    if p == 1:
        # a single-person array has a person in every frame: an all-zero one is bad input, not absence
        present, track = np.ones((n, 1), bool), -np.ones((n, 1), np.int64)
    else:
        # several people: all-zero slots are padding; the slot index is the track id
        present, track = detected.any(-1), np.broadcast_to(np.arange(p), (n, p)).astype(np.int64)
    return Detections(
        source=str(path),
        kind=kind,
        key=key,
        frames=np.arange(n, dtype=np.int64),
        xy=xy,
        score=score,
        present=present,
        track=track,
        normalized=normalized,
        has_scores=given is not None,
    )


def _read_npz(path: Path) -> Detections:
    data = open_npz(path)
    key = "pose2d" if "pose2d" in data else "keypoints" if "keypoints" in data else None
    if key is None:
        raise DataFormatError(f"{path}: needs a 'keypoints' (pixels) or 'pose2d' array; found {sorted(data)}")
    kp = _numeric(path, key, np.asarray(data[key]), pixels=key == "keypoints")
    scores = next((np.asarray(data[k]) for k in ("scores", "score") if k in data), None)
    det = _from_array(path, key, kp, scores, key == "pose2d", f"npz array '{key}'")
    if "frame" in data:
        frames = np.asarray(data["frame"])
        if frames.dtype.kind not in "iu" or frames.shape != det.frames.shape:
            raise DataFormatError(
                f"{path}: frame must be {len(det.frames)} integers, got {frames.dtype} {frames.shape}"
            )
        if (np.diff(frames) <= 0).any():
            i = int(np.flatnonzero(np.diff(frames) <= 0)[0]) + 1
            raise DataFormatError(
                f"{path}: frame numbers must increase; entry {i} is {int(frames[i])} "
                f"after {int(frames[i - 1])}"
            )
        det.frames = frames.astype(np.int64)
    if "image_size" in data:
        size = np.asarray(data["image_size"])
        if size.dtype.kind not in "iuf" or size.shape not in ((2,), (len(det.frames), 2)):
            raise DataFormatError(
                f"{path}: image_size must be (2,) or ({len(det.frames)}, 2) numbers (width, height), "
                f"got {size.dtype} {size.shape}"
            )
        det.image_size = np.broadcast_to(size.astype(np.float64), (len(det.frames), 2)).copy()
    return det


def _read_npy(path: Path) -> Detections:
    try:
        kp = np.load(path, allow_pickle=False)
    except Exception as err:  # noqa: BLE001 - any failure means "not a readable npy file"
        raise DataFormatError(f"{path}: not a readable npy file ({type(err).__name__}: {err})") from err
    if not isinstance(kp, np.ndarray):
        raise DataFormatError(f"{path}: holds several arrays; a .npy file holds the keypoints array alone")
    kp = _numeric(path, "keypoints", kp, pixels=True)
    return _from_array(path, "keypoints", kp, None, False, "npy array")


# -- JSON ---------------------------------------------------------------------------------------
def _load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except UnicodeDecodeError as err:
        raise DataFormatError(f"{path}: not a text (JSON) file ({err})") from err
    except json.JSONDecodeError as err:
        where = f"line {err.lineno}, column {err.colno}"
        raise DataFormatError(f"{path}: not valid JSON ({where}: {err.msg})") from err


def _person(path: str, where: str, record: Any, visibility: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(K, 2) keypoints and (K,) scores of one person record, in any of the accepted spellings."""
    if not isinstance(record, dict) or "keypoints" not in record:
        raise DataFormatError(f"{path}: {where}: expected an object with 'keypoints', got {str(record)[:80]}")
    try:
        kp = np.asarray(record["keypoints"], dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise DataFormatError(f"{path}: {where}: keypoints must be numbers ({err})") from err
    if kp.ndim == 1:  # flat [x, y, s] * K
        if len(kp) == 0 or len(kp) % 3:
            raise DataFormatError(
                f"{path}: {where}: flat keypoints need 3 numbers (x, y, score) per joint, got {len(kp)}"
            )
        kp = kp.reshape(-1, 3)
    if kp.ndim != 2 or kp.shape[1] not in (2, 3):
        raise DataFormatError(
            f"{path}: {where}: keypoints must be [[x, y(, score)], ...], got shape {kp.shape}"
        )
    if "keypoint_scores" in record:
        score = np.asarray(record["keypoint_scores"], dtype=np.float64).reshape(-1)
        if len(score) != len(kp):
            raise DataFormatError(f"{path}: {where}: {len(score)} keypoint_scores for {len(kp)} keypoints")
    elif kp.shape[1] == 3:
        score = kp[:, 2]
    else:
        score = np.ones(len(kp))
    if visibility:  # COCO dataset annotations: 0 = not labelled, 1/2 = labelled
        score = (score > 0).astype(np.float64)
    return kp[:, :2], score


def _frame_number(path: str, value: Any) -> int:
    if isinstance(value, bool) or value is None:
        raise DataFormatError(f"{path}: frame id {value!r} is not a number")
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    match = _LAST_NUMBER.search(str(value))
    if match is None:
        raise DataFormatError(f"{path}: frame id {value!r} holds no frame number")
    return int(match.group(1))


def _assemble(
    path: str,
    kind: str,
    key: str,
    frame_ids: list[int],
    people: list[tuple[int, np.ndarray, np.ndarray, int]],
    sizes: dict[int, tuple[float, float]] | None = None,
    frame_files: dict[int, str] | None = None,
) -> Detections:
    """Dense (F, P, K) arrays from per-person records (frame, xy, score, track)."""
    frames = np.array(sorted(set(frame_ids)), dtype=np.int64)
    if len(frames) == 0:
        raise DataFormatError(f"{path}: holds no frames; there is nothing to lift")
    counts = {len(xy) for _, xy, _, _ in people}
    if len(counts) > 1:
        raise DataFormatError(
            f"{path}: people have different joint counts {sorted(counts)}; one layout per file"
        )
    k = counts.pop() if counts else 0
    fi = np.searchsorted(frames, [f for f, _, _, _ in people]).astype(np.int64)
    order = np.argsort(fi, kind="stable")
    first = np.searchsorted(fi[order], fi[order])  # first record of each frame in sorted order
    slot = np.empty(len(people), np.int64)
    slot[order] = np.arange(len(people)) - first
    p = int(slot.max()) + 1 if len(people) else 1
    xy = np.zeros((len(frames), p, max(k, 1), 2))
    score = np.zeros((len(frames), p, max(k, 1)))
    present = np.zeros((len(frames), p), bool)
    track = -np.ones((len(frames), p), np.int64)
    if people:
        xy[fi, slot] = np.stack([r[1] for r in people])
        score[fi, slot] = np.stack([r[2] for r in people])
        present[fi, slot] = True
        track[fi, slot] = [r[3] for r in people]
    score = np.where((xy != 0).any(-1), score, 0.0)
    size = None
    if sizes:
        size = np.array([sizes.get(int(f), (np.nan, np.nan)) for f in frames], dtype=np.float64)
    files = [frame_files[int(f)] for f in frames] if frame_files else None
    return Detections(path, kind, key, frames, xy, score, present, track, size, frame_files=files)


def _track(record: dict) -> int:
    value = record.get("track_id", record.get("idx", -1))
    if isinstance(value, list):  # OpenPose writes person_id as [-1]
        value = value[0] if value else -1
    try:
        return int(value)
    except (TypeError, ValueError):
        return -1


def _read_json_file(path: Path) -> Detections:
    data = _load_json(path)
    src = str(path)
    if isinstance(data, dict) and "people" in data:
        return _openpose_frames(src, [(path, data)], "OpenPose JSON (one frame)")
    if isinstance(data, dict) and "annotations" in data:
        return _coco_dataset(src, data)
    if isinstance(data, dict) and "instance_info" in data:
        frames, people = [], []
        for i, entry in enumerate(data["instance_info"]):
            if not isinstance(entry, dict) or "instances" not in entry:
                raise DataFormatError(f"{path}: instance_info[{i}] needs 'frame_id' and 'instances'")
            f = _frame_number(src, entry.get("frame_id", i))
            frames.append(f)
            for j, inst in enumerate(entry["instances"]):
                xy, score = _person(src, f"frame {f}, instance {j}", inst)
                people.append((f, xy, score, _track(inst)))
        return _assemble(src, "MMPose predictions JSON", "instances[].keypoints", frames, people)
    if isinstance(data, list):
        if not data:
            raise DataFormatError(f"{path}: the results list is empty; there is nothing to lift")
        frames, people = [], []
        for i, rec in enumerate(data):
            if not isinstance(rec, dict):
                raise DataFormatError(f"{path}: entry {i} is not an object: {str(rec)[:80]}")
            fid = next((rec[k] for k in ("image_id", "frame_id", "frame") if k in rec), None)
            if fid is None:
                raise DataFormatError(f"{path}: entry {i} has no 'image_id' (or 'frame_id'/'frame')")
            f = _frame_number(src, fid)
            xy, score = _person(src, f"entry {i} (frame {f})", rec)
            frames.append(f)
            people.append((f, xy, score, _track(rec)))
        return _assemble(src, "COCO results JSON", "keypoints", frames, people)
    raise DataFormatError(
        f"{path}: unrecognized JSON: expected a COCO results list, a COCO dict with 'annotations', "
        "MMPose predictions ('instance_info') or an OpenPose frame ('people')"
    )


def _coco_dataset(src: str, data: dict) -> Detections:
    images = data.get("images") or []
    frame_of: dict[Any, int] = {}
    sizes: dict[int, tuple[float, float]] = {}
    for img in images:
        f = _frame_number(src, img.get("file_name", img.get("id")))
        frame_of[img.get("id")] = f
        if "width" in img and "height" in img:
            sizes[f] = (float(img["width"]), float(img["height"]))
    frames, people = list(frame_of.values()), []
    for i, ann in enumerate(data["annotations"]):
        image_id = ann.get("image_id") if isinstance(ann, dict) else None
        f = frame_of[image_id] if image_id in frame_of else _frame_number(src, image_id)
        xy, score = _person(src, f"annotation {i} (frame {f})", ann, visibility=True)
        frames.append(f)
        people.append((f, xy, score, _track(ann)))
    return _assemble(src, "COCO annotations JSON", "annotations[].keypoints", frames, people, sizes)


def _openpose_frames(src: str, files: list[tuple[Path, dict]], kind: str) -> Detections:
    numbers = [_LAST_NUMBER.search(p.stem) for p, _ in files]
    found = [int(m.group(1)) for m in numbers if m is not None]
    if not found:  # no numbers in the names: the sorted order is the frame order
        frame_ids = list(range(len(files)))
    elif len(found) < len(files):
        unnumbered = next(p for (p, _), m in zip(files, numbers, strict=True) if m is None)
        raise DataFormatError(f"{unnumbered}: no frame number in the file name, unlike the others in {src}")
    else:
        frame_ids = found
        if len(set(found)) != len(found):
            first = {}
            for (p, _), f in zip(files, found, strict=True):
                if f in first:
                    raise DataFormatError(
                        f"{p}: frame {f} again (also {first[f].name}); keep one video per folder"
                    )
                first[f] = p
    people = []
    for (p, data), f in zip(files, frame_ids, strict=True):
        if not isinstance(data, dict) or not isinstance(data.get("people"), list):
            raise DataFormatError(f"{p}: not an OpenPose frame: needs a 'people' list")
        for j, person in enumerate(data["people"]):
            if not isinstance(person, dict) or "pose_keypoints_2d" not in person:
                raise DataFormatError(f"{p}: people[{j}] has no pose_keypoints_2d")
            record = {"keypoints": person["pose_keypoints_2d"]}
            xy, score = _person(str(p), f"people[{j}]", record)
            people.append((f, xy, score, _track({"track_id": person.get("person_id", -1)})))
    names = {f: str(p) for (p, _), f in zip(files, frame_ids, strict=True)}
    return _assemble(src, kind, "people[].pose_keypoints_2d", frame_ids, people, frame_files=names)


def _read_openpose_dir(path: Path) -> Detections:
    files = sorted(path.glob("*_keypoints.json")) or sorted(path.glob("*.json"))
    if not files:
        raise DataFormatError(f"{path}: folder has no OpenPose *_keypoints.json files")
    loaded = []
    for f in files:
        if f.stat().st_size == 0:
            raise DataFormatError(f"{f}: the file is empty")
        loaded.append((f, _load_json(f)))
    return _openpose_frames(str(path), loaded, f"OpenPose JSON folder ({len(files)} files)")
