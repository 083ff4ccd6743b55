"""SemGCN (Zhao et al., CVPR'19) without non-local layers, as in PoseAug (METHODS.md section 1, ``gcn``)."""

from __future__ import annotations

import math

import torch
from torch import nn

from poseshift.geometry.skeleton import H36M17, Skeleton
from poseshift.models.blocks import Dropout, check_pose2d, subtract_root


def skeleton_adjacency_mask(skeleton: Skeleton) -> torch.Tensor:
    """(J, J) bool: bones in both directions plus self-loops."""
    j = skeleton.num_joints
    mask = torch.eye(j, dtype=torch.bool)
    for parent, child in skeleton.bone_pairs:
        mask[parent, child] = mask[child, parent] = True
    return mask


class SemGraphConv(nn.Module):
    """Semantic graph convolution on (B, J, in) node features -> (B, J, out).

    Each node mixes its own feature through ``W[0]`` and its neighbours' through ``W[1]``,
    weighted by a row-wise softmax of one learnable logit per edge of ``adjacency``
    (self-loops included, logits initialised to 1, so every row starts uniform).

    Args:
        in_features, out_features: feature sizes.
        adjacency: (J, J) bool mask of allowed edges; must include the diagonal.
        bias: add a learned per-channel bias.
    """

    def __init__(
        self, in_features: int, out_features: int, adjacency: torch.Tensor, bias: bool = True
    ) -> None:
        super().__init__()
        adjacency = adjacency.bool()
        if not bool(adjacency.diagonal().all()):
            raise ValueError("SemGraphConv adjacency must contain every self-loop")
        self.in_features = in_features
        self.out_features = out_features
        self.W = nn.Parameter(torch.empty(2, in_features, out_features))
        nn.init.xavier_uniform_(self.W, gain=1.414)
        rows, cols = adjacency.nonzero(as_tuple=True)
        self.register_buffer("edge_rows", rows, persistent=False)
        self.register_buffer("edge_cols", cols, persistent=False)
        self.register_buffer("eye", torch.eye(adjacency.shape[0], dtype=torch.bool), persistent=False)
        self.e = nn.Parameter(torch.ones(1, rows.numel()))
        if bias:
            bound = 1.0 / math.sqrt(out_features)
            self.bias = nn.Parameter(torch.empty(out_features).uniform_(-bound, bound))
        else:
            self.register_parameter("bias", None)

    def attention(self) -> torch.Tensor:
        """(J, J) row-stochastic edge weights: softmax of the edge logits over each row's edges."""
        j = self.eye.shape[0]
        logits = self.e.new_full((j, j), float("-inf"))
        logits = logits.index_put((self.edge_rows, self.edge_cols), self.e[0])
        return torch.softmax(logits, dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h_self = x @ self.W[0]
        h_neigh = x @ self.W[1]
        att = self.attention()
        out = att.diagonal().unsqueeze(-1) * h_self + att.masked_fill(self.eye, 0.0) @ h_neigh
        return out + self.bias if self.bias is not None else out

    def extra_repr(self) -> str:
        return f"{self.in_features} -> {self.out_features}, bias={self.bias is not None}"


class _GraphConvBNReLU(nn.Module):
    """SemGraphConv -> BN over channels -> ReLU -> optional Dropout."""

    def __init__(self, in_features: int, out_features: int, adjacency: torch.Tensor, dropout: float) -> None:
        super().__init__()
        self.gconv = SemGraphConv(in_features, out_features, adjacency)
        self.bn = nn.BatchNorm1d(out_features)
        self.relu = nn.ReLU()
        self.dropout = Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.bn(self.gconv(x).transpose(1, 2)).transpose(1, 2)
        return self.dropout(self.relu(h))


class _ResGraphConv(nn.Module):
    """Two graph-conv layers at constant width plus an identity skip."""

    def __init__(self, hid_dim: int, adjacency: torch.Tensor, dropout: float) -> None:
        super().__init__()
        self.gconv1 = _GraphConvBNReLU(hid_dim, hid_dim, adjacency, dropout)
        self.gconv2 = _GraphConvBNReLU(hid_dim, hid_dim, adjacency, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.gconv2(self.gconv1(x))


class SemGCN(nn.Module):
    """Semantic GCN lifter: (B, J, 2) -> (B, J, 3) root-relative.

    Input graph conv 2->hid_dim, ``num_layers`` residual blocks of 2x [SemGraphConv, BN,
    ReLU] plus skip, output SemGraphConv(hid_dim->3) over the skeleton graph (bones plus
    self-loops). It predicts all J joints (as the reference); the predicted root is then
    subtracted, so the root row is exactly zero. Because of that subtraction the output
    layer has no bias: a bias shared by all joints would cancel and never get a gradient.

    Args:
        skeleton: joint layout; the graph comes from ``skeleton.parents``.
        hid_dim: hidden feature width (128).
        num_layers: residual blocks (PoseAug ``--stages 4``).
        dropout: dropout after each hidden ReLU (PoseAug README uses 0).
    """

    receptive_field: int = 1

    def __init__(
        self,
        skeleton: Skeleton = H36M17,
        hid_dim: int = 128,
        num_layers: int = 4,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.skeleton = skeleton
        self.num_joints = skeleton.num_joints
        adjacency = skeleton_adjacency_mask(skeleton)
        self.gconv_input = _GraphConvBNReLU(2, hid_dim, adjacency, dropout)
        self.gconv_layers = nn.Sequential(
            *(_ResGraphConv(hid_dim, adjacency, dropout) for _ in range(num_layers))
        )
        self.gconv_output = SemGraphConv(hid_dim, 3, adjacency, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, J, 2) normalized 2D -> (B, J, 3) root-relative 3D with a zero root row."""
        check_pose2d(x, self.num_joints, type(self).__name__)
        h = self.gconv_layers(self.gconv_input(x))
        return subtract_root(self.gconv_output(h))
