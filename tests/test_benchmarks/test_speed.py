"""The speed benchmarks run end to end at a tiny size, in float32 and under bf16 autocast (smoke only:
no figure here is a speed result, and no reference code is imported)."""

from __future__ import annotations

import json

import pytest
from helpers import load_benchmark


@pytest.mark.parametrize("precision", ["32-true", "bf16-mixed"])
def test_bench_speed_reports_every_phase_and_the_ceiling(tmp_path, monkeypatch, precision):
    monkeypatch.setenv("WANDB_MODE", "disabled")
    argv = ["--batch", "64", "--batches", "6", "--backbones", "simple_baseline", "--precision", precision]
    load_benchmark("bench_speed").main([*argv, "--output", str(tmp_path / "speed.json")])
    saved = json.loads((tmp_path / "speed.json").read_text())
    phases = saved["backbones"]["simple_baseline"]["poseshift"]
    assert saved["matmul_gflops_s"] > 0 and saved["backbones"]["simple_baseline"]["reference"] == {}
    for key in (
        "baseline_plain_sps",
        "baseline_lightning_sps",
        "poseaug_iteration_sps",
        "poseaug_epoch_source_sps",
    ):
        assert phases[key] > 0, key
    assert "| simple_baseline | PoseAug GAN iteration |" in (tmp_path / "speed.md").read_text()


@pytest.mark.parametrize("precision", ["32-true", "bf16-mixed"])
def test_bench_adaptpose_speed_times_gan_and_estimator_steps(tmp_path, monkeypatch, precision):
    monkeypatch.setenv("WANDB_MODE", "disabled")
    argv = ["--batches", "3", "--channels", "16", "--precision", precision]
    res = load_benchmark("bench_adaptpose_speed").main([*argv, "--output", str(tmp_path / "adaptpose.json")])
    assert res["precision"] == precision and res["lifter_steps"] > 0
    assert res["gan_samples_per_s"] > 0 and res["estimator_samples_per_s"] > 0
