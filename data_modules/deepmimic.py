"""Real motion capture that ships inside the pybullet wheel: the 15 DeepMimic humanoid clips.

The clips live in ``pybullet_data/data/motions/humanoid3d_<name>.txt`` (``pip install
pybullet==3.2.7``; only the files are read, the physics engine is never started). Each file is
JSON, ``{"Loop": ..., "Frames": [[44 numbers], ...]}``; one keyframe holds

==========================  ===================================================================
columns                     content
==========================  ===================================================================
0                           duration of this keyframe in seconds (time to the next one)
1-3                         root position, metres, world y-up
4-7                         root rotation quaternion (w, x, y, z), world frame
8 chest, 12 neck,           quaternions (w, x, y, z) local to the parent, starting at the
16 r_hip, 21 r_ankle,       given column
25 r_shoulder, 30 l_hip,
35 l_ankle, 39 l_shoulder
20 r_knee, 29 r_elbow,      one angle (radians) about the joint's local z axis
34 l_knee, 43 l_elbow
==========================  ===================================================================

:func:`load_clip` normalizes the quaternions (some have norm 0.58), resamples to a fixed
rate (slerp for rotations, linear for the root and the hinge angles, as DeepMimic's own
``HumanoidPoseInterpolator`` does), runs forward kinematics over all frames at once and
returns the 17 H36M joints in a z-up world, metres.

Kinematic model (``pybullet_data/humanoid/humanoid.urdf`` loaded with ``globalScaling=0.25``,
so every offset below is the URDF value x 0.25). Rest frame: +x forward, +y up, +z the
character's right; every URDF joint has ``rpy = 0``, so link frames equal joint frames:

* root -> chest (0, 0.236151, 0); chest -> neck (0, 0.223894, 0)
* root -> hips (0, 0, +-0.084887) (+z = right); thigh (0, -0.421546, 0); shin (0, -0.409870, 0)
* chest -> shoulders (-0.02405, 0.2435, +-0.18311); upper arm (0, -0.274788, 0);
  forearm (0, -0.258947, 0)

Joint mapping to H36M-17 and its approximations:

* pelvis, hips, knees, ankles, shoulders, elbows, wrists = the DeepMimic joints of the same
  name. These are joint centres of a coarse physics model, not marker-derived H36M joints.
* spine = the chest joint (0.236 m above the pelvis; H36M ~0.233 m).
* thorax = the neck joint. It sits 0.46 m above the pelvis at about shoulder height
  (shoulders are 0.02 m higher and 0.024 m behind), where H36M's thorax is.
* neck_nose and head_top: the model's head is one rigid sphere, so both are fixed points in
  the neck frame, (0.05, 0.11, 0) and (0.01, 0.225, 0), giving bones of 0.121 m and 0.122 m,
  close to H36M's (~0.12 m each). The face therefore never moves relative to the neck.
* Proportions differ from H36M (approximate H36M averages in brackets, metres): hip width 0.17
  [0.27], thigh 0.42 [0.44], shin 0.41 [0.45], spine -> thorax 0.22 [0.26], thorax -> shoulder
  0.19 [0.15] (shoulder width 0.37 [~0.30]), upper arm 0.27 [0.28], forearm 0.26 [0.25]; the
  standing height to head_top is ~1.56 m. All clips share this one body (one "subject"), so
  a model trained here has never seen another body shape.
* No toes or heels: the ankle joint sits ~5 cm above the sole, so a flat foot has its ankle at
  z ~ 0.05 m. Feet sink into the floor in places (reported 3-7 cm for punch, roll, run and
  dance_b; the lowest ankle here is 0.4 cm above the floor, in run); run has a one-keyframe
  glitch at 0.36-0.38 s (left wrist jumps, ~9 m/s relative to the pelvis); looping clips do
  not close cleanly (do not tile cycles without blending). None of this is corrected here.

World conversion: DeepMimic is y-up with the character starting along +x; poseshift uses a
z-up world like H36M's. ``(X, Y, Z) = (x, -z, y)`` is a proper rotation (determinant +1) that
keeps +x forward and maps up to +Z; the character's right (+z) becomes -Y, so its left is
+Y = up x forward. The floor is Z = 0.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from data_modules.schema import DataFormatError
from poseshift.geometry.rotations import axis_angle_to_matrix, quaternion_slerp, quaternion_to_matrix
from poseshift.geometry.skeleton import JOINT_NAMES

# The 15 humanoid clips; the five ``motions/walker/*`` files (near copies of walk, origin
# undocumented) and ``laikago_walk`` (a quadruped) are deliberately not listed.
CLIP_NAMES: tuple[str, ...] = (
    "backflip",
    "cartwheel",
    "crawl",
    "dance_a",
    "dance_b",
    "getup_facedown",
    "getup_faceup",
    "jump",
    "kick",
    "punch",
    "roll",
    "run",
    "spin",
    "spinkick",
    "walk",
)

FRAME_WIDTH = 44
# First column of each quaternion (w, x, y, z) in a keyframe: root, then the local ones.
_QUAT_COLUMNS = {
    "root": 4,
    "chest": 8,
    "neck": 12,
    "r_hip": 16,
    "r_ankle": 21,
    "r_shoulder": 25,
    "l_hip": 30,
    "l_ankle": 35,
    "l_shoulder": 39,
}
_HINGE_COLUMNS = {"r_knee": 20, "r_elbow": 29, "l_knee": 34, "l_elbow": 43}

_SCALE = 0.25  # DeepMimic loads humanoid.urdf with globalScaling=0.25
# URDF joint origins (unscaled), rest frame y-up, +z = right.
_CHEST = np.array([0.0, 0.944604, 0.0]) * _SCALE
_NECK = np.array([0.0, 0.895576, 0.0]) * _SCALE
_HIP_R = np.array([0.0, 0.0, 0.339548]) * _SCALE
_THIGH = np.array([0.0, -1.686184, 0.0]) * _SCALE
_SHIN = np.array([0.0, -1.639480, 0.0]) * _SCALE
_SHOULDER_R = np.array([-0.096200, 0.974000, 0.732440]) * _SCALE
_UPPER_ARM = np.array([0.0, -1.099152, 0.0]) * _SCALE
_FOREARM = np.array([0.0, -1.035788, 0.0]) * _SCALE
_MIRROR_Z = np.array([1.0, 1.0, -1.0])
# Fixed points in the neck frame (metres, not in the URDF): see the module docstring.
_NOSE = np.array([0.05, 0.11, 0.0])
_HEAD_TOP = np.array([0.01, 0.225, 0.0])

# y-up DeepMimic (x fwd, y up, z right) -> z-up world: X = x, Y = -z, Z = y.
Y_UP_TO_Z_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])

INSTALL_HINT = "pip install pybullet==3.2.7 (a poseshift dependency: pip install -e . also installs it)"


def data_dir() -> Path:
    """The ``pybullet_data`` folder, or an ImportError saying how to install it."""
    try:
        import pybullet_data
    except ImportError as err:
        raise ImportError(
            "the embedded mocap clips come from the pybullet wheel, which is not installed; "
            f"install it with: {INSTALL_HINT}"
        ) from err
    return Path(pybullet_data.getDataPath())


def clip_path(name: str) -> Path:
    """Path of the clip file ``humanoid3d_<name>.txt``."""
    if name not in CLIP_NAMES:
        raise KeyError(f"unknown DeepMimic clip {name!r}; known clips: {', '.join(CLIP_NAMES)}")
    path = data_dir() / "data" / "motions" / f"humanoid3d_{name}.txt"
    if not path.is_file():
        raise FileNotFoundError(f"DeepMimic clip {name!r} not found at {path}; reinstall: {INSTALL_HINT}")
    return path


def parse_clip(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read a DeepMimic clip file into (times (K,), keyframes (K, 44)) with unit quaternions.

    ``times`` are the keyframe start times in seconds (cumulated durations). Every problem is
    reported as :class:`DataFormatError` naming the file (and the keyframe where it applies).
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataFormatError(f"{path}: not a readable DeepMimic JSON clip ({err})") from err
    if not isinstance(data, dict) or not isinstance(data.get("Frames"), list):
        raise DataFormatError(f"{path}: expected a JSON object with a 'Frames' list of keyframes")
    rows = data["Frames"]
    if len(rows) < 2:
        raise DataFormatError(f"{path}: needs at least 2 keyframes, found {len(rows)}")
    for i, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != FRAME_WIDTH:
            got = len(row) if isinstance(row, list) else type(row).__name__
            raise DataFormatError(f"{path}: keyframe {i} must be a list of {FRAME_WIDTH} numbers, got {got}")
    try:
        frames = np.asarray(rows, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise DataFormatError(f"{path}: keyframes must contain only numbers ({err})") from err
    if not np.isfinite(frames).all():
        i = int(np.argwhere(~np.isfinite(frames))[0, 0])
        raise DataFormatError(f"{path}: keyframe {i} contains NaN or inf")
    durations = frames[:-1, 0]  # the last keyframe's duration is unused (often 0)
    if (durations < 0).any() or durations.sum() <= 0:
        raise DataFormatError(f"{path}: keyframe durations (column 0) must be >= 0 with a positive total")
    for joint, col in _QUAT_COLUMNS.items():
        norms = np.linalg.norm(frames[:, col : col + 4], axis=1)
        if (norms < 0.1).any():  # DeepMimic files have norms down to 0.58; ~0 is corrupt
            i = int(np.argmax(norms < 0.1))
            raise DataFormatError(f"{path}: keyframe {i}: {joint} quaternion has norm {norms[i]:.3g}")
        frames[:, col : col + 4] /= norms[:, None]
    times = np.concatenate([[0.0], np.cumsum(durations)])
    return times, frames


def resample(times: np.ndarray, frames: np.ndarray, fps: float) -> np.ndarray:
    """Keyframes (K, 44) at ``times`` to (T, 44) at a fixed rate, column 0 set to 1/fps.

    Quaternions use slerp, the root and the hinge angles linear interpolation. The sample
    grid starts at the first keyframe and ends at the last (within a thousandth of a frame:
    keyframe durations in the files are rounded, e.g. 0.033332 s).
    """
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    count = int(np.floor(times[-1] * fps + 1e-3)) + 1
    t = np.minimum(np.arange(count) / fps, times[-1])
    k = np.clip(np.searchsorted(times, t, side="right") - 1, 0, len(times) - 2)
    span = times[k + 1] - times[k]
    frac = np.where(span > 0, (t - times[k]) / np.where(span > 0, span, 1.0), 0.0).clip(0, 1)
    a, b = frames[k], frames[k + 1]
    out = a + frac[:, None] * (b - a)  # linear everywhere, then quaternions replaced
    cols = np.array(list(_QUAT_COLUMNS.values()))
    quat_idx = cols[:, None] + np.arange(4)  # (9, 4)
    qa = torch.from_numpy(a[:, quat_idx])
    qb = torch.from_numpy(b[:, quat_idx])
    tt = torch.from_numpy(frac)[:, None].expand(-1, len(cols))
    out[:, quat_idx] = quaternion_slerp(qa, qb, tt).numpy()
    out[:, 0] = 1.0 / fps
    return out


def forward_kinematics(frames: np.ndarray) -> np.ndarray:
    """Keyframes (T, 44) to the 17 H36M joints (T, 17, 3), DeepMimic y-up world, metres."""
    f = torch.from_numpy(np.ascontiguousarray(frames, dtype=np.float64))

    def rot(joint: str) -> torch.Tensor:
        col = _QUAT_COLUMNS[joint]
        return quaternion_to_matrix(f[:, col : col + 4])

    def hinge(joint: str) -> torch.Tensor:
        angle = f[:, _HINGE_COLUMNS[joint]]
        return axis_angle_to_matrix(torch.stack([torch.zeros_like(angle)] * 2 + [angle], -1))

    def offset(r: torch.Tensor, v: np.ndarray) -> torch.Tensor:
        return r @ torch.from_numpy(v)  # (T, 3, 3) @ (3,) -> (T, 3)

    root_p, root_r = f[:, 1:4], rot("root")
    chest_p = root_p + offset(root_r, _CHEST)
    chest_r = root_r @ rot("chest")
    neck_p = chest_p + offset(chest_r, _NECK)
    neck_r = chest_r @ rot("neck")
    joints: dict[str, torch.Tensor] = {
        "pelvis": root_p,
        "spine": chest_p,
        "thorax": neck_p,
        "neck_nose": neck_p + offset(neck_r, _NOSE),
        "head_top": neck_p + offset(neck_r, _HEAD_TOP),
    }
    for side, mirror in (("r", np.ones(3)), ("l", _MIRROR_Z)):
        hip_p = root_p + offset(root_r, _HIP_R * mirror)
        thigh_r = root_r @ rot(f"{side}_hip")
        knee_p = hip_p + offset(thigh_r, _THIGH)
        shin_r = thigh_r @ hinge(f"{side}_knee")
        joints[f"{side}_hip"], joints[f"{side}_knee"] = hip_p, knee_p
        joints[f"{side}_ankle"] = knee_p + offset(shin_r, _SHIN)
        sh_p = chest_p + offset(chest_r, _SHOULDER_R * mirror)
        upper_r = chest_r @ rot(f"{side}_shoulder")
        elbow_p = sh_p + offset(upper_r, _UPPER_ARM)
        fore_r = upper_r @ hinge(f"{side}_elbow")
        joints[f"{side}_shoulder"], joints[f"{side}_elbow"] = sh_p, elbow_p
        joints[f"{side}_wrist"] = elbow_p + offset(fore_r, _FOREARM)
    return torch.stack([joints[n] for n in JOINT_NAMES], dim=1).numpy()


def load_clip(name: str, fps: float = 50.0) -> np.ndarray:
    """The clip ``name`` as (T, 17, 3) H36M joints in a z-up world, metres, at ``fps``."""
    times, frames = parse_clip(clip_path(name))
    return clip_to_world(times, frames, fps)


def clip_to_world(times: np.ndarray, frames: np.ndarray, fps: float = 50.0) -> np.ndarray:
    """Parsed keyframes to (T, 17, 3) z-up world joints: resample, then forward kinematics."""
    y_up = forward_kinematics(resample(times, frames, fps))
    return (y_up @ Y_UP_TO_Z_UP.T).astype(np.float64)
