"""Detector-style keypoints made from known H36M-17 skeletons, and files in each detector format.

The skeletons are the embedded real motion capture (``data_modules.deepmimic``). A face (nose,
eyes, ears) is attached to each head with the sagittal head model of ``data_modules.skeletons``
(``HEAD_MODEL``), fitted per frame to the skeleton's own neck_nose and head_top: the model's two
head joints are mapped onto the skeleton's by a similarity in the head's mid-plane, whose lateral
axis is the shoulder line. Joints are then filmed by a pinhole camera at a random yaw and elevation.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from data_modules.deepmimic import load_clip
from data_modules.skeletons import HEAD_MODEL
from poseshift.geometry.skeleton import JOINT_NAMES

FOCAL = 1145.0
IMAGE = (1000.0, 1000.0)
# half the distance between the ears and between the eyes, metres (adult averages)
EAR_HALF_WIDTH = 0.075
EYE_HALF_WIDTH = 0.032
FACE = ("nose", "l_eye", "r_eye", "l_ear", "r_ear")

J = {n: i for i, n in enumerate(JOINT_NAMES)}


ALL_ROUND = ("walk", "crawl", "cartwheel", "roll", "kick", "backflip")


def known_poses(clips: tuple[str, ...] = ALL_ROUND, fps: float = 10.0) -> np.ndarray:
    """(T, 17, 3) H36M-17 joints of real motion, z-up world, metres."""
    return np.concatenate([load_clip(c, fps=fps) for c in clips])


def attach_face(pose: np.ndarray) -> np.ndarray:
    """(T, 5, 3) nose, l_eye, r_eye, l_ear, r_ear fitted to each pose's neck_nose and head_top."""
    j9, j10 = pose[:, J["neck_nose"]], pose[:, J["head_top"]]
    d = j10 - j9
    left = pose[:, J["l_shoulder"]] - pose[:, J["r_shoulder"]]
    left -= (left * d).sum(-1, keepdims=True) / (d * d).sum(-1, keepdims=True) * d
    left /= np.linalg.norm(left, axis=-1, keepdims=True)
    fwd = np.cross(left, d)  # same length as d, perpendicular to it, towards the face
    m9, m10 = np.array(HEAD_MODEL["neck_nose"]), np.array(HEAD_MODEL["head_top"])
    m = m10 - m9
    n = np.array([m[1], -m[0]])  # the model's in-plane perpendicular pointing forward
    scale = np.linalg.norm(d, axis=-1, keepdims=True) / np.linalg.norm(m)

    def place(name: str, lateral: float) -> np.ndarray:
        a, b = np.linalg.solve(np.stack([m, n], 1), np.array(HEAD_MODEL[name]) - m9)
        return j9 + a * d + b * fwd + lateral * scale * left

    return np.stack(
        [
            place("nose", 0.0),
            place("eye_centre", EYE_HALF_WIDTH),
            place("eye_centre", -EYE_HALF_WIDTH),
            place("ear_centre", EAR_HALF_WIDTH),
            place("ear_centre", -EAR_HALF_WIDTH),
        ],
        axis=1,
    )


def camera_frame(points: np.ndarray, pelvis: np.ndarray, seed: int, video: bool = False) -> np.ndarray:
    """z-up world points (T, K, 3) into cameras (x right, y down, z forward) 3.5-6 m from the pelvis.

    Each frame gets its own random yaw (all round) and elevation (-10 to 40 degrees); a ``video``
    has one such camera, aimed at the mean pelvis, for all frames.
    """
    rng = np.random.default_rng(seed)
    t = len(points)
    draws = 1 if video else t
    yaw = rng.uniform(-np.pi, np.pi, draws)
    elev = np.deg2rad(rng.uniform(-10, 40, draws))
    dist = rng.uniform(3.5, 6.0, draws)
    if video:
        pelvis = np.broadcast_to(pelvis.mean(0), pelvis.shape)
    # viewing direction from the camera to the subject, then a right-handed camera basis
    view = np.stack([np.cos(elev) * np.cos(yaw), np.cos(elev) * np.sin(yaw), -np.sin(elev)], -1)
    right = np.cross(view, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right, axis=-1, keepdims=True)
    down = np.cross(view, right)
    rot = np.stack([right, down, view], axis=1)  # rows: camera axes in world coordinates
    centre = pelvis - dist[:, None] * view
    return np.einsum("tij,tkj->tki", rot, points - centre[:, None])


def project(cam: np.ndarray) -> np.ndarray:
    """Pinhole projection to pixels of an IMAGE-sized frame."""
    return FOCAL * cam[..., :2] / cam[..., 2:3] + np.array(IMAGE) / 2


def filmed(
    seed: int = 0, video: bool = False, clips: tuple[str, ...] = ALL_ROUND, fps: float = 10.0
) -> dict[str, np.ndarray]:
    """Known poses with faces filmed by random cameras: camera-frame H36M joints and face, pixels."""
    pose = known_poses(clips, fps)
    face = attach_face(pose)
    cam = camera_frame(np.concatenate([pose, face], 1), pose[:, J["pelvis"]], seed, video)
    px = project(cam)
    return {"h36m_cam": cam[:, :17], "face_cam": cam[:, 17:], "h36m_px": px[:, :17], "face_px": px[:, 17:]}


