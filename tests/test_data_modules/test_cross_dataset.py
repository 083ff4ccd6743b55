"""The cross-dataset protocol and the experiment configs that use it."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import yaml
from fixtures import write_all
from helpers import REPO_ROOT

from data_modules.base import DomainSets, PoseDataModule
from data_modules.cross_dataset import CrossDatasetDataModule, TargetDomain
from data_modules.h36m import H36MDataModule
from data_modules.mpi_inf_3dhp import MPI3DHP
from data_modules.schema import PoseSet
from poseshift.methods import Baseline
from poseshift.trainers import quiet_trainer

ROOT = REPO_ROOT
CONFIGS = sorted((ROOT / "experiments" / "baseline").glob("h36m*.yaml"))


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``data/{h36m,3dhp,3dpw,ski}`` with every file the configs name (all seven H36M subjects)."""
    root = tmp_path_factory.mktemp("data")
    write_all(root)
    return root


def cross(data_dir: Path, **kwargs: object) -> CrossDatasetDataModule:
    source = H36MDataModule(str(data_dir / "h36m"))
    target = MPI3DHP(str(data_dir / "3dhp"), test_sets=["2929", "full"], target_train=True)
    dm = CrossDatasetDataModule(source, [target], batch_size=64, eval_batch_size=64, **kwargs)
    dm.setup()
    return dm


def test_one_source_many_named_targets(data_dir: Path) -> None:
    dm = cross(data_dir)
    assert dm.test_set_names == ["h36m_gt_S9+S11.all", "3dhp_2929.official14", "3dhp_full_univ.official14"]
    sets = dm.sets
    assert not dm.oracle and sets.val.name.startswith("h36m_S1+S5")
    assert all(not s.labeled for s in sets.target_train.values()) and "3dhp_train_2d" in sets.target_train
    loader = dm.target_dataloader("3dhp_train_2d")
    batch = next(iter(loader))
    assert set(batch) >= {"pose2d", "intrinsics"} and "pose3d" not in batch
    assert re.search(r"target 2D \(unlabeled\) +3dhp_train_2d", dm.describe())


def test_oracle_selection_is_named(data_dir: Path, tmp_path: Path) -> None:
    dm = cross(data_dir, selection="3dhp_2929.official14")
    assert dm.oracle and dm.sets.val.name == "oracle:3dhp_2929.official14" and dm.sets.val.meta["oracle"]
    assert dm.validation_info().oracle
    # every logged validation key and the checkpoint monitor carry the oracle label
    pl.seed_everything(0)
    model = Baseline(backbone_kwargs={"linear_size": 32, "num_stages": 1})
    trainer = quiet_trainer(
        max_epochs=1, limit_train_batches=2, enable_checkpointing=True, default_root_dir=tmp_path
    )
    trainer.fit(model, datamodule=dm)
    logged = set(trainer.callback_metrics)
    assert "oracle:3dhp_2929.official14/mpjpe" in logged and not any(k.startswith("val/") for k in logged)
    assert model.monitor == "oracle:3dhp_2929.official14/mpjpe"
    assert (
        trainer.checkpoint_callback.monitor == model.monitor and trainer.checkpoint_callback.best_model_path
    )
    with pytest.raises(ValueError, match="neither 'source' nor a test set"):
        cross(data_dir, selection="3dhp_2929")


class _Twice(TargetDomain):
    def load(self) -> tuple[dict[str, PoseSet], dict[str, PoseSet]]:
        from helpers import synthetic_set

        s = synthetic_set(8, 0, "dup")
        return {"h36m_gt_S9+S11.all": s}, {}


def test_duplicate_test_set_names_are_refused(data_dir: Path) -> None:
    dm = CrossDatasetDataModule(H36MDataModule(str(data_dir / "h36m")), [_Twice()])
    with pytest.raises(ValueError, match="already exist"):
        dm.setup()


def test_fit_and_test_log_every_target_under_its_name(data_dir: Path, tmp_path: Path) -> None:
    pl.seed_everything(0)
    dm = cross(data_dir)
    model = Baseline(backbone_kwargs={"linear_size": 32, "num_stages": 1})
    quiet_trainer(max_epochs=1, limit_train_batches=2, default_root_dir=tmp_path).fit(model, datamodule=dm)
    trainer = quiet_trainer(default_root_dir=tmp_path)
    trainer.test(model, datamodule=dm, verbose=False)
    keys = set(trainer.callback_metrics)
    for name in dm.test_set_names:
        assert f"test/{name}/mpjpe" in keys and f"test/{name}/pck" in keys
    assert np.isfinite(float(trainer.callback_metrics["test/3dhp_2929.official14/auc"]))


@pytest.mark.parametrize("config", CONFIGS, ids=[c.stem for c in CONFIGS])
def test_experiment_configs_build(config: Path, data_dir: Path) -> None:
    """Every H36M config instantiates its DataModule on fixture files placed where the README says."""
    from jsonargparse import ArgumentParser

    data = yaml.safe_load(config.read_text())["data"]
    text = yaml.safe_dump(data).replace("root: data/", f"root: {data_dir}/")
    parser = ArgumentParser()
    parser.add_subclass_arguments(PoseDataModule, "data")
    cfg = parser.parse_object({"data": yaml.safe_load(text)})
    dm = parser.instantiate_classes(cfg).data
    dm.setup()
    sets: DomainSets = dm.sets
    assert len(sets.train) and len(sets.val) and sets.test
    assert yaml.safe_load(config.read_text())["model"]["class_path"] == "poseshift.methods.Baseline"
