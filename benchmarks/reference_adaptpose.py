"""Time the reference AdaptPose code (a checkout the user points to) on poseshift's own poses.

Used by ``bench_adaptpose_speed.py --reference-adaptpose PATH``. Nothing here is a copy of the
reference: it imports the user's checkout of ``mgholamikn/AdaptPose`` (never shipped, never imported
by tests) and calls its own code -- ``function_adaptpose.config.get_parse_args`` (its defaults),
``function_adaptpose.model_gan_preparation.get_poseaug_model`` (generator, D3d, D2d and the unused
temporal D2d, with their optimizers and schedulers), its ``TemporalModelOptimized1f`` (27 frames:
filter widths 3, 3, 3 as ``model_pos_preparation`` picks for ``pad`` 13, at ``--channels``), its
``PoseDataSet``/``PoseTarget`` loaders and ``Sample_from_Pool``, ``function_adaptpose.model_gan_train
.train_gan`` (G step with the feedback passes, D3d and D2d every second step, selection, buffer) and
``function_adaptpose.model_pos_train.train_posenet`` (the estimator passes) -- on the same poses
poseshift trains on: the embedded mocap benchmark's first ``batches x 1024`` source frames (absolute
camera-frame 3D, screen-normalized 2D, intrinsics) and its ``all_shift`` target 2D, converted to the
reference's 16-joint layout (poseshift's H36M-17 without neck_nose, the same order otherwise).

One epoch is timed as ``run_adaptpose.py`` runs it after warm-up (feedback on, lifter trained): five
sections, each a ``train_gan`` call followed by ``train_posenet`` over the buffer it built, then
``train_posenet`` over the real windows and the scheduler steps. The reference's sections are 300
(301, overlapping by one) of a loader over the whole epoch's data: each call loads every batch and
skips those of other sections, so below 1,200 batches every call but the first would find nothing to
do (and stop on its empty buffer). Here each call gets loaders over its fifth of the batches (the
reference's own datasets, freshly shuffled as its loaders are), and the loading the four other calls
spend on skipped batches is timed apart: one pass over the four loaders zipped as ``train_gan`` zips
them, counted four times in the epoch. The fake pools start full (as after the first epoch); the
first GAN iteration is left out of the median (warm-up, as in poseshift's ``measure()``).

Timed: per-iteration medians from the ticks of the reference's own progress bar (``Bar.next``, kept
running), with the time its loaders take to deliver each batch measured apart, so that the step rates
leave loading out as poseshift's do (its batches are fetched before the timed step) and the epoch
keeps it in. Kept in: its data loaders (one sample at a time, the random stride drawn per sample), the
fake pools, the progress bar, every ``.item()`` of its TensorBoard calls, its prints. Switched off:
the writer itself (a stand-in drops the scalars), the three ``plot_16j*`` figures every 100
iterations, the evaluations after every pass and the checkpoint saves (poseshift's bench does not
validate either). Data loading runs in the main process (``num_workers=0``, as poseshift's).

Stand-ins, only where the checkout cannot run as it is: ``torch.device("cuda")`` is the CPU and
``Tensor.cuda()`` returns the tensor when there is no GPU; ``code.common.viz`` (the checkout imports
its own ``common.viz`` under the name of the folder it was run from) is its ``common.viz``;
``models_baseline.mlp.linear_model`` (missing from the checkout; ``model_gan_preparation`` imports
``init_weights`` from it) gives the checkout's own ``models_adaptpose.gan_generator.init_weights``.
It needs ``pytorch3d`` (only its pure-PyTorch ``transforms``), ``progress``, ``tensorboardX`` and
``matplotlib``. Its fourth loader (3DHP 3D, only plotted) is fed the source 3D: loaded, unused.
The lifter and G start from scratch (the reference loads a pretrained lifter), so the
kept fraction, and with it the size of the section passes, is not the trained one: the step rates and
the epoch rates at kept fraction 0 and 1 compare like with like.
"""

from __future__ import annotations

import contextlib
import importlib
import statistics
import sys
import time
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from reference_poseaug import _DeviceShim, _NoWriter  # the same stand-ins as for PoseAug

from poseshift.geometry.skeleton import NECK_NOSE

