"""Suite-wide test settings."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """Test models and batches are tiny: on 2 cores, intra-op threads only add synchronisation
    (up to 30x slower when other processes compete), and the DDP/CLI tests start processes of
    their own."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
