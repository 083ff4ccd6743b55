"""ResumableDataLoader: a pass checkpointed mid-way resumes with exactly the batches left."""

from __future__ import annotations

import pytest
import torch
from helpers import SyntheticDataModule, synthetic_set

from data_modules.base import DomainSets
from data_modules.resumable import ResumableDataLoader


def frames(batches) -> list[list[int]]:
    return [b["frame"].tolist() if isinstance(b, dict) else b.tolist() for b in batches]


def test_a_loaded_state_replays_the_pass_from_its_first_unserved_batch():
    loader = ResumableDataLoader(
        torch.arange(20), batch_size=4, shuffle=True, generator=torch.Generator().manual_seed(0)
    )
    first = list(loader)
    it = iter(loader)
    head = [next(it), next(it)]
    state = loader.state_dict()
    rest = list(it)
    assert state["served"] == 2 and frames(head + rest) != frames(first)  # a new pass, a new order
    other = ResumableDataLoader(
        torch.arange(20), batch_size=4, shuffle=True, generator=torch.Generator().manual_seed(9)
    )
    other.load_state_dict(state)
    assert frames(list(other)) == frames(rest)
    # the pass after the resumed one is the one the uninterrupted loader takes next
    assert frames(list(other)) == frames(list(loader))


@pytest.mark.slow
def test_persistent_workers_resume_the_same_order():
    # with persistent workers only the first pass draws worker seeds from the loader's generator:
    # the permutation must come from the sampler's own generator to be replayable
    def make(seed: int) -> ResumableDataLoader:
        sampler = torch.utils.data.RandomSampler(range(24), generator=torch.Generator().manual_seed(seed))
        return ResumableDataLoader(
            torch.arange(24),
            batch_size=4,
            sampler=sampler,
            num_workers=1,
            persistent_workers=True,
            generator=torch.Generator().manual_seed(seed + 1),
        )

    loader = make(0)
    list(loader)  # the first pass; the second reuses the worker
    it = iter(loader)
    next(it), next(it)
    state = loader.state_dict()
    rest = frames(list(it))
    other = make(5)
    other.load_state_dict(state)
    assert frames(list(other)) == rest


def test_a_plain_generator_is_required():
    with pytest.raises(ValueError, match="generator"):
        ResumableDataLoader(torch.arange(8), batch_size=2, shuffle=True)


class TargetData(SyntheticDataModule):
    def build_sets(self) -> DomainSets:
        sets = super().build_sets()
        sets.target_train = {"wild": synthetic_set(40, 9, "wild").unlabeled()}
        return sets


def test_the_data_modules_training_loaders_are_resumable():
    torch.manual_seed(3)
    dm = TargetData(num_train=96, batch_size=16, train_target="wild")
    combined = dm.train_dataloader()
    loaders = combined.flattened
    assert all(isinstance(loader, ResumableDataLoader) for loader in loaders)
    iters = [iter(loader) for loader in loaders]
    for it in iters:
        next(it), next(it)
    states = [loader.state_dict() for loader in loaders]
    want = [[b["frame"].tolist() for b in it] for it in iters]
    torch.manual_seed(3)
    fresh = TargetData(num_train=96, batch_size=16, train_target="wild").train_dataloader().flattened
    for loader, state in zip(fresh, states, strict=True):
        loader.load_state_dict(state)
    assert [[b["frame"].tolist() for b in loader] for loader in fresh] == want


def test_epoch_sampler_is_a_function_of_seed_and_epoch_and_draws_each_pass_at_once():
    from data_modules.resumable import EpochRandomSampler

    sampler = EpochRandomSampler(range(10), seed=3, num_samples=25)  # more than one permutation
    sampler.set_epoch(2)
    first = list(sampler)
    assert len(first) == 25 and set(first) == set(range(10))
    sampler.set_epoch(0)
    sampler.set_epoch(2)
    assert list(sampler) == first  # no state beyond (seed, epoch)
    sampler.set_epoch(1)
    assert list(sampler) != first
    sampler.set_epoch(2)
    started = iter(sampler)
    sampler.set_epoch(5)  # a reseed during a pass (a resumed fit) leaves that pass alone
    assert list(started) == first
    assert list(EpochRandomSampler(range(10), seed=4)) != list(EpochRandomSampler(range(10), seed=3))
