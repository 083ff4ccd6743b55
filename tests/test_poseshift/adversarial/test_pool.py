"""The fake pool: fill, swap half, state in checkpoints, no waiting on the device."""

from __future__ import annotations

import torch

from poseshift.adversarial import FakePool


def test_fake_pool_fills_then_swaps_half_and_keeps_state():
    torch.manual_seed(0)
    pool = FakePool(8, (2,))
    first = torch.arange(12.0).view(6, 2)
    assert torch.equal(pool(first), first) and int(pool.count) == 6
    second = 100 + torch.arange(8.0).view(4, 2)
    out = pool(second)
    assert int(pool.count) == 8
    assert torch.equal(out[:2], second[:2])  # stored while filling, returned as is
    big = 1000 + torch.arange(4000.0).view(2000, 2)
    out = pool(big)
    returned_new = (out == big).all(-1).float().mean()
    assert 0.4 < returned_new < 0.6  # a fair coin per sample
    clone = FakePool(8, (2,))
    clone.load_state_dict(pool.state_dict())
    assert torch.equal(clone.items, pool.items) and int(clone.count) == 8


def test_pool_fill_level_survives_a_state_dict_round_trip_without_device_reads():
    pool = FakePool(6, (2,))
    pool(torch.ones(4, 2))
    clone = FakePool(6, (2,))
    clone.load_state_dict(pool.state_dict())
    assert clone._count == 4  # the host-side mirror of the fill level
    out = clone(torch.full((3, 2), 7.0))
    assert int(clone.count) == 6 and clone._count == 6
    assert torch.equal(out[:2], torch.full((2, 2), 7.0))  # the two that still fit are stored as is
