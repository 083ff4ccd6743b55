"""MPI-INF-3DHP: PoseAug 2,929-frame npz, official annot_data.mat, AdaptPose npz files."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from fixtures import (
    TS_OUTDOOR,
    TS_STUDIO,
    pinhole,
    screen,
    train_camera,
    write_3dhp_train_sequence,
    write_adaptpose_3dhp_test,
    write_adaptpose_3dhp_train,
    write_annot_data,
    write_calibration,
    write_poseaug_3dhp,
)
from scipy.io import loadmat

from data_modules.mpi_inf_3dhp import (
    MPI3DHP,
    load_adaptpose_test,
    load_adaptpose_train_2d,
    load_official_test,
    load_official_train_2d,
    load_poseaug_test,
)
from data_modules.schema import DataFormatError
from data_modules.skeletons import EVAL_JOINT_SETS
from poseshift.geometry.camera import project_pinhole


def _reprojects(s, atol: float = 1e-5, joints: str = "all") -> None:
    """The set's 2D is the pinhole projection of its 3D + root (on the given joint set)."""
    uv = project_pinhole(torch.from_numpy(s.pose3d + s.root3d[:, None]), torch.from_numpy(s.intrinsics))
    keep = list(EVAL_JOINT_SETS[joints])
    np.testing.assert_allclose(uv.numpy()[:, keep], s.pose2d[:, keep], atol=atol)


def test_poseaug_2929_file(tmp_path: Path) -> None:
    cam = write_poseaug_3dhp(tmp_path / "test_3dhp.npz", n=20)
    s = load_poseaug_test(tmp_path / "test_3dhp.npz", eval_joints="all")
    assert s.name == "3dhp_2929.all16" and s.meta["eval_joints"] == EVAL_JOINT_SETS["all16"]
    assert len(s) == 20 and s.num_joints == 17
    studio = int(round(20 * 2207 / 2929))
    assert (s.image_size[:studio] == [2048, 2048]).all() and (s.image_size[studio:] == [1920, 1080]).all()
    keep = list(EVAL_JOINT_SETS["all16"])
    np.testing.assert_allclose(s.pose3d[:, keep], (cam - cam[:, :1])[:, keep], atol=1e-6)
    # the root is not in the file: recovered from 2D + 3D
    np.testing.assert_allclose(s.root3d, cam[:, 0], atol=1e-3)
    _reprojects(s, atol=1e-5, joints="all16")
    assert (
        load_poseaug_test(tmp_path / "test_3dhp.npz", eval_joints="official14").name == "3dhp_2929.official14"
    )


def test_official_annot_data(tmp_path: Path) -> None:
    root = tmp_path / "mpi_inf_3dhp_test_set"
    cams = {
        ts: write_annot_data(
            root / ts / "annot_data.mat", n=10, seed=i, outdoor=ts in ("TS5", "TS6"), matlab_order=ts == "TS2"
        )
        for i, ts in enumerate(("TS1", "TS2", "TS3", "TS4", "TS5", "TS6"))
    }
    s = load_official_test(root)
    assert s.name == "3dhp_full_univ.official14" and s.meta["eval_joints"] == EVAL_JOINT_SETS["official14"]
    assert len(s) == 6 * 8  # two invalid frames per sequence dropped
    assert not np.isin([2, 5], s.frame[s.sequence == 1]).any()
    ts5 = s.sequence == 5
    assert (s.image_size[ts5] == [1920, 1080]).all() and (
        s.image_size[~(ts5 | (s.sequence == 6))] == 2048
    ).all()
    # 3DHP head -> neck_nose, 3DHP neck -> thorax: compare with the H36M-17 poses the fixture projected
    valid = np.setdiff1d(np.arange(10), [2, 5])
    truth = cams["TS5"][valid]
    np.testing.assert_allclose(s.pose3d[ts5], 0.95 * (truth - truth[:, :1]), atol=1e-5)  # universal
    np.testing.assert_allclose(s.root3d[ts5], truth[:, 0], atol=1e-5)
    np.testing.assert_allclose(s.pose2d[ts5], screen(pinhole(truth, *TS_OUTDOOR), 1920, 1080), atol=1e-5)
    metric = load_official_test(root, universal=False, valid_only=False, eval_joints="all")
    assert metric.name == "3dhp_full_metric_allframes.all" and len(metric) == 60
    _reprojects(metric, atol=1e-4)  # annot2 is the projection of annot3, not of univ_annot3
    assert metric.action.max() < 7 and metric.action_names[0] == "Standing/Walking"
    t1 = metric.sequence == 1
    np.testing.assert_allclose(
        metric.pose2d[t1], screen(pinhole(cams["TS1"], *TS_STUDIO), 2048, 2048), atol=1e-5
    )


