"""Training speed of the baseline and of PoseAug on CPU, against plain PyTorch and the matmul ceiling.

For each backbone (SimpleBaseline, VideoPose3D-1f) at the reference batch size (1024) it reports
training samples per second of

* a baseline step (Lightning ``Baseline``) and the same step as a plain PyTorch loop;
* a full PoseAug iteration (augmentor step, D3d + D2d every second step, feedback through the
  lifter), run by ``PoseAug.training_step`` itself under Lightning;
* a whole PoseAug epoch on the embedded mocap benchmark (bone-length swap, G and D steps, the
  estimator passes over the augmented buffer and the real pairs), in *source* samples per second;

plus the achieved GFLOP/s of each step (FLOPs counted by ``torch.utils.flop_counter``) against a
plain 1024-wide ``nn.Linear`` forward + backward on the same machine, the practical ceiling.

Usage::

    python benchmarks/bench_speed.py [--backbones simple_baseline videopose] [--steps 20] [--threads N]

A shared machine makes the numbers noisy: every rate is the best (fastest) of the timed steps or
epochs, since contention only ever adds time; run it on an idle machine for reference figures.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from data_modules.mocap import MocapDataModule  # noqa: E402
from poseshift.methods.baseline import Baseline  # noqa: E402
from poseshift.methods.poseaug import PoseAug  # noqa: E402
from poseshift.trainers import quiet_trainer  # noqa: E402

BACKBONE_KWARGS = {
    "simple_baseline": {"num_stages": 2, "dropout": 0.25},
    "videopose": {"dropout": 0.25},
}
BATCH = 1024


def _best_rate(times: list[float], batch: int) -> float:
    # the fastest step: on a shared machine other processes only ever add time
    return batch / min(times)


def matmul_ceiling(steps: int) -> float:
    """GFLOP/s of a 1024x1024 Linear forward + backward on a (1024, 1024) batch (3 matmuls)."""
    layer = torch.nn.Linear(1024, 1024)
    x = torch.randn(BATCH, 1024, requires_grad=True)
    flops = 3 * 2 * BATCH * 1024 * 1024
    times = []
    for i in range(steps + 3):
        t = time.perf_counter()
        layer(x).sum().backward()
        if i >= 3:
            times.append(time.perf_counter() - t)
    return flops / min(times) / 1e9


# -- plain PyTorch loops ---------------------------------------------------------------------------
def plain_baseline_step(lifter: torch.nn.Module, opt: torch.optim.Optimizer, x2d, x3d) -> None:
    opt.zero_grad(set_to_none=True)
    F.mse_loss(lifter(x2d), x3d).backward()
    torch.nn.utils.clip_grad_norm_(lifter.parameters(), 1.0)
    opt.step()


def _batches(dm: MocapDataModule, n: int) -> list[dict]:
    out = []
    for b, _, _ in dm.train_dataloader():
        out.append(b["source"])
        if len(out) == n:
            break
    return out


def _count_flops(fn) -> float:
    with FlopCounterMode(display=False) as counter:
        fn()
    return float(counter.get_total_flops())


# -- Lightning timing ------------------------------------------------------------------------------
class BatchTimer(pl.Callback):
    """Wall time of every training batch and of every epoch."""

    def __init__(self) -> None:
        self.batch: list[float] = []
        self.epoch: list[float] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self._t = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.batch.append(time.perf_counter() - self._t)

    def on_train_epoch_start(self, trainer, pl_module):
        self._e = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module):
        self.epoch.append(time.perf_counter() - self._e)


def _trainer(callbacks, **kw) -> pl.Trainer:
    return quiet_trainer(
        limit_val_batches=0,
        num_sanity_val_steps=0,
        callbacks=callbacks,
        default_root_dir="runs/bench-speed",
        **kw,
    )


def bench_backbone(name: str, dm: MocapDataModule, steps: int, epoch_batches: int | None) -> dict:
    kw = BACKBONE_KWARGS[name]
    batches = _batches(dm, steps + 2)
    res: dict[str, float] = {}

    # baseline: plain loop
    base = Baseline(backbone=name, backbone_kwargs=kw)
    lifter = base.lifter.train()
    opt = torch.optim.Adam(lifter.parameters(), lr=1e-3)
    times = []
    for i, b in enumerate(batches):
        t = time.perf_counter()
        plain_baseline_step(lifter, opt, b["pose2d"], b["pose3d"])
        if i >= 2:
            times.append(time.perf_counter() - t)
    res["baseline_plain_sps"] = _best_rate(times, BATCH)
    flops = _count_flops(lambda: plain_baseline_step(lifter, opt, batches[0]["pose2d"], batches[0]["pose3d"]))
    res["baseline_gflops_per_step"] = flops / 1e9
    res["baseline_plain_gflops_s"] = flops / min(times) / 1e9

    # baseline: Lightning
    timer = BatchTimer()
    _trainer([timer], max_steps=steps + 2).fit(Baseline(backbone=name, backbone_kwargs=kw), datamodule=dm)
    res["baseline_lightning_sps"] = _best_rate(timer.batch[2:], BATCH)

    # PoseAug: Lightning, per iteration (non-final batches) and whole epochs
    timer = BatchTimer()
    model = PoseAug(backbone=name, backbone_kwargs=kw, warmup=0, epochs=2)
    limit = epoch_batches if epoch_batches else 1.0
    _trainer([timer], max_epochs=2, limit_train_batches=limit).fit(model, datamodule=dm)
    per_epoch = len(timer.batch) // 2
    # the estimator passes run after the epoch's last batch, outside the timed batches
    iters = timer.batch[1:per_epoch] + timer.batch[per_epoch + 1 :]
    res["poseaug_iter_lightning_sps"] = _best_rate(iters, BATCH)
    res["poseaug_epoch_source_sps"] = per_epoch * BATCH / min(timer.epoch)
    res["epoch_batches"] = per_epoch
    return res


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backbones", nargs="+", default=["simple_baseline", "videopose"])
    parser.add_argument("--steps", type=int, default=20, help="timed steps per measurement")
    parser.add_argument(
        "--epoch-batches", type=int, default=None, help="limit the timed epochs (default: all)"
    )
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--output", default="runs/bench-speed/speed.json")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    pl.seed_everything(0, verbose=False)
    dm = MocapDataModule(batch_size=BATCH)
    dm.setup("fit")
    ceiling = matmul_ceiling(args.steps)
    print(
        f"threads {torch.get_num_threads()}; matmul ceiling (1024-wide Linear fwd+bwd): {ceiling:.1f} GFLOP/s"
    )
    results = {"threads": torch.get_num_threads(), "matmul_gflops_s": ceiling, "backbones": {}}
    header = (
        "| backbone | baseline PL | baseline plain | PL/plain | PoseAug iter PL | "
        "PoseAug epoch (source) | baseline GFLOP/s (% ceiling) |"
    )
    lines = [header, "|---" * 7 + "|"]
    for name in args.backbones:
        r = bench_backbone(name, dm, args.steps, args.epoch_batches)
        results["backbones"][name] = r
        lines.append(
            f"| {name} | {r['baseline_lightning_sps']:.0f} | {r['baseline_plain_sps']:.0f} | "
            f"{r['baseline_lightning_sps'] / r['baseline_plain_sps']:.2f} | "
            f"{r['poseaug_iter_lightning_sps']:.0f} | "
            f"{r['poseaug_epoch_source_sps']:.0f} | {r['baseline_plain_gflops_s']:.1f} "
            f"({100 * r['baseline_plain_gflops_s'] / ceiling:.0f}%) |"
        )
    table = "\n".join(lines)
    print("training samples/s at batch 1024 (best of the timed steps):\n" + table)
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    out.with_suffix(".md").write_text(table + "\n")
    return results


if __name__ == "__main__":
    main()
