"""Training speed of AdaptPose at the code's batch (1024) with its 27-frame VideoPose3D (1024 channels).

One Lightning fit of ``--batches`` batches on the embedded mocap benchmark (27-frame source windows
with their 3D, target 2D from ``all_shift``), past warm-up, with the code's 5 sections per epoch.
It reports, as medians over the timed steps (the first step is left out):

* the **GAN step** (G step with the feedback passes, D3d and D2d every second step, selection,
  buffering) in source samples per second: each batch's time minus the section pass it may end with;
* the **estimator step** (one lifter step on 1024 windows, as in the epoch's real pass);
* the **whole epoch** (GAN steps, the section passes over the selected windows, the pass over the
  real windows) per source sample: its wall time over ``batches x 1024``; the selected fraction
  sets how many estimator steps an epoch holds, so the epoch rate at kept fraction 0 and 1 is
  also given from the two step rates (``1 / (1/gan + (1 + k)/estimator)``).

With ``--reference-adaptpose PATH`` (a checkout of ``mgholamikn/AdaptPose`` with its requirements
installed; see ``reference_adaptpose.py`` for what is timed there and how) the same run then times the
reference's own ``train_gan`` and ``train_posenet`` on the same poses (the first ``batches x 1024``
source frames, the same target 2D, converted to its 16 joints) with the same architecture (27-frame
VideoPose3D at ``--channels``, the reference's generator and discriminators at its defaults), and
prints a table of samples/s per phase and the ratio poseshift / reference, also written next to the
JSON (``.md``). Step rates leave data loading out on both sides; the epoch keeps it in. Both sides
start from scratch, so their kept fractions (printed) differ: compare epochs at kept 0 and 1.

Usage::

    python benchmarks/bench_adaptpose_speed.py [--batches 10] [--threads 1] [--channels 1024]
        [--reference-adaptpose ~/src/AdaptPose]

A shared machine makes single measurements noisy; the medians of interleaved runs are what the
README quotes.
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
from poseshift.methods.adaptpose import AdaptPose  # noqa: E402
from poseshift.trainers import quiet_trainer  # noqa: E402

BATCH = 1024
TARGET = "all_shift"


def datamodule() -> MocapDataModule:
    """The embedded benchmark as AdaptPose trains on it: 27-frame windows with their 3D, target 2D."""
    return MocapDataModule(
        batch_size=BATCH, receptive_field=27, random_stride=2, window_3d=True, train_target=TARGET
    )


def measure(batches: int, channels: int, sections: int = 5, precision: str = "32-true") -> dict:
    """Time one epoch of ``batches`` AdaptPose iterations; see the module docstring."""
    pl.seed_everything(0)
    dm = datamodule()
    model = AdaptPose(
        backbone_kwargs={"filter_widths": [3, 3, 3], "channels": channels, "dropout": 0.25},
        warmup_steps=0,
        sections=sections,
    )
    rec: dict[str, list] = {"batch": [], "fake_pass": [], "passes": []}
    fake_pass, estimator_pass = model._fake_pass, model.estimator_pass

    def timed_fake_pass() -> None:
        t = time.perf_counter()
        fake_pass()
        rec["fake_pass"].append((len(rec["batch"]), time.perf_counter() - t))

    def timed_estimator_pass(x2d: torch.Tensor, x3d: torch.Tensor, batch_size: int) -> torch.Tensor:
        steps, t = model.steps_of("p"), time.perf_counter()
        out = estimator_pass(x2d, x3d, batch_size)
        rec["passes"].append((len(x2d), model.steps_of("p") - steps, time.perf_counter() - t))
        return out

    model._fake_pass, model.estimator_pass = timed_fake_pass, timed_estimator_pass
    clock: dict[str, float] = {}

    class Clock(pl.Callback):
        def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
            clock["epoch"] = time.perf_counter()

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:  # noqa: ANN001
            clock["batch"] = time.perf_counter()

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # noqa: ANN001
            rec["batch"].append(time.perf_counter() - clock["batch"])

        def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
            clock["epoch"] = time.perf_counter() - clock["epoch"]
            clock["kept"] = float(trainer.callback_metrics["adaptpose/kept_fraction"])

    quiet_trainer(
        max_epochs=1,
        limit_train_batches=batches,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        callbacks=[Clock()],
        enable_checkpointing=False,
        logger=False,
        precision=precision,
    ).fit(model, datamodule=dm)
    # a batch that closes a section also ran that section's pass (timed separately)
    in_batch = {i: t for i, t in rec["fake_pass"] if i < len(rec["batch"])}
    gan = [t - in_batch.get(i, 0.0) for i, t in enumerate(rec["batch"])][1:]
    real = [(n, s, t) for n, s, t in rec["passes"] if n == batches * BATCH]  # the epoch's real pass
    est = real[-1][2] / real[-1][1]
    res = {
        "batch": BATCH,
        "channels": channels,
        "batches": batches,
        "threads": torch.get_num_threads(),
        "precision": precision,
        "gan_step_s": statistics.median(gan),
        "estimator_step_s": est,
        "epoch_s": clock["epoch"],
        "lifter_steps": model.steps_of("p"),
        "kept_fraction_last_batch": clock["kept"],
    }
    res["gan_samples_per_s"] = BATCH / res["gan_step_s"]
    res["estimator_samples_per_s"] = BATCH / est
    res["epoch_source_samples_per_s"] = batches * BATCH / clock["epoch"]
    for k in (0.0, 1.0):
        res[f"epoch_samples_per_s_at_kept_{k:g}"] = 1 / (
            1 / res["gan_samples_per_s"] + (1 + k) / res["estimator_samples_per_s"]
        )
    return res


def load_reference(path: str):
    """The reference's modules, imported before the run so that a wrong path fails at once."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import reference_adaptpose

    return reference_adaptpose, reference_adaptpose.load(path)