OPTION = "--reference-adaptpose"
PACKAGES = (
    "common",
    "utils",
    "models_adaptpose",
    "models_baseline",
    "function_adaptpose",
    "function_baseline",
)
SECTIONS = 5  # run_adaptpose.py's sections per epoch
SECTION_ITERATIONS = 300  # iterations one train_gan call processes


class _Clock:
    """Ticks of the reference's progress bars and the time its loaders take per batch."""

    def __init__(self) -> None:
        self.ticks: list[float] = []
        self.fetches: list[tuple[float, float]] = []  # (when it returned, seconds)

    def reset(self) -> None:
        self.ticks.clear()
        self.fetches.clear()

    def steps(self) -> list[tuple[float, float]]:
        """(seconds, of which loading) of every iteration between consecutive ticks."""
        out = []
        for start, end in zip(self.ticks, self.ticks[1:], strict=False):
            loading = sum(s for t, s in self.fetches if start < t <= end)
            out.append((end - start, loading))
        return out


class _TimedLoader:
    """A reference DataLoader whose batch deliveries are timed; the loop still iterates it itself."""

    def __init__(self, loader: torch.utils.data.DataLoader, clock: _Clock) -> None:
        self.loader, self.clock = loader, clock

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[Any]:
        batches = iter(self.loader)
        while True:
            start = time.perf_counter()
            try:
                item = next(batches)
            except StopIteration:
                return
            end = time.perf_counter()
            self.clock.fetches.append((end, end - start))
            yield item


@contextlib.contextmanager
def _aliased(modules: dict[str, types.ModuleType]) -> Iterator[None]:
    """Put ``modules`` in ``sys.modules`` for the time of an import, then take them out again."""
    added = [name for name in modules if name not in sys.modules]
    sys.modules.update({name: modules[name] for name in added})
    try:
        yield
    finally:
        for name in added:
            sys.modules.pop(name, None)


@contextlib.contextmanager
def cuda_means_cpu() -> Iterator[None]:
    """While the reference runs without a GPU, ``Tensor.cuda()`` (it calls it itself) is a no-op."""
    if torch.cuda.is_available():
        yield
        return
    original = torch.Tensor.cuda
    torch.Tensor.cuda = lambda self, *args, **kwargs: self  # type: ignore[method-assign]
    try:
        yield
    finally:
        torch.Tensor.cuda = original  # type: ignore[method-assign]


def _fail(message: str) -> SystemExit:
    return SystemExit(f"error: {OPTION}: {message}")


def load(path: str | Path) -> dict[str, Any]:
    """Import the reference's modules from a checkout at ``path`` (errors say what is missing)."""
    root = Path(path).expanduser().resolve()
    if not (root / "function_adaptpose" / "model_gan_train.py").is_file():
        raise _fail(
            f"{root} is not a checkout of mgholamikn/AdaptPose (no function_adaptpose/model_gan_train.py)"
        )
    for name in PACKAGES:  # e.g. a PoseAug checkout imported earlier in this process
        loaded = getattr(sys.modules.get(name), "__file__", None) or ""
        if name in sys.modules and not loaded.startswith(str(root)):
            raise _fail(
                f"a module {name!r} from elsewhere ({loaded or 'built in'}) is already imported; run alone"
            )
    sys.path.insert(0, str(root))
    try:
        viz = importlib.import_module("common.viz")
        gen = importlib.import_module("models_adaptpose.gan_generator")
        linear_model = types.ModuleType("models_baseline.mlp.linear_model")
        linear_model.init_weights = gen.init_weights  # type: ignore[attr-defined]
        with _aliased({"code.common.viz": viz, "models_baseline.mlp.linear_model": linear_model}):
            mods = {
                name: importlib.import_module(name)
                for name in (
                    "common.data_loader",
                    "models_baseline.videopose.model_VideoPose3D",
                    "function_adaptpose.config",
                    "function_adaptpose.model_gan_preparation",
                    "function_adaptpose.model_gan_train",
                    "function_adaptpose.model_pos_train",
                    "utils.gan_utils",
                    "utils.utils",
                )
            }
    except ImportError as err:
        raise _fail(
            f"importing the reference failed ({err}); it needs its own requirements in this environment: "
            "pytorch3d (only its pure-PyTorch transforms), progress, tensorboardX, matplotlib"
        ) from err
    mods["models_adaptpose.gan_generator"] = gen
    for name, module in list(sys.modules.items()):  # its functions build torch.device("cuda") themselves
        where = getattr(module, "__file__", None) or ""
        if (
            name.split(".")[0] in PACKAGES
            and where.startswith(str(root))
            and getattr(module, "torch", None) is torch
        ):
            module.torch = _DeviceShim()
    clock = _Clock()

    def timed_bar(bar: type) -> type:
        class TimedBar(bar):  # type: ignore[misc, valid-type]
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, **kwargs)
                clock.ticks.append(time.perf_counter())

            def next(self, n: int = 1) -> None:  # noqa: A003
                super().next(n)
                clock.ticks.append(time.perf_counter())

        return TimedBar

    gan_train = mods["function_adaptpose.model_gan_train"]
    pos_train = mods["function_adaptpose.model_pos_train"]
    gan_train.Bar = timed_bar(gan_train.Bar)
    pos_train.Bar = timed_bar(pos_train.Bar)
    for name in ("plot_16j", "plot_16j_2d", "plot_poseaug"):  # figures, not training
        setattr(gan_train, name, lambda *a, **k: None)
    mods["clock"] = clock
    return mods


