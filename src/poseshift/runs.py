"""Run folders, never overwritten, and the checkpoints a command is pointed at.

Every ``poseshift fit|validate|test|predict`` gets its own folder under the experiment folder
(``trainer.default_root_dir``, e.g. ``runs/baseline-mocap``)::

    runs/baseline-mocap/20261202-105953-fit/
        run.json         command, status, start/end, checkpoint used, W&B run id, outputs
        config.yaml      the configuration as given (a resumed fit adds config.resume-<n>.yaml)
        checkpoints/     best-<epoch>.ckpt, last.ckpt (last completed epoch), interrupted.ckpt
        csv/metrics.csv  CSV log; wandb/ the W&B run (offline unless logged in)
        results.json, results.md   test results; predictions.npz for predict

``--ckpt_path last`` resumes the experiment's latest fit in its own folder; ``last``/``best`` for
``test``/``validate``/``predict`` name that run's checkpoints. Checkpoint files are checked before
Lightning reads them, so a damaged or foreign file gets one clear line.
"""

from __future__ import annotations

import csv
import datetime as dt
import importlib
import inspect
import json
import os
import zipfile
from pathlib import Path
from typing import Any

import torch

from poseshift.errors import UserError

RUN_FILE = "run.json"
RUNS_ROOT = "runs"
# A DDP run started by Lightning re-runs the command in child processes: they must use the folder
# the first process made, which it passes down in the environment with its process id.
RUN_DIR_ENV = "POSESHIFT_RUN_DIR"
RUN_OWNER_ENV = "POSESHIFT_RUN_OWNER"


# -- run folders ----------------------------------------------------------------------------------
def experiment_dir(default_root_dir: str | os.PathLike | None, model_class_path: str | None) -> Path:
    """The experiment folder: ``trainer.default_root_dir``, else ``runs/<model class, lower case>``."""
    if default_root_dir:
        return Path(default_root_dir)
    name = (model_class_path or "model").rsplit(".", 1)[-1].lower()
    return Path(RUNS_ROOT) / name


def _timestamp() -> str:
    return dt.datetime.now().strftime("%Y%m%d-%H%M%S")


def new_run_dir(experiment: Path, subcommand: str) -> Path:
    """Create and return a fresh folder ``<experiment>/<YYYYmmdd-HHMMSS>-<subcommand>[-<n>]``."""
    stamp = _timestamp()
    experiment.mkdir(parents=True, exist_ok=True)
    for n in range(1, 10_000):
        path = experiment / (f"{stamp}-{subcommand}" if n == 1 else f"{stamp}-{subcommand}-{n}")
        try:
            path.mkdir()  # atomic: two runs started in the same second get different names
            return path
        except FileExistsError:
            continue
    raise UserError(f"{experiment}: could not create a new run folder (10,000 runs this second?)")


def inherited_run_dir() -> Path | None:
    """The run folder of the process that launched this one (DDP children), if any."""
    path, owner = os.environ.get(RUN_DIR_ENV), os.environ.get(RUN_OWNER_ENV)
    if path and owner and owner != str(os.getpid()):
        return Path(path)
    return None


def hand_down_run_dir(path: Path) -> None:
    """Let processes started by this one (Lightning's DDP launcher) use the same run folder."""
    os.environ[RUN_DIR_ENV] = str(path)
    os.environ[RUN_OWNER_ENV] = str(os.getpid())


def read_run(run_dir: Path) -> dict[str, Any]:
    """``run.json`` of a run folder ({} when missing or unreadable)."""
    try:
        return json.loads((Path(run_dir) / RUN_FILE).read_text())
    except (OSError, ValueError):
        return {}


def update_run(run_dir: Path, **fields: Any) -> dict[str, Any]:
    """Merge ``fields`` into ``run.json`` (written atomically: a crash never leaves half a file)."""
    record = read_run(run_dir) | fields
    tmp = Path(run_dir) / f".{RUN_FILE}.tmp"
    tmp.write_text(json.dumps(record, indent=1, default=str) + "\n")
    os.replace(tmp, Path(run_dir) / RUN_FILE)
    return record


def now() -> str:
    return dt.datetime.now().isoformat(timespec="seconds")


def fit_runs(experiment: Path) -> list[Path]:
    """The experiment's fit run folders, oldest first (by start time recorded in run.json)."""
    if not experiment.is_dir():
        return []
    runs = []
    for path in experiment.iterdir():
        record = read_run(path) if path.is_dir() else {}
        if record.get("command") == "fit":
            # same-second runs: "<stamp>-fit" before "<stamp>-fit-2" before "<stamp>-fit-10"
            runs.append((str(record.get("started", "")), len(path.name), path.name, path))
    return [p for *_, p in sorted(runs)]


def find_checkpoint(experiment: Path, which: str) -> Path:
    """``last.ckpt`` or the ``best-*.ckpt`` of the experiment's latest fit that has one."""
    for run in reversed(fit_runs(experiment)):
        folder = run / "checkpoints"
        if which == "last":
            found = [folder / "last.ckpt"]
        else:
            found = sorted(folder.glob("best-*.ckpt"), key=os.path.getmtime)
        found = [f for f in found if f.is_file()]
        if found:
            return found[-1]
    runs = "no fit run" if not fit_runs(experiment) else "no fit run with a saved checkpoint"
    raise UserError(
        f"--ckpt_path {which}: {experiment} has {runs}; train first (poseshift fit --config ...) or pass "
        "a checkpoint file"
    )


