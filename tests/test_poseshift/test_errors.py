"""Every bad input of the issue gets one line ``error: <file or option>: <problem and what to do>``,
a non-zero exit status, no traceback and no leftover run folder."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from clitools import BASELINE, EVOSKELETON, POSEAUG, ROOT, error_lines, run_main, write_config
from helpers import SyntheticDataModule, synthetic_set

from poseshift.methods import Baseline, EvoSkeleton
from poseshift.trainers import quiet_trainer


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict[str, Path]:
    """Checkpoints written by Lightning directly (no CLI): a Baseline and an EvoSkeleton."""
    folder = tmp_path_factory.mktemp("trained")
    out = {}
    for name, model in (
        ("baseline", Baseline(backbone_kwargs={"linear_size": 64, "num_stages": 1})),
        ("evoskeleton", EvoSkeleton(num_learners=1, width=32, epochs_per_stage=1)),
    ):
        trainer = quiet_trainer(max_epochs=1, limit_val_batches=0, default_root_dir=folder)
        trainer.fit(model, datamodule=SyntheticDataModule(num_train=64, batch_size=32))
        trainer.save_checkpoint(folder / f"{name}.ckpt")
        out[name] = folder / f"{name}.ckpt"
    return out


def bad_files(folder: Path, trained: dict[str, Path]) -> None:
    """The broken inputs the issue lists, written into ``folder``."""
    (folder / "broken.yaml").write_text("trainer:\n  max_epochs: [1\n")
    (folder / "random.ckpt").write_bytes(np.random.default_rng(0).bytes(5000))
    (folder / "empty.ckpt").write_bytes(b"")
    whole = trained["baseline"].read_bytes()
    (folder / "truncated.ckpt").write_bytes(whole[: len(whole) // 2])
    (folder / "a_run").mkdir()
    (folder / "a_run" / "x.ckpt").write_bytes(whole)
    kp = np.random.default_rng(0).uniform(100, 900, size=(5, 17, 2))
    np.savez(folder / "kp.npz", keypoints=kp, image_size=np.array([1000.0, 1000.0]))
    np.savez(folder / "kp_size.npz", keypoints=kp, image_size=np.array([1000.0, 1000.0, 3.0]))
    (folder / "text.npz").write_text("x, y\n1, 2\n")
    np.save(folder / "arrays.npy", kp)
    os.replace(folder / "arrays.npy", folder / "arrays.npz")
    world = np.asarray(__import__("data_modules.deepmimic", fromlist=["load_clip"]).load_clip("walk")[:64])
    np.savez(folder / "world_mm.npz", joints=world * 1000)
    synthetic_set(4, 0, "evolved").subset(np.zeros(4, dtype=bool)).save(folder / "evolved_empty.npz")
    (folder / "out.npz").write_bytes(b"keep me")
    evolved = EVOSKELETON.split("data:")[0] + (
        "data:\n  class_path: data_modules.evolved.EvolvedDataModule\n  init_args:\n"
        f"    path: {folder / 'evolved_empty.npz'}\n    mode: evolved\n"
        "    base:\n      class_path: helpers.SyntheticDataModule\n"
    )
    write_config(folder, evolved, "evolved.yaml")
    write_config(folder, POSEAUG, "poseaug.yaml")
    write_config(folder, EVOSKELETON, "evoskeleton.yaml")


PREDICT = ["--data", "data_modules.KeypointsDataModule", "--data.path"]
# (id, command with {tmp}/{baseline}/{evoskeleton} placeholders, the line's start, a phrase in it)
CASES = [
    ("broken_yaml", "fit --config {tmp}/broken.yaml", "error: {tmp}/broken.yaml: not valid YAML", "line 3"),
    ("missing_config", "fit --config {tmp}/nope.yaml", "error: {tmp}/nope.yaml:", "config file not found"),
    (
        "random_bytes_checkpoint",
        "test --config {cfg} --ckpt_path {tmp}/random.ckpt",
        "error: --ckpt_path {tmp}/random.ckpt:",
        "not a PyTorch checkpoint",
    ),
    (
        "empty_checkpoint",
        "test --config {cfg} --ckpt_path {tmp}/empty.ckpt",
        "error: --ckpt_path",
        "empty file",
    ),
    (
        "truncated_checkpoint",
        "test --config {cfg} --ckpt_path {tmp}/truncated.ckpt",
        "error: --ckpt_path",
        "truncated",
    ),
    (
        "folder_as_checkpoint",
        "test --config {cfg} --ckpt_path {tmp}/a_run",
        "error: --ckpt_path {tmp}/a_run: is a folder",
        "a_run/x.ckpt",
    ),
    ("npz_as_checkpoint", "test --config {cfg} --ckpt_path {tmp}/kp.npz", "error: --ckpt_path", "an .npz?"),
    (
        "text_file_as_npz",
        "predict --config {cfg} --ckpt_path {baseline} " + " ".join(PREDICT) + " {tmp}/text.npz",
        "error: {tmp}/text.npz: is a text file",
        "np.savez",
    ),
    (
        "npy_as_npz",
        "predict --config {cfg} --ckpt_path {baseline} " + " ".join(PREDICT) + " {tmp}/arrays.npz",
        "error: {tmp}/arrays.npz: is a .npy file",
        "np.savez",
    ),
    (
        "image_size_shape",
        "predict --config {cfg} --ckpt_path {baseline} " + " ".join(PREDICT) + " {tmp}/kp_size.npz",
        "error: {tmp}/kp_size.npz: image_size must be (2,) or (5, 2) numbers",
        "(3,)",
    ),
    (
        "predict_output_exists",
        "predict --config {cfg} --ckpt_path {baseline} --predict_output {tmp}/out.npz "
        + " ".join(PREDICT)
        + " {tmp}/kp.npz",
        "error: --predict_output {tmp}/out.npz: exists",
        "delete it",
    ),
    (
        "negative_lr",
        "fit --config {cfg} --model.init_args.lr -0.001",
        "error: --model.init_args.lr:",
        "positive",
    ),
    (
        "num_workers_-1",
        "fit --config {cfg} --data.init_args.num_workers -1",
        "error: --data.init_args.num_workers:",
        ">= 0",
    ),
    (
        "batch_size_0",
        "fit --config {cfg} --data.init_args.batch_size 0",
        "error: --data.init_args.batch_size:",
        "got 0",
    ),
    (
        "unknown_backbone",
        "fit --config {cfg} --model.init_args.backbone resnet",
        "error: --model.init_args.backbone: unknown backbone 'resnet'",
        "simple_baseline",
    ),
    (
        "unknown_option",
        "fit --config {cfg} --model.init_args.learning_rat 0.1",
        "error: --model.init_args.learning_rat: not an option of poseshift.methods.Baseline",
        "--model.help",
    ),
    (
        "unknown_test_set",
        "test --config {cfg} --ckpt_path {baseline} --data.init_args.test_sets [gamma]",
        "error: --data.init_args.test_sets: unknown test set(s) ['gamma']",
        "'alpha', 'beta'",
    ),
    (
        "test_without_checkpoint",
        "test --config {cfg}",
        "error: --ckpt_path: test needs trained weights",
        "last",
    ),
    ("last_without_a_fit", "test --config {cfg} --ckpt_path last", "error: --ckpt_path last:", "no fit run"),
    ("resume_from_best", "fit --config {cfg} --ckpt_path best", "error: --ckpt_path best:", "last"),
    (
        "missing_dataset_files",
        "fit --config " + str(ROOT / "experiments/baseline/h36m_gt.yaml"),
        "error: data/h36m/data_3d_h36m.npz: file not found",
        "`poseshift data check data/h36m`",
    ),
    (
        "evoskeleton_checkpoint_with_baseline_config",
        "test --config {cfg} --ckpt_path {evoskeleton}",
        "error: --ckpt_path {evoskeleton}:",
        "another method's model",
    ),
    (
        "poseaug_pretrained_null",
        "fit --config {tmp}/poseaug.yaml --model.init_args.pretrained null",
        "error: --model.init_args.pretrained:",
        "`scratch`",
    ),
    (
        "poseaug_pretrained_random_bytes",
        "fit --config {tmp}/poseaug.yaml --model.init_args.pretrained {tmp}/random.ckpt",
        "error: --model.init_args.pretrained {tmp}/random.ckpt:",
        "not a PyTorch checkpoint",
    ),
    (
        "poseaug_max_epochs_-1",
        "fit --config {tmp}/poseaug.yaml --trainer.max_epochs -1",
        "error: --trainer.max_epochs -1: PoseAug's schedule",
        "--trainer.max_epochs N",
    ),
    (
        "poseaug_max_steps_without_epochs",
        "fit --config {tmp}/poseaug.yaml --trainer.max_epochs -1 --trainer.max_steps 50",
        "error: --trainer.max_epochs -1: PoseAug's LR decay and beta ramp run over trainer.max_epochs",
        "--model.init_args.schedule_steps",
    ),
    (
        "evoskeleton_max_epochs_-1",
        "fit --config {tmp}/evoskeleton.yaml --trainer.max_epochs -1",
        "error: --trainer.max_epochs -1: EvoSkeleton's schedule",
        "--trainer.max_epochs N",
    ),
    (
        "evolve_from_millimetres",
        "evolve --source.kind world --source.path {tmp}/world_mm.npz --output {tmp}/evolved.npz "
        "--progress false",
        "error: {tmp}/world_mm.npz: the source poses look like millimetres",
        "divide the joints by 1000",
    ),
    (
        "fit_on_an_empty_evolved_file",
        "fit --config {tmp}/evolved.yaml",
        "error: {tmp}/evolved_empty.npz: holds no 2D-3D pairs",
        "poseshift evolve",
    ),
    (
        "max_epochs_not_a_number",
        "fit --config {cfg} --trainer.max_epochs abc",
        "error: --trainer.max_epochs:",
        "expected an integer, got 'abc'",
    ),
]
if not torch.cuda.is_available():
    CASES.append(
        (
            "gpu_without_gpu",
            "fit --config {cfg} --trainer.accelerator gpu",
            "error: --trainer.accelerator gpu:",
            "cpu",
        )
    )


@pytest.mark.parametrize(("command", "start", "phrase"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_gets_one_line(cli_env, capsys, trained, command, start, phrase):
    bad_files(cli_env, trained)
    config = write_config(cli_env, BASELINE)
    fill = {"tmp": cli_env, "cfg": config, **trained}
    code, out, err = run_main(capsys, *command.format(**fill).split())
    lines = error_lines(err)
    assert code == 1, (out[-2000:], err[-2000:])
    assert len(lines) == 1, err
    assert lines[0].startswith(start.format(**fill)), lines[0]
    assert phrase in lines[0], lines[0]
    assert "weights_only" not in out + err
    assert not list(cli_env.rglob("run.json")), "a command that failed at the start must leave no run folder"
    assert not (cli_env / "evolved.npz").exists()


def test_checkpoint_of_another_method_written_by_the_cli(cli_env, capsys):
    """Checkpoints the CLI writes name their class: testing one with another method's config fails."""
    evo = write_config(cli_env, EVOSKELETON, "evo.yaml", root=str(cli_env / "runs" / "evo"))
    code, _, err = run_main(capsys, "fit", "--config", str(evo))
    assert code == 0, err
    ckpt = next((cli_env / "runs" / "evo").glob("*-fit/checkpoints/last.ckpt"))
    config = write_config(cli_env, BASELINE)
    code, _, err = run_main(capsys, "test", "--config", str(config), "--ckpt_path", str(ckpt))
    assert code == 1
    assert error_lines(err) == [
        f"error: --ckpt_path {ckpt}: holds a poseshift.methods.EvoSkeleton model but the config builds "
        f"poseshift.methods.Baseline; use the config it was trained with (its run saved it as "
        f"{ckpt.parent.parent / 'config.yaml'})"
    ]
    assert not (cli_env / "runs" / "tiny").exists()  # nothing was tested or filed under the baseline


