"""Training speed of PoseDA's phases on CPU (or a GPU with ``--accelerator gpu``).

For each backbone, on the embedded mocap benchmark with ``all_shift`` as the target:

* a **critic step** at batch 1024: LPA generation with G frozen (no graph), GPA + projection, the
  anchor critic's WGAN loss on 1024 real + 1024 augmented poses, RMSProp step, weight clipping;
* a **G step** at batch 1024: a generation with graph, the critic's score, Adam step;
* a **lifter step**: the 1:1 mix (2 x 1024 pairs: GPA-placed augmented + source);
* whole **epochs** under Lightning at the leaderboard's batch of 256 (102 iterations): one warm-up
  epoch (critic every iteration, G every 5th) and one with the lifter, as wall time per epoch.

Phases are timed by calling PoseDA's own step methods (logging switched off) after two warm-up
repetitions; each figure is the **median** of the timed repetitions, as wall time and as this
process's CPU time. On a shared machine the wall time includes waiting for a core; with one
thread the CPU time is close to what the step costs on an idle core (caches and memory bandwidth
are still shared). Epochs are reported as wall and CPU time too.

Usage::

    python benchmarks/bench_poseda.py [--backbones simple_baseline videopose] [--steps 20] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import pytorch_lightning as pl
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from data_modules.mocap import MocapDataModule  # noqa: E402
from poseshift.methods.poseda import PoseDA  # noqa: E402
from poseshift.trainers import quiet_trainer  # noqa: E402

BACKBONE_KWARGS = {
    "simple_baseline": {"num_stages": 2, "dropout": 0.25},
    "videopose": {"dropout": 0.25},
}
BATCH = 1024


class EpochTimer(pl.Callback):
    """Wall time of every training epoch."""

    def __init__(self) -> None:
        self.epochs: list[float] = []
        self.cpu: list[float] = []

    def on_train_epoch_start(self, trainer, pl_module):
        self._t, self._c = time.perf_counter(), time.process_time()

    def on_train_epoch_end(self, trainer, pl_module):
        self.epochs.append(time.perf_counter() - self._t)
        self.cpu.append(time.process_time() - self._c)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _median_ms(fn, steps: int, device: torch.device) -> tuple[float, float]:
    """Median wall and CPU milliseconds of ``fn(i)`` over ``steps`` timed repetitions."""
    wall, cpu = [], []
    for i in range(steps + 2):
        _sync(device)
        t, c = time.perf_counter(), time.process_time()
        fn(i)
        _sync(device)
        if i >= 2:  # the first repetitions allocate and warm caches
            wall.append(time.perf_counter() - t)
            cpu.append(time.process_time() - c)
    return 1000 * statistics.median(wall), 1000 * statistics.median(cpu)


def bench_phases(name: str, steps: int, accelerator: str) -> dict[str, float]:
    kw = BACKBONE_KWARGS[name]
    pl.seed_everything(0, verbose=False)
    dm = MocapDataModule(batch_size=BATCH, train_target="all_shift")
    model = PoseDA(backbone=name, backbone_kwargs=kw, warmup_steps=0)
    # builds the optimizers and the critic's real pool, takes no step
    quiet_trainer(max_steps=0, accelerator=accelerator).fit(model, datamodule=dm)
    model.log = model.log_dict = lambda *a, **k: None  # timing the algorithm, not the logger
    device = model.device
    batches = []
    for b, _, _ in dm.train_dataloader():
        batches.append(
            {k: {f: v.to(device) for f, v in half.items() if torch.is_tensor(v)} for k, half in b.items()}
        )
        if len(batches) == 4:
            break
    model.train()

    def pick(i: int) -> tuple[dict, dict]:
        b = batches[i % len(batches)]
        return b["source"], model._target(b["target"], BATCH)

    def critic_step(i: int) -> None:
        source, target = pick(i)
        with torch.no_grad():
            aug = model.generator(source["pose3d"])
        model.place(aug["pose"], source, target)
        model._critic_step("d3d", model.d3d, model._draw_real(source["pose3d"]), aug["pose"])

    def g_step(i: int) -> None:
        source, target = pick(i)
        model._generator_step(source["pose3d"], None, source, target)

    def lifter_step(i: int) -> None:
        source, target = pick(i)
        placed, x2d = model.place(source["pose3d"], source, target)
        x2d = torch.cat([x2d, source["pose2d"]])
        x3d = torch.cat([source["pose3d"], source["pose3d"]])
        model.player_step("p", (model(x2d) - x3d).pow(2).mean())

    out: dict[str, float] = {}
    for name, fn in (("critic_step", critic_step), ("g_step", g_step), ("lifter_step", lifter_step)):
        out[f"{name}_ms"], out[f"{name}_cpu_ms"] = _median_ms(fn, steps, device)
    return out


def bench_epochs(name: str, accelerator: str) -> dict[str, float]:
    """Wall time of a warm-up epoch and of an epoch with the lifter at the leaderboard's batch 256."""
    pl.seed_everything(0, verbose=False)
    dm = MocapDataModule(batch_size=256, train_target="all_shift")
    model = PoseDA(backbone=name, backbone_kwargs=BACKBONE_KWARGS[name], warmup=1)
    timer = EpochTimer()
    start = time.perf_counter()
    quiet_trainer(
        max_epochs=2,
        accelerator=accelerator,
        callbacks=[timer],
        limit_val_batches=0,
        num_sanity_val_steps=0,
    ).fit(model, datamodule=dm)
    return {
        "warmup_epoch_s": timer.epochs[0],
        "lifter_epoch_s": timer.epochs[1],
        "warmup_epoch_cpu_s": timer.cpu[0],
        "lifter_epoch_cpu_s": timer.cpu[1],
        "iterations_per_epoch": model.steps_of("d3d") / 2,
        "fit_wall_s": time.perf_counter() - start,
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backbones", nargs="+", default=["simple_baseline", "videopose"])
    parser.add_argument("--steps", type=int, default=20, help="timed repetitions per phase")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--accelerator", default="cpu", help="cpu or gpu")
    parser.add_argument("--no-epochs", action="store_true", help="skip the whole-epoch timing")
    parser.add_argument("--output", default="runs/bench-poseda/speed.json")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    results: dict = {"threads": torch.get_num_threads(), "accelerator": args.accelerator, "backbones": {}}
    lines = [
        "| backbone | critic step (ms) | G step (ms) | lifter step, 2x1024 (ms) | warm-up epoch (s) | "
        "epoch with lifter (s) |",
        "|---|---|---|---|---|---|",
    ]

    def pair(r: dict, key: str, fmt: str) -> str:
        stem, unit = key.rsplit("_", 1)  # "critic_step_ms" -> CPU key "critic_step_cpu_ms"
        return f"{r[key]:{fmt}} ({r[f'{stem}_cpu_{unit}']:{fmt}})"

    for name in args.backbones:
        r = bench_phases(name, args.steps, args.accelerator)
        if not args.no_epochs:
            r.update(bench_epochs(name, args.accelerator))
        results["backbones"][name] = r
        epochs = (
            f"{pair(r, 'warmup_epoch_s', '.1f')} | {pair(r, 'lifter_epoch_s', '.1f')}"
            if "warmup_epoch_s" in r
            else "- | -"
        )
        steps_ms = " | ".join(pair(r, f"{k}_ms", ".0f") for k in ("critic_step", "g_step", "lifter_step"))
        lines.append(f"| {name} | {steps_ms} | {epochs} |")
        print(lines[-1], flush=True)
    table = "\n".join(lines)
    print(
        f"PoseDA phases at batch 1024 (median of {args.steps}), epochs at batch 256 (102 iterations), "
        f"{results['threads']} thread(s), {args.accelerator}; wall time (CPU time of this process):\n{table}"
    )
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    out.with_suffix(".md").write_text(table + "\n")
    return results


if __name__ == "__main__":
    main()
