"""The sample schema, batched dataset, evaluation sampler and keypoint files."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import SyntheticDataModule, synthetic_set

from data_modules.base import DomainSets, UnpaddedDistributedSampler
from data_modules.keypoints import KeypointsDataModule, load_keypoints
from data_modules.schema import DataFormatError, PoseDataset, PoseSet, collate_batch


def make_set(n: int = 10, j: int = 17, seed: int = 0) -> PoseSet:
    rng = np.random.default_rng(seed)
    return PoseSet(
        pose2d=rng.normal(size=(n, j, 2)),
        pose3d=rng.normal(size=(n, j, 3)),
        root3d=rng.normal(size=(n, 3)),
        intrinsics=rng.normal(size=(n, 9)),
        image_size=np.full((n, 2), 1000.0),
        subject=np.zeros(n),
        action=np.arange(n) % 2,
        camera=np.zeros(n),
        frame=np.arange(n),
        sequence=np.zeros(n),
        action_names=("a", "b"),
        name="toy",
    )


def test_poseset_converts_dtypes_and_round_trips(tmp_path):
    s = make_set()
    assert s.pose2d.dtype == np.float32 and s.action.dtype == np.int64
    s.save(tmp_path / "toy.npz")
    back = PoseSet.load(tmp_path / "toy.npz")
    assert back.action_names == ("a", "b") and back.name == "toy"
    for k, v in s.arrays().items():
        np.testing.assert_array_equal(v, back.arrays()[k])


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("pose3d", np.zeros((10, 16, 3)), r"pose3d: expected shape \(10, 17, 3\)"),
        ("intrinsics", np.zeros((10, 4)), r"intrinsics: expected shape \(10, 9\)"),
        ("pose2d", np.full((10, 17, 2), np.nan), "pose2d: 10 of 10 samples contain NaN"),
        ("frame", np.zeros(9), r"frame: expected shape \(10,\)"),
        ("action", np.full(10, 5), "action: id 5 but only 2 action names"),
    ],
)
def test_poseset_names_the_bad_field(field, value, message):
    arrays = make_set().arrays()
    arrays[field] = value
    with pytest.raises(DataFormatError, match=message):
        PoseSet(**arrays, action_names=("a", "b"), name="toy")


def test_poseset_load_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.npz"):
        PoseSet.load(tmp_path / "missing.npz")
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not an npz")
    with pytest.raises(DataFormatError, match="bad.npz"):
        PoseSet.load(bad)
    np.savez(tmp_path / "partial.npz", pose2d=np.zeros((2, 17, 2)))
    with pytest.raises(DataFormatError, match=r"partial.npz: missing keys \['intrinsics'"):
        PoseSet.load(tmp_path / "partial.npz")


def test_subset_concat_and_unlabeled():
    s = make_set()
    a, b = s.subset(np.arange(4)), s.subset(np.arange(4, 10))
    both = PoseSet.concat([a, b], name="both")
    np.testing.assert_array_equal(both.pose3d, s.pose3d)
    u = s.unlabeled()
    assert not u.labeled and "pose3d" not in u.arrays()
    with pytest.raises(ValueError, match="labeled and unlabeled"):
        PoseSet.concat([s, u], name="mixed")


def test_batched_fetch_matches_per_item():
    s = make_set()
    ds = PoseDataset(s)
    loader = torch.utils.data.DataLoader(ds, batch_size=4, shuffle=False, collate_fn=collate_batch)
    first = next(iter(loader))
    assert first["pose3d"].shape == (4, 17, 3)
    torch.testing.assert_close(first["pose3d"][2], ds[2]["pose3d"])
    assert sum(len(b["frame"]) for b in loader) == len(s)


@pytest.mark.parametrize(("n", "world"), [(10, 2), (11, 2), (7, 3), (2, 4)])
def test_unpadded_sampler_covers_every_index_once(n, world):
    ds = PoseDataset(make_set(n))
    shards = [list(UnpaddedDistributedSampler(ds, num_replicas=world, rank=r)) for r in range(world)]
    flat = sorted(i for s in shards for i in s)
    assert flat == list(range(n))
    assert [len(UnpaddedDistributedSampler(ds, num_replicas=world, rank=r)) for r in range(world)] == [
        len(s) for s in shards
    ]


def test_keypoint_files(tmp_path):
    kp = np.random.default_rng(0).uniform(0, 1000, size=(5, 17, 2))
    np.savez(tmp_path / "px.npz", keypoints=kp, image_size=np.array([1000.0, 1002.0]))
    norm = load_keypoints(tmp_path / "px.npz")
    np.testing.assert_allclose(norm[..., 0], 2 * kp[..., 0] / 1000 - 1, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(norm[..., 1], 2 * kp[..., 1] / 1000 - 1002 / 1000, rtol=1e-5, atol=1e-6)
    np.savez(tmp_path / "nosize.npz", keypoints=kp)
    with pytest.raises(DataFormatError, match="nosize.npz.*image size"):
        load_keypoints(tmp_path / "nosize.npz")
    np.testing.assert_allclose(load_keypoints(tmp_path / "nosize.npz", 1000, 1002), norm, atol=1e-6)
    np.savez(tmp_path / "wrong.npz", keypoints=kp[:, :16])
    with pytest.raises(DataFormatError, match=r"wrong.npz: keypoints has 16 joints per person"):
        load_keypoints(tmp_path / "wrong.npz")
    dm = KeypointsDataModule(str(tmp_path / "px.npz"), batch_size=2)
    batches = list(dm.predict_dataloader())
    assert [len(b["pose2d"]) for b in batches] == [2, 2, 1]


class TargetData(SyntheticDataModule):
    """The synthetic source plus an unlabeled target set of 40 poses."""

    def build_sets(self) -> DomainSets:
        sets = super().build_sets()
        sets.target_train = {"wild": synthetic_set(40, 9, "wild").unlabeled()}
        return sets


def test_training_batches_carry_target_2d_when_asked():
    dm = TargetData(num_train=96, batch_size=32, train_target="wild")
    loader = dm.train_dataloader()
    batches = [b for b, _, _ in loader]
    assert len(batches) == 3  # the epoch is the source's: 96 / 32
    wild = torch.as_tensor(dm.sets.target_train["wild"].pose2d)
    for b in batches:
        assert set(b) == {"source", "target"} and "pose3d" not in b["target"]
        assert b["target"]["pose2d"].shape == (32, 17, 2)
        assert (b["target"]["pose2d"][:, None] == wild[None]).all(-1).all(-1).any(-1).all()
    seen = torch.cat([b["target"]["pose2d"] for b in batches])
    # 96 draws from 40 poses without replacement within each pass: every pose at least twice
    hits = (seen[:, None] == wild[None]).all(-1).all(-1).sum(0)
    assert hits.min() >= 2
    # the target loader has its own generator: the source order is what it is without a target
    torch.manual_seed(5)
    with_target = torch.cat([b["source"]["frame"] for b, _, _ in dm.train_dataloader()])
    torch.manual_seed(5)
    plain = SyntheticDataModule(num_train=96, batch_size=32)
    without = torch.cat([b["source"]["frame"] for b, _, _ in plain.train_dataloader()])
    assert torch.equal(with_target, without)
    source_only = next(iter(plain.train_dataloader()))[0]
    assert set(source_only) == {"source"}


def test_an_unknown_train_target_is_named():
    with pytest.raises(ValueError, match="train_target 'nope'.*available: \\['wild'\\]"):
        TargetData(train_target="nope").setup("fit")


def test_accessors_give_methods_what_they_may_know():
    dm = TargetData(num_train=50)
    train = dm.training_poses()
    assert train["pose3d"].shape == (50, 17, 3) and train["pose3d"].dtype == torch.float32
    info = dm.test_set_info()
    assert list(info) == dm.test_set_names == ["alpha", "beta"]
    assert info["alpha"].action_names == ("a", "b") and not info["alpha"].oracle
    assert dm.validation_info().name == "val"
    from poseshift.batches import PoseDataSource

    assert isinstance(dm, PoseDataSource)
