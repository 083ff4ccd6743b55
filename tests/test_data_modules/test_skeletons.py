"""Detector layouts -> H36M-17 (data_modules.skeletons), checked on filmed real motion capture.

Known H36M-17 skeletons (the embedded DeepMimic clips, incl. crawl, roll, cartwheel, backflip)
get a face from the registry's head model and are filmed by pinhole cameras from all round at
3.5-6 m; the detector keypoints are those projections. Errors are compared in metres at the
pelvis's depth (pixels x depth / focal length).

Tolerances, per frame:

* joints a detector has (hips, knees, ankles, shoulders, elbows, wrists): exact (1e-6 px);
* pelvis and the head joints: 0.5 cm. They are affine combinations of projected points, exact
  under an affine camera; the slack is perspective, which bends them by under 0.3 cm here;
* thorax: the 3D distance between the skeleton's thorax and its shoulder midpoint (DeepMimic's
  shoulders sit 2 cm above and 2.4 cm behind its thorax: up to ~3.1 cm) + 0.5 cm;
* spine: the 3D distance between the skeleton's spine and the point the formula puts it at
  (0.485 of the way from the hip midpoint to the shoulder midpoint; a bent torso moves the real
  spine off that chord, up to ~11 cm when crawling or rolling) + 0.5 cm.

The thorax and spine bounds are what 2D keypoints cannot know; the test checks the mapping adds
nothing to them.
"""

from __future__ import annotations

import numpy as np
import pytest
from detector_fixtures import (
    DETECTOR_ORDER,
    EAR_HALF_WIDTH,
    EYE_HALF_WIDTH,
    FOCAL,
    HEAD_MODEL,
    J,
    detector_keypoints,
    filmed,
    snake,
)

from data_modules.keypoints import detect_layout_17
from data_modules.skeletons import (
    KEYPOINT_LAYOUTS,
    SPINE_FRACTION,
    head_weights,
    map_keypoints,
)
from poseshift.geometry.skeleton import JOINT_NAMES

PERSPECTIVE_SLACK = 0.005  # metres
LIMBS = ("hip", "knee", "ankle", "shoulder", "elbow", "wrist")
DIRECT = [J[n] for n in JOINT_NAMES if n.split("_")[-1] in LIMBS]


@pytest.fixture(scope="module")
def film() -> dict[str, np.ndarray]:
    return filmed(seed=0)


def _metres(px_err: np.ndarray, film: dict[str, np.ndarray]) -> np.ndarray:
    """(T, ...) pixel errors as metres at each frame's pelvis depth."""
    depth = film["h36m_cam"][:, J["pelvis"], 2]
    return px_err * depth.reshape(-1, *[1] * (px_err.ndim - 1)) / FOCAL


@pytest.mark.parametrize("layout", sorted(DETECTOR_ORDER))
def test_registry_orders_are_the_detectors_own(layout):
    assert KEYPOINT_LAYOUTS[layout].joint_names == tuple(snake(n) for n in DETECTOR_ORDER[layout])


def test_head_weights_are_the_documented_ones():
    w = head_weights()
    np.testing.assert_allclose(w["neck_nose"], [0.561, -0.585, 1.024], atol=5e-4)
    np.testing.assert_allclose(w["head_top"], [0.541, 1.522, -1.063], atol=5e-4)
    for lay in KEYPOINT_LAYOUTS.values():
        np.testing.assert_allclose(lay.weights.sum(1), 1.0, atol=1e-12)  # affine: any camera keeps them
    assert SPINE_FRACTION == pytest.approx(0.485, abs=5e-4)


def test_head_formulas_hold_for_any_orthographic_view():
    """Affine weights reproduce the head model's joints for any rotation under an affine camera."""
    rng = np.random.default_rng(1)
    pts = {k: np.array([v[0], v[1], 0.0]) for k, v in HEAD_MODEL.items()}  # (forward, up, lateral)
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    proj = (np.stack(list(pts.values())) @ q.T)[:, :2]  # drop depth: orthographic view
    view = dict(zip(pts, proj, strict=True))
    basis = np.stack([view["ear_centre"], view["eye_centre"], view["nose"]])
    for joint, w in head_weights().items():
        np.testing.assert_allclose(w @ basis, view[joint], atol=1e-12)


