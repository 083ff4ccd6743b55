"""Serve an evolved dataset (``poseshift evolve`` output): alone, or mixed with the original data.

Validation and test sets always come from the ``base`` DataModule, so an EvoSkeleton model
trained on evolved poses is evaluated exactly like one trained on the original data.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from data_modules.base import DomainSets, PoseDataModule
from data_modules.schema import DataFormatError, PoseSet

MODES = ("evolved", "mixed", "original")


def mix_sets(original: PoseSet, evolved: PoseSet, name: str = "train+evolved") -> PoseSet:
    """Concatenate original and evolved pairs; evolved samples get their own action id."""
    vocab = tuple(original.action_names) or ("original",)
    label = "evolved"
    while label in vocab:
        label += "_"
    names = (*vocab, label)
    orig = replace(original, action_names=names)
    evo = replace(
        evolved,
        action_names=names,
        action=np.full(len(evolved), len(vocab), dtype=np.int64),
        # keep the sequence ids of the two parts apart
        sequence=evolved.sequence + (int(original.sequence.max()) + 1 if len(original) else 0),
        subject=np.full(len(evolved), -1, dtype=np.int64),
    )
    return PoseSet.concat([orig, evo], name=name)


class EvolvedDataModule(PoseDataModule):
    """Training pairs from an evolved PoseSet file; validation and tests from ``base``.

    Args:
        path: the npz written by ``poseshift evolve``.
        base: the DataModule of the original data (e.g. the embedded mocap benchmark).
        mode: ``"evolved"`` trains on the evolved file alone (the reference's "synthetic" 2D
            setting; the file already holds the initial population), ``"mixed"`` adds it to the
            original training pairs (the reference's detector-2D setting), ``"original"``
            ignores it (a control with the same module).
        max_evolved: use at most this many evolved pairs (a random subset; ``None`` = all).
        seed: seed of that subset.
        **loader: DataLoader options of :class:`PoseDataModule` (batch_size, eval_batch_size,
            num_workers, test_sets, receptive_field, random_stride).
    """

    def __init__(
        self,
        path: str,
        base: PoseDataModule,
        mode: str = "mixed",
        max_evolved: int | None = None,
        seed: int = 0,
        **loader: Any,
    ) -> None:
        super().__init__(**loader)
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        self.path = path
        self.base = base
        self.mode = mode
        self.max_evolved = max_evolved
        self.seed = seed

    def result_notes(self) -> list[str]:
        """Facts every results table of a model trained here should carry (the evolution's deviations)."""
        if self.mode == "original":
            return []
        summary = Path(str(self.path) + ".json")
        if not summary.is_file():
            return [f"trained on evolved poses from {self.path} (no summary beside it: selection unknown)"]
        notes = json.loads(summary.read_text()).get("notes", [])
        return [f"trained on evolved poses from {self.path}", *notes]

    def describe(self) -> str:
        return "\n".join([super().describe(), *self.result_notes()])

    def load_evolved(self) -> PoseSet:
        if not Path(self.path).is_file():
            raise FileNotFoundError(
                f"{self.path}: file not found; write it first with `poseshift evolve --config "
                "experiments/evoskeleton/evolve_<...>.yaml` (its `output`)"
            )
        evolved = PoseSet.load(Path(self.path))
        if not evolved.labeled:
            raise DataFormatError(f"{self.path}: an evolved set must carry pose3d/root3d")
        if len(evolved) == 0:
            raise DataFormatError(
                f"{self.path}: holds no 2D-3D pairs; run `poseshift evolve` again (it names the problem)"
            )
        if self.max_evolved is not None and len(evolved) > self.max_evolved:
            rng = np.random.default_rng(self.seed)
            evolved = evolved.subset(np.sort(rng.choice(len(evolved), self.max_evolved, replace=False)))
        return evolved

    def build_sets(self) -> DomainSets:
        self.base.setup("fit")
        sets = self.base.sets
        assert sets is not None
        if self.mode == "original":
            train = sets.train
        elif self.mode == "evolved":
            train = replace(self.load_evolved(), name="evolved")
        else:
            train = mix_sets(sets.train, self.load_evolved())
        return DomainSets(
            train=train, val=sets.val, test=dict(sets.test), target_train=dict(sets.target_train)
        )
