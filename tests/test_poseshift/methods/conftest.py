"""Shared settings of the method tests."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _run_in_tmp(tmp_path, monkeypatch):
    # results tables, checkpoints and run folders land in the working folder by default
    monkeypatch.chdir(tmp_path)
