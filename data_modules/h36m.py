"""Human3.6M in the VideoPose3D/PoseAug file formats (DATA_FORMATS.md section 3).

Files (in one folder, names as the reference code writes them):

* ``data_3d_h36m.npz``: key ``positions_3d`` = ``{subject: {action: (N, 32, 3)}}``, metres,
  world frame (z up).
* ``data_2d_h36m_<keypoints>.npz``: keys ``positions_2d`` = ``{subject: {action: [4 x (N_c, J, 2)]}}``
  in pixels (camera order of ``H36M_CAMERAS``) and ``metadata``. ``J`` is 17 (VideoPose3D
  ``gt``, ``cpn_ft_h36m_dbb``, ``detectron_ft_h36m``) or 16 (PoseAug ``gt``/``hr``: H36M-16;
  ``sh_*``: Stacked-Hourglass order); the layout is read from the metadata's
  ``keypoints_symmetry`` and every file is mapped to H36M-17 (``data_modules.skeletons``).
  ``keypoints="project"`` needs no 2D file: the 3D is projected with the camera model.

Every sequence is converted world -> camera with the per-subject extrinsics (whole arrays
at a time, no per-frame Python), 2D longer than the 3D is trimmed with a warning (detector
files have extra frames), and the result is one :class:`PoseSet` per split.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from data_modules.base import DomainSets, PoseDataModule
from data_modules.common import frobenius_normalize
from data_modules.schema import DataFormatError, PoseSet
from data_modules.skeletons import NECK_NOSE, eval_joint_set, get_layout, to_h36m17
from poseshift.augment import median_bone_lengths
from poseshift.geometry.camera import h36m_intrinsics, normalize_screen, project
from poseshift.geometry.rotations import quaternion_to_matrix

log = logging.getLogger(__name__)

ACTIONS: tuple[str, ...] = (
    "Directions",
    "Discussion",
    "Eating",
    "Greeting",
    "Phoning",
    "Photo",
    "Posing",
    "Purchases",
    "Sitting",
    "SittingDown",
    "Smoking",
    "Waiting",
    "WalkDog",
    "Walking",
    "WalkTogether",
)
# canonical names of the action categories (DATA_FORMATS.md 3.1)
_ACTION_ALIASES = {"TakingPhoto": "Photo", "WalkingDog": "WalkDog"}
TRAIN_SUBJECTS: tuple[str, ...] = ("S1", "S5", "S6", "S7", "S8")
TEST_SUBJECTS: tuple[str, ...] = ("S9", "S11")
FPS = 50.0

# Extrinsics per subject and camera (DATA_FORMATS.md 3.5): camera-to-world quaternion
# (w, x, y, z) and camera centre in millimetres, world frame.
H36M_EXTRINSICS: dict[str, tuple[tuple[tuple[float, ...], tuple[float, ...]], ...]] = {
    "S1": (
        (
            (0.1407056450843811, -0.1500701755285263, -0.755240797996521, 0.6223280429840088),
            (1841.1070556640625, 4955.28466796875, 1563.4454345703125),
        ),
        (
            (0.6157187819480896, -0.764836311340332, -0.14833825826644897, 0.11794740706682205),
            (1761.278564453125, -5078.0068359375, 1606.2650146484375),
        ),
        (
            (0.14651472866535187, -0.14647851884365082, 0.7653023600578308, -0.6094175577163696),
            (-1846.7777099609375, 5215.04638671875, 1491.972412109375),
        ),
        (
            (0.5834008455276489, -0.7853162288665771, 0.14548823237419128, -0.14749594032764435),
            (-1794.7896728515625, -3722.698974609375, 1574.8927001953125),
        ),
    ),
    "S5": (
        (
            (0.1467377245426178, -0.162370964884758, -0.7551892995834351, 0.6178938746452332),
            (2097.3916015625, 4880.94482421875, 1605.732421875),
        ),
        (
            (0.6159758567810059, -0.7626792192459106, -0.15728192031383514, 0.1189815029501915),
            (2031.7008056640625, -5167.93310546875, 1612.923095703125),
        ),
        (
            (0.14291371405124664, -0.12907841801643372, 0.7678384780883789, -0.6110143065452576),
            (-1620.5948486328125, 5171.65869140625, 1496.43701171875),
        ),
        (
            (0.5920479893684387, -0.7814217805862427, 0.1274748593568802, -0.15036417543888092),
            (-1637.1737060546875, -3867.3173828125, 1547.033203125),
        ),
    ),
    "S6": (
        (
            (0.1337897777557373, -0.15692396461963654, -0.7571090459823608, 0.6198879480361938),
            (1935.4517822265625, 4950.24560546875, 1618.0838623046875),
        ),
        (
            (0.6147197484970093, -0.7628812789916992, -0.16174767911434174, 0.11819244921207428),
            (1969.803955078125, -5128.73876953125, 1632.77880859375),
        ),
        (
            (0.1529948115348816, -0.13529130816459656, 0.7646096348762512, -0.6112781167030334),
            (-1769.596435546875, 5185.361328125, 1476.993408203125),
        ),
        (
            (0.5916101336479187, -0.7804774045944214, 0.12832270562648773, -0.1561593860387802),
            (-1721.668701171875, -3884.13134765625, 1540.4879150390625),
        ),
    ),
    "S7": (
        (
            (0.1435241848230362, -0.1631336808204651, -0.7548328638076782, 0.6188824772834778),
            (1974.512939453125, 4926.3544921875, 1597.8326416015625),
        ),
        (
            (0.6141672730445862, -0.7638262510299683, -0.1596645563840866, 0.1177929937839508),
            (1937.0584716796875, -5119.7900390625, 1631.5665283203125),
        ),
        (
            (0.14550060033798218, -0.12874816358089447, 0.7660516500473022, -0.6127139329910278),
            (-1741.8111572265625, 5208.24951171875, 1464.8245849609375),
        ),
        (
            (0.5912848114967346, -0.7821764349937439, 0.12445473670959473, -0.15196487307548523),
            (-1734.7105712890625, -3832.42138671875, 1548.5830078125),
        ),
    ),
    "S8": (
        (
            (0.14110587537288666, -0.15589867532253265, -0.7561917304992676, 0.619644045829773),
            (2150.65185546875, 4896.1611328125, 1611.9046630859375),
        ),
        (
            (0.6169601678848267, -0.7647668123245239, -0.14846350252628326, 0.11158157885074615),
            (2219.965576171875, -5148.453125, 1613.0440673828125),
        ),
        (
            (0.1471444070339203, -0.13377119600772858, 0.7670128345489502, -0.6100369691848755),
            (-1571.2215576171875, 5137.0185546875, 1498.1761474609375),
        ),
        (
            (0.5927824378013611, -0.7825870513916016, 0.12147816270589828, -0.14631995558738708),
            (-1476.913330078125, -3896.7412109375, 1547.97216796875),
        ),
    ),
    "S9": (
        (
            (0.15540587902069092, -0.15548215806484222, -0.7532095313072205, 0.6199594736099243),
            (2044.45849609375, 4935.1171875, 1481.2275390625),
        ),
        (
            (0.618784487247467, -0.7634735107421875, -0.14132238924503326, 0.11933968216180801),
            (1990.959716796875, -5123.810546875, 1568.8048095703125),
        ),
        (
            (0.13357827067375183, -0.1367100477218628, 0.7689454555511475, -0.6100738644599915),
            (-1670.9921875, 5211.98583984375, 1528.387939453125),
        ),
        (
            (0.5879399180412292, -0.7823407053947449, 0.1427614390850067, -0.14794869720935822),
            (-1696.04345703125, -3827.099853515625, 1591.4127197265625),
        ),
    ),
    "S11": (
        (
            (0.15232472121715546, -0.15442320704460144, -0.7547563314437866, 0.6191070079803467),
            (2098.440185546875, 4926.5546875, 1500.278564453125),
        ),
        (
            (0.6189449429512024, -0.7600917220115662, -0.15300633013248444, 0.1255258321762085),
            (2083.182373046875, -4912.1728515625, 1561.07861328125),
        ),
        (
            (0.14943228662014008, -0.15650227665901184, 0.7681233882904053, -0.6026304364204407),
            (-1609.8153076171875, 5177.3359375, 1537.896728515625),
        ),
        (
            (0.5894251465797424, -0.7818877100944519, 0.13991211354732513, -0.14715361595153809),
            (-1590.738037109375, -3854.1689453125, 1578.017578125),
        ),
    ),
}

# keypoints_symmetry in the 2D metadata identifies the layout of 16/17-joint files (3.3)
_SYMMETRY_LAYOUTS = {
    ((4, 5, 6, 11, 12, 13), (1, 2, 3, 14, 15, 16)): "h36m17",
    ((4, 5, 6, 10, 11, 12), (1, 2, 3, 13, 14, 15)): "h36m16",
    ((3, 4, 5, 13, 14, 15), (0, 1, 2, 10, 11, 12)): "sh16",
}
_MM_BONE = 2.0  # metres; a hip bone longer than this means the file is in millimetres


def action_category(key: str) -> str:
    """``'Walking 1'`` -> ``'Walking'``, with the reference aliases applied."""
    cat = key.split(" ")[0]
    return _ACTION_ALIASES.get(cat, cat)


def camera_extrinsics(subject: str) -> tuple[np.ndarray, np.ndarray]:
    """(4, 3, 3) camera-to-world rotations and (4, 3) camera centres in metres for ``subject``."""
    if subject not in H36M_EXTRINSICS:
        raise KeyError(f"no camera extrinsics for subject {subject!r}; known: {list(H36M_EXTRINSICS)}")
    quat = torch.tensor([c[0] for c in H36M_EXTRINSICS[subject]], dtype=torch.float64)
    rot = quaternion_to_matrix(quat).numpy()
    centre = np.array([c[1] for c in H36M_EXTRINSICS[subject]], dtype=np.float64) / 1000.0
    return rot, centre


def world_to_cameras(points: np.ndarray, subject: str) -> np.ndarray:
    """World points (N, J, 3) into the subject's 4 camera frames: (4, N, J, 3) float32.

    ``X_c = R^T (X_w - t)`` (DATA_FORMATS.md 2.2) as one matmul per camera; this is the
    same transform as ``poseshift.geometry.camera.world_to_camera`` (tested equal).
    """
    rot, centre = camera_extrinsics(subject)
    flat = points.reshape(-1, 3).astype(np.float32, copy=False)
    out = np.empty((4,) + points.shape, dtype=np.float32)
    for c in range(4):  # one (N*J, 3) x (3, 3) BLAS matmul per camera
        out[c] = ((flat - centre[c].astype(np.float32)) @ rot[c].astype(np.float32)).reshape(points.shape)
    return out


def _load_pickled(path: Path, key: str) -> dict:
    """Read the 0-d object array ``key`` of a VideoPose3D npz as a dict."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found")
    try:
        data = np.load(path, allow_pickle=True)
        files = data.files
    except Exception as err:  # noqa: BLE001 - zip, pickle or header errors all mean "not this format"
        raise DataFormatError(f"{path}: not a readable npz file ({type(err).__name__}: {err})") from err
    if key not in files:
        raise DataFormatError(f"{path}: missing key {key!r}; present: {sorted(files)}")
    try:
        value = data[key]
        value = value.item() if value.dtype == object and value.ndim == 0 else value
    except Exception as err:  # noqa: BLE001 - unpickling errors of any kind are format errors
        raise DataFormatError(f"{path}: {key}: cannot be read ({err})") from err
    if not isinstance(value, dict):
        raise DataFormatError(
            f"{path}: {key}: expected a pickled dict {{subject: {{action: ...}}}}, "
            f"got {type(value).__name__} {getattr(value, 'shape', '')}"
        )
    return value


