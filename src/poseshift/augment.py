"""Differentiable 2D-3D pose augmentation operations, shared by PoseAug, AdaptPose and PoseDA.

Every function is a pure, batched tensor op (leading dims ``...``), differentiable in its
pose and in its augmentation parameters, and built on :mod:`poseshift.geometry`:

* :func:`bone_angle_perturb` (BA) adds a residual to the unit bone directions and renormalizes,
  keeping bone lengths and the root; chosen bones can be held at their original direction.
* :func:`bone_length_scale` (BL) multiplies bone lengths, keeping directions and the root;
  :func:`expand_shared` maps a few shared ratios (left = right) to every bone.
* :func:`rigid_transform` (RT) rotates the root-relative pose by an axis-angle vector and
  places its root at a new absolute position; :func:`rigid_transform_matrix` takes a rotation
  matrix and, for windows, the point to rotate about (so a motion can keep its trajectory).
* Motion (AdaptPose, windows (..., T, J, 3)): :func:`bone_rotation_ramp` (BG3) turns each bone
  about its own axis by an angle growing linearly over the window, :func:`bone_direction_ramp`
  (BG2) moves one frame's bone directions linearly towards a target, :func:`ramp_fractions`
  gives the per-frame fractions; BG1 is :func:`bone_angle_perturb` with one residual per window.
* :func:`perturb_bone_directions` turns every bone by a small random rotation (AdaptPose's
  perturbation of the 3D discriminator's real poses).
* :func:`swap_bone_lengths` gives every pose the bone lengths of a random template.
* :func:`reproject` / :func:`in_frame` / :func:`in_view` re-project augmented camera-frame 3D
  with each sample's own intrinsics (distortion included) and flag projections that leave the
  frame, or poses whose 2D is not their 3D's projection (clamped or behind the camera).
* :func:`global_position_alignment` (PoseDA's GPA) places root-relative poses in a target
  camera so that their projection covers a paired target 2D pose's box and root
  (:func:`gpa_root` is the closed form, :func:`box_size` the box measure it matches).
* :func:`random_vertical_rotation` and :func:`random_bone_scale` are the non-learned
  rotation / bone-length augmentations PoseDA compares against (its Table 6);
  :func:`box_normalize` is the crop normalization of 2D inputs it compares GPA with (Table 5).

Poses are camera-frame (..., J, 3) in metres; "absolute" means joint 0 holds the root position.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from poseshift.geometry.bones import (
    bone_lengths,
    bones_to_joints,
    compose_bones,
    joints_to_bones,
    set_bone_lengths,
)
from poseshift.geometry.camera import project
from poseshift.geometry.rotations import axis_angle_to_matrix, random_unit_vectors, rotate_about_axis
from poseshift.geometry.skeleton import H36M17, Skeleton

_EPS = 1e-8

# -- bone groups -------------------------------------------------------------------------------
# PoseAug's BL head predicts 9 ratios for its 15 bones, one per left/right pair (METHODS.md 2.2).
# Our H36M-17 skeleton has 16 bones: PoseAug's single thorax->head bone is split into
# thorax->neck_nose (bone 8) and neck_nose->head_top (bone 9). Both get the reference's
# "thorax->head" ratio (group 5), so the head keeps its shape and the thorax-to-head-top
# distance scales by that ratio exactly as the reference's one bone does.
BL_GROUPS_H36M17: tuple[tuple[int, ...], ...] = (
    (0, 3),  # 0: pelvis->hips
    (1, 4),  # 1: thighs
    (2, 5),  # 2: shins
    (6,),  # 3: pelvis->spine
    (7,),  # 4: spine->thorax (held at 0 by PoseAug: size/distance ambiguity)
    (8, 9),  # 5: thorax->neck_nose->head_top (the reference's thorax->head)
    (10, 13),  # 6: thorax->shoulders
    (11, 14),  # 7: upper arms
    (12, 15),  # 8: forearms
)
# BA holds pelvis->spine and spine->thorax so that BA cannot rotate the whole body (that is RT's job)
BA_FROZEN_BONES_H36M17: tuple[int, ...] = (6, 7)


def group_matrix(
    groups: Sequence[Sequence[int]],
    num_bones: int = H36M17.num_bones,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """(G, B) 0/1 matrix: entry [g, b] = 1 iff bone b belongs to group g (each bone in <= 1 group)."""
    m = torch.zeros(len(groups), num_bones, dtype=dtype, device=device)
    for g, bones in enumerate(groups):
        m[g, list(bones)] = 1.0
    if (m.sum(0) > 1).any():
        raise ValueError(f"a bone appears in more than one group: {groups}")
    return m


def expand_shared(params: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
    """Per-group values (..., G) to per-bone values (..., B) with a (G, B) :func:`group_matrix`.

    Bones in no group get 0, so this maps shared BL *residuals* (not ratios) to bones.
    """
    return params @ groups


# -- BA ------------------------------------------------------------------------------------------
def _unit_bones(pose: torch.Tensor, skeleton: Skeleton, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Bone lengths (..., B) and unit directions (..., B, 3) of (..., J, 3) poses."""
    bones = joints_to_bones(pose, skeleton)
    length = torch.linalg.vector_norm(bones, dim=-1)
    return length, bones / length.unsqueeze(-1).clamp_min(eps)


