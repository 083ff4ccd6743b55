"""Logging: Weights & Biases that never blocks (offline unless logged in), a CSV logger that a
resumed run continues instead of starting over, histograms and figures."""

from __future__ import annotations

import csv
import netrc
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from pytorch_lightning.loggers import CSVLogger as _LightningCSVLogger
from pytorch_lightning.loggers import Logger
from pytorch_lightning.loggers import WandbLogger as _LightningWandbLogger
from pytorch_lightning.loggers.csv_logs import ExperimentWriter
from pytorch_lightning.loggers.logger import rank_zero_experiment


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
            # WANDB_MODE (e.g. disabled) decides by itself; Lightning's offline=True would replace it
            offline = not os.environ.get("WANDB_MODE") and not wandb_logged_in()
        Path(save_dir).mkdir(parents=True, exist_ok=True)
        super().__init__(project=project, save_dir=save_dir, offline=offline, **kwargs)
        if self._wandb_init.get("anonymous") is None:
            # Lightning always passes anonymous=None, which wandb 0.31 answers with a deprecation
            # warning on every run although nothing was asked for
            self._wandb_init.pop("anonymous", None)


class _AppendingWriter(ExperimentWriter):
    """Lightning's CSV writer, except that an existing ``metrics.csv`` is continued, not deleted."""

    def _check_log_dir_exists(self) -> None:
        if self._fs.isfile(self.metrics_file_path):
            with self._fs.open(self.metrics_file_path, "r", newline="") as f:
                header = next(csv.reader(f), [])
            self.metrics_keys = list(header)


class CSVLogger(_LightningCSVLogger):
    """Lightning's CSVLogger that appends to an existing ``metrics.csv`` (a resumed run continues its
    log; ``poseshift fit --ckpt_path`` first drops the rows of the interrupted epoch).

    Args:
        save_dir: folder of the log (the ``poseshift`` command sets it to the run folder).
        name: sub-folder ``<save_dir>/<name>`` (the command uses none).
        version: sub-folder ``<save_dir>/<name>/<version>`` (the command uses ``csv``).
        prefix: prefix of every metric key, as in Lightning's CSVLogger.
        flush_logs_every_n_steps: rows buffered before writing, as in Lightning's CSVLogger.
    """

    def __init__(
        self,
        save_dir: str = ".",
        name: str | None = "",
        version: int | str | None = "csv",
        prefix: str = "",
        flush_logs_every_n_steps: int = 100,
    ) -> None:
        super().__init__(save_dir, name, version, prefix, flush_logs_every_n_steps)

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _AppendingWriter(log_dir=self.log_dir)
        return self._experiment


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