# The detectors' own joint orders, spelled as their documentation spells them (COCO's
# person_keypoints categories; OpenPose's output format page), written out here independently
# of data_modules.skeletons so that a wrong order in the registry fails the tests.
DETECTOR_ORDER: dict[str, tuple[str, ...]] = {
    "coco17": (
        "nose",
        "left_eye",
        "right_eye",
        "left_ear",
        "right_ear",
        "left_shoulder",
        "right_shoulder",
        "left_elbow",
        "right_elbow",
        "left_wrist",
        "right_wrist",
        "left_hip",
        "right_hip",
        "left_knee",
        "right_knee",
        "left_ankle",
        "right_ankle",
    ),  # fmt: skip
    "body25": (
        "Nose",
        "Neck",
        "RShoulder",
        "RElbow",
        "RWrist",
        "LShoulder",
        "LElbow",
        "LWrist",
        "MidHip",
        "RHip",
        "RKnee",
        "RAnkle",
        "LHip",
        "LKnee",
        "LAnkle",
        "REye",
        "LEye",
        "REar",
        "LEar",
        "LBigToe",
        "LSmallToe",
        "LHeel",
        "RBigToe",
        "RSmallToe",
        "RHeel",
    ),  # fmt: skip
    "coco18": (
        "Nose",
        "Neck",
        "RShoulder",
        "RElbow",
        "RWrist",
        "LShoulder",
        "LElbow",
        "LWrist",
        "RHip",
        "RKnee",
        "RAnkle",
        "LHip",
        "LKnee",
        "LAnkle",
        "REye",
        "LEye",
        "REar",
        "LEar",
    ),  # fmt: skip
}


def snake(name: str) -> str:
    """A detector's joint name in poseshift's spelling: left_hip / LHip -> l_hip, MidHip -> mid_hip."""
    name = re.sub(r"^(left|right)_", lambda m: m.group(1)[0] + "_", name)  # COCO
    name = re.sub(r"^([LR])(?=[A-Z])", lambda m: m.group(1).lower() + "_", name)  # OpenPose's side
    return re.sub(r"(?<=[a-z])([A-Z])", r"_\1", name).lower()


def detector_keypoints(h36m: np.ndarray, face: np.ndarray, layout: str) -> np.ndarray:
    """(T, K, D) keypoints in the detector's own order from H36M joints and the face (any D)."""
    names = [snake(n) for n in DETECTOR_ORDER[layout]]
    out = np.zeros(h36m.shape[:1] + (len(names),) + h36m.shape[2:])
    for k, name in enumerate(names):
        if name in FACE:
            out[:, k] = face[:, FACE.index(name)]
        elif name in J:
            out[:, k] = h36m[:, J[name]]
        elif name == "neck":  # OpenPose's neck: the shoulder midpoint
            out[:, k] = h36m[:, [J["l_shoulder"], J["r_shoulder"]]].mean(1)
        elif name == "mid_hip":
            out[:, k] = h36m[:, [J["l_hip"], J["r_hip"]]].mean(1)
        else:  # feet: a little below the ankle
            side = "l" if name.startswith("l_") else "r"
            out[:, k] = h36m[:, J[f"{side}_ankle"]] + np.array([0.0, 10.0])[: h36m.shape[-1]]
    return out


# -- files in each format -------------------------------------------------------------------------
def write_coco_results(
    path: Path,
    xy: np.ndarray,
    score: np.ndarray,
    frames: np.ndarray | None = None,
    extra: list[dict] | None = None,
) -> Path:
    """A COCO results list: one record per frame (plus ``extra`` records), flat [x, y, s] triplets."""
    frames = np.arange(len(xy)) if frames is None else frames
    records = [
        {
            "image_id": int(f),
            "category_id": 1,
            "keypoints": np.concatenate([p, s[:, None]], 1).round(3).ravel().tolist(),
            "score": float(s.mean()),
        }
        for f, p, s in zip(frames, xy, score, strict=True)
    ]
    path.write_text(json.dumps(records + (extra or [])))
    return path


def write_openpose_dir(
    folder: Path, xy: np.ndarray, score: np.ndarray, people: dict[int, list] | None = None
) -> Path:
    """An OpenPose output folder: one ``video_<12 digits>_keypoints.json`` per frame."""
    folder.mkdir(parents=True, exist_ok=True)
    for f, (p, s) in enumerate(zip(xy, score, strict=True)):
        person = {
            "person_id": [-1],
            "pose_keypoints_2d": np.concatenate([p, s[:, None]], 1).round(3).ravel().tolist(),
        }
        listed = people.get(f, [person]) if people is not None else [person]
        (folder / f"video_{f:012d}_keypoints.json").write_text(json.dumps({"version": 1.3, "people": listed}))
    return folder
