"""SimpleBaseline (Martinez et al., ICCV'17) as configured in PoseAug (METHODS.md section 1, ``mlp``)."""

from __future__ import annotations

import torch
from torch import nn

from poseshift.geometry.skeleton import H36M17, Skeleton
from poseshift.models.blocks import ResidualMLP, check_pose2d, kaiming_init_linear, prepend_zero_root


class SimpleBaseline(nn.Module):
    """Residual MLP lifter: (B, J, 2) -> (B, J, 3) root-relative.

    ``Linear(2J->linear_size)+BN+ReLU+Dropout``, ``num_stages`` residual blocks of two
    [Linear, BN, ReLU, Dropout], then ``Linear(linear_size->3(J-1))``. Only the J-1
    non-root joints are predicted; the root row is padded with exact zeros. Every Linear
    weight is ``kaiming_normal_``-initialised as in the reference.

    Args:
        skeleton: joint layout; J = ``skeleton.num_joints``.
        linear_size: hidden width (1024).
        num_stages: residual blocks (PoseAug README ``--stages 2``).
        dropout: dropout rate (PoseAug config default 0.25).
    """

    receptive_field: int = 1

    def __init__(
        self,
        skeleton: Skeleton = H36M17,
        linear_size: int = 1024,
        num_stages: int = 2,
        dropout: float = 0.25,
    ) -> None:
        super().__init__()
        self.skeleton = skeleton
        self.num_joints = skeleton.num_joints
        self.mlp = ResidualMLP(
            2 * self.num_joints,
            3 * (self.num_joints - 1),
            width=linear_size,
            num_stages=num_stages,
            dropout=dropout,
        )
        kaiming_init_linear(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, J, 2) normalized 2D -> (B, J, 3) root-relative 3D with a zero root row."""
        check_pose2d(x, self.num_joints, type(self).__name__)
        y = self.mlp(x.reshape(x.shape[0], 2 * self.num_joints))
        return prepend_zero_root(y, self.num_joints)
