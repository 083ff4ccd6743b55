"""The history of generated samples that the discriminators of PoseAug and AdaptPose train on."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn


class FakePool(nn.Module):
    """Shrivastava et al.'s history of fakes (PoseAug's ``Sample_from_Pool``), vectorized.

    Until ``capacity`` samples are stored, incoming samples are stored and returned. Once full,
    each incoming sample is returned with p = 0.5, else a random stored sample is returned and
    replaced by it. The state is two buffers, so it is in ``state_dict`` and checkpoints.
    Vectorization differs from the per-sample loop only when two samples of one batch pick
    the same slot: both then return that slot's old content and the later one is stored.

    The fill level is mirrored in a Python int, so a step never waits for the device.

    Args:
        capacity: samples kept (the references use 4096).
        shape: shape of one sample, e.g. ``(17, 3)``.
    """

    def __init__(self, capacity: int, shape: Sequence[int]) -> None:
        super().__init__()
        self.capacity = capacity
        self.register_buffer("items", torch.zeros(capacity, *shape))
        self.register_buffer("count", torch.zeros((), dtype=torch.long))
        self._count = 0

    def _load_from_state_dict(
        self, state_dict: dict[str, Any], prefix: str, *args: Any, **kwargs: Any
    ) -> None:
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        self._count = int(self.count)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Store and/or swap the (detached) samples ``x`` (N, *shape); returns what D should see."""
        x = x.detach()
        n, start = x.shape[0], self._count
        k = min(n, max(self.capacity - start, 0))
        if k:
            self.items[start : start + k] = x[:k]
            self._count = start + k
            self.count.fill_(self._count)
        if k == n:
            return x
        rest = x[k:]
        swap = torch.rand(len(rest), device=x.device) < 0.5
        slots = torch.randint(self.capacity, (len(rest),), device=x.device)
        old = self.items[slots]
        out = torch.where(swap.view(-1, *([1] * (x.dim() - 1))), old, rest)
        # samples that are not swapped write to a scratch row past the end, so the update needs
        # no boolean indexing (which would wait for the device); the order of writes is kept
        target = torch.where(swap, slots, torch.full_like(slots, self.capacity))
        grown = torch.cat([self.items, self.items.new_zeros(1, *self.items.shape[1:])])
        grown[target] = rest
        self.items.copy_(grown[: self.capacity])
        return torch.cat([x[:k], out])


__all__ = ["FakePool"]
