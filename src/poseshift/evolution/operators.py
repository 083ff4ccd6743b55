"""Evolutionary operators on batches of poses in the hierarchical representation.

Every operator acts on a whole generation at once (no per-individual Python) and draws its
randomness from an explicit ``torch.Generator``. Poses are :class:`LocalPose` batches (see
:mod:`poseshift.geometry.local_frames`): limb bones live in local frames, so swapping or
rotating a limb's local direction carries its whole sub-tree along, and rotating the torso
directions rotates the whole body about the root.

What follows the reference (``libs/evolution/genetic.py``, METHODS.md 5.3) and what is
selectable:

* crossover swaps the local directions of the sub-tree rooted at a random joint; the torso
  always stays with the child's own parent and, as in the reference, each child takes the
  *other* parent's limb lengths (``lengths_from="other"``);
* local mutation either rotates the bone about one random axis of its local frame by
  N(0, sigma) (the code) or adds N(0, sigma) to its spherical angles theta and phi (the paper);
* global mutation rotates the whole pose about the hip around one random world axis by
  N(0, sigma); the reference's effective sigma is 60 degrees;
* bone-length mutation replaces all bone lengths by a random template row;
* ground placement puts the lowest joint at a height drawn from N(20 mm, 3 mm).
"""

from __future__ import annotations

import math

import torch

from poseshift.geometry.local_frames import LIMB_BONES, TORSO_BONES, LocalPose
from poseshift.geometry.skeleton import NUM_BONES

# Joint -> limb bones of the sub-tree rooted there (H36M17 joints and bones). These are the
# reference's ten crossover roots mapped onto the 17-joint tree; the pelvis swaps both legs
# and the thorax both arms, and the head is never swapped unless asked for.
CROSSOVER_SUBTREES: dict[int, tuple[int, ...]] = {
    0: (1, 2, 4, 5),  # pelvis: both legs
    1: (1, 2),  # r_hip: right leg
    2: (2,),  # r_knee: right shin
    4: (4, 5),  # l_hip: left leg
    5: (5,),  # l_knee: left shin
    8: (11, 12, 14, 15),  # thorax: both arms
    11: (11, 12),  # l_shoulder: left arm
    12: (12,),  # l_elbow: left forearm
    14: (14, 15),  # r_shoulder: right arm
    15: (15,),  # r_elbow: right forearm
}
# with ``include_head``: the thorax sub-tree also holds neck and head, and the nose is a root
HEAD_SUBTREES: dict[int, tuple[int, ...]] = {8: (8, 9, 11, 12, 14, 15), 9: (9,)}


def subtree_table(include_head: bool = False, device: torch.device | str | None = None) -> torch.Tensor:
    """(R, 16) bool table: row r marks the bones swapped when crossover picks root r."""
    table = dict(CROSSOVER_SUBTREES)
    if include_head:
        table.update(HEAD_SUBTREES)
    rows = torch.zeros(len(table), NUM_BONES, dtype=torch.bool, device=device)
    for r, bones in enumerate(table.values()):
        rows[r, list(bones)] = True
    return rows


def _limb_mask(like: torch.Tensor) -> torch.Tensor:
    mask = torch.zeros(NUM_BONES, dtype=torch.bool, device=like.device)
    mask[list(LIMB_BONES)] = True
    return mask


def crossover(
    father: LocalPose,
    mother: LocalPose,
    generator: torch.Generator | None = None,
    include_head: bool = False,
    lengths_from: str = "other",
) -> tuple[LocalPose, LocalPose, torch.Tensor]:
    """Swap a random sub-tree between paired parents (the paper's eq. 3-4).

    Returns ``(son, daughter, swapped)``: the son is the father with the mother's local
    directions on the swapped bones, the daughter the converse, and ``swapped`` the (N, 16)
    bool mask of exchanged bones. With ``lengths_from="other"`` (the reference) each child
    takes the other parent's limb lengths and keeps its own torso; ``"own"`` keeps all lengths.
    """
    if lengths_from not in ("other", "own"):
        raise ValueError(f"lengths_from must be 'other' or 'own', got {lengths_from!r}")
    n = len(father)
    table = subtree_table(include_head, device=father.directions.device)
    roots = torch.randint(len(table), (n,), generator=generator, device=table.device)
    swapped = table[roots]
    m = swapped.unsqueeze(-1)
    son_dirs = torch.where(m, mother.directions, father.directions)
    daughter_dirs = torch.where(m, father.directions, mother.directions)
    if lengths_from == "other":
        limbs = _limb_mask(father.lengths)
        son_len = torch.where(limbs, mother.lengths, father.lengths)
        daughter_len = torch.where(limbs, father.lengths, mother.lengths)
    else:
        son_len, daughter_len = father.lengths, mother.lengths
    return (
        LocalPose(son_dirs, son_len, father.root),
        LocalPose(daughter_dirs, daughter_len, mother.root),
        swapped,
    )


