"""Logging: Weights & Biases that never blocks (offline unless logged in), histograms and figures."""

from __future__ import annotations

import netrc
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from pytorch_lightning.loggers import Logger
from pytorch_lightning.loggers import WandbLogger as _LightningWandbLogger


def wandb_logged_in() -> bool:
    """True when an API key is available (``WANDB_API_KEY`` or a ``wandb login`` netrc entry)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    path = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    try:
        hosts = netrc.netrc(path).hosts
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False
    return any("wandb" in host for host in hosts)


class WandbLogger(_LightningWandbLogger):
    """Lightning's WandbLogger with ``offline`` decided at run time.

    Args:
        offline: ``None`` (default) logs online only if the user is logged in to W&B,
            otherwise writes an offline run that ``wandb sync`` can upload later.
            ``WANDB_MODE`` in the environment always wins (e.g. ``disabled`` in tests).
        **kwargs: passed to :class:`pytorch_lightning.loggers.WandbLogger`.
    """

    def __init__(
        self, project: str = "poseshift", save_dir: str = "runs", offline: bool | None = None, **kwargs: Any
    ) -> None:
        if offline is None:
            offline = not wandb_logged_in()
        Path(save_dir).mkdir(parents=True, exist_ok=True)
        super().__init__(project=project, save_dir=save_dir, offline=offline, **kwargs)


def log_histograms(loggers: Sequence[Logger], values: Mapping[str, torch.Tensor], step: int) -> None:
    """Log each tensor of ``values`` as a histogram where the logger can (TensorBoard, W&B)."""
    for logger in loggers:
        exp = getattr(logger, "experiment", None)
        if hasattr(exp, "add_histogram"):  # TensorBoard
            for k, v in values.items():
                exp.add_histogram(k, v, step)
        elif isinstance(logger, _LightningWandbLogger):
            import wandb

            logger.log_metrics({k: wandb.Histogram(v.cpu().numpy()) for k, v in values.items()}, step=step)


def log_figure(loggers: Sequence[Logger], tag: str, figure: Any, step: int) -> None:
    """Log a matplotlib figure where the logger can (TensorBoard, W&B), then close it."""
    for logger in loggers:
        exp = getattr(logger, "experiment", None)
        if hasattr(exp, "add_figure"):
            exp.add_figure(tag, figure, step)
        elif isinstance(logger, _LightningWandbLogger):
            import wandb

            logger.experiment.log({tag: wandb.Image(figure)}, step=step)
    import matplotlib.pyplot as plt

    plt.close(figure)
