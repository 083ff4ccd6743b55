"""``poseshift evolve`` (data_modules.commands.evolve): sources, the written PoseSet, the configs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from helpers import REPO_ROOT, SyntheticDataModule, first_training_batch, upright_poses

from data_modules.commands.evolve import SourceConfig, load_source
from data_modules.commands.evolve import main as evolve_main


@pytest.fixture(scope="module")
def world() -> torch.Tensor:
    return upright_poses(400, 0)


def test_evolve_main_writes_a_pose_set(tmp_path, world):
    from data_modules.evolved import EvolvedDataModule
    from data_modules.schema import PoseSet

    np.savez(tmp_path / "world.npz", joints=world.numpy(), subject=np.arange(400) % 2)
    config = tmp_path / "evolve.yaml"
    config.write_text(
        "source:\n  kind: world\n  path: " + str(tmp_path / "world.npz") + "\n"
        "evolution:\n  target_ratio: 1.5\n  chunk_size: 64\n"
        "validity:\n  kind: learned\n  margin_deg: 15.0\n"
        "rig:\n  num_cameras: 2\n  h36m_extrinsics: true\n"
        f"output: {tmp_path / 'out' / 'evolved.npz'}\nseed: 3\ngroup_size: 100\nprogress: false\n"
    )
    assert evolve_main(["--config", str(config)]) == 0
    poses = PoseSet.load(tmp_path / "out" / "evolved.npz")
    assert len(poses) >= 0.9 * 600 * 2  # 600 poses x 2 cameras, up to a few dropped views
    assert np.abs(poses.pose3d[:, 0]).max() == 0 and poses.labeled
    summary = json.loads((tmp_path / "out" / "evolved.npz.json").read_text())
    assert summary["population"] == 600 and summary["generations"][0]["acceptance"] > 0
    assert summary["validity"] == "learned" and "DEVIATION" in summary["notes"][0]

    base = SyntheticDataModule(num_train=64, num_test=16)
    mixed = EvolvedDataModule(str(tmp_path / "out" / "evolved.npz"), base, mode="mixed", batch_size=32)
    mixed.setup("fit")
    assert len(mixed.sets.train) == 64 + len(poses)
    assert mixed.sets.train.action_names[-1] == "evolved"
    assert mixed.test_set_names == ["alpha", "beta"]
    # every results table of a model trained on it names the natural selection's deviation
    assert any("DEVIATION" in n for n in mixed.result_notes()) and "DEVIATION" in mixed.describe()
    alone = EvolvedDataModule(
        str(tmp_path / "out" / "evolved.npz"),
        SyntheticDataModule(num_train=64),
        mode="evolved",
        max_evolved=100,
    )
    alone.setup("fit")
    assert len(alone.sets.train) == 100
    batch = first_training_batch(mixed)["source"]
    assert batch["pose2d"].shape == (32, 17, 2)


def test_h36m_world_source(tmp_path, world):

    to32 = [0, 1, 2, 3, 6, 7, 8, 12, 13, 14, 15, 17, 18, 19, 25, 26, 27]  # H36M17 joint j sits at to32[j]
    full = np.zeros((400, 32, 3), dtype=np.float32)
    full[:, to32] = world.numpy()
    positions = {"S1": {"Walking": full[:200]}, "S5": {"Eating": full[200:]}}
    np.savez(tmp_path / "data_3d_h36m.npz", positions_3d=np.array(positions, dtype=object))
    joints, groups = load_source(SourceConfig(kind="h36m", path=str(tmp_path), subjects=["S1"], stride=2))
    assert joints.shape == (100, 17, 3) and (groups == 1).all()
    assert torch.allclose(joints, world[:200:2].float().double(), atol=1e-6)


EVOLVE_CONFIGS = sorted((REPO_ROOT / "experiments" / "evoskeleton").glob("evolve_*.yaml"))


@pytest.mark.parametrize("config", EVOLVE_CONFIGS, ids=lambda p: p.name)
def test_evolve_configs_parse(config, capsys):
    with pytest.raises(SystemExit) as done:
        evolve_main(["--config", str(config), "--print_config"])
    assert done.value.code == 0
    assert "evolution:" in capsys.readouterr().out
