"""Running the ``poseshift`` command in tests: in this process (fast) or as the installed script."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TESTS = ROOT / "tests"
# the console script pip installed next to the interpreter running the tests (.venv/bin/poseshift)
SCRIPT = Path(sys.executable).with_name("poseshift")

# a tiny CPU run that logs every step to CSV; the templates below add a model and data
TRAINER = """
seed_everything: 0
trainer:
  max_epochs: {epochs}
  accelerator: cpu
  devices: 1
  default_root_dir: {root}
  enable_progress_bar: false
  enable_model_summary: false
  log_every_n_steps: 1
  logger:
    - class_path: poseshift.loggers.CSVLogger
"""

BASELINE = TRAINER + (
    """model:
  class_path: poseshift.methods.Baseline
  init_args:
    backbone: simple_baseline
    backbone_kwargs: {{linear_size: 64, num_stages: 1}}
    lr: 0.01
data:
  class_path: helpers.SyntheticDataModule
  init_args:
    num_train: 128
    num_test: 33
    batch_size: 32
"""
)

POSEAUG = TRAINER + (
    """model:
  class_path: poseshift.methods.PoseAug
  init_args:
    backbone: simple_baseline
    backbone_kwargs: {{linear_size: 32, num_stages: 1}}
    pretrained: scratch
    g_width: 16
    g_stages: 1
    noise_dim: 8
    d3d_width: 16
    pool_size: 48
    warmup: 1
data:
  class_path: helpers.SyntheticDataModule
  init_args:
    num_train: 96
    num_test: 17
    batch_size: 32
"""
)

EVOSKELETON = """
seed_everything: 0
trainer:
  max_epochs: 2
  accelerator: cpu
  devices: 1
  default_root_dir: {root}
  enable_progress_bar: false
  enable_model_summary: false
  logger: false
model:
  class_path: poseshift.methods.EvoSkeleton
  init_args:
    num_learners: 1
    width: 32
    epochs_per_stage: 2
data:
  class_path: helpers.SyntheticDataModule
  init_args:
    num_train: 64
    num_test: 17
    batch_size: 32
"""


def write_config(
    folder: Path, template: str, name: str = "tiny.yaml", epochs: int = 2, root: str = ""
) -> Path:
    """Write a config from a template above; its experiment folder defaults to ``<folder>/runs/tiny``."""
    path = folder / name
    path.write_text(template.format(epochs=epochs, root=root or folder / "runs" / "tiny"))
    return path


def run_main(capsys, *args: str) -> tuple[int, str, str]:
    """``poseshift <args>`` in this process: (exit status, stdout, stderr)."""
    from poseshift.cli import main

    capsys.readouterr()
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def script_env(tmp_path: Path) -> dict[str, str]:
    return dict(
        os.environ,
        PYTHONPATH=os.pathsep.join([str(TESTS), str(ROOT / "src"), str(ROOT)]),
        WANDB_MODE="disabled",
        OMP_NUM_THREADS="1",
        POSESHIFT_CACHE=str(tmp_path / "cache"),
    )


def run_script(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: int = 300):
    """The installed ``poseshift`` script in a subprocess, as a user runs it."""
    assert SCRIPT.is_file(), f"{SCRIPT} is not installed (make install)"
    return subprocess.run(
        [str(SCRIPT), *args],
        cwd=cwd,
        env=env or script_env(cwd),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def error_lines(stderr: str) -> list[str]:
    """The lines of stderr (a failure must print exactly one, ``error: ...``)."""
    return [line for line in stderr.splitlines() if line.strip()]
