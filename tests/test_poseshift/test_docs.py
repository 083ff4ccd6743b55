"""Every constructor parameter that ``poseshift ... --help`` shows has its own documentation line.

jsonargparse takes each option's help from the class docstring's ``Args:`` section, one name per
line; a parameter documented on a shared line ("a, b: ...") or not at all shows no help.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import pkgutil

import docstring_parser
import pytest
import pytorch_lightning as pl

import data_modules
import poseshift
from data_modules.cross_dataset import TargetDomain
from poseshift.models import BACKBONES


def _classes() -> list[type]:
    found: dict[str, type] = {}
    for package in (poseshift, data_modules):
        for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            module = importlib.import_module(info.name)
            for _, cls in inspect.getmembers(module, inspect.isclass):
                if cls.__module__ != module.__name__ or cls.__name__.startswith("_"):
                    continue
                configurable = issubclass(cls, (pl.LightningModule, pl.LightningDataModule, TargetDomain))
                if configurable or dataclasses.is_dataclass(cls) or cls in BACKBONES.values():
                    found[f"{cls.__module__}.{cls.__qualname__}"] = cls
    return [found[k] for k in sorted(found)]


CLASSES = _classes()


def _undocumented(cls: type) -> list[str]:
    documented: set[str] = set()
    for doc in (cls.__doc__, getattr(cls.__init__, "__doc__", None)):
        if doc:
            documented |= {p.arg_name for p in docstring_parser.parse(doc).params}
    params = inspect.signature(cls.__init__).parameters.values()
    names = [p.name for p in params if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    return [n for n in names if n not in documented]


def test_the_walk_finds_the_methods_and_data_modules():
    names = {c.__name__ for c in CLASSES}
    assert {"Baseline", "PoseAug", "EvoSkeleton", "MocapDataModule", "H36MDataModule", "CameraRig"} <= names


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__qualname__)
def test_every_constructor_parameter_has_its_own_doc_line(cls: type):
    missing = _undocumented(cls)
    assert not missing, f"{cls.__module__}.{cls.__qualname__}: no 'Args:' line for {missing}"
