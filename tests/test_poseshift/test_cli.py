"""The ``poseshift`` command end to end, in subprocesses, on tiny configs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import REPO_ROOT

ROOT = REPO_ROOT

# every test here starts the command in a subprocess
pytestmark = pytest.mark.slow

TINY = """
seed_everything: 0
trainer:
  max_epochs: 2
  accelerator: cpu
  devices: 1
  default_root_dir: {root}
  enable_progress_bar: false
  enable_model_summary: false
  logger:
    - class_path: pytorch_lightning.loggers.CSVLogger
      init_args:
        save_dir: {root}
        name: csv
model:
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


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join([str(ROOT / "tests"), str(ROOT / "src"), str(ROOT)]),
        WANDB_MODE="disabled",
        OMP_NUM_THREADS="1",
    )
    return subprocess.run(
        [sys.executable, "-m", "poseshift", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture
def tiny_config(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY.format(root=tmp_path / "run"))
    return path


def test_fit_then_test_then_predict(tmp_path, tiny_config):
    fit = run_cli("fit", "--config", str(tiny_config), "--test_after_fit", "true", cwd=tmp_path)
    assert fit.returncode == 0, fit.stderr[-3000:]
    results = sorted((tmp_path / "run").rglob("results.json"))
    assert results, fit.stdout[-2000:]
    table = json.loads(results[-1].read_text())
    assert set(table) == {"alpha", "beta"}
    assert all(np.isfinite(v) for row in table.values() for v in row.values())
    assert "| alpha |" in fit.stdout

    ckpts = sorted((tmp_path / "run").rglob("best-*.ckpt"))
    assert ckpts, "fit should keep the best checkpoint"
    test = run_cli("test", "--config", str(tiny_config), "--ckpt_path", str(ckpts[0]), cwd=tmp_path)
    assert test.returncode == 0, test.stderr[-3000:]
    again = json.loads(sorted((tmp_path / "run").rglob("results.json"))[-1].read_text())
    assert again["alpha"]["mpjpe"] == pytest.approx(table["alpha"]["mpjpe"], rel=1e-4)

    kp = np.random.default_rng(0).uniform(100, 900, size=(7, 17, 2))
    np.savez(tmp_path / "kp.npz", keypoints=kp, image_size=np.array([1000.0, 1000.0]))
    out = tmp_path / "lifted.npz"
    pred = run_cli(
        "predict",
        "--config",
        str(tiny_config),
        "--ckpt_path",
        str(ckpts[0]),
        "--data",
        "data_modules.KeypointsDataModule",
        "--data.path",
        str(tmp_path / "kp.npz"),
        "--predict_output",
        str(out),
        cwd=tmp_path,
    )
    assert pred.returncode == 0, pred.stderr[-3000:]
    lifted = np.load(out)["pose3d"]
    assert lifted.shape == (7, 17, 3) and np.isfinite(lifted).all()
    np.testing.assert_array_equal(lifted[:, 0], 0)


def test_bad_config_gets_a_clear_error(tmp_path, tiny_config):
    bad = tmp_path / "bad.yaml"
    bad.write_text(tiny_config.read_text().replace("lr: 0.01", "learning_rat: 0.01"))
    result = run_cli("fit", "--config", str(bad), cwd=tmp_path)
    assert result.returncode != 0
    assert "learning_rat" in result.stderr

    wrong_backbone = tmp_path / "wrong.yaml"
    wrong_backbone.write_text(
        tiny_config.read_text().replace("backbone: simple_baseline", "backbone: resnet")
    )
    result = run_cli("fit", "--config", str(wrong_backbone), cwd=tmp_path)
    assert result.returncode != 0
    assert "unknown backbone 'resnet'" in result.stderr


def test_missing_files_get_clear_errors(tmp_path, tiny_config):
    result = run_cli("fit", "--config", str(tmp_path / "nope.yaml"), cwd=tmp_path)
    assert result.returncode != 0 and "nope.yaml" in result.stderr
    result = run_cli(
        "predict",
        "--config",
        str(tiny_config),
        "--data",
        "data_modules.KeypointsDataModule",
        "--data.path",
        str(tmp_path / "missing.npz"),
        cwd=tmp_path,
    )
    assert result.returncode != 0 and "missing.npz" in result.stderr


def test_help_documents_the_method():
    result = run_cli("fit", "--model.help", "poseshift.methods.Baseline", cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "--model.lr_decay_steps" in result.stdout
    assert "optimizer steps between decays" in result.stdout


def test_shipped_demo_config_runs(tmp_path):
    """experiments/baseline/mocap.yaml parses and runs fit + test (a few batches, tiny data)."""
    result = run_cli(
        "fit",
        "--config",
        str(ROOT / "experiments/baseline/mocap.yaml"),
        "--test_after_fit",
        "true",
        "--trainer.default_root_dir",
        str(tmp_path / "run"),
        "--trainer.max_epochs",
        "1",
        "--trainer.limit_train_batches",
        "2",
        "--trainer.limit_val_batches",
        "1",
        "--trainer.limit_test_batches",
        "1",
        "--trainer.callbacks",
        "[]",
        "--trainer.enable_progress_bar",
        "false",
        "--data.init_args.source_takes",
        "1",
        "--data.init_args.cache_dir",
        str(tmp_path / "cache"),
        "--model.init_args.backbone_kwargs",
        "{linear_size: 32, num_stages: 1}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    # the config's loggers write under runs/ in the working folder; results.json sits beside them
    table = json.loads(next(tmp_path.rglob("results.json")).read_text())
    assert {"source_test", "new_motion", "new_view", "moving_camera"} <= set(table)


def test_extra_commands_are_dispatched(tmp_path, capsys):
    from poseshift.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["data", "check", str(tmp_path / "no_such_folder")])
    assert exit_info.value.code == 1
    assert "no_such_folder" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        main(["evolve", "--help"])
    assert exit_info.value.code == 0
    assert "--config" in capsys.readouterr().out
