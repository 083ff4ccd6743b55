"""One leaderboard for every method on the embedded mocap benchmark, with budgets in optimizer steps.

Every row is a method's experiment config (``experiments/<method>/mocap*.yaml``, exactly what
``poseshift fit --config`` builds) trained for a budget counted in optimizer steps of its main
player and tested with its last weights (no test-set selection) on the source test set and every
target domain. Methods that start from a pretrained lifter start from the same baseline run of
their backbone (``Entry.baseline``: the SimpleBaseline ``baseline`` for ``PRETRAIN_STEPS`` lifter
steps per seed, or e.g. AdaptPose's 27-frame VideoPose3D ``baseline-vpose27``), and each of them
is compared with a baseline that gets **the same number of lifter updates** in total: the same
Baseline continued to ``pretrain + the method's lifter steps`` (a fresh run with the same seed
and a step-based schedule retraces the pretraining exactly, then continues). Ablation rows may
run fewer seeds (``Entry.max_seeds``; the table's ``seeds`` column says how many).

Each run is a separate process (``--jobs`` at a time) whose result is a JSON file; a killed
leaderboard continues where it stopped (finished runs are not repeated; ``--fresh`` redoes them).
The outputs in ``--out``: ``leaderboard.md`` and ``leaderboard.csv`` (mean +- std over seeds of
MPJPE, PA-MPJPE, PCK, AUC on every test set, and the gain over the matched baseline in mm and
%), ``leaderboard.png`` (MPJPE bars with std error bars), ``runs.json`` (every run), and, unless
``WANDB_MODE=disabled``, a W&B run (offline unless logged in) with the table and the plot.

Usage::

    python benchmarks/leaderboard.py                          # every method, 3 seeds
    python benchmarks/leaderboard.py --group poseaug          # baseline vs PoseAug + its ablations
    python benchmarks/leaderboard.py --quick                  # smoke run: tiny budgets, one seed
    python benchmarks/leaderboard.py --list                   # the entries and their budgets

``make bench``, ``make bench-poseaug``, ... call it (arguments through ``ARGS="..."``).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
METRICS = ("mpjpe", "pa_mpjpe", "pck", "auc")
LOWER_IS_BETTER = {"mpjpe": True, "pa_mpjpe": True, "pck": False, "auc": False}
BATCHES_PER_EPOCH = 102  # the embedded benchmark's 26,240 training poses in batches of 256
PRETRAIN_STEPS = 20 * BATCHES_PER_EPOCH  # 2,040 lifter steps: the baseline's loss has flattened by then
QUICK_STEPS = 6
# last-step values worth reading beside the metrics (whether the adversarial players did anything)
DIAGNOSTICS = (
    "poseaug/kept_fraction",
    "poseaug/kept_fraction_strict",
    "aug/rotation_geodesic_deg_mean",
    "aug/translation_z_mean",
    "poseaug/ratio_ba",
    "poseaug/ratio_rt",
    "train/d2d_loss",
    "train/d3d_loss",
    "adaptpose/kept_fraction",
    "adaptpose/kept_in_frame",
    "adaptpose/kept_in_band",
    "adaptpose/ratio_rt",
    "aug/camera_sigma_mean",
    "poseda/kept_fraction",
    "poseda/root_depth_mean",
    "train/wasserstein_3d",
    "aug/bone_angle_deg_mean",
    "train/wasserstein",
    "train/g_angle",
)


@dataclass(frozen=True)
class Entry:
    """A row of the leaderboard.

    Args:
        name: row name (also its folder under ``--out``).
        config: experiment config, relative to the repository root.
        steps: budget: optimizer steps of ``player`` (rounded up to whole epochs of the benchmark's
            102 batches); 0 when ``epochs`` gives it.
        why: why this budget (shown by ``--list`` and in the table's header).
        player: the player whose steps the budget counts (``"p"``: the lifter).
        epochs: the budget in epochs, for rows whose data is not the benchmark's 102 batches.
        overrides: extra command-line options, e.g. ``("--model.init_args.use_ba", "false")``.
        pretrained: start from the seed's ``pretrain`` baseline checkpoint.
        lifter: the players that are the lifter (their steps are the matched baseline's budget).
        schedule_arg: model argument that takes the schedule length in ``player`` steps, so the
            method's schedules (LR decay, ramps) span exactly the budget.
        warmup_arg: model argument that takes the warm-up in ``player`` steps.
        warmup_fraction: warm-up as a fraction of the budget.
        groups: the ``make bench-<group>`` targets that run this row (``all`` runs every row).
        prepare: commands run first in the run's folder (``{dir}``, ``{seed}`` are filled in),
            e.g. EvoSkeleton's dataset evolution.
        main: a main row of the full leaderboard (not only an ablation of its group).
        baseline: the Baseline entry (same backbone) this row starts from and is matched against.
        max_seeds: run only the first this many seeds (ablation rows, to save time); ``None`` = all.
    """

    name: str
    config: str
    steps: int
    why: str
    player: str = "p"
    epochs: int | None = None
    overrides: tuple[str, ...] = ()
    pretrained: bool = False
    lifter: tuple[str, ...] = ("p",)
    schedule_arg: str | None = None
    warmup_arg: str | None = None
    warmup_fraction: float = 0.0
    groups: tuple[str, ...] = ()
    prepare: tuple[tuple[str, ...], ...] = ()
    main: bool = True
    baseline: str = "baseline"
    max_seeds: int | None = None


POSEAUG = dict(
    config="experiments/poseaug/mocap.yaml",
    steps=30 * BATCHES_PER_EPOCH,
    player="g",
    pretrained=True,
    schedule_arg="schedule_steps",
    warmup_arg="warmup_steps",
    warmup_fraction=0.04,
    groups=("poseaug",),
    why=(
        "3,060 G steps (30 epochs at batch 256) with a 4 % warm-up (122 steps; the reference's 2 of "
        "50 epochs): the augmentor's rotation and kept fraction have left their random start by then, "
        "which ~600 steps did not; the reference runs ~75,000 at batch 1024"
    ),
)


def _poseaug_ablation(name: str, why: str, *overrides: str) -> Entry:
    return Entry(name=name, overrides=overrides, main=False, **{**POSEAUG, "why": why})


ADAPTPOSE_STEPS = 10 * BATCHES_PER_EPOCH
ADAPTPOSE = dict(
    config="experiments/adaptpose/mocap.yaml",
    steps=ADAPTPOSE_STEPS,
    player="g",
    pretrained=True,
    baseline="baseline-vpose27",
    schedule_arg="schedule_steps",
    warmup_arg="warmup_steps",
    warmup_fraction=0.04,
    groups=("adaptpose",),
    why=(
        "1,020 G steps (10 epochs at batch 256; 5 sections per epoch) with a 4 % warm-up (40 steps; the "
        "code's 2 of 50 epochs), from the 27-frame VideoPose3D baseline (256 channels): a G step costs "
        "~5 lifter steps here (three feedback passes, the target pass, the section and real passes), so "
        "this is what fits tens of minutes per run on 2 shared cores; the code runs ~75,000 at batch 1024"
    ),
)
SYNCADV = dict(
    config="experiments/syncadv/mocap.yaml",
    steps=10 * BATCHES_PER_EPOCH,
    player="g",
    lifter=("g",),
    groups=("syncadv",),
    why=(
        "1,020 generator updates (10 epochs at batch 256, one critic step per batch), from scratch: "
        "SyncAdv's lifter is its generator, trained by the adversarial loss alone, and its matched "
        "baseline gets the same 1,020 supervised updates; an iteration costs ~1.7x a baseline step "
        "(generator, reprojection network and critic with its gradient penalty), so 10 epochs is what "
        "3 seeds x 3 rows fit in on a shared 2-core CPU; syncadv-long (20 epochs) shows the trend"
    ),
)


def _adaptpose_ablation(
    name: str, why: str, *overrides: str, seeds: int | None = 1, group: str = "adaptpose", **changes: Any
) -> Entry:
    spec = {
        **ADAPTPOSE,
        "why": why + (f"; {seeds} seed(s) to save time" if seeds else ""),
        "groups": (group,),
        **changes,
    }
    return Entry(name=name, overrides=overrides, main=False, max_seeds=seeds, **spec)


# PoseDA: every row trains the lifter for the same POSEDA_LIFTER_STEPS (one matched baseline).
# Adversarial rows first warm G and the critic up for POSEDA_WARMUP iterations (one critic step
# each, a G step every 5th); the GPA-only rows have no adversarial players and no warm-up.
POSEDA_WARMUP = 15 * BATCHES_PER_EPOCH  # 1,530 critic steps, 306 G steps
POSEDA_LIFTER_STEPS = 10 * BATCHES_PER_EPOCH  # 1,020 lifter steps on 2 x 256 mixed pairs
POSEDA = dict(
    config="experiments/poseda/mocap.yaml",
    steps=POSEDA_WARMUP + POSEDA_LIFTER_STEPS,
    player="d3d",
    pretrained=True,
    warmup_arg="warmup_steps",
    warmup_fraction=POSEDA_WARMUP / (POSEDA_WARMUP + POSEDA_LIFTER_STEPS),
    groups=("poseda",),
    why=(
        "2,550 iterations (critic steps) = 1,530 of G/critic warm-up (306 G steps) + 1,020 lifter steps on "
        "the 1:1 mix (10 epochs at batch 256). The paper warms up for 5 epochs and trains 5-10 in all; "
        "a warm-up iteration costs about a quarter of a lifter iteration here, so the warm-up is the "
        "longer part and G gets 3x the G steps of a 5-epoch warm-up"
    ),
)
POSEDA_GPA_ONLY = dict(
    POSEDA,
    steps=POSEDA_LIFTER_STEPS,
    player="p",
    warmup_arg=None,
    warmup_fraction=0.0,
    why="1,020 lifter steps on the 1:1 mix of GPA pairs and source pairs (no adversarial players)",
)


def _poseda_row(name: str, why: str, *overrides: str, gpa_only: bool = False, group: str = "poseda") -> Entry:
    base = POSEDA_GPA_ONLY if gpa_only else POSEDA
    overrides = (*overrides, "--model.init_args.use_lpa=false") if gpa_only else overrides
    return Entry(name=name, overrides=overrides, main=False, **{**base, "why": why, "groups": (group,)})


def _syncadv_row(name: str, why: str, overlay: str, group: str = "syncadv") -> Entry:
    return Entry(
        name=name,
        overrides=(f"--config=experiments/syncadv/ablations/{overlay}.yaml",),
        main=False,
        **{**SYNCADV, "why": why, "groups": (group,)},
    )


ENTRIES: dict[str, Entry] = {
    e.name: e
    for e in (
        Entry(
            name="baseline",
            config="experiments/baseline/mocap.yaml",
            steps=PRETRAIN_STEPS,
            why="the pretrained lifter every adaptation method starts from (20 epochs at batch 256)",
            groups=("poseaug", "evoskeleton", "poseda", "poseda-extra"),
        ),
        Entry(name="poseaug", **POSEAUG),
        _poseaug_ablation(
            "poseaug-ba-only",
            "Table 5: BA only",
            "--config=experiments/poseaug/ablations/table5_variant_a.yaml",
        ),
        _poseaug_ablation(
            "poseaug-no-feedback", "Table 5: no feedback", "--model.init_args.use_feedback=false"
        ),
        _poseaug_ablation(
            "poseaug-d3d-only",
            "Table 6: D3d only",
            "--config=experiments/poseaug/ablations/table6_variant_b.yaml",
        ),
        _poseaug_ablation(
            "poseaug-full-kcs",
            "Table 7: whole-body KCS",
            "--config=experiments/poseaug/ablations/table7_kcs.yaml",
        ),
        _poseaug_ablation(
            "poseaug-strict-filter", "the strict in-frame filter", "--model.init_args.in_frame_filter=strict"
        ),
        Entry(name="poseda", **POSEDA),
        _poseda_row("poseda-gpa-only", "GPA only (paper Table 4 '+GPA')", gpa_only=True),
        _poseda_row("poseda-lpa-only", "LPA only (Table 4 '+LPA')", "--model.init_args.use_gpa=false"),
        _poseda_row(
            "poseda-gp",
            "gradient penalty instead of weight clipping",
            "--model.init_args.critic_constraint=gp",
            group="poseda-extra",
        ),
        _poseda_row(
            "poseda-d2d-target",
            "Table 7: a 2D critic on target 2D",
            "--model.init_args.d2d=target",
            group="poseda-extra",
        ),
        _poseda_row(
            "poseda-gpa-row0",
            "GPA only with the released function's row-0 focal length for every sample's depth",
            "--model.init_args.gpa_row0_focal=true",
            gpa_only=True,
            group="poseda-extra",
        ),
        *(
            _poseda_row(
                f"poseda-gpa-only-{domain}",
                f"GPA only, adapted to {domain}'s unlabeled 2D instead of all_shift's",
                f"--data.init_args.train_target={domain}",
                gpa_only=True,
                group="poseda-extra",
            )
            for domain in ("new_view", "moving_camera")
        ),
        _poseda_row(
            "poseda-rr-bl",
            "Table 6 'RR + BL': GPA with random vertical rotation (+-180 deg) and bone lengths (+-20 %)",
            "--model.init_args.random_rotation_deg=180",
            "--model.init_args.random_bone_length=0.2",
            gpa_only=True,
            group="poseda-extra",
        ),
        Entry(
            name="baseline-vpose27",
            config="experiments/adaptpose/baseline_mocap.yaml",
            steps=PRETRAIN_STEPS,
            why="AdaptPose's pretrained lifter: 27-frame VideoPose3D (256 channels), 20 epochs at batch 256",
            groups=("adaptpose",),
            main=False,
        ),
        Entry(name="adaptpose", **ADAPTPOSE),
        _adaptpose_ablation(
            "adaptpose-bg1", "Table 6: BG1", "--config=experiments/adaptpose/ablations/table6_bg1.yaml"
        ),
        _adaptpose_ablation(
            "adaptpose-bg2", "Table 6: BG2", "--config=experiments/adaptpose/ablations/table6_bg2.yaml"
        ),
        _adaptpose_ablation(
            "adaptpose-deterministic",
            "Table 7: deterministic axis-angle camera",
            "--config=experiments/adaptpose/ablations/table7_deterministic.yaml",
        ),
        _adaptpose_ablation(
            "adaptpose-quaternion",
            "Table 7: probabilistic quaternion camera",
            "--config=experiments/adaptpose/ablations/table7_quaternion.yaml",
        ),
        _adaptpose_ablation(
            "adaptpose-euler",
            "Table 7: probabilistic Euler camera",
            "--config=experiments/adaptpose/ablations/table7_euler.yaml",
        ),
        _adaptpose_ablation(
            "adaptpose-paper",
            "the paper's variants (reparameterized camera, L_proj eq. 18, in-band feedback, 10-degree "
            "perturbation, full-KCS and 2D-KCS branches, stride 2-5)",
            "--config=experiments/adaptpose/ablations/paper.yaml",
            group="adaptpose-more",
        ),
        _adaptpose_ablation(
            "adaptpose-no-selection",
            "Table 5 A5: no selection",
            "--config=experiments/adaptpose/ablations/table5_a5.yaml",
            group="adaptpose-more",
        ),
        _adaptpose_ablation(
            "adaptpose-no-dd",
            "Table 5 A3: bone and camera generation without domain discriminator and selection",
            "--config=experiments/adaptpose/ablations/table5_a3.yaml",
            group="adaptpose-more",
        ),
        Entry(
            name="baseline-vpose1",
            config="experiments/adaptpose/baseline_mocap_1frame.yaml",
            steps=PRETRAIN_STEPS,
            why="the single-frame VideoPose3D baseline (256 channels) for Table 8's 1-frame row",
            groups=("adaptpose-more",),
            main=False,
        ),
        _adaptpose_ablation(
            "adaptpose-1frame",
            "Table 8: single-frame lifter and generator",
            group="adaptpose-more",
            baseline="baseline-vpose1",
            config="experiments/adaptpose/mocap_1frame.yaml",
        ),
        Entry(name="syncadv", **SYNCADV),
        _syncadv_row("syncadv-sep", "Table 5: Sep (generator and reprojection network trained apart)", "sep"),
        _syncadv_row("syncadv-kcs", "Table 5: plain KCS instead of the weighted KCS", "kcs_plain"),
        _syncadv_row("syncadv-no-kcs", "no KCS branch", "kcs_none", "syncadv-ablations"),
        _syncadv_row(
            "syncadv-small-rotation", "turns in U[-pi/6, pi/6]", "small_rotation", "syncadv-ablations"
        ),
        _syncadv_row(
            "syncadv-paper-pairs",
            "source only, paired real samples (the paper)",
            "paper_pairs",
            "syncadv-ablations",
        ),
        _syncadv_row(
            "syncadv-target-2d", "the critic's real 2D from the target", "target_real_2d", "syncadv-ablations"
        ),
        _syncadv_row(
            "syncadv-hidden-head", "RepNet's hidden critic head", "hidden_head", "syncadv-ablations"
        ),
        Entry(
            name="syncadv-long",
            main=False,
            **{
                **SYNCADV,
                "steps": 20 * BATCHES_PER_EPOCH,
                "groups": ("syncadv-ablations",),
                "why": "twice the budget: 2,040 generator updates (20 epochs)",
            },
        ),
        Entry(
            name="evoskeleton",
            config="experiments/evoskeleton/mocap_BCE.yaml",
            steps=0,
            epochs=20,
            player="learner0",
            lifter=("learner0", "learner1"),
            why=(
                "2 learners x 10 epochs each on the source plus evolved pairs (batch 1024), trained stage "
                "by stage: the cascade's own schedule, with as many epochs per learner as the baseline has"
            ),
            groups=("evoskeleton",),
            prepare=(
                (
                    "poseshift",
                    "evolve",
                    "--config=experiments/evoskeleton/evolve_mocap.yaml",
                    "--output={dir}/evolved.npz",
                    "--seed={seed}",
                    "--progress=false",
                ),
            ),
            overrides=(
                "--data.init_args.path={dir}/evolved.npz",
                "--model.init_args.epochs_per_stage={epochs_per_learner}",
            ),
        ),
    )
}


# -- one run, in its own process -----------------------------------------------------------------
def run_one(spec: dict[str, Any]) -> dict[str, Any]:
    """Fit and test one configuration; returns metrics, player steps and diagnostics."""
    import torch

    from poseshift.cli import build_cli

    if spec.get("threads"):
        torch.set_num_threads(spec["threads"])
    args = [
        "--config",
        str(ROOT / spec["config"]),
        *spec["args"],
        f"--seed_everything={spec['seed']}",
        "--trainer.logger=false",
        "--trainer.callbacks=[]",
        "--trainer.enable_checkpointing=false",
        "--trainer.enable_progress_bar=false",
        "--trainer.enable_model_summary=false",
        "--trainer.limit_val_batches=0",
        "--trainer.num_sanity_val_steps=0",
        f"--trainer.default_root_dir={spec['dir']}",
        f"--trainer.accelerator={spec['accelerator']}",
        f"--trainer.precision={spec.get('precision', '32-true')}",
        "--trainer.devices=1",
    ]
    if spec.get("max_steps"):
        args.append(f"--trainer.max_steps={spec['max_steps']}")
        args.append("--trainer.max_epochs=-1")
    else:
        args.append(f"--trainer.max_epochs={spec['epochs']}")
    if spec.get("pretrained"):
        args.append(f"--model.init_args.pretrained={spec['pretrained']}")
    cli = build_cli(args, run=False)
    model, dm, trainer = cli.model, cli.datamodule, cli.trainer
    start = time.perf_counter()
    trainer.fit(model, datamodule=dm)
    fit_s = time.perf_counter() - start
    diagnostics = {k: float(v) for k, v in trainer.callback_metrics.items() if k in DIAGNOSTICS}
    if spec.get("save"):
        trainer.save_checkpoint(spec["save"])
    metrics: dict[str, float] = {}
    for results in trainer.test(model, datamodule=dm, verbose=False):
        metrics.update({k: float(v) for k, v in results.items() if k.count("/") == 2})
    steps = {n: model.steps_of(n) for n in model.player_modules()} if hasattr(model, "steps_of") else {}
    return {"metrics": metrics, "steps": steps, "fit_seconds": fit_s, "diagnostics": diagnostics}


# -- planning --------------------------------------------------------------------------------------
@dataclass
class Run:
    """One process of the leaderboard: a row (or its matched baseline) for one seed.

    Args:
        label: the row it reports to.
        entry: what it trains.
        seed: the seed.
        dir: its folder (``result.json``, ``error.log``, files of its own).
        pretrained: checkpoint of the pretrain run it starts from.
        save: where to save its final weights (the pretrain run).
        depends: ids of the runs it needs first.
        matched: for a matched baseline: the id of the method run whose lifter steps it copies.
    """

    label: str
    entry: Entry
    seed: int
    dir: Path
    pretrained: Path | None = None
    save: Path | None = None
    depends: list[str] = field(default_factory=list)
    matched: str | None = None

    @property
    def id(self) -> str:
        return f"{self.label}:{self.seed}"

    @property
    def result(self) -> Path:
        return self.dir / "result.json"


def _fill(text: str, values: dict[str, Any]) -> str:
    for k, v in values.items():
        text = text.replace("{" + k + "}", str(v))
    return text


def lifter_steps(result: dict, entry: Entry) -> int:
    """Updates of the lifter in a finished run."""
    return sum(result["steps"].get(name, 0) for name in entry.lifter)


def spec_of(run: Run, args: argparse.Namespace, results: dict[str, dict]) -> dict[str, Any]:
    """The child process's instructions (matched baselines read their budget from ``results``)."""
    entry = run.entry
    per_epoch = args.quick_batches if args.quick else BATCHES_PER_EPOCH
    if args.quick:
        epochs = max(1, math.ceil(QUICK_STEPS / per_epoch))
    else:
        epochs = entry.epochs or max(1, math.ceil(entry.steps / per_epoch))
    values = {"dir": run.dir, "seed": run.seed, "epochs_per_learner": max(1, epochs // 2)}
    extra = [_fill(o, values) for o in entry.overrides]
    length = epochs * per_epoch
    if entry.schedule_arg:  # the method's schedules span exactly the budget
        extra.append(f"--model.init_args.{entry.schedule_arg}={length}")
    if entry.warmup_arg:
        extra.append(f"--model.init_args.{entry.warmup_arg}={round(entry.warmup_fraction * length)}")
    if args.quick:
        extra += [f"--trainer.limit_train_batches={per_epoch}", "--trainer.limit_test_batches=1"]
    spec: dict[str, Any] = {
        "config": entry.config,
        "args": extra,
        "seed": run.seed,
        "dir": str(run.dir),
        "epochs": epochs,
        "max_steps": None,
        "accelerator": args.accelerator,
        "precision": args.precision,
        "threads": args.threads,
        "save": str(run.save) if run.save else None,
        "pretrained": str(run.pretrained) if run.pretrained else None,
    }
    if run.matched:  # the Baseline, as many lifter updates as the method got in total
        method_run = results[run.matched]
        method = ENTRIES[run.matched.split(":")[0]]
        start = results[f"{method.baseline}:{run.seed}"]["steps"]["p"] if method.pretrained else 0
        spec["max_steps"] = start + lifter_steps(method_run, method)
    return spec


def resolved_spec(run: Run, args: argparse.Namespace, results: dict[str, dict]) -> dict[str, Any]:
    """:func:`spec_of`, with a matched baseline's folder set from its budget: one run per step
    count serves every row with that many lifter updates (``<baseline>-steps/<steps>/seed<s>``)."""
    spec = spec_of(run, args, results)
    if run.matched:
        steps_dir = f"{run.entry.name}-steps"  # "baseline-steps" for the SimpleBaseline
        run.dir = run.dir.parents[1] / steps_dir / str(spec["max_steps"]) / f"seed{run.seed}"
        spec["dir"] = str(run.dir)
    return spec


def finished(runs: list[Run], args: argparse.Namespace) -> tuple[list[Run], dict[str, dict]]:
    """The runs that have results (nothing is launched), for a table of a leaderboard still running
    or stopped: a row's seed counts only with its matched baseline's, so gains compare like with like."""
    results: dict[str, dict] = {}
    for run in runs:  # plan order: dependencies first
        if all(d in results for d in run.depends):
            if run.matched:
                resolved_spec(run, args, results)
            if run.result.exists():
                results[run.id] = json.loads(run.result.read_text())
    matched_of = {r.matched: r.id for r in runs if r.matched}
    done = [
        r
        for r in runs
        if r.id in results
        and (r.matched is None or r.matched in results)
        and (r.id not in matched_of or matched_of[r.id] in results)
    ]
    return done, results


def is_baseline(entry: Entry) -> bool:
    """Whether the entry is a pretraining Baseline that other rows start from."""
    return entry.name == "baseline" or any(e.baseline == entry.name for e in ENTRIES.values())


def plan(entries: list[Entry], seeds: list[int], out: Path) -> list[Run]:
    """Runs in dependency order: per seed the baselines the rows need (the pretrained lifters, and
    a baseline row itself), each row, and the row's matched baseline. Rows trained from scratch
    (e.g. SyncAdv's) need only their matched baselines."""
    runs: list[Run] = []
    pretrain: dict[str, Run] = {}
    needed = {e.name for e in entries if is_baseline(e)} | {
        e.baseline for e in entries if not is_baseline(e) and e.pretrained
    }
    for seed in seeds:
        for name in sorted(needed):
            pre = Run(name, ENTRIES[name], seed, out / name / f"seed{seed}")
            pre.save = pre.dir / "last.ckpt"
            pretrain[pre.id] = pre
            runs.append(pre)
        for entry in entries:
            if is_baseline(entry) or (entry.max_seeds is not None and seed not in seeds[: entry.max_seeds]):
                continue
            pre, base = pretrain.get(f"{entry.baseline}:{seed}"), ENTRIES[entry.baseline]
            run = Run(entry.name, entry, seed, out / entry.name / f"seed{seed}")
            if entry.pretrained and pre is not None:
                run.pretrained, run.depends = pre.save, [pre.id]
            matched = Run(
                f"baseline, {entry.name}'s lifter steps",
                base,
                seed,
                out / f"baseline-matched-{entry.name}" / f"seed{seed}",
                depends=([pre.id] if pre is not None else []) + [run.id],
                matched=run.id,
            )
            runs += [run, matched]
    return runs


def execute(runs: list[Run], args: argparse.Namespace, log: Callable[[str], None] = print) -> dict[str, dict]:
    """Run (or reuse) every run, at most ``args.jobs`` at a time, dependencies first."""
    results: dict[str, dict] = {}
    pending = list(runs)
    total, done = len(runs), 0
    start = time.perf_counter()

    def launch(run: Run) -> tuple[Run, dict]:
        spec = resolved_spec(run, args, results)
        # reuse a finished run, unless rows start from its checkpoint and that is gone (e.g. results
        # copied from another machine): a pretraining run is then redone (seeded, so the same weights)
        if run.result.exists() and not args.fresh and (run.save is None or run.save.exists()):
            return run, json.loads(run.result.read_text())
        run.dir.mkdir(parents=True, exist_ok=True)
        for command in () if run.matched else run.entry.prepare:
            cmd = [_fill(c, {"dir": run.dir, "seed": run.seed}) for c in command]
            if cmd[0] == "poseshift":
                cmd = [sys.executable, "-m", "poseshift", *cmd[1:]]
            subprocess.run(cmd, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
        if args.inline:
            result = run_one(spec)
        else:
            proc = subprocess.run(
                [sys.executable, __file__, "--run-one", json.dumps(spec)],
                cwd=ROOT,
                capture_output=True,
                text=True,
            )
            if proc.returncode != 0:
                (run.dir / "error.log").write_text(proc.stdout + proc.stderr)
                raise RuntimeError(f"{run.id} failed; see {run.dir / 'error.log'}")
            result = json.loads(run.result.read_text())
        result["spec"] = spec
        run.result.write_text(json.dumps(result, indent=1))
        return run, result

    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        running: dict[Any, Run] = {}
        while pending or running:
            ready = [r for r in pending if all(d in results for d in r.depends)]
            for run in ready[: max(0, args.jobs - len(running))]:
                pending.remove(run)
                running[pool.submit(launch, run)] = run
            finished = _wait_any(running)
            run, result = finished.result()
            del running[finished]
            results[run.id] = result
            done += 1
            worst = max((v for k, v in result["metrics"].items() if k.endswith("/mpjpe")), default=math.nan)
            log(
                f"[{done}/{total}] {run.label} seed {run.seed}: fit {result.get('fit_seconds', 0):.0f} s, "
                f"steps {result.get('steps', {})}, worst test MPJPE {worst:.1f} mm "
                f"({time.perf_counter() - start:.0f} s so far)"
            )
    return results


def _wait_any(futures: dict[Any, Run]) -> Any:
    done, _ = wait(list(futures), return_when=FIRST_COMPLETED)
    return next(iter(done))


# -- the table ------------------------------------------------------------------------------------
def summarize(runs: list[Run], results: dict[str, dict]) -> list[dict[str, Any]]:
    """One record per (row, test set): mean and std over seeds of each metric, the row's lifter
    updates, and the MPJPE gain over its matched baseline."""
    rows: dict[str, list[tuple[Run, dict]]] = {}
    for run in runs:
        rows.setdefault(run.label, []).append((run, results[run.id]))
    records = []
    for label, seeds in rows.items():
        entry = seeds[0][0].entry
        matched = rows.get(f"baseline, {label}'s lifter steps")
        for s in sorted({k.split("/")[1] for k in seeds[0][1]["metrics"]}):
            rec: dict[str, Any] = {"row": label, "test set": s, "seeds": len(seeds)}
            for m in METRICS:
                vals = [r["metrics"][f"test/{s}/{m}"] for _, r in seeds]
                rec[m] = statistics.fmean(vals)
                rec[f"{m}_std"] = statistics.stdev(vals) if len(vals) > 1 else 0.0
            rec["lifter_steps"] = statistics.fmean(lifter_steps(r, entry) for _, r in seeds)
            if matched:
                base = statistics.fmean(r["metrics"][f"test/{s}/mpjpe"] for _, r in matched)
                rec["gain_mm"] = base - rec["mpjpe"]
                rec["gain_pct"] = 100 * rec["gain_mm"] / base
            records.append(rec)
    return records


def write_outputs(records: list[dict[str, Any]], out: Path, header: str) -> str:
    out.mkdir(parents=True, exist_ok=True)
    lines = [
        "| row | test set | MPJPE (mm) | PA-MPJPE (mm) | PCK (%) | AUC (%) | lifter steps | "
        "MPJPE gain vs matched baseline |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in records:
        cells = [f"{r[m]:.1f} ± {r[f'{m}_std']:.1f}" for m in METRICS]
        gain = f"{r['gain_mm']:+.1f} mm ({r['gain_pct']:+.1f} %)" if "gain_mm" in r else "-"
        lines.append(
            f"| {r['row']} | {r['test set']} | "
            + " | ".join(cells)
            + f" | {r['lifter_steps']:.0f} | {gain} |"
        )
    table = header + "\n\n" + "\n".join(lines) + "\n"
    (out / "leaderboard.md").write_text(table)
    keys = sorted({k for r in records for k in r}, key=lambda k: (k not in ("row", "test set"), k))
    with (out / "leaderboard.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys)
        writer.writeheader()
        writer.writerows(records)
    plot(records, out / "leaderboard.png")
    return table


def plot(records: list[dict[str, Any]], path: Path) -> None:
    """Grouped bars: MPJPE per test set (x), one bar per row, std over seeds as error bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    rows = list(dict.fromkeys(r["row"] for r in records))
    sets = list(dict.fromkeys(r["test set"] for r in records))
    width = 0.8 / max(1, len(rows))
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(sets) + 0.3 * len(rows)), 4.5))
    for i, row in enumerate(rows):
        by_set = {r["test set"]: r for r in records if r["row"] == row}
        x = np.arange(len(sets)) + (i - (len(rows) - 1) / 2) * width
        y = [by_set[s]["mpjpe"] if s in by_set else np.nan for s in sets]
        e = [by_set[s]["mpjpe_std"] if s in by_set else 0 for s in sets]
        ax.bar(x, y, width, yerr=e, capsize=2, label=row)
    ax.set_xticks(np.arange(len(sets)), sets, rotation=15)
    ax.set_ylabel("MPJPE (mm), lower is better")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def log_to_wandb(records: list[dict[str, Any]], out: Path, name: str) -> None:
    if os.environ.get("WANDB_MODE") == "disabled":
        return
    import wandb

    from poseshift.loggers import wandb_logged_in

    run = wandb.init(
        project="poseshift", name=name, dir=str(out), mode="online" if wandb_logged_in() else "offline"
    )
    keys = sorted({k for r in records for k in r})
    run.log(
        {
            "leaderboard": wandb.Table(columns=keys, data=[[r.get(k) for k in keys] for r in records]),
            "leaderboard_plot": wandb.Image(str(out / "leaderboard.png")),
        }
    )
    run.finish()


def select(args: argparse.Namespace) -> list[Entry]:
    if args.entries:
        unknown = [n for n in args.entries if n not in ENTRIES]
        if unknown:
            raise SystemExit(f"error: --entries: unknown {unknown}; known: {sorted(ENTRIES)}")
        return [ENTRIES[n] for n in args.entries]
    if args.group == "all":
        return [e for e in ENTRIES.values() if e.main]
    chosen = [e for e in ENTRIES.values() if args.group in e.groups]
    if not chosen:
        groups = sorted({g for e in ENTRIES.values() for g in e.groups})
        raise SystemExit(f"error: --group: no entry in {args.group!r}; groups: all, {', '.join(groups)}")
    return chosen


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--group", default="all", help="'all' (every method's main row) or a method's group")
    parser.add_argument("--entries", nargs="+", help="explicit rows (see --list)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--quick", action="store_true", help="smoke run: one seed, a few steps per row")
    parser.add_argument("--quick-batches", type=int, default=3, help="training batches per epoch in --quick")
    parser.add_argument("--jobs", type=int, default=1, help="runs at a time (one process each)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads per run")
    parser.add_argument("--accelerator", default="cpu", help="cpu, gpu or auto")
    parser.add_argument(
        "--precision", default="32-true", help="Lightning precision, e.g. bf16-mixed (its accuracy cost)"
    )
    parser.add_argument("--out", default=None, help="output folder (default runs/bench/<group>)")
    parser.add_argument("--fresh", action="store_true", help="redo runs that already have results")
    parser.add_argument("--inline", action="store_true", help="run in this process (tests)")
    parser.add_argument("--list", action="store_true", help="print the entries and their budgets")
    parser.add_argument(
        "--report", action="store_true", help="write the table of the runs finished so far; launch nothing"
    )
    parser.add_argument("--run-one", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.run_one:
        spec = json.loads(args.run_one)
        result = run_one(spec)
        Path(spec["dir"], "result.json").write_text(json.dumps(result, indent=1))
        return 0
    entries = select(args)
    if args.list:
        for e in entries:
            budget = f"{e.epochs} epochs" if e.epochs else f"{e.steps} {e.player} steps"
            print(f"{e.name:<24} {budget:<18} {e.config} {' '.join(e.overrides)}\n{'':<24} {e.why}")
        return 0
    if args.quick:
        args.seeds = args.seeds[:1]
    out = Path(args.out or ROOT / "runs" / "bench" / (args.group + ("-quick" if args.quick else "")))
    runs = plan(entries, args.seeds, out)
    print(f"{len(runs)} runs ({', '.join(e.name for e in entries)}; seeds {args.seeds}) -> {out}", flush=True)
    start = time.perf_counter()
    if args.report:
        total = len(runs)
        runs, results = finished(runs, args)
        if not runs:
            raise SystemExit(f"error: --report: no finished runs in {out} (the --out of a leaderboard run)")
        print(f"{len(runs)} of {total} runs finished (rows count the seeds with their matched baseline)")
    else:
        results = execute(runs, args, log=lambda m: print(m, flush=True))
    records = summarize(runs, results)
    budgets = "; ".join(f"{e.name}: {e.why}" for e in entries)
    header = (
        f"Embedded mocap benchmark, seeds {args.seeds}, precision {args.precision}, last weights, "
        f"{'QUICK smoke budgets, ' if args.quick else ''}"
        + (
            f"{len(runs)} finished runs (a partial table: see each row's seeds). "
            if args.report
            else f"{time.perf_counter() - start:.0f} s for the runs done now on {os.cpu_count()} CPU cores. "
        )
        + f"Budgets: {budgets}."
    )
    (out / "runs.json").write_text(json.dumps(results, indent=1))
    table = write_outputs(records, out, header)
    log_to_wandb(records, out, f"leaderboard-{args.group}")
    print(table, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
