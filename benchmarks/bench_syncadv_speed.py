"""Speed of a SyncAdv-wKCS iteration at batch 1024 on this machine (median of timed steps).

An iteration is what ``SyncAdv.training_step`` does for one batch with ``n_critic=1``: the
generator lifts the batch (with its graph), one critic step (Wasserstein loss + gradient penalty)
and one generator step (Syn: generator + reprojection network; Sep: generator, then the
reprojection network). Measured under Lightning on embedded-benchmark batches (MocapDataModule),
with the networks of ``experiments/syncadv/mocap.yaml``; beside it, a critic-only step (a batch
of an ``n_critic > 1`` run that updates only the critic) and the supervised baseline's step
(SimpleBaseline, 2 stages, 1024 wide: the same lifter size) for scale. The baseline's FLOPs are
counted with ``torch.utils.flop_counter`` to give its achieved GFLOP/s; the counter cannot follow
the gradient penalty's ``autograd.grad`` on leaf inputs, so SyncAdv's rows show "n/a" there.

Usage::

    python benchmarks/bench_syncadv_speed.py [--threads 1 2] [--steps 20] [--batch 1024]

Every figure is the **median** over the timed steps (after warm-up steps). Two clocks: wall time
(what a run takes on this machine now, including waiting for a core when other processes compete)
and this process's CPU time (``time.process_time``: the computing the step needs, nearly
independent of other processes when torch uses one thread). The load average is printed; on an
idle machine with one thread the two agree.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from pathlib import Path

import pytorch_lightning as pl
import torch
from torch.utils.flop_counter import FlopCounterMode

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from data_modules.mocap import MocapDataModule  # noqa: E402
from poseshift.methods import Baseline, SyncAdv  # noqa: E402
from poseshift.trainers import quiet_trainer  # noqa: E402

# experiments/syncadv/mocap.yaml: the networks, one critic step per generator update
NETWORKS = {"g_width": 1024, "r_width": 1024, "d_width": 256, "n_critic": 1}


class StepTimer(pl.Callback):
    """Wall and CPU time of every training batch (forward, backward and optimizer steps of all players)."""

    def __init__(self) -> None:
        self.wall: list[float] = []
        self.cpu: list[float] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self._start = (time.perf_counter(), time.process_time())

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.wall.append(time.perf_counter() - self._start[0])
        self.cpu.append(time.process_time() - self._start[1])


def timed_fit(model: pl.LightningModule, dm: MocapDataModule, batches: int) -> StepTimer:
    timer = StepTimer()
    trainer = quiet_trainer(
        max_epochs=1,
        limit_train_batches=batches,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        callbacks=[timer],
    )
    trainer.fit(model, datamodule=dm)
    return timer


def step_flops(model: pl.LightningModule, dm: MocapDataModule) -> float:
    """FLOPs of one training batch, counted on a second one-batch fit."""
    counter = FlopCounterMode(display=False)

    class Count(pl.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            counter.__enter__()

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            counter.__exit__(None, None, None)

    quiet_trainer(max_epochs=1, limit_train_batches=1, limit_val_batches=0, callbacks=[Count()]).fit(
        model, datamodule=dm
    )
    return float(counter.get_total_flops())


def cases() -> dict[str, callable]:
    return {
        "SyncAdv iteration, Syn (critic + generator/reprojection)": lambda: SyncAdv(**NETWORKS),
        "SyncAdv iteration, Sep (critic + generator + reprojection)": lambda: SyncAdv(
            **NETWORKS, training="sep"
        ),
        "SyncAdv critic-only step (n_critic > 1 batches)": lambda: SyncAdv(**{**NETWORKS, "n_critic": 10**9}),
        "baseline step (SimpleBaseline 2x1024, for scale)": lambda: Baseline(
            backbone_kwargs={"num_stages": 2, "dropout": 0.25}
        ),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, os.cpu_count() or 1])
    parser.add_argument("--steps", type=int, default=20, help="timed steps per case")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    parser.add_argument("--batch", type=int, default=1024)
    args = parser.parse_args(argv)
    dm = MocapDataModule(batch_size=args.batch)
    dm.setup("fit")
    rows = []
    flops_of: dict[str, float] = {}
    for threads in sorted(set(args.threads)):
        torch.set_num_threads(threads)
        for label, build in cases().items():
            pl.seed_everything(0)
            timer = timed_fit(build(), dm, args.warmup + args.steps)
            times, cpu = timer.wall[args.warmup :], timer.cpu[args.warmup :]
            if label not in flops_of:  # the penalty's autograd.grad defeats the counter: NaN
                flops_of[label] = step_flops(build(), dm) if label.startswith("baseline") else math.nan
            flops = flops_of[label]
            median, median_cpu = statistics.median(times), statistics.median(cpu)
            rows.append(
                (
                    threads,
                    label,
                    1000 * median,
                    1000 * median_cpu,
                    args.batch / median,
                    flops / median_cpu / 1e9,
                )
            )
            print(
                f"{threads} thread(s) | {label}: median {1000 * median:.0f} ms wall, "
                f"{1000 * median_cpu:.0f} ms CPU",
                flush=True,
            )
    load = os.getloadavg()
    print(
        f"\nbatch {args.batch}, median of {args.steps} timed steps after {args.warmup} warm-up, "
        f"torch {torch.__version__}, {os.cpu_count()} CPU cores, load average {load[0]:.1f} / {load[1]:.1f}\n"
    )
    print(
        "| threads | step | median wall ms | median CPU ms | samples/s (wall) | GFLOP/s (CPU) |\n"
        "|---|---|---|---|---|---|"
    )
    for threads, label, ms, cpu_ms, sps, gflops in rows:
        rate = "n/a" if gflops != gflops else f"{gflops:.1f}"  # NaN: not countable
        print(f"| {threads} | {label} | {ms:.0f} | {cpu_ms:.0f} | {sps:.0f} | {rate} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