def run_of_checkpoint(path: Path) -> Path | None:
    """The run folder a checkpoint belongs to (``<run>/checkpoints/x.ckpt``), if it is one."""
    run = Path(path).parent.parent
    return run if Path(path).resolve().parent.name == "checkpoints" and read_run(run) else None


# -- checkpoints ------------------------------------------------------------------------------------
ZIP_MAGIC = b"PK\x03\x04"


def read_checkpoint(path: str | os.PathLike, option: str = "--ckpt_path") -> dict[str, Any]:
    """Load a Lightning checkpoint's contents (tensors memory-mapped) or fail with one clear line.

    Never suggests ``weights_only=False``: a file that needs it is not a poseshift checkpoint.
    """
    p = Path(path)
    where = f"{option} {p}"
    if p.is_dir():
        inside = sorted(p.rglob("*.ckpt"))
        hint = f"e.g. {inside[-1]}" if inside else "this folder holds no .ckpt file"
        raise UserError(f"{where}: is a folder, not a checkpoint file; pass one of its .ckpt files ({hint})")
    if not p.is_file():
        raise UserError(f"{where}: file not found")
    size = p.stat().st_size
    if size == 0:
        raise UserError(
            f"{where}: empty file (0 bytes), probably left by a run killed while saving; use another "
            "checkpoint (e.g. the run's checkpoints/last.ckpt or best-*.ckpt)"
        )
    with p.open("rb") as f:
        head = f.read(4)
    if head != ZIP_MAGIC:
        raise UserError(
            f"{where}: not a PyTorch checkpoint (torch.save writes a zip archive, this file is not one); "
            "pass a .ckpt written by poseshift fit"
        )
    if not zipfile.is_zipfile(p):
        raise UserError(
            f"{where}: truncated ({size:,} bytes, the archive's end is missing): it was not saved or "
            "copied completely; use another checkpoint of that run"
        )
    try:
        ckpt = torch.load(p, map_location="cpu", weights_only=True, mmap=True)
    except Exception as err:  # noqa: BLE001 - every failure here means "not a readable checkpoint"
        if isinstance(err, __import__("pickle").UnpicklingError):
            problem = (
                "holds Python objects other than tensors and plain values, so it is not a checkpoint "
                "poseshift writes; pass a .ckpt written by poseshift fit"
            )
        elif "data.pkl" in str(err) or "archive" in str(err):
            problem = (
                "is a zip archive but not a PyTorch checkpoint (an .npz?); pass a .ckpt written by "
                "poseshift fit"
            )
        else:
            problem = f"is damaged ({type(err).__name__}); use another checkpoint of that run"
        raise UserError(f"{where}: {problem}") from err
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise UserError(
            f"{where}: not a Lightning checkpoint (no 'state_dict'; a bare weights file?); pass a .ckpt "
            "written by poseshift fit"
        )
    return ckpt


def import_class(class_path: str) -> type | None:
    """The class named by a dotted path, or None when it cannot be imported."""
    module, _, name = class_path.rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError):
        return None


def check_checkpoint_model(
    ckpt: dict[str, Any], model_class_path: str, path: str | os.PathLike, run_config: Path | None = None
) -> None:
    """Fail clearly when the checkpoint holds another model class than the config builds.

    LightningCLI would otherwise replace the configured class by the checkpoint's and file the
    results under the configured experiment.
    """
    hparams = dict(ckpt.get("hyper_parameters") or {})
    configured = import_class(model_class_path)
    saved_path = hparams.pop("_class_path", None)
    hparams.pop("_instantiator", None)
    hint = f" (its run saved it as {run_config})" if run_config is not None and run_config.is_file() else ""
    if saved_path is not None:
        saved = import_class(saved_path)
        if saved is None or configured is None or saved is not configured:
            raise UserError(
                f"--ckpt_path {path}: holds a {saved_path} model but the config builds {model_class_path}; "
                f"use the config it was trained with{hint}"
            )
        return
    if configured is None or not hparams:
        return
    # checkpoints written outside the CLI carry no class: compare their hyperparameters with the
    # configured class's constructor (a method that does not take them is another method)
    params = inspect.signature(configured.__init__).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return
    foreign = sorted(set(hparams) - set(params))
    if foreign:
        raise UserError(
            f"--ckpt_path {path}: its hyperparameters {foreign} are not options of {model_class_path}, so it "
            f"holds another method's model; use the config it was trained with{hint}"
        )


# -- resuming logs ------------------------------------------------------------------------------------
def trim_metrics_csv(path: Path, last_epoch: int) -> int:
    """Drop rows logged after ``last_epoch`` (the part of an interrupted epoch); returns rows dropped.

    A resumed fit continues the same CSV file from the epoch after its checkpoint.
    """
    if not path.is_file():
        return 0
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        fields = reader.fieldnames or []
        rows = list(reader)

    def keep(row: dict[str, str]) -> bool:
        epoch = row.get("epoch", "")
        try:
            return epoch == "" or int(float(epoch)) <= last_epoch
        except ValueError:
            return True

    kept = [r for r in rows if keep(r)]
    if len(kept) != len(rows):
        tmp = path.with_name(f".{path.name}.tmp")
        with tmp.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=fields)
            writer.writeheader()
            writer.writerows(kept)
        os.replace(tmp, path)
    return len(rows) - len(kept)
