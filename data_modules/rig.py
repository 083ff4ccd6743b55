"""Dataset splits from the renders of the virtual camera rig (:func:`poseshift.geometry.rig.render`)."""

from __future__ import annotations

import numpy as np

from data_modules.schema import PoseSet

__all__ = ["pose_set_from_renders"]


def pose_set_from_renders(
    parts: list[dict[str, np.ndarray]],
    name: str,
    action_names: tuple[str, ...],
    source: str,
    subject_from_take: bool = False,
    meta: dict | None = None,
) -> PoseSet:
    """Concatenate :func:`render` outputs into one :class:`PoseSet`.

    Parts carry ``action`` ids where the caller set them (otherwise 0); the subject id is 0,
    or the take index with ``subject_from_take`` (each take is a different placement).
    """
    cat = {k: np.concatenate([p[k] for p in parts]) for k in parts[0] if k != "num_dropped"}
    zeros = np.zeros(len(cat["pose2d"]), dtype=np.int64)
    return PoseSet(
        pose2d=cat["pose2d"],
        pose3d=cat["pose3d"],
        root3d=cat["root3d"],
        intrinsics=cat["intrinsics"],
        image_size=cat["image_size"],
        subject=cat["take"] if subject_from_take else zeros,
        action=cat.get("action", zeros),
        camera=cat["camera"],
        frame=cat["frame"],
        sequence=cat["sequence"],
        action_names=action_names,
        name=name,
        source=source,
        meta=meta or {},
    )
