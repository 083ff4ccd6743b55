"""Tests of the embedded mocap benchmark: DeepMimic clips, the camera rig, the DataModule."""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import first_training_batch

pytest.importorskip("pybullet_data", reason="the embedded mocap clips need pip install pybullet==3.2.7")

from data_modules import deepmimic  # noqa: E402
from data_modules.base import DomainSets  # noqa: E402
from data_modules.mocap import (  # noqa: E402
    SOURCE_CLIPS,
    SOURCE_TEST,
    MocapDataModule,
    MocapDomain,
    cache_root,
)
from data_modules.schema import DataFormatError, PoseSet  # noqa: E402
from poseshift.geometry.camera import H36M_S1_EXTRINSICS, project, world_to_camera  # noqa: E402
from poseshift.geometry.rig import H36M_CAPTURE_CENTRE, CameraRig, render  # noqa: E402
from poseshift.geometry.skeleton import H36M17  # noqa: E402

J = {name: i for i, name in enumerate(H36M17.names)}
# frames at 50 fps (EMBEDDED_MOCAP.md "Size and quality")
FRAMES_AT_50 = {
    "backflip": 88,
    "cartwheel": 136,
    "crawl": 147,
    "dance_a": 81,
    "dance_b": 127,
    "getup_facedown": 152,
    "getup_faceup": 189,
    "jump": 89,
    "kick": 77,
    "punch": 107,
    "roll": 101,
    "run": 40,
    "spin": 221,
    "spinkick": 65,
    "walk": 64,
}
UPRIGHT = ("walk", "run", "jump", "kick", "punch", "dance_a", "dance_b", "spin")


