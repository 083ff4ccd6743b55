"""Detector files in every accepted format, read by data_modules.keypoints, and bad input refused.

The files are written here from filmed real motion capture (tests/detector_fixtures.py); a file
read back must give the same H36M-17 input as mapping the written keypoints directly.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from detector_fixtures import IMAGE, detector_keypoints, filmed, write_coco_results, write_openpose_dir

from data_modules.detectors import KeypointWarning
from data_modules.keypoints import KeypointsDataModule, load_video
from data_modules.schema import DataFormatError
from data_modules.skeletons import KEYPOINT_LAYOUTS, map_keypoints
from poseshift.geometry.camera import normalize_screen

W, H = IMAGE


@pytest.fixture(scope="module")
def walk() -> dict[str, np.ndarray]:
    d = filmed(seed=3, clips=("walk", "kick"))
    d["coco"] = detector_keypoints(d["h36m_px"], d["face_px"], "coco17")
    d["body25"] = detector_keypoints(d["h36m_px"], d["face_px"], "body25")
    d["score"] = np.full(d["coco"].shape[:2], 0.9)
    return d


def expected(kp: np.ndarray, score: np.ndarray, layout: str) -> np.ndarray:
    xy, _ = map_keypoints(kp, score, layout, 0.3)
    return normalize_screen(torch.from_numpy(xy), W, H).numpy()


# -- each format --------------------------------------------------------------------------------
def test_coco_results_json(tmp_path, walk, capsys):
    path = write_coco_results(tmp_path / "video.json", walk["coco"], walk["score"])
    video = load_video(path, width=W, height=H)
    np.testing.assert_allclose(video.pose2d, expected(walk["coco"], walk["score"], "coco17"), atol=1e-5)
    np.testing.assert_array_equal(video.frames, np.arange(len(walk["coco"])))
    assert video.layout == "coco17" and not video.filled.any()
    assert any("layout coco17 (detected: 17 joints" in n for n in video.notes)


def test_coco_results_pick_the_largest_person_or_a_track(tmp_path, walk):
    n = len(walk["coco"])
    small = walk["coco"][:4] * 0.3 + 50  # a smaller bystander in frames 0-3
    bystanders = [
        {"image_id": f, "keypoints": np.c_[small[f], np.full(17, 0.9)].ravel().tolist(), "track_id": 7}
        for f in range(4)
    ]
    path = tmp_path / "two.json"
    records = [
        {"image_id": f, "keypoints": np.c_[walk["coco"][f], walk["score"][f]].ravel().tolist(), "track_id": 1}
        for f in range(n)
    ]
    path.write_text(json.dumps(bystanders + records))  # the bystander comes first in each frame
    largest = load_video(path, width=W, height=H)
    np.testing.assert_allclose(largest.pose2d, expected(walk["coco"], walk["score"], "coco17"), atol=1e-5)
    assert any("up to 2 per frame; took the largest" in n for n in largest.notes)

    tracked = load_video(path, width=W, height=H, track_id=7)
    np.testing.assert_array_equal(tracked.frames, [0, 1, 2, 3])
    np.testing.assert_allclose(tracked.pose2d, expected(small, walk["score"][:4], "coco17"), atol=1e-5)
    np.testing.assert_array_equal(tracked.frames_without_person, np.arange(4, n))
    with pytest.raises(DataFormatError, match=r"two.json: no person has track id 3; the file has \[1, 7\]"):
        load_video(path, width=W, height=H, track_id=3)


def test_coco_annotations_with_image_sizes(tmp_path, walk):
    n = 5
    data = {
        "images": [
            {"id": 100 + f, "file_name": f"clip/frame_{f:05d}.jpg", "width": W, "height": H} for f in range(n)
        ],
        "annotations": [
            {"image_id": 100 + f, "keypoints": np.c_[walk["coco"][f], np.full(17, 2)].ravel().tolist()}
            for f in range(n)
        ],
    }
    (tmp_path / "ann.json").write_text(json.dumps(data))
    video = load_video(tmp_path / "ann.json")  # sizes come from the file
    np.testing.assert_allclose(
        video.pose2d, expected(walk["coco"][:n], np.ones((n, 17)), "coco17"), atol=1e-5
    )
    assert (video.score == 1).all()


def test_mmpose_predictions(tmp_path, walk):
    data = {
        "meta_info": {"dataset_name": "coco"},
        "instance_info": [
            {
                "frame_id": f + 1,
                "instances": [
                    {"keypoints": walk["coco"][f].tolist(), "keypoint_scores": walk["score"][f].tolist()}
                ],
            }
            for f in range(len(walk["coco"]))
        ],
    }
    (tmp_path / "mmpose.json").write_text(json.dumps(data))
    video = load_video(tmp_path / "mmpose.json", width=W, height=H)
    np.testing.assert_array_equal(video.frames, np.arange(1, len(walk["coco"]) + 1))
    np.testing.assert_allclose(video.pose2d, expected(walk["coco"], walk["score"], "coco17"), atol=1e-6)


def test_openpose_folder_body25_with_an_empty_frame(tmp_path, walk):
    score = np.full(walk["body25"].shape[:2], 0.9)
    folder = write_openpose_dir(tmp_path / "op", walk["body25"], score, people={2: []})
    video = load_video(folder, width=W, height=H)
    keep = np.array([f for f in range(len(walk["body25"])) if f != 2])
    np.testing.assert_array_equal(video.frames, keep)
    np.testing.assert_allclose(video.pose2d, expected(walk["body25"][keep], score[keep], "body25"), atol=1e-5)
    np.testing.assert_array_equal(video.frames_without_person, [2])
    assert video.layout == "body25"
    assert any("frames without a person: 1 of" in n and "(2)" in n for n in video.notes)
    # one OpenPose file alone is a one-frame video
    single = load_video(folder / "video_000000000004_keypoints.json", width=W, height=H)
    np.testing.assert_array_equal(single.frames, [4])


def test_openpose_coco18(tmp_path, walk):
    kp = detector_keypoints(walk["h36m_px"], walk["face_px"], "coco18")
    score = np.full(kp.shape[:2], 0.9)
    folder = write_openpose_dir(tmp_path / "op18", kp, score)
    video = load_video(folder, width=W, height=H)
    assert video.layout == "coco18"
    np.testing.assert_allclose(video.pose2d, expected(kp, score, "coco18"), atol=1e-5)


def test_arrays_npz_npy_and_several_people(tmp_path, walk):
    kp, score = walk["coco"], walk["score"]
    want = expected(kp, score, "coco17")
    np.savez(tmp_path / "s.npz", keypoints=np.concatenate([kp, score[..., None]], -1), image_size=[W, H])
    np.testing.assert_allclose(load_video(tmp_path / "s.npz").pose2d, want, atol=1e-6)
    np.save(tmp_path / "k.npy", np.concatenate([kp, score[..., None]], -1))
    np.testing.assert_allclose(load_video(tmp_path / "k.npy", width=W, height=H).pose2d, want, atol=1e-6)
    # (N, P, K, 3): slot 1 holds the person, slot 0 a smaller one in some frames, zeros elsewhere
    people = np.zeros((len(kp), 2, 17, 3))
    people[:, 1] = np.concatenate([kp, score[..., None]], -1)
    people[:3, 0, :, :2] = kp[:3] * 0.2 + 10
    people[:3, 0, :, 2] = 0.9
    np.savez(tmp_path / "p.npz", keypoints=people, image_size=[W, H], frame=np.arange(len(kp)) * 2)
    video = load_video(tmp_path / "p.npz")
    np.testing.assert_allclose(video.pose2d, want, atol=1e-6)
    np.testing.assert_array_equal(video.frames, np.arange(len(kp)) * 2)
    assert load_video(tmp_path / "p.npz", track_id=0).frames.tolist() == [0, 2, 4]


def test_h36m_npz_and_pose2d_stay_accepted(tmp_path, walk):
    np.savez(tmp_path / "h.npz", keypoints=walk["h36m_px"], image_size=[W, H])
    video = load_video(tmp_path / "h.npz")
    assert video.layout == "h36m17"
    want = normalize_screen(torch.from_numpy(walk["h36m_px"]), W, H).numpy()
    np.testing.assert_allclose(video.pose2d, want, atol=1e-6)
    np.savez(tmp_path / "n.npz", pose2d=want)
    np.testing.assert_allclose(load_video(tmp_path / "n.npz").pose2d, want, atol=1e-7)
    with pytest.raises(DataFormatError, match="--data.layout coco17 has 17 joints but keypoints has 25"):
        np.savez(tmp_path / "b.npz", keypoints=walk["body25"], image_size=[W, H])
        load_video(tmp_path / "b.npz", layout="coco17")


# -- low confidence ---------------------------------------------------------------------------
def test_low_confidence_joints_are_filled_from_the_previous_frame(tmp_path, walk):
    kp, score = walk["coco"].copy(), walk["score"].copy()
    lk = KEYPOINT_LAYOUTS["coco17"].joint_names.index("l_knee")
    score[5:8, lk] = 0.1
    kp[5:8, lk] = [3.0, 4.0]  # a wild guess the detector was unsure of
    path = write_coco_results(tmp_path / "v.json", kp, score)
    video = load_video(path, width=W, height=H)
    h36m_lk = 5  # H36M index of l_knee
    np.testing.assert_array_equal(video.filled.nonzero(), (np.array([5, 6, 7]), np.array([h36m_lk] * 3)))
    np.testing.assert_allclose(video.keypoints[5:8, h36m_lk], np.repeat(kp[4:5, lk], 3, 0), atol=1e-3)
    assert any("3 joints in 3 of" in n and "most: l_knee, 3 frames" in n for n in video.notes)
    # at the start there is no previous frame: the first confident one is used
    score[:2, lk] = 0.1
    video = load_video(write_coco_results(tmp_path / "s.json", kp, score), width=W, height=H)
    np.testing.assert_allclose(video.keypoints[:2, h36m_lk], np.repeat(kp[2:3, lk], 2, 0), atol=1e-3)

    with pytest.raises(
        DataFormatError, match=r"v.json: frame 5, joint l_knee: score 0.10 is below --data.min_score"
    ):
        load_video(tmp_path / "v.json", width=W, height=H, low_confidence="fail")
    with pytest.raises(
        DataFormatError, match=r"frame 7, joint l_knee: not confident for 3 frames .* from frame 4"
    ):
        load_video(tmp_path / "v.json", width=W, height=H, max_fill_frames=2)
    score[:, lk] = 0.1
    write_coco_results(tmp_path / "never.json", kp, score)
    with pytest.raises(DataFormatError, match=r"never.json, joint l_knee: not confident .* in any of the"):
        load_video(tmp_path / "never.json", width=W, height=H)
    # a head joint names the detector joints it is made from
    score = walk["score"].copy()
    score[3, :5] = 0.05
    write_coco_results(tmp_path / "face.json", kp, score)
    with pytest.raises(
        DataFormatError, match=r"frame 3, joint neck_nose \(from nose, l_eye, r_eye, l_ear, r_ear\)"
    ):
        load_video(tmp_path / "face.json", width=W, height=H, low_confidence="fail")


# -- bad input: one message naming file, frame, joint ----------------------------------------------
@pytest.fixture
def npz(tmp_path, walk):
    def write(name: str, **arrays) -> Path:
        arrays = {"keypoints": walk["coco"].copy(), "image_size": np.array([W, H]), **arrays}
        np.savez(tmp_path / name, **{k: v for k, v in arrays.items() if v is not None})
        return tmp_path / name

    return write


def test_nan_names_frame_and_joint(npz, walk):
    kp = walk["coco"].copy()
    kp[3, 14] = np.nan
    with pytest.raises(DataFormatError, match=r"nan.npz: frame 3, joint r_knee: NaN or inf in keypoints"):
        load_video(npz("nan.npz", keypoints=kp))


def test_all_zero_frames(npz, walk):
    kp = walk["coco"].copy()
    kp[[2, 3, 4, 9]] = 0
    with pytest.raises(
        DataFormatError, match=r"zero.npz: frame 2: every keypoint is \(0, 0\).*4 such frame\(s\): 2-4, 9"
    ):
        load_video(npz("zero.npz", keypoints=kp))


def test_keypoint_outside_the_image(npz, walk):
    kp = walk["coco"].copy()
    kp[4, 10] = [1500.0, 300.0]
    with pytest.raises(
        DataFormatError,
        match=r"out.npz: frame 4, joint r_wrist: keypoint \(1500.0, 300.0\) with score 1.00 lies outside the "
        r"1000 x 1000 image \(1 keypoints in 1 of \d+ frames\); if the image size is right",
    ):
        load_video(npz("out.npz", keypoints=kp))
    # a keypoint the detector was unsure of may lie outside: it is filled instead
    kp_s = np.concatenate([kp, np.full(kp.shape[:2] + (1,), 0.9)], -1)
    kp_s[4, 10, 2] = 0.1
    video = load_video(npz("unsure.npz", keypoints=kp_s))
    assert video.filled[4].sum() == 1


def test_mismatched_image_size(npz):
    with pytest.raises(
        DataFormatError, match=r"size.npz: frame 0: the file's image size 1000 x 1000 differs from"
    ):
        load_video(npz("size.npz"), width=1920, height=1080)
    with pytest.raises(DataFormatError, match="the image size looks wrong: pass the video's size"):
        load_video(npz("small.npz", image_size=np.array([320, 240])))
    for bad in ([0, 0], [1000, -5], [np.nan, 1000]):
        with pytest.raises(DataFormatError, match=r"bad.npz: frame 0: image_size must be positive"):
            load_video(npz("bad.npz", image_size=np.array(bad)))
    with pytest.raises(DataFormatError, match=r"image_size must be \(2,\) or \(\d+, 2\) numbers"):
        load_video(npz("shape.npz", image_size=np.array([W, H, 3])))


def test_wrong_joint_counts_and_empty_input(tmp_path, npz, walk):
    with pytest.raises(DataFormatError, match=r"16.npz: keypoints has 16 joints per person; supported: 17"):
        load_video(npz("16.npz", keypoints=walk["coco"][:, :16]))
    with pytest.raises(DataFormatError, match=r"empty.npz: keypoints holds 0 frames"):
        load_video(npz("empty.npz", keypoints=np.zeros((0, 17, 2))))
    (tmp_path / "zero.json").write_text("")
    with pytest.raises(DataFormatError, match=r"zero.json: the file is empty"):
        load_video(tmp_path / "zero.json", width=W, height=H)
    (tmp_path / "list.json").write_text("[]")
    with pytest.raises(DataFormatError, match=r"list.json: the results list is empty"):
        load_video(tmp_path / "list.json", width=W, height=H)
    (tmp_path / "none").mkdir()
    with pytest.raises(DataFormatError, match=r"none: folder has no OpenPose \*_keypoints.json files"):
        load_video(tmp_path / "none", width=W, height=H)
    (tmp_path / "broken.json").write_text('[{"image_id": 0, "keypoints": [1, 2')
    with pytest.raises(DataFormatError, match=r"broken.json: not valid JSON \(line 1, column"):
        load_video(tmp_path / "broken.json", width=W, height=H)
    (tmp_path / "odd.json").write_text(json.dumps([{"image_id": 0, "keypoints": [1, 2, 3, 4]}]))
    with pytest.raises(
        DataFormatError, match=r"odd.json: entry 0 \(frame 0\): flat keypoints need 3 numbers"
    ):
        load_video(tmp_path / "odd.json", width=W, height=H)
    nobody = write_openpose_dir(
        tmp_path / "nobody", walk["body25"][:3], np.ones((3, 25)), {0: [], 1: [], 2: []}
    )
    with pytest.raises(DataFormatError, match=r"nobody: no frame has a person"):
        load_video(nobody, width=W, height=H)


def test_pixels_normalized_and_types(npz, walk):
    pixels = walk["coco"]
    with pytest.raises(
        DataFormatError, match=r"px.npz: frame 0, joint nose: pose2d value .* these look like pixels"
    ):
        load_video(npz("px.npz", pose2d=pixels))
    with pytest.raises(DataFormatError, match=r"int.npz: pose2d holds integers \(int64\)"):
        load_video(npz("int.npz", pose2d=np.zeros((3, 17, 2), np.int64)))
    with pytest.raises(DataFormatError, match=r"str.npz: keypoints must hold numbers, got dtype <U"):
        load_video(npz("str.npz", keypoints=np.full((3, 17, 2), "a")))
    with pytest.warns(
        KeypointWarning, match=r"whole.npz: keypoints holds integers \(int64\); read as whole pixels"
    ):
        video = load_video(npz("whole.npz", keypoints=np.round(pixels).astype(np.int64)))
    assert np.isfinite(video.pose2d).all()
    with pytest.raises(
        DataFormatError, match=r"unit.npz: frame 0: the keypoints span .* pixels: they look normalized"
    ):
        load_video(npz("unit.npz", keypoints=pixels / W))
    with pytest.raises(
        DataFormatError, match=r"nosize.npz: keypoints are in pixels, so the image size is needed"
    ):
        load_video(npz("nosize.npz", image_size=None))


def test_options_are_checked():
    with pytest.raises(ValueError, match="--data.layout 'mpii'"):
        load_video("x.json", layout="mpii")
    with pytest.raises(ValueError, match="--data.low_confidence 'skip'"):
        load_video("x.json", low_confidence="skip")
    with pytest.raises(ValueError, match=r"--data.min_score must be within \[0, 1\]"):
        load_video("x.json", min_score=2)
    with pytest.raises(ValueError, match="--data.receptive_field must be odd"):
        KeypointsDataModule("x.json", receptive_field=4)
    with pytest.raises(ValueError, match="--data.max_fill_frames must be >= 0"):
        KeypointsDataModule("x.json", max_fill_frames=-1)


# -- serving -------------------------------------------------------------------------------------
def test_windows_for_temporal_lifters_are_one_edge_padded_sequence(tmp_path, walk):
    path = write_coco_results(tmp_path / "v.json", walk["coco"], walk["score"])
    dm = KeypointsDataModule(str(path), width=W, height=H, batch_size=8)

    class Lifter(torch.nn.Module):
        receptive_field = 5

    dm.match_lifter(Lifter())
    assert dm.receptive_field == 5
    batches = list(dm.predict_dataloader())
    pose2d = torch.cat([b["pose2d"] for b in batches])
    n = len(walk["coco"])
    assert pose2d.shape == (n, 5, 17, 2)
    video = torch.from_numpy(dm.video.pose2d)
    np.testing.assert_array_equal(pose2d[0], video[[0, 0, 0, 1, 2]])
    np.testing.assert_array_equal(pose2d[n - 1], video[[n - 3, n - 2, n - 1, n - 1, n - 1]])
    np.testing.assert_array_equal(torch.cat([b["frame"] for b in batches]), np.arange(n))
    assert dm.prediction_info["layout"] == "coco17"

    fixed = KeypointsDataModule(str(path), width=W, height=H, receptive_field=3)
    with pytest.raises(
        ValueError, match="--data.receptive_field 3 does not match the model's receptive field 5"
    ):
        fixed.match_lifter(Lifter())


def test_undetected_joints_are_never_trusted(tmp_path, walk):
    """(0, 0) is 'not detected' (score 0), even with --data.min_score 0: filled, never lifted as is."""
    kp = walk["coco"].copy()
    kp[6, 16] = 0  # r_ankle missed in frame 6
    np.savez(tmp_path / "miss.npz", keypoints=kp, image_size=[W, H])
    for min_score in (0.0, 0.3):
        video = load_video(tmp_path / "miss.npz", min_score=min_score)
        assert video.filled[6, 3] and video.filled.sum() == 1  # H36M r_ankle is joint 3
        np.testing.assert_allclose(video.keypoints[6, 3], kp[5, 16], atol=1e-3)


def test_openpose_folder_of_two_videos_is_refused(tmp_path, walk):
    score = np.ones((2, 25))
    folder = write_openpose_dir(tmp_path / "op", walk["body25"][:2], score)
    (folder / "video_000000000001_keypoints.json").rename(folder / "other_000000000000_keypoints.json")
    with pytest.raises(
        DataFormatError, match=r"video_000000000000_keypoints.json: frame 0 again \(also other_"
    ):
        load_video(folder, width=W, height=H)
