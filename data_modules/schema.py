"""The one sample schema every poseshift DataModule emits and every method consumes.

A :class:`PoseSet` holds a whole split as aligned arrays; batches are dicts of tensors
with the same keys (leading batch dimension added):

=============  ===========  =============================================================
key            shape        meaning
=============  ===========  =============================================================
pose2d         (J, 2)       2D keypoints, screen-normalized (both axes divided by width)
pose3d         (J, 3)       3D joints in the camera frame, root-relative, metres
root3d         (3,)         absolute camera-frame position of the root joint, metres
intrinsics     (9,)         normalized [fx, fy, cx, cy, k1, k2, k3, p1, p2]
image_size     (2,)         image width and height in pixels
subject        ()           integer subject / sequence-owner id
action         ()           integer action id (index into ``PoseSet.action_names``)
camera         ()           integer camera id
frame          ()           frame index within its sequence
sequence       ()           integer id of the contiguous sequence the frame belongs to
=============  ===========  =============================================================

Unlabeled target sets carry no ``pose3d``/``root3d`` (see ``PoseSet.labeled``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from pathlib import Path

import numpy as np
import torch

FLOAT_KEYS = ("pose2d", "pose3d", "root3d", "intrinsics", "image_size")
INT_KEYS = ("subject", "action", "camera", "frame", "sequence")
LABEL_KEYS = ("pose3d", "root3d")


class DataFormatError(ValueError):
    """A dataset file or array is not what it should be; the message names file and field."""


def open_npz(path: str | Path, allow_pickle: bool = False) -> dict[str, np.ndarray]:
    """All arrays of an npz file, loaded; errors name the file."""
    path = Path(path)
    if path.is_dir():
        raise DataFormatError(f"{path}: is a folder; an .npz file is needed here")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found")
    with path.open("rb") as f:
        head = f.read(6)
    if head.startswith(b"\x93NUMPY"):
        raise DataFormatError(
            f"{path}: is a .npy file (one array without a name), but an .npz archive with named arrays "
            "is needed; write it with np.savez(path, <name>=array)"
        )
    if not head.startswith(b"PK"):
        kind = "empty" if not head else "a text file" if _is_text(path) else "not a zip archive"
        raise DataFormatError(f"{path}: is {kind}, not an .npz archive (np.savez writes one)")
    try:
        with np.load(path, allow_pickle=allow_pickle) as data:
            return {k: data[k] for k in data.files}
    except Exception as err:  # noqa: BLE001 - zip, pickle or header errors all mean "not this format"
        raise DataFormatError(f"{path}: not a readable npz file ({type(err).__name__}: {err})") from err


def _is_text(path: Path) -> bool:
    """True when the first KB of ``path`` decodes as UTF-8 without control bytes."""
    with path.open("rb") as f:
        chunk = f.read(1024)
    try:
        text = chunk.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return all(c.isprintable() or c in "\n\r\t" for c in text)


@dataclass
class PoseSet:
    """A split of 2D-3D pose pairs as aligned numpy arrays (first axis = sample).

    Args:
        pose2d: (N, J, 2) screen-normalized 2D.
        intrinsics: (N, 9) normalized intrinsics.
        image_size: (N, 2) width, height in pixels.
        subject: (N,) subject ids.
        action: (N,) action ids (index into ``action_names``).
        camera: (N,) camera ids.
        frame: (N,) frame index within the sequence.
        sequence: (N,) id of the contiguous sequence of each sample.
        pose3d: (N, J, 3) root-relative camera-frame metres; ``None`` for unlabeled sets.
        root3d: (N, 3) absolute root positions; ``None`` for unlabeled sets.
        action_names: names of the action ids.
        name: the split's name (test sets: the name in metric keys).
        source: file or folder it came from, for error messages.
        meta: facts about the split (evaluation joints, missing joints, oracle, ...).
    """

    pose2d: np.ndarray
    intrinsics: np.ndarray
    image_size: np.ndarray
    subject: np.ndarray
    action: np.ndarray
    camera: np.ndarray
    frame: np.ndarray
    sequence: np.ndarray
    pose3d: np.ndarray | None = None
    root3d: np.ndarray | None = None
    action_names: tuple[str, ...] = ()
    name: str = "poses"
    source: str = "<memory>"  # file or folder it came from, for error messages
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        for key in FLOAT_KEYS:
            value = getattr(self, key)
            if value is not None:
                setattr(self, key, np.ascontiguousarray(value, dtype=np.float32))
        for key in INT_KEYS:
            setattr(self, key, np.ascontiguousarray(getattr(self, key), dtype=np.int64))
        self.validate()

    # -- checks -----------------------------------------------------------------------------
    def _fail(self, key: str, problem: str) -> None:
        raise DataFormatError(f"{self.source}: {self.name}.{key}: {problem}")

    def validate(self) -> None:
        """Check shapes, dtypes and finiteness; raise :class:`DataFormatError` naming the field."""
        n = len(self.pose2d)
        if self.pose2d.ndim != 3 or self.pose2d.shape[-1] != 2:
            self._fail("pose2d", f"expected shape (N, J, 2), got {self.pose2d.shape}")
        j = self.pose2d.shape[1]
        expected = {
            "pose3d": (n, j, 3),
            "root3d": (n, 3),
            "intrinsics": (n, 9),
            "image_size": (n, 2),
        }
        for key, shape in expected.items():
            value = getattr(self, key)
            if value is None:
                continue
            if value.shape != shape:
                self._fail(key, f"expected shape {shape}, got {value.shape}")
        for key in INT_KEYS:
            if getattr(self, key).shape != (n,):
                self._fail(key, f"expected shape ({n},), got {getattr(self, key).shape}")
        for key in FLOAT_KEYS:
            value = getattr(self, key)
            if value is not None and not np.isfinite(value).all():
                bad = int((~np.isfinite(value.reshape(n, -1))).any(1).sum()) if n else 0
                self._fail(key, f"{bad} of {n} samples contain NaN or inf")
        if (self.pose3d is None) != (self.root3d is None):
            self._fail("pose3d", "pose3d and root3d must both be present or both absent")
        if self.action_names and n and int(self.action.max()) >= len(self.action_names):
            self._fail(
                "action", f"id {int(self.action.max())} but only {len(self.action_names)} action names"
            )

    # -- access -----------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.pose2d)

    @property
    def num_joints(self) -> int:
        return self.pose2d.shape[1]

    @property
    def labeled(self) -> bool:
        return self.pose3d is not None

    def arrays(self) -> dict[str, np.ndarray]:
        """The per-sample arrays by schema key (labels omitted when absent)."""
        keys = FLOAT_KEYS + INT_KEYS
        return {k: getattr(self, k) for k in keys if getattr(self, k) is not None}

    def subset(self, index: np.ndarray, name: str | None = None) -> PoseSet:
        """A new set with the samples at ``index`` (bool mask or integer indices)."""
        picked = {k: v[index] for k, v in self.arrays().items()}
        return replace(self, **picked, name=name or self.name)

    def unlabeled(self, name: str | None = None) -> PoseSet:
        """The same samples without 3D labels, as adaptation methods see a target domain."""
        return replace(self, pose3d=None, root3d=None, name=name or self.name)

    @staticmethod
    def concat(sets: list[PoseSet], name: str) -> PoseSet:
        """Concatenate sets that share joint layout and action vocabulary."""
        if not sets:
            raise ValueError("concat needs at least one PoseSet")
        first = sets[0]
        for s in sets[1:]:
            if s.action_names != first.action_names or s.num_joints != first.num_joints:
                raise ValueError(f"cannot concatenate {s.name} with {first.name}: different layouts")
            if s.labeled != first.labeled:
                raise ValueError(f"cannot concatenate labeled and unlabeled sets ({s.name}, {first.name})")
        merged = {k: np.concatenate([getattr(s, k) for s in sets]) for k in first.arrays()}
        return replace(first, **merged, name=name)

    # -- files ------------------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        """Write as an uncompressed npz (fast to load, memory-mappable arrays)."""
        extra = {"action_names": np.array(self.action_names, dtype=str), "name": np.array(self.name)}
        np.savez(path, **self.arrays(), **extra)

    @classmethod
    def load(cls, path: str | Path) -> PoseSet:
        """Read a file written by :meth:`save`, with errors naming the file and key."""
        path = Path(path)
        data = open_npz(path)
        names = {f.name for f in fields(cls)}
        missing = [k for k in ("pose2d", "intrinsics", "image_size", *INT_KEYS) if k not in data]
        if missing:
            raise DataFormatError(f"{path}: missing keys {missing}; present: {sorted(data)}")
        kwargs = {k: v for k, v in data.items() if k in names and k not in ("action_names", "name")}
        return cls(
            **kwargs,
            action_names=tuple(str(a) for a in data["action_names"]) if "action_names" in data else (),
            name=str(data["name"]) if "name" in data else path.stem,
            source=str(path),
        )


class PoseDataset(torch.utils.data.Dataset):
    """Map-style dataset over a :class:`PoseSet` (or aligned arrays) fetching whole batches at once.

    ``__getitems__`` lets the DataLoader gather a batch with one fancy-index per array
    instead of building a dict per sample; :func:`collate_batch` then passes it through.
    """

    def __init__(self, poses: PoseSet | dict[str, np.ndarray]) -> None:
        arrays = poses.arrays() if isinstance(poses, PoseSet) else poses
        self._tensors = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in arrays.items()}
        self._length = len(next(iter(self._tensors.values())))

    def __len__(self) -> int:
        return self._length

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {k: v[index] for k, v in self._tensors.items()}

    def __getitems__(self, indices: list[int]) -> dict[str, torch.Tensor]:
        idx = torch.as_tensor(indices, dtype=torch.long)
        return {k: v[idx] for k, v in self._tensors.items()}


def collate_batch(batch: dict[str, torch.Tensor] | list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Collate for :class:`PoseDataset`: batches from ``__getitems__`` are already stacked."""
    if isinstance(batch, dict):
        return batch
    return torch.utils.data.default_collate(batch)
