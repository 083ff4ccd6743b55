"""LightningDataModule base shared by every dataset: one source domain, named test sets.

A subclass implements :meth:`PoseDataModule.build_sets`; this base turns the sets into
dataloaders, gives each test set a name that ends up in the logged metric keys, and
makes evaluation exact under DDP (no padded duplicates, see :class:`UnpaddedDistributedSampler`).

Methods see the data only through batches and the accessors of
:class:`poseshift.batches.PoseDataSource` (:meth:`PoseDataModule.training_poses`,
:meth:`~PoseDataModule.test_set_info`, :meth:`~PoseDataModule.validation_info`). Training
batches are ``{"source": batch}``, plus ``"target"``, a batch of unlabeled target-domain 2D,
when ``train_target`` names one of the module's target sets (Lightning's ``CombinedLoader``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import pytorch_lightning as pl
import torch
import torch.distributed as dist
from pytorch_lightning.utilities import CombinedLoader
from torch.utils.data import DataLoader, DistributedSampler

from data_modules.resumable import EpochRandomSampler, ResumableDataLoader
from data_modules.schema import PoseDataset, PoseSet, collate_batch
from data_modules.temporal import WindowedPoseDataset
from poseshift.batches import PoseBatch, TestSetInfo


def describe_sets(sets: DomainSets) -> str:
    """One line per split: its role, name and size."""
    rows = [("train", sets.train.name, sets.train), ("val", sets.val.name, sets.val)]
    rows += [("test", name, p) for name, p in sets.test.items()]
    rows += [("target 2D (unlabeled)", name, p) for name, p in sets.target_train.items()]
    return "\n".join(f"{role:<22} {name:<28} {len(p):>9,} samples" for role, name, p in rows)


class UnpaddedDistributedSampler(DistributedSampler):
    """Evaluation sampler that splits indices across ranks without repeating any.

    torch's DistributedSampler pads the last shard with duplicates so every rank gets
    the same count; that double-counts samples in summed metric states. Here rank r
    takes indices r, r + W, r + 2W, ... so shards differ by at most one sample.
    Lightning leaves a DistributedSampler it is given alone.
    """

    def __init__(
        self, dataset: torch.utils.data.Dataset, num_replicas: int | None = None, rank: int | None = None
    ) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=False, drop_last=False)
        self.num_samples = len(range(self.rank, len(dataset), self.num_replicas))
        self.total_size = len(dataset)

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.rank, self.total_size, self.num_replicas))


@dataclass
class DomainSets:
    """What a DataModule provides: labeled source splits, named test sets, unlabeled target 2D.

    Args:
        train: labeled source training split.
        val: validation split (source, or a target test set for oracle selection).
        test: test sets by name, in evaluation order.
        target_train: unlabeled target-domain training 2D by name.
    """

    train: PoseSet
    val: PoseSet
    test: dict[str, PoseSet]
    target_train: dict[str, PoseSet] = field(default_factory=dict)


class PoseDataModule(pl.LightningDataModule):
    """Base DataModule: subclasses return a :class:`DomainSets` from :meth:`build_sets`.

    Args:
        batch_size: training batch size.
        eval_batch_size: batch size for validation, test and predict.
        num_workers: DataLoader worker processes (0 loads in the main process, which is
            fastest for the in-memory arrays used here).
        test_sets: names of the test sets to evaluate, in order; ``None`` means all.
        receptive_field: > 1 serves ``pose2d`` as (B, T, J, 2) windows of this odd length
            centred on each sample, edge-padded within its sequence
            (:class:`data_modules.temporal.WindowedPoseDataset`); 1 = single frames.
        random_stride: training only: each window's frame stride is drawn in
            ``random_stride_min..random_stride`` (AdaptPose's random temporal down-sampling).
        window_3d: with ``receptive_field`` > 1, also serve the 3D of every window frame as
            ``pose3d_window`` (B, T, J, 3) and ``root3d_window`` (B, T, 3) (for generators that
            move 3D motion, e.g. AdaptPose's); ``pose3d`` stays the centre frame.
        train_target: name of an unlabeled target set (see :meth:`describe`) served beside every
            source training batch as ``batch["target"]`` (the same batch size, reshuffled every
            pass and cycled as needed); ``None`` = source only. Adaptation methods need it.
        random_stride_min: smallest training stride drawn (1; AdaptPose's paper: r in [2, 5],
            its code: 1 or 2).
    """

    def __init__(
        self,
        batch_size: int = 1024,
        eval_batch_size: int = 4096,
        num_workers: int = 0,
        test_sets: list[str] | None = None,
        receptive_field: int = 1,
        random_stride: int = 1,
        window_3d: bool = False,
        train_target: str | None = None,
        random_stride_min: int = 1,
    ) -> None:
        super().__init__()
        if batch_size <= 0 or eval_batch_size <= 0:
            raise ValueError(f"batch sizes must be positive, got {batch_size} and {eval_batch_size}")
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.num_workers = num_workers
        self.requested_test_sets = test_sets
        if receptive_field < 1 or receptive_field % 2 == 0 or not 1 <= random_stride_min <= random_stride:
            raise ValueError(
                f"receptive_field must be odd and >= 1 and 1 <= random_stride_min <= random_stride, got "
                f"{receptive_field}, {random_stride_min} and {random_stride}"
            )
        self.receptive_field = receptive_field
        self.random_stride = random_stride
        self.random_stride_min = random_stride_min
        self.window_3d = window_3d
        self.train_target = train_target
        self.sets: DomainSets | None = None

    def build_sets(self) -> DomainSets:
        """Load or generate every split; called once per process in :meth:`setup`."""
        raise NotImplementedError

    def setup(self, stage: str | None = None) -> None:
        if self.sets is not None:
            return
        sets = self.build_sets()
        if self.requested_test_sets is not None:
            unknown = [n for n in self.requested_test_sets if n not in sets.test]
            if unknown:
                raise ValueError(
                    f"--data.init_args.test_sets: unknown test set(s) {unknown}; choose from "
                    f"{list(sets.test)}, or leave the option out to test on all of them"
                )
            sets.test = {n: sets.test[n] for n in self.requested_test_sets}
        if self.train_target is not None and self.train_target not in sets.target_train:
            raise ValueError(
                f"train_target {self.train_target!r} is not an unlabeled target set of this data "
                f"module; available: {list(sets.target_train) or 'none'}"
            )
        self.sets = sets

    # -- information methods use ---------------------------------------------------------------
    def _require_sets(self) -> DomainSets:
        if self.sets is None:
            self.setup()
        assert self.sets is not None
        return self.sets

    @property
    def test_set_names(self) -> list[str]:
        """Names of the test sets, in dataloader order."""
        return list(self._require_sets().test)

    @property
    def num_actions(self) -> int:
        return max(1, len(self._require_sets().train.action_names))

    # -- accessors for methods (poseshift.batches.PoseDataSource) ---------------------------------
    def training_poses(self) -> PoseBatch:
        """The whole labeled source training split as CPU tensors (single frames, no windows)."""
        return {k: torch.from_numpy(v) for k, v in self._require_sets().train.arrays().items()}  # type: ignore[return-value]

    def test_set_info(self) -> dict[str, TestSetInfo]:
        """Evaluation facts of every test set, by name, in dataloader order."""
        return {name: _info(name, poses) for name, poses in self._require_sets().test.items()}

    def validation_info(self) -> TestSetInfo:
        """Evaluation facts of the validation split (``oracle`` when it is a target test set)."""
        val = self._require_sets().val
        return _info(val.name, val)

    # -- loaders ------------------------------------------------------------------------------
    def _dataset(self, poses: PoseSet, train: bool) -> PoseDataset:
        if self.receptive_field > 1:
            stride, low = (self.random_stride, self.random_stride_min) if train else (1, 1)
            return WindowedPoseDataset(
                poses, self.receptive_field, stride, window_3d=self.window_3d, min_stride=low
            )
        return PoseDataset(poses)

    def _loader(self, poses: PoseSet, train: bool) -> DataLoader:
        dataset = self._dataset(poses, train)
        sampler = None
        if not train and dist.is_available() and dist.is_initialized():
            sampler = UnpaddedDistributedSampler(dataset)
        if train:
            # shuffled by a generator of its own, seeded from torch's initial seed and the epoch, so
            # that a resumed fit (from an epoch-end or a mid-epoch checkpoint) sees exactly the
            # batches of the uninterrupted one (data_modules.resumable)
            seed = torch.initial_seed()
            return ResumableDataLoader(
                dataset,
                batch_size=self.batch_size,
                sampler=EpochRandomSampler(dataset, seed),
                drop_last=len(poses) > self.batch_size,
                num_workers=self.num_workers,
                collate_fn=collate_batch,
                persistent_workers=self.num_workers > 0,
                generator=torch.Generator().manual_seed(seed + 2),  # worker seeds
            )
        return DataLoader(
            dataset,
            batch_size=self.eval_batch_size,
            shuffle=False,
            sampler=sampler,
            num_workers=self.num_workers,
            collate_fn=collate_batch,
            persistent_workers=self.num_workers > 0,
        )

    def _target_loader(self, poses: PoseSet, num_batches: int) -> DataLoader:
        # as many full batches as the source loader has, reshuffled every epoch; its own generators
        # (seeded from torch's initial seed and the epoch) leave the global RNG untouched
        seed = torch.initial_seed()
        sampler = EpochRandomSampler(range(len(poses)), seed + 1, num_samples=num_batches * self.batch_size)
        return ResumableDataLoader(
            self._dataset(poses, train=True),
            batch_size=self.batch_size,
            sampler=sampler,
            drop_last=True,
            generator=torch.Generator().manual_seed(seed + 3),  # worker seeds
            num_workers=self.num_workers,
            collate_fn=collate_batch,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> CombinedLoader:
        """``{"source": batch}`` per step, plus ``"target"`` when ``train_target`` is set."""
        sets = self._require_sets()
        source = self._loader(sets.train, train=True)
        loaders: dict[str, DataLoader] = {"source": source}
        if self.train_target is not None:
            loaders["target"] = self._target_loader(sets.target_train[self.train_target], len(source))
        return CombinedLoader(loaders, mode="max_size_cycle")

    def val_dataloader(self) -> DataLoader:
        return self._loader(self._require_sets().val, train=False)

    def test_dataloader(self) -> list[DataLoader]:
        return [self._loader(s, train=False) for s in self._require_sets().test.values()]

    def target_dataloader(self, name: str) -> DataLoader:
        """Unlabeled target-domain 2D for adaptation methods."""
        targets = self._require_sets().target_train
        if name not in targets:
            raise ValueError(f"no unlabeled target set {name!r}; available: {list(targets)}")
        return self._loader(targets[name], train=True)

    def predict_dataloader(self) -> list[DataLoader]:
        return self.test_dataloader()

    def describe(self) -> str:
        """A few lines naming each split and its size, printed at the start of a run."""
        text = describe_sets(self._require_sets())
        if self.train_target is not None:
            text += f"\ntraining batches carry target 2D from {self.train_target!r}"
        return text


def _info(name: str, poses: PoseSet) -> TestSetInfo:
    return TestSetInfo(
        name=name,
        eval_joints=poses.meta.get("eval_joints"),
        action_names=poses.action_names,
        oracle=bool(poses.meta.get("oracle", False)),
        flip_test=poses.meta.get("flip_test"),
    )
