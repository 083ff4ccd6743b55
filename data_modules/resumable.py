"""A training DataLoader that a mid-epoch checkpoint can resume exactly.

Lightning saves ``state_dict()`` of every training loader that has one in its checkpoints and,
when a fit resumes, hands it back through ``load_state_dict()`` before it starts the loader's
next pass. A plain DataLoader has neither: a fit resumed in the middle of an epoch then restarts
that epoch's data from a new permutation (Lightning warns "your dataloader is not resumable").

:class:`ResumableDataLoader` draws from its own generators only (never the global RNG): the
sampler's (the permutation) and the loader's (worker seeds). Its state is their states at the
start of the current pass plus the number of batches the pass has served; a loaded state makes
the next pass replay the same permutation and skip the batches already served, so the resumed
run sees exactly the batches the uninterrupted run would have. Give the sampler a generator of
its own: with persistent workers the loader's generator is drawn from only on the first pass.
Skipping fetches and discards the served batches. Exact as long as fetching draws no random
numbers of its own (AdaptPose's ``random_stride`` windows do).
"""

from __future__ import annotations

from collections.abc import Iterator, Sized
from typing import Any

import torch
from torch.utils.data import DataLoader, RandomSampler


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


class EpochRandomSampler(RandomSampler):
    """A RandomSampler whose permutation is a function of (seed, epoch) alone.

    Lightning calls ``set_epoch`` on every training sampler before each epoch, so a fit resumed
    from an epoch-end checkpoint (where Lightning restores no loader state) shuffles its next
    epoch exactly as the uninterrupted run did, with no state to carry.

    Args:
        data_source: the dataset (or anything with a length).
        seed: base seed of the permutations.
        num_samples: samples per pass (default: the dataset's length).
    """

    def __init__(self, data_source: Sized, seed: int, num_samples: int | None = None) -> None:
        super().__init__(data_source, num_samples=num_samples, generator=torch.Generator())
        self.seed = seed
        self.set_epoch(0)

    def __iter__(self) -> Iterator[int]:
        # the whole pass is drawn at once: a resumed fit may reseed (set_epoch) after replaying
        # its cut-short pass, which must not change that pass's later samples
        return iter(list(super().__iter__()))

    def set_epoch(self, epoch: int) -> None:
        """Reseed for ``epoch`` (0-based)."""
        assert self.generator is not None
        self.generator.manual_seed((self.seed * 1_000_003 + epoch) % 2**63)


class ResumableDataLoader(DataLoader):
    """A DataLoader whose pass can be checkpointed mid-way and resumed exactly.

    Construct it like a DataLoader, with a ``generator`` (required: it seeds the workers, and
    shuffles unless the sampler has a generator of its own). Constructor arguments are
    DataLoader's, so Lightning can rebuild it with a distributed sampler.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.generator is None:
            raise ValueError("ResumableDataLoader needs its own generator (generator=torch.Generator())")
        self._pass_start = self._states()
        self._served = 0
        self._resume: dict[str, Any] | None = None

    def _generators(self) -> list[torch.Generator]:
        """The sampler's generator (if any) and the loader's, each once."""
        found = [getattr(self.sampler, "generator", None), self.generator]
        unique: list[torch.Generator] = []
        for g in found:
            if isinstance(g, torch.Generator) and all(g is not u for u in unique):
                unique.append(g)
        return unique

    def _states(self) -> list[torch.Tensor]:
        return [g.get_state() for g in self._generators()]

    def __iter__(self) -> Iterator:
        skip = 0
        if self._resume is not None:
            served, resume = int(self._resume["served"]), self._resume
            self._resume = None
            # a pass cut short is replayed from its first unserved batch; after a completed pass
            # (an epoch-end checkpoint of a max_steps run) the next pass is a new epoch, whose
            # permutation EpochRandomSampler.set_epoch has already fixed
            if served < len(self):
                for g, state in zip(self._generators(), resume["pass_start"], strict=True):
                    g.set_state(state)
                skip = served
        # the iterator draws the worker seed and the sampler its permutation from these generators
        self._pass_start, self._served = self._states(), 0
        inner = super().__iter__()
        for _ in range(skip):
            next(inner)
        self._served = skip
        return _CountingIterator(self, inner)

    def state_dict(self) -> dict[str, Any]:
        """Where the current pass is: the generator states it started from and the batches served."""
        return {"pass_start": [s.clone() for s in self._pass_start], "served": self._served}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Make the next pass replay the saved pass from its first unserved batch."""
        self._resume = {"pass_start": list(state["pass_start"]), "served": int(state["served"])}