def rotate_about_axes(v: torch.Tensor, axis: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    """Rotate vectors v (N, 3) about coordinate axis ``axis`` (N,) in {0, 1, 2} by ``angle`` (N,) radians."""
    c, s = torch.cos(angle), torch.sin(angle)
    i = (axis + 1) % 3  # the two coordinates that turn; the axis coordinate stays
    j = (axis + 2) % 3
    vi = v.gather(-1, i[:, None]).squeeze(-1)
    vj = v.gather(-1, j[:, None]).squeeze(-1)
    out = v.clone()
    out.scatter_(-1, i[:, None], (c * vi - s * vj)[:, None])
    out.scatter_(-1, j[:, None], (s * vi + c * vj)[:, None])
    return out


def choose_bones(
    candidates: torch.Tensor, rate: float, mode: str = "each", generator: torch.Generator | None = None
) -> torch.Tensor:
    """Which candidate bones (N, 16) bool to mutate.

    ``"each"``: every candidate independently with probability ``rate`` (the reference, which
    uses the swapped bones as candidates). ``"one"``: with probability ``rate`` per pose, a
    single candidate picked uniformly (the paper's "one bone vector selected at random").
    """
    if mode == "each":
        draw = torch.rand(candidates.shape, generator=generator, device=candidates.device)
        return candidates & (draw < rate)
    if mode == "one":
        weights = candidates.float()
        has = weights.sum(-1) > 0
        pick = torch.multinomial(weights + (~has).float()[:, None], 1, generator=generator).squeeze(-1)
        chosen = torch.zeros_like(candidates)
        chosen[torch.arange(len(pick), device=pick.device), pick] = True
        draw = torch.rand(len(pick), generator=generator, device=candidates.device)
        return chosen & candidates & (has & (draw < rate))[:, None]
    raise ValueError(f"mutation choice mode must be 'each' or 'one', got {mode!r}")


def mutate_local(
    directions: torch.Tensor,
    chosen: torch.Tensor,
    sigma_deg: float = 10.0,
    kind: str = "axis",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Perturb the local directions (N, 16, 3) of the ``chosen`` (N, 16) limb bones.

    ``kind="axis"`` (the reference code): rotate about one random axis of the bone's local
    frame by an angle ~ N(0, sigma). ``kind="spherical"`` (the paper, eq. 5): add independent
    N(0, sigma) noise to the bone's theta and phi. Torso bones are never touched.
    """
    chosen = chosen & _limb_mask(directions)
    idx = chosen.nonzero(as_tuple=True)
    out = directions.clone()
    if len(idx[0]) == 0:
        return out
    v = directions[idx]
    k = len(v)
    sigma = math.radians(sigma_deg)
    if kind == "axis":
        axis = torch.randint(3, (k,), generator=generator, device=v.device)
        angle = torch.randn(k, generator=generator, device=v.device, dtype=v.dtype) * sigma
        new = rotate_about_axes(v, axis, angle)
    elif kind == "spherical":
        x, y, z = v.unbind(-1)
        rho = torch.sqrt(x * x + y * y)
        theta = (
            torch.atan2(y, x) + torch.randn(k, generator=generator, dtype=v.dtype, device=v.device) * sigma
        )
        phi = (
            torch.atan2(z, rho) + torch.randn(k, generator=generator, dtype=v.dtype, device=v.device) * sigma
        )
        r = torch.linalg.vector_norm(v, dim=-1)
        new = torch.stack(
            [
                r * torch.cos(phi) * torch.cos(theta),
                r * torch.cos(phi) * torch.sin(theta),
                r * torch.sin(phi),
            ],
            -1,
        )
    else:
        raise ValueError(f"local mutation kind must be 'axis' or 'spherical', got {kind!r}")
    out[idx] = new
    return out


def mutate_global(
    pose: LocalPose,
    rate: float = 0.1,
    sigma_deg: float = 60.0,
    generator: torch.Generator | None = None,
    axes: str = "xyz",
) -> tuple[LocalPose, torch.Tensor]:
    """Rotate whole poses about the root, each with probability ``rate``.

    One world axis (from ``axes``) per pose, angle ~ N(0, sigma). Only the global torso
    directions change; limbs follow because their frames hang off the torso. Returns the
    new poses and the (N,) bool mask of rotated ones.
    """
    n = len(pose)
    dev = pose.directions.device
    hit = torch.rand(n, generator=generator, device=dev) < rate
    idx = hit.nonzero(as_tuple=True)[0]
    if len(idx) == 0:
        return pose, hit
    choices = torch.tensor(["xyz".index(a) for a in axes], device=dev)
    axis = choices[torch.randint(len(choices), (len(idx),), generator=generator, device=dev)]
    angle = torch.randn(len(idx), generator=generator, device=dev, dtype=pose.directions.dtype)
    angle = angle * math.radians(sigma_deg)
    torso = list(TORSO_BONES)
    d = pose.directions[idx][:, torso]  # (k, 6, 3)
    kk = d.shape[1]
    rotated = rotate_about_axes(
        d.reshape(-1, 3), axis.repeat_interleave(kk), angle.repeat_interleave(kk)
    ).reshape(d.shape)
    dirs = pose.directions.clone()
    sub = dirs[idx]
    sub[:, torso] = rotated
    dirs[idx] = sub
    return LocalPose(dirs, pose.lengths, pose.root), hit


def mutate_bone_lengths(
    lengths: torch.Tensor,
    templates: torch.Tensor,
    rate: float = 0.5,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Replace all bone lengths (N, 16) by a random row of ``templates`` (K, 16) with probability ``rate``.

    The reference applies this when saving with probability ``1 - MBLR = 0.5``.
    """
    n = lengths.shape[0]
    hit = torch.rand(n, generator=generator, device=lengths.device) < rate
    row = torch.randint(len(templates), (n,), generator=generator, device=lengths.device)
    return torch.where(hit[:, None], templates.to(lengths)[row], lengths)


def mean_bone_lengths(lengths: torch.Tensor, groups: torch.Tensor | None = None) -> torch.Tensor:
    """Bone-length templates (K, 16): the mean lengths of each group (e.g. subject) of poses.

    Without groups, a single template, the overall mean.
    """
    if groups is None:
        return lengths.mean(0, keepdim=True)
    ids, inverse = torch.unique(groups, return_inverse=True)
    sums = torch.zeros(len(ids), lengths.shape[-1], dtype=lengths.dtype).index_add_(0, inverse, lengths)
    counts = torch.bincount(inverse, minlength=len(ids)).to(lengths.dtype)
    return sums / counts[:, None]


def place_on_ground(
    joints: torch.Tensor,
    height_mean: float = 0.02,
    height_std: float = 0.003,
    up_axis: int = 2,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Translate poses (N, J, 3) along ``up_axis`` so the lowest joint is at N(mean, std) metres.

    The reference draws the height of the lowest joint from N(20, 3) mm in H36M's z-up world.
    """
    n = joints.shape[0]
    height = torch.randn(n, generator=generator, device=joints.device, dtype=joints.dtype)
    height = height_mean + height_std * height
    lowest = joints[..., up_axis].amin(-1)
    out = joints.clone()
    out[..., up_axis] += (height - lowest)[:, None]
    return out


def camera_to_upright(pose_cam: torch.Tensor) -> torch.Tensor:
    """Camera-frame poses (x right, y down, z forward) to a z-up frame: (x, z, -y).

    Exact for a level camera; for a tilted one the body leans by the camera pitch (about
    10-20 degrees for H36M), which the global mutation blurs anyway. Used when only
    camera-frame 3D is available to seed the population.
    """
    x, y, z = pose_cam.unbind(-1)
    return torch.stack([x, z, -y], dim=-1)
