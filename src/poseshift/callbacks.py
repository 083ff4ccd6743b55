"""Callbacks: checkpoints for exact resume, the results table printed after testing, and the npz
writer for ``predict``."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
import torch.distributed as dist
from pytorch_lightning.callbacks import BasePredictionWriter, ModelCheckpoint

METRIC_COLUMNS = (
    ("mpjpe", "MPJPE (mm)"),
    ("pa_mpjpe", "PA-MPJPE (mm)"),
    ("pck", "PCK (%)"),
    ("auc", "AUC (%)"),
)


def collect_results(metrics: dict[str, Any], stage: str = "test") -> dict[str, dict[str, float]]:
    """Group ``test/<set>/<metric>`` values into {set: {metric: value}}; for ``stage="val"`` the
    validation metrics ``val/<metric>`` (or ``oracle:<set>/<metric>``) become one row."""
    table: dict[str, dict[str, float]] = {}
    for key, value in metrics.items():
        parts = key.split("/")
        if stage == "test" and len(parts) == 3 and parts[0] == "test":
            table.setdefault(parts[1], {})[parts[2]] = float(value)
        elif stage == "val" and len(parts) == 2 and (parts[0] == "val" or parts[0].startswith("oracle:")):
            table.setdefault(parts[0], {})[parts[1]] = float(value)
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


def keep_previous(path: Path) -> Path | None:
    """Rename an existing ``path`` to ``<stem>.<n><suffix>`` (first free n) so it is never overwritten."""
    if not path.exists():
        return None
    n = 1
    while (old := path.with_name(f"{path.stem}.{n}{path.suffix}")).exists():
        n += 1
    path.rename(old)
    return old


class ResultsTable(pl.Callback):
    """After ``test`` (and ``validate``), print the per-test-set metrics and save them as JSON and Markdown.

    Args:
        out_dir: folder of ``results.json``/``results.md``; ``None`` = the trainer's log folder.
            Results already there are kept as ``results.<n>.json`` (never overwritten).
    """

    def __init__(self, out_dir: str | os.PathLike | None = None) -> None:
        self.out_dir = Path(out_dir) if out_dir is not None else None

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._report(trainer, "test")

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.state.fn == "validate":  # not the validations inside fit
            self._report(trainer, "val")

    def _report(self, trainer: pl.Trainer, stage: str) -> None:
        # log_dir is a collective call under DDP: every rank must ask for it
        out_dir = self.out_dir or Path(trainer.log_dir or trainer.default_root_dir)
        if not trainer.is_global_zero:
            return
        table = collect_results(trainer.callback_metrics, stage)
        if not table:
            return
        text = format_results(table)
        # facts the DataModule says every result must carry (e.g. an evolution's deviations)
        notes = getattr(trainer.datamodule, "result_notes", lambda: [])() if trainer.datamodule else []
        if notes:
            text += "\n\n" + "\n".join(f"Note: {n}" for n in notes)
        out_dir.mkdir(parents=True, exist_ok=True)
        for name in ("results.json", "results.md"):
            keep_previous(out_dir / name)
        (out_dir / "results.json").write_text(
            json.dumps({**table, "notes": notes} if notes else table, indent=2)
        )
        (out_dir / "results.md").write_text(text + "\n")
        title = "Test" if stage == "test" else "Validation"
        print(f"\n{title} results ({out_dir / 'results.md'}):\n{text}\n", flush=True)


# -- checkpoints -----------------------------------------------------------------------------------
def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


class LiftingCheckpoint(ModelCheckpoint):
    """The checkpoints of a fit: the best by ``monitor``, ``last.ckpt`` after every completed epoch,
    ``interrupted.ckpt`` on Ctrl-C, and the random states that make a resume exact.

    ``last.ckpt`` is written at the end of each training epoch, after validation and after the
    method's own epoch-end work (e.g. PoseAug's scheduler steps), atomically (a crash while saving
    leaves the previous one). Resuming from it continues exactly as if the run had not stopped:
    the global random states (each process's, under DDP) are part of the checkpoint
    (:class:`~poseshift.methods.base.LiftingModule` keeps them, :mod:`poseshift.rng`). A
    KeyboardInterrupt (Ctrl-C) additionally saves the interrupted state as ``interrupted.ckpt``
    (mid-epoch, so not an exact resume point); a failure with an error saves nothing.

    Args:
        monitor: metric selecting the best checkpoint (lower is better).
        dirpath: folder of the checkpoints.
    """

    def __init__(self, monitor: str = "val/mpjpe", dirpath: str | os.PathLike | None = None) -> None:
        super().__init__(
            dirpath=dirpath,
            monitor=monitor,
            mode="min",
            save_top_k=1,
            save_last=False,
            filename="best-{epoch:03d}",
            auto_insert_metric_name=False,
        )

    # -- last completed epoch --------------------------------------------------------------------
    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)  # the best checkpoint first: last.ckpt records it
        if trainer.fast_dev_run or trainer.sanity_checking:
            return
        self._save_atomically(trainer, "last.ckpt")

    def _save_atomically(self, trainer: pl.Trainer, name: str) -> Path:
        assert self.dirpath is not None
        path = Path(self.dirpath) / name
        tmp = path.with_name(f".{name}.tmp")
        trainer.save_checkpoint(tmp, weights_only=False)  # collective under DDP; rank 0 writes
        if trainer.is_global_zero:
            os.replace(tmp, path)
        self.last_model_path = str(path) if name == "last.ckpt" else self.last_model_path
        return path

    # -- Ctrl-C ----------------------------------------------------------------------------------
    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        if not isinstance(exception, KeyboardInterrupt) or self.dirpath is None:
            return  # a run that failed with an error keeps its checkpoints of completed epochs only
        saved = None
        if not _distributed():  # other processes are not at a common point: no collective save
            saved = self._save_atomically(trainer, "interrupted.ckpt")
        if trainer.is_global_zero:
            last = Path(self.dirpath) / "last.ckpt"
            done = trainer.current_epoch  # epochs completed before the interrupted one
            resume = (
                f"{last} holds the last completed epoch ({done - 1}); `--ckpt_path last` resumes "
                "from it exactly"
                if last.is_file()
                else "no epoch was completed, so there is nothing to resume"
            )
            partial = f"; the interrupted state is in {saved}" if saved is not None else ""
            print(f"\ninterrupted in epoch {done}: {resume}{partial}", flush=True)


class NpzPredictionWriter(BasePredictionWriter):
    """Write the lifted 3D poses of ``predict`` to one npz file (key ``pose3d``, metres).

    When the batches carry frame numbers (``frame``), they are saved too, one per pose: frames
    without a person are not lifted, so rows and video frames can differ.

    Args:
        output_path: npz file to write; parent folders are created.
    """

    def __init__(self, output_path: str = "predictions.npz") -> None:
        super().__init__(write_interval="epoch")
        self.output_path = Path(output_path)
        self._frames: list[torch.Tensor] = []

    def on_predict_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._frames = []

    def on_predict_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if isinstance(batch, dict) and "frame" in batch:
            self._frames.append(batch["frame"].detach().cpu())

    def write_on_epoch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, predictions: Any, batch_indices: Any
    ) -> None:
        if trainer.world_size > 1:
            raise RuntimeError("predict writes one npz file; run it on a single device (--trainer.devices 1)")
        # one list per dataloader when there are several
        if predictions and isinstance(predictions[0], list):
            predictions = [p for loader in predictions for p in loader]
        if not predictions:
            raise RuntimeError("predict produced no poses (the input is empty); nothing was written")
        poses = torch.cat(predictions).cpu().numpy().astype(np.float32)
        extra = {}
        if self._frames and sum(len(f) for f in self._frames) == len(poses):
            extra["frame"] = torch.cat(self._frames).numpy()
        self.output_path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(self.output_path, pose3d=poses, **extra)
        print(f"wrote {len(poses)} poses to {self.output_path}", flush=True)