def load_positions_3d(path: str | Path) -> dict[str, dict[str, np.ndarray]]:
    """``data_3d_h36m.npz`` as ``{subject: {action: (N, 32, 3) float32 metres}}``, checked."""
    path = Path(path)
    raw = _load_pickled(path, "positions_3d")
    out: dict[str, dict[str, np.ndarray]] = {}
    for subject, actions in raw.items():
        if not isinstance(actions, dict):
            raise DataFormatError(
                f"{path}: positions_3d[{subject!r}]: expected a dict of actions, got {type(actions).__name__}"
            )
        out[subject] = {}
        for action, arr in actions.items():
            field = f"positions_3d[{subject!r}][{action!r}]"
            arr = np.asarray(arr)
            if arr.ndim != 3 or arr.shape[1:] != (32, 3):
                raise DataFormatError(f"{path}: {field}: expected shape (N, 32, 3), got {arr.shape}")
            if not np.issubdtype(arr.dtype, np.floating):
                raise DataFormatError(f"{path}: {field}: expected floats, got {arr.dtype}")
            if not np.isfinite(arr).all():
                bad = int((~np.isfinite(arr)).any(axis=(1, 2)).sum())
                raise DataFormatError(f"{path}: {field}: {bad} of {len(arr)} frames contain NaN or inf")
            if len(arr):
                bone = float(np.median(np.linalg.norm(arr[:, 1] - arr[:, 0], axis=-1)))
                if bone > _MM_BONE:
                    raise DataFormatError(
                        f"{path}: {field}: hip bone is {bone:.1f} units long; the values "
                        "look like millimetres, metres are expected (divide by 1000)"
                    )
            out[subject][action] = arr.astype(np.float32, copy=False)
    return out


