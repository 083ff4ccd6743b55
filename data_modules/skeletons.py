"""Registry of the joint layouts found in dataset files, and their maps to H36M-17.

Everything in poseshift runs on the canonical 17-joint H36M skeleton
(``poseshift.geometry.skeleton.H36M17``). Dataset files come in other layouts
(DATA_FORMATS.md sections 1, 4.1, 4.3, 5.2, 6.1); each is registered here once, with
``to_h36m17[j]`` = the file's index of canonical joint ``j``, or ``None`` when the layout
has no such joint.

Missing joints. Only one canonical joint is ever missing: ``neck_nose`` (index 9), absent
from the 16-joint PoseAug/AdaptPose layout, the Stacked-Hourglass layout and SMPL-24. The
models need a value there, so :func:`to_h36m17` fills it with the midpoint of thorax (8)
and head_top (10) -- an *interpolated* joint, not a measurement. Sets built from such
files record ``meta["missing_joints"] = (9,)``, and their test sets are evaluated on the
``all16`` joint set (every joint but 9), never on ``all``; the joint-set name is part of
the test-set name (see :func:`eval_joint_set`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from poseshift.geometry.skeleton import EVAL_JOINT_SETS, JOINT_NAMES, NECK_NOSE, NUM_JOINTS

THORAX = JOINT_NAMES.index("thorax")
HEAD_TOP = JOINT_NAMES.index("head_top")


@dataclass(frozen=True)
class Layout:
    """A joint order found in files: its own joint names and the map to H36M-17.

    Args:
        name: registry name.
        joint_names: the layout's joint names, in file order.
        to_h36m17: for each H36M-17 joint, the file's index of it (``None`` when missing).
        note: where the layout is found.
    """

    name: str
    joint_names: tuple[str, ...]
    to_h36m17: tuple[int | None, ...]
    note: str = ""

    def __post_init__(self) -> None:
        if len(self.to_h36m17) != NUM_JOINTS:
            raise ValueError(f"layout {self.name}: to_h36m17 needs {NUM_JOINTS} entries")
        bad = [i for i in self.to_h36m17 if i is not None and not 0 <= i < len(self.joint_names)]
        if bad:
            raise ValueError(f"layout {self.name}: indices {bad} outside its {len(self.joint_names)} joints")
        if any(i is None for j, i in enumerate(self.to_h36m17) if j != NECK_NOSE):
            raise ValueError(f"layout {self.name}: only neck_nose may be missing")

    @property
    def num_joints(self) -> int:
        return len(self.joint_names)

    @property
    def missing(self) -> tuple[int, ...]:
        """Canonical joints this layout lacks (filled by interpolation in :func:`to_h36m17`)."""
        return tuple(j for j, i in enumerate(self.to_h36m17) if i is None)


def _reorder(base: tuple[int | None, ...], file_order: list[int]) -> tuple[int | None, ...]:
    """Compose a 16-joint map with a reorder ``h36m16[k] = file[file_order[k]]``."""
    return tuple(None if i is None else file_order[i] for i in base)


_H36M16_NAMES = tuple(n for n in JOINT_NAMES if n != "neck_nose")
_TO17_FROM_16: tuple[int | None, ...] = (0, 1, 2, 3, 4, 5, 6, 7, 8, None, 9, 10, 11, 12, 13, 14, 15)
# AdaptPose's stored orders (DATA_FORMATS.md 4.6, 5.3): the loaders apply this reorder to reach H36M-16.
_ADAPTPOSE_REORDER = [0, 4, 5, 6, 1, 2, 3, 7, 8, 9, 13, 14, 15, 10, 11, 12]
_LEGSWAP_REORDER = [0, 4, 5, 6, 1, 2, 3, 7, 8, 9, 10, 11, 12, 13, 14, 15]

_H36M32_USED = {
    0: "pelvis",
    1: "r_hip",
    2: "r_knee",
    3: "r_ankle",
    6: "l_hip",
    7: "l_knee",
    8: "l_ankle",
    12: "spine",
    13: "thorax",
    14: "neck_nose",
    15: "head_top",
    17: "l_shoulder",
    18: "l_elbow",
    19: "l_wrist",
    25: "r_shoulder",
    26: "r_elbow",
    27: "r_wrist",
}

LAYOUTS: dict[str, Layout] = {
    lay.name: lay
    for lay in (
        Layout("h36m17", JOINT_NAMES, tuple(range(NUM_JOINTS)), "VideoPose3D/EvoSkeleton H36M-17"),
        Layout("h36m16", _H36M16_NAMES, _TO17_FROM_16, "PoseAug/AdaptPose: H36M-17 without neck_nose"),
        Layout(
            "h36m32",
            tuple(_H36M32_USED.get(i, f"unused{i}") for i in range(32)),
            (0, 1, 2, 3, 6, 7, 8, 12, 13, 14, 15, 17, 18, 19, 25, 26, 27),
            "raw H36M mocap (data_3d_h36m.npz)",
        ),
        Layout(
            "sh16",
            (
                "r_ankle",
                "r_knee",
                "r_hip",
                "l_hip",
                "l_knee",
                "l_ankle",
                "pelvis",
                "spine",
                "thorax",
                "head_top",
                "r_wrist",
                "r_elbow",
                "r_shoulder",
                "l_shoulder",
                "l_elbow",
                "l_wrist",
            ),
            (6, 2, 1, 0, 3, 4, 5, 7, 8, None, 9, 13, 14, 15, 12, 11, 10),
            "Stacked Hourglass / MPII order",
        ),
        Layout(
            "mpi3dhp17",
            (
                "head_top",
                "neck",
                "right_shoulder",
                "right_elbow",
                "right_wrist",
                "left_shoulder",
                "left_elbow",
                "left_wrist",
                "right_hip",
                "right_knee",
                "right_ankle",
                "left_hip",
                "left_knee",
                "left_ankle",
                "pelvis",
                "spine",
                "head",
            ),
            (14, 8, 9, 10, 11, 12, 13, 15, 1, 16, 0, 5, 6, 7, 2, 3, 4),
            "3DHP official test layout; 3DHP 'neck' is H36M thorax, 'head' is neck_nose",
        ),
        Layout(
            "mpi3dhp28",
            (
                "spine3",
                "spine4",
                "spine2",
                "spine",
                "pelvis",
                "neck",
                "head",
                "head_top",
                "left_clavicle",
                "left_shoulder",
                "left_elbow",
                "left_wrist",
                "left_hand",
                "right_clavicle",
                "right_shoulder",
                "right_elbow",
                "right_wrist",
                "right_hand",
                "left_hip",
                "left_knee",
                "left_ankle",
                "left_foot",
                "left_toe",
                "right_hip",
                "right_knee",
                "right_ankle",
                "right_foot",
                "right_toe",
            ),
            (4, 23, 24, 25, 18, 19, 20, 3, 5, 6, 7, 9, 10, 11, 14, 15, 16),
            "3DHP training annotations (annot.mat)",
        ),
        Layout(
            "spin24",
            (
                "r_ankle",
                "r_knee",
                "r_hip",
                "l_hip",
                "l_knee",
                "l_ankle",
                "r_wrist",
                "r_elbow",
                "r_shoulder",
                "l_shoulder",
                "l_elbow",
                "l_wrist",
                "neck_lsp",
                "head_top_lsp",
                "pelvis",
                "thorax",
                "spine",
                "jaw",
                "head",
                "nose",
                "l_eye",
                "r_eye",
                "l_ear",
                "r_ear",
            ),
            (14, 2, 1, 0, 3, 4, 5, 16, 12, 17, 18, 9, 10, 11, 8, 7, 6),
            "SPIN 24 slots as filled for 3DHP (12 = 3DHP neck, 17 = 3DHP head, 18 = 3DHP head_top)",
        ),
        Layout(
            "smpl24",
            (
                "pelvis",
                "l_hip",
                "r_hip",
                "spine1",
                "l_knee",
                "r_knee",
                "spine2",
                "l_ankle",
                "r_ankle",
                "spine3",
                "l_foot",
                "r_foot",
                "neck",
                "l_collar",
                "r_collar",
                "head",
                "l_shoulder",
                "r_shoulder",
                "l_elbow",
                "r_elbow",
                "l_wrist",
                "r_wrist",
                "l_hand",
                "r_hand",
            ),
            (0, 2, 5, 8, 1, 4, 7, 6, 12, None, 15, 16, 18, 20, 17, 19, 21),
            "SMPL joints (3DPW jointPositions); spine2 -> spine, neck -> thorax, head -> head_top",
        ),
        Layout("ski17", JOINT_NAMES, tuple(range(NUM_JOINTS)), "Ski-Pose PTZ labels.h5 (H36M-17 order)"),
        Layout(
            "adaptpose_3dhp_train16",
            tuple(_H36M16_NAMES[_ADAPTPOSE_REORDER.index(i)] for i in range(16)),
            _reorder(_TO17_FROM_16, _ADAPTPOSE_REORDER),
            "AdaptPose data_3dhp_gt_train.npz: H36M-16 with left/right legs and arms mirrored",
        ),
        Layout(
            "h36m16_legswap",
            tuple(_H36M16_NAMES[_LEGSWAP_REORDER.index(i)] for i in range(16)),
            _reorder(_TO17_FROM_16, _LEGSWAP_REORDER),
            "AdaptPose data_3dpw_gt_test.npz: H36M-16 with the legs swapped",
        ),
    )
}


def get_layout(name: str) -> Layout:
    """A registered layout by name, with an error listing the known ones."""
    if name not in LAYOUTS:
        raise KeyError(f"unknown joint layout {name!r}; known: {', '.join(LAYOUTS)}")
    return LAYOUTS[name]


def to_h36m17(x: np.ndarray, layout: str | Layout) -> np.ndarray:
    """Map (..., J_layout, D) arrays to (..., 17, D); neck_nose is interpolated when missing."""
    lay = get_layout(layout) if isinstance(layout, str) else layout
    if x.shape[-2] != lay.num_joints:
        raise ValueError(f"layout {lay.name} has {lay.num_joints} joints, array has {x.shape[-2]}")
    idx = np.array([0 if i is None else i for i in lay.to_h36m17])
    out = x[..., idx, :]
    if lay.missing:
        # midpoint of thorax and head_top: an interpolated joint, excluded from metrics
        out[..., NECK_NOSE, :] = 0.5 * (out[..., THORAX, :] + out[..., HEAD_TOP, :])
    return out


def from_h36m17(x: np.ndarray, layout: str | Layout) -> np.ndarray:
    """Inverse of :func:`to_h36m17` for layouts whose joints all come from H36M-17 (16-joint ones).

    Joints of the layout that no canonical joint maps to are left at zero.
    """
    lay = get_layout(layout) if isinstance(layout, str) else layout
    out = np.zeros(x.shape[:-2] + (lay.num_joints, x.shape[-1]), dtype=x.dtype)
    for j, i in enumerate(lay.to_h36m17):
        if i is not None:
            out[..., i, :] = x[..., j, :]
    return out


def eval_joint_set(requested: str, missing: tuple[int, ...] = ()) -> tuple[str, tuple[int, ...]]:
    """Resolve a requested evaluation joint set against a source's missing joints.

    ``"all"`` on a source missing neck_nose becomes ``"all16"`` so an interpolated joint
    is never scored. Returns ``(name, H36M-17 indices)``; the name goes into test-set names.
    """
    if requested not in EVAL_JOINT_SETS:
        raise ValueError(f"unknown evaluation joint set {requested!r}; use one of {list(EVAL_JOINT_SETS)}")
    name = "all16" if requested == "all" and NECK_NOSE in missing else requested
    joints = EVAL_JOINT_SETS[name]
    overlap = sorted(set(joints) & set(missing))
    if overlap:
        raise ValueError(f"joint set {requested!r} scores joints {overlap} that this source does not have")
    return name, joints


# -- 2D detector layouts -----------------------------------------------------------------------
#
# 2D detectors (MMPose, Ultralytics YOLO-pose, Detectron2, OpenPose, MediaPipe exported to COCO)
# write COCO-17 or OpenPose BODY-25/COCO-18 keypoints. Their joints are not H36M's: they have a
# face (nose, eyes, ears) but no pelvis, spine, thorax, neck_nose or head_top. Each H36M-17 joint
# is therefore an affine combination (weights summing to 1) of detector joints, named below once
# for every layout. Affine combinations commute with any affine camera, so a formula that holds
# for 3D points holds for their 2D projections too (up to perspective, which is small for a body
# a few metres away).
#
# * pelvis = hip midpoint; thorax = shoulder midpoint (H36M's hips and shoulders sit nearly
#   symmetrically about them).
# * spine = pelvis + 0.485 (thorax - pelvis): the H36M ratio of pelvis->spine to
#   pelvis->spine->thorax (0.241 / (0.241 + 0.256) m, PoseAug's S1/5/6/7/8 bone templates).
# * neck_nose and head_top from the face, by the sagittal head model ``HEAD_MODEL`` below: ear
#   centre, eye centre and nose tip span the head's mid-plane, so each head joint is the unique
#   affine combination of those three points that reproduces it in the model
#   (:func:`head_weights`): neck_nose = 0.561 ears - 0.585 eyes + 1.024 nose,
#   head_top = 0.541 ears + 1.522 eyes - 1.063 nose (ears, eyes = the pair's midpoint).
#   These joints move with the face, so a turned or nodding head moves them correctly.
# * A symmetric face pair (eyes, ears) with one side below the confidence threshold uses the
#   visible side for both (:func:`map_keypoints`): the far ear is hidden in profile views, where
#   the near ear projects close to the head's mid-plane.
#
# HEAD_MODEL: (forward, up) in metres from the thorax of an upright adult. head_top is PoseAug's
# mean thorax->head_top bone (0.184 m); neck_nose is ~0.12 m from the thorax and in front of the
# neck (H36M's thorax->neck_nose bone); the face points are adult anthropometric averages (ear
# canal level with the lower eyelid, eyes 9 cm in front of it, nose tip 4 cm below and 2 cm in front
# of the eyes). They are estimates, not fitted to H36M marker data (not available here): the
# derived head joints may differ from H36M's definition by a few centimetres, which a lifter trained
# on H36M-17 sees as a small shift of joints 9 and 10.
HEAD_MODEL: dict[str, tuple[float, float]] = {
    "ear_centre": (0.0, 0.13),
    "eye_centre": (0.09, 0.155),
    "nose": (0.11, 0.115),
    "neck_nose": (0.06, 0.10),
    "head_top": (0.02, 0.184),
}
SPINE_FRACTION = 0.241 / (0.241 + 0.256)


def head_weights(model: dict[str, tuple[float, float]] = HEAD_MODEL) -> dict[str, np.ndarray]:
    """Affine weights on (ear centre, eye centre, nose) that give neck_nose and head_top in ``model``."""
    basis = ("ear_centre", "eye_centre", "nose")
    a = np.array([[model[k][0] for k in basis], [model[k][1] for k in basis], [1.0, 1.0, 1.0]])
    return {j: np.linalg.solve(a, np.array([*model[j], 1.0])) for j in ("neck_nose", "head_top")}


def _body_formulas() -> dict[str, dict[str, float]]:
    """Each H36M-17 joint as {detector joint name: weight}, in COCO joint names."""
    s = SPINE_FRACTION
    head = head_weights()
    formulas: dict[str, dict[str, float]] = {
        "pelvis": {"l_hip": 0.5, "r_hip": 0.5},
        "spine": {"l_hip": (1 - s) / 2, "r_hip": (1 - s) / 2, "l_shoulder": s / 2, "r_shoulder": s / 2},
        "thorax": {"l_shoulder": 0.5, "r_shoulder": 0.5},
    }
    for joint, (ear, eye, nose) in head.items():
        formulas[joint] = {"l_ear": ear / 2, "r_ear": ear / 2, "l_eye": eye / 2, "r_eye": eye / 2}
        formulas[joint]["nose"] = nose
    for side in ("l", "r"):
        for part in ("hip", "knee", "ankle", "shoulder", "elbow", "wrist"):
            formulas[f"{side}_{part}"] = {f"{side}_{part}": 1.0}
    return formulas


@dataclass(frozen=True)
class KeypointLayout:
    """A 2D detector's joint order and its map to H36M-17 (see the comment above ``HEAD_MODEL``).

    Args:
        name: registry name (the ``--data.layout`` value).
        joint_names: the detector's joint names, in its order (K joints).
        weights: (17, K): H36M joint ``j`` = ``sum_k weights[j, k] * keypoint[k]``.
        pairs: (left, right) indices of face pairs that stand in for each other when one side is
            not confident.
        note: which detectors write this layout.
    """

    name: str
    joint_names: tuple[str, ...]
    weights: np.ndarray
    pairs: tuple[tuple[int, int], ...] = ()
    note: str = ""

    @property
    def num_joints(self) -> int:
        return len(self.joint_names)

    def sources(self, joint: int) -> tuple[str, ...]:
        """Names of the detector joints H36M joint ``joint`` is computed from."""
        return tuple(self.joint_names[k] for k in np.flatnonzero(self.weights[joint]))


def _keypoint_layout(name: str, joint_names: tuple[str, ...], note: str) -> KeypointLayout:
    if name == "h36m17":
        identity = np.eye(NUM_JOINTS)
        identity.flags.writeable = False
        return KeypointLayout(name, joint_names, identity, (), note)
    index = {n: k for k, n in enumerate(joint_names)}
    weights = np.zeros((NUM_JOINTS, len(joint_names)))
    for j, formula in _body_formulas().items():
        for source, w in formula.items():
            weights[JOINT_NAMES.index(j), index[source]] = w
    if not np.allclose(weights.sum(1), 1.0):
        raise ValueError(f"layout {name}: the weights of every H36M joint must sum to 1")
    pairs = tuple((index[f"l_{p}"], index[f"r_{p}"]) for p in ("eye", "ear"))
    weights.flags.writeable = False
    return KeypointLayout(name, joint_names, weights, pairs, note)


_COCO17 = (
    "nose",
    "l_eye",
    "r_eye",
    "l_ear",
    "r_ear",
    "l_shoulder",
    "r_shoulder",
    "l_elbow",
    "r_elbow",
    "l_wrist",
    "r_wrist",
    "l_hip",
    "r_hip",
    "l_knee",
    "r_knee",
    "l_ankle",
    "r_ankle",
)
_COCO18 = (
    "nose",
    "neck",
    "r_shoulder",
    "r_elbow",
    "r_wrist",
    "l_shoulder",
    "l_elbow",
    "l_wrist",
    "r_hip",
    "r_knee",
    "r_ankle",
    "l_hip",
    "l_knee",
    "l_ankle",
    "r_eye",
    "l_eye",
    "r_ear",
    "l_ear",
)
_BODY25 = (
    *_COCO18[:8],
    "mid_hip",
    *_COCO18[8:],
    "l_big_toe",
    "l_small_toe",
    "l_heel",
    "r_big_toe",
    "r_small_toe",
    "r_heel",
)

KEYPOINT_LAYOUTS: dict[str, KeypointLayout] = {
    lay.name: lay
    for lay in (
        _keypoint_layout("h36m17", JOINT_NAMES, "H36M-17 (VideoPose3D order): used as is"),
        _keypoint_layout("coco17", _COCO17, "COCO-17: MMPose, YOLO-pose, Detectron2, ViTPose, ..."),
        _keypoint_layout("body25", _BODY25, "OpenPose BODY-25 (its neck, mid_hip, feet are unused)"),
        _keypoint_layout("coco18", _COCO18, "OpenPose COCO-18 (its neck is unused)"),
    )
}


def get_keypoint_layout(name: str) -> KeypointLayout:
    """A registered detector layout by name, with an error listing the known ones."""
    if name not in KEYPOINT_LAYOUTS:
        raise KeyError(f"unknown keypoint layout {name!r}; known: {', '.join(KEYPOINT_LAYOUTS)}")
    return KEYPOINT_LAYOUTS[name]


def map_keypoints(
    xy: np.ndarray, score: np.ndarray, layout: str | KeypointLayout, min_score: float
) -> tuple[np.ndarray, np.ndarray]:
    """Map (..., K, 2) detector keypoints and (..., K) scores to H36M-17.

    Returns (..., 17, 2) keypoints and (..., 17) scores; a derived joint's score is the lowest
    of the joints it is computed from. A face pair (eyes, ears) whose one side scores below
    ``min_score`` while the other does not takes the confident side for both.
    """
    lay = get_keypoint_layout(layout) if isinstance(layout, str) else layout
    if xy.shape[-2] != lay.num_joints or score.shape != xy.shape[:-1]:
        raise ValueError(
            f"layout {lay.name} has {lay.num_joints} joints, got keypoints {xy.shape} "
            f"and scores {score.shape}"
        )
    xy, score = xy.copy(), score.copy()
    for a, b in lay.pairs:
        ok_a, ok_b = score[..., a] >= min_score, score[..., b] >= min_score
        for dst, src, use in ((a, b, ok_b & ~ok_a), (b, a, ok_a & ~ok_b)):
            xy[..., dst, :] = np.where(use[..., None], xy[..., src, :], xy[..., dst, :])
            score[..., dst] = np.where(use, score[..., src], score[..., dst])
    out = np.einsum("jk,...kd->...jd", lay.weights, xy)
    used = lay.weights != 0
    out_score = np.where(used, score[..., None, :], np.inf).min(axis=-1)
    return out, out_score
