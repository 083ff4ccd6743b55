"""Building blocks shared by the lifting backbones, the EvoSkeleton cascade and the generators.

The residual linear block is the unit of Martinez et al.'s SimpleBaseline (and of
EvoSkeleton's ``FCModel``, which differs only in dropout and widths). With
``residual=False`` and a LeakyReLU it is also PoseAug's generator block, so all three
share one definition here.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

ActivationFactory = Callable[[], nn.Module]


class Dropout(nn.Dropout):
    """Inverted dropout whose mask comes from random bytes: the same distribution, 4x cheaper on CPU.

    torch's dropout draws one Bernoulli sample per element, which on CPU costs about a third of
    a SimpleBaseline training step. Here one 64-bit draw gives eight bytes, and an element is
    dropped when its byte is below ``256 p``: exactly probability ``p`` whenever ``256 p`` is an
    integer (the references' 0.25 and 0.5). Other rates, and ``inplace``, use torch's dropout.
    A speed-up, not a behaviour change: the masks are independent with the same probability.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        level = self.p * 256
        if not self.training or self.p == 0 or self.inplace or level != int(level):
            return super().forward(x)
        n = x.numel()
        bits = torch.empty((n + 7) // 8, dtype=torch.int64, device=x.device).random_(-(2**63), None)
        keep = bits.view(torch.uint8)[:n].view(x.shape) >= int(level)
        return x * keep.to(x.dtype).mul_(1.0 / (1.0 - self.p))


def linear_bn_act(
    in_features: int,
    out_features: int,
    dropout: float = 0.0,
    activation: ActivationFactory = nn.ReLU,
    batch_norm: bool = True,
) -> nn.Sequential:
    """``Linear -> [BN] -> activation -> [Dropout]`` on (B, F) features."""
    layers: list[nn.Module] = [nn.Linear(in_features, out_features)]
    if batch_norm:
        layers.append(nn.BatchNorm1d(out_features))
    layers.append(activation())
    # Dropout(0) is an identity but still shows up in printouts and state; leave it out.
    if dropout > 0:
        layers.append(Dropout(dropout))
    return nn.Sequential(*layers)


class ResidualLinearBlock(nn.Module):
    """``num_layers`` x [Linear, BN, activation, Dropout] at constant width, plus an identity skip.

    Args:
        width: feature size in and out.
        dropout: dropout rate after each activation (SimpleBaseline 0.25 in PoseAug, 0.5 in
            Martinez and EvoSkeleton).
        residual: add the input to the output; ``False`` gives PoseAug's generator block,
            which declares a skip-free ``Linear`` pair.
        activation: factory for the non-linearity (``nn.ReLU``; ``nn.LeakyReLU`` for generators).
        batch_norm: insert BatchNorm1d after each Linear.
        num_layers: Linear layers per block (2 in every reference).
    """

    def __init__(
        self,
        width: int,
        dropout: float = 0.5,
        residual: bool = True,
        activation: ActivationFactory = nn.ReLU,
        batch_norm: bool = True,
        num_layers: int = 2,
    ) -> None:
        super().__init__()
        self.residual = residual
        self.layers = nn.Sequential(
            *(linear_bn_act(width, width, dropout, activation, batch_norm) for _ in range(num_layers))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.layers(x)
        return x + y if self.residual else y


class ResidualMLP(nn.Module):
    """Martinez-style MLP: ``Linear(in->width)+BN+act+Drop``, ``num_stages`` residual blocks, head.

    ``trunk`` maps (B, in_features) to (B, width); ``head`` is a plain ``Linear(width->out)``
    (absent when ``out_features`` is ``None``, for callers that attach several heads to
    one trunk). Weights keep PyTorch's default init; call :func:`kaiming_init_linear`
    to match the references, which re-initialise every Linear.

    Args:
        in_features: input size (2J for a 2D pose).
        out_features: output size, or ``None`` for a trunk without head.
        width: hidden size (1024 in SimpleBaseline and EvoSkeleton, 256 in PoseAug's generator).
        num_stages: number of :class:`ResidualLinearBlock`.
        dropout: dropout rate, passed to the input layer and every block.
        residual: identity skip around every block.
        activation: non-linearity factory of the input layer and every block.
        batch_norm: BatchNorm1d after every hidden Linear.
        block_layers: Linear layers per block (2 in the references; PoseDA's "3-layer" generator
            MLPs use one block of 1).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int | None,
        width: int = 1024,
        num_stages: int = 2,
        dropout: float = 0.5,
        residual: bool = True,
        activation: ActivationFactory = nn.ReLU,
        batch_norm: bool = True,
        block_layers: int = 2,
    ) -> None:
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.width = width
        self.trunk = nn.Sequential(
            linear_bn_act(in_features, width, dropout, activation, batch_norm),
            *(
                ResidualLinearBlock(width, dropout, residual, activation, batch_norm, block_layers)
                for _ in range(num_stages)
            ),
        )
        self.head = nn.Linear(width, out_features) if out_features is not None else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in_features) -> (B, out_features), or (B, width) without a head."""
        y = self.trunk(x)
        return self.head(y) if self.head is not None else y


def kaiming_init_linear(module: nn.Module) -> None:
    """``kaiming_normal_`` on the weight of every ``nn.Linear`` inside ``module``; biases untouched.

    This is what PoseAug and SimpleBaseline apply to freshly built posenets, generators
    and discriminators (METHODS.md 0.4).
    """
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.kaiming_normal_(m.weight)


def check_pose2d(x: torch.Tensor, num_joints: int, model: str) -> None:
    """Raise ValueError unless ``x`` is a batch of single-frame 2D poses (B, J, 2)."""
    if x.ndim != 3 or tuple(x.shape[1:]) != (num_joints, 2):
        raise ValueError(f"{model} expects 2D poses of shape (B, {num_joints}, 2), got {tuple(x.shape)}")


def prepend_zero_root(y: torch.Tensor, num_joints: int) -> torch.Tensor:
    """(B, 3(J-1)) non-root coordinates -> (B, J, 3) with an exactly-zero root row (joint 0)."""
    b = y.shape[0]
    return torch.cat([y.new_zeros(b, 1, 3), y.reshape(b, num_joints - 1, 3)], dim=1)


def subtract_root(y: torch.Tensor) -> torch.Tensor:
    """Make (B, J, 3) poses relative to joint 0, whose row then becomes exactly zero."""
    return y - y[:, :1]