@pytest.mark.parametrize(
    "break_it, field, message",
    [
        (lambda f: f.__delitem__("univ_annot3"), "univ_annot3", "missing key"),
        (
            lambda f: (f.__delitem__("annot3"), f.create_dataset("annot3", data=np.zeros((10, 1, 16, 3)))),
            "annot3",
            r"expected \(N, 1, 17, 3\)",
        ),
        (
            lambda f: (f.__delitem__("valid_frame"), f.create_dataset("valid_frame", data=np.ones((9, 1)))),
            "valid_frame",
            "9 entries for 10 frames",
        ),
        (lambda f: f["annot2"].__setitem__((0, 0, 3, 0), np.nan), "annot2", "NaN"),
        (
            lambda f: f["activity_annotation"].__setitem__((0, 0), 9),
            "activity_annotation",
            "values must be 1..7",
        ),
        (
            lambda f: f["univ_annot3"].__setitem__(slice(None), f["univ_annot3"][:] / 1000),
            "univ_annot3",
            "look like metres",
        ),
    ],
)
def test_malformed_annot_data(tmp_path: Path, break_it, field: str, message: str) -> None:
    path = tmp_path / "TS1" / "annot_data.mat"
    write_annot_data(path, n=10, invalid=(5,))
    with h5py.File(path, "a") as f:
        break_it(f)
    with pytest.raises(DataFormatError, match=message) as err:
        load_official_test(tmp_path, sequences=("TS1",))
    assert str(path) in str(err.value) and field in str(err.value)


def test_official_missing_file_and_not_a_mat(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="TS1/annot_data.mat"):
        load_official_test(tmp_path, sequences=("TS1",))
    (tmp_path / "TS1").mkdir()
    (tmp_path / "TS1" / "annot_data.mat").write_bytes(b"MATLAB 5.0 garbage")
    with pytest.raises((DataFormatError, ImportError)):
        load_official_test(tmp_path, sequences=("TS1",))


def test_adaptpose_test_file_drops_first_frames(tmp_path: Path) -> None:
    cams = write_adaptpose_3dhp_test(tmp_path / "t.npz")
    s = load_adaptpose_test(tmp_path / "t.npz")
    assert s.name == "3dhp_adaptpose.all16" and len(s) == 6 + 5 + 5
    ts3 = s.sequence == 3
    assert s.frame[ts3].min() == 100
    keep = list(EVAL_JOINT_SETS["all16"])
    np.testing.assert_allclose(s.root3d[ts3], cams["TS3"][100:, 0], atol=1e-4)  # absolute file: root kept
    np.testing.assert_allclose(
        s.pose3d[ts3][:, keep], (cams["TS3"][100:] - cams["TS3"][100:, :1])[:, keep], atol=1e-5
    )
    _reprojects(s, atol=1e-5, joints="all16")


def test_adaptpose_train_2d_is_unlabeled_and_unmirrored(tmp_path: Path) -> None:
    truth = write_adaptpose_3dhp_train(tmp_path / "train.npz")
    s = load_adaptpose_train_2d(tmp_path / "train.npz")
    assert not s.labeled and len(s) == 7 * 2 * 2 * 7  # S1..S7, 2 seqs, 2 cams, 7 frames; S8 unused
    first = screen(truth["S1"]["Seq1"][0], 2048, 2048)
    keep = list(EVAL_JOINT_SETS["all16"])
    np.testing.assert_allclose(s.pose2d[:7, keep], first[:, keep], atol=1e-6)
    assert s.pose2d[0, 4, 0] == pytest.approx(first[0, 4, 0], abs=1e-6)  # left hip where it belongs


