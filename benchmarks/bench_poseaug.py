"""Baseline vs. PoseAug (and its ablation rows) on the embedded mocap benchmark, over seeds.

For every seed: train the baseline lifter for ``--pretrain-epochs`` (PoseAug needs a pretrained
lifter), then from that checkpoint train (a) the baseline for ``--epochs`` more epochs (same
budget) and (b) PoseAug for ``--epochs`` epochs, plus one PoseAug run per ablation row
(``experiments/poseaug/ablations/<row>.yaml``, model options only). Every run is tested with its
final weights (last epoch; no test-set selection) on the source test set and every target
domain; the table gives mean +- std over seeds of MPJPE / PA-MPJPE (mm) and PCK / AUC (%).

Usage::

    python benchmarks/bench_poseaug.py                       # 3 seeds, 20 + 20 epochs, main rows
    python benchmarks/bench_poseaug.py --ablations all       # + every Table 5/6/7 row
    python benchmarks/bench_poseaug.py --double-baseline     # + a baseline with PoseAug's lifter-step count
    # smoke run:
    python benchmarks/bench_poseaug.py --seeds 0 --pretrain-epochs 1 --epochs 1 --limit-train-batches 3

Results go to ``runs/bench-poseaug/results.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from data_modules.mocap import MocapDataModule  # noqa: E402
from poseshift.methods.baseline import Baseline  # noqa: E402
from poseshift.methods.poseaug import PoseAug  # noqa: E402
from poseshift.trainers import quiet_trainer  # noqa: E402

ABLATION_DIR = ROOT / "experiments" / "poseaug" / "ablations"
# rows that only change model options (the others need H36M subjects or target files)
MODEL_ROWS = (
    "table5_variant_a",
    "table5_variant_b",
    "table5_variant_c",
    "table5_variant_d",
    "table6_variant_a",
    "table6_variant_b",
    "table7_kcs",
    "paper_feedback",
    "paper_schedule",
)
BACKBONE_KWARGS = {
    "simple_baseline": {"num_stages": 2, "dropout": 0.25},
    "videopose": {"dropout": 0.25},
    "semgcn": {"dropout": 0.0},
    "stgcn": {"dropout": 0.0},
}
LR_P = {"semgcn": 1e-3}  # README: 1e-4 for the others
METRICS = ("mpjpe", "pa_mpjpe", "pck", "auc")
# last-step values that tell whether the augmentor has learnt plausible pairs yet
DIAGNOSTICS = (
    "poseaug/kept_fraction",
    "aug/rotation_deg_mean",
    "aug/translation_z_mean",
    "poseaug/ratio_ba",
    "poseaug/ratio_rt",
    "train/d2d_loss",
    "train/d3d_loss",
)


def ablation_options(row: str) -> dict[str, Any]:
    """``model.init_args`` of an ablation overlay YAML."""
    cfg = yaml.safe_load((ABLATION_DIR / f"{row}.yaml").read_text())
    if set(cfg) != {"model"}:
        raise ValueError(f"{row}: only model-option rows run on the mocap benchmark")
    return cfg["model"]["init_args"]


def make_trainer(args: argparse.Namespace, epochs: int, root: Path) -> pl.Trainer:
    return quiet_trainer(
        max_epochs=epochs,
        enable_checkpointing=True,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        limit_train_batches=args.limit_train_batches or 1.0,
        default_root_dir=str(root),
    )


def test_metrics(trainer: pl.Trainer, model: pl.LightningModule, dm: MocapDataModule) -> dict[str, float]:
    out: dict[str, float] = {}
    for d in trainer.test(model, datamodule=dm, verbose=False):
        out.update({k: float(v) for k, v in d.items() if k.startswith("test/") and k.count("/") == 2})
    return out


def run_seed(seed: int, args: argparse.Namespace, dm: MocapDataModule, rows: list[str]) -> dict[str, dict]:
    root = Path(args.output) / f"seed{seed}"
    kw = BACKBONE_KWARGS[args.backbone]
    results: dict[str, dict] = {}
    timings: dict[str, float] = {}
    diagnostics: dict[str, dict[str, float]] = {}

    pl.seed_everything(seed, verbose=False)
    base = Baseline(
        backbone=args.backbone, backbone_kwargs=kw, lr=1e-3 if args.backbone != "semgcn" else 2e-2
    )
    t = time.perf_counter()
    tr = make_trainer(args, args.pretrain_epochs, root / "pretrain")
    tr.fit(base, datamodule=dm)
    timings["pretrain"] = time.perf_counter() - t
    ckpt = root / "pretrain.ckpt"
    tr.save_checkpoint(ckpt)
    results["baseline (pretrained)"] = test_metrics(tr, base, dm)

    pl.seed_everything(seed, verbose=False)
    cont = Baseline.load_from_checkpoint(ckpt)
    t = time.perf_counter()
    tr = make_trainer(args, args.epochs, root / "baseline")
    tr.fit(cont, datamodule=dm)
    timings["baseline"] = time.perf_counter() - t
    results["baseline (same budget)"] = test_metrics(tr, cont, dm)

    if args.double_baseline:
        # PoseAug's lifter takes two passes per epoch after warm-up (augmented buffer, then real pairs):
        # this row matches its number of lifter updates instead of its number of epochs
        pl.seed_everything(seed, verbose=False)
        cont = Baseline.load_from_checkpoint(ckpt)
        t = time.perf_counter()
        tr = make_trainer(args, 2 * args.epochs, root / "baseline2x")
        tr.fit(cont, datamodule=dm)
        timings["baseline2x"] = time.perf_counter() - t
        results["baseline (2x epochs)"] = test_metrics(tr, cont, dm)

    for row in ["poseaug", *rows]:
        pl.seed_everything(seed, verbose=False)
        options = {} if row == "poseaug" else ablation_options(row)
        model = PoseAug(
            backbone=args.backbone,
            backbone_kwargs=kw,
            pretrained=str(ckpt),
            lr_p=LR_P.get(args.backbone, 1e-4),
            epochs=args.epochs,
            **options,
        )
        t = time.perf_counter()
        tr = make_trainer(args, args.epochs, root / row)
        tr.fit(model, datamodule=dm)
        timings[row] = time.perf_counter() - t
        diagnostics[row] = {k: float(v) for k, v in tr.callback_metrics.items() if k in DIAGNOSTICS}
        diagnostics[row]["g_steps"] = int(model.g_steps)
        results[row] = test_metrics(tr, model, dm)
        print(f"seed {seed} {row}: {timings[row]:.0f} s", flush=True)
    results["_timings_s"] = timings
    results["_diagnostics"] = diagnostics  # the augmentor's state at the last step of each run
    return results


def summarize(per_seed: list[dict[str, dict]]) -> tuple[dict, str]:
    rows = [r for r in per_seed[0] if not r.startswith("_")]
    sets = sorted({k.split("/")[1] for k in per_seed[0][rows[0]]})
    summary: dict[str, dict[str, dict[str, list[float]]]] = {}
    lines = ["| row | test set | MPJPE | PA-MPJPE | PCK | AUC |", "|---|---|---|---|---|---|"]
    for row in rows:
        summary[row] = {}
        for s in sets:
            cells = []
            summary[row][s] = {}
            for m in METRICS:
                vals = [seed_res[row][f"test/{s}/{m}"] for seed_res in per_seed]
                mean = statistics.fmean(vals)
                std = statistics.stdev(vals) if len(vals) > 1 else 0.0
                summary[row][s][m] = [mean, std]
                cells.append(f"{mean:.1f} ± {std:.1f}")
            lines.append(f"| {row} | {s} | " + " | ".join(cells) + " |")
    return summary, "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--backbone", default="simple_baseline", choices=sorted(BACKBONE_KWARGS))
    parser.add_argument(
        "--batch-size", type=int, default=256, help="both methods (256 as experiments/baseline/mocap.yaml)"
    )
    parser.add_argument("--pretrain-epochs", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument(
        "--ablations", nargs="*", default=[], help="rows of experiments/poseaug/ablations, or 'all'"
    )
    parser.add_argument(
        "--double-baseline",
        action="store_true",
        help="add a baseline row with 2x epochs (~PoseAug's lifter steps)",
    )
    parser.add_argument("--limit-train-batches", type=int, default=None, help="smoke runs only")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--output", default="runs/bench-poseaug")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = list(MODEL_ROWS) if args.ablations == ["all"] else list(args.ablations)
    dm = MocapDataModule(batch_size=args.batch_size, seed=0)  # one benchmark; seeds vary the training only
    dm.setup("fit")
    start = time.perf_counter()
    per_seed = [run_seed(s, args, dm, rows) for s in args.seeds]
    summary, table = summarize(per_seed)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(
        json.dumps({"args": vars(args), "per_seed": per_seed, "summary": summary}, indent=2)
    )
    header = (
        f"backbone {args.backbone}, batch {args.batch_size}, seeds {args.seeds}, "
        f"{args.pretrain_epochs} pretrain + {args.epochs} epochs, "
        f"last-epoch weights, total {time.perf_counter() - start:.0f} s\n\n"
    )
    diag = ["| row (seed " + str(args.seeds[0]) + ") | G steps | " + " | ".join(DIAGNOSTICS) + " |"]
    diag.append("|---" * (len(DIAGNOSTICS) + 2) + "|")
    for row, values in per_seed[0]["_diagnostics"].items():
        cells = [f"{values[k]:.3g}" if k in values else "-" for k in DIAGNOSTICS]
        diag.append(f"| {row} | {values['g_steps']} | " + " | ".join(cells) + " |")
    table = (
        table + "\n\nAugmentor at the last step (kept = in-frame augmented pairs the lifter trains on):\n\n"
    )
    table += "\n".join(diag)
    (out / "results.md").write_text(header + table + "\n")
    print(header + table)
    return summary


if __name__ == "__main__":
    main()