def detect_layout_2d(metadata: dict, num_joints: int, path: Path) -> str:
    """The joint layout of a 2D file from its metadata (``keypoints_symmetry``) and J."""
    sym = metadata.get("keypoints_symmetry") if isinstance(metadata, dict) else None
    if sym is not None:
        try:
            key = tuple(tuple(int(i) for i in side) for side in sym)
        except (TypeError, ValueError) as err:
            raise DataFormatError(
                f"{path}: metadata.keypoints_symmetry: not two index lists ({sym!r})"
            ) from err
        if key in _SYMMETRY_LAYOUTS:
            layout = _SYMMETRY_LAYOUTS[key]
            if get_layout(layout).num_joints != num_joints:
                raise DataFormatError(
                    f"{path}: metadata.keypoints_symmetry describes {layout} but the "
                    f"arrays have {num_joints} joints"
                )
            return layout
        raise DataFormatError(
            f"{path}: metadata.keypoints_symmetry {sym} is not a known H36M layout; pass layout_2d explicitly"
        )
    if num_joints == 17:
        return "h36m17"
    if num_joints == 16:
        log.warning(
            "%s: no keypoints_symmetry in metadata; assuming the 16 joints are PoseAug's H36M-16", path
        )
        return "h36m16"
    raise DataFormatError(f"{path}: positions_2d: {num_joints} joints; H36M 2D files have 16 or 17")