@pytest.mark.parametrize("layout", ["coco17", "body25", "coco18"])
def test_mapping_recovers_a_filmed_known_skeleton(film, layout):
    kp = detector_keypoints(film["h36m_px"], film["face_px"], layout)
    xy17, score17 = map_keypoints(kp, np.ones(kp.shape[:2]), layout, 0.3)
    assert xy17.shape == film["h36m_px"].shape and (score17 == 1).all()
    err = _metres(np.linalg.norm(xy17 - film["h36m_px"], axis=-1), film)

    np.testing.assert_allclose(xy17[:, DIRECT], film["h36m_px"][:, DIRECT], atol=1e-6)
    for name in ("pelvis", "neck_nose", "head_top"):
        assert err[:, J[name]].max() < PERSPECTIVE_SLACK, (name, err[:, J[name]].max())

    cam = film["h36m_cam"]
    hips = cam[:, [J["l_hip"], J["r_hip"]]].mean(1)
    shoulders = cam[:, [J["l_shoulder"], J["r_shoulder"]]].mean(1)
    thorax_gap = np.linalg.norm(cam[:, J["thorax"]] - shoulders, axis=-1)
    chord = hips + SPINE_FRACTION * (shoulders - hips)
    spine_gap = np.linalg.norm(cam[:, J["spine"]] - chord, axis=-1)
    assert (err[:, J["thorax"]] <= thorax_gap + PERSPECTIVE_SLACK).all()
    assert (err[:, J["spine"]] <= spine_gap + PERSPECTIVE_SLACK).all()
    # the bounds are the skeleton's own, and not loose: DeepMimic's 3 cm shoulder offset shows
    assert 0.02 < thorax_gap.max() < 0.04 and err[:, J["thorax"]].max() > 0.02


def test_hidden_far_ear_and_eye_use_the_visible_side(film):
    """Near profile views (ear axis within 30 degrees of the line of sight) the far ear and eye are
    not confident; the visible ones stand in. The error is their lateral offset seen at <= 30
    degrees: scale x sin 30 x (|w_ears| x ear half-width + |w_eyes| x eye half-width)."""
    kp = detector_keypoints(film["h36m_px"], film["face_px"], "coco17")
    cam = detector_keypoints(film["h36m_cam"], film["face_cam"], "coco17")
    names = KEYPOINT_LAYOUTS["coco17"].joint_names
    lat = cam[:, names.index("l_ear")] - cam[:, names.index("r_ear")]
    profile = np.abs(lat[:, 2]) / np.linalg.norm(lat, axis=-1) > np.cos(np.deg2rad(30))
    assert profile.sum() >= 10
    score = np.ones(kp.shape[:2])
    for part in ("ear", "eye"):
        left, right = names.index(f"l_{part}"), names.index(f"r_{part}")
        left_far = cam[:, left, 2] > cam[:, right, 2]
        score[profile & left_far, left] = 0.1
        score[profile & ~left_far, right] = 0.1
    xy17, score17 = map_keypoints(kp, score, "coco17", 0.3)
    assert (score17 == 1).all()  # every head joint still has confident sources
    err = _metres(np.linalg.norm(xy17 - film["h36m_px"], axis=-1), film)[profile]
    # the fixture scales the model head to the skeleton's neck_nose-head_top distance
    j9 = film["h36m_cam"][:, J["neck_nose"]]
    j10 = film["h36m_cam"][:, J["head_top"]]
    model = np.subtract(HEAD_MODEL["head_top"], HEAD_MODEL["neck_nose"])
    scale = (np.linalg.norm(j10 - j9, axis=-1) / np.linalg.norm(model))[profile]
    for joint, (w_ear, w_eye, _) in head_weights().items():
        bound = scale * 0.5 * (abs(w_ear) * EAR_HALF_WIDTH + abs(w_eye) * EYE_HALF_WIDTH) + PERSPECTIVE_SLACK
        assert (err[:, J[joint]] <= bound).all(), joint
    # with both sides hidden the head joints are not confident at all
    score[:, names.index("l_ear")] = score[:, names.index("r_ear")] = 0.1
    _, score17 = map_keypoints(kp, score, "coco17", 0.3)
    assert (score17[:, [J["neck_nose"], J["head_top"]]] == 0.1).all()
    assert (score17[:, DIRECT] == 1).all()


def test_seventeen_joints_are_told_apart_by_their_geometry(film):
    ok = np.ones(film["h36m_px"].shape[:2], bool)
    coco = detector_keypoints(film["h36m_px"], film["face_px"], "coco17")
    assert detect_layout_17(coco, ok)[0] == "coco17"
    assert detect_layout_17(film["h36m_px"], ok)[0] == "h36m17"
    # joints 0-4 spread 0.40 of the pose: neither a face nor legs
    blob = np.random.default_rng(0).normal(size=(20, 17, 2))
    blob[:, 5:] *= 2.8
    name, ratio = detect_layout_17(blob, ok[:20])
    assert name is None, ratio