def _turned(
    pose: torch.Tensor,
    unit: torch.Tensor,
    moved: torch.Tensor,
    length: torch.Tensor,
    frozen_bones: Sequence[int],
    skeleton: Skeleton,
) -> tuple[torch.Tensor, torch.Tensor]:
    """What every bone-direction augmentation ends with: frozen bones keep ``unit``; the poses
    rebuilt from ``moved`` at ``length`` on ``pose``'s roots, and ``1 - cos`` of each bone's turn."""
    if frozen_bones:
        moved = torch.where(_frozen_mask(frozen_bones, skeleton, pose.device), unit, moved)
    ba_diff = 1.0 - (moved * unit).sum(-1)
    return bones_to_joints(compose_bones(moved, length), skeleton, root=pose[..., :1, :]), ba_diff


def bone_angle_perturb(
    pose: torch.Tensor,
    delta: torch.Tensor,
    frozen_bones: Sequence[int] = BA_FROZEN_BONES_H36M17,
    skeleton: Skeleton = H36M17,
    eps: float = _EPS,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Bone-angle (BA) augmentation: ``u' = normalize(u + delta)`` per bone, lengths and root kept.

    Args:
        pose: (..., J, 3) poses (absolute or root-relative; the root joint is kept as is).
        delta: (..., B, 3) residuals added to the unit bone directions.
        frozen_bones: bones reset to their original direction (default pelvis->spine and
            spine->thorax, as the reference).
        skeleton: kinematic tree.

    Returns:
        The augmented poses (..., J, 3) and ``1 - cos`` of each bone's change (..., B), the
        quantity PoseAug's range regularizer bounds (zero up to rounding for frozen bones).
    """
    length, unit = _unit_bones(pose, skeleton, eps)
    moved = unit + delta
    moved = moved / torch.linalg.vector_norm(moved, dim=-1, keepdim=True).clamp_min(eps)
    return _turned(pose, unit, moved, length, frozen_bones, skeleton)


def _frozen_mask(frozen_bones: Sequence[int], skeleton: Skeleton, device: torch.device) -> torch.Tensor:
    keep = torch.zeros(skeleton.num_bones, 1, dtype=torch.bool, device=device)
    keep[list(frozen_bones)] = True
    return keep


# -- motion (windows) ------------------------------------------------------------------------------
def ramp_fractions(
    frames: int, dtype: torch.dtype = torch.float32, device: torch.device | None = None
) -> torch.Tensor:
    """(T,) fraction of a motion's full change reached at each frame: ``t / T`` for t = 0..T-1.

    That is AdaptPose's code (frame 0 unchanged, the last frame at (T-1)/T). A single frame
    (T = 1) takes the whole change: the code's formula gives 0 there, i.e. no bone change at
    all in its single-frame setting, which would make the generator's BA a no-op.
    """
    if frames == 1:
        return torch.ones(1, dtype=dtype, device=device)
    return torch.arange(frames, dtype=dtype, device=device) / frames


def bone_rotation_ramp(
    pose: torch.Tensor,
    axis: torch.Tensor,
    angle: torch.Tensor,
    fractions: torch.Tensor | None = None,
    frozen_bones: Sequence[int] = BA_FROZEN_BONES_H36M17,
    skeleton: Skeleton = H36M17,
    eps: float = _EPS,
) -> tuple[torch.Tensor, torch.Tensor]:
    """AdaptPose's BG3: in frame t every bone's own unit vector turns about ``axis`` by
    ``angle * fractions[t]``; bone lengths and every frame's root are kept.

    Args:
        pose: (..., T, J, 3) windows (absolute or root-relative; each frame's root is kept).
        axis: (..., B, 3) rotation axis per bone (normalized here).
        angle: (..., B) full rotation angle per bone, radians (unbounded, as the code).
        fractions: (T,) fraction of the angle per frame; ``None`` = :func:`ramp_fractions`.
        frozen_bones: bones that keep their source direction (the code: pelvis->spine->thorax).
        skeleton: kinematic tree.

    Returns:
        The windows (..., T, J, 3) and ``1 - cos`` of each bone's change per frame (..., T, B).
    """
    if fractions is None:
        fractions = ramp_fractions(pose.shape[-3], pose.dtype, pose.device)
    length, unit = _unit_bones(pose, skeleton, eps)
    ang = angle.unsqueeze(-2) * fractions[:, None]  # (..., T, B)
    moved = rotate_about_axis(unit, axis.unsqueeze(-3), ang)
    return _turned(pose, unit, moved, length, frozen_bones, skeleton)


def bone_direction_ramp(
    pose: torch.Tensor,
    delta: torch.Tensor,
    fractions: torch.Tensor | None = None,
    frozen_bones: Sequence[int] = BA_FROZEN_BONES_H36M17,
    skeleton: Skeleton = H36M17,
    eps: float = _EPS,
) -> tuple[torch.Tensor, torch.Tensor]:
    """AdaptPose's BG2 (paper eq. 6): a motion grown from the window's first frame alone.

    Frame t has the first frame's unit bones plus ``fractions[t] * delta``, renormalized, at the
    first frame's bone lengths; every frame keeps its own root (the source trajectory). The
    source motion of the other frames is discarded, as the paper describes.

    Args:
        pose: (..., T, J, 3) windows.
        delta: (..., B, 3) full residual on the unit bone directions.
        fractions: (T,) fraction of ``delta`` per frame; ``None`` = :func:`ramp_fractions`.
        frozen_bones: bones that keep the first frame's direction.
        skeleton: kinematic tree.

    Returns:
        The windows (..., T, J, 3) and ``1 - cos`` between each frame's bones and the first
        frame's (..., T, B).
    """
    if fractions is None:
        fractions = ramp_fractions(pose.shape[-3], pose.dtype, pose.device)
    length, unit = _unit_bones(pose[..., :1, :, :], skeleton, eps)  # (..., 1, B): frame t0
    moved = unit + fractions[:, None, None] * delta.unsqueeze(-3)
    moved = moved / torch.linalg.vector_norm(moved, dim=-1, keepdim=True).clamp_min(eps)
    return _turned(pose, unit, moved, length, frozen_bones, skeleton)


def perturb_bone_directions(
    pose: torch.Tensor,
    max_deg: float,
    skeleton: Skeleton = H36M17,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Turn every bone of poses (..., J, 3) about a random axis by a random angle in [0, max_deg].

    Lengths and the root are kept. AdaptPose's paper (sec. 4.3) shows its 3D discriminator
    perturbed poses (< 10 degrees) so that it does not pin the generator to the source poses.
    """
    bones = joints_to_bones(pose, skeleton)
    axis = random_unit_vectors(bones.shape[:-1], generator, bones.dtype, bones.device)
    angle = torch.rand(bones.shape[:-1], generator=generator, dtype=bones.dtype, device=bones.device)
    turned = rotate_about_axis(bones, axis, angle * math.radians(max_deg))
    return bones_to_joints(turned, skeleton, root=pose[..., :1, :])


# -- BL ------------------------------------------------------------------------------------------
def bone_length_scale(
    pose: torch.Tensor, ratios: torch.Tensor, skeleton: Skeleton = H36M17, eps: float = _EPS
) -> torch.Tensor:
    """Bone-length (BL) augmentation: every bone length multiplied by ``ratios`` (..., B).

    Directions and the root position are kept. PoseAug's ``(1 + gamma_bl)`` is ``ratios``;
    build it from shared residuals with ``1 + expand_shared(gamma, groups)``.
    """
    return set_bone_lengths(pose, bone_lengths(pose, skeleton) * ratios, skeleton, eps)


def swap_bone_lengths(
    pose: torch.Tensor,
    templates: torch.Tensor,
    generator: torch.Generator | None = None,
    skeleton: Skeleton = H36M17,
) -> torch.Tensor:
    """Give each pose (N, J, 3) all bone lengths of a random row of ``templates`` (T, B).

    Directions and root are kept: PoseAug's per-epoch bone-length swap (``random_bl_aug``).
    """
    idx = torch.randint(len(templates), (pose.shape[0],), generator=generator, device=templates.device)
    return set_bone_lengths(pose, templates[idx].to(pose), skeleton)


def median_bone_lengths(
    poses: torch.Tensor, owner: torch.Tensor, skeleton: Skeleton = H36M17, symmetric: bool = True
) -> torch.Tensor:
    """(T, B) per-owner median bone lengths of poses (N, J, 3), one row per distinct ``owner`` (N,).

    PoseAug's templates are exactly this for H36M's training subjects (left/right symmetric);
    ``symmetric`` averages every bone with its mirror partner.
    """
    lengths = bone_lengths(poses, skeleton)
    rows = [lengths[owner == o].median(dim=0).values for o in torch.unique(owner)]
    tmpl = torch.stack(rows)
    if symmetric:
        tmpl = (tmpl + tmpl[:, skeleton.bone_flip_permutation]) / 2
    return tmpl


def load_bone_templates(path: str | Path, skeleton: Skeleton = H36M17) -> torch.Tensor:
    """Bone-length templates (K, B) in metres from an ``.npy`` or an ``.npz`` (key ``templates``).

    One row per template (e.g. per subject), bones in ``skeleton``'s bone order (bone k ends at
    joint k + 1). Errors name the file: missing, unreadable, wrong shape, or millimetres.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: bone-length templates file not found")
    try:
        data = np.load(path, allow_pickle=False)
        array = data["templates"] if isinstance(data, np.lib.npyio.NpzFile) else data
    except (OSError, ValueError, KeyError) as err:
        raise ValueError(f"{path}: not a templates file (.npy, or .npz with key 'templates'): {err}") from err
    array = np.asarray(array, dtype=np.float32)
    if array.ndim != 2 or array.shape[1] != skeleton.num_bones:
        raise ValueError(f"{path}: templates must have shape (K, {skeleton.num_bones}), got {array.shape}")
    if not np.isfinite(array).all() or (array <= 0).any():
        raise ValueError(f"{path}: templates must be positive finite bone lengths")
    if array.max() > 3.0:
        raise ValueError(f"{path}: bone lengths up to {array.max():.0f} look like millimetres; give metres")
    return torch.from_numpy(array)


# -- RT ------------------------------------------------------------------------------------------
def rigid_transform(pose: torch.Tensor, axis_angle: torch.Tensor, translation: torch.Tensor) -> torch.Tensor:
    """Rigid (RT) augmentation: ``R(aa) (pose - root) + t``.

    Args:
        pose: (..., J, 3) poses; only their root-relative shape is used.
        axis_angle: (..., 3) rotation vectors (angle = norm), Rodrigues' formula.
        translation: (..., 3) new absolute root position (the original root is discarded,
            as in the reference).

    Returns:
        (..., J, 3) poses whose joint 0 sits at ``translation``.
    """
    return rigid_transform_matrix(pose, axis_angle_to_matrix(axis_angle), translation)


def rigid_transform_matrix(
    pose: torch.Tensor,
    rotation: torch.Tensor,
    translation: torch.Tensor,
    origin: torch.Tensor | None = None,
) -> torch.Tensor:
    """``R (pose - origin) + t`` with a rotation matrix (..., 3, 3) acting on column vectors.

    Args:
        pose: (..., J, 3) poses, or windows (B, T, J, 3) with ``rotation`` (B, 1, 3, 3) and
            ``translation`` (B, 1, 3) shared by the frames.
        rotation: rotation matrices, broadcast against the leading dims of ``pose``.
        translation: (..., 3) where ``origin`` lands.
        origin: (..., 1, 3) point each pose is rotated about; ``None`` = its own root joint, so
            joint 0 lands exactly at ``translation`` (for a window: every frame's root, which
            removes the trajectory, as AdaptPose's code). Pass a window's middle-frame root,
            (B, 1, 1, 3), to rotate the whole motion rigidly and keep its trajectory.

    Returns:
        (..., J, 3) transformed poses.
    """
    rel = pose - (pose[..., :1, :] if origin is None else origin)
    return rel @ rotation.transpose(-1, -2) + translation.unsqueeze(-2)


# -- projection -----------------------------------------------------------------------------------
def reproject(pose: torch.Tensor, intrinsics: torch.Tensor) -> torch.Tensor:
    """Absolute camera-frame poses (..., J, 3) to screen-normalized 2D (..., J, 2).

    Each sample uses its own normalized intrinsics (..., 9) with distortion and the reference's
    clamp of X/Z, Y/Z to [-1, 1] (:func:`poseshift.geometry.camera.project`).
    """
    return project(pose, intrinsics)


def in_frame(pose2d: torch.Tensor, bound: float = 1.0, lower: bool = False) -> torch.Tensor:
    """(...,) mask of 2D poses (..., J, 2) with no coordinate above ``bound``.

    The reference keeps an augmented pair only if no projected coordinate is > 1 and does
    not check the lower bound; ``lower=True`` also requires every coordinate >= -bound.
    """
    ok = (pose2d <= bound).all(-1).all(-1)
    if lower:
        ok = ok & (pose2d >= -bound).all(-1).all(-1)
    return ok


def in_view(pose: torch.Tensor, min_depth: float = 0.1) -> torch.Tensor:
    """(...,) mask of camera-frame poses (..., J, 3) whose every joint is ``min_depth`` m in front of
    the camera and inside :func:`reproject`'s clamp (``|X/Z|, |Y/Z| <= 1``), so that their 2D is
    the true projection of their 3D. The reference's :func:`in_frame` filter alone keeps poses
    whose clamped joints' 2D no longer matches their 3D, and poses behind the camera.
    """
    z = pose[..., 2]
    ratio = pose[..., :2] / z.unsqueeze(-1).clamp_min(min_depth)
    ok = (z > min_depth) & (ratio.abs() <= 1.0).all(-1)
    return ok.all(-1)


def geodesic_angle_deg(axis_angle: torch.Tensor) -> torch.Tensor:
    """Rotation angle in degrees, in [0, 180], of axis-angle vectors (..., 3).

    The vector's norm is the angle only up to 180 degrees: PoseAug's ``pi * tanh`` per component
    reaches norms up to ``pi * sqrt(3)``, which rotate by ``360 - norm`` degrees about the
    opposite axis.
    """
    angle = torch.remainder(torch.linalg.vector_norm(axis_angle, dim=-1), 2 * math.pi)
    return torch.rad2deg(torch.minimum(angle, 2 * math.pi - angle))


def augmentation_stats(
    axis_angle: torch.Tensor, translation: torch.Tensor, ratios: torch.Tensor, ba_diff: torch.Tensor
) -> dict[str, torch.Tensor]:
    """Flattened per-sample statistics of one augmentation batch, for histograms and plots.

    Returns the axis-angle norm (deg; what the reference logs) and the geodesic rotation angle
    (deg, in [0, 180]), root translation (x, y, z), bone-length ratios and the BA change angle
    (deg) of every bone.
    """
    angle = torch.rad2deg(torch.linalg.vector_norm(axis_angle, dim=-1))
    ba_angle = torch.rad2deg(torch.acos((1 - ba_diff).clamp(-1, 1)))
    return {
        "rotation_deg": angle.detach().reshape(-1),
        "rotation_geodesic_deg": geodesic_angle_deg(axis_angle).detach().reshape(-1),
        "translation_x": translation[..., 0].detach().reshape(-1),
        "translation_y": translation[..., 1].detach().reshape(-1),
        "translation_z": translation[..., 2].detach().reshape(-1),
        "bone_length_ratio": ratios.detach().reshape(-1),
        "bone_angle_deg": ba_angle.detach().reshape(-1),
    }


# -- GPA (PoseDA) ----------------------------------------------------------------------------------
def box_size(pose2d: torch.Tensor) -> torch.Tensor:
    """Width plus height (...,) of the 2D bounding box of poses (..., J, 2): GPA's box measure."""
    extent = pose2d.amax(dim=-2) - pose2d.amin(dim=-2)
    return extent.sum(-1)


def gpa_root(
    pose: torch.Tensor,
    target2d: torch.Tensor,
    intrinsics: torch.Tensor,
    row0_focal: bool = False,
    eps: float = 1e-6,
) -> torch.Tensor:
    """GPA's closed-form root position (..., 3) for poses paired with target 2D poses.

    Under the pinhole model with every joint at the root's depth (``|Z_i| << Z_r``), a pose
    placed at ``(X_r, Y_r, Z_r)`` projects to a box of size ``(fx dX + fy dY) / Z_r`` around
    ``f (X_r, Y_r) / Z_r + c``. GPA (PoseDA eq. 6-9) picks the depth that makes this size equal
    the target's ``dx + dy`` and the (X_r, Y_r) that put the root on the target root::

        Z_r = (fx dX + fy dY) / (dx + dy),   X_r = Z_r (x_r - cx) / fx,   Y_r = Z_r (y_r - cy) / fy

    Args:
        pose: (..., J, 3) poses, metres; only their root-relative shape is used.
        target2d: (..., J, 2) screen-normalized target poses paired with them (joint 0 = root).
        intrinsics: (..., 9) normalized ``[fx, fy, cx, cy, ...]`` of each *target* sample's
            camera (the suite's ``[f, c]`` order; both axes divided by the image width).
            Distortion terms are not inverted: the target root is treated as a pinhole point.
        row0_focal: take fx, fy of the first sample for the depth of every sample, as the
            function released with the paper does (it reads ``camera_params[0, :2]``); wrong
            for a batch that mixes cameras. The root's (x, y) still use each sample's own f, c,
            also as released. Only for reproducing that function; leading dims must be (B,).
        eps: lower bound of the target box size (a degenerate target box would put the pose
            at infinite depth).
    """
    rel = pose - pose[..., :1, :]
    extent = rel[..., :2].amax(dim=-2) - rel[..., :2].amin(dim=-2)  # (..., 2): dX, dY in metres
    f, c = intrinsics[..., 0:2], intrinsics[..., 2:4]
    f_depth = f[:1].expand_as(f) if row0_focal else f
    depth = (f_depth * extent).sum(-1) / box_size(target2d).clamp_min(eps)
    xy = depth.unsqueeze(-1) * (target2d[..., 0, :] - c) / f
    return torch.cat([xy, depth.unsqueeze(-1)], dim=-1)


def global_position_alignment(
    pose: torch.Tensor,
    target2d: torch.Tensor,
    intrinsics: torch.Tensor,
    row0_focal: bool = False,
    eps: float = 1e-6,
) -> torch.Tensor:
    """PoseDA's GPA: each pose's root-relative shape moved to :func:`gpa_root` (..., J, 3).

    Pairing is the caller's: sample i of ``pose`` goes with sample i of ``target2d`` (PoseDA
    pairs each source pose with a random target pose and re-pairs every epoch; poseshift's
    training batches already carry a freshly shuffled target batch). Project the result with
    the same target ``intrinsics`` (:func:`reproject`). Differentiable in ``pose``, so it composes
    with any learned augmentor before it. Arguments as :func:`gpa_root`.
    """
    root = gpa_root(pose, target2d, intrinsics, row0_focal, eps)
    return pose - pose[..., :1, :] + root.unsqueeze(-2)


def box_normalize(pose2d: torch.Tensor, square: bool = False, eps: float = 1e-6) -> torch.Tensor:
    """Crop normalization of 2D poses (..., J, 2) to their own bounding box, centred on it.

    ``square=False`` ("crop norm"): each axis scaled so the box spans [-1, 1] (the aspect ratio
    is lost, as when a person box is resized to a square image). ``square=True`` ("square
    crop"): both axes divided by half the longer side, keeping the aspect ratio. Either way the
    position and scale of the person in the image are gone, which PoseDA argues makes lifting
    ambiguous (its Table 5 compares both with screen normalization and GPA).
    """
    lo, hi = pose2d.amin(dim=-2, keepdim=True), pose2d.amax(dim=-2, keepdim=True)
    centre, half = (lo + hi) / 2, ((hi - lo) / 2).clamp_min(eps)
    if square:
        half = half.amax(dim=-1, keepdim=True)
    return (pose2d - centre) / half


# -- non-learned baselines (PoseDA Table 6) ----------------------------------------------------------
def random_vertical_rotation(
    pose: torch.Tensor, max_deg: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Rotate poses (B, J, 3) about the camera's vertical (y) axis through their root by an
    angle drawn uniformly in ``[-max_deg, max_deg]`` per sample (PoseDA's "RR" baseline).

    For the level cameras of H36M-like sources the camera y axis is the world's vertical, so this
    turns the person in place.
    """
    angle = (torch.rand(pose.shape[0], generator=generator, device=pose.device) * 2 - 1) * math.radians(
        max_deg
    )
    axis_angle = torch.zeros(pose.shape[0], 3, device=pose.device, dtype=pose.dtype)
    axis_angle[:, 1] = angle.to(pose.dtype)
    return rigid_transform(pose, axis_angle, pose[:, 0])


def random_bone_scale(
    pose: torch.Tensor,
    limit: float,
    groups: torch.Tensor,
    generator: torch.Generator | None = None,
    skeleton: Skeleton = H36M17,
) -> torch.Tensor:
    """Scale each bone group of poses (B, J, 3) by a factor drawn uniformly in ``[1 - limit,
    1 + limit]`` per sample and group (left = right with the BL groups; PoseDA's "BL" baseline).

    ``groups`` is a (G, nb) :func:`group_matrix`; directions and root are kept.
    """
    residual = (
        torch.rand(pose.shape[0], groups.shape[0], generator=generator, device=pose.device) * 2 - 1
    ) * limit
    return bone_length_scale(
        pose, 1 + expand_shared(residual.to(pose.dtype), groups.to(pose.dtype)), skeleton
    )


__all__ = [
    "BA_FROZEN_BONES_H36M17",
    "BL_GROUPS_H36M17",
    "augmentation_stats",
    "bone_angle_perturb",
    "bone_direction_ramp",
    "bone_rotation_ramp",
    "bone_length_scale",
    "box_normalize",
    "box_size",
    "expand_shared",
    "geodesic_angle_deg",
    "global_position_alignment",
    "gpa_root",
    "group_matrix",
    "in_frame",
    "in_view",
    "load_bone_templates",
    "median_bone_lengths",
    "perturb_bone_directions",
    "ramp_fractions",
    "random_bone_scale",
    "random_vertical_rotation",
    "reproject",
    "rigid_transform",
    "rigid_transform_matrix",
    "swap_bone_lengths",
]
