"""A quiet CPU Trainer for scripts, benchmarks and tests that drive a method directly."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl


def quiet_trainer(**overrides: Any) -> pl.Trainer:
    """A Trainer on one CPU device with no logger, progress bar, model summary or checkpoints.

    Any Trainer argument can be overridden (``quiet_trainer(max_epochs=2, logger=csv)``).
    """
    options: dict[str, Any] = {
        "accelerator": "cpu",
        "devices": 1,
        "logger": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "enable_checkpointing": False,
    }
    options.update(overrides)
    return pl.Trainer(**options)