def load_positions_2d(path: str | Path, layout: str | None = None) -> tuple[dict, str]:
    """``data_2d_h36m_*.npz`` as (``{subject: {action: [4 x (N_c, J, 2)]}}`` float32 px, layout)."""
    path = Path(path)
    raw = _load_pickled(path, "positions_2d")
    data = np.load(path, allow_pickle=True)
    metadata = data["metadata"].item() if "metadata" in data.files else {}
    num_joints = None
    out: dict[str, dict[str, list[np.ndarray]]] = {}
    for subject, actions in raw.items():
        if not isinstance(actions, dict):
            raise DataFormatError(f"{path}: positions_2d[{subject!r}]: expected a dict of actions")
        out[subject] = {}
        for action, cams in actions.items():
            field = f"positions_2d[{subject!r}][{action!r}]"
            if not isinstance(cams, list | tuple) or len(cams) != 4:
                got = len(cams) if isinstance(cams, list | tuple) else type(cams).__name__
                raise DataFormatError(f"{path}: {field}: expected a list of 4 camera arrays, got {got}")
            arrs = []
            for c, arr in enumerate(cams):
                arr = np.asarray(arr)
                if arr.ndim != 3 or arr.shape[-1] < 2:
                    raise DataFormatError(f"{path}: {field}[{c}]: expected shape (N, J, 2), got {arr.shape}")
                num_joints = num_joints or arr.shape[1]
                if arr.shape[1] != num_joints:
                    raise DataFormatError(
                        f"{path}: {field}[{c}]: {arr.shape[1]} joints, other arrays have {num_joints}"
                    )
                arrs.append(arr[..., :2].astype(np.float32, copy=False))
            out[subject][action] = arrs
    if num_joints is None:
        raise DataFormatError(f"{path}: positions_2d is empty")
    layout = layout or detect_layout_2d(metadata, num_joints, path)
    if get_layout(layout).num_joints != num_joints:
        raise DataFormatError(
            f"{path}: layout {layout} has {get_layout(layout).num_joints} joints, the file has {num_joints}"
        )
    return out, layout


@dataclass
class _Piece:
    """Frames ``start:stop:stride`` of one sequence, going to one split."""

    subject: str
    key: str
    start: int
    stop: int
    count: int
    sequence: int


