"""The leaderboard's smoke mode runs, matches baselines to lifter steps, resumes and writes its outputs."""

from __future__ import annotations

import csv
import json

import pytest
from helpers import load_benchmark


def test_quick_leaderboard_end_to_end_and_resume(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("WANDB_MODE", "disabled")
    board = load_benchmark("leaderboard")
    argv = [
        "--quick",
        "--inline",
        "--entries",
        "baseline",
        "poseaug",
        "--out",
        str(tmp_path),
        "--threads",
        "1",
    ]
    assert board.main(argv) == 0
    first = capsys.readouterr().out
    assert "[3/3]" in first  # baseline, poseaug, its matched baseline
    runs = json.loads((tmp_path / "runs.json").read_text())
    pose, base = runs["poseaug:0"], runs["baseline:0"]
    matched = next(v for k, v in runs.items() if k.startswith("baseline, poseaug"))
    assert pose["steps"]["g"] == board.QUICK_STEPS
    # the matched baseline gets the pretraining's lifter steps plus every PoseAug lifter update
    assert matched["steps"]["p"] == base["steps"]["p"] + pose["steps"]["p"] > base["steps"]["p"]
    rows = list(csv.DictReader((tmp_path / "leaderboard.csv").open()))
    assert {r["row"] for r in rows} == {"baseline", "poseaug", "baseline, poseaug's lifter steps"}
    assert all(r["gain_mm"] for r in rows if r["row"] == "poseaug")
    assert (tmp_path / "leaderboard.png").stat().st_size > 10_000
    assert "| poseaug | source_test |" in (tmp_path / "leaderboard.md").read_text()
    # --report tabulates the finished runs without launching any: here all of them
    table = (tmp_path / "leaderboard.md").read_text().split("\n\n", 1)[1]
    assert board.main([*argv, "--report"]) == 0
    assert (tmp_path / "leaderboard.md").read_text().split("\n\n", 1)[1] == table
    with pytest.raises(SystemExit, match="no finished runs"):
        board.main([*argv[:-4], "--out", str(tmp_path / "empty"), "--report"])
    # a second call finds every result and reruns nothing
    stamp = (tmp_path / "poseaug" / "seed0" / "result.json").stat().st_mtime_ns
    assert board.main(argv) == 0
    assert (tmp_path / "poseaug" / "seed0" / "result.json").stat().st_mtime_ns == stamp
    # results without the pretrained checkpoint (copied from elsewhere): only the pretraining reruns,
    # to the same weights, and the rows that start from it are reused
    (tmp_path / "baseline" / "seed0" / "last.ckpt").unlink()
    assert board.main(argv) == 0
    assert (tmp_path / "baseline" / "seed0" / "last.ckpt").is_file()
    assert (tmp_path / "poseaug" / "seed0" / "result.json").stat().st_mtime_ns == stamp
    again = json.loads((tmp_path / "runs.json").read_text())["baseline:0"]
    assert again["metrics"] == base["metrics"]


def test_groups_and_unknown_entries():
    board = load_benchmark("leaderboard")
    assert {"baseline", "poseaug"} <= {e.name for e in board.select(board_args(board, group="poseaug"))}
    with pytest.raises(SystemExit, match="unknown"):
        board.select(board_args(board, entries=["nope"]))


def board_args(board, **kw):
    import argparse

    return argparse.Namespace(**{"entries": None, "group": "all", **kw})


def test_adaptpose_rows_start_from_and_match_their_own_backbone_baseline(tmp_path):
    board = load_benchmark("leaderboard")
    entries = board.select(board_args(board, group="adaptpose"))
    runs = board.plan(entries, [0, 1, 2], tmp_path)
    ids = [r.id for r in runs]
    assert "baseline-vpose27:0" in ids and "baseline:0" not in ids
    main = [r for r in runs if r.label == "adaptpose"]
    assert len(main) == 3 and all(r.depends == [f"baseline-vpose27:{r.seed}"] for r in main)
    matched = [r for r in runs if r.matched == "adaptpose:0"]
    assert len(matched) == 1 and matched[0].entry.name == "baseline-vpose27"
    # ablation rows run the first seed only
    assert [r.seed for r in runs if r.label == "adaptpose-bg1"] == [0]


def test_poseda_rows_share_one_lifter_budget_and_warm_up_in_iterations():
    import argparse
    from pathlib import Path

    board = load_benchmark("leaderboard")
    names = {e.name for e in board.select(board_args(board, group="poseda"))}
    assert names == {"baseline", "poseda", "poseda-gpa-only", "poseda-lpa-only"}
    args = argparse.Namespace(quick=False, accelerator="cpu", threads=1, precision="32-true")
    specs = {}
    for name in ("poseda", "poseda-gpa-only", "poseda-lpa-only"):
        entry = board.ENTRIES[name]
        specs[name] = board.spec_of(board.Run(name, entry, 0, Path("x")), args, {})
    warm = board.POSEDA_WARMUP
    for name in ("poseda", "poseda-lpa-only"):
        assert f"--model.init_args.warmup_steps={warm}" in specs[name]["args"]
        # every iteration after the warm-up is one lifter step
        assert specs[name]["epochs"] * board.BATCHES_PER_EPOCH - warm == board.POSEDA_LIFTER_STEPS
    gpa = specs["poseda-gpa-only"]
    assert "--model.init_args.use_lpa=false" in gpa["args"] and not any("warmup" in a for a in gpa["args"])
    assert gpa["epochs"] * board.BATCHES_PER_EPOCH == board.POSEDA_LIFTER_STEPS
    assert "--model.init_args.use_gpa=false" in specs["poseda-lpa-only"]["args"]
    assert all(board.ENTRIES[n].main is False for n in ("poseda-gpa-only", "poseda-lpa-only"))
    assert board.ENTRIES["poseda"].main


def test_syncadv_rows_are_matched_on_generator_updates(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "disabled")
    board = load_benchmark("leaderboard")
    group = {e.name for e in board.select(board_args(board, group="syncadv"))}
    assert group == {"syncadv", "syncadv-sep", "syncadv-kcs"}
    assert [e.name for e in board.select(board_args(board)) if e.name.startswith("syncadv")] == ["syncadv"]
    argv = [
        "--quick",
        "--inline",
        "--entries",
        "syncadv",
        "syncadv-sep",
        "--out",
        str(tmp_path),
        "--threads",
        "1",
    ]
    assert board.main(argv) == 0
    runs = json.loads((tmp_path / "runs.json").read_text())
    assert "baseline:0" not in runs  # trained from scratch: no pretrain baseline is needed
    syn, sep = runs["syncadv:0"], runs["syncadv-sep:0"]
    assert syn["steps"] == {"g": board.QUICK_STEPS, "d": board.QUICK_STEPS}
    assert sep["steps"] == {"g": board.QUICK_STEPS, "r": board.QUICK_STEPS, "d": board.QUICK_STEPS}
    # trained from scratch: the matched baseline gets exactly the generator's updates
    matched = next(v for k, v in runs.items() if k.startswith("baseline, syncadv's"))
    assert matched["steps"]["p"] == syn["steps"]["g"]
    rows = list(csv.DictReader((tmp_path / "leaderboard.csv").open()))
    assert {r["test set"] for r in rows if r["row"] == "syncadv"} == {
        "source_test",
        "new_motion",
        "new_view",
        "moving_camera",
        "all_shift",
    }
