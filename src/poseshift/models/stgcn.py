"""Single-frame ST-GCN lifter (Cai et al., ICCV'19) as used by PoseAug (METHODS.md section 1, ``stgcn``).

The reference runs on a 17-joint graph and inserts a neck joint into its 16-joint poses
to get there. Our H36M17 layout already has that joint (``neck_nose``, index 9), so the
graph is built on the skeleton directly and nothing is inserted or dropped.

With one frame the temporal kernel is 1, so every ``(1, 1)`` Conv2d over (T=1, V) of the
reference is a ``Conv1d(k=1)`` over the V nodes here (same parameters and maths).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from poseshift.geometry.skeleton import H36M17, Skeleton
from poseshift.models.blocks import Dropout, check_pose2d, subtract_root

_ARM_WORDS = ("shoulder", "elbow", "wrist", "hand")
_LEG_WORDS = ("hip", "knee", "ankle", "foot")
PART_NAMES: tuple[str, ...] = ("left_arm", "right_arm", "left_leg", "right_leg", "centre")


def body_part_of_joints(skeleton: Skeleton) -> list[int]:
    """Part index (into :data:`PART_NAMES`) of every joint, from its side and its name.

    Left/right come from ``skeleton.left``/``skeleton.right``; arm vs. leg from the joint
    name; every joint on neither side (pelvis, spine, thorax, neck, head) is centre.
    """
    part = []
    for j, name in enumerate(skeleton.names):
        side = "left" if j in skeleton.left else "right" if j in skeleton.right else None
        if side is None:
            part.append(PART_NAMES.index("centre"))
            continue
        is_arm = any(w in name for w in _ARM_WORDS)
        is_leg = any(w in name for w in _LEG_WORDS)
        if is_arm == is_leg:
            raise ValueError(f"cannot tell whether joint {name!r} belongs to an arm or a leg")
        part.append(PART_NAMES.index(f"{side}_{'arm' if is_arm else 'leg'}"))
    missing = sorted(set(range(len(PART_NAMES))) - set(part))
    if missing:
        raise ValueError(f"skeleton has no joint in part(s) {[PART_NAMES[p] for p in missing]}")
    return part


def _hop_distance(num_nodes: int, edges: Sequence[tuple[int, int]], source: int) -> list[int]:
    """Breadth-first hop count from ``source`` over undirected ``edges``."""
    neighbours: list[list[int]] = [[] for _ in range(num_nodes)]
    for a, b in edges:
        neighbours[a].append(b)
        neighbours[b].append(a)
    dist = [-1] * num_nodes
    dist[source] = 0
    frontier = [source]
    while frontier:
        nxt = []
        for a in frontier:
            for b in neighbours[a]:
                if dist[b] < 0:
                    dist[b] = dist[a] + 1
                    nxt.append(b)
        frontier = nxt
    if min(dist) < 0:
        raise ValueError("graph is not connected")
    return dist


def spatial_partition(
    num_nodes: int,
    edges: Sequence[tuple[int, int]],
    sym_pairs: Sequence[tuple[int, int]],
    center: int,
) -> torch.Tensor:
    """ST-GCN 'spatial' partition (max hop 1) of a graph, as (4, V, V) ``A[k, source, target]``.

    The adjacency (self-loops, ``edges`` and left/right ``sym_pairs``, all undirected) is
    normalised by each target's degree, then split into: 0 self-loops ("root"),
    1 centripetal (source farther than the target from ``center``), 2 centrifugal
    (source nearer), 3 symmetric left/right links. Distances to the centre are hop
    counts along ``edges`` only. Neighbours at equal distance that are not a symmetric
    pair belong to no partition, as in the reference (on a tree there are none).
    """
    adj = torch.eye(num_nodes, dtype=torch.float64)
    for a, b in [*edges, *sym_pairs]:
        adj[a, b] = adj[b, a] = 1.0
    norm = adj / adj.sum(dim=0, keepdim=True)  # column = target: each node averages its inputs
    dist = torch.tensor(_hop_distance(num_nodes, edges, center))
    off_diag = ~torch.eye(num_nodes, dtype=torch.bool)
    sym = torch.zeros(num_nodes, num_nodes, dtype=torch.bool)
    for a, b in sym_pairs:
        sym[a, b] = sym[b, a] = True
    linked = (adj > 0) & off_diag & ~sym
    d_src, d_tgt = dist[:, None], dist[None, :]
    masks = [~off_diag, linked & (d_src > d_tgt), linked & (d_src < d_tgt), sym]
    return torch.stack([norm * m for m in masks]).float()


class GraphConv(nn.Module):
    """Spatial graph conv: per-partition 1x1 conv, then sum of ``x @ A[k]`` over partitions.

    (N, C_in, V) -> (N, C_out, V), with ``A`` given as (K, V, V) ``[k, source, target]``.
    """

    def __init__(self, in_channels: int, out_channels: int, num_partitions: int) -> None:
        super().__init__()
        self.num_partitions = num_partitions
        self.conv = nn.Conv1d(in_channels, out_channels * num_partitions, 1)

    def forward(self, x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        n, _, v = x.shape
        h = self.conv(x).view(n, self.num_partitions, -1, v)
        return torch.einsum("nkcv,kvw->ncw", h, a)


class STGCNBlock(nn.Module):
    """st_gcn unit with temporal kernel 1: graph conv, ``BN-ReLU-Drop-conv1x1-BN-Drop``, skip, ReLU.

    The skip is absent (``residual=False``), the identity (same width) or a 1x1 conv + BN.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        num_partitions: int,
        dropout: float = 0.05,
        residual: bool = True,
        bn_momentum: float = 0.1,
    ) -> None:
        super().__init__()
        self.gcn = GraphConv(in_channels, out_channels, num_partitions)
        self.tcn = nn.Sequential(
            nn.BatchNorm1d(out_channels, momentum=bn_momentum),
            nn.ReLU(),
            Dropout(dropout),
            nn.Conv1d(out_channels, out_channels, 1),
            nn.BatchNorm1d(out_channels, momentum=bn_momentum),
            Dropout(dropout),
        )
        self.residual: nn.Module | None
        if not residual:
            self.residual = None
        elif in_channels == out_channels:
            self.residual = nn.Identity()
        else:
            self.residual = nn.Sequential(
                nn.Conv1d(in_channels, out_channels, 1), nn.BatchNorm1d(out_channels, momentum=bn_momentum)
            )
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        h = self.tcn(self.gcn(x, a))
        if self.residual is not None:
            h = h + self.residual(x)
        return self.relu(h)