def _plan(
    positions_3d: dict,
    splits: dict[str, list[str]],
    actions: list[str] | None,
    stride: int,
    val_fraction: float,
) -> dict[str, list[_Piece]]:
    """Which frames of which sequence go to which split (no arrays touched yet)."""
    plan: dict[str, list[_Piece]] = {name: [] for name in splits}
    if val_fraction > 0:
        plan["val"] = []
    seq = 0
    for split, subjects in splits.items():
        for subject in subjects:
            for key in sorted(positions_3d[subject]):
                if actions is not None and action_category(key) not in actions and key not in actions:
                    continue
                n = len(positions_3d[subject][key])
                count = len(range(0, n, stride))
                cut = count
                if split == "train" and val_fraction > 0:
                    # hold out the end of each sequence: validation frames never neighbour training ones
                    cut = count - int(round(count * val_fraction))
                    if cut < count:
                        plan["val"].append(_Piece(subject, key, cut * stride, n, count - cut, seq + 1))
                if cut:
                    plan[split].append(_Piece(subject, key, 0, (cut - 1) * stride + 1, cut, seq))
                seq += 2
    return plan


def build_h36m_sets(
    positions_3d: dict,
    positions_2d: dict | None,
    layout_2d: str,
    splits: dict[str, list[str]],
    actions: list[str] | None = None,
    stride: int = 1,
    val_fraction: float = 0.0,
    source_3d: str = "<memory>",
    source_2d: str = "<memory>",
) -> dict[str, PoseSet]:
    """One :class:`PoseSet` per split of ``splits`` (name -> subjects).

    With ``val_fraction > 0`` the split named ``"train"`` gives up the last fraction of every
    sequence to an extra split ``"val"`` (no overlap in time). ``positions_2d=None`` projects
    the 3D with the camera model instead of reading detections. Output arrays are allocated
    once and filled sequence by sequence (4 cameras at a time), so peak memory stays near the
    size of the result.
    """
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    for subjects in splits.values():
        missing = [s for s in subjects if s not in positions_3d]
        if missing:
            raise DataFormatError(
                f"{source_3d}: positions_3d has no subject(s) {missing}; present: {sorted(positions_3d)}"
            )
    extra = sorted({action_category(a) for acts in positions_3d.values() for a in acts} - set(ACTIONS))
    action_names = ACTIONS + tuple(extra)
    if actions is not None:
        unknown = [
            a
            for a in actions
            if a not in action_names and not any(a in acts for acts in positions_3d.values())
        ]
        if unknown:
            raise ValueError(f"unknown action(s) {unknown}; categories are {list(action_names)}")
    intr, size = (t.numpy() for t in h36m_intrinsics(normalized=True))
    to17 = list(get_layout("h36m32").to_h36m17)
    plan = _plan(positions_3d, splits, actions, stride, val_fraction)
    out: dict[str, PoseSet] = {}
    for name, pieces in plan.items():
        total = 4 * sum(p.count for p in pieces)
        pose2d = np.empty((total, 17, 2), np.float32)
        pose3d = np.empty((total, 17, 3), np.float32)
        ints = {k: np.empty(total, np.int64) for k in ("subject", "action", "camera", "frame", "sequence")}
        at = 0
        for p in pieces:
            world = positions_3d[p.subject][p.key][p.start : p.stop : stride][:, to17]
            cams3d = world_to_cameras(world, p.subject)  # (4, n, 17, 3)
            if positions_2d is None:
                uv = project(torch.from_numpy(cams3d), torch.from_numpy(intr)[:, None]).numpy()
            else:
                uv = _match_2d(
                    positions_2d,
                    p.subject,
                    p.key,
                    len(positions_3d[p.subject][p.key]),
                    slice(p.start, p.stop, stride),
                    layout_2d,
                    size,
                    source_2d,
                )
            n = p.count
            block = slice(at, at + 4 * n)
            pose3d[block] = cams3d.reshape(4 * n, 17, 3)
            pose2d[block] = uv.reshape(4 * n, 17, 2)
            ints["camera"][block] = np.repeat(np.arange(4), n)
            ints["frame"][block] = np.tile(np.arange(p.start, p.stop, stride), 4)
            ints["subject"][block] = int(p.subject.lstrip("S"))
            ints["action"][block] = action_names.index(action_category(p.key))
            ints["sequence"][block] = 4 * p.sequence + ints["camera"][block]
            at += 4 * n
        root = pose3d[:, 0].copy()
        pose3d -= root[:, None]  # in place: root-relative without another full-size temporary
        out[name] = PoseSet(
            pose2d=pose2d,
            pose3d=pose3d,
            root3d=root,
            intrinsics=intr[ints["camera"]],
            image_size=size[ints["camera"]],
            **ints,
            action_names=action_names,
            name=name,
            source=f"{source_3d} + {source_2d}",
        )
    return out