def reference(ref, mods: dict, batches: int, channels: int) -> dict:  # noqa: ANN001
    """The reference's phases on the same poses (see reference_adaptpose.py)."""
    dm = datamodule()
    dm.setup("fit")
    train = {k: v.numpy() for k, v in dm.training_poses().items()}
    return ref.time_adaptpose(mods, train, dm.sets.target_train[TARGET].pose2d, batches, channels, BATCH)


def table(mine: dict, theirs: dict) -> str:
    """Samples/s per phase, poseshift against the reference, as a markdown table."""
    rows = (
        ("GAN step (G + feedback, D every 2nd step)", "gan_samples_per_s"),
        ("estimator step (batch 1024)", "estimator_samples_per_s"),
        ("epoch (source samples)", "epoch_source_samples_per_s"),
        ("epoch at kept fraction 0 (step rates)", "epoch_samples_per_s_at_kept_0"),
        ("epoch at kept fraction 1 (step rates)", "epoch_samples_per_s_at_kept_1"),
    )
    lines = ["| phase | poseshift (samples/s) | reference (samples/s) | ratio |", "|---|---|---|---|"]
    for phase, key in rows:
        a, b = mine[key], theirs.get(key)
        ratio = f"{a / b:.2f}x" if b else "-"
        lines.append(f"| {phase} | {a:.0f} | {f'{b:.0f}' if b else '-'} | {ratio} |")
    if theirs:
        with_loading = BATCH / theirs["gan_step_with_loading_s"]
        lines.append(
            f"| GAN step with its loading (reference loads inside its loop) | - | {with_loading:.0f} | - |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batches", type=int, default=10, help="iterations (batches of 1024) in the epoch")
    parser.add_argument("--channels", type=int, default=1024, help="VideoPose3D channels (the code: 1024)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--reference-adaptpose", default=None, help="a checkout of mgholamikn/AdaptPose")
    parser.add_argument("--precision", default="32-true", help="poseshift's Lightning precision (bf16-mixed)")
    parser.add_argument("--output", default="runs/bench-speed/adaptpose.json")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    ref = load_reference(args.reference_adaptpose) if args.reference_adaptpose else None
    res = measure(args.batches, args.channels, precision=args.precision)
    if ref is not None:
        res["reference"] = reference(*ref, args.batches, args.channels)
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1))
    print(json.dumps(res, indent=1))
    if ref is not None:
        text = table(res, res["reference"])
        print(
            f"\nmedian training samples/s, same poses, same machine, one run (kept fraction: poseshift "
            f"{res['kept_fraction_last_batch']:.2f} in its last batch, reference "
            f"{res['reference']['kept_fraction']:.2f} over the epoch):\n{text}",
            flush=True,
        )
        out.with_suffix(".md").write_text(text + "\n")
    return res


if __name__ == "__main__":
    main()