def test_target_domain(tmp_path: Path) -> None:
    write_poseaug_3dhp(tmp_path / "test_3dhp.npz")
    write_annot_data(tmp_path / "mpi_inf_3dhp_test_set" / "TS1" / "annot_data.mat")
    write_adaptpose_3dhp_train(tmp_path / "data_3dhp_gt_train.npz")
    with pytest.raises(FileNotFoundError, match="TS2"):
        MPI3DHP(str(tmp_path), test_sets=["2929", "full"]).load()
    target = MPI3DHP(str(tmp_path), test_sets=["2929"], pck_joints="all", target_train=True)
    tests, train = target.load()
    assert list(tests) == ["3dhp_2929.all16"] and list(train) == ["3dhp_train_2d"]
    # PoseAug's published protocol is its own named set: the same frames, 16 joints, flip test
    both, _ = MPI3DHP(str(tmp_path), test_sets=["2929", "2929-poseaug"]).load()
    assert list(both) == ["3dhp_2929.official14", "3dhp_2929.all16.flip"]
    poseaug = both["3dhp_2929.all16.flip"]
    assert poseaug.meta["flip_test"] is True and poseaug.meta["eval_joints"] == EVAL_JOINT_SETS["all16"]
    assert "flip_test" not in both["3dhp_2929.official14"].meta
    with pytest.raises(ValueError, match="unknown 3DHP test set"):
        MPI3DHP(str(tmp_path), test_sets=["ts7"])


@pytest.mark.parametrize(
    "arrays, message",
    [
        ({"pose3d": np.zeros((4, 16, 3))}, r"missing key\(s\) \['pose2d'\]"),
        (
            {"pose3d": np.zeros((4, 15, 3)), "pose2d": np.zeros((4, 15, 2))},
            r"pose3d: expected shape \(N, 16 or 17",
        ),
        ({"pose3d": np.zeros((4, 16, 3)), "pose2d": np.zeros((3, 16, 2))}, "do not match"),
        (
            {"pose3d": np.full((4, 16, 3), np.nan), "pose2d": np.zeros((4, 16, 2))},
            "pose3d: 4 of 4 poses contain NaN",
        ),
        (
            {"pose3d": np.arange(4 * 48.0).reshape(4, 16, 3) * 100, "pose2d": np.zeros((4, 16, 2))},
            "pose3d: .*millimetres",
        ),
        ({"pose3d": np.zeros((4, 16, 3)), "pose2d": np.full((4, 16, 2), 900.0)}, "pose2d: .*not pixels"),
    ],
)
def test_malformed_poseaug_file(tmp_path: Path, arrays: dict, message: str) -> None:
    path = tmp_path / "test_3dhp.npz"
    np.savez(path, **arrays)
    with pytest.raises(DataFormatError, match=message) as err:
        load_poseaug_test(path)
    assert str(path) in str(err.value)


def test_malformed_adaptpose_files(tmp_path: Path) -> None:
    path = tmp_path / "t.npz"
    np.savez(path, positions_3d={"TS1": np.zeros((3, 16, 3))}, positions_2d={"TS1": np.zeros((2, 16, 2))})
    with pytest.raises(DataFormatError, match=r"t.npz: positions_2d\['TS1'\]: 2 frames, positions_3d has 3"):
        load_adaptpose_test(path)
    np.savez(path, positions_3d={"TS1": np.zeros((3, 16, 3))}, positions_2d={})
    with pytest.raises(DataFormatError, match=r"positions_2d\['TS1'\]: missing"):
        load_adaptpose_test(path)
    np.savez(path, positions_3d=np.zeros(3), positions_2d=np.zeros(3))
    with pytest.raises(DataFormatError, match="positions_3d: expected a pickled dict"):
        load_adaptpose_test(path)
    np.savez(path, positions_2d={"S1": {"Seq1": {0: np.zeros((3, 17, 2))}}})
    with pytest.raises(
        DataFormatError, match=r"positions_2d\['S1'\]\['Seq1'\]\[0\]: expected shape \(N, 16, 2\)"
    ):
        load_adaptpose_train_2d(path, subjects=("S1",))
    with pytest.raises(DataFormatError, match=r"positions_2d\['S2'\]: missing"):
        load_adaptpose_train_2d(path, subjects=("S2",))


