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


@pytest.fixture
def cli_env(tmp_path, monkeypatch):
    """Run ``poseshift.cli.main`` in this process as from a fresh shell in ``tmp_path``.

    No W&B, a private benchmark cache, no run folder inherited from another test, and the Ctrl-C
    handler restored (Lightning ignores SIGINT after an interrupt).
    """
    import signal
    import sys

    from poseshift.runs import RUN_DIR_ENV, RUN_OWNER_ENV

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["poseshift"])
    monkeypatch.setenv("WANDB_MODE", "disabled")
    monkeypatch.setenv("POSESHIFT_CACHE", str(tmp_path / "cache"))
    for name in (RUN_DIR_ENV, RUN_OWNER_ENV, "POSESHIFT_DEBUG"):  # main() sets some: undo them after
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    handler = signal.getsignal(signal.SIGINT)
    yield tmp_path
    signal.signal(signal.SIGINT, handler)
