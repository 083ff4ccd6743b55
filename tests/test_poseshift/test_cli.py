"""The ``poseshift`` command as a user runs it: the installed script and ``make demo``, their output
and exit status."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from clitools import BASELINE, ROOT, error_lines, run_main, run_script, script_env, write_config

# what the issue found in the output of every run; none of it may come back
NOISE = (
    "PoseShiftCLI object",
    "Tip:",
    "will override existing callbacks",
    "dirpath has changed",
    "anonymous setting",
    "LeafSpec",
    "DataLoader 0",
    "sync_dist=True",
    "Traceback",
)


def assert_quiet(result: subprocess.CompletedProcess) -> None:
    text = result.stdout + result.stderr
    found = [n for n in NOISE if n in text]
    assert not found, (found, text[-3000:])


def only_run_folder(root: Path, suffix: str) -> Path:
    runs = sorted(p for p in root.iterdir() if p.name.endswith(suffix))
    assert len(runs) == 1, runs
    return runs[0]


@pytest.mark.slow
def test_installed_script_exit_status_and_run_folders(tmp_path):
    """fit, test, predict with the installed script: exit 0, one folder each; a failure exits 1."""
    config = write_config(tmp_path, BASELINE)
    runs = tmp_path / "runs" / "tiny"

    fit = run_script("fit", "--config", str(config), "--test_after_fit", "true", cwd=tmp_path)
    assert fit.returncode == 0, fit.stderr[-3000:]
    assert_quiet(fit)
    run = only_run_folder(runs, "-fit")
    assert fit.stdout.rstrip().endswith(f"run folder: {run}")
    assert fit.stdout.count("| alpha |") == 1  # our table only, not Lightning's as well
    for name in ("config.yaml", "run.json", "results.json", "results.md", "csv/metrics.csv"):
        assert (run / name).is_file(), name
    assert (run / "checkpoints" / "last.ckpt").is_file() and list(run.glob("checkpoints/best-*.ckpt"))
    record = json.loads((run / "run.json").read_text())
    assert record["command"] == "fit" and record["status"] == "finished"
    table = json.loads((run / "results.json").read_text())
    assert set(table) == {"alpha", "beta"}

    test = run_script("test", "--config", str(config), "--ckpt_path", "best", cwd=tmp_path)
    assert test.returncode == 0, test.stderr[-3000:]
    assert_quiet(test)
    tested = only_run_folder(runs, "-test")
    assert not (tested / "checkpoints").exists() and not (tested / "wandb").exists()
    again = json.loads((tested / "results.json").read_text())
    assert again["alpha"]["mpjpe"] == pytest.approx(table["alpha"]["mpjpe"], rel=1e-5)
    assert json.loads((run / "results.json").read_text()) == table  # the fit's results are untouched

    kp = np.random.default_rng(0).uniform(100, 900, size=(7, 17, 2))
    np.savez(tmp_path / "kp.npz", keypoints=kp, image_size=np.array([1000.0, 1000.0]))
    predict = run_script(
        "predict",
        "--config",
        str(config),
        "--ckpt_path",
        "last",
        "--data",
        "data_modules.KeypointsDataModule",
        "--data.path",
        str(tmp_path / "kp.npz"),
        cwd=tmp_path,
    )
    assert predict.returncode == 0, predict.stderr[-3000:]
    predicted = only_run_folder(runs, "-predict")
    lifted = np.load(predicted / "predictions.npz")["pose3d"]
    assert lifted.shape == (7, 17, 3) and np.isfinite(lifted).all()
    np.testing.assert_array_equal(lifted[:, 0], 0)
    assert not (predicted / "checkpoints").exists() and not (predicted / "csv").exists()

    (tmp_path / "random.ckpt").write_bytes(os.urandom(4096))
    bad = run_script(
        "test", "--config", str(config), "--ckpt_path", str(tmp_path / "random.ckpt"), cwd=tmp_path
    )
    assert bad.returncode == 1
    assert error_lines(bad.stderr) == [
        f"error: --ckpt_path {tmp_path / 'random.ckpt'}: not a PyTorch checkpoint (torch.save writes a zip "
        "archive, this file is not one); pass a .ckpt written by poseshift fit"
    ]
    assert len(list(runs.iterdir())) == 3  # the failed command left no folder


@pytest.mark.slow
def test_make_demo_exits_zero(tmp_path):
    """``make demo`` (the README's first command) with a reduced budget: exit 0, the table, one cache line."""
    budget = (
        f"--trainer.default_root_dir {tmp_path / 'demo'} --trainer.max_epochs 1 "
        "--trainer.limit_train_batches 2 --trainer.limit_val_batches 1 --trainer.limit_test_batches 1 "
        "--data.init_args.source_takes 1"
    )
    result = subprocess.run(
        ["make", "--no-print-directory", "demo", f"ARGS={budget}"],
        cwd=ROOT,
        env=script_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, (result.stdout[-2000:], result.stderr[-3000:])
    assert_quiet(result)
    assert result.stdout.count("building the mocap benchmark (first run with these settings)") == 1
    for name in ("source_test", "new_motion", "new_view", "moving_camera", "all_shift"):
        assert f"| {name} |" in result.stdout
    run = only_run_folder(tmp_path / "demo", "-fit")
    assert f"run folder: {run}" in result.stdout
    assert (run / "results.json").is_file() and (run / "checkpoints" / "last.ckpt").is_file()


def test_help_documents_the_method(cli_env, capsys):
    code, out, _ = run_main(capsys, "fit", "--model.help", "poseshift.methods.Baseline")
    assert code == 0
    assert "--model.lr_decay_steps" in out and "optimizer steps between decays" in out


def test_debug_shows_the_traceback(cli_env, capsys, monkeypatch):
    config = write_config(cli_env, BASELINE)
    args = ("test", "--config", str(config), "--ckpt_path", str(cli_env / "missing.ckpt"))
    code, _, err = run_main(capsys, *args)
    assert code == 1 and error_lines(err) == [
        f"error: --ckpt_path {cli_env / 'missing.ckpt'}: file not found"
    ]
    code, _, err = run_main(capsys, *args, "--debug")
    assert code == 1 and "Traceback (most recent call last)" in err
    assert err.rstrip().splitlines()[-1] == f"error: --ckpt_path {cli_env / 'missing.ckpt'}: file not found"
    monkeypatch.setenv("POSESHIFT_DEBUG", "1")
    code, _, err = run_main(capsys, *args)
    assert code == 1 and "Traceback (most recent call last)" in err


def test_extra_commands_are_dispatched(cli_env, capsys):
    code, out, _ = run_main(capsys, "data", "check", str(cli_env / "no_such_folder"))
    assert code == 1 and "no_such_folder" in out
    code, out, _ = run_main(capsys, "evolve", "--help")
    assert code == 0 and "--config" in out
