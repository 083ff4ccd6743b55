"""``poseshift data check`` and ``poseshift data convert`` (``data_modules.commands.main``)."""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
from fixtures import write_all, write_h36m

from data_modules.commands import main
from data_modules.h36m import load_positions_3d
from data_modules.schema import PoseSet


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
