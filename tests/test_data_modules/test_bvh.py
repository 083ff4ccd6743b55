"""BVH motion capture: parsing, forward kinematics, joint map, and the rig-filmed DataModule."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from fixtures import REST_WORLD, write_bvh

from data_modules.bvh import BVHDataModule, BVHTarget, bvh_to_world, forward_kinematics, parse_bvh
from data_modules.schema import DataFormatError
from poseshift.geometry.camera import project
from poseshift.geometry.rig import CameraRig


def test_parse_and_rest_pose(tmp_path: Path) -> None:
    write_bvh(tmp_path / "a.bvh", frames=4)
    skel, motion, frame_time = parse_bvh(tmp_path / "a.bvh")
    assert skel.names[:4] == ["Hips", "LeftUpLeg", "LeftLeg", "LeftFoot"] and "Head_End" in skel.names
    assert motion.shape == (4, 6 + 3 * 18) and frame_time == pytest.approx(1 / 120)
    rest = forward_kinematics(skel, np.zeros((1, skel.num_channels)))[0]
    # file units: y-up centimetres; LeftForeArm sits at the H36M l_elbow of the rest pose
    x, y, z = REST_WORLD[12] * 100
    np.testing.assert_allclose(rest[skel.names.index("LeftForeArm")], [x, z, -y], atol=1e-6)


def test_world_joints_follow_root_yaw_and_knee(tmp_path: Path) -> None:
    yaw = np.full(3, 90.0)
    knee = np.array([0.0, 0.0, 90.0])
    write_bvh(tmp_path / "a.bvh", frames=3, yaw_deg=yaw, knee_deg=knee, frame_time=0.02)
    world = bvh_to_world(tmp_path / "a.bvh", fps=50)  # same rate: no resampling
    assert world.shape == (3, 17, 3)
    # a 90 degree yaw about the file's up axis is a rotation about world +Z
    rz = np.array([[0.0, -1, 0], [1, 0, 0], [0, 0, 1]])
    expected = REST_WORLD @ rz.T
    got = world[0] - world[0, :1]
    np.testing.assert_allclose(got, expected - expected[:1], atol=1e-6)
    assert world[..., 2].min() == pytest.approx(0.0)  # floor
    np.testing.assert_allclose(world[1, :, :2] - world[0, :, :2], np.tile([[0.02, 0.0]], (17, 1)), atol=1e-6)
    # knee bent 90 degrees about its x axis: the shin keeps its length and turns horizontal
    shin = world[2, 6] - world[2, 5]
    assert np.linalg.norm(shin) == pytest.approx(0.44, abs=1e-6) and abs(shin[2]) < 1e-6


def test_resampling_and_scale(tmp_path: Path) -> None:
    write_bvh(tmp_path / "a.bvh", frames=13, frame_time=1 / 120)
    assert len(bvh_to_world(tmp_path / "a.bvh", fps=30)) == 4  # 0.1 s at 30 fps
    auto = bvh_to_world(tmp_path / "a.bvh")
    metres = bvh_to_world(tmp_path / "a.bvh", scale=0.01)
    np.testing.assert_allclose(auto, metres, atol=1e-9)  # the fixture's rest height is 1.6 m


def test_joint_map_and_errors(tmp_path: Path) -> None:
    write_bvh(tmp_path / "a.bvh", frames=3)
    custom = bvh_to_world(tmp_path / "a.bvh", joint_map={"spine": ["Spine", "Spine1"]})
    default = bvh_to_world(tmp_path / "a.bvh")
    assert custom[0, 7, 2] < default[0, 7, 2]  # the average of two spine joints sits lower
    with pytest.raises(
        DataFormatError, match=r"a.bvh: joint map: thorax -> 'Chest' not in the file; its joints"
    ):
        bvh_to_world(tmp_path / "a.bvh", joint_map={"thorax": "Chest"})
    with pytest.raises(ValueError, match="not H36M joints"):
        bvh_to_world(tmp_path / "a.bvh", joint_map={"nose": "Head"})
    text = (tmp_path / "a.bvh").read_text().splitlines()
    (tmp_path / "b.bvh").write_text("\n".join(text[:-1]) + "\n")
    with pytest.raises(DataFormatError, match=r"b.bvh: MOTION: expected 3 frames"):
        parse_bvh(tmp_path / "b.bvh")
    (tmp_path / "c.bvh").write_text("hello")
    with pytest.raises(DataFormatError, match="c.bvh: not a BVH file"):
        parse_bvh(tmp_path / "c.bvh")
    (tmp_path / "d.bvh").write_text("\n".join(t for t in text if "}" not in t or "End" in t))
    with pytest.raises(DataFormatError, match="d.bvh: HIERARCHY"):
        parse_bvh(tmp_path / "d.bvh")


def test_bvh_data_module_and_target(tmp_path: Path) -> None:
    for i in range(5):
        write_bvh(
            tmp_path / "mocap" / f"clip{i}.bvh",
            frames=30,
            yaw_deg=np.linspace(0, 40 * i, 30),
            knee_deg=np.linspace(0, 60, 30),
        )
    dm = BVHDataModule(str(tmp_path / "mocap"), takes=1, fps=60, test_every=5, val_every=10)
    dm.setup()
    sets = dm.sets
    assert dm.test_set_names == ["bvh_mocap_test.all"]
    assert set(sets.val.action_names) == {"clip1"} and set(
        sets.test.values().__iter__().__next__().action_names
    ) == {"clip4"}
    assert len(sets.train) == 3 * 4 * 15  # 3 files x 4 H36M cameras x 15 frames at 60 fps
    s = sets.train
    uv = project(torch.from_numpy(s.pose3d + s.root3d[:, None]), torch.from_numpy(s.intrinsics))
    np.testing.assert_allclose(uv.numpy(), s.pose2d, atol=1e-5)
    tests, train = BVHTarget(
        str(tmp_path / "mocap"), rig=CameraRig(num_cameras=2), target_train_takes=1
    ).load()
    assert list(tests) == ["bvh_mocap.all"] and not train["bvh_mocap_2d"].labeled
