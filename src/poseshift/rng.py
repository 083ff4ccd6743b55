"""The global random states a training epoch draws from, for checkpoints that resume exactly.

One checkpoint holds one state per process (``checkpoint["rng_per_rank"]``). A resumed fit
restores its process's state just before its first training batch, not when the checkpoint is
loaded: setting up the resumed fit (loaders, sanity checks) may draw random numbers that the
uninterrupted run never drew, and the suite's training loaders shuffle with generators of their
own (``data_modules.resumable``), so nothing the uninterrupted run drew is skipped either.
"""

from __future__ import annotations

import random
import warnings
from typing import Any

import numpy as np
import torch
import torch.distributed as dist


def capture_rng() -> dict[str, Any]:
    """Every global random state of this process (torch, CUDA, NumPy, Python).

    Stored as tensors and plain values so the checkpoint still loads with ``weights_only=True``.
    """
    # the legacy global NumPy state: what np.random.* and seed_everything use (not a Generator's)
    kind, keys, pos, has_gauss, gauss = np.random.get_state()  # noqa: NPY002
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(gauss)],
        "python": list(random.getstate()[1]),
        "python_gauss": random.getstate()[2],
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    """Inverse of :func:`capture_rng`."""
    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))  # noqa: NPY002
    random.setstate((3, tuple(state["python"]), state["python_gauss"]))
    cuda = state.get("cuda")
    if cuda is not None and torch.cuda.is_available():
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)
        else:  # another machine: the CPU streams are restored, the GPU ones cannot be
            warnings.warn(
                f"the checkpoint holds the random states of {len(cuda)} GPUs, this machine has "
                f"{torch.cuda.device_count()}: GPU random numbers will differ from the interrupted run",
                UserWarning,
                stacklevel=2,
            )


def _world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def capture_rng_per_rank() -> list[dict[str, Any]]:
    """Every process's :func:`capture_rng`, in rank order (a collective call under DDP)."""
    state = capture_rng()
    rank, world = _world()
    if world == 1:
        return [state]
    gathered: list[Any] = [None] * world
    dist.all_gather_object(gathered, state)
    return gathered


def state_of_this_rank(states: list[dict[str, Any]]) -> dict[str, Any]:
    """This process's entry of :func:`capture_rng_per_rank` (rank 0's when the run had fewer processes)."""
    rank, _ = _world()
    return states[rank] if rank < len(states) else states[0]


__all__ = ["capture_rng", "capture_rng_per_rank", "restore_rng", "state_of_this_rank"]
