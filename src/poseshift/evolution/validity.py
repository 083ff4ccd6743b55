"""Natural selection: which evolved poses are anatomically valid.

Two models of the same kind as Akhter & Black's pose-conditioned joint-angle limits:

* :class:`LearnedValidity` (the default): learned from the source 3D poses. For every limb
  bone it records which local directions (binned spherical angles) occur; for second-level
  limbs (shins, forearms, head) the occupancy is conditioned on the parent limb's direction
  bin. A configurable angular margin dilates the occupied cells, so nearby unseen directions
  are accepted while clearly impossible ones (a knee bent forwards, an elbow bent into the
  trunk) are not.
* :class:`AkhterValidity`: the original constraint files (``jointAngleModel_v2.npy`` and
  ``staticPose.npy`` from the EvoSkeleton release, converted from Akhter & Black's .mat
  files) for users who have them; they are not redistributable. It reimplements the
  reference's ``is_valid`` batched, with its conventions (bones as parent minus child,
  coordinates reordered to (x, z, y), 3-degree bins).

Both check all limb bones, including those attached to the torso. The reference meant to
but, because of a typo (``valid[i] == False``), never rejects a torso-attached bone;
``reference_torso_typo=True`` reproduces that.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from poseshift.geometry.local_frames import (
    FIRST_LEVEL,
    LIMB_BONES,
    LIMB_NAMES,
    SECOND_LEVEL,
    LocalPose,
    gram_schmidt,
    to_local,
)


class AcceptAll:
    """A validity model that accepts everything (how the reference's speed was measured)."""

    reference_torso_typo = False

    def per_bone(self, local: LocalPose, joints: torch.Tensor | None = None) -> torch.Tensor:
        return torch.ones(len(local), len(LIMB_BONES), dtype=torch.bool, device=local.directions.device)

    def __call__(self, local: LocalPose, joints: torch.Tensor | None = None) -> torch.Tensor:
        return torch.ones(len(local), dtype=torch.bool, device=local.directions.device)


def _sphere_bins(v: torch.Tensor, bin_deg: float) -> torch.Tensor:
    """Flat (theta, phi) bin index of unit-ish vectors (..., 3); theta bins run fastest in phi."""
    n_theta, n_phi = round(360 / bin_deg), round(180 / bin_deg)
    x, y, z = v.unbind(-1)
    theta = torch.atan2(y, x)
    phi = torch.atan2(z, torch.sqrt(x * x + y * y))
    step = math.radians(bin_deg)
    ti = ((theta + math.pi) / step).floor().long().clamp(0, n_theta - 1)
    pi = ((phi + math.pi / 2) / step).floor().long().clamp(0, n_phi - 1)
    return ti * n_phi + pi


def _cell_centres(bin_deg: float) -> torch.Tensor:
    """Unit vectors (C, 3) at the centres of the (theta, phi) cells, in flat-bin order."""
    n_theta, n_phi = round(360 / bin_deg), round(180 / bin_deg)
    step = math.radians(bin_deg)
    theta = -math.pi + (torch.arange(n_theta, dtype=torch.float64) + 0.5) * step
    phi = -math.pi / 2 + (torch.arange(n_phi, dtype=torch.float64) + 0.5) * step
    t, p = torch.meshgrid(theta, phi, indexing="ij")
    return torch.stack([torch.cos(p) * torch.cos(t), torch.cos(p) * torch.sin(t), torch.sin(p)], -1).reshape(
        -1, 3
    )


def _neighbours(bin_deg: float, margin_deg: float) -> torch.Tensor:
    """(C, C) float 0/1: cells whose centres are at most ``margin_deg`` apart."""
    c = _cell_centres(bin_deg)
    cos = (c @ c.T).clamp(-1, 1)
    return (cos >= math.cos(math.radians(margin_deg)) - 1e-12).float()


class LearnedValidity:
    """Occupancy of local limb directions, conditioned on the parent limb, learned from data.

    Args:
        bin_deg: angular size of the direction bins (theta and phi).
        parent_bin_deg: size of the parent-direction bins the second-level limbs are
            conditioned on (coarser, so the conditional table stays small and dense).
        margin_deg: accept directions within this angle of an occupied cell centre.
        parent_margin_deg: a second-level limb is accepted if its direction occurs with any
            parent direction within this angle of the queried parent's cell.
        min_count: cells seen fewer times than this count as empty (noise robustness).
        reference_torso_typo: never reject first-level (torso-attached) limbs, as the
            reference's typo does; off by default.
    """

    def __init__(
        self,
        bin_deg: float = 6.0,
        parent_bin_deg: float = 15.0,
        margin_deg: float = 12.0,
        parent_margin_deg: float = 15.0,
        min_count: int = 1,
        reference_torso_typo: bool = False,
    ) -> None:
        for name, value in (("bin_deg", bin_deg), ("parent_bin_deg", parent_bin_deg)):
            if value <= 0 or (180 / value) != round(180 / value):
                raise ValueError(f"{name} must divide 180 degrees, got {value}")
        if margin_deg < 0 or parent_margin_deg < 0 or min_count < 1:
            raise ValueError("margins must be >= 0 and min_count >= 1")
        self.bin_deg = bin_deg
        self.parent_bin_deg = parent_bin_deg
        self.margin_deg = margin_deg
        self.parent_margin_deg = parent_margin_deg
        self.min_count = min_count
        self.reference_torso_typo = reference_torso_typo
        self.first: torch.Tensor | None = None  # (5, C) bool, FIRST_LEVEL order
        self.second: torch.Tensor | None = None  # (5, P, C) bool, SECOND_LEVEL order

    @property
    def fitted(self) -> bool:
        return self.first is not None

    def fit(self, local: LocalPose) -> LearnedValidity:
        """Learn the occupancy from poses (N, ...) in the hierarchical representation."""
        d = local.directions.reshape(-1, *local.directions.shape[-2:]).double()
        n_cells = round(360 / self.bin_deg) * round(180 / self.bin_deg)
        n_parent = round(360 / self.parent_bin_deg) * round(180 / self.parent_bin_deg)
        near = _neighbours(self.bin_deg, self.margin_deg)
        near_parent = _neighbours(self.parent_bin_deg, self.parent_margin_deg)
        first = []
        for b in FIRST_LEVEL:
            counts = torch.bincount(_sphere_bins(d[:, b], self.bin_deg), minlength=n_cells)
            occ = (counts >= self.min_count).float()
            first.append((near @ occ) > 0)
        second = []
        for b, parent in SECOND_LEVEL.items():
            cell = _sphere_bins(d[:, b], self.bin_deg)
            pcell = _sphere_bins(d[:, parent], self.parent_bin_deg)
            counts = torch.bincount(pcell * n_cells + cell, minlength=n_parent * n_cells)
            occ = (counts.reshape(n_parent, n_cells) >= self.min_count).float()
            # dilate over child directions, then over parent directions; only the parent
            # cells that occur matter, which keeps the products small
            rows = occ.any(1).nonzero().flatten()
            grown = (occ[rows] @ near > 0).float()
            second.append((near_parent[:, rows] @ grown) > 0)
        self.first = torch.stack(first)
        self.second = torch.stack(second)
        return self

    def fit_joints(self, joints: torch.Tensor) -> LearnedValidity:
        """Learn from joint positions (N, 17, 3)."""
        return self.fit(to_local(joints.double()))

    def per_bone(self, local: LocalPose, joints: torch.Tensor | None = None) -> torch.Tensor:
        """(N, 10) bool validity of each limb bone, in ``LIMB_BONES`` order."""
        if self.first is None or self.second is None:
            raise RuntimeError("LearnedValidity must be fitted (fit / fit_joints / load) before use")
        d = local.directions
        n = d.shape[0]
        out = torch.ones(n, len(LIMB_BONES), dtype=torch.bool, device=d.device)
        first, second = self.first.to(d.device), self.second.to(d.device)
        if not self.reference_torso_typo:
            for i, b in enumerate(FIRST_LEVEL):
                out[:, LIMB_BONES.index(b)] = first[i][_sphere_bins(d[:, b], self.bin_deg)]
        for i, (b, parent) in enumerate(SECOND_LEVEL.items()):
            cell = _sphere_bins(d[:, b], self.bin_deg)
            pcell = _sphere_bins(d[:, parent], self.parent_bin_deg)
            out[:, LIMB_BONES.index(b)] = second[i][pcell, cell]
        return out

    def __call__(self, local: LocalPose, joints: torch.Tensor | None = None) -> torch.Tensor:
        """(N,) bool: every limb bone valid."""
        return self.per_bone(local, joints).all(-1)

    def acceptance_by_bone(self, local: LocalPose) -> dict[str, float]:
        """Fraction of poses whose bone passes, by limb name (for diagnosing a margin)."""
        rate = self.per_bone(local).float().mean(0)
        return {LIMB_NAMES[b]: float(rate[i]) for i, b in enumerate(LIMB_BONES)}

    # -- files ----------------------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        """Write the tables and settings to an npz."""
        if self.first is None or self.second is None:
            raise RuntimeError("nothing to save: the model is not fitted")
        np.savez_compressed(
            path,
            first=self.first.numpy(),
            second=self.second.numpy(),
            settings=np.array(
                [self.bin_deg, self.parent_bin_deg, self.margin_deg, self.parent_margin_deg, self.min_count]
            ),
        )

    @classmethod
    def load(cls, path: str | Path, reference_torso_typo: bool = False) -> LearnedValidity:
        """Read a model written by :meth:`save`."""
        data = np.load(path)
        bin_deg, parent_bin_deg, margin, parent_margin, min_count = data["settings"].tolist()
        model = cls(bin_deg, parent_bin_deg, margin, parent_margin, int(min_count), reference_torso_typo)
        model.first = torch.from_numpy(data["first"])
        model.second = torch.from_numpy(data["second"])
        return model


# -- Akhter & Black constraint files ------------------------------------------------------------
# H36M17 joints standing in for the reference's 32-joint ids
_J = {
    "spine": 7,
    "thorax": 8,
    "head": 10,
    "lsh": 11,
    "lel": 12,
    "lwr": 13,
    "rsh": 14,
    "rel": 15,
    "rwr": 16,
    "lhip": 4,
    "lkn": 5,
    "lan": 6,
    "rhip": 1,
    "rkn": 2,
    "ran": 3,
}
# the reference's nine limb vectors (parent minus child): head, L arm, L forearm, R arm,
# R forearm, L thigh, L shin, R thigh, R shin
_AKHTER_PARENTS = (8, 11, 12, 14, 15, 4, 5, 1, 2)
_AKHTER_CHILDREN = (10, 12, 13, 15, 16, 5, 6, 2, 3)
_AKHTER_RECORDS = (4, 2, 3, 0, 1, 8, 9, 5, 6)  # bone -> record in the .mat tables
_AKHTER_DI = {2: 5, 4: 2, 6: 13, 8: 9}  # child bone -> column of staticPose di
_AKHTER_FIRST = (0, 1, 3, 5, 7)
_AKHTER_NAMES = (
    "head",
    "l_upper_arm",
    "l_forearm",
    "r_upper_arm",
    "r_forearm",
    "l_thigh",
    "l_shin",
    "r_thigh",
    "r_shin",
)
_N_THETA, _N_PHI = 121, 61


def _stack_records(cell: np.ndarray, tail: tuple[int, ...], fill: float) -> np.ndarray:
    """Object array (1, R) of per-record tables -> dense (R, 121, 61, *tail)."""
    records = np.asarray(cell, dtype=object).reshape(-1)
    out = np.full((len(records), _N_THETA, _N_PHI, *tail), fill, dtype=np.float64)
    for r, table in enumerate(records):
        arr = np.asarray(table, dtype=np.float64)
        if arr.size == 0:
            continue
        arr = arr.reshape(arr.shape[0], arr.shape[1], *tail)
        out[r, : arr.shape[0], : arr.shape[1]] = arr[:_N_THETA, :_N_PHI]
    return out


class AkhterValidity:
    """Akhter & Black's pose-conditioned joint-angle limits from the EvoSkeleton constraint files.

    Args:
        folder: directory holding ``jointAngleModel_v2.npy`` and ``staticPose.npy``
            (EvoSkeleton ``resources/constraints``, downloaded separately).
        up_axis: the world's up axis of the poses that are checked (2 for z-up H36M world).
        reference_torso_typo: never reject torso-attached bones, as the reference code does.
    """

    def __init__(self, folder: str | Path, up_axis: int = 2, reference_torso_typo: bool = False) -> None:
        folder = Path(folder)
        model_path, static_path = folder / "jointAngleModel_v2.npy", folder / "staticPose.npy"
        for p in (model_path, static_path):
            if not p.is_file():
                raise FileNotFoundError(
                    f"Akhter constraint file {p} not found; get resources/constraints from the EvoSkeleton "
                    "release (docs/HHR.md there) or use the learned validity model"
                )
        model = np.load(model_path, allow_pickle=True).item()
        static = np.load(static_path, allow_pickle=True).item()
        missing = [k for k in ("angleSprd", "sepPlane", "E2", "bounds") if k not in model]
        if missing or "di" not in static or "a" not in static:
            raise ValueError(f"{folder}: constraint files lack {missing or ['di/a']}")
        self.angle_spread = torch.from_numpy(_stack_records(model["angleSprd"], (), 0.0))
        self.sep_plane = torch.from_numpy(_stack_records(model["sepPlane"], (4,), np.nan))
        self.e2 = torch.from_numpy(_stack_records(model["E2"], (3,), 0.0))
        self.bounds = torch.from_numpy(_stack_records(model["bounds"], (4,), 0.0))
        self.di = torch.from_numpy(np.asarray(static["di"], dtype=np.float64))
        self.a = torch.from_numpy(np.asarray(static["a"], dtype=np.float64).reshape(3))
        self.up_axis = up_axis
        self.reference_torso_typo = reference_torso_typo

    def _reordered(self, joints: torch.Tensor) -> torch.Tensor:
        # the prior's coordinates are (x, z, y) of a z-up world: horizontal, up, horizontal
        horizontal = [i for i in range(3) if i != self.up_axis]
        return joints[..., [horizontal[0], self.up_axis, horizontal[1]]].double()

    def local_bones(self, joints: torch.Tensor) -> torch.Tensor:
        """The reference's nine local limb vectors (N, 9, 3), unit length (``to_local``)."""
        s = self._reordered(joints)
        back = s[:, _J["spine"]] - s[:, _J["thorax"]]
        upper = gram_schmidt(s[:, _J["rsh"]] - s[:, _J["lsh"]], back)
        lower = gram_schmidt(s[:, _J["rhip"]] - s[:, _J["lhip"]], back)
        bones = s[:, list(_AKHTER_PARENTS)] - s[:, list(_AKHTER_CHILDREN)]
        bones = bones / torch.linalg.vector_norm(bones, dim=-1, keepdim=True).clamp_min(1e-12)
        local = torch.empty_like(bones)
        for k in range(9):
            if k in _AKHTER_FIRST:
                frame = upper if k in (0, 1, 3) else lower
            else:
                torso = upper if k in (2, 4) else lower
                u = bones[:, k - 1]
                x1 = torso @ self.di[:, _AKHTER_DI[k]]
                a = torso @ self.a
                near = (torch.linalg.vector_norm(u - a, dim=-1) < 1e-4) | (
                    torch.linalg.vector_norm(u + a, dim=-1) < 1e-4
                )
                n = torch.where(
                    near[:, None], torch.linalg.cross(u, x1, dim=-1), torch.linalg.cross(a, u, dim=-1)
                )
                v = n / torch.linalg.vector_norm(n, dim=-1, keepdim=True).clamp_min(1e-12)
                frame = gram_schmidt(u, v)
            local[:, k] = (frame * bones[:, k, :, None]).sum(-2)
        return local

    def per_bone_joints(self, joints: torch.Tensor) -> torch.Tensor:
        """(N, 9) bool validity of the reference's nine limb bones for joints (N, 17, 3)."""
        local = self.local_bones(joints)
        x, y, z = local.unbind(-1)
        theta = torch.rad2deg(torch.atan2(y, x))
        phi = torch.rad2deg(torch.atan2(z, torch.sqrt(x * x + y * y)))
        # reference bins are 1-based: floor((angle + offset) / 3 + 1); here 0-based
        tb = torch.floor((theta + 180) / 3).long().clamp(0, _N_THETA - 1)
        pb = torch.floor((phi + 90) / 3).long().clamp(0, _N_PHI - 1)
        n = local.shape[0]
        valid = torch.ones(n, 9, dtype=torch.bool)
        for k in range(9):
            rec = _AKHTER_RECORDS[k]
            if k in _AKHTER_FIRST:
                if not self.reference_torso_typo:
                    valid[:, k] = self.angle_spread[rec, tb[:, k], pb[:, k]] != 0
                continue
            tp, pp = tb[:, k - 1], pb[:, k - 1]
            plane = self.sep_plane[rec, tp, pp]
            plane = plane / torch.linalg.vector_norm(plane, dim=-1, keepdim=True)
            finite = torch.isfinite(plane).all(-1)
            b = local[:, k]
            side = (b * plane[:, :3]).sum(-1) + plane[:, 3]
            frame = gram_schmidt(plane[:, :3], self.e2[rec, tp, pp])
            u0 = (frame[..., 1] * b).sum(-1)
            u1 = (frame[..., 2] * b).sum(-1)
            bnd = self.bounds[rec, tp, pp]
            inside = (u0 >= bnd[:, 0]) & (u0 <= bnd[:, 1]) & (u1 >= bnd[:, 2]) & (u1 <= bnd[:, 3])
            valid[:, k] = finite & ~(side > 0) & inside
        return valid

    def per_bone(self, local: LocalPose, joints: torch.Tensor | None = None) -> torch.Tensor:
        if joints is None:
            raise ValueError("AkhterValidity needs joint positions")
        return self.per_bone_joints(joints)

    def __call__(self, local: LocalPose, joints: torch.Tensor | None = None) -> torch.Tensor:
        return self.per_bone(local, joints).all(-1)

    @staticmethod
    def bone_names() -> tuple[str, ...]:
        return _AKHTER_NAMES


__all__ = ["AcceptAll", "AkhterValidity", "LearnedValidity"]
