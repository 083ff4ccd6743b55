"""Pose generators (augmentors) shared by the adversarial methods: plain ``nn.Module``s.

* :class:`PoseAugmentor` is PoseAug's G (BA -> BL -> RT, each a noise-conditioned MLP on the
  original pose);
* :class:`LocalPoseAugmentor` is PoseDA's LPA generator (BA -> BL -> R, each a residual MLP
  on the condition pose, the previous sub-net's output and noise; no translation);
* :class:`MotionGenerator` is AdaptPose's G on 3D windows (BG1/BG2/BG3 bone motion, BL shared
  over the frames, and :class:`CameraGenerator`, a deterministic or sampled camera);
* :class:`DepthLifter` is Deng et al.'s generator (2D -> one depth per joint) wrapped as a
  lifter, and :class:`ReprojectionNet` their reprojection network (rotated 3D -> 2D).

PoseAug's and PoseDA's generators share :class:`AugmentorHeads` (BA, BL and rotation from raw
head outputs with PoseAug's squashing); the pieces every generator uses (:func:`noise_mlp`,
:func:`with_noise`, :func:`bone_length_ratios`, :func:`translation_from_raw`) live here once,
and the geometric operations themselves in :mod:`poseshift.augment`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from poseshift.augment import (
    BA_FROZEN_BONES_H36M17,
    BL_GROUPS_H36M17,
    bone_angle_perturb,
    bone_direction_ramp,
    bone_length_scale,
    bone_rotation_ramp,
    expand_shared,
    group_matrix,
    rigid_transform,
    rigid_transform_matrix,
)
from poseshift.geometry.body import mean_root_distance, normalize_scale, total_bone_length
from poseshift.geometry.bones import bone_lengths
from poseshift.geometry.rotations import (
    axis_angle_to_matrix,
    euler_to_matrix,
    matrix_to_axis_angle,
    quaternion_to_matrix,
)
from poseshift.geometry.skeleton import H36M17, Skeleton
from poseshift.models.blocks import ResidualMLP, check_pose2d, kaiming_init_linear

SCALE_RESTORES = ("bone_length", "root_distance")


def noise_mlp(in_features: int, out_features: int | None, width: int, num_stages: int) -> ResidualMLP:
    """PoseAug's generator trunk: Linear+BN+LReLU, then skip-free [Linear, BN, LReLU] x2 blocks, head.

    Residual connections are off, as in the reference (METHODS.md 2.1). ``out_features=None``
    leaves the head out (the trunk's last hidden layer is the output).
    """
    return ResidualMLP(
        in_features,
        out_features,
        width=width,
        num_stages=num_stages,
        dropout=0.0,
        residual=False,
        activation=nn.LeakyReLU,
    )


def with_noise(noise_dim: int, *features: torch.Tensor) -> torch.Tensor:
    """Concatenate (B, F_i) features and fresh N(0, I) noise (B, noise_dim)."""
    x = torch.cat(features, dim=-1)
    return torch.cat([x, torch.randn(x.shape[0], noise_dim, device=x.device, dtype=x.dtype)], dim=-1)


def bone_length_ratios(
    raw: torch.Tensor, keep: torch.Tensor, groups: torch.Tensor, limit: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """PoseAug's BL head output (B, G) -> shared residuals ``limit * tanh(raw * keep)`` (B, G) and
    per-bone length ratios ``1 + residual`` (B, nb); ``keep`` zeroes the held groups."""
    blr = limit * torch.tanh(raw * keep)
    return blr, 1 + expand_shared(blr, groups)


def register_bl_groups(
    module: nn.Module, bl_groups: Sequence[Sequence[int]], held_groups: Sequence[int], num_bones: int
) -> None:
    """Give a generator the BL buffers :func:`bone_length_ratios` reads: ``bl_groups`` (G, nb)
    membership and ``bl_keep`` (G,), 0 for the groups held at ratio 1 (not saved: rebuilt from args)."""
    module.register_buffer("bl_groups", group_matrix(bl_groups, num_bones), persistent=False)
    keep = torch.ones(len(bl_groups))
    keep[list(held_groups)] = 0.0
    module.register_buffer("bl_keep", keep, persistent=False)


def translation_from_raw(raw: torch.Tensor) -> torch.Tensor:
    """(B, 3) head output -> new absolute root: x, y as they are, ``z = raw_z^2`` (>= 0, the references)."""
    return torch.cat([raw[..., :2], raw[..., 2:] ** 2], dim=-1)


class AugmentorHeads(nn.Module):
    """What PoseAug's and PoseDA's generators share: noise, and BA / BL / rotation from raw head outputs.

    Subclasses build the sub-nets; these methods apply PoseAug's squashing (METHODS.md 2.2):
    BA adds the raw (nb, 3) output to the unit bone directions (``ba_frozen`` held), BL maps
    ``blr_limit * tanh(raw)`` per shared group (``bl_held_groups`` held at 0) to every bone, and
    the rotation is the axis-angle ``rot_limit * tanh(raw)``.

    Args:
        skeleton: joint layout.
        noise_dim: Gaussian noise size per sub-net.
        blr_limit: BL residual bound, ``ratio = 1 + blr_limit * tanh(.)``.
        rot_limit: bound of each axis-angle component, radians (PoseAug: pi).
        bl_groups: bones sharing one BL ratio (left = right).
        ba_frozen: bones BA may not turn.
        bl_held_groups: BL groups whose ratio is held at 1 (the reference holds spine->thorax).
    """

    def __init__(
        self,
        skeleton: Skeleton = H36M17,
        noise_dim: int = 48,
        blr_limit: float = 0.2,
        rot_limit: float = math.pi,
        bl_groups: Sequence[Sequence[int]] = BL_GROUPS_H36M17,
        ba_frozen: Sequence[int] = BA_FROZEN_BONES_H36M17,
        bl_held_groups: Sequence[int] = (4,),
    ) -> None:
        super().__init__()
        self.skeleton = skeleton
        self.noise_dim = noise_dim
        self.blr_limit = blr_limit
        self.rot_limit = rot_limit
        self.ba_frozen = tuple(ba_frozen)
        register_bl_groups(self, bl_groups, bl_held_groups, skeleton.num_bones)

    def _with_noise(self, *features: torch.Tensor) -> torch.Tensor:
        return with_noise(self.noise_dim, *features)

    def apply_ba(self, pose: torch.Tensor, raw: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """BA from raw (B, 3 nb) outputs: the turned poses and ``1 - cos`` per bone (B, nb)."""
        delta = raw.reshape(pose.shape[0], self.skeleton.num_bones, 3)
        return bone_angle_perturb(pose, delta, self.ba_frozen, self.skeleton)

    def apply_bl(
        self, pose: torch.Tensor, raw: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """BL from raw (B, G) outputs: the rescaled poses, the shared residuals (B, G), the ratios (B, nb)."""
        blr, ratios = bone_length_ratios(raw, self.bl_keep, self.bl_groups, self.blr_limit)
        return bone_length_scale(pose, ratios, self.skeleton), blr, ratios

    def axis_angle(self, raw: torch.Tensor) -> torch.Tensor:
        """Rotation vectors (B, 3) from raw (B, 3) outputs."""
        return self.rot_limit * torch.tanh(raw)


class PoseAugmentor(AugmentorHeads):
    """The augmentor G: BA -> BL -> RT, each a noise-conditioned MLP on the *original* pose.

    Args:
        skeleton: joint layout.
        width: hidden width of each sub-net (reference 256).
        num_stages: blocks per sub-net (reference 2).
        noise_dim: Gaussian noise size per sub-net (reference 48).
        use_ba: build the bone-angle sub-net (else BA is the identity and has no weights).
        use_bl: build the bone-length sub-net.
        use_rt: build the rotation and translation sub-nets.
        blr_limit: BL residual bound, ``ratio = 1 + blr_limit * tanh(.)`` (reference 0.2).
        bl_groups: bones sharing one BL ratio (left = right).
        ba_frozen: bones BA may not turn.
        bl_held_groups: BL groups whose ratio is held at 1 (the reference holds spine->thorax).
    """

    def __init__(
        self,
        skeleton: Skeleton = H36M17,
        width: int = 256,
        num_stages: int = 2,
        noise_dim: int = 48,
        use_ba: bool = True,
        use_bl: bool = True,
        use_rt: bool = True,
        blr_limit: float = 0.2,
        bl_groups: Sequence[Sequence[int]] = BL_GROUPS_H36M17,
        ba_frozen: Sequence[int] = BA_FROZEN_BONES_H36M17,
        bl_held_groups: Sequence[int] = (4,),
    ) -> None:
        super().__init__(skeleton, noise_dim, blr_limit, math.pi, bl_groups, ba_frozen, bl_held_groups)
        j3, nb = 3 * skeleton.num_joints, skeleton.num_bones
        self.ba = noise_mlp(j3 + noise_dim, 3 * nb, width, num_stages) if use_ba else None
        self.bl = noise_mlp(j3 + nb + noise_dim, len(bl_groups), width, num_stages) if use_bl else None
        self.rot = noise_mlp(j3 + noise_dim, 3, width, num_stages) if use_rt else None
        self.trans = noise_mlp(j3 + noise_dim, 3, width, num_stages) if use_rt else None
        kaiming_init_linear(self)

    def forward(self, pose: torch.Tensor) -> dict[str, torch.Tensor]:
        """Augment absolute camera-frame poses (B, J, 3).

        Returns a dict: ``pose_ba``, ``pose_bl``, ``pose_rt`` (B, J, 3, absolute), ``ba_diff`` (B, nb),
        ``blr`` (B, 9) shared BL residuals, ``ratios`` (B, nb), ``axis_angle`` and ``translation`` (B, 3).
        """
        b, nb = pose.shape[0], self.skeleton.num_bones
        flat = (pose - pose[:, :1]).reshape(b, -1)  # every sub-net sees the original root-relative pose
        if self.ba is not None:
            pose_ba, ba_diff = self.apply_ba(pose, self.ba(self._with_noise(flat)))
        else:
            pose_ba, ba_diff = pose, pose.new_zeros(b, nb)
        if self.bl is not None:
            raw = self.bl(self._with_noise(flat, bone_lengths(pose, self.skeleton)))
            pose_bl, blr, ratios = self.apply_bl(pose_ba, raw)
        else:
            blr, ratios, pose_bl = pose.new_zeros(b, self.bl_groups.shape[0]), pose.new_ones(b, nb), pose_ba
        if self.rot is not None and self.trans is not None:
            axis_angle = self.axis_angle(self.rot(self._with_noise(flat)))
            # t is the new absolute root; t_z = raw^2 keeps it in front of the camera plane
            translation = translation_from_raw(self.trans(self._with_noise(flat)))
            pose_rt = rigid_transform(pose_bl, axis_angle, translation)
        else:
            axis_angle, translation, pose_rt = pose.new_zeros(b, 3), pose_bl[:, 0], pose_bl
        return {
            "pose_ba": pose_ba,
            "ba_diff": ba_diff,
            "pose_bl": pose_bl,
            "blr": blr,
            "ratios": ratios,
            "axis_angle": axis_angle,
            "translation": translation,
            "pose_rt": pose_rt,
        }


def residual_noise_mlp(in_features: int, out_features: int, width: int, block_layers: int) -> ResidualMLP:
    """PoseDA's generator sub-net: Linear+BN+LReLU, one residual block of ``block_layers``
    [Linear, BN, LReLU] with its skip, and a Linear head (``block_layers=1``: 3 Linear layers,
    the paper's "3-layer residual MLP"; the paper gives no widths or normalization, so PoseAug's
    width and BatchNorm are kept)."""
    return ResidualMLP(
        in_features,
        out_features,
        width=width,
        num_stages=1,
        dropout=0.0,
        residual=True,
        activation=nn.LeakyReLU,
        block_layers=block_layers,
    )


class LocalPoseAugmentor(AugmentorHeads):
    """PoseDA's local pose augmentation G: BA -> BL -> R on root-relative poses, no translation.

    The three sub-nets run in sequence (PoseDA 4.2: "each network receives the output of the
    previous network as well as noise"); each also sees the condition pose (the source pose by
    default). Inputs: BA ``[cond, z]``, BL ``[cond, pose_ba, z]``, R ``[cond, pose_bl, z]``
    (flattened root-relative joints, fresh N(0, I) noise each). The transformations are applied
    to the source pose; the output stays root-relative, because GPA (or the source root) places it.

    Args:
        skeleton: joint layout.
        width: hidden width of each sub-net (PoseAug's 256; the paper gives none).
        block_layers: Linear layers in each sub-net's residual block (1: 3 Linear layers in all).
        noise_dim: Gaussian noise size per sub-net (PoseAug's 48).
        use_ba: build the bone-angle sub-net (else BA is the identity).
        use_bl: build the bone-length sub-net.
        use_rot: build the rotation sub-net.
        blr_limit: BL residual bound (PoseAug's 0.2).
        rot_limit: bound of each axis-angle component, radians (PoseAug's pi).
        bl_groups: bones sharing one BL ratio (left = right).
        ba_frozen: bones BA may not turn.
        bl_held_groups: BL groups whose ratio is held at 1.
    """

    def __init__(
        self,
        skeleton: Skeleton = H36M17,
        width: int = 256,
        block_layers: int = 1,
        noise_dim: int = 48,
        use_ba: bool = True,
        use_bl: bool = True,
        use_rot: bool = True,
        blr_limit: float = 0.2,
        rot_limit: float = math.pi,
        bl_groups: Sequence[Sequence[int]] = BL_GROUPS_H36M17,
        ba_frozen: Sequence[int] = BA_FROZEN_BONES_H36M17,
        bl_held_groups: Sequence[int] = (4,),
    ) -> None:
        super().__init__(skeleton, noise_dim, blr_limit, rot_limit, bl_groups, ba_frozen, bl_held_groups)
        if not (use_ba or use_bl or use_rot):
            raise ValueError("LocalPoseAugmentor needs at least one of BA, BL, R")
        j3, nb = 3 * skeleton.num_joints, skeleton.num_bones
        self.ba = residual_noise_mlp(j3 + noise_dim, 3 * nb, width, block_layers) if use_ba else None
        self.bl = (
            residual_noise_mlp(2 * j3 + noise_dim, len(bl_groups), width, block_layers) if use_bl else None
        )
        self.rot = residual_noise_mlp(2 * j3 + noise_dim, 3, width, block_layers) if use_rot else None
        kaiming_init_linear(self)

    def forward(self, pose: torch.Tensor, condition: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Augment poses (B, J, 3) (made root-relative), conditioned on ``condition`` (B, J, 3)
        (default: the poses themselves).

        Returns a dict: ``pose_ba``, ``pose_bl``, ``pose`` (B, J, 3, root-relative; ``pose`` is
        the final output), ``ba_diff`` (B, nb), ``blr`` (B, G), ``ratios`` (B, nb), ``axis_angle`` (B, 3).
        """
        b, nb = pose.shape[0], self.skeleton.num_bones
        pose = pose - pose[:, :1]
        cond = pose if condition is None else condition - condition[:, :1]
        cond = cond.reshape(b, -1)
        if self.ba is not None:
            pose_ba, ba_diff = self.apply_ba(pose, self.ba(self._with_noise(cond)))
        else:
            pose_ba, ba_diff = pose, pose.new_zeros(b, nb)
        if self.bl is not None:
            raw = self.bl(self._with_noise(cond, pose_ba.reshape(b, -1)))
            pose_bl, blr, ratios = self.apply_bl(pose_ba, raw)
        else:
            blr, ratios, pose_bl = pose.new_zeros(b, self.bl_groups.shape[0]), pose.new_ones(b, nb), pose_ba
        if self.rot is not None:
            axis_angle = self.axis_angle(self.rot(self._with_noise(cond, pose_bl.reshape(b, -1))))
            # rotation about the root (at the origin), which stays where it is
            out = rigid_transform(pose_bl, axis_angle, pose_bl[:, 0])
        else:
            axis_angle, out = pose.new_zeros(b, 3), pose_bl
        return {
            "pose_ba": pose_ba,
            "ba_diff": ba_diff,
            "pose_bl": pose_bl,
            "blr": blr,
            "ratios": ratios,
            "axis_angle": axis_angle,
            "pose": out,
        }


BONE_GENERATORS = ("bg1", "bg2", "bg3")
ROTATIONS = ("axis_angle", "quaternion", "euler")
CAMERA_SAMPLES = ("reparameterized", "code")
CAMERA_HEADS = ("hidden", "linear")


class CameraGenerator(nn.Module):
    """AdaptPose's RT: a rotation (deterministic, or sampled from a learned Gaussian) and a translation.

    Two noise-conditioned trunks (R and T). The rotation is parameterized as

    ============  ==========================================  ==============================
    rotation      probabilistic (paper sec. 4.2)              deterministic
    ============  ==========================================  ==============================
    axis_angle    axis ~ N(mu, sigma) (3), normalized; the    r (3), angle ``|r|``
                  angle theta is a separate unit (code, 7)
    quaternion    q ~ N(mu, sigma) (4), normalized            q (4), normalized
    euler         (a, b, c) ~ N(mu, sigma), R = Rz Ry Rx      (a, b, c)
    ============  ==========================================  ==============================

    with ``sigma = raw^2``. ``head="hidden"`` reads these parameters straight off the first units
    of the R trunk's last hidden layer (after BN and LeakyReLU), as AdaptPose's code does (its
    head layer is built but its call is commented out); ``"linear"`` adds a Linear head.
    ``sample="reparameterized"`` draws ``mu + sigma * eps`` so mu and sigma get gradients;
    ``"code"`` calls ``torch.normal(mu, sigma)``, whose gradient to mu and sigma is zero (the
    R trunk then learns only through the angle unit), as the released code.

    Args:
        in_features: size of the conditioning features.
        width: trunk width (256).
        num_stages: blocks per trunk (2).
        noise_dim: noise size per trunk (the code: 45).
        rotation: ``"axis_angle"``, ``"quaternion"`` or ``"euler"``.
        probabilistic: sample the rotation from the learned distribution (else use mu).
        sample: ``"reparameterized"`` or ``"code"``.
        head: ``"hidden"`` (code) or ``"linear"``.
    """

    def __init__(
        self,
        in_features: int,
        width: int = 256,
        num_stages: int = 2,
        noise_dim: int = 45,
        rotation: str = "axis_angle",
        probabilistic: bool = True,
        sample: str = "code",
        head: str = "hidden",
    ) -> None:
        super().__init__()
        for name, value, allowed in (
            ("rotation", rotation, ROTATIONS),
            ("sample", sample, CAMERA_SAMPLES),
            ("head", head, CAMERA_HEADS),
        ):
            if value not in allowed:
                raise ValueError(f"camera {name} must be one of {allowed}, got {value!r}")
        self.rotation, self.probabilistic, self.sample = rotation, probabilistic, sample
        self.noise_dim = noise_dim
        self.dim = 4 if rotation == "quaternion" else 3  # size of mu (and of sigma)
        # mu, sigma and (axis-angle) the angle unit when sampled; only the rotation itself otherwise
        self.num_params = (2 * self.dim + (rotation == "axis_angle")) if probabilistic else self.dim
        if head == "hidden" and width < self.num_params:
            raise ValueError(f"head='hidden' needs width >= {self.num_params}, got {width}")
        self.rot = noise_mlp(
            in_features + noise_dim, None if head == "hidden" else self.num_params, width, num_stages
        )
        self.trans = noise_mlp(in_features + noise_dim, 3, width, num_stages)

    def forward(self, cond: torch.Tensor) -> dict[str, torch.Tensor]:
        """Conditioning features (B, F) -> ``rotation`` (B, 3, 3), ``translation`` (B, 3), the
        distribution's ``mu`` and ``sigma`` (B, d; sigma zero when deterministic) and the angle."""
        h = self.rot(with_noise(self.noise_dim, cond))[:, : self.num_params]
        d = self.dim
        mu = h[:, :d]
        if self.probabilistic:
            sigma = h[:, d : 2 * d] ** 2
            if self.sample == "reparameterized":
                z = mu + sigma * torch.randn_like(mu)
            else:
                z = torch.normal(mu, sigma)  # the code: zero gradient to mu and sigma
        else:
            sigma, z = torch.zeros_like(mu), mu
        if self.rotation == "axis_angle":
            if self.probabilistic:  # a sampled unit axis and the code's unbounded angle unit
                aa = z / torch.linalg.vector_norm(z, dim=-1, keepdim=True).clamp_min(1e-8) * h[:, 2 * d :]
            else:  # the paper's deterministic axis-angle: the angle is |r|
                aa = z
            rot = axis_angle_to_matrix(aa)
        elif self.rotation == "quaternion":
            rot = quaternion_to_matrix(z)
        else:
            rot = euler_to_matrix(z, "zyx")  # R = Rz(a) Ry(b) Rx(c), paper eq. 12
        translation = translation_from_raw(self.trans(with_noise(self.noise_dim, cond)))
        return {"rotation": rot, "translation": translation, "mu": mu, "sigma": sigma}


class MotionGenerator(nn.Module):
    """AdaptPose's human motion generator on 3D windows: bone motion -> BL -> RT.

    Every sub-net is a noise-conditioned MLP (PoseAug's skip-free blocks, kaiming init) on the
    window's *middle* frame, root-relative, as the code (BG1 reads the whole window and BG2 its
    first frame, as the paper describes those two, which are not in the code):

    * bone motion (``bone_generator``): ``"bg3"`` (the paper's choice and the code's BA): a
      per-bone axis and angle; frame t turns each bone by ``angle * t / T``
      (:func:`~poseshift.augment.bone_rotation_ramp`). ``"bg1"``: one residual on the unit
      bone directions for every frame (paper eq. 5). ``"bg2"``: the first frame's bones moved
      linearly towards a residual over the window (paper eq. 6). Pelvis->spine->thorax stay.
    * BL: PoseAug's 9 shared length ratios, one set for the whole window.
    * RT (:class:`CameraGenerator`): one rotation and translation for every frame. With
      ``static_root`` (code) each frame is rotated about its own root and its root placed at t,
      which removes the source trajectory; otherwise the window turns about its middle frame's
      root, which lands at t, and the trajectory moves rigidly with it.

    Args:
        skeleton: joint layout.
        width: hidden width of every sub-net (256).
        num_stages: blocks per sub-net (2).
        noise_dim: noise size of the bone-motion, R and T sub-nets (the code: 45).
        bl_noise_dim: noise size of the BL sub-net (the code: 48).
        frames: window length T the generator is built for (BG1 reads all T frames).
        bone_generator: ``"bg1"``, ``"bg2"`` or ``"bg3"``.
        use_ba: generate bone motion (Table 5's "BG" column with ``use_bl``).
        use_bl: generate bone-length changes.
        use_rt: generate a camera (rotation and translation).
        blr_limit: BL residual bound (0.2).
        rotation: camera rotation representation (see :class:`CameraGenerator`).
        probabilistic_camera: sample the rotation from a learned distribution (paper: yes).
        camera_sample: ``"code"`` (``torch.normal``, no gradient to mu and sigma) or
            ``"reparameterized"``.
        camera_head: ``"hidden"`` (code) or ``"linear"``.
        static_root: every frame's root at the generated translation (code) or keep the trajectory.
        bl_groups: bones sharing one BL ratio (left = right).
        ba_frozen: bones the bone motion may not turn.
        bl_held_groups: BL groups whose ratio is held at 1 (spine->thorax).
    """

    def __init__(
        self,
        skeleton: Skeleton = H36M17,
        width: int = 256,
        num_stages: int = 2,
        noise_dim: int = 45,
        bl_noise_dim: int = 48,
        frames: int = 27,
        bone_generator: str = "bg3",
        use_ba: bool = True,
        use_bl: bool = True,
        use_rt: bool = True,
        blr_limit: float = 0.2,
        rotation: str = "axis_angle",
        probabilistic_camera: bool = True,
        camera_sample: str = "code",
        camera_head: str = "hidden",
        static_root: bool = True,
        bl_groups: Sequence[Sequence[int]] = BL_GROUPS_H36M17,
        ba_frozen: Sequence[int] = BA_FROZEN_BONES_H36M17,
        bl_held_groups: Sequence[int] = (4,),
    ) -> None:
        super().__init__()
        if bone_generator not in BONE_GENERATORS:
            raise ValueError(f"bone_generator must be one of {BONE_GENERATORS}, got {bone_generator!r}")
        if frames < 1:
            raise ValueError(f"frames must be >= 1, got {frames}")
        self.skeleton, self.frames, self.bone_generator = skeleton, frames, bone_generator
        self.noise_dim, self.bl_noise_dim, self.blr_limit = noise_dim, bl_noise_dim, blr_limit
        self.ba_frozen, self.static_root = tuple(ba_frozen), static_root
        j3, nb = 3 * skeleton.num_joints, skeleton.num_bones
        register_bl_groups(self, bl_groups, bl_held_groups, skeleton.num_bones)
        ba_in = j3 * frames if bone_generator == "bg1" else j3
        ba_out = nb * 4 if bone_generator == "bg3" else nb * 3  # axis + angle, or a residual
        self.ba = noise_mlp(ba_in + noise_dim, ba_out, width, num_stages) if use_ba else None
        self.bl = noise_mlp(j3 + nb + bl_noise_dim, len(bl_groups), width, num_stages) if use_bl else None
        self.camera = (
            CameraGenerator(
                j3, width, num_stages, noise_dim, rotation, probabilistic_camera, camera_sample, camera_head
            )
            if use_rt
            else None
        )
        kaiming_init_linear(self)

    def forward(self, window: torch.Tensor) -> dict[str, torch.Tensor]:
        """Generate from absolute camera-frame windows (B, T, J, 3).

        Returns a dict: ``pose_ba``, ``pose_bl``, ``pose_rt`` (B, T, J, 3, absolute),
        ``ba_diff`` (B, T, nb), ``blr`` (B, 9), ``ratios`` (B, nb), ``rotation`` (B, 3, 3),
        ``translation`` (B, 3), ``camera_mu`` / ``camera_sigma`` (B, d), ``axis_angle`` (B, 3,
        detached, for statistics) and, for BG3, each bone's ``bone_axis`` (B, nb, 3, not
        normalized) and full ``bone_angle`` (B, nb).
        """
        b, t = window.shape[:2]
        if t != self.frames:
            raise ValueError(
                f"this generator was built for {self.frames}-frame windows, got {tuple(window.shape)}"
            )
        nb, mid = self.skeleton.num_bones, t // 2
        rel = window - window[:, :, :1]
        extra: dict[str, torch.Tensor] = {}
        cond = rel[:, mid].reshape(b, -1)  # the code conditions every sub-net on the middle frame
        if self.ba is not None:
            if self.bone_generator == "bg3":
                out = self.ba(with_noise(self.noise_dim, cond)).reshape(b, nb, 4)
                extra = {"bone_axis": out[..., :3], "bone_angle": out[..., 3]}
                pose_ba, ba_diff = bone_rotation_ramp(
                    window, out[..., :3], out[..., 3], None, self.ba_frozen, self.skeleton
                )
            elif self.bone_generator == "bg2":
                delta = self.ba(with_noise(self.noise_dim, rel[:, 0].reshape(b, -1))).reshape(b, nb, 3)
                pose_ba, ba_diff = bone_direction_ramp(window, delta, None, self.ba_frozen, self.skeleton)
            else:
                delta = self.ba(with_noise(self.noise_dim, rel.reshape(b, -1))).reshape(b, 1, nb, 3)
                pose_ba, ba_diff = bone_angle_perturb(window, delta, self.ba_frozen, self.skeleton)
        else:
            pose_ba, ba_diff = window, window.new_zeros(b, t, nb)
        if self.bl is not None:
            raw = self.bl(with_noise(self.bl_noise_dim, cond, bone_lengths(rel[:, mid], self.skeleton)))
            blr, ratios = bone_length_ratios(raw, self.bl_keep, self.bl_groups, self.blr_limit)
            pose_bl = bone_length_scale(pose_ba, ratios[:, None], self.skeleton)  # one set for all frames
        else:
            blr, ratios, pose_bl = (
                window.new_zeros(b, self.bl_groups.shape[0]),
                window.new_ones(b, nb),
                pose_ba,
            )
        if self.camera is not None:
            cam = self.camera(cond)
            rot, translation, mu, sigma = cam["rotation"], cam["translation"], cam["mu"], cam["sigma"]
            origin = None if self.static_root else pose_bl[:, mid : mid + 1, :1]
            pose_rt = rigid_transform_matrix(pose_bl, rot[:, None], translation[:, None], origin)
        else:
            rot = torch.eye(3, dtype=window.dtype, device=window.device).expand(b, 3, 3)
            translation, mu, sigma = pose_bl[:, mid, 0], window.new_zeros(b, 3), window.new_zeros(b, 3)
            pose_rt = pose_bl
        with torch.no_grad():
            axis_angle = matrix_to_axis_angle(rot.detach())
        return {
            "pose_ba": pose_ba,
            "ba_diff": ba_diff,
            "pose_bl": pose_bl,
            "blr": blr,
            "ratios": ratios,
            "pose_rt": pose_rt,
            "rotation": rot,
            "translation": translation,
            "camera_mu": mu,
            "camera_sigma": sigma,
            "axis_angle": axis_angle,
            **extra,
        }


def martinez_mlp(
    in_features: int, out_features: int, width: int, num_stages: int, dropout: float
) -> ResidualMLP:
    """Deng et al.'s generator / reprojection trunk: Martinez's residual MLP with BN, LeakyReLU, dropout.

    ``Linear(in->width)+BN+LReLU+Drop``, ``num_stages`` residual blocks of two such layers, then
    ``Linear(width->out)``; every Linear weight ``kaiming_normal_`` as in Martinez/PoseAug.
    """
    mlp = ResidualMLP(
        in_features,
        out_features,
        width=width,
        num_stages=num_stages,
        dropout=dropout,
        activation=nn.LeakyReLU,
    )
    kaiming_init_linear(mlp)
    return mlp


class DepthLifter(nn.Module):
    """Deng et al.'s generator as a lifter: 2D -> one depth per joint, 3D pose = (x, y, z).

    The generator works on scale-free poses (the paper's preprocessing): the 2D input is
    root-centred and divided by its mean joint-to-root distance, the network predicts a depth
    z for each of the J joints, and the generated pose is ``(x_n, y_n, z - z_root)``, which
    keeps the normalized input 2D exactly in x and y (:meth:`generate`).

    :meth:`forward` is what poseshift evaluates: screen-normalized 2D (B, J, 2) -> root-relative
    3D (B, J, 3) in metres. The paper does not say how its scale-free output becomes
    millimetres; here the generated pose is scaled so that

    * ``"bone_length"`` (default): its total bone length equals :attr:`metric_bone_length`,
      the mean total bone length of the source training poses. The sum of bone lengths does
      not change when a body bends, so a correctly shaped pose of an average-sized body comes
      out in exact metres;
    * ``"root_distance"``: its mean joint-to-root distance equals :attr:`metric_root_distance`,
      the source mean of the paper's own normalizer (which shrinks when the body crouches, so
      curled poses come out too large).

    The two references are buffers (saved in checkpoints), set by the method from the source
    training set before training (:meth:`set_metric_reference`).

    Args:
        skeleton: joint layout; J = ``skeleton.num_joints``.
        width: hidden width of the generator MLP (Martinez: 1024).
        num_stages: residual blocks (the paper: 2).
        dropout: dropout rate after each activation (Martinez: 0.5).
        scale_restore: how metres are restored, ``"bone_length"`` or ``"root_distance"``.
    """

    receptive_field: int = 1

    def __init__(
        self,
        skeleton: Skeleton = H36M17,
        width: int = 1024,
        num_stages: int = 2,
        dropout: float = 0.5,
        scale_restore: str = "bone_length",
    ) -> None:
        super().__init__()
        if scale_restore not in SCALE_RESTORES:
            raise ValueError(f"scale_restore must be one of {SCALE_RESTORES}, got {scale_restore!r}")
        self.skeleton = skeleton
        self.num_joints = skeleton.num_joints
        self.scale_restore = scale_restore
        self.generator = martinez_mlp(2 * self.num_joints, self.num_joints, width, num_stages, dropout)
        self.register_buffer("incidence", skeleton.incidence(), persistent=False)
        # NaN until set from the source data: a lifter that was never given metres fails loudly
        self.register_buffer("metric_bone_length", torch.tensor(float("nan")))
        self.register_buffer("metric_root_distance", torch.tensor(float("nan")))

    @torch.no_grad()
    def set_metric_reference(self, poses: torch.Tensor) -> None:
        """Set both metric references from (N, J, 3) source poses in metres."""
        # once, before training, on the host in float64 (the sums run over the whole training set)
        poses = poses.detach().cpu().double()
        self.metric_bone_length.fill_(float(total_bone_length(poses, self.incidence.cpu().double()).mean()))
        self.metric_root_distance.fill_(float(mean_root_distance(poses).mean()))

    @property
    def has_metric_reference(self) -> bool:
        return bool(torch.isfinite(self.metric_bone_length)) and bool(
            torch.isfinite(self.metric_root_distance)
        )

    def normalize_input(self, pose2d: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, J, 2) screen 2D -> root-centred 2D with unit mean root distance, and the scales (B,)."""
        return normalize_scale(pose2d)

    def generate(self, pose2d_normalized: torch.Tensor) -> torch.Tensor:
        """Normalized 2D (B, J, 2) -> the generated pose (B, J, 3): the input x, y and the depths.

        Depths are made relative to the root's so the pose is root-centred like the 2D.
        """
        b = pose2d_normalized.shape[0]
        z = self.generator(pose2d_normalized.reshape(b, 2 * self.num_joints))
        return torch.cat([pose2d_normalized, (z - z[:, :1]).unsqueeze(-1)], dim=-1)

    def to_metres(self, pose: torch.Tensor) -> torch.Tensor:
        """Scale scale-free root-centred poses (B, J, 3) to metres by :attr:`scale_restore`."""
        if self.scale_restore == "bone_length":
            size, reference = total_bone_length(pose, self.incidence), self.metric_bone_length
        else:
            size, reference = mean_root_distance(pose), self.metric_root_distance
        return pose * (reference.to(pose.dtype) / size.clamp_min(1e-8))[:, None, None]

    def forward(self, pose2d: torch.Tensor) -> torch.Tensor:
        """(B, J, 2) screen-normalized 2D -> (B, J, 3) root-relative 3D in metres."""
        check_pose2d(pose2d, self.num_joints, type(self).__name__)
        return self.to_metres(self.generate(self.normalize_input(pose2d)[0]))


class ReprojectionNet(nn.Module):
    """Deng et al.'s reprojection network: a (rotated) 3D pose (B, J, 3) -> a 2D pose (B, J, 2).

    The generator's Martinez-style MLP with one residual block (the paper).

    Args:
        num_joints: joints J.
        width: hidden width (1024, as the generator).
        num_stages: residual blocks (the paper: 1).
        dropout: dropout rate (0.5, as the generator).
    """

    def __init__(
        self,
        num_joints: int = H36M17.num_joints,
        width: int = 1024,
        num_stages: int = 1,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        self.num_joints = num_joints
        self.mlp = martinez_mlp(3 * num_joints, 2 * num_joints, width, num_stages, dropout)

    def forward(self, pose3d: torch.Tensor) -> torch.Tensor:
        b = pose3d.shape[0]
        return self.mlp(pose3d.reshape(b, 3 * self.num_joints)).reshape(b, self.num_joints, 2)


__all__ = [
    "BONE_GENERATORS",
    "CAMERA_HEADS",
    "CAMERA_SAMPLES",
    "ROTATIONS",
    "AugmentorHeads",
    "CameraGenerator",
    "DepthLifter",
    "LocalPoseAugmentor",
    "MotionGenerator",
    "PoseAugmentor",
    "ReprojectionNet",
    "SCALE_RESTORES",
    "bone_length_ratios",
    "martinez_mlp",
    "noise_mlp",
    "residual_noise_mlp",
    "translation_from_raw",
    "with_noise",
]
