"""EvoSkeleton's cascaded lifter: a sum of residual MLPs on z-scored 2D (the TAG-Net geometry stage).

As the reference ``FCModel`` cascade: inputs (all J 2D joints) and outputs (the J-1 non-root
joints, root-relative) are z-scored with training-set statistics; learner t regresses the
residual of the learners before it in that normalized space. How the learners are trained,
stage by stage, is :class:`poseshift.methods.evoskeleton.EvoSkeleton`'s business.
"""

from __future__ import annotations

import torch
from torch import nn

from poseshift.geometry.skeleton import H36M17, Skeleton
from poseshift.models.blocks import ResidualMLP, check_pose2d, prepend_zero_root


class CascadeLifter(nn.Module):
    """Sum of ``num_learners`` residual MLPs on z-scored 2D, output un-normalized to metres.

    Args:
        skeleton: joint layout (J joints in, J-1 non-root joints out).
        num_learners: cascade length T.
        num_blocks: residual blocks R per learner.
        width: hidden width d.
        dropout: dropout rate after every hidden layer.
    """

    receptive_field: int = 1

    def __init__(
        self,
        skeleton: Skeleton = H36M17,
        num_learners: int = 2,
        num_blocks: int = 2,
        width: int = 1024,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        if num_learners < 1:
            raise ValueError(f"num_learners must be >= 1, got {num_learners}")
        self.skeleton = skeleton
        self.num_joints = j = skeleton.num_joints
        self.learners = nn.ModuleList(
            ResidualMLP(2 * j, 3 * (j - 1), width=width, num_stages=num_blocks, dropout=dropout)
            for _ in range(num_learners)
        )
        self.register_buffer("in_mean", torch.zeros(2 * j))
        self.register_buffer("in_std", torch.ones(2 * j))
        self.register_buffer("out_mean", torch.zeros(3 * (j - 1)))
        self.register_buffer("out_std", torch.ones(3 * (j - 1)))
        # how many learners the prediction sums (grows as training proceeds; saved in checkpoints)
        self.register_buffer("active", torch.tensor(num_learners))

    @property
    def num_learners(self) -> int:
        return len(self.learners)

    def set_statistics(self, pose2d: torch.Tensor, pose3d: torch.Tensor) -> None:
        """z-score statistics from training 2D (N, J, 2) and root-relative 3D (N, J, 3)."""
        x = pose2d.reshape(len(pose2d), -1).double()
        y = pose3d[:, 1:].reshape(len(pose3d), -1).double()
        self.in_mean.copy_(x.mean(0))
        self.in_std.copy_(x.std(0).clamp_min(1e-6))
        self.out_mean.copy_(y.mean(0))
        self.out_std.copy_(y.std(0).clamp_min(1e-6))

    def normalize_input(self, pose2d: torch.Tensor) -> torch.Tensor:
        return (pose2d.reshape(len(pose2d), -1) - self.in_mean) / self.in_std

    def normalize_target(self, pose3d: torch.Tensor) -> torch.Tensor:
        return (pose3d[:, 1:].reshape(len(pose3d), -1) - self.out_mean) / self.out_std

    def predict_normalized(self, x: torch.Tensor, learners: int | None = None) -> torch.Tensor:
        """Sum of the first ``learners`` (default: the active ones) outputs, normalized space."""
        k = int(self.active) if learners is None else learners
        out = self.learners[0](x)
        for m in self.learners[1:k]:
            out = out + m(x)
        return out

    def forward(self, pose2d: torch.Tensor, learners: int | None = None) -> torch.Tensor:
        """(B, J, 2) screen-normalized 2D -> (B, J, 3) root-relative metres (zero root row)."""
        check_pose2d(pose2d, self.num_joints, type(self).__name__)
        y = self.predict_normalized(self.normalize_input(pose2d), learners)
        return prepend_zero_root(y * self.out_std + self.out_mean, self.num_joints)


__all__ = ["CascadeLifter"]