class NonLocalBlock(nn.Module):
    """Embedded-Gaussian non-local block over the V nodes of (N, C, V), no sub-sampling.

    ``z = x + BN(W(softmax(theta(x)^T phi(x)) g(x)))``. The output BN starts at zero
    weight and bias, so the block starts as the identity (and theta/phi/g/W only get a
    gradient once that BN weight has moved away from zero).
    """

    def __init__(self, channels: int, inter_channels: int | None = None, bn_momentum: float = 0.1) -> None:
        super().__init__()
        inter = inter_channels or max(channels // 2, 1)
        self.theta = nn.Conv1d(channels, inter, 1)
        self.phi = nn.Conv1d(channels, inter, 1)
        self.g = nn.Conv1d(channels, inter, 1)
        self.out_conv = nn.Conv1d(inter, channels, 1)
        self.out_bn = nn.BatchNorm1d(channels, momentum=bn_momentum)
        nn.init.zeros_(self.out_bn.weight)
        nn.init.zeros_(self.out_bn.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        theta = self.theta(x).transpose(1, 2)  # (N, V, C')
        att = torch.softmax(theta @ self.phi(x), dim=-1)  # (N, V, V)
        y = (att @ self.g(x).transpose(1, 2)).transpose(1, 2)  # (N, C', V)
        return x + self.out_bn(self.out_conv(y))


class STGCN(nn.Module):
    """Single-frame ST-GCN lifter: (B, J, 2) -> (B, J, 3) root-relative.

    Data BN over the 2J inputs; st_gcn blocks 2->128 (no skip) ->128->256 on the joint
    graph; max-pool into 5 body parts (left arm, right arm, left leg, right leg, centre);
    st_gcn blocks 256->512->512 on the part graph; global max, conv 512 + BN + ReLU + Drop;
    concatenated with the part features (1024) -> conv 256 + BN + ReLU + Drop, copied back
    to each part's joints; concatenated with the joint features (512) -> embedded-Gaussian
    non-local block -> Dropout -> conv 512->3. Both graphs use the 'spatial' partition
    (self, centripetal, centrifugal, left/right symmetric; see :func:`spatial_partition`),
    stored as buffers. All J joints are predicted, then the predicted root is subtracted
    (root row exactly zero); the output conv therefore has no bias, which would cancel.

    Args:
        skeleton: joint layout; edges from ``parents``, symmetric links from ``left``/``right``,
            parts from the joint names (:func:`body_part_of_joints`).
        dropout: ``-1`` (any negative) gives the reference per-layer rates (st_gcn 0.05,
            conv4 0.25, conv2 0.1, fcn 0.1); a value >= 0 is used everywhere.
        channels: widths of the three joint-graph blocks (128, 128, 256).
        part_channels: width of the part-graph blocks and of conv4 (512).
        center_joint: joint the centripetal/centrifugal split is measured from ("spine").
        data_bn_eps: eps of the input BatchNorm. The reference passes its momentum (0.1)
            positionally into BatchNorm1d's ``eps`` slot, so 0.1 reproduces it.
        bn_momentum: momentum of every other BatchNorm (0.1).
    """

    receptive_field: int = 1

    def __init__(
        self,
        skeleton: Skeleton = H36M17,
        dropout: float = -1.0,
        channels: Sequence[int] = (128, 128, 256),
        part_channels: int = 512,
        center_joint: str = "spine",
        data_bn_eps: float = 0.1,
        bn_momentum: float = 0.1,
    ) -> None:
        super().__init__()
        if len(channels) != 3:
            raise ValueError(f"channels must give 3 widths, got {tuple(channels)}")
        self.skeleton = skeleton
        self.num_joints = j = skeleton.num_joints
        num_parts = len(PART_NAMES)
        if dropout < 0:
            p_gcn, p_conv4, p_conv2, p_fcn = 0.05, 0.25, 0.1, 0.1
        else:
            p_gcn = p_conv4 = p_conv2 = p_fcn = dropout

        sym_joints = list(zip(skeleton.left, skeleton.right, strict=True))
        joint_a = spatial_partition(j, skeleton.bone_pairs, sym_joints, skeleton.index(center_joint))
        centre = PART_NAMES.index("centre")
        part_a = spatial_partition(
            num_parts,
            [(p, centre) for p in range(num_parts) if p != centre],
            [
                (PART_NAMES.index("left_arm"), PART_NAMES.index("right_arm")),
                (PART_NAMES.index("left_leg"), PART_NAMES.index("right_leg")),
            ],
            centre,
        )
        self.register_buffer("joint_adjacency", joint_a, persistent=False)
        self.register_buffer("part_adjacency", part_a, persistent=False)
        self.register_buffer(
            "joint_part", torch.tensor(body_part_of_joints(skeleton), dtype=torch.long), persistent=False
        )
        self.num_parts = num_parts

        c1, c2, c3 = (int(c) for c in channels)
        k_joint, k_part = joint_a.shape[0], part_a.shape[0]
        self.data_bn = nn.BatchNorm1d(2 * j, eps=data_bn_eps, momentum=bn_momentum)
        self.st_gcn_networks = nn.ModuleList(
            [
                STGCNBlock(2, c1, k_joint, p_gcn, residual=False, bn_momentum=bn_momentum),
                STGCNBlock(c1, c2, k_joint, p_gcn, bn_momentum=bn_momentum),
                STGCNBlock(c2, c3, k_joint, p_gcn, bn_momentum=bn_momentum),
            ]
        )
        self.st_gcn_pool = nn.ModuleList(
            [
                STGCNBlock(c3, part_channels, k_part, p_gcn, bn_momentum=bn_momentum),
                STGCNBlock(part_channels, part_channels, k_part, p_gcn, bn_momentum=bn_momentum),
            ]
        )
        self.conv4 = nn.Sequential(
            nn.Conv1d(part_channels, part_channels, 1),
            nn.BatchNorm1d(part_channels, momentum=bn_momentum),
            nn.ReLU(),
            Dropout(p_conv4),
        )
        self.conv2 = nn.Sequential(
            nn.Conv1d(2 * part_channels, c3, 1),
            nn.BatchNorm1d(c3, momentum=bn_momentum),
            nn.ReLU(),
            Dropout(p_conv2),
        )
        self.non_local = NonLocalBlock(2 * c3, bn_momentum=bn_momentum)
        self.fcn = nn.Sequential(Dropout(p_fcn), nn.Conv1d(2 * c3, 3, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, J, 2) normalized 2D -> (B, J, 3) root-relative 3D with a zero root row."""
        check_pose2d(x, self.num_joints, type(self).__name__)
        n, j = x.shape[0], self.num_joints
        # joint-major flattening (x0, y0, x1, y1, ...) as in the reference's V*C layout
        h = self.data_bn(x.reshape(n, 2 * j)).view(n, j, 2).transpose(1, 2)  # (N, 2, J)
        for block in self.st_gcn_networks:
            h = block(h, self.joint_adjacency)
        joint_feat = h  # (N, c3, J)

        # max over the joints of each part, all parts at once
        index = self.joint_part.expand(n, h.shape[1], j)
        part = h.new_full((n, h.shape[1], self.num_parts), float("-inf"))
        part = part.scatter_reduce(2, index, h, reduce="amax", include_self=False)
        for block in self.st_gcn_pool:
            part = block(part, self.part_adjacency)  # (N, 512, P)

        glob = self.conv4(part.amax(dim=2, keepdim=True))  # (N, 512, 1)
        part = self.conv2(torch.cat([glob.expand(-1, -1, self.num_parts), part], dim=1))  # (N, c3, P)
        up = part[:, :, self.joint_part]  # each joint gets its part's feature, (N, c3, J)

        h = self.non_local(torch.cat([joint_feat, up], dim=1))
        y = self.fcn(h).transpose(1, 2)  # (N, J, 3)
        return subtract_root(y)
