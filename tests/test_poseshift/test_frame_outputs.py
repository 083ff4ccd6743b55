"""Per-frame outputs of predict (poseshift.frame_outputs, poseshift.render) and the installed ``poseshift``
on a detector's video, end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest
from clitools import run_script
from detector_fixtures import IMAGE, detector_keypoints, filmed, write_coco_results
from PIL import Image

from poseshift.frame_outputs import parse_frame_range, write_frames_json
from poseshift.render import render_poses

TEMPORAL = """
seed_everything: 0
trainer:
  max_epochs: 2
  accelerator: cpu
  devices: 1
  default_root_dir: {root}
  enable_progress_bar: false
  enable_model_summary: false
  logger:
    - class_path: pytorch_lightning.loggers.CSVLogger
      init_args:
        save_dir: {root}
        name: csv
model:
  class_path: poseshift.methods.Baseline
  init_args:
    backbone: videopose
    backbone_kwargs: {{filter_widths: [3], channels: 32}}
    lr: 0.01
data:
  class_path: helpers.SyntheticDataModule
  init_args:
    num_train: 128
    num_test: 33
    batch_size: 32
    receptive_field: 3
"""


@pytest.fixture(scope="module")
def walk() -> dict[str, np.ndarray]:
    d = filmed(seed=5, video=True, clips=("walk",), fps=25.0)
    d["coco"] = detector_keypoints(d["h36m_px"], d["face_px"], "coco17")
    return d


def _poses(n: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    kp = rng.uniform(300, 700, size=(n, 17, 2))
    pose = rng.normal(scale=0.3, size=(n, 17, 3))
    pose[:, 0] = 0
    return kp, pose


def test_png_and_gif_renders_have_the_documented_size(tmp_path):
    kp, pose = _poses(6)
    frames = np.arange(10, 16)
    filled = np.zeros((6, 17), bool)
    filled[2, 10] = True
    size = np.tile([1000.0, 800.0], (6, 1))
    (one,) = render_poses(tmp_path / "one.png", kp[:1], pose[:1], frames[:1], size[:1])
    assert one == tmp_path / "one.png"
    with Image.open(one) as im:
        assert im.size == (1000, 500)
        pixels = np.asarray(im.convert("L"))
    assert pixels.std() > 10  # something was drawn, not a blank canvas
    several = render_poses(tmp_path / "f.png", kp[:3], pose[:3], frames[:3], size[:3], filled[:3])
    assert [p.name for p in several] == ["f_000010.png", "f_000011.png", "f_000012.png"]
    (gif,) = render_poses(tmp_path / "a.gif", kp, pose, frames, None, filled, fps=10)
    with Image.open(gif) as im:
        assert im.size == (800, 400) and im.n_frames == 6
        assert im.info["duration"] == 100
    with pytest.raises(ValueError, match="renders are .png or .gif files"):
        render_poses(tmp_path / "a.mp4", kp, pose, frames)


def test_frame_ranges():
    assert parse_frame_range("10:20") == (10, 20)
    assert parse_frame_range("7") == (7, 8)
    assert parse_frame_range(":5") == (0, 5)
    assert parse_frame_range(None) is None
    for bad in ("5:2", "a:b", "1:2:3"):
        with pytest.raises(ValueError, match=f"--render_frames '{bad}'"):
            parse_frame_range(bad)


def test_frames_json(tmp_path):
    kp, pose = _poses(3)
    filled = np.zeros((3, 17), bool)
    filled[1, 9] = True
    extras = {"frame": np.array([4, 5, 7]), "keypoints": kp, "score": np.full((3, 17), 0.5), "filled": filled}
    path = write_frames_json(
        tmp_path / "o.json", pose, extras, {"source": "v.json", "frames_without_person": [6]}
    )
    data = json.loads(path.read_text())
    assert data["source"] == "v.json" and data["frames_without_person"] == [6]
    assert data["joint_names"][9] == "neck_nose"
    assert [f["frame"] for f in data["frames"]] == [4, 5, 7]
    assert data["frames"][1]["filled"] == ["neck_nose"] and data["frames"][0]["filled"] == []
    np.testing.assert_allclose(data["frames"][2]["pose3d"], pose[2], atol=1e-5)
    np.testing.assert_allclose(data["frames"][2]["keypoints2d"], kp[2], atol=1e-3)


@pytest.mark.slow
def test_installed_poseshift_lifts_a_coco_json_video_with_a_temporal_lifter(tmp_path, walk):
    config = tmp_path / "tiny.yaml"
    config.write_text(TEMPORAL.format(root=tmp_path / "run"))
    fit = run_script("fit", "--config", str(config), cwd=tmp_path)
    assert fit.returncode == 0, fit.stderr[-3000:]
    ckpt = sorted((tmp_path / "run").rglob("last.ckpt"))[0]

    n = len(walk["coco"])
    score = np.full((n, 17), 0.9)
    score[4, 13] = 0.1  # l_knee unsure in frame 4: filled from frame 3
    coco = write_coco_results(tmp_path / "video.json", walk["coco"], score)
    records = json.loads(coco.read_text())
    del records[6]  # frame 6: the detector found nobody, so a results file has no record of it
    coco.write_text(json.dumps(records))

    out = tmp_path / "out"
    common = ["--config", str(config), "--ckpt_path", str(ckpt), "--data", "data_modules.KeypointsDataModule"]
    pred = run_script(
        "predict",
        *common,
        "--data.path",
        str(coco),
        "--data.width",
        str(IMAGE[0]),
        "--data.height",
        str(IMAGE[1]),
        "--predict_output",
        str(out / "lifted.npz"),
        "--predict_json",
        str(out / "lifted.json"),
        "--predict_render",
        str(out / "lifted.gif"),
        "--render_frames",
        "2:9",
        cwd=tmp_path,
    )
    assert pred.returncode == 0, pred.stderr[-3000:]
    assert "layout coco17 (detected: 17 joints" in pred.stdout
    assert "1 joints in 1 of" in pred.stdout and "most: l_knee" in pred.stdout
    assert "temporal windows of 3 frames" in pred.stdout
    assert f"frames without a person: 1 of {n} (6), not lifted" in pred.stdout
    assert f"wrote {n - 1} poses to {out / 'lifted.npz'}" in pred.stdout
    assert "rendered frames 2-8 (6 of" in pred.stdout

    lifted = np.load(out / "lifted.npz")
    assert lifted["pose3d"].shape == (n - 1, 17, 3) and np.isfinite(lifted["pose3d"]).all()
    np.testing.assert_array_equal(lifted["frame"], [f for f in range(n) if f != 6])
    np.testing.assert_array_equal(lifted["pose3d"][:, 0], 0)
    frames = json.loads((out / "lifted.json").read_text())
    assert frames["layout"] == "coco17" and len(frames["frames"]) == n - 1
    assert frames["frames_without_person"] == [6]
    assert frames["frames"][4]["filled"] == ["l_knee"]
    np.testing.assert_allclose(frames["frames"][5]["pose3d"], lifted["pose3d"][5], atol=1e-5)
    with Image.open(out / "lifted.gif") as im:
        assert im.size == (800, 400) and im.n_frames == 6

    # garbage in: a confident keypoint far outside the image stops the run with one clear message
    bad = walk["coco"].copy()
    bad[3, 9] = [4000.0, 10.0]
    write_coco_results(tmp_path / "bad.json", bad, np.full((n, 17), 0.9))
    refused = run_script(
        "predict",
        *common,
        "--data.path",
        str(tmp_path / "bad.json"),
        "--data.width",
        "1000",
        "--data.height",
        "1000",
        "--predict_output",
        str(out / "bad.npz"),
        cwd=tmp_path,
    )
    assert refused.returncode != 0
    assert (
        "bad.json: frame 3, joint l_wrist: keypoint (4000.0, 10.0) with score 0.90 lies outside"
        in refused.stderr
    )
    assert not (out / "bad.npz").exists()
