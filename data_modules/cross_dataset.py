"""The cross-dataset protocol: one labeled source DataModule plus named target domains.

A :class:`TargetDomain` reads one dataset's evaluation files (named test sets) and, when
available, its unlabeled training 2D. :class:`CrossDatasetDataModule` serves the source's
train/val splits, the source's own test sets and every target's test sets in one
``fit``/``test`` run (e.g. H36M -> {H36M, 3DHP-2929, 3DHP-full, 3DPW, Ski}), and gives
adaptation methods each target's 2D through ``DomainSets.target_train``.

Checkpoint selection uses the source validation split. ``selection="<test set name>"``
validates on that target test set instead -- what the reference code does silently -- and
the run then says so: the validation set is renamed ``oracle:<name>`` and
:attr:`CrossDatasetDataModule.oracle` is true, so results can be labelled as such.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

from data_modules.base import DomainSets, PoseDataModule
from data_modules.schema import PoseSet

log = logging.getLogger(__name__)


class TargetDomain:
    """A dataset used as a target: named test sets and optional unlabeled training 2D.

    Subclasses implement :meth:`load`; names of the returned sets must be unique across
    a run and carry the evaluation joint set (e.g. ``3dhp_2929.all16``).
    """

    def load(self) -> tuple[dict[str, PoseSet], dict[str, PoseSet]]:
        """(test sets by name, unlabeled target training sets by name)."""
        raise NotImplementedError


class CrossDatasetDataModule(PoseDataModule):
    """Source DataModule + target domains in one run.

    Args:
        source: the labeled source DataModule (its train/val are used; its loaders settings are not).
        targets: target domains whose test sets (and unlabeled 2D) are added.
        include_source_test: also evaluate the source's own test sets.
        selection: ``"source"`` (validate on the source's validation split) or the name of a
            test set to validate on, which marks the run as an oracle selection.
        **loader: DataLoader options of :class:`PoseDataModule` (batch_size, eval_batch_size,
            num_workers, test_sets, receptive_field, random_stride).
    """

    def __init__(
        self,
        source: PoseDataModule,
        targets: list[TargetDomain] | None = None,
        include_source_test: bool = True,
        selection: str = "source",
        **loader: Any,
    ) -> None:
        super().__init__(**loader)
        self.source = source
        self.targets = list(targets or [])
        self.include_source_test = include_source_test
        self.selection = selection

    @property
    def oracle(self) -> bool:
        """Whether checkpoints are selected on a test set (to be reported as "oracle")."""
        return self.selection != "source"

    def bone_length_templates(self, subjects: list[str]) -> Any:
        """The source's per-subject bone-length templates (see e.g. ``H36MDataModule``)."""
        source = getattr(self.source, "bone_length_templates", None)
        if source is None:
            raise ValueError(
                f"{type(self.source).__name__} cannot give bone-length templates of named subjects"
            )
        return source(subjects)

    def build_sets(self) -> DomainSets:
        src = self.source.build_sets()
        tests: dict[str, PoseSet] = dict(src.test) if self.include_source_test else {}
        target_train: dict[str, PoseSet] = dict(src.target_train)
        for target in self.targets:
            t_tests, t_train = target.load()
            for kind, new, merged in (("test", t_tests, tests), ("target", t_train, target_train)):
                clash = sorted(set(new) & set(merged))
                if clash:
                    raise ValueError(f"{type(target).__name__} adds {kind} set(s) {clash} that already exist")
                merged.update(new)
        for name, poses in target_train.items():
            if poses.labeled:  # adaptation methods must never see target labels
                target_train[name] = poses.unlabeled()
        val = src.val
        if self.oracle:
            if self.selection not in tests:
                raise ValueError(
                    f"selection {self.selection!r} is neither 'source' nor a test set; "
                    f"test sets: {list(tests)}"
                )
            val = replace(
                tests[self.selection],
                name=f"oracle:{self.selection}",
                meta={**tests[self.selection].meta, "oracle": True},
            )
            log.warning(
                "checkpoints are selected on the test set %s: report results as oracle", self.selection
            )
        return DomainSets(train=src.train, val=val, test=tests, target_train=target_train)