def test_training_error_saves_no_checkpoint(cli_env, capsys):
    """A failure during training (not Ctrl-C) is one line, keeps completed epochs, saves nothing new."""
    config = write_config(cli_env, BASELINE, epochs=4)
    stop = cli_env / "stop.yaml"
    stop.write_text(
        "trainer:\n  callbacks:\n    - class_path: helpers.StopAt\n"
        "      init_args: {epoch: 2, batch: 1, error: true}\n"
    )
    code, _, err = run_main(capsys, "fit", "--config", str(config), "--config", str(stop))
    assert code == 1
    assert error_lines(err)[0] == (
        "error: RuntimeError: loss is not finite (rerun with --debug for the traceback)"
    )
    run = next((cli_env / "runs" / "tiny").glob("*-fit"))
    assert error_lines(err)[1:] == [f"run folder: {run}"]
    assert not (run / "checkpoints" / "interrupted.ckpt").exists()
    last = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True, map_location="cpu")
    assert last["epoch"] == 1  # the last completed epoch, saved before the failure
    assert '"status": "failed"' in (run / "run.json").read_text()


def test_evolve_refuses_to_write_zero_pairs(tmp_path, monkeypatch):
    """When the camera rig drops every evolved pose, nothing is written and the error says why."""
    from data_modules.commands import evolve as command
    from data_modules.deepmimic import load_clip

    np.savez(tmp_path / "world.npz", joints=np.asarray(load_clip("walk")[:64]))
    empty = synthetic_set(4, 0, "evolved").subset(np.zeros(4, dtype=bool))
    monkeypatch.setattr(command, "pose_set_from_renders", lambda *args, **kwargs: empty)
    out = tmp_path / "evolved.npz"
    with pytest.raises(
        ValueError, match=r"evolved\.npz: not written: the camera rig dropped all [\d,]+ evolved"
    ):
        command.run_evolution(
            command.SourceConfig(kind="world", path=str(tmp_path / "world.npz")),
            command.EvolutionConfig(target_ratio=1.2),
            command.ValidityConfig(kind="none"),
            str(out),
            progress=False,
        )
    assert not out.exists() and not Path(str(out) + ".json").exists()
