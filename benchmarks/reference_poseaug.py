"""Time the reference PoseAug code (a checkout the user points to) on poseshift's own batches.

Used by ``bench_speed.py --reference-poseaug PATH``. Nothing here is a copy of the reference: it
imports the user's checkout of ``jfzhang95/PoseAug`` (never shipped, never imported by tests)
and calls its own training functions -- ``function_baseline.model_pos_train.train`` (a
baseline epoch), ``function_poseaug.model_gan_train.train_gan`` (augmentor + discriminator
iterations) and ``function_poseaug.model_pos_train.train_posenet`` (the estimator's pass) -- on
the same poses poseshift trains on, converted to the reference's 16-joint layout (poseshift's
H36M-17 without neck_nose: the same joint order otherwise).

What is and is not timed like poseshift: the reference's data loaders (its ``PoseDataSet``, one
sample at a time), its per-sample fake pool, its progress bar and TensorBoard calls are part of
its cost and stay in; its Figure-7 plot every 400 iterations is switched off (it writes images).
The reference hard-codes ``torch.device("cuda")``; on a machine without CUDA its functions get a
``torch`` whose ``device("cuda")`` is the CPU, so the same code runs on the same device as ours.
"""

from __future__ import annotations

import importlib
import sys
import time
import types
from pathlib import Path
from typing import Any

import numpy as np
import torch

NECK_NOSE = 9  # the one H36M-17 joint the reference's 16-joint layout lacks


class _DeviceShim(types.ModuleType):
    """``torch`` for the reference's modules, with ``device("cuda")`` meaning the CPU when no GPU."""

    def __init__(self) -> None:
        super().__init__("torch")

    def __getattr__(self, name: str) -> Any:
        return getattr(torch, name)

    @staticmethod
    def device(spec: Any = "cpu", *args: Any) -> torch.device:
        if str(spec).startswith("cuda") and not torch.cuda.is_available():
            return torch.device("cpu")
        return torch.device(spec, *args)


# run_poseaug.py's defaults (function_poseaug/config.py) that its training functions read
REFERENCE_ARGS = {
    "blr_tanhlimit": 0.2,
    "ba_range_m": 0.205,
    "ba_range_w": 0.165,
    "blr_limit": 0.1,
    "df": 2,
    "warmup": 0,  # timed after warm-up: the feedback term is on
    "epochs": 50,
    "hardratio_std_ba": 2.0,
    "hardratio_ba_s": 3.0,
    "hardratio_ba": 5.0,
    "hardratio_std_rt": 15.0,
    "hardratio_rt_s": 17.0,
    "hardratio_rt": 17.0,
    "gloss_factord2d": 1.0,
    "gloss_factord3d": 6.0,
    "gloss_factordiff": 3.0,
    "gloss_factorblr": 1.0,
    "gloss_factorfeedback_ba": 0.1,
    "gloss_factordiv_ba": 0.0,
    "gloss_factorfeedback_rt": 0.01,
    "gloss_factordiv_rt": 0.0,
}


class _NoWriter:
    """A TensorBoard writer that drops everything (the reference logs every iteration)."""

    def add_scalar(self, *args: Any, **kwargs: Any) -> None:
        pass


def load(path: str | Path) -> dict[str, Any]:
    """Import the reference's modules from a checkout at ``path`` (errors say what is missing)."""
    root = Path(path).resolve()
    if not (root / "function_poseaug" / "model_gan_train.py").is_file():
        raise SystemExit(f"error: --reference-poseaug: {root} is not a checkout of jfzhang95/PoseAug")
    sys.path.insert(0, str(root))
    try:
        mods = {
            name: importlib.import_module(name)
            for name in (
                "common.data_loader",
                "models_baseline.mlp.linear_model",
                "models_baseline.videopose.model_VideoPose3D",
                "models_poseaug.gan_generator",
                "models_poseaug.PosDiscriminator",
                "function_baseline.model_pos_train",
                "function_poseaug.model_gan_train",
                "function_poseaug.model_pos_train",
                "utils.gan_utils",
                "utils.utils",
            )
        }
    except ImportError as err:
        raise SystemExit(
            f"error: --reference-poseaug: importing the reference failed ({err}); it needs its own "
            "requirements (torchgeometry, tensorboardX) in this environment"
        ) from err
    for module in mods.values():  # its functions build torch.device("cuda") themselves
        if getattr(module, "torch", None) is torch:
            module.torch = _DeviceShim()
    mods["function_poseaug.model_gan_train"].plot_poseaug = lambda *a, **k: None
    return mods


def _sixteen(x: np.ndarray) -> np.ndarray:
    return np.delete(x, NECK_NOSE, axis=1)


def lifter(mods: dict[str, Any], backbone: str) -> torch.nn.Module:
    """The reference's lifter at the size poseshift benchmarks (2-stage SimpleBaseline or VPose-1f)."""
    if backbone == "simple_baseline":
        model = mods["models_baseline.mlp.linear_model"].LinearModel(32, 45, num_stage=2, p_dropout=0.25)
    else:
        cls = mods["models_baseline.videopose.model_VideoPose3D"].TemporalModelOptimized1f
        model = cls(16, 2, 15, filter_widths=[1, 1, 1, 1, 1], causal=False, dropout=0.25, channels=1024)
    model.apply(mods["models_baseline.mlp.linear_model"].init_weights)
    return model


