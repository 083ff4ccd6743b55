"""A training DataLoader that a mid-epoch checkpoint can resume exactly.

Lightning saves ``state_dict()`` of every training loader that has one in its checkpoints and,
when a fit resumes, hands it back through ``load_state_dict()`` before it starts the loader's
next pass. A plain DataLoader has neither: a fit resumed in the middle of an epoch then restarts
that epoch's data from a new permutation (Lightning warns "your dataloader is not resumable").

:class:`ResumableDataLoader` shuffles with its own ``generator`` (never the global RNG). Its state
is that generator's state at the start of the current pass plus the number of batches the pass
has served; a loaded state makes the next pass replay the same permutation and skip the batches
already served, so the resumed run sees exactly the batches the uninterrupted run would have.
Skipping fetches and discards the served batches (indices only for in-memory PoseDatasets).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader


class _CountingIterator(Iterator):
    """Wraps a DataLoader iterator and counts what it has served (into its loader's state)."""

    def __init__(self, loader: ResumableDataLoader, inner: Iterator) -> None:
        self.loader, self.inner = loader, inner

    def __next__(self) -> Any:
        batch = next(self.inner)
        self.loader._served += 1
        return batch

    def __len__(self) -> int:
        return len(self.inner)  # type: ignore[arg-type]

    def _shutdown_workers(self) -> None:
        # Lightning shuts worker processes of DataLoader iterators down through this name
        shutdown = getattr(self.inner, "_shutdown_workers", None)
        if shutdown is not None:
            shutdown()


class ResumableDataLoader(DataLoader):
    """A DataLoader whose pass can be checkpointed mid-way and resumed exactly.

    Construct it like a DataLoader, with a ``generator`` (required: it drives the shuffling and
    is what the state records). Constructor arguments are DataLoader's, so Lightning can rebuild
    it with a distributed sampler.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.generator is None:
            raise ValueError("ResumableDataLoader needs its own generator (generator=torch.Generator())")
        self._pass_start: torch.Tensor = self.generator.get_state()
        self._served = 0
        self._resume: dict[str, Any] | None = None

    def __iter__(self) -> Iterator:
        assert self.generator is not None
        skip = 0
        if self._resume is not None:
            self.generator.set_state(self._resume["pass_start"])
            skip, self._resume = int(self._resume["served"]), None
        # the iterator draws its worker seed and the sampler its permutation from the generator
        self._pass_start, self._served = self.generator.get_state(), 0
        inner = super().__iter__()
        for _ in range(skip):
            next(inner)
        self._served = skip
        return _CountingIterator(self, inner)

    def state_dict(self) -> dict[str, Any]:
        """Where the current pass is: the generator state it started from and the batches served."""
        return {"pass_start": self._pass_start.clone(), "served": self._served}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Make the next pass replay the saved pass from its first unserved batch."""
        self._resume = {"pass_start": state["pass_start"], "served": int(state["served"])}
