"""Per-pose body measures: scale normalization, total bone length and facing orientation.

* :func:`mean_root_distance` / :func:`normalize_scale`: Deng et al.'s preprocessing (root-centre,
  then divide by the mean distance of the joints to the root), for 2D and 3D poses alike.
* :func:`total_bone_length`: the sum of a pose's bone lengths, which (unlike the mean
  root distance) does not change when the body bends; used to give scale-free poses metres.
* :func:`facing_sine`: the sine of Deng et al.'s angle between the face direction (nose - neck)
  and the shoulder line (left - right) in the ground plane, whose sign tells a pose from its
  depth-mirrored twin (Kudo et al.'s orientation constraint).

Everything is batched over leading dimensions and differentiable.
"""

from __future__ import annotations

import torch

from poseshift.geometry.skeleton import H36M17, Skeleton

_EPS = 1e-8


def mean_root_distance(pose: torch.Tensor, root: int = 0, eps: float = _EPS) -> torch.Tensor:
    """(..., J, D) poses -> (...,) mean Euclidean distance of the joints to the root joint.

    The root's own zero distance is part of the mean (the paper's "average of the distances
    from all joints to the root"); the result is clamped at ``eps`` so dividing by it is safe.
    """
    centred = pose - pose[..., root : root + 1, :]
    return torch.linalg.vector_norm(centred, dim=-1).mean(-1).clamp_min(eps)


def normalize_scale(pose: torch.Tensor, root: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Root-centre (..., J, D) poses and divide by their mean root distance.

    Returns the normalized poses (mean root distance 1) and the scales (...,) that undo it:
    ``normalized * scale[..., None, None]`` is the root-centred input.
    """
    scale = mean_root_distance(pose, root)
    return (pose - pose[..., root : root + 1, :]) / scale[..., None, None], scale


def total_bone_length(pose: torch.Tensor, incidence: torch.Tensor) -> torch.Tensor:
    """(..., J, D) poses -> (...,) sum of bone lengths, with the (J, B) ``Skeleton.incidence()``.

    The incidence matrix is passed in (a module buffer) so that a training or evaluation step
    on an accelerator builds nothing on the host.
    """
    bones = incidence.mT.to(pose.dtype) @ pose  # (..., B, D): child minus parent
    return torch.linalg.vector_norm(bones, dim=-1).sum(-1)


def facing_sine(pose: torch.Tensor, skeleton: Skeleton = H36M17, eps: float = _EPS) -> torch.Tensor:
    """(..., J, 3) camera-frame poses -> (...,) ``sin(beta)`` of Deng et al.'s eq. (11).

    ``v = nose - neck`` and ``w = l_shoulder - r_shoulder``; on H36M-17 the nose is ``neck_nose``
    and the neck is ``thorax``. The paper writes ``sin(beta) = (v_z w_x - v_x w_z) / (|v||w|)``
    in a frame with y up and z towards the camera, where a correctly oriented body has
    ``sin(beta) >= 0``. poseshift's camera frame (x right, y down, z forward) is that frame turned
    by 180 degrees about x (y and z negated), so the same quantity reads
    ``(v_x w_z - v_z w_x) / (|v||w|)`` here, and it is positive for a body whose face points
    to its front (any turn about the vertical axis keeps it; a depth- or left/right-mirrored
    body makes it negative).
    """
    nose, neck = skeleton.index("neck_nose"), skeleton.index("thorax")
    left, right = skeleton.index("l_shoulder"), skeleton.index("r_shoulder")
    v = pose[..., nose, :] - pose[..., neck, :]
    w = pose[..., left, :] - pose[..., right, :]
    cross = v[..., 0] * w[..., 2] - v[..., 2] * w[..., 0]
    norms = torch.linalg.vector_norm(v, dim=-1) * torch.linalg.vector_norm(w, dim=-1)
    return cross / norms.clamp_min(eps)


__all__ = ["facing_sine", "mean_root_distance", "normalize_scale", "total_bone_length"]
