"""Small synthetic data for tests that need a DataModule but not a particular dataset.

Poses are random but geometrically consistent: 3D skeletons with the H36M-17 layout are
placed in front of the four H36M cameras and projected with the library's own camera
model, so 2D and 3D agree as they do in real data.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch

from data_modules.base import DomainSets, PoseDataModule
from data_modules.schema import PoseSet
from poseshift.evolution.operators import camera_to_upright, place_on_ground
from poseshift.geometry.camera import h36m_intrinsics, project
from poseshift.geometry.skeleton import H36M17

REPO_ROOT = Path(__file__).resolve().parents[1]
"""The repository root (experiments/, benchmarks/, Makefile)."""


def first_training_batch(dm: PoseDataModule) -> dict[str, Any]:
    """The first ``{"source": ..., "target"?: ...}`` training batch of a DataModule."""
    batch, _, _ = next(iter(dm.train_dataloader()))
    return batch


# a rough standing pose (x right, y down, z forward), metres, root at the origin
_REST = np.array(
    [
        [0, 0, 0],
        [-0.13, 0, 0],
        [-0.13, 0.44, 0],
        [-0.13, 0.88, 0],
        [0.13, 0, 0],
        [0.13, 0.44, 0],
        [0.13, 0.88, 0],
        [0, -0.23, 0],
        [0, -0.49, 0],
        [0, -0.6, -0.05],
        [0, -0.72, 0],
        [0.15, -0.49, 0],
        [0.15, -0.21, 0],
        [0.15, 0.04, 0],
        [-0.15, -0.49, 0],
        [-0.15, -0.21, 0],
        [-0.15, 0.04, 0],
    ],
    dtype=np.float64,
)


def synthetic_set(n: int, seed: int, name: str) -> PoseSet:
    """n random poses (rest pose plus joint noise, random yaw) seen by the H36M cameras."""
    rng = np.random.default_rng(seed)
    pose = _REST[None] + rng.normal(scale=0.05, size=(n, 17, 3))
    pose -= pose[:, :1]
    yaw = rng.uniform(-np.pi, np.pi, size=n)
    c, s = np.cos(yaw), np.sin(yaw)
    rot = np.zeros((n, 3, 3))
    rot[:, 0, 0], rot[:, 0, 2], rot[:, 1, 1], rot[:, 2, 0], rot[:, 2, 2] = c, s, 1, -s, c
    pose = pose @ rot.transpose(0, 2, 1)
    root = np.stack([rng.uniform(-0.5, 0.5, n), rng.uniform(-0.3, 0.3, n), rng.uniform(4, 6, n)], axis=1)
    cam = rng.integers(0, 4, size=n)
    k, size = h36m_intrinsics()
    k, size = k[cam], size[cam]
    pose2d = project(torch.from_numpy(pose + root[:, None]).float(), k)
    return PoseSet(
        pose2d=pose2d.numpy(),
        pose3d=pose,
        root3d=root,
        intrinsics=k.numpy(),
        image_size=size.numpy(),
        subject=np.zeros(n),
        action=rng.integers(0, 2, size=n),
        camera=cam,
        frame=np.arange(n),
        sequence=np.zeros(n),
        action_names=("a", "b"),
        name=name,
    )


class SyntheticDataModule(PoseDataModule):
    """Random consistent poses: a source split and two test sets of odd sizes.

    Args:
        num_train: training samples.
        num_test: samples of the first test set (the second has one more).
        seed: random seed.
    """

    def __init__(self, num_train: int = 256, num_test: int = 101, seed: int = 0, **loader: Any) -> None:
        loader = {"batch_size": 32, "eval_batch_size": 16, **loader}
        super().__init__(**loader)
        self.num_train, self.num_test, self.seed = num_train, num_test, seed

    def build_sets(self) -> DomainSets:
        s = self.seed
        return DomainSets(
            train=synthetic_set(self.num_train, s, "train"),
            val=synthetic_set(self.num_test, s + 1, "val"),
            test={
                "alpha": synthetic_set(self.num_test, s + 2, "alpha"),
                "beta": synthetic_set(self.num_test + 1, s + 3, "beta"),
            },
        )


assert H36M17.num_joints == len(_REST)


def upright_poses(n: int, seed: int, noise: float = 0.02) -> torch.Tensor:
    """Standing poses (rest pose + joint noise, random yaw) in a z-up world, on the floor."""
    g = torch.Generator().manual_seed(seed)
    rest = torch.from_numpy(_REST)
    cam = rest + noise * torch.randn(n, 17, 3, generator=g, dtype=torch.float64)
    world = camera_to_upright(cam - cam[:, :1])
    yaw = torch.rand(n, generator=g, dtype=torch.float64) * 2 * math.pi
    c, s, o, i = (
        torch.cos(yaw),
        torch.sin(yaw),
        torch.zeros(n, dtype=torch.float64),
        torch.ones(n, dtype=torch.float64),
    )
    rot = torch.stack([c, -s, o, s, c, o, o, o, i], -1).reshape(n, 3, 3)
    return place_on_ground(world @ rot.mT, 0.02, 0.0)


class StopAt(pl.Callback):
    """Stop a fit at a chosen batch as Ctrl-C does (KeyboardInterrupt) or with an error.

    Args:
        epoch: epoch (0-based) to stop in.
        batch: batch index within that epoch, before the batch is trained on.
        error: raise ``RuntimeError("loss is not finite")`` instead of KeyboardInterrupt.
    """

    def __init__(self, epoch: int, batch: int = 0, error: bool = False) -> None:
        self.epoch, self.batch, self.error = epoch, batch, error

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: Any, batch: Any, batch_idx: int) -> None:
        if trainer.current_epoch == self.epoch and batch_idx == self.batch:
            if self.error:
                raise RuntimeError("loss is not finite")
            raise KeyboardInterrupt


def _players(pl_module: Any) -> dict[str, torch.nn.Module]:
    return pl_module.player_modules()


class SameWeightsOnEveryRank(pl.Callback):
    """Fails a DDP run unless every network's weights agree across processes (gradients were synced).

    Args:
        networks: ``pl_module -> {name: module}`` to compare; default: the method's players.
        buffers: compare floating-point buffers too (e.g. BatchNorm statistics kept in sync).
    """

    def __init__(self, networks: Any = None, buffers: bool = False) -> None:
        self.networks = networks or _players  # a module-level function: ddp_spawn pickles callbacks
        self.buffers = buffers

    def on_train_end(self, trainer: pl.Trainer, pl_module: Any) -> None:
        import torch.distributed as dist

        for name, module in self.networks(pl_module).items():
            tensors = list(module.parameters())
            if self.buffers:
                tensors += [b for b in module.buffers() if b.is_floating_point()]
            flat = torch.cat([t.detach().reshape(-1) for t in tensors])
            gathered = [torch.zeros_like(flat) for _ in range(dist.get_world_size())]
            dist.all_gather(gathered, flat)
            assert all(torch.equal(gathered[0], g) for g in gathered), f"{name} differs across ranks"


def fit_and_test_in_bf16(
    model: pl.LightningModule, dm: PoseDataModule, **trainer_kwargs: Any
) -> dict[str, float]:
    """Fit and test under bf16 autocast on the CPU (the mixed-precision path of the speed goals).

    Fails unless every player took steps and every test metric is finite; returns the metrics.
    """
    from poseshift.trainers import quiet_trainer

    trainer = quiet_trainer(
        precision="bf16-mixed", limit_val_batches=0, num_sanity_val_steps=0, **trainer_kwargs
    )
    trainer.fit(model, datamodule=dm)
    players = model.player_modules() if hasattr(model, "player_modules") else {}
    idle = [name for name in players if model.steps_of(name) == 0]
    assert trainer.global_step > 0 and not idle, f"players that never stepped under bf16: {idle}"
    metrics = trainer.test(model, datamodule=dm, verbose=False)[0]
    assert metrics and all(math.isfinite(v) for v in metrics.values()), metrics
    return metrics


def load_benchmark(name: str) -> Any:
    """Import ``benchmarks/<name>.py`` (not a package) as module ``name``."""
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module
