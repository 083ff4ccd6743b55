"""3DPW (official pickles, AdaptPose npz) and Ski-Pose PTZ (labels.h5, AdaptPose npz)."""

from __future__ import annotations

import logging
import pickle
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from fixtures import (
    write_pw3d_adaptpose,
    write_pw3d_sequence,
    write_ski_adaptpose,
    write_ski_labels,
)

from data_modules import pw3d, ski
from data_modules.schema import DataFormatError
from data_modules.skeletons import EVAL_JOINT_SETS
from poseshift.geometry.camera import project_pinhole

KEEP16 = list(EVAL_JOINT_SETS["all16"])


def _reproject(s) -> np.ndarray:
    return project_pinhole(
        torch.from_numpy(s.pose3d + s.root3d[:, None]), torch.from_numpy(s.intrinsics)
    ).numpy()


# -- 3DPW -------------------------------------------------------------------------------------------------
def test_official_pickles(tmp_path: Path) -> None:
    truth = write_pw3d_sequence(tmp_path / "sequenceFiles" / "test" / "downtown_a_00.pkl", frames=8, actors=2)
    s = pw3d.load_official_split(tmp_path, "test")
    assert s.name == "3dpw_test.all16" and s.meta["norm"] == "screen_padsq"
    assert len(s) == 2 * 6  # per actor: frame 1 (invalid camera pose) and 2 (no detection) dropped
    assert set(s.frame[s.subject == 1]) == {0, 3, 4, 5, 6, 7} and set(np.unique(s.subject)) == {0, 1}
    kept = [0, 3, 4, 5, 6, 7]
    for actor in (0, 1):
        cam = truth[actor][kept]
        a = s.subject == actor
        np.testing.assert_allclose(s.root3d[a], cam[:, 0], atol=1e-5)
        np.testing.assert_allclose(s.pose3d[a][:, KEEP16], (cam - cam[:, :1])[:, KEEP16], atol=1e-5)
    # 2D = projection with cam_intrinsics on the 1920-square padded frame: |y| <= 1 on a portrait frame
    np.testing.assert_allclose(_reproject(s)[:, KEEP16], s.pose2d[:, KEEP16], atol=1e-5)
    np.testing.assert_array_equal(s.image_size[0], [1920, 1920])
    assert np.abs(s.pose2d).max() <= 1
    u = 1960 * truth[0][0, 3, 0] / truth[0][0, 3, 2] + 540 + 420  # r_ankle, first frame, padded x
    assert s.pose2d[0, 3, 0] == pytest.approx(2 * u / 1920 - 1, abs=1e-5)
    plain = pw3d.load_official_split(tmp_path, "test", pad_square=False, drop_undetected=False)
    assert len(plain) == 2 * 7 and plain.meta["norm"] == "screen"
    np.testing.assert_array_equal(plain.image_size[0], [1080, 1920])
    np.testing.assert_allclose(_reproject(plain)[:, KEEP16], plain.pose2d[:, KEEP16], atol=1e-5)


def test_official_pickle_errors(tmp_path: Path) -> None:
    path = tmp_path / "sequenceFiles" / "test" / "x.pkl"
    write_pw3d_sequence(path)
    data = pickle.loads(path.read_bytes(), encoding="latin1")

    def broken(**change: object) -> str:
        bad = dict(data, **change)
        path.write_bytes(pickle.dumps(bad, protocol=2))
        with pytest.raises(DataFormatError) as err:
            pw3d.load_official_split(tmp_path, "test")
        assert str(path) in str(err.value)
        return str(err.value)

    assert "jointPositions[1]: expected shape (8, 72)" in broken(
        jointPositions=[data["jointPositions"][0], data["jointPositions"][1][:, :69]]
    )
    assert "cam_poses: expected shape (N, 4, 4)" in broken(cam_poses=data["cam_poses"][:, :3])
    assert "cam_intrinsics: expected shape (3, 3)" in broken(cam_intrinsics=np.eye(4))
    assert "campose_valid[0]: 7 entries for 8 frames" in broken(
        campose_valid=[data["campose_valid"][0][:7], data["campose_valid"][1]]
    )
    del data["cam_intrinsics"]
    assert "missing key(s) ['cam_intrinsics']" in broken()
    data = dict(data, cam_intrinsics=np.diag([1960.0, 1960, 1]))
    data["cam_intrinsics"][:2, 2] = (540, 960)
    flipped = data["cam_poses"].copy()
    flipped[:, 2, 3] = -20.0
    assert "behind the camera" in broken(cam_poses=flipped)
    assert "millimetres" in broken(jointPositions=[j * 1000 for j in data["jointPositions"]])
    path.write_bytes(b"garbage")
    with pytest.raises(DataFormatError, match="not a readable pickle"):
        pw3d.load_official_split(tmp_path, "test")
    with pytest.raises(FileNotFoundError, match="no 3DPW sequence pickles"):
        pw3d.load_official_split(tmp_path, "validation")