# -- official training set: S*/Seq*/annot.mat (v5 MAT) + camera.calibration ---------------------------------
def _cam_rows(s, subject: int, seq: int, cam: int):
    return (s.subject == subject) & (s.action == seq) & (s.camera == cam)


def test_official_train_2d(tmp_path: Path) -> None:
    truth = {
        (subject, seq): write_3dhp_train_sequence(
            tmp_path / f"S{subject}" / f"Seq{seq + 1}", seed=10 * subject + seq, outside={0: 2}
        )
        for subject in (1, 2)
        for seq in (0, 1)
    }
    s = load_official_train_2d(tmp_path, subjects=("S1", "S2"), cameras=(0, 3, 13))
    assert not s.labeled and s.name == "3dhp_train_official_2d" and s.num_joints == 17
    assert len(s) == 4 * (3 * 6 - 1)  # frame 2 of camera 0 has a joint off the image
    assert s.action_names == ("Seq1", "Seq2") and s.meta["intrinsics"] == "camera.calibration"
    for (subject, seq), cams in truth.items():
        for cam in (0, 3, 13):
            rows_ = _cam_rows(s, subject, seq, cam)
            fx, fy, cx, cy = train_camera(cam)
            frames = [0, 1, 3, 4, 5] if cam == 0 else list(range(6))
            np.testing.assert_array_equal(s.frame[rows_], frames)
            want = screen(pinhole(cams[cam][frames], fx, fy, cx, cy), 2048, 2048)
            np.testing.assert_allclose(s.pose2d[rows_], want, atol=1e-5)
            np.testing.assert_allclose(
                s.intrinsics[rows_][0, :4], [fx / 1024, fy / 1024, cx / 1024 - 1, cy / 1024 - 1], atol=1e-6
            )
            assert (s.image_size[rows_] == 2048).all()
            # the pixels are the projection of the camera-frame 3D under the sample's intrinsics
            uv = project_pinhole(
                torch.from_numpy(cams[cam][frames]).float(), torch.from_numpy(s.intrinsics[rows_])
            )
            np.testing.assert_allclose(uv.numpy(), s.pose2d[rows_], atol=1e-5)
    # marked joint: 28-joint left_wrist (11) lands on H36M-17 left_wrist (13), straight from the file
    mat = loadmat(tmp_path / "S1" / "Seq1" / "annot.mat")
    wrist = mat["annot2"][3, 0].reshape(6, 28, 2)[:, 11]
    np.testing.assert_allclose(s.pose2d[_cam_rows(s, 1, 0, 3)][:, 13], screen(wrist, 2048, 2048), atol=1e-6)
    # camera 0 of S1/Seq1 breaks into two contiguous runs around the dropped frame
    seq_ids = s.sequence[_cam_rows(s, 1, 0, 0)]
    assert len(np.unique(seq_ids)) == 2 and (np.diff(seq_ids) >= 0).all()
    every = load_official_train_2d(
        tmp_path, subjects=("S1",), sequences=("Seq1",), cameras=(0,), inside_only=False
    )
    np.testing.assert_array_equal(every.frame, np.arange(6))
    strided = load_official_train_2d(tmp_path, subjects=("S1",), sequences=("Seq1",), cameras=(0,), stride=2)
    np.testing.assert_array_equal(strided.frame, [0, 4])


