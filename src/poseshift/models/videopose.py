"""VideoPose3D (Pavllo et al., CVPR'19) in its strided "optimized" form, single-frame or temporal.

PoseAug's 1-frame posenet is ``filter_widths=(1, 1, 1, 1, 1)`` (4 residual blocks);
AdaptPose's temporal one is ``(3, 3, 3)`` (27 frames). METHODS.md section 1.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from poseshift.geometry.skeleton import H36M17, Skeleton
from poseshift.models.blocks import Dropout, prepend_zero_root


class VideoPose3D(nn.Module):
    """Temporal-convolution lifter: (B, J, 2) or (B, T, J, 2) -> (B, J, 3) root-relative.

    Expand ``Conv1d(2J->channels, k=fw[0], stride=fw[0], no bias)+BN+ReLU+Dropout``, then
    one residual block per further filter width: ``conv(k=fw, stride=fw) -> BN -> ReLU ->
    Drop -> conv 1x1 -> BN -> ReLU -> Drop`` plus the input sliced at the centre of each
    stride window, then ``Conv1d(channels->3(J-1))``. Strided instead of dilated
    convolutions compute only the one output frame a window of ``receptive_field`` frames
    yields (the weights are interchangeable with the dilated form). Only the J-1
    non-root joints are predicted; the root row is padded with exact zeros.

    Input: (B, T, J, 2) with ``T == receptive_field``; returns the pose of the middle frame.
    (B, J, 2) is accepted when ``receptive_field == 1``.

    The forward keeps features as (B, T, C) and runs every strided convolution (kernel = stride)
    as one matmul over non-overlapping groups of frames, BatchNorm over the B*T rows: the same
    function and the same ``Conv1d``/``BatchNorm1d`` parameters and state, but on CPU the
    matmul runs 4-12x faster than ``conv1d`` with stride 3 (measured at batch 1024, 1024
    channels; README, AdaptPose speed).

    Args:
        skeleton: joint layout; J = ``skeleton.num_joints``.
        filter_widths: odd temporal kernel sizes; ``receptive_field`` is their product.
        channels: convolution width (1024).
        dropout: dropout rate (0.25, hard-coded in PoseAug).
        bn_momentum: BatchNorm momentum (0.1; VideoPose3D's own trainer decays it).
    """

    def __init__(
        self,
        skeleton: Skeleton = H36M17,
        filter_widths: Sequence[int] = (1, 1, 1, 1, 1),
        channels: int = 1024,
        dropout: float = 0.25,
        bn_momentum: float = 0.1,
    ) -> None:
        super().__init__()
        filter_widths = tuple(int(fw) for fw in filter_widths)
        if not filter_widths or any(fw < 1 or fw % 2 == 0 for fw in filter_widths):
            raise ValueError(f"filter_widths must be a non-empty list of odd widths, got {filter_widths}")
        self.skeleton = skeleton
        self.num_joints = skeleton.num_joints
        self.filter_widths = filter_widths
        self.receptive_field: int = math.prod(filter_widths)

        fw0 = filter_widths[0]
        self.expand_conv = nn.Conv1d(2 * self.num_joints, channels, fw0, stride=fw0, bias=False)
        self.expand_bn = nn.BatchNorm1d(channels, momentum=bn_momentum)
        # conv layers before BN carry no bias, as in the reference (BN's shift makes it redundant)
        self.layers_conv = nn.ModuleList()
        self.layers_bn = nn.ModuleList()
        for fw in filter_widths[1:]:
            self.layers_conv.append(nn.Conv1d(channels, channels, fw, stride=fw, bias=False))
            self.layers_bn.append(nn.BatchNorm1d(channels, momentum=bn_momentum))
            self.layers_conv.append(nn.Conv1d(channels, channels, 1, bias=False))
            self.layers_bn.append(nn.BatchNorm1d(channels, momentum=bn_momentum))
        self.shrink = nn.Conv1d(channels, 3 * (self.num_joints - 1), 1)
        self.relu = nn.ReLU()
        self.drop = Dropout(dropout)

    def set_bn_momentum(self, momentum: float) -> None:
        """Set the momentum of every BatchNorm (VideoPose3D decays it during training)."""
        for bn in [self.expand_bn, *self.layers_bn]:
            bn.momentum = momentum

    def _as_sequence(self, x: torch.Tensor) -> torch.Tensor:
        """Validate the input and return it as (B, T, J, 2)."""
        j, rf = self.num_joints, self.receptive_field
        expected = f"(B, {rf}, {j}, 2)" + (f" or (B, {j}, 2)" if rf == 1 else "")
        if x.ndim == 3 and rf == 1 and tuple(x.shape[1:]) == (j, 2):
            return x.unsqueeze(1)
        if x.ndim == 4 and tuple(x.shape[1:]) == (rf, j, 2):
            return x
        raise ValueError(
            f"VideoPose3D with receptive field {rf} expects 2D poses of shape {expected}, "
            f"got {tuple(x.shape)}"
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T=receptive_field, J, 2) or (B, J, 2) -> (B, J, 3) root-relative, zero root row."""
        x = self._as_sequence(x)
        b, t = x.shape[:2]
        h = x.reshape(b, t, 2 * self.num_joints)  # (B, T, C): frames stay rows, channels columns
        h = self.drop(self.relu(_bn(self.expand_bn, _strided(self.expand_conv, h))))
        for i, fw in enumerate(self.filter_widths[1:]):
            # the skip takes the centre frame of every window the strided conv consumes
            res = h[:, fw // 2 :: fw]
            h = self.drop(self.relu(_bn(self.layers_bn[2 * i], _strided(self.layers_conv[2 * i], h))))
            h = res + self.drop(
                self.relu(_bn(self.layers_bn[2 * i + 1], _strided(self.layers_conv[2 * i + 1], h)))
            )
        return prepend_zero_root(_strided(self.shrink, h)[:, 0], self.num_joints)


def _strided(conv: nn.Conv1d, h: torch.Tensor) -> torch.Tensor:
    """A ``Conv1d`` whose stride equals its kernel k, on (B, T, C_in) features: (B, T/k, C_out).

    Each output frame reads k consecutive frames, so the input regroups to (B, T/k, k*C_in) rows
    and the weight (C_out, C_in, k) to a (C_out, k*C_in) matrix: one matmul, the same numbers.
    """
    k = conv.kernel_size[0]
    b, t, c = h.shape
    weight = conv.weight if k == 1 else conv.weight.permute(0, 2, 1)
    return F.linear(h.reshape(b, t // k, k * c), weight.reshape(conv.out_channels, k * c), conv.bias)


def _bn(bn: nn.BatchNorm1d, h: torch.Tensor) -> torch.Tensor:
    """``BatchNorm1d`` over the channels of (B, T, C): statistics over all B*T rows, as over (B, C, T)."""
    return bn(h.reshape(-1, h.shape[-1])).view_as(h)