def test_adaptpose_3dpw_npz(tmp_path: Path) -> None:
    cam = write_pw3d_adaptpose(tmp_path / "data_3dpw_gt_test.npz", legs_swapped=True)
    write_pw3d_adaptpose(tmp_path / "data_3dpw_gt_train.npz", legs_swapped=False)
    s = pw3d.load_adaptpose(tmp_path / "data_3dpw_gt_test.npz", legs_swapped=True)
    assert s.name == "3dpw_adaptpose_test.all16"
    np.testing.assert_allclose(
        s.pose3d[:, KEEP16], (cam - cam[:, :1])[:, KEEP16], atol=1e-5
    )  # legs back in place
    np.testing.assert_allclose(_reproject(s)[:, KEEP16], s.pose2d[:, KEEP16], atol=1e-5)
    target = pw3d.PW3D(str(tmp_path), test_sets=["adaptpose"], target_train="adaptpose")
    tests, train = target.load()
    assert list(tests) == ["3dpw_adaptpose_test.all16"] and not train["3dpw_adaptpose_train_2d"].labeled
    np.savez(tmp_path / "bad.npz", positions_2d=np.full((3, 16, 2), 700.0), positions_3d=np.zeros((3, 16, 3)))
    with pytest.raises(DataFormatError, match=r"bad.npz: positions_2d: .*already normalized"):
        pw3d.load_adaptpose(tmp_path / "bad.npz", legs_swapped=False)
    np.savez(tmp_path / "bad.npz", positions_2d=np.zeros((3, 16, 2)), positions_3d=np.zeros((2, 16, 3)))
    with pytest.raises(DataFormatError, match="bad.npz: positions_3d: 2 poses, positions_2d has 3"):
        pw3d.load_adaptpose(tmp_path / "bad.npz", legs_swapped=False)


# -- Ski --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("flat", [True, False])
def test_ski_labels_reproject_and_leg_check(tmp_path: Path, flat: bool, caplog) -> None:
    cam = write_ski_labels(tmp_path / "test" / "labels.h5", n=12, legs_swapped=True, flat=flat)
    with caplog.at_level(logging.INFO):
        s = ski.load_labels(tmp_path / "test" / "labels.h5")
    assert s.name == "ski_test_crop.all" and s.meta["swap_3d_legs"] is True
    assert "swapped to match the 2D" in caplog.text
    np.testing.assert_allclose(s.pose3d, cam - cam[:, :1], atol=1e-5)
    np.testing.assert_allclose(s.root3d, cam[:, 0], rtol=1e-3)
    np.testing.assert_allclose(_reproject(s), s.pose2d, atol=1e-5)
    np.testing.assert_array_equal(s.image_size[0], [256, 256])
    assert set(np.unique(s.camera)) <= set(range(6)) and (s.subject == 2).all()
    with caplog.at_level(logging.WARNING):
        forced = ski.load_labels(tmp_path / "test" / "labels.h5", swap_3d_legs=False)
    assert "matches the swapped leg order better" in caplog.text and not forced.meta["swap_3d_legs"]
    frob = ski.load_labels(tmp_path / "test" / "labels.h5", norm="frob")
    assert frob.name == "ski_test_frob.all"
    np.testing.assert_allclose(frob.pose2d[:, 0], 0, atol=1e-7)
    np.testing.assert_allclose(np.linalg.norm(frob.pose2d.reshape(12, -1), axis=1), 1, rtol=1e-5)


def test_ski_unswapped_file_keeps_legs(tmp_path: Path) -> None:
    cam = write_ski_labels(tmp_path / "labels.h5", legs_swapped=False)
    s = ski.load_labels(tmp_path / "labels.h5")
    assert not s.meta["swap_3d_legs"]
    np.testing.assert_allclose(s.pose3d, cam - cam[:, :1], atol=1e-5)


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("3D", np.zeros((12, 50)), r"3D: expected 12 samples of shape \(17, 3\)"),
        ("cam", np.zeros(11), r"cam: expected 12 samples"),
        ("2D", np.full((12, 34), np.nan), "2D: 12 of 12 samples contain NaN"),
        ("2D", np.full((12, 34), 130.0), "2D: values up to 130.0; expected crop-normalized"),
        ("cam_intrinsic", None, r"missing key\(s\) \['cam_intrinsic'\]"),
    ],
)
def test_ski_malformed(tmp_path: Path, key: str, value, message: str) -> None:
    path = tmp_path / "labels.h5"
    write_ski_labels(path)
    with h5py.File(path, "a") as f:
        del f[key]
        if value is not None:
            f[key] = value
    with pytest.raises(DataFormatError, match=message) as err:
        ski.load_labels(path)
    assert str(path) in str(err.value)


def test_ski_mm_and_not_hdf5(tmp_path: Path) -> None:
    path = tmp_path / "labels.h5"
    write_ski_labels(path)
    with h5py.File(path, "a") as f:
        f["3D"][...] = f["3D"][...] * 1000
    with pytest.raises(DataFormatError, match="3D: .*millimetres"):
        ski.load_labels(path)
    path.write_text("nope")
    with pytest.raises(DataFormatError, match="not an HDF5 file"):
        ski.load_labels(path)


def test_ski_adaptpose_and_target(tmp_path: Path) -> None:
    cam = write_ski_adaptpose(tmp_path / "data_skii_gt_test.npz")
    write_ski_adaptpose(tmp_path / "data_skii_gt_train.npz")
    write_ski_labels(tmp_path / "test" / "labels.h5")
    write_ski_labels(tmp_path / "train" / "labels.h5", seed=3)
    s = ski.load_adaptpose(tmp_path / "data_skii_gt_test.npz")
    assert s.name == "ski_adaptpose_test.all16" and s.meta["norm"] == "frob"
    np.testing.assert_allclose(s.pose3d[:, KEEP16], (cam - cam[:, :1])[:, KEEP16], atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(s.pose2d[:, KEEP16].reshape(len(s), -1), axis=1), 1, rtol=1e-5)
    tests, train = ski.SkiPose(
        str(tmp_path), test_sets=["official", "adaptpose"], target_train="official"
    ).load()
    assert list(tests) == ["ski_test_crop.all", "ski_adaptpose_test.all16"]
    assert not train["ski_train_2d"].labeled
    with pytest.raises(ValueError, match="norm in"):
        ski.SkiPose(str(tmp_path), norm="pixels")
