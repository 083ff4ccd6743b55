"""``poseshift data check`` and ``poseshift data convert`` (``data_modules.commands.data.main``)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
from fixtures import write_3dhp_train_sequence, write_all, write_cdf_variable, write_h36m, write_h36m_cdf

from data_modules.commands.data import convert_h36m_raw, main
from data_modules.h36m import H36MDataModule, load_positions_3d, world_to_cameras
from data_modules.schema import DataFormatError, PoseSet


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("good")
    write_all(root)
    return root


def test_check_passes_on_every_fixture_format(good: Path, capsys) -> None:
    assert main(["check", str(good)]) == 0
    out = capsys.readouterr().out
    assert "PROBLEM" not in out
    for name in (
        "data_3d_h36m.npz",
        "data_2d_h36m_gt.npz",
        "test_3dhp.npz",
        "TS6/annot_data.mat",
        "data_3dhp_gt_train.npz",
        "downtown_b_00.pkl",
        "data_3dpw_gt_test.npz",
        "test/labels.h5",
        "data_skii_gt_train.npz",
    ):
        assert name in out, name
    assert "0 problem(s)" in out


def test_check_names_every_problem(good: Path, tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad"
    shutil.copytree(good, bad)
    # NaNs in PoseAug's 3DHP file, millimetres in AdaptPose's 3DPW file, a missing TS, a 2D file without 3D
    np.savez(bad / "3dhp" / "test_3dhp.npz", pose3d=np.full((4, 16, 3), np.nan), pose2d=np.zeros((4, 16, 2)))
    data = np.load(bad / "3dpw" / "data_3dpw_gt_train.npz")
    np.savez(
        bad / "3dpw" / "data_3dpw_gt_train.npz",
        positions_2d=data["positions_2d"],
        positions_3d=data["positions_3d"] * 1000,
    )
    (bad / "3dhp" / "mpi_inf_3dhp_test_set" / "TS4" / "annot_data.mat").unlink()
    (bad / "extra").mkdir()
    shutil.copy(bad / "h36m" / "data_2d_h36m_gt.npz", bad / "extra" / "data_2d_h36m_gt.npz")
    with h5py.File(bad / "ski" / "train" / "labels.h5", "a") as f:
        del f["cam"]
    assert main(["check", str(bad)]) == 1
    out = capsys.readouterr().out
    problems = [line for line in out.splitlines() if line.startswith("PROBLEM")]
    expected = [
        "test_3dhp.npz: pose3d: 4 of 4 poses contain NaN",
        "data_3dpw_gt_train.npz: positions_3d: a hip bone",
        "TS4/annot_data.mat: missing",
        "extra/data_2d_h36m_gt.npz: no data_3d_h36m.npz next to it",
        "extra: data_3d_h36m.npz missing",
        "train/labels.h5: missing key(s) ['cam']",
    ]
    for text in expected:
        assert any(text in p for p in problems), (text, problems)
    assert len(problems) == len(expected)
    assert "millimetres" in out


def test_check_empty_and_missing(tmp_path: Path, capsys) -> None:
    assert main(["check", str(tmp_path)]) == 1
    assert "no dataset files found" in capsys.readouterr().out
    assert main(["check", str(tmp_path / "nope")]) == 1
    assert "does not exist" in capsys.readouterr().out


def test_check_h36m_2d_against_3d(tmp_path: Path, capsys) -> None:
    write_h36m(tmp_path, {"S1": {"Walking": 5}, "S9": {"Walking": 4}}, variants=("gt",))
    p = np.load(tmp_path / "data_2d_h36m_gt.npz", allow_pickle=True)
    pos = p["positions_2d"].item()
    pos["S9"]["Walking"][3] = pos["S9"]["Walking"][3][:2]
    del pos["S1"]["Walking"]
    np.savez(tmp_path / "data_2d_h36m_gt.npz", positions_2d=pos, metadata=p["metadata"].item())
    assert main(["check", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "subjects ['S5', 'S6', 'S7', 'S8', 'S11'] missing" in out
    assert "positions_2d['S1']['Walking'] missing" in out and "shorter than the 3D (4 frames)" in out


def test_convert_martinez_h5_to_videopose3d(tmp_path: Path, capsys) -> None:
    ref = tmp_path / "ref"
    write_h36m(
        ref, {"S1": {"TakingPhoto 1": 5, "Walking": 4}, "S11": {"Directions": 3, "Eating 2": 4}}, variants=()
    )
    truth = load_positions_3d(ref / "data_3d_h36m.npz")
    raw = tmp_path / "h36m"
    for subject, acts in truth.items():
        folder = raw / subject / "MyPoses" / "3D_positions"
        folder.mkdir(parents=True)
        for action, arr in acts.items():
            with h5py.File(folder / f"{action}.h5", "w") as f:
                f["3D_positions"] = (arr.reshape(len(arr), 96) * 1000).T  # (96, N), mm
    assert main(["convert", "h36m-h5", str(raw), str(tmp_path / "out")]) == 0
    assert "data_3d_h36m.npz" in capsys.readouterr().out
    got = load_positions_3d(tmp_path / "out" / "data_3d_h36m.npz")
    assert sorted(got["S1"]) == ["Photo 1", "Walking"] and sorted(got["S11"]) == ["Eating 2"]
    np.testing.assert_allclose(got["S1"]["Photo 1"], truth["S1"]["TakingPhoto 1"], atol=1e-6)
    assert main(["convert", "h36m-h5", str(tmp_path / "none"), str(tmp_path / "o2")]) == 1
    assert "no S*/MyPoses" in capsys.readouterr().err


def test_convert_poseset(good: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "3dhp.npz"
    assert main(["convert", "poseset", str(good / "3dhp" / "test_3dhp.npz"), str(out)]) == 0
    s = PoseSet.load(out)
    assert s.labeled and s.num_joints == 17 and len(s) == 20
    assert main(["convert", "poseset", str(good / "h36m" / "data_3d_h36m.npz"), str(out)]) == 1
    assert "not a file" in capsys.readouterr().err


# -- official H36M CDF release (D3_Positions/<Action>.cdf, 'Pose' (1, N, 96) mm) -------------------------
CDF_SPEC = {
    "S1": {"TakingPhoto 1": 6, "WalkingDog": 5},
    "S9": {"Walking 1": 5, "Greeting": 4},
    "S11": {"Directions": 3, "Eating": 4},
}


def test_convert_official_cdf_to_videopose3d(tmp_path: Path, capsys) -> None:
    raw = tmp_path / "h36m"
    world = write_h36m_cdf(raw, CDF_SPEC)
    out = convert_h36m_raw(raw, tmp_path / "out")
    assert out == tmp_path / "out" / "data_3d_h36m.npz"
    assert main(["convert", "h36m-cdf", str(raw), str(tmp_path / "cli")]) == 0
    assert "data_3d_h36m.npz" in capsys.readouterr().out
    assert main(["convert", "h36m-h5", str(raw), str(tmp_path / "cli_h5")]) == 0
    got = load_positions_3d(out)
    for other in ("cli", "cli_h5"):
        again = load_positions_3d(tmp_path / other / "data_3d_h36m.npz")
        for s in got:
            for a in got[s]:
                np.testing.assert_array_equal(again[s][a], got[s][a])
    # aliases applied, S11 Directions dropped, (N, 32, 3) float32 in metres
    assert {s: sorted(a) for s, a in got.items()} == {
        "S1": ["Photo 1", "WalkDog"],
        "S9": ["Greeting", "Walking 1"],
        "S11": ["Eating"],
    }
    arr = got["S1"]["Photo 1"]
    assert arr.shape == (6, 32, 3) and arr.dtype == np.float32
    np.testing.assert_allclose(
        arr[:, [0, 1, 2, 3, 6, 7, 8, 12, 13, 14, 15, 17, 18, 19, 25, 26, 27]],
        world["S1"]["TakingPhoto 1"],
        atol=1e-6,
    )
    hip = np.linalg.norm(arr[:, 1] - arr[:, 0], axis=-1)
    assert ((hip > 0.08) & (hip < 0.2)).all()  # metres (the rest pose has 0.13), not millimetres

    # through the DataModule: 32 -> 17 selection, world -> camera, root-relative
    dm = H36MDataModule(
        str(tmp_path / "out"), keypoints="project", train_subjects=["S1"], test_subjects=["S9", "S11"]
    )
    dm.setup()
    assert dm.sets is not None
    test = dm.sets.test["h36m_project_S9+S11.all"]
    assert len(test) == 4 * (5 + 4 + 4) and len(dm.sets.train) + len(dm.sets.val) == 4 * (6 + 5)
    checked = 0
    for s in (dm.sets.train, dm.sets.val, test):
        for i in range(len(s)):
            subject = f"S{int(s.subject[i])}"
            cat = s.action_names[int(s.action[i])]
            raw_key = {"Photo": "TakingPhoto 1", "WalkDog": "WalkingDog", "Walking": "Walking 1"}.get(
                cat, cat
            )
            w17 = world[subject][raw_key][int(s.frame[i])]
            cam = world_to_cameras(w17[None], subject)[int(s.camera[i]), 0]
            np.testing.assert_allclose(s.root3d[i], cam[0], atol=1e-5)
            np.testing.assert_allclose(s.pose3d[i], cam - cam[:1], atol=1e-5)
            checked += 1
    assert checked == 4 * (6 + 5 + 5 + 4 + 4)


def test_convert_cdf_malformed(tmp_path: Path, capsys) -> None:
    raw = tmp_path / "h36m"
    folder = raw / "S1" / "MyPoseFeatures" / "D3_Positions"
    good = np.zeros((1, 4, 96))
    good[..., 3] = 130.0  # right hip 130 mm from the pelvis
    cases = {
        "Walking.cdf": (good, "Positions", "missing variable 'Pose'; present: ['Positions']"),
        "Eating.cdf": (good[..., :90], "Pose", "Pose: expected shape (1, N, 96)"),
        "Posing.cdf": (good / 1000, "Pose", "Pose: hip bone is 0.13 units long"),
    }
    for name, (array, var, message) in cases.items():
        if folder.exists():
            shutil.rmtree(folder)
        write_cdf_variable(folder / name, array, var)
        with pytest.raises(DataFormatError, match=re.escape(f"{folder / name}: {message}")):
            convert_h36m_raw(raw, tmp_path / "out")
        assert main(["convert", "h36m-cdf", str(raw), str(tmp_path / "out")]) == 1
        err = capsys.readouterr().err
        assert str(folder / name) in err and message in err
    shutil.rmtree(folder)
    folder.mkdir(parents=True)
    (folder / "Sitting 1.cdf").write_bytes(b"not a cdf file")
    with pytest.raises(DataFormatError, match="Sitting 1.cdf: not a readable CDF file"):
        convert_h36m_raw(raw, tmp_path / "out")
    assert not (tmp_path / "out" / "data_3d_h36m.npz").exists()


def test_check_official_3dhp_training_annot(tmp_path: Path, capsys) -> None:
    write_3dhp_train_sequence(tmp_path / "S1" / "Seq1", frames=3)
    write_3dhp_train_sequence(tmp_path / "S2" / "Seq2", frames=3, overrides={"annot2": None})
    write_3dhp_train_sequence(tmp_path / "other" / "annot.mat.d", frames=2)  # not under S*/Seq*: ignored
    assert main(["check", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert f"ok      {tmp_path / 'S1' / 'Seq1' / 'annot.mat'}: 24 poses, 17 joints, 2D only" in out
    assert f"PROBLEM {tmp_path / 'S2' / 'Seq2' / 'annot.mat'}: missing key(s) ['annot2']" in out
    assert "2 file(s) checked, 1 problem(s)" in out
