"""A folder per run, never overwritten; exact resume after Ctrl-C; W&B only when asked; DDP."""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
from clitools import (
    BASELINE,
    POSEAUG,
    SCRIPT,
    error_lines,
    run_main,
    run_script,
    script_env,
    write_config,
)

STOP = """
trainer:
  callbacks:
    - class_path: helpers.StopAt
      init_args: {{epoch: {epoch}, batch: {batch}}}
"""


def fit_runs(root: Path) -> list[Path]:
    return sorted(root.glob("*-fit*"))


def weights(ckpt: Path) -> dict[str, torch.Tensor]:
    return torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]


def csv_rows(run: Path) -> list[dict[str, str]]:
    with (run / "csv" / "metrics.csv").open(newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("template", [BASELINE, POSEAUG], ids=["baseline", "poseaug"])
def test_interrupted_and_resumed_fit_equals_an_uninterrupted_one(cli_env, capsys, recwarn, template):
    """Ctrl-C in epoch 2 (of 4), then ``--ckpt_path last``: the same weights, logs and results."""
    config = write_config(cli_env, template, epochs=4)
    root = cli_env / "runs" / "tiny"
    code, _, err = run_main(capsys, "fit", "--config", str(config), "--test_after_fit", "true")
    assert code == 0, err
    (straight,) = fit_runs(root)

    stop = cli_env / "stop.yaml"
    stop.write_text(STOP.format(epoch=2, batch=1))
    code, out, err = run_main(
        capsys, "fit", "--config", str(config), "--config", str(stop), "--test_after_fit", "true"
    )
    assert code == 130
    interrupted = next(r for r in fit_runs(root) if r != straight)
    last = interrupted / "checkpoints" / "last.ckpt"
    assert f"interrupted in epoch 2: {last.resolve()} holds the last completed epoch (1)" in out
    assert err.rstrip().endswith(f"interrupted; run folder: {interrupted}")
    assert torch.load(last, weights_only=True)["epoch"] == 1
    assert (interrupted / "checkpoints" / "interrupted.ckpt").is_file()
    assert json.loads((interrupted / "run.json").read_text())["status"] == "interrupted"
    assert not (interrupted / "results.json").exists()

    code, out, err = run_main(
        capsys, "fit", "--config", str(config), "--ckpt_path", "last", "--test_after_fit", "true"
    )
    assert code == 0, err
    assert f"--ckpt_path last: {last}" in out
    assert fit_runs(root) == sorted([straight, interrupted])  # the same folder, no new one
    assert out.rstrip().endswith(f"run folder: {interrupted}")

    a, b = weights(straight / "checkpoints" / "last.ckpt"), weights(last)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    # one CSV, each epoch logged once, the same values as without the interruption
    assert csv_rows(interrupted) == csv_rows(straight)
    assert [r["epoch"] for r in csv_rows(interrupted) if r.get("val/mpjpe")] == ["0", "1", "2", "3"]
    results = json.loads((interrupted / "results.json").read_text())
    assert results == json.loads((straight / "results.json").read_text())

    record = json.loads((interrupted / "run.json").read_text())
    assert record["status"] == "finished" and record["argv"][-1] != "last"  # the first command stays
    assert [r["from"] for r in record["resumes"]] == [str(last)]
    assert (interrupted / "config.yaml").is_file() and (interrupted / "config.resume-1.yaml").is_file()
    # PoseAug steps every scheduler each epoch, also the lifter's during warm-up: no warning about it
    assert not [w for w in recwarn if "lr_scheduler.step()" in str(w.message)]


def test_every_command_gets_its_own_folder(cli_env, capsys):
    config = write_config(cli_env, BASELINE)
    root = cli_env / "runs" / "tiny"
    for _ in range(2):
        code, out, err = run_main(capsys, "fit", "--config", str(config), "--test_after_fit", "true")
        assert code == 0, err
    first, second = fit_runs(root)
    assert first != second and (first / "results.json").is_file() and (second / "results.json").is_file()
    for command in ("test", "validate"):
        code, out, err = run_main(capsys, command, "--config", str(config), "--ckpt_path", "last")
        assert code == 0, err
        (run,) = root.glob(f"*-{command}")
        assert out.rstrip().endswith(f"run folder: {run}")
        assert not (run / "checkpoints").exists() and (run / "config.yaml").is_file()
        assert json.loads((run / "run.json").read_text())["ckpt_path"] == str(
            second / "checkpoints" / "last.ckpt"
        )
    for command in ("test", "validate"):  # each has its results, printed once as our table
        (run,) = root.glob(f"*-{command}")
        assert (run / "results.json").is_file() and (run / "results.md").is_file()
    assert "DataLoader 0" not in out and out.count("| val |") == 1

    # --trainer.default_root_dir moves the whole run: config, logs, checkpoints, results
    elsewhere = cli_env / "elsewhere"
    code, _, err = run_main(
        capsys,
        "fit",
        "--config",
        str(config),
        "--trainer.default_root_dir",
        str(elsewhere),
        "--test_after_fit",
        "true",
    )
    assert code == 0, err
    (moved,) = fit_runs(elsewhere)
    for name in ("config.yaml", "run.json", "csv/metrics.csv", "checkpoints/last.ckpt", "results.json"):
        assert (moved / name).is_file(), name
    assert len(fit_runs(root)) == 2 and not (cli_env / "lightning_logs").exists()
    saved = (moved / "config.yaml").read_text()
    assert f"default_root_dir: {elsewhere}\n" in saved  # the config as given, reusable for a new run


def test_baseline_without_max_epochs_warns_loudly(cli_env, capsys, recwarn):
    config = write_config(cli_env, BASELINE)
    stop = cli_env / "stop.yaml"
    stop.write_text(STOP.format(epoch=1, batch=0))
    code, _, _ = run_main(
        capsys, "fit", "--config", str(config), "--config", str(stop), "--trainer.max_epochs", "-1"
    )
    assert code == 130
    assert any("Baseline trains until you stop it" in str(w.message) for w in recwarn)


@pytest.mark.slow
def test_ctrl_c_saves_and_resume_continues_the_same_run(tmp_path):
    """A real SIGINT to the installed script: exit 130, checkpoints kept, ``--ckpt_path last`` continues."""
    config = write_config(tmp_path, BASELINE, epochs=100_000)
    root = tmp_path / "runs" / "tiny"
    with subprocess.Popen(
        [str(SCRIPT), "fit", "--config", str(config)],
        cwd=tmp_path,
        env=script_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # Ctrl-C as from a terminal, even when the tests run in the background of a
        # non-interactive shell (which starts them with SIGINT ignored, inherited by children)
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    ) as proc:
        try:
            deadline = time.monotonic() + 120
            while not list(root.glob("*-fit/checkpoints/last.ckpt")) and time.monotonic() < deadline:
                time.sleep(0.2)
            time.sleep(0.5)
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=120)
        finally:  # never leave a 100,000-epoch run behind
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 130, err[-3000:]
    (run,) = fit_runs(root)
    assert "interrupted in epoch" in out and err.rstrip().endswith(f"interrupted; run folder: {run}")
    assert (run / "checkpoints" / "interrupted.ckpt").is_file()
    done = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["epoch"]
    assert json.loads((run / "run.json").read_text())["status"] == "interrupted"

    resumed = run_script(
        "fit",
        "--config",
        str(config),
        "--ckpt_path",
        "last",
        "--trainer.max_epochs",
        str(done + 3),
        cwd=tmp_path,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert fit_runs(root) == [run]
    epochs = [int(r["epoch"]) for r in csv_rows(run) if r.get("val/mpjpe")]
    assert epochs == list(range(done + 3))  # every epoch once, none lost, none repeated


@pytest.mark.slow
def test_wandb_only_when_asked_and_resume_keeps_the_run(tmp_path):
    """W&B (offline) logs fit into the run folder; a resume continues its W&B run; test starts none."""
    config = write_config(tmp_path, BASELINE, epochs=3)
    text = config.read_text().replace(
        "  logger:\n",
        "  logger:\n    - class_path: poseshift.loggers.WandbLogger\n      init_args: {project: tiny}\n",
    )
    config.write_text(text)
    env = {**script_env(tmp_path), "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    stop = tmp_path / "stop.yaml"
    stop.write_text(STOP.format(epoch=1, batch=0))
    root = tmp_path / "runs" / "tiny"
    first = run_script("fit", "--config", str(config), "--config", str(stop), cwd=tmp_path, env=env)
    assert first.returncode == 130, first.stderr[-3000:]
    (run,) = fit_runs(root)
    run_id = json.loads((run / "run.json").read_text())["wandb_run_id"]
    assert run_id and len(list((run / "wandb").glob(f"offline-run-*-{run_id}"))) == 1

    resumed = run_script("fit", "--config", str(config), "--ckpt_path", "last", cwd=tmp_path, env=env)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert json.loads((run / "run.json").read_text())["wandb_run_id"] == run_id
    assert len(list((run / "wandb").glob(f"offline-run-*-{run_id}"))) == 2  # the same W&B run, continued

    test = run_script("test", "--config", str(config), "--ckpt_path", "last", cwd=tmp_path, env=env)
    assert test.returncode == 0, test.stderr[-3000:]
    (tested,) = root.glob("*-test")
    assert not (tested / "wandb").exists() and "wandb_run_id" not in json.loads(
        (tested / "run.json").read_text()
    )
    assert "anonymous" not in first.stdout + first.stderr + test.stdout + test.stderr


@pytest.mark.slow
def test_ddp_run_uses_one_folder_and_no_sync_dist_warnings(tmp_path):
    """Two CPU processes (Lightning re-runs the command): one run folder, exact metrics, quiet."""
    config = write_config(tmp_path, BASELINE)
    result = run_script(
        "fit",
        "--config",
        str(config),
        "--trainer.strategy",
        "ddp",
        "--trainer.devices",
        "2",
        "--test_after_fit",
        "true",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (run,) = fit_runs(tmp_path / "runs" / "tiny")
    assert [p.name for p in (tmp_path / "runs" / "tiny").iterdir()] == [run.name]
    assert (run / "results.json").is_file() and (run / "checkpoints" / "last.ckpt").is_file()
    assert "sync_dist" not in result.stderr and "Traceback" not in result.stderr
    assert error_lines(result.stderr) == [] or all(
        line.startswith(("warning:", "[")) for line in error_lines(result.stderr)
    )