def _match_2d(
    positions_2d: dict,
    subject: str,
    key: str,
    n: int,
    frames: slice,
    layout: str,
    size: np.ndarray,
    source: str,
) -> np.ndarray:
    """The 4 camera arrays of one sequence at ``frames``, checked against the 3D length ``n``,
    mapped to H36M-17 and screen-normalized: (4, F, 17, 2)."""
    field = f"positions_2d[{subject!r}][{key!r}]"
    if subject not in positions_2d or key not in positions_2d[subject]:
        raise DataFormatError(f"{source}: {field}: missing; the 3D file has this sequence")
    cams = positions_2d[subject][key]
    out = []
    for c, arr in enumerate(cams):
        if len(arr) < n:
            raise DataFormatError(f"{source}: {field}[{c}]: {len(arr)} frames but the 3D has {n}")
        if len(arr) > n:
            # detector files have extra trailing frames; VideoPose3D trims them too
            log.warning(
                "%s: %s[%d]: trimming %d extra 2D frames to the 3D length %d",
                source,
                field,
                c,
                len(arr) - n,
                n,
            )
        px = arr[:n][frames]
        if not np.isfinite(px).all():
            raise DataFormatError(f"{source}: {field}[{c}]: NaN or inf in the 2D keypoints")
        px17 = torch.from_numpy(to_h36m17(px, layout))
        out.append(normalize_screen(px17, float(size[c, 0]), float(size[c, 1])).numpy())
    return np.stack(out)


