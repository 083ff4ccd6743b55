"""3D pose metrics as torchmetrics ``Metric`` objects (DATA_FORMATS.md section 7).

Inputs are (B, J, 3) poses in metres; results are in mm (MPJPE, PA-MPJPE) or percent (PCK,
AUC). Every state is a sum or a count reduced with ``"sum"``, so the DDP result equals the
single-process one exactly (up to float64 summation order), whatever the per-rank batch sizes.

Aggregation: one value per sample (e.g. the mean joint error of a frame) is summed; the
pooled result is the mean over samples, which equals the PoseAug/AdaptPose "all frames"
number. With ``per_action=True`` the same sums are kept per action id as well, giving the
VideoPose3D-style unweighted mean over actions (``"action_wise"``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torchmetrics import Metric, MetricCollection

from poseshift.geometry.procrustes import procrustes_align
from poseshift.geometry.skeleton import EVAL_JOINT_SETS
from poseshift.metrics.functional import (
    AUC_THRESHOLDS_MM,
    MM_PER_M,
    auc_from_errors,
    joint_errors,
    pck_from_errors,
    select_joints,
)

__all__ = ["AUC", "JOINT_SETS", "MPJPE", "PAMPJPE", "PCK", "DepthError", "pose_metrics", "resolve_joints"]

# Named joint subsets (H36M-17 indices), defined once in the geometry package: "all", "all16"
# and "official14" (the MPI-INF-3DHP PCK/AUC protocol).
JOINT_SETS: dict[str, tuple[int, ...]] = EVAL_JOINT_SETS


def resolve_joints(joints: Sequence[int] | str | None) -> tuple[int, ...] | None:
    """Normalise a joint selection: ``None``/``"all"`` -> None, a name in :data:`JOINT_SETS`, or indices."""
    if joints is None or (isinstance(joints, str) and joints == "all"):
        return None
    if isinstance(joints, str):
        if joints not in JOINT_SETS:
            known = sorted(JOINT_SETS)
            raise ValueError(f"unknown joint set {joints!r}; use 'all', one of {known} or a list of indices")
        return JOINT_SETS[joints]
    idx = tuple(int(j) for j in joints)
    if not idx:
        raise ValueError("joints must not be empty")
    if min(idx) < 0:
        raise ValueError(f"joints must be non-negative indices, got {idx}")
    return idx


def _check_pose(x: object, name: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor of shape (B, J, 3), got {type(x).__name__}")
    if x.dim() != 3 or x.shape[-1] != 3:
        raise ValueError(f"{name} must have shape (B, J, 3) in metres, got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"{name} must be a floating point tensor, got {x.dtype}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} contains NaN or infinite values")
    return x


class _PoseMetric(Metric):
    """Shared bookkeeping: validation, root-centring, joint selection and (per-action) sums.

    Subclasses define :meth:`_sample_values`, mapping selected per-joint errors (B, J') in mm
    to one value per sample; they may also override :meth:`_joint_errors`.
    """

    is_differentiable = False
    full_state_update = False

    def __init__(
        self,
        joints: Sequence[int] | str | None = None,
        root_relative: bool = True,
        per_action: bool = False,
        num_actions: int | None = None,
        **kwargs: object,
    ) -> None:
        super().__init__(**kwargs)
        self.joint_index = resolve_joints(joints)
        self.root_relative = root_relative
        self.per_action = per_action
        if per_action and (num_actions is None or num_actions < 1):
            raise ValueError(f"per_action=True needs num_actions >= 1, got {num_actions}")
        self.num_actions = num_actions
        # float64 sums and integer counts keep the DDP reduction exact over large test sets
        self.add_state("total", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")
        if per_action:
            zeros = torch.zeros(num_actions, dtype=torch.float64)
            self.add_state("action_total", zeros, dist_reduce_fx="sum")
            self.add_state("action_count", zeros.long(), dist_reduce_fx="sum")

    def _joint_errors(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Per-sample, per-joint Euclidean error (B, J') in mm."""
        return joint_errors(pred, target) * MM_PER_M

    def _sample_values(self, errors: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _check_action(self, action: object, batch: int) -> torch.Tensor:
        if not isinstance(action, torch.Tensor) or action.shape != (batch,) or action.is_floating_point():
            shape = tuple(action.shape) if isinstance(action, torch.Tensor) else type(action).__name__
            raise ValueError(f"action must be an integer tensor of shape ({batch},), got {shape}")
        lo, hi = (int(action.min()), int(action.max())) if batch else (0, 0)
        if lo < 0 or hi >= self.num_actions:
            raise ValueError(f"action ids must lie in [0, {self.num_actions}), got ids from {lo} to {hi}")
        return action.long()

    def update(self, pred: torch.Tensor, target: torch.Tensor, action: torch.Tensor | None = None) -> None:
        """Accumulate a batch of (B, J, 3) poses in metres; ``action`` (B,) ids if ``per_action``.

        ``action`` is ignored when ``per_action`` is False, so one evaluation loop can feed
        either configuration.
        """
        pred = _check_pose(pred, "pred")
        target = _check_pose(target, "target")
        if pred.shape != target.shape:
            raise ValueError(f"pred and target shapes differ: {tuple(pred.shape)} vs {tuple(target.shape)}")
        num_joints = pred.shape[1]
        if self.joint_index is not None and max(self.joint_index) >= num_joints:
            raise ValueError(f"joints {self.joint_index} index past the {num_joints} joints of pred/target")
        if self.per_action:
            if action is None:
                raise ValueError("action is required when per_action=True")
            action = self._check_action(action, pred.shape[0])

        # float64 so thresholds such as "strictly below 150 mm" are not decided by float32 rounding
        pred = pred.to(torch.float64)
        target = target.to(torch.float64)
        if self.root_relative:
            pred = pred - pred[:, :1]
            target = target - target[:, :1]
        pred, target = select_joints(pred, self.joint_index), select_joints(target, self.joint_index)

        values = self._sample_values(self._joint_errors(pred, target))
        self.total = self.total + values.sum()
        self.count = self.count + values.numel()
        if self.per_action:
            self.action_total = self.action_total.index_add(0, action, values)
            self.action_count = self.action_count.index_add(0, action, torch.ones_like(action))

    def compute(self) -> torch.Tensor | dict[str, torch.Tensor]:
        """Pooled mean over samples; with ``per_action`` a dict with "all", "action_wise", "per_action"."""
        pooled = (self.total / self.count).float()
        if not self.per_action:
            return pooled
        per_action = (self.action_total / self.action_count).float()  # NaN for actions without samples
        seen = self.action_count > 0
        action_wise = per_action[seen].mean() if bool(seen.any()) else pooled.new_tensor(float("nan"))
        return {"all": pooled, "action_wise": action_wise, "per_action": per_action}


class MPJPE(_PoseMetric):
    """Mean per-joint position error in mm (Protocol #1), root-relative by default."""

    higher_is_better = False

    def _sample_values(self, errors: torch.Tensor) -> torch.Tensor:
        return errors.mean(dim=-1)


class PAMPJPE(MPJPE):
    """MPJPE in mm after per-sample similarity Procrustes alignment (Protocol #2).

    The alignment uses the selected joints only (all joints by default); reflections are not
    allowed.
    """

    def _joint_errors(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return super()._joint_errors(procrustes_align(pred, target), target)


class DepthError(MPJPE):
    """Mean per-joint depth (z) error in mm, root-relative: ``mean |z_pred - z_gt|``.

    The depth part of the error alone (Deng et al.'s "only z" rows of their noise table):
    how well depth is recovered, apart from the x/y that the input 2D already fixes.
    """

    def _joint_errors(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return (pred[..., 2] - target[..., 2]).abs() * MM_PER_M


class PCK(_PoseMetric):
    """Percentage of (sample, joint) pairs whose error is strictly below ``threshold`` mm."""

    higher_is_better = True

    def __init__(
        self, joints: Sequence[int] | str | None = None, threshold: float = 150.0, **kwargs: object
    ) -> None:
        super().__init__(joints=joints, **kwargs)
        self.threshold = float(threshold)

    def _sample_values(self, errors: torch.Tensor) -> torch.Tensor:
        return pck_from_errors(errors, self.threshold)


class AUC(_PoseMetric):
    """Mean PCK (percent) over ``thresholds`` mm, by default 0, 5, ..., 150 (31 values).

    At threshold t a joint counts when its error is strictly below t, as the official
    MPI-INF-3DHP evaluator (``mpii_compute_3d_pck.m``) and the references' ``compute_AUC`` do, so
    published AUC numbers compare: the 0 mm point is always 0 and a perfect prediction scores
    100 x 30/31 = 96.77.
    """

    higher_is_better = True

    def __init__(
        self,
        joints: Sequence[int] | str | None = None,
        thresholds: Sequence[float] | None = None,
        **kwargs: object,
    ) -> None:
        super().__init__(joints=joints, **kwargs)
        if thresholds is None:
            thresholds = AUC_THRESHOLDS_MM
        self.thresholds = tuple(float(t) for t in thresholds)
        if not self.thresholds:
            raise ValueError("thresholds must not be empty")

    def _sample_values(self, errors: torch.Tensor) -> torch.Tensor:
        return auc_from_errors(errors, self.thresholds)


def pose_metrics(
    joints: Sequence[int] | str | None = None,
    *,
    root_relative: bool = True,
    per_action: bool = False,
    num_actions: int | None = None,
    pck_threshold: float = 150.0,
    depth_error: bool = False,
) -> MetricCollection:
    """The four standard metrics under keys "mpjpe", "pa_mpjpe", "pck", "auc" (and "z_error").

    ``depth_error`` adds :class:`DepthError` under "z_error".

    ``compute_groups`` is off: MPJPE-like metrics share state names, and torchmetrics would
    merge any two whose first-batch states happen to coincide (e.g. MPJPE and PA-MPJPE on a
    perfect first batch) and from then on update only one of them.
    """
    common = {
        "joints": joints,
        "root_relative": root_relative,
        "per_action": per_action,
        "num_actions": num_actions,
    }
    metrics: dict[str, Metric] = {
        "mpjpe": MPJPE(**common),
        "pa_mpjpe": PAMPJPE(**common),
        "pck": PCK(threshold=pck_threshold, **common),
        "auc": AUC(**common),
    }
    if depth_error:
        metrics["z_error"] = DepthError(**common)
    return MetricCollection(metrics, compute_groups=False)