def _loader(mods: dict[str, Any], pose3d: np.ndarray, pose2d: np.ndarray, cams: np.ndarray, batch: int):
    data = mods["common.data_loader"].PoseDataSet([pose3d], [pose2d], [[0] * len(pose3d)], [cams])
    return torch.utils.data.DataLoader(data, batch_size=batch, shuffle=True, num_workers=0)


def time_baseline(mods: dict[str, Any], backbone: str, data: dict[str, np.ndarray], batch: int) -> float:
    """Seconds per step of the reference's baseline epoch (``train`` over the given poses)."""
    model = lifter(mods, backbone)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    rel = _sixteen(data["pose3d"])
    loader = _loader(mods, rel, _sixteen(data["pose2d"]), data["intrinsics"], batch)
    train = mods["function_baseline.model_pos_train"].train
    train(loader, model, torch.nn.MSELoss(), opt, torch.device("cpu"), 1e-3, 1e-3, 0, 100000, 0.96)  # warm-up
    start = time.perf_counter()
    train(loader, model, torch.nn.MSELoss(), opt, torch.device("cpu"), 1e-3, 1e-3, 0, 100000, 0.96)
    return (time.perf_counter() - start) / len(loader)


def time_poseaug(
    mods: dict[str, Any], backbone: str, data: dict[str, np.ndarray], batch: int
) -> dict[str, float]:
    """Seconds per GAN iteration (``train_gan``), per estimator step (``train_posenet`` over its
    buffer) and for the whole epoch per source sample, after warm-up (feedback on)."""
    from types import SimpleNamespace

    args = SimpleNamespace(**REFERENCE_ARGS, batch_size=batch, num_workers=0)
    gen = mods["models_poseaug.gan_generator"].PoseGenerator(args, 48)
    d3d = mods["models_poseaug.PosDiscriminator"].Pos3dDiscriminator(16)
    d2d = mods["models_poseaug.PosDiscriminator"].Pos2dDiscriminator(16)
    for net in (gen, d3d, d2d):
        net.apply(mods["models_baseline.mlp.linear_model"].init_weights)
    poseaug = {
        "model_G": gen,
        "model_d3d": d3d,
        "model_d2d": d2d,
        "optimizer_G": torch.optim.Adam(gen.parameters(), lr=1e-4),
        "optimizer_d3d": torch.optim.Adam(d3d.parameters(), lr=1e-4),
        "optimizer_d2d": torch.optim.Adam(d2d.parameters(), lr=1e-4),
    }
    model_pos = lifter(mods, backbone)
    absolute = _sixteen(data["pose3d"] + data["root3d"][:, None])
    two_d = _sixteen(data["pose2d"])
    n = len(absolute)
    shuffled = np.random.default_rng(0).permutation(n)
    data_dict = {
        "train_gt2d3d_loader": _loader(mods, absolute, two_d, data["intrinsics"], batch),
        "target_2d_loader": torch.utils.data.DataLoader(
            torch.from_numpy(two_d[shuffled]), batch_size=batch, shuffle=True
        ),
        "target_3d_loader": torch.utils.data.DataLoader(
            torch.from_numpy(absolute[shuffled]), batch_size=batch, shuffle=True
        ),
    }
    pool = mods["utils.gan_utils"].Sample_from_Pool
    summary = mods["utils.utils"].Summary("unused")
    summary.epoch = 1  # after warm-up: the feedback term is computed and used
    train_gan = mods["function_poseaug.model_gan_train"].train_gan
    fakes = (pool(), pool())
    train_gan(
        args, poseaug, data_dict, model_pos, torch.nn.MSELoss(), *fakes, summary, _NoWriter()
    )  # warm-up
    start = time.perf_counter()
    train_gan(args, poseaug, data_dict, model_pos, torch.nn.MSELoss(), *fakes, summary, _NoWriter())
    gan_s = time.perf_counter() - start
    iterations = len(data_dict["train_gt2d3d_loader"])
    buffer_loader = data_dict[
        "train_fake2d3d_loader"
    ]  # the epoch's in-frame augmented pairs, as it builds them
    opt = torch.optim.Adam(model_pos.parameters(), lr=1e-4)
    train_posenet = mods["function_poseaug.model_pos_train"].train_posenet
    real_loader = _loader(mods, _sixteen(data["pose3d"]), two_d, data["intrinsics"], batch)
    start = time.perf_counter()
    train_posenet(model_pos, buffer_loader, opt, torch.nn.MSELoss(), torch.device("cpu"))
    aug_s = time.perf_counter() - start
    start = time.perf_counter()
    train_posenet(model_pos, real_loader, opt, torch.nn.MSELoss(), torch.device("cpu"))
    real_s = time.perf_counter() - start
    steps = max(1, len(buffer_loader)) + len(real_loader)
    return {
        "gan_iteration_s": gan_s / iterations,
        "estimator_step_s": (aug_s + real_s) / steps,
        "epoch_per_source_sample_s": (gan_s + aug_s + real_s) / n,
    }