def reference_args(mods: dict[str, Any], batch: int) -> Any:
    """``run_adaptpose.py``'s defaults (its own parser), timed after warm-up, loading in-process."""
    argv = sys.argv
    sys.argv = ["run_adaptpose.py"]
    try:
        args = mods["function_adaptpose.config"].get_parse_args()
    finally:
        sys.argv = argv
    args.warmup = 0  # with summary.epoch 1: the feedback term is on and the lifter trains
    args.batch_size = batch
    args.num_workers = 0
    return args


def _sixteen(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.delete(x, NECK_NOSE, axis=1))


def _loader(dataset: Any, batch: int, indices: np.ndarray | None = None) -> torch.utils.data.DataLoader:
    """As ``data_preparation`` builds them (shuffled); over ``indices`` only when given."""
    kw: dict[str, Any] = {"batch_size": batch, "num_workers": 0, "pin_memory": torch.cuda.is_available()}
    if indices is None:
        return torch.utils.data.DataLoader(dataset, shuffle=True, **kw)
    return torch.utils.data.DataLoader(dataset, sampler=torch.utils.data.SubsetRandomSampler(indices), **kw)


def time_adaptpose(
    mods: dict[str, Any],
    train: dict[str, np.ndarray],
    target2d: np.ndarray,
    batches: int,
    channels: int,
    batch: int,
) -> dict[str, Any]:
    """One reference epoch of ``batches`` iterations; see the module docstring."""
    n = batches * batch
    if batches < 2:
        raise _fail("--batches must be at least 2 (the first GAN step is warm-up, left out)")
    if n > len(train["pose2d"]):
        raise _fail(
            f"--batches {batches} needs {n} source frames; the training split has {len(train['pose2d'])}"
        )
    counts = [len(c) for c in np.array_split(np.arange(batches), SECTIONS)]
    if max(counts) > SECTION_ITERATIONS:
        raise _fail(
            f"a section of {max(counts)} batches is more than the {SECTION_ITERATIONS} train_gan runs"
        )
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    args = reference_args(mods, batch)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    clock: _Clock = mods["clock"]

    # the reference's datasets over the same poses (its train set is the concatenated frames)
    source3d = _sixteen(train["pose3d"][:n] + train["root3d"][:n, None])  # absolute camera-frame 3D
    source2d = _sixteen(train["pose2d"][:n])
    target = _sixteen(target2d[np.resize(rng.permutation(len(target2d)), n)])  # cycled to n, as ours
    data = mods["common.data_loader"]
    datasets = {
        "train_gt2d3d_loader": data.PoseDataSet(
            source3d, source2d, [[0] * n], train["intrinsics"][:n], args.pad
        ),
        "target_2d_loader": data.PoseTarget(target),
        "target_3d_loader": data.PoseTarget(source3d),  # D3d's real poses: the source 3D, as the code
        "target_3d_loader2": data.PoseTarget(source3d),  # its 3DHP 3D, only plotted: loaded, not used
    }

    # its networks, optimizers and schedulers; the lifter as model_pos_preparation builds it for pad 13
    skeleton = types.SimpleNamespace(num_joints=lambda: 16)
    poseaug = mods["function_adaptpose.model_gan_preparation"].get_poseaug_model(
        args, types.SimpleNamespace(skeleton=lambda: skeleton)
    )
    vp3d = mods["models_baseline.videopose.model_VideoPose3D"]
    model_pos = vp3d.TemporalModelOptimized1f(
        16, 2, 15, filter_widths=[3, 3, 3], causal=False, dropout=args.dropout, channels=channels
    )
    model_pos.apply(mods["models_adaptpose.gan_generator"].init_weights)
    model_pos = model_pos.to(device)
    optimizer = torch.optim.Adam(model_pos.parameters(), lr=args.lr_p)
    utils = mods["utils.utils"]
    scheduler = utils.get_scheduler(optimizer, policy="lambda", nepoch_fix=0, nepoch=args.epochs)
    criterion = torch.nn.MSELoss(reduction="mean").to(device)
    summary = utils.Summary("unused")
    summary.epoch = 1  # after warm-up
    writer = _NoWriter()
    pools = (mods["utils.gan_utils"].Sample_from_Pool(), mods["utils.gan_utils"].Sample_from_Pool())
    pools[0](source3d[rng.permutation(n)[:4096]])  # full pools, as after the first epoch
    pools[1](target[rng.permutation(n)[:4096]])
    train_gan = mods["function_adaptpose.model_gan_train"].train_gan
    train_posenet = mods["function_adaptpose.model_pos_train"].train_posenet

    gan: list[tuple[float, float]] = []
    fake: list[tuple[float, float]] = []
    kept, buffer, data_dict = 0, None, {}
    start = time.perf_counter()
    with cuda_means_cpu():
        for count in counts:
            if not count:
                continue
            for key, dataset in datasets.items():  # this section's batches, freshly shuffled
                picked = rng.permutation(n)[: count * batch]
                data_dict[key] = _TimedLoader(_loader(dataset, batch, picked), clock)
            clock.reset()
            train_gan(args, poseaug, data_dict, model_pos, criterion, *pools, summary, writer, section=0)
            gan += clock.steps()
            built = data_dict.get("train_fake2d3d_loader")
            if built is None:  # no selected window in its last batch yet: the code would stop here
                continue
            if not isinstance(built, _TimedLoader):  # a new buffer (else it trains on the old one again)
                kept += len(built.dataset)
                buffer = data_dict["train_fake2d3d_loader"] = _TimedLoader(built, clock)
            clock.reset()
            train_posenet(model_pos, buffer, optimizer, criterion, device)
            fake += clock.steps()
        real_loader = _TimedLoader(_loader(datasets["train_gt2d3d_loader"], batch), clock)
        clock.reset()
        train_posenet(model_pos, real_loader, optimizer, criterion, device)
        real = clock.steps()
        for name in ("scheduler_G", "scheduler_d3d", "scheduler_d2d"):
            poseaug[name].step()
        scheduler.step()
    epoch_s = time.perf_counter() - start

    # what each train_gan call also loads: the batches of the four other sections, skipped
    full = [_loader(dataset, batch) for dataset in datasets.values()]
    start = time.perf_counter()
    for _ in zip(*full, strict=False):
        pass
    sweep_s = time.perf_counter() - start

    def median(steps: list[tuple[float, float]], with_loading: bool) -> float:
        return statistics.median(s if with_loading else s - loading for s, loading in steps)

    timed = gan[1:]  # the first iteration warms up, as in poseshift's measure()
    res: dict[str, Any] = {
        "batch": batch,
        "channels": channels,
        "batches": batches,
        "sections": sum(1 for c in counts if c),
        "gan_step_s": median(timed, False),
        "gan_step_with_loading_s": median(timed, True),
        "estimator_step_s": median(real, False),
        "estimator_step_with_loading_s": median(real, True),
        "section_pass_steps": len(fake),
        "kept_fraction": kept / n,
        "epoch_loop_s": epoch_s,
        "skipped_batches_loading_s": (SECTIONS - 1) * sweep_s,
        "epoch_s": epoch_s + (SECTIONS - 1) * sweep_s,
    }
    res["gan_samples_per_s"] = batch / res["gan_step_s"]
    res["estimator_samples_per_s"] = batch / res["estimator_step_s"]
    res["epoch_source_samples_per_s"] = n / res["epoch_s"]
    for k in (0.0, 1.0):
        res[f"epoch_samples_per_s_at_kept_{k:g}"] = 1 / (
            1 / res["gan_samples_per_s"] + (1 + k) / res["estimator_samples_per_s"]
        )
    return res