@pytest.fixture(autouse=True)
def _temp_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test may write to the user's real cache."""
    monkeypatch.setenv("POSESHIFT_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def worlds() -> dict[str, np.ndarray]:
    return {name: deepmimic.load_clip(name) for name in deepmimic.CLIP_NAMES}


@pytest.fixture(scope="module")
def default_sets(tmp_path_factory: pytest.TempPathFactory) -> tuple[MocapDataModule, DomainSets]:
    """The default benchmark, built once into a temporary cache folder."""
    dm = MocapDataModule(cache_dir=str(tmp_path_factory.mktemp("cache")))
    dm.setup()
    return dm, dm.sets


def _small(**kwargs: object) -> MocapDataModule:
    """A quick configuration for determinism and cache tests."""
    settings: dict[str, object] = dict(
        source_clips=["walk", "run"],
        source_takes=2,
        targets=[
            MocapDomain(
                "moving",
                ["run", "cartwheel"],
                CameraRig(moving=True, h36m_intrinsics=False),
                takes=1,
                train_takes=1,
            )
        ],
    )
    settings.update(kwargs)
    return MocapDataModule(**settings)  # type: ignore[arg-type]


def _facing(x: np.ndarray) -> np.ndarray:
    """Unit horizontal forward direction per frame from the hips: left x up (z-up world)."""
    left = x[:, J["l_hip"]] - x[:, J["r_hip"]]
    fwd = np.cross(left, np.array([0.0, 0.0, 1.0]))
    return fwd / np.linalg.norm(fwd, axis=-1, keepdims=True)


# -- DeepMimic clips -------------------------------------------------------------------------------
def test_all_clips_load(worlds: dict[str, np.ndarray]) -> None:
    assert len(worlds) == 15
    for name, x in worlds.items():
        assert x.shape == (FRAMES_AT_50[name], 17, 3), name
        assert np.isfinite(x).all()
    assert len(deepmimic.load_clip("walk", fps=25.0)) == 32  # 1.267 s at 25 fps


def test_bone_lengths_constant(worlds: dict[str, np.ndarray]) -> None:
    parents = np.array(H36M17.parents[1:])
    lengths = []
    for name, x in worlds.items():
        bones = np.linalg.norm(x[:, 1:] - x[:, parents], axis=-1)
        assert np.ptp(bones, axis=0).max() < 1e-5, name
        lengths.append(bones[0])
    np.testing.assert_allclose(lengths, np.broadcast_to(lengths[0], np.shape(lengths)), atol=1e-5)  # one body
    b = lengths[0]  # child joint - 1 = bone index
    assert b[J["r_knee"] - 1] == pytest.approx(0.421546, abs=1e-6)
    assert b[J["r_ankle"] - 1] == pytest.approx(0.409870, abs=1e-6)
    assert b[J["l_wrist"] - 1] == pytest.approx(0.258947, abs=1e-6)
    assert 0.11 < b[J["neck_nose"] - 1] < 0.13 and 0.11 < b[J["head_top"] - 1] < 0.13


def test_world_frame_is_right_handed_z_up(worlds: dict[str, np.ndarray]) -> None:
    assert np.linalg.det(deepmimic.Y_UP_TO_Z_UP) == pytest.approx(1.0)
    walk = worlds["walk"]
    assert (walk[:, J["head_top"], 2] > walk[:, J["pelvis"], 2] + 0.5).all()
    assert 0.8 < walk[:, J["pelvis"], 2].mean() < 0.95
    assert walk[-1, 0, 0] - walk[0, 0, 0] > 1.0  # walks along +X, the clip's forward axis


def test_left_right_sides_in_walk(worlds: dict[str, np.ndarray]) -> None:
    x = worlds["walk"]
    travel = x[-1, 0] - x[0, 0]
    fwd = travel / np.linalg.norm(travel)
    left = np.cross([0.0, 0.0, 1.0], fwd)  # up x forward points to the character's left
    assert ((x[:, J["l_hip"]] - x[:, J["r_hip"]]) @ left > 0.1).all()
    assert ((x[:, J["l_shoulder"]] - x[:, J["r_shoulder"]]) @ left > 0.2).all()


def test_knees_bend_forward_and_nose_ahead(worlds: dict[str, np.ndarray]) -> None:
    for name in ("walk", "run", "jump"):
        x = worlds[name]
        fwd = _facing(x)
        for side in ("r", "l"):
            hip, knee, ankle = (x[:, J[f"{side}_{p}"]] for p in ("hip", "knee", "ankle"))
            bend = np.sum((knee - (hip + ankle) / 2) * fwd, axis=-1)
            assert (bend > -0.01).all(), (name, side)
        nose_ahead = np.sum((x[:, J["neck_nose"]] - x[:, J["thorax"]]) * fwd, axis=-1)
        assert (nose_ahead > 0).all(), name


def test_feet_near_floor(worlds: dict[str, np.ndarray]) -> None:
    for name in UPRIGHT:
        low = worlds[name][:, [J["r_ankle"], J["l_ankle"]], 2].min(axis=1)  # lower ankle per frame
        assert -0.03 < low.min() and 0.02 < np.median(low) < 0.12, name  # ankle ~5 cm above the sole
    for name, x in worlds.items():
        assert x[..., 2].min() > -0.1, name  # nothing deep below the floor, whatever the motion


def test_missing_pybullet_gives_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pybullet_data", None)  # makes `import pybullet_data` fail
    with pytest.raises(ImportError, match=r"pip install pybullet==3\.2\.7"):
        deepmimic.load_clip("walk")
    with pytest.raises(ImportError, match="pybullet"):
        MocapDataModule(cache=False).setup()


@pytest.mark.parametrize(
    "content, problem",
    [
        ('{"Loop": "wrap", "Frames": [[0.1, 0.0', "not a readable"),
        ("[1, 2, 3]", "'Frames'"),
        ('{"Frames": [[0.1, 1.0]]}', "at least 2"),
        ('{"Frames": [[0.1, 1.0], [0.1, 2.0]]}', "44 numbers"),
        ('{"Frames": [' + json.dumps([0.1] + ["a"] * 43) + "," + json.dumps([0.1] * 44) + "]}", "numbers"),
        (
            '{"Frames": [' + json.dumps([0.1] + [0.0] * 43) + "," + json.dumps([0.1] + [0.0] * 43) + "]}",
            "quaternion has norm",
        ),
    ],
)
def test_malformed_clip_names_the_file(tmp_path: Path, content: str, problem: str) -> None:
    bad = tmp_path / "humanoid3d_bad.txt"
    bad.write_text(content)
    with pytest.raises(DataFormatError) as err:
        deepmimic.parse_clip(bad)
    assert str(bad) in str(err.value) and problem in str(err.value)


def test_unknown_clip_lists_names() -> None:
    with pytest.raises(KeyError, match="cartwheel"):
        deepmimic.load_clip("moonwalk")
    with pytest.raises(KeyError, match="moonwalk"):
        MocapDataModule(source_clips=["moonwalk"])


# -- camera rig ------------------------------------------------------------------------------------
def _check_projection(arrays: dict[str, np.ndarray] | PoseSet, atol: float = 1e-5) -> None:
    get = arrays.__getitem__ if isinstance(arrays, dict) else lambda k: getattr(arrays, k)
    cam = get("pose3d") + get("root3d")[:, None]
    again = project(torch.from_numpy(cam), torch.from_numpy(get("intrinsics"))).numpy()
    np.testing.assert_allclose(again, get("pose2d"), atol=atol)
    assert (cam[..., 2] > 0.1 - 1e-6).all()
    assert (get("pose3d")[:, 0] == 0).all()
    aspect = get("image_size")[:, 1] / get("image_size")[:, 0]
    assert (np.abs(get("pose2d")[..., 0]) <= 1 + 1e-6).all()
    assert (np.abs(get("pose2d")[..., 1]) <= aspect[:, None] + 1e-6).all()


def test_h36m_rig_matches_world_to_camera(worlds: dict[str, np.ndarray]) -> None:
    seq = worlds["walk"]
    rig = CameraRig.h36m(subject_yaw_range=(0.0, 0.0), subject_offset=0.0)
    out = render(seq, rig, np.random.default_rng(0), takes=1)
    assert out["num_dropped"] == 0 and len(out["frame"]) == 4 * len(seq)
    mid = (seq[:, 0, :2].min(0) + seq[:, 0, :2].max(0)) / 2
    placed = seq - np.array([*mid, 0.0]) + np.array([*H36M_CAPTURE_CENTRE, 0.0])
    for c, (q, t) in enumerate(H36M_S1_EXTRINSICS):
        expect = world_to_camera(
            torch.from_numpy(placed),
            torch.tensor(q, dtype=torch.float64),
            torch.tensor(t, dtype=torch.float64),
        ).numpy()
        pick = out["camera"] == c
        got = out["pose3d"][pick] + out["root3d"][pick][:, None]
        np.testing.assert_allclose(got, expect[out["frame"][pick]], atol=1e-5)
    _check_projection(out)


def test_rig_views_are_upright_and_top_down_works(worlds: dict[str, np.ndarray]) -> None:
    seq = worlds["walk"]
    level = render(seq, CameraRig(elevation_range=(0.0, 0.0)), np.random.default_rng(1), takes=3)
    assert (level["pose2d"][:, J["head_top"], 1] < level["pose2d"][:, J["r_ankle"], 1]).all()  # y is down
    top = render(
        seq,
        CameraRig(elevation_range=(90.0, 90.0), distance_range=(3.0, 3.0)),
        np.random.default_rng(2),
        takes=3,
    )
    _check_projection(top)
    assert (top["root3d"][:, 2] > 2.0).all() and len(top["frame"]) > 0


def test_moving_camera_follows_subject(worlds: dict[str, np.ndarray]) -> None:
    seq = worlds["run"]  # 2.8 m of travel
    rig = CameraRig(
        moving=True, follow_lag=0.0, aim_jitter=0.0, h36m_intrinsics=False, orbit_speed_range=(-30.0, 30.0)
    )
    out = render(seq, rig, np.random.default_rng(3), takes=2)
    _check_projection(out)
    centre = out["intrinsics"][:, 2:4]
    np.testing.assert_allclose(out["pose2d"][:, 0], centre, atol=1e-4)  # pelvis stays at the centre
    static = render(seq, replace(rig, moving=False), np.random.default_rng(3), takes=2)
    assert np.abs(static["pose2d"][:, 0] - static["intrinsics"][:, 2:4]).max() > 0.05
    moving_h36m = render(seq, CameraRig.h36m(moving=True), np.random.default_rng(4), takes=1)
    _check_projection(moving_h36m)


def test_rig_reports_dropped_frames(worlds: dict[str, np.ndarray], caplog: pytest.LogCaptureFixture) -> None:
    seq = worlds["run"]
    rig = CameraRig(distance_range=(1.0, 1.0), focal_scale_range=(3.0, 3.0), max_redraws=1)
    with caplog.at_level(logging.WARNING, logger="data_modules.rig"):
        out = render(seq, rig, np.random.default_rng(0), takes=2, label="tight/run")
    dropped = int(out["num_dropped"])
    assert dropped > 0 and len(out["frame"]) + dropped == 2 * 4 * len(seq)
    assert f"dropped {dropped} of" in caplog.text and "tight/run" in caplog.text


def test_rig_validates_config() -> None:
    with pytest.raises(ValueError, match="elevation_range"):
        CameraRig(elevation_range=(10.0, 0.0))
    with pytest.raises(ValueError, match="h36m_extrinsics"):
        CameraRig.h36m(num_cameras=5)
    assert CameraRig(azimuth_range=[0, 90]).azimuth_range == (0.0, 90.0)  # lists from YAML


# -- data module ---------------------------------------------------------------------------------
def test_default_domains(default_sets: tuple[MocapDataModule, DomainSets]) -> None:
    dm, sets = default_sets
    assert dm.test_set_names == [SOURCE_TEST, "new_motion", "new_view", "moving_camera", "all_shift"]
    assert set(sets.target_train) == {"new_motion", "new_view", "moving_camera", "all_shift"}
    assert 10_000 < len(sets.train) < 50_000
    for s in [sets.train, sets.val, *sets.test.values(), *sets.target_train.values()]:
        assert len(s) > 500 and s.action_names == deepmimic.CLIP_NAMES and (s.subject == 0).all()
        assert set(np.unique(s.camera)) <= {0, 1, 2, 3}
    for s in sets.target_train.values():
        assert not s.labeled
    train_actions = {sets.train.action_names[a] for a in np.unique(sets.train.action)}
    assert train_actions == set(SOURCE_CLIPS)
    new = {sets.test["new_motion"].action_names[a] for a in np.unique(sets.test["new_motion"].action)}
    assert not new & set(SOURCE_CLIPS)


def test_projection_consistent_in_every_split(default_sets: tuple[MocapDataModule, DomainSets]) -> None:
    _, sets = default_sets
    for s in [sets.train, sets.val, *sets.test.values()]:
        _check_projection(s)
    for s in sets.target_train.values():
        assert np.isfinite(s.pose2d).all() and (np.abs(s.pose2d) <= 1 + 1e-6).all()


def test_no_test_frame_reaches_training(default_sets: tuple[MocapDataModule, DomainSets]) -> None:
    _, sets = default_sets

    def keys(s: PoseSet) -> set[tuple[int, int]]:
        return set(zip(s.action.tolist(), s.frame.tolist(), strict=True))

    train, val, test = keys(sets.train), keys(sets.val), keys(sets.test[SOURCE_TEST])
    assert not train & val and not train & test and not val & test
    seen = train | val | set().union(*(keys(s) for s in sets.target_train.values()))
    for name, s in sets.test.items():
        assert not keys(s) & seen, name
    # one filming cut by time: the three source splits share their sequences
    assert set(np.unique(sets.train.sequence)) == set(np.unique(sets.test[SOURCE_TEST].sequence))


def test_sequence_ids(default_sets: tuple[MocapDataModule, DomainSets]) -> None:
    _, sets = default_sets
    all_ids = []
    targets = [t for n, t in sets.test.items() if n != SOURCE_TEST]
    for s in [sets.train, *targets, *sets.target_train.values()]:
        order = np.lexsort((s.frame, s.sequence))
        seq, frame = s.sequence[order], s.frame[order]
        same = seq[1:] == seq[:-1]
        assert (frame[1:][same] > frame[:-1][same]).all()  # no repeated frame in a sequence
        for key in (s.action, s.camera):  # one clip and one camera per sequence
            k = key[order]
            assert (k[1:][same] == k[:-1][same]).all()
        all_ids.append(np.unique(s.sequence))
    ids = np.concatenate(all_ids)
    assert len(ids) == len(np.unique(ids))  # unique across sets (the source splits count once)


def test_loaders_and_test_set_selection(default_sets: tuple[MocapDataModule, DomainSets]) -> None:
    dm, _ = default_sets
    batch = first_training_batch(dm)["source"]
    assert batch["pose2d"].shape == (dm.batch_size, 17, 2) and batch["pose3d"].shape == (dm.batch_size, 17, 3)
    assert len(dm.test_dataloader()) == 5
    assert "pose3d" not in next(iter(dm.target_dataloader("new_view")))
    cached = dm.cache_path()
    assert (cached / "manifest.json").is_file()
    picked = MocapDataModule(test_sets=["new_view", SOURCE_TEST], cache_dir=dm.cache_dir)
    assert picked.cache_path() == cached  # test_sets is not part of the data: same cache entry
    assert picked.test_set_names == ["new_view", SOURCE_TEST]
    with pytest.raises(ValueError, match="unknown test set"):
        MocapDataModule(test_sets=["ski"], cache_dir=dm.cache_dir).setup()


def test_determinism() -> None:
    a, b = _small(cache=False).generate(), _small(cache=False).generate()
    c = _small(seed=1, cache=False).generate()
    for x, y, z in [(a.train, b.train, c.train), (a.test["moving"], b.test["moving"], c.test["moving"])]:
        for key, value in x.arrays().items():
            np.testing.assert_array_equal(value, y.arrays()[key])
        assert not np.array_equal(x.pose2d, z.pose2d)
    np.testing.assert_array_equal(a.target_train["moving"].pose2d, b.target_train["moving"].pose2d)


def test_cache_round_trip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = _small()
    first.setup()
    folder = first.cache_path()
    assert folder.parent.parent == cache_root() == tmp_path / "cache"
    assert (folder / "manifest.json").is_file() and (folder / "train.npz").is_file()

    def no_generate(self: MocapDataModule) -> None:
        raise AssertionError("should have loaded from the cache")

    monkeypatch.setattr(MocapDataModule, "generate", no_generate)
    second = _small()
    second.setup()
    s1, s2 = first.sets, second.sets
    assert list(s1.test) == list(s2.test) and list(s1.target_train) == list(s2.target_train)
    pairs = [
        (s1.train, s2.train),
        (s1.val, s2.val),
        *zip(s1.test.values(), s2.test.values(), strict=True),
        *zip(s1.target_train.values(), s2.target_train.values(), strict=True),
    ]
    for x, y in pairs:
        assert x.name == y.name and x.action_names == y.action_names and x.labeled == y.labeled
        for key, value in x.arrays().items():
            np.testing.assert_array_equal(value, y.arrays()[key])
    assert _small(seed=5).cache_path() != folder  # the key covers the configuration
    assert _small(fps=50).cache_path() == folder


def test_config_errors() -> None:
    with pytest.raises(ValueError, match="unique"):
        MocapDataModule(targets=[MocapDomain(SOURCE_TEST, ["walk"])])
    with pytest.raises(ValueError, match="split"):
        MocapDataModule(split=(0.8, 0.2, 0.0))
    with pytest.raises(ValueError, match="repeats"):
        MocapDataModule(targets=[MocapDomain("twice", ["walk", "walk"])])


def test_first_build_says_so_and_a_damaged_cache_is_rebuilt(capsys: pytest.CaptureFixture) -> None:
    first = _small()
    first.setup()
    folder = first.cache_path()
    out = capsys.readouterr().out
    assert out.splitlines() == [
        f"building the mocap benchmark (first run with these settings); cached in {folder} for later runs"
    ]
    _small().setup()
    assert capsys.readouterr().out == ""  # loading the cache is silent

    def same_as_first(dm: MocapDataModule) -> None:
        for key, value in first.sets.train.arrays().items():
            np.testing.assert_array_equal(value, dm.sets.train.arrays()[key])
        assert list(dm.sets.test) == list(first.sets.test)

    (folder / "manifest.json").write_text('{"config": ')  # a run killed while writing it
    rebuilt = _small()
    rebuilt.setup()
    captured = capsys.readouterr()
    assert captured.err.startswith(f"warning: {folder}: the cached mocap benchmark is damaged (")
    assert "it is rebuilt now, no action needed" in captured.err and len(captured.err.splitlines()) == 1
    assert captured.out == (
        f"building the mocap benchmark (the cached copy was damaged); cached in {folder} for later runs\n"
    )
    same_as_first(rebuilt)
    assert json.loads((folder / "manifest.json").read_text())["test"] == list(first.sets.test)

    split = folder / "test_1.npz"
    split.write_bytes(split.read_bytes()[: split.stat().st_size // 2])  # a truncated cached split
    rebuilt = _small()
    rebuilt.setup()
    err = capsys.readouterr().err
    assert (
        f"warning: {folder}: the cached mocap benchmark is damaged ({split}: not a readable npz file" in err
    )
    same_as_first(rebuilt)
    np.testing.assert_array_equal(
        rebuilt.sets.test["moving"].pose3d, PoseSet.load(folder / "test_1.npz").pose3d
    )
