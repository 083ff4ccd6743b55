"""Training speed of poseshift, side by side with the reference code on the same data and machine.

Every figure comes from this one run: poseshift and (when ``--reference-poseaug PATH`` points to
a checkout of ``jfzhang95/PoseAug`` with its requirements installed) the reference, both on the
**same synthetic H36M-format files** (written like ``make bench-data`` does, at the size asked
for) and the **same architecture** (SimpleBaseline with 2 stages of width 1024 -- the README's
setting, not the reference's default 4 -- or single-frame VideoPose3D), at batch ``--batch``.
For each phase it reports the median over the timed steps (after warm-up steps), in samples per
second, and the ratio poseshift / reference:

* ``baseline step``: one lifter update (poseshift through Lightning, and as a plain PyTorch loop
  on the same model: the Lightning overhead);
* ``PoseAug GAN iteration``: augmentor step, discriminator steps every second iteration, the
  feedback through the lifter (after warm-up);
* ``PoseAug estimator step``: one lifter update of the epoch-end passes;
* ``PoseAug epoch``: whole-epoch wall time per *source* sample (GAN iterations + both passes).

It also reports the achieved GFLOP/s of the baseline step (FLOPs from ``torch.utils.flop_counter``)
against a 1024-wide ``nn.Linear`` forward + backward on the same machine: the practical ceiling.
``--precision bf16-mixed`` times poseshift under bf16 autocast (its accuracy cost is on the
leaderboard: ``benchmarks/leaderboard.py --precision bf16-mixed``); the plain loop and the ceiling
then run under the same autocast, so the ceiling share and the Lightning overhead compare like with
like, while the reference always runs in float32 (its ratio is then the bf16 path's gain).
``--accelerator gpu`` times poseshift on a GPU (and the reference too, when CUDA is there).

Usage::

    python benchmarks/bench_speed.py [--backbones simple_baseline videopose] [--batches 30]
        [--reference-poseaug ~/src/PoseAug] [--threads N] [--precision 32-true|bf16-mixed]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the H36M-format file writer shared with the tests

BACKBONE_KWARGS = {
    "simple_baseline": {"num_stages": 2, "dropout": 0.25},
    "videopose": {"dropout": 0.25},
}
WARMUP_STEPS = 3


def median_rate(seconds: list[float], samples: int) -> float:
    """Samples per second of the median step."""
    return samples / statistics.median(seconds)


def device_of(args: argparse.Namespace) -> torch.device:
    """Where the plain loop and the ceiling run: the GPU with ``--accelerator gpu``, else the CPU."""
    return torch.device("cuda" if args.accelerator in ("gpu", "cuda") else "cpu")


def autocast(args: argparse.Namespace) -> contextlib.AbstractContextManager:
    """bf16 autocast when ``--precision`` is bf16 (what Lightning's ``bf16-mixed`` does), else nothing."""
    if "bf16" in args.precision:
        return torch.autocast(device_of(args).type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def sync() -> None:
    """Wait for queued GPU work, so that wall time is the work's time (no-op on the CPU)."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def matmul_ceiling(batch: int, args: argparse.Namespace, steps: int = 20) -> float:
    """GFLOP/s of a 1024x1024 Linear forward + backward on a (batch, 1024) input (3 matmuls), median,
    on the benchmark's device and under its precision."""
    layer = torch.nn.Linear(1024, 1024).to(device_of(args))
    x = torch.randn(batch, 1024, requires_grad=True, device=device_of(args))
    times = []
    for i in range(steps + WARMUP_STEPS):
        sync()
        t = time.perf_counter()
        with autocast(args):
            y = layer(x).sum()
        y.backward()
        sync()
        if i >= WARMUP_STEPS:
            times.append(time.perf_counter() - t)
    return 3 * 2 * batch * 1024 * 1024 / statistics.median(times) / 1e9


def write_data(folder: Path, poses: int) -> None:
    """An H36M-format file set (``data_3d_h36m.npz``, ``data_2d_h36m_gt.npz``) with >= ``poses`` S1 poses."""
    from fixtures import write_h36m

    frames = -(-poses // 4)  # four cameras
    write_h36m(folder, {"S1": {"Walking": frames}, "S9": {"Walking": 64}}, variants=("gt",), compressed=False)


class StepTimer(pl.Callback):
    """Wall time of every training batch (the epoch-end work after the last one is not in it) and epoch."""

    def __init__(self) -> None:
        self.batch: list[float] = []
        self.epoch: list[float] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        sync()
        self._t = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        sync()
        self.batch.append(time.perf_counter() - self._t)

    def on_train_epoch_start(self, trainer, pl_module):
        self._e = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module):
        self.epoch.append(time.perf_counter() - self._e)


def trainer(callbacks: list, args: argparse.Namespace, **kw) -> pl.Trainer:
    from poseshift.trainers import quiet_trainer

    return quiet_trainer(
        accelerator=args.accelerator,
        precision=args.precision,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        callbacks=callbacks,
        default_root_dir=tempfile.mkdtemp(),
        **kw,
    )


def ours(backbone: str, dm, args: argparse.Namespace) -> dict[str, float]:
    """poseshift's phases: baseline (Lightning and plain loop), PoseAug iteration, estimator step, epoch."""
    from poseshift.methods import Baseline, PoseAug

    kw = BACKBONE_KWARGS[backbone]
    out: dict[str, float] = {}
    steps = dm.batches_per_epoch

    # the baseline step, as a plain PyTorch loop on the same model, optimizer, clip, device and precision
    base = Baseline(backbone=backbone, backbone_kwargs=kw)
    device = device_of(args)
    lifter = base.lifter.train().to(device)
    (opt,), _ = base.configure_optimizers()
    sources = [b["source"] for b, _, _ in dm.train_dataloader()]
    batches = [{k: b[k].to(device) for k in ("pose2d", "pose3d")} for b in sources]
    times = []
    for i, b in enumerate(batches):
        sync()
        t = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        with autocast(args):
            loss = F.mse_loss(lifter(b["pose2d"]), b["pose3d"])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(lifter.parameters(), 1.0)
        opt.step()
        sync()
        if i >= WARMUP_STEPS:
            times.append(time.perf_counter() - t)
    out["baseline_plain_sps"] = median_rate(times, args.batch)
    with FlopCounterMode(display=False) as counter:
        F.mse_loss(lifter(batches[0]["pose2d"]), batches[0]["pose3d"]).backward()
    out["baseline_gflops_per_step"] = counter.get_total_flops() / 1e9
    out["baseline_plain_gflops_s"] = out["baseline_gflops_per_step"] * out["baseline_plain_sps"] / args.batch

    # the baseline step through Lightning
    timer = StepTimer()
    trainer([timer], args, max_epochs=1).fit(Baseline(backbone=backbone, backbone_kwargs=kw), datamodule=dm)
    out["baseline_lightning_sps"] = median_rate(timer.batch[WARMUP_STEPS:], args.batch)

    # PoseAug after warm-up: iterations, the epoch-end estimator passes, whole epochs
    timer = StepTimer()
    model = PoseAug(backbone=backbone, backbone_kwargs=kw, warmup=0, epochs=2, pretrained="scratch")
    trainer([timer], args, max_epochs=2).fit(model, datamodule=dm)
    second = timer.batch[steps:]  # the second epoch: the pool and the caches are warm
    out["poseaug_iteration_sps"] = median_rate(second, args.batch)
    lifter_steps = model.steps_of("p") / 2  # per epoch: the buffer pass and the real pass
    passes = timer.epoch[1] - sum(second)  # the epoch's time outside its iterations
    out["poseaug_estimator_sps"] = args.batch * lifter_steps / max(passes, 1e-9)
    out["poseaug_epoch_source_sps"] = steps * args.batch / timer.epoch[1]
    return out


def reference(backbone: str, dm, args: argparse.Namespace) -> dict[str, float]:
    """The reference's phases on the same poses (see reference_poseaug.py)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import reference_poseaug as ref

    mods = ref.load(args.reference_poseaug)
    train = {k: v.numpy() for k, v in dm.training_poses().items()}
    out = {"baseline_sps": args.batch / ref.time_baseline(mods, backbone, train, args.batch)}
    timed = ref.time_poseaug(mods, backbone, train, args.batch)
    out["poseaug_iteration_sps"] = args.batch / timed["gan_iteration_s"]
    out["poseaug_estimator_sps"] = args.batch / timed["estimator_step_s"]
    out["poseaug_epoch_sps"] = 1.0 / timed["epoch_per_source_sample_s"]
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backbones", nargs="+", default=["simple_baseline", "videopose"])
    parser.add_argument("--batch", type=int, default=1024, help="training batch (the references' 1024)")
    parser.add_argument("--batches", type=int, default=30, help="training batches per epoch")
    parser.add_argument("--reference-poseaug", default=None, help="a checkout of jfzhang95/PoseAug")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--accelerator", default="cpu")
    parser.add_argument("--precision", default="32-true", help="poseshift's Lightning precision")
    parser.add_argument("--output", default="runs/bench-speed/speed.json")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    pl.seed_everything(0, verbose=False)
    from data_modules.h36m import H36MDataModule

    folder = Path(tempfile.mkdtemp(prefix="poseshift-speed-"))
    write_data(folder, args.batch * args.batches)
    dm = H36MDataModule(str(folder), train_subjects=["S1"], test_subjects=["S9"], batch_size=args.batch)
    dm.setup("fit")
    dm.batches_per_epoch = len(dm.training_poses()["pose2d"]) // args.batch  # full batches only
    ceiling = matmul_ceiling(args.batch, args)
    print(
        f"threads {torch.get_num_threads()}, batch {args.batch}, {dm.batches_per_epoch} batches per epoch, "
        f"precision {args.precision}; matmul ceiling (1024-wide Linear fwd+bwd): {ceiling:.1f} GFLOP/s",
        flush=True,
    )
    results: dict = {"threads": torch.get_num_threads(), "matmul_gflops_s": ceiling, "backbones": {}}
    lines = [
        "| backbone | phase | poseshift (samples/s) | reference (samples/s) | ratio |",
        "|---|---|---|---|---|",
    ]
    for name in args.backbones:
        mine = ours(name, dm, args)
        theirs = reference(name, dm, args) if args.reference_poseaug else {}
        results["backbones"][name] = {"poseshift": mine, "reference": theirs}
        rows = (
            ("baseline step", mine["baseline_lightning_sps"], theirs.get("baseline_sps")),
            ("baseline step, plain loop", mine["baseline_plain_sps"], None),
            ("PoseAug GAN iteration", mine["poseaug_iteration_sps"], theirs.get("poseaug_iteration_sps")),
            ("PoseAug estimator step", mine["poseaug_estimator_sps"], theirs.get("poseaug_estimator_sps")),
            (
                "PoseAug epoch (source)",
                mine["poseaug_epoch_source_sps"],
                theirs.get("poseaug_epoch_sps"),
            ),
        )
        for phase, a, b in rows:
            ratio = f"{a / b:.2f}x" if b else "-"
            lines.append(f"| {name} | {phase} | {a:.0f} | {f'{b:.0f}' if b else '-'} | {ratio} |")
        overhead = mine["baseline_plain_sps"] / mine["baseline_lightning_sps"] - 1
        share = mine["baseline_plain_gflops_s"] / ceiling
        lines.append(
            f"| {name} | baseline step: {mine['baseline_plain_gflops_s']:.1f} GFLOP/s = {100 * share:.0f} % "
            f"of the ceiling; Lightning overhead {100 * overhead:+.1f} % | | | |"
        )
    table = "\n".join(lines)
    print("\nmedian training samples/s, same data, same machine, one run:\n" + table, flush=True)
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    out.with_suffix(".md").write_text(table + "\n")
    return results


if __name__ == "__main__":
    main()