class H36MDataModule(PoseDataModule):
    """Human3.6M as a source domain (and, optionally, an unlabeled H36M target).

    Args:
        root: folder with ``data_3d_h36m.npz`` and ``data_2d_h36m_<keypoints>.npz``.
        keypoints: 2D source: ``gt``, ``cpn_ft_h36m_dbb``, ``detectron_ft_h36m``, ``hr``,
            ``sh_ft_h36m`` ... (any ``data_2d_h36m_<name>.npz``), or ``project`` to project the
            3D with the camera model (no 2D file needed).
        layout_2d: joint layout of the 2D file (``h36m17``, ``h36m16``, ``sh16``); ``None``
            reads it from the file's metadata.
        train_subjects: labeled training subjects; ``["S1"]`` and ``["S1", "S5"]`` are the
            limited-data settings.
        test_subjects: evaluation subjects.
        val_subjects: validation subjects; ``None`` holds out the last ``val_fraction`` of every
            training sequence instead. Naming test subjects here selects checkpoints on the test
            set, as the reference code does; the validation set is then named ``...-oracle``.
        val_fraction: share of each training sequence held out for validation (0 < f < 1).
        target_subjects: subjects served as unlabeled target 2D (``target_train``), e.g.
            ``["S5", "S6", "S7", "S8"]`` for the AdaptPose/PoseDA H36M->H36M setting.
        actions: action categories (``"Walking"``) or sequence keys (``"Walking 1"``) to keep.
        stride: keep every ``stride``-th frame (50 Hz source).
        eval_joints: evaluation joint set (``all`` or ``official14``); becomes ``all16`` when
            the 2D file lacks neck_nose. The name is appended to the test-set name.
        normalize_2d: ``screen`` (default) or ``frob``, AdaptPose's root-centred Frobenius
            normalization, which it applies to the source when the target is Ski.
        **loader: DataLoader options of :class:`PoseDataModule` (batch_size, eval_batch_size,
            num_workers, test_sets, receptive_field, random_stride).
    """

    def __init__(
        self,
        root: str,
        keypoints: str = "gt",
        layout_2d: str | None = None,
        train_subjects: list[str] | None = None,
        test_subjects: list[str] | None = None,
        val_subjects: list[str] | None = None,
        val_fraction: float = 0.05,
        target_subjects: list[str] | None = None,
        actions: list[str] | None = None,
        stride: int = 1,
        eval_joints: str = "all",
        normalize_2d: str = "screen",
        **loader: Any,
    ) -> None:
        super().__init__(**loader)
        self.root = Path(root)
        self.keypoints = keypoints
        self.layout_2d = layout_2d
        self.train_subjects = list(train_subjects or TRAIN_SUBJECTS)
        self.test_subjects = list(test_subjects or TEST_SUBJECTS)
        self.val_subjects = list(val_subjects) if val_subjects else None
        if self.val_subjects is None and not 0 < val_fraction < 1:
            raise ValueError(
                f"val_fraction must be in (0, 1) when val_subjects is not given, got {val_fraction}"
            )
        self.val_fraction = 0.0 if self.val_subjects else val_fraction
        self.target_subjects = list(target_subjects or [])
        self.actions = list(actions) if actions else None
        self.stride = stride
        self.eval_joints = eval_joints
        if normalize_2d not in ("screen", "frob"):
            raise ValueError(f"normalize_2d must be 'screen' or 'frob', got {normalize_2d!r}")
        self.normalize_2d = normalize_2d

    @property
    def path_3d(self) -> Path:
        return self.root / "data_3d_h36m.npz"

    @property
    def path_2d(self) -> Path | None:
        return None if self.keypoints == "project" else self.root / f"data_2d_h36m_{self.keypoints}.npz"

    def bone_length_templates(self, subjects: list[str]) -> torch.Tensor:
        """(len(subjects), 16) per-subject median bone lengths in metres, left/right symmetric.

        Any subject of ``data_3d_h36m.npz``, in or outside the training split: PoseAug's reference
        swaps in the five S1/S5/S6/S7/S8 templates even when it trains on S1 alone.
        """
        positions = load_positions_3d(self.path_3d)
        missing = [s for s in subjects if s not in positions]
        if missing:
            raise ValueError(
                f"{self.path_3d}: no subject(s) {missing} for bone-length templates; has {sorted(positions)}"
            )
        to17 = list(get_layout("h36m32").to_h36m17)
        poses, owner = [], []
        for i, subject in enumerate(subjects):
            frames = np.concatenate([a[:, to17] for a in positions[subject].values()])
            poses.append(torch.from_numpy(frames))
            owner.append(torch.full((len(frames),), i))
        return median_bone_lengths(torch.cat(poses), torch.cat(owner))

    def build_sets(self) -> DomainSets:
        pos3d = load_positions_3d(self.path_3d)
        pos2d, layout = (
            (None, "h36m17") if self.path_2d is None else load_positions_2d(self.path_2d, self.layout_2d)
        )
        missing = get_layout(layout).missing
        joint_set, joints = eval_joint_set(self.eval_joints, missing)
        splits = {"train": self.train_subjects, "test": self.test_subjects}
        if self.val_subjects:
            splits["val"] = self.val_subjects
        if self.target_subjects:
            splits["target"] = self.target_subjects
        sets = build_h36m_sets(
            pos3d,
            pos2d,
            layout,
            splits,
            self.actions,
            self.stride,
            self.val_fraction,
            str(self.path_3d),
            str(self.path_2d or "projected 2D"),
        )
        if self.normalize_2d == "frob":
            for s in sets.values():
                s.pose2d = frobenius_normalize(s.pose2d)
        tag = "+".join(self.test_subjects)
        frob = "_frob" if self.normalize_2d == "frob" else ""
        test_name = f"h36m_{self.keypoints}{frob}_{tag}.{joint_set}"
        meta = {
            "dataset": "h36m",
            "keypoints": self.keypoints,
            "layout_2d": layout,
            "missing_joints": missing,
            "norm": self.normalize_2d,
            "fps": FPS / self.stride,
        }
        for s in sets.values():
            s.meta.update(meta, eval_joint_set=joint_set, eval_joints=joints)
        train = sets["train"]
        train.name = f"h36m_{'+'.join(self.train_subjects)}"
        val = sets["val"]
        if self.val_subjects:
            oracle = set(self.val_subjects) & set(self.test_subjects)
            val.name = f"h36m_{'+'.join(self.val_subjects)}" + ("-oracle" if oracle else "")
            val.meta["oracle"] = bool(oracle)
        else:
            val.name = f"h36m_{'+'.join(self.train_subjects)}_last{self.val_fraction:g}"
        test = sets["test"]
        test.name = test_name
        targets = {}
        if self.target_subjects:
            target = sets["target"].unlabeled(f"h36m_{'+'.join(self.target_subjects)}")
            targets[target.name] = target
        if NECK_NOSE in missing:
            log.info("H36M 2D %s has no neck_nose; it is interpolated and excluded (%s)", layout, joint_set)
        return DomainSets(train=train, val=val, test={test_name: test}, target_train=targets)