def test_official_train_target_domain(tmp_path: Path) -> None:
    for subject in ("S1", "S2", "S3", "S4", "S5", "S6", "S7", "S8"):
        for seq in ("Seq1", "Seq2"):
            write_3dhp_train_sequence(tmp_path / subject / seq, frames=2, calibration=subject != "S8")
    write_poseaug_3dhp(tmp_path / "test_3dhp.npz")
    tests, train = MPI3DHP(str(tmp_path), target_train="official", train_cameras=[1, 2]).load()
    s = train["3dhp_train_official_2d"]
    assert len(s) == 8 * 2 * 2 * 2 and set(np.unique(s.camera)) == {1, 2}
    assert "S8/Seq1" in s.meta["intrinsics"] and "nominal" in s.meta["intrinsics"]
    np.testing.assert_allclose(s.intrinsics[s.subject == 8][0, 0], 1500.172288 / 1024, rtol=1e-6)
    write_adaptpose_3dhp_train(tmp_path / "data_3dhp_gt_train.npz", frames=2)
    assert list(MPI3DHP(str(tmp_path), target_train=True).load()[1]) == ["3dhp_train_2d"]
    with pytest.raises(ValueError, match="target_train must be"):
        MPI3DHP(str(tmp_path), target_train="spin")


def _bad_cells(n: int, width: int, frames: int = 6) -> np.ndarray:
    cells = np.empty((n, 1), dtype=object)
    for i in range(n):
        cells[i, 0] = np.zeros((frames, width))
    return cells


@pytest.mark.parametrize(
    "overrides, field, message",
    [
        ({"annot2": None}, "annot.mat", r"missing key\(s\) \['annot2'\]"),
        ({"annot2": _bad_cells(13, 56)}, "annot2", "expected a cell array of 14 cameras"),
        ({"annot2": np.zeros((6, 56))}, "annot2", "expected a cell array of 14 cameras"),
        ({"annot2": _bad_cells(14, 54)}, "annot2[0]", r"expected \(F, 56\) numbers \(28 joints\)"),
        ({"frames": np.arange(5)[:, None]}, "frames", "5 entries for 6 frames"),
    ],
)
def test_malformed_official_train(tmp_path: Path, overrides: dict, field: str, message: str) -> None:
    folder = tmp_path / "S1" / "Seq1"
    write_3dhp_train_sequence(folder, overrides=overrides)
    with pytest.raises(DataFormatError, match=message) as err:
        load_official_train_2d(tmp_path, subjects=("S1",), sequences=("Seq1",))
    assert f"{folder / 'annot.mat'}: {field}" in str(err.value) or field == "annot.mat"
    assert str(folder / "annot.mat") in str(err.value)


def test_malformed_official_train_files(tmp_path: Path) -> None:
    folder = tmp_path / "S1" / "Seq1"
    with pytest.raises(FileNotFoundError, match="S1/Seq1/annot.mat"):
        load_official_train_2d(tmp_path, subjects=("S1",), sequences=("Seq1",))
    folder.mkdir(parents=True)
    (folder / "annot.mat").write_bytes(b"MATLAB 5.0 MAT-file garbage")
    with pytest.raises(DataFormatError, match="annot.mat: not a readable MATLAB"):
        load_official_train_2d(tmp_path, subjects=("S1",), sequences=("Seq1",))
    write_3dhp_train_sequence(folder)
    write_calibration(folder / "camera.calibration", cameras=3)
    with pytest.raises(DataFormatError, match=r"camera.calibration: camera 4 missing \(3 cameras found\)"):
        load_official_train_2d(tmp_path, subjects=("S1",), sequences=("Seq1",))
    write_calibration(folder / "camera.calibration", intrinsic_numbers=12)
    with pytest.raises(
        DataFormatError, match="camera.calibration: line 6: intrinsic: expected 16 numbers, got 12"
    ):
        load_official_train_2d(tmp_path, subjects=("S1",), sequences=("Seq1",))
    with pytest.raises(ValueError, match="cameras are 0..13"):
        load_official_train_2d(tmp_path, cameras=(14,))
