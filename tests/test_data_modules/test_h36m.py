"""Human3.6M files (VideoPose3D/PoseAug formats), the layout registry and the DataModule."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from fixtures import DEFAULT_H36M, to_h36m32, write_h36m

from data_modules.h36m import H36M_EXTRINSICS, H36MDataModule, world_to_cameras
from data_modules.schema import DataFormatError
from data_modules.skeletons import EVAL_JOINT_SETS, LAYOUTS, eval_joint_set, from_h36m17, to_h36m17
from poseshift.geometry.camera import H36M_S1_EXTRINSICS, project, world_to_camera
from poseshift.geometry.skeleton import JOINT_NAMES

SMALL = ["S1", "S5"]


@pytest.fixture(scope="module")
def h36m_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("h36m")
    write_h36m(root)
    return root


def module(root: Path, **kwargs: object) -> H36MDataModule:
    kwargs.setdefault("train_subjects", SMALL)
    dm = H36MDataModule(str(root), **kwargs)
    dm.setup()
    return dm


# -- joint layouts ---------------------------------------------------------------------------
# Which file joint is which canonical joint, written out from DATA_FORMATS.md by name (not by
# the registry's index tables): (layout, file joint name) for each H36M-17 joint.
SEMANTIC = {
    "mpi3dhp17": [
        "pelvis",
        "right_hip",
        "right_knee",
        "right_ankle",
        "left_hip",
        "left_knee",
        "left_ankle",
        "spine",
        "neck",
        "head",
        "head_top",
        "left_shoulder",
        "left_elbow",
        "left_wrist",
        "right_shoulder",
        "right_elbow",
        "right_wrist",
    ],
    "mpi3dhp28": [
        "pelvis",
        "right_hip",
        "right_knee",
        "right_ankle",
        "left_hip",
        "left_knee",
        "left_ankle",
        "spine",
        "neck",
        "head",
        "head_top",
        "left_shoulder",
        "left_elbow",
        "left_wrist",
        "right_shoulder",
        "right_elbow",
        "right_wrist",
    ],
    "spin24": [
        "pelvis",
        "r_hip",
        "r_knee",
        "r_ankle",
        "l_hip",
        "l_knee",
        "l_ankle",
        "spine",
        "neck_lsp",
        "jaw",
        "head",
        "l_shoulder",
        "l_elbow",
        "l_wrist",
        "r_shoulder",
        "r_elbow",
        "r_wrist",
    ],
    "smpl24": [
        "pelvis",
        "r_hip",
        "r_knee",
        "r_ankle",
        "l_hip",
        "l_knee",
        "l_ankle",
        "spine2",
        "neck",
        None,
        "head",
        "l_shoulder",
        "l_elbow",
        "l_wrist",
        "r_shoulder",
        "r_elbow",
        "r_wrist",
    ],
}


@pytest.mark.parametrize("name", sorted(SEMANTIC))
def test_marked_joint_lands_by_name(name: str) -> None:
    lay = LAYOUTS[name]
    marks = np.arange(lay.num_joints, dtype=np.float64)[:, None].repeat(3, 1)  # joint i carries value i
    mapped = to_h36m17(marks, lay)
    for j, file_name in enumerate(SEMANTIC[name]):
        if file_name is None:
            continue
        assert mapped[j, 0] == lay.joint_names.index(file_name), (name, JOINT_NAMES[j])


@pytest.mark.parametrize(
    "name", ["h36m16", "sh16", "adaptpose_3dhp_train16", "h36m16_legswap", "h36m17", "ski17"]
)
def test_sixteen_joint_round_trip_and_neck_nose_fill(name: str) -> None:
    rng = np.random.default_rng(0)
    pose = rng.normal(size=(5, 17, 3))
    back = to_h36m17(from_h36m17(pose, name), name)
    keep = [j for j in range(17) if j != 9]
    np.testing.assert_array_equal(back[:, keep], pose[:, keep])
    if LAYOUTS[name].missing:
        np.testing.assert_allclose(back[:, 9], (pose[:, 8] + pose[:, 10]) / 2)
        assert LAYOUTS[name].missing == (9,)
    else:
        np.testing.assert_array_equal(back, pose)


def test_mirrored_layouts_put_left_where_right_was() -> None:
    # AdaptPose's 3DHP train order: file joint 1 is the left hip; after mapping it is canonical 4
    lay = LAYOUTS["adaptpose_3dhp_train16"]
    assert lay.joint_names[1] == "l_hip" and lay.joint_names[10] == "r_shoulder"
    assert lay.to_h36m17[4] == 1 and lay.to_h36m17[14] == 10
    swap = LAYOUTS["h36m16_legswap"]
    assert swap.to_h36m17[1] == 4 and swap.to_h36m17[11] == 10  # arms untouched


def test_eval_joint_sets() -> None:
    assert eval_joint_set("all", (9,)) == ("all16", EVAL_JOINT_SETS["all16"])
    assert eval_joint_set("all", ()) == ("all", tuple(range(17)))
    assert 9 not in eval_joint_set("official14", (9,))[1]
    assert [JOINT_NAMES[j] for j in EVAL_JOINT_SETS["official14"]].count("pelvis") == 0
    with pytest.raises(ValueError, match="unknown evaluation joint set"):
        eval_joint_set("everything")


# -- cameras -----------------------------------------------------------------------------------
def _rotate_spec(q: np.ndarray, v: np.ndarray) -> np.ndarray:
    """v + 2w(u x v) + 2u x (u x v), DATA_FORMATS.md 2.2, written independently of the library."""
    w, u = q[0], q[1:]
    uv = np.cross(u, v)
    return v + 2 * w * uv + 2 * np.cross(u, uv)


def test_world_to_camera_matches_spec_and_library() -> None:
    rng = np.random.default_rng(1)
    pts = rng.normal(size=(6, 17, 3)) * 0.3 + np.array([0, 0.3, 0.9])
    for subject, cams in H36M_EXTRINSICS.items():
        ours = world_to_cameras(pts, subject)
        for c, (q, t) in enumerate(cams):
            q = np.array(q)
            q_inv = q * np.array([1, -1, -1, -1])
            expected = _rotate_spec(q_inv, pts - np.array(t) / 1000)
            np.testing.assert_allclose(ours[c], expected, atol=1e-5)
            assert (ours[c][..., 2] > 2.5).all(), "the subject must be in front of every camera"
    lib = world_to_camera(
        torch.from_numpy(pts),
        torch.tensor(H36M_S1_EXTRINSICS[0][0], dtype=torch.float64),
        torch.tensor(H36M_S1_EXTRINSICS[0][1], dtype=torch.float64),
    )
    np.testing.assert_allclose(world_to_cameras(pts, "S1")[0], lib.numpy(), atol=1e-5)


# -- the DataModule ------------------------------------------------------------------------------
def test_gt_pairs_reproject_and_splits(h36m_dir: Path) -> None:
    dm = module(h36m_dir)
    sets = dm.sets
    assert sets is not None
    test = sets.test["h36m_gt_S9+S11.all"]
    assert dm.test_set_names == ["h36m_gt_S9+S11.all"]
    for s in (sets.train, sets.val, test):
        absolute = torch.from_numpy(s.pose3d + s.root3d[:, None])
        uv = project(absolute, torch.from_numpy(s.intrinsics))
        np.testing.assert_allclose(uv.numpy(), s.pose2d, atol=2e-6)  # ~1e-3 px
        assert np.abs(s.pose2d[..., 0]).max() < 1 and (s.root3d[:, 2] > 0).all()
        np.testing.assert_array_equal(s.pose3d[:, 0], 0)
    assert set(np.unique(sets.train.subject)) == {1, 5} and set(np.unique(test.subject)) == {9, 11}
    frames_3d = sum(DEFAULT_H36M[s][a] for s in SMALL for a in DEFAULT_H36M[s])
    assert len(sets.train) + len(sets.val) == 4 * frames_3d
    photo = sets.train.action_names.index("Photo")
    assert (sets.train.action == photo).sum() + (
        sets.val.action == photo
    ).sum() == 4 * 12  # TakingPhoto alias
    k = sets.train.intrinsics
    np.testing.assert_allclose(k[sets.train.camera == 0][0, 0], 2 * 1145.0494384765625 / 1000, rtol=1e-6)
    np.testing.assert_array_equal(sets.train.image_size[sets.train.camera == 3][0], [1000, 1002])


def test_no_overlap_between_train_and_val(h36m_dir: Path) -> None:
    sets = module(h36m_dir, val_fraction=0.2).sets
    key = lambda s: {(a, b, c, d) for a, b, c, d in zip(s.subject, s.action, s.camera, s.frame, strict=True)}  # noqa: E731
    train, val = key(sets.train), key(sets.val)
    assert val and not (train & val)
    assert len(train | val) == len(sets.train) + len(sets.val)
    assert sets.val.frame.min() > 0  # the held-out part is each sequence's end


def test_limited_data_oracle_val_target_and_filters(h36m_dir: Path) -> None:
    dm = module(h36m_dir, train_subjects=["S1"], val_subjects=["S9"], target_subjects=["S5"])
    sets = dm.sets
    assert set(np.unique(sets.train.subject)) == {1}
    assert sets.val.name == "h36m_S9-oracle"
    target = sets.target_train["h36m_S5"]
    assert not target.labeled and set(np.unique(target.subject)) == {5}
    dm = module(h36m_dir, actions=["Walking"], stride=3)
    s = dm.sets.train
    assert set(s.action_names[a] for a in np.unique(s.action)) == {"Walking"}
    assert (s.frame % 3 == 0).all()
    assert len(s) + len(dm.sets.val) == 4 * (len(range(0, 25, 3)) + len(range(0, 18, 3)))
    with pytest.raises(ValueError, match="unknown action"):
        module(h36m_dir, actions=["Juggling"])


def test_detections_are_trimmed_and_unlabeled_subjects_ignored(h36m_dir: Path, caplog) -> None:
    with caplog.at_level(logging.WARNING):
        dm = module(h36m_dir, keypoints="cpn_ft_h36m_dbb")
    assert "trimming 3 extra 2D frames" in caplog.text
    gt = module(h36m_dir).sets.train
    cpn = dm.sets.train
    assert len(cpn) == len(gt) and 2 not in cpn.subject
    err_px = np.abs(cpn.pose2d - gt.pose2d).mean() * 500  # normalized -> px (w = 1000)
    assert 2 < err_px < 8


@pytest.mark.parametrize("keypoints", ["hr", "sh_ft_h36m"])
def test_sixteen_joint_2d_files(h36m_dir: Path, keypoints: str) -> None:
    dm = module(h36m_dir, keypoints=keypoints)
    gt = module(h36m_dir).sets.test["h36m_gt_S9+S11.all"]
    name = f"h36m_{keypoints}_S9+S11.all16"
    assert dm.test_set_names == [name]
    test = dm.sets.test[name]
    keep = list(EVAL_JOINT_SETS["all16"])
    np.testing.assert_allclose(test.pose2d[:, keep], gt.pose2d[:, keep], atol=1e-6)
    np.testing.assert_allclose(test.pose2d[:, 9], (test.pose2d[:, 8] + test.pose2d[:, 10]) / 2, atol=1e-6)
    np.testing.assert_array_equal(test.pose3d, gt.pose3d)  # 3D comes from the 32-joint mocap
    assert test.meta["eval_joints"] == EVAL_JOINT_SETS["all16"] and test.meta["missing_joints"] == (9,)


def test_projected_keypoints_need_no_2d_file(tmp_path: Path) -> None:
    write_h36m(tmp_path, {"S1": {"Walking": 8}, "S9": {"Walking": 6}}, variants=())
    dm = module(
        tmp_path, keypoints="project", train_subjects=["S1"], test_subjects=["S9"], eval_joints="official14"
    )
    assert dm.test_set_names == ["h36m_project_S9.official14"]
    with pytest.raises(FileNotFoundError, match="data_2d_h36m_gt.npz"):
        module(tmp_path, train_subjects=["S1"], test_subjects=["S9"])


# -- malformed files -----------------------------------------------------------------------------------
def _write3d(root: Path, pos3d: dict) -> None:
    np.savez(root / "data_3d_h36m.npz", positions_3d=pos3d)


def _ok3d(frames: int = 6) -> dict:
    from fixtures import motion

    return {
        "S1": {"Walking": to_h36m32(motion(frames, np.random.default_rng(0))).astype(np.float32)},
        "S9": {"Walking": to_h36m32(motion(frames, np.random.default_rng(1))).astype(np.float32)},
    }


@pytest.mark.parametrize(
    "mutate, field, message",
    [
        (
            lambda d: d["S1"].update(Walking=d["S1"]["Walking"][:, :31]),
            "positions_3d['S1']['Walking']",
            r"expected shape \(N, 32, 3\)",
        ),
        (
            lambda d: d["S1"]["Walking"].__setitem__((2, 5, 0), np.nan),
            "positions_3d['S1']['Walking']",
            "1 of 6 frames contain NaN",
        ),
        (
            lambda d: d["S9"].update(Walking=d["S9"]["Walking"] * 1000),
            "positions_3d['S9']['Walking']",
            "millimetres",
        ),
        (lambda d: d.update(S9=[1, 2]), "positions_3d['S9']", "expected a dict of actions"),
    ],
)
def test_malformed_3d(tmp_path: Path, mutate, field: str, message: str) -> None:
    data = _ok3d()
    mutate(data)
    _write3d(tmp_path, data)
    with pytest.raises(DataFormatError, match=message) as err:
        module(tmp_path, keypoints="project", train_subjects=["S1"], test_subjects=["S9"])
    assert str(tmp_path / "data_3d_h36m.npz") in str(err.value) and field in str(err.value)


def test_malformed_3d_container(tmp_path: Path) -> None:
    np.savez(tmp_path / "data_3d_h36m.npz", poses=np.zeros(3))
    with pytest.raises(DataFormatError, match=r"data_3d_h36m.npz: missing key 'positions_3d'"):
        module(tmp_path, keypoints="project")
    (tmp_path / "data_3d_h36m.npz").write_text("not a zip")
    with pytest.raises(DataFormatError, match="not a readable npz"):
        module(tmp_path, keypoints="project")
    _write3d(tmp_path, _ok3d())
    with pytest.raises(DataFormatError, match=r"no subject\(s\) \['S5'\]"):
        module(tmp_path, keypoints="project", train_subjects=["S1", "S5"], test_subjects=["S9"])


def _write2d(root: Path, p2d: dict, metadata: dict | None = None) -> Path:
    path = root / "data_2d_h36m_gt.npz"
    meta = (
        metadata
        if metadata is not None
        else {"num_joints": 17, "keypoints_symmetry": [[4, 5, 6, 11, 12, 13], [1, 2, 3, 14, 15, 16]]}
    )
    np.savez(path, positions_2d=p2d, metadata=meta)
    return path


def _ok2d(frames: int = 6, joints: int = 17) -> dict:
    arr = np.full((frames, joints, 2), 500.0, dtype=np.float32)
    return {s: {"Walking": [arr.copy() for _ in range(4)]} for s in ("S1", "S9")}


@pytest.mark.parametrize(
    "mutate, metadata, field, message",
    [
        (
            lambda d: d["S1"].update(Walking=d["S1"]["Walking"][:3]),
            None,
            "positions_2d['S1']['Walking']",
            "list of 4 camera arrays, got 3",
        ),
        (
            lambda d: d["S9"]["Walking"].__setitem__(1, d["S9"]["Walking"][1][:4]),
            None,
            "positions_2d['S9']['Walking'][1]",
            "4 frames but the 3D has 6",
        ),
        (lambda d: d["S9"].pop("Walking"), None, "positions_2d['S9']['Walking']", "missing"),
        (
            lambda d: d["S9"]["Walking"].__setitem__(0, d["S9"]["Walking"][0][:, :15]),
            None,
            "positions_2d['S9']['Walking'][0]",
            "15 joints, other arrays have 17",
        ),
        (
            lambda d: d["S1"]["Walking"][2].__setitem__((0, 0, 0), np.inf),
            None,
            "positions_2d['S1']['Walking'][2]",
            "NaN or inf",
        ),
        (
            lambda d: None,
            {"keypoints_symmetry": [[4, 5, 6, 10, 11, 12], [1, 2, 3, 13, 14, 15]]},
            "metadata.keypoints_symmetry",
            "describes h36m16 but the arrays have 17 joints",
        ),
        (lambda d: None, {"keypoints_symmetry": [[0], [1]]}, "metadata.keypoints_symmetry", "not a known"),
    ],
)
def test_malformed_2d(tmp_path: Path, mutate, metadata, field: str, message: str) -> None:
    _write3d(tmp_path, _ok3d())
    data = _ok2d()
    mutate(data)
    path = _write2d(tmp_path, data, metadata)
    with pytest.raises(DataFormatError, match=message) as err:
        module(tmp_path, train_subjects=["S1"], test_subjects=["S9"])
    assert str(path) in str(err.value) and field in str(err.value)


def test_sixteen_joints_without_metadata_warns(tmp_path: Path, caplog) -> None:
    _write3d(tmp_path, _ok3d())
    _write2d(tmp_path, _ok2d(joints=16), metadata={})
    with caplog.at_level(logging.WARNING):
        dm = module(tmp_path, train_subjects=["S1"], test_subjects=["S9"])
    assert "assuming the 16 joints are PoseAug's H36M-16" in caplog.text
    assert dm.test_set_names == ["h36m_gt_S9.all16"]


def test_bone_length_templates_of_named_subjects_outside_the_training_split(h36m_dir: Path) -> None:
    from poseshift.augment import median_bone_lengths
    from poseshift.geometry import bone_lengths

    dm = module(h36m_dir, train_subjects=["S1"])
    templates = dm.bone_length_templates(["S1", "S5", "S9"])
    assert templates.shape == (3, 16)
    # S5's row is the median over S5's frames (mirrored bones averaged), though S5 is not trained on
    positions = np.load(h36m_dir / "data_3d_h36m.npz", allow_pickle=True)["positions_3d"].item()
    to17 = list(LAYOUTS["h36m32"].to_h36m17)
    frames = torch.from_numpy(np.concatenate([a[:, to17] for a in positions["S5"].values()]))
    expected = median_bone_lengths(frames, torch.zeros(len(frames)))[0]
    torch.testing.assert_close(templates[1], expected)
    assert not torch.allclose(templates[0], templates[1])  # the subjects differ
    assert (bone_lengths(frames).median(0).values - expected).abs().max() < 0.05
    with pytest.raises(ValueError, match="no subject.*S7"):
        dm.bone_length_templates(["S7"])
