"""Callbacks: the results table printed after testing and the npz writer for ``predict``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import BasePredictionWriter

METRIC_COLUMNS = (
    ("mpjpe", "MPJPE (mm)"),
    ("pa_mpjpe", "PA-MPJPE (mm)"),
    ("pck", "PCK (%)"),
    ("auc", "AUC (%)"),
)


def collect_results(metrics: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Group ``test/<set>/<metric>`` values into {set: {metric: value}}."""
    table: dict[str, dict[str, float]] = {}
    for key, value in metrics.items():
        parts = key.split("/")
        if len(parts) == 3 and parts[0] == "test":
            table.setdefault(parts[1], {})[parts[2]] = float(value)
    return table


# columns shown only when some test set reports them (``Evaluation.depth_error``)
OPTIONAL_COLUMNS = (("z_error", "z error (mm)"),)


def format_results(table: dict[str, dict[str, float]]) -> str:
    """Plain-text (Markdown) table of test results, one row per test set."""
    columns = METRIC_COLUMNS + tuple(
        c for c in OPTIONAL_COLUMNS if any(c[0] in row for row in table.values())
    )
    header = "| test set | " + " | ".join(title for _, title in columns) + " |"
    lines = [header, "|---" * (len(columns) + 1) + "|"]
    for name, row in table.items():
        cells = [f"{row[k]:.1f}" if k in row else "-" for k, _ in columns]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


class ResultsTable(pl.Callback):
    """After ``test``, print the per-test-set metrics and save them as JSON and Markdown."""

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # log_dir is a collective call under DDP: every rank must ask for it
        out_dir = Path(trainer.log_dir or trainer.default_root_dir)
        if not trainer.is_global_zero:
            return
        table = collect_results(trainer.callback_metrics)
        if not table:
            return
        text = format_results(table)
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "results.json").write_text(json.dumps(table, indent=2))
        (out_dir / "results.md").write_text(text + "\n")
        print(f"\nTest results ({out_dir / 'results.md'}):\n{text}\n", flush=True)


class NpzPredictionWriter(BasePredictionWriter):
    """Write the lifted 3D poses of ``predict`` to one npz file (key ``pose3d``, metres).

    Args:
        output_path: npz file to write; parent folders are created.
    """

    def __init__(self, output_path: str = "predictions.npz") -> None:
        super().__init__(write_interval="epoch")
        self.output_path = Path(output_path)

    def write_on_epoch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, predictions: Any, batch_indices: Any
    ) -> None:
        if trainer.world_size > 1:
            raise RuntimeError("predict writes one npz file; run it on a single device (--trainer.devices 1)")
        # one list per dataloader when there are several
        if predictions and isinstance(predictions[0], list):
            predictions = [p for loader in predictions for p in loader]
        poses = torch.cat(predictions).cpu().numpy().astype(np.float32)
        self.output_path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(self.output_path, pose3d=poses)
        print(f"wrote {len(poses)} poses to {self.output_path}", flush=True)
