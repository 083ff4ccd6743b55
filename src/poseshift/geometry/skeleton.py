"""The 17-joint Human3.6M skeleton that every part of poseshift uses.

Joint order, parents and left/right pairs follow VideoPose3D's H36M-17 layout
(``shared/specs/DATA_FORMATS.md`` section 1.1). A bone is identified with its child
joint: bone ``k`` joins ``PARENTS[k + 1]`` to joint ``k + 1``, so there are 16 bones.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

JOINT_NAMES: tuple[str, ...] = (
    "pelvis",
    "r_hip",
    "r_knee",
    "r_ankle",
    "l_hip",
    "l_knee",
    "l_ankle",
    "spine",
    "thorax",
    "neck_nose",
    "head_top",
    "l_shoulder",
    "l_elbow",
    "l_wrist",
    "r_shoulder",
    "r_elbow",
    "r_wrist",
)
PARENTS: tuple[int, ...] = (-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 9, 8, 11, 12, 8, 14, 15)
LEFT_JOINTS: tuple[int, ...] = (4, 5, 6, 11, 12, 13)
RIGHT_JOINTS: tuple[int, ...] = (1, 2, 3, 14, 15, 16)
NUM_JOINTS = len(JOINT_NAMES)
NUM_BONES = NUM_JOINTS - 1
ROOT = 0


@dataclass(frozen=True)
class Skeleton:
    """A kinematic tree: joint names, parent indices and left/right joint pairs.

    The root is joint 0 and every parent precedes its children, so chains can be
    accumulated in index order. Bone ``k`` ends at joint ``k + 1``.

    Args:
        names: joint names.
        parents: parent index of each joint (-1 for the root, joint 0).
        left: left joints of the left/right pairs.
        right: their right partners, in the same order.
        parts: body parts as bone indices (for part-aware KCS).
    """

    names: tuple[str, ...]
    parents: tuple[int, ...]
    left: tuple[int, ...]
    right: tuple[int, ...]
    # body parts as bone indices, used by part-aware KCS (filled by ``__post_init__``)
    parts: dict[str, tuple[int, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.names) != len(self.parents):
            raise ValueError(f"skeleton has {len(self.names)} names but {len(self.parents)} parents")
        if self.parents[0] != -1 or any(not 0 <= p < j for j, p in enumerate(self.parents) if j > 0):
            raise ValueError(
                "skeleton parents must have the root at 0 and each parent before its child, "
                f"got {self.parents}"
            )
        if len(self.left) != len(self.right):
            raise ValueError("left and right joint lists differ in length")

    @property
    def num_joints(self) -> int:
        return len(self.names)

    @property
    def num_bones(self) -> int:
        return len(self.names) - 1

    @property
    def bone_pairs(self) -> list[tuple[int, int]]:
        """(parent, child) joint indices of each bone, in bone order."""
        return [(self.parents[c], c) for c in range(1, self.num_joints)]

    @property
    def flip_permutation(self) -> list[int]:
        """Joint permutation that swaps every left joint with its right partner."""
        perm = list(range(self.num_joints))
        for lj, rj in zip(self.left, self.right, strict=True):
            perm[lj], perm[rj] = rj, lj
        return perm

    @property
    def bone_flip_permutation(self) -> list[int]:
        """Bone permutation matching :attr:`flip_permutation` (bone k ends at joint k+1)."""
        jp = self.flip_permutation
        return [jp[c] - 1 for c in range(1, self.num_joints)]

    def index(self, name: str) -> int:
        """Index of a joint by name, with an error listing the known names."""
        try:
            return self.names.index(name)
        except ValueError:
            raise KeyError(f"unknown joint {name!r}; this skeleton has {', '.join(self.names)}") from None

    def incidence(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """(J, B) matrix C with bones = joints^T-major product ``C^T X``: +1 child, -1 parent.

        For poses X of shape (..., J, 3), ``bones = C.T @ X`` gives child minus parent.
        """
        c = torch.zeros(self.num_joints, self.num_bones, dtype=dtype)
        for b, (p, ch) in enumerate(self.bone_pairs):
            c[ch, b] = 1.0
            c[p, b] = -1.0
        return c

    def bone_graph_distance(self) -> torch.Tensor:
        """(B, B) shortest-path distance between bones; bones sharing a joint are 1 apart."""
        nb = self.num_bones
        pairs = self.bone_pairs
        inf = nb + 1
        d = torch.full((nb, nb), inf, dtype=torch.long)
        for i in range(nb):
            d[i, i] = 0
            for j in range(nb):
                if i != j and set(pairs[i]) & set(pairs[j]):
                    d[i, j] = 1
        for k in range(nb):  # Floyd-Warshall; tiny graph, done once
            d = torch.minimum(d, d[:, k : k + 1] + d[k : k + 1, :])
        return d


# Bones are indexed by child joint - 1. Parts for part-aware KCS: each limb with the
# torso bones it attaches to. The PoseAug reference swaps the left/right leg labels
# (METHODS.md 2.2); these labels name the subject's actual side.
_H36M_PARTS = {
    "left_arm": (7, 10, 11, 12),  # spine->thorax, thorax->l_shoulder, l_upper arm, l_forearm
    "right_arm": (7, 13, 14, 15),
    "left_leg": (0, 3, 4, 5, 6),  # both hip bones, l_thigh, l_shin, pelvis->spine
    "right_leg": (0, 1, 2, 3, 6),
    "torso": (0, 3, 6, 7, 8, 9, 10, 13),  # hips, spine, neck and head, shoulder girdle
}

H36M17 = Skeleton(
    names=JOINT_NAMES,
    parents=PARENTS,
    left=LEFT_JOINTS,
    right=RIGHT_JOINTS,
    parts=_H36M_PARTS,
)


# Evaluation joint sets as H36M-17 indices, defined once for the metrics and the datasets.
# "official14" is the MPI-INF-3DHP PCK protocol (head_top, thorax, shoulders, elbows, wrists,
# hips, knees, ankles; no pelvis, spine or nose; DATA_FORMATS.md 7.4); "all16" leaves out
# neck_nose, which 16-joint sources (PoseAug/AdaptPose files, SMPL) lack and poseshift fills
# by interpolation, so it is never scored.
NECK_NOSE = JOINT_NAMES.index("neck_nose")
EVAL_JOINT_SETS: dict[str, tuple[int, ...]] = {
    "all": tuple(range(NUM_JOINTS)),
    "all16": tuple(j for j in range(NUM_JOINTS) if j != NECK_NOSE),
    "official14": (10, 8, 14, 15, 16, 11, 12, 13, 1, 2, 3, 4, 5, 6),
}
