"""GAN and band losses shared by the adversarial methods (plain functions, no state).

* LSGAN (PoseAug, AdaptPose): :func:`lsgan_loss`, :func:`lsgan_generator_loss`,
  :func:`lsgan_discriminator_loss`.
* WGAN (PoseDA, SyncAdv-wKCS): :func:`wgan_critic_loss`, :func:`wgan_generator_loss`, with
  either :func:`clip_weights` (Arjovsky et al.) or :func:`gradient_penalty` (Gulrajani et al.).
* Bands (PoseAug's regularizer and feedback): :func:`range_loss`, :func:`rectified_l2`, and
  the BA/BL regularizer built from them, :func:`bone_change_regularizer`.
* Pose priors for generators: :func:`angle_loss` (Deng et al.'s L_angle).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from poseshift.geometry.body import facing_sine
from poseshift.geometry.skeleton import H36M17, Skeleton

Inputs = torch.Tensor | Sequence[torch.Tensor]


# -- bands ------------------------------------------------------------------------------------------
def range_loss(
    a: torch.Tensor, center: float | torch.Tensor, half_width: float | torch.Tensor
) -> torch.Tensor:
    """``mean[(a - m)^2 * 1{(a - m)^2 > w^2}]``: zero inside the band ``|a - m| <= w``, quadratic outside."""
    d2 = (a - center) ** 2
    return torch.where(d2 > half_width**2, d2, torch.zeros_like(d2)).mean()


def rectified_l2(gamma: torch.Tensor, threshold: float) -> torch.Tensor:
    """Element-wise rectified L2 ``mean[g^2 * 1{g^2 > t^2}]`` (PoseAug's code form of its eq. 10)."""
    return range_loss(gamma, 0.0, threshold)


def bone_change_regularizer(
    ba_diff: torch.Tensor | None,
    blr: torch.Tensor | None,
    ba_range: tuple[float, float] = (0.205, 0.165),
    blr_threshold: float = 0.1,
) -> torch.Tensor:
    """PoseAug's and AdaptPose's ``L_diff``: ``R(mean_bones(1 - cos); m, w) + RL2(blr; t)``.

    Args:
        ba_diff: (..., B) ``1 - cos`` of each bone's direction change (per frame for windows),
            or ``None`` without bone-angle changes; the band holds the mean over bones of every
            pose (the code's form; the PoseAug paper's eq. 10 thresholds the mean of gamma).
        blr: (..., G) shared bone-length residuals, or ``None``; rectified element by element.
        ba_range: (centre m, half width w) of the band on the mean ``1 - cos``.
        blr_threshold: rectified-L2 threshold t on the residuals.
    """
    if ba_diff is None and blr is None:
        raise ValueError("bone_change_regularizer needs ba_diff or blr")
    ref = ba_diff if ba_diff is not None else blr
    loss = ref.new_zeros(())
    if ba_diff is not None:
        loss = loss + range_loss(ba_diff.mean(-1), ba_range[0], ba_range[1])
    if blr is not None:
        loss = loss + rectified_l2(blr, blr_threshold)
    return loss


# -- pose priors -----------------------------------------------------------------------------------
def angle_loss(pose: torch.Tensor, skeleton: Skeleton = H36M17) -> torch.Tensor:
    """Deng et al.'s ``L_angle = mean max(0, -sin(beta))`` on (B, J, 3) camera-frame poses.

    Zero for bodies whose face points to their front, positive for depth-mirrored ones (the
    inversion a depth generator can fall into); see :func:`poseshift.geometry.body.facing_sine`
    for the sign convention in poseshift's camera frame.
    """
    return F.relu(-facing_sine(pose, skeleton)).mean()


# -- LSGAN ------------------------------------------------------------------------------------------
def lsgan_loss(pred: torch.Tensor, target: float) -> torch.Tensor:
    """Least-squares GAN loss ``mean[(D(x) - target)^2]`` (PoseAug eq. 12)."""
    return F.mse_loss(pred, torch.full_like(pred, target))


def lsgan_generator_loss(fake_scores: torch.Tensor, weight: float = 1.0) -> torch.Tensor:
    """G's weighted LSGAN term ``weight * 0.5 mean[(D(fake) - 1)^2]``.

    The references also add ``0.5 mean[D(real)^2]``, which has no gradient to G; it is left out.
    """
    return (0.5 * weight) * lsgan_loss(fake_scores, 1.0)


def lsgan_discriminator_loss(disc: nn.Module, real: Inputs, fake: Inputs) -> torch.Tensor:
    """LSGAN D loss ``0.5 [mean (D(real) - 1)^2 + mean D(fake)^2]``, real and fake in one forward.

    ``real`` and ``fake`` are one tensor each, or matching tuples for a D with several inputs
    (each input is concatenated over real and fake). One batched forward is exact only for
    discriminators without batch statistics (no BatchNorm), which holds for every
    discriminator in :mod:`poseshift.models.discriminators`.
    """
    reals, fakes = _as_tuple(real), _as_tuple(fake)
    if len(reals) != len(fakes):
        raise ValueError(
            f"real and fake must have the same number of inputs, got {len(reals)} and {len(fakes)}"
        )
    n = len(reals[0])
    out = disc(*(torch.cat([r, f]) for r, f in zip(reals, fakes, strict=True)))
    return 0.5 * (lsgan_loss(out[:n], 1.0) + lsgan_loss(out[n:], 0.0))


# -- WGAN -------------------------------------------------------------------------------------------
def wgan_critic_loss(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    """Critic loss ``E[D(fake)] - E[D(real)]`` (minimised by the critic)."""
    return fake_scores.mean() - real_scores.mean()


def wgan_generator_loss(fake_scores: torch.Tensor) -> torch.Tensor:
    """Generator loss ``-E[D(fake)]``."""
    return -fake_scores.mean()


def _as_tuple(x: Inputs) -> tuple[torch.Tensor, ...]:
    return (x,) if isinstance(x, torch.Tensor) else tuple(x)


def gradient_penalty(
    critic: Callable[..., torch.Tensor],
    real: Inputs,
    fake: Inputs,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """WGAN-GP penalty ``E[(||grad_x D(x_hat)||_2 - 1)^2]`` on random interpolates of real and fake.

    ``real`` and ``fake`` are one tensor each or matching tuples of tensors (a critic with
    several inputs, e.g. a 3D pose and a 2D pose); every input of a sample is interpolated with
    the same ``eps ~ U[0, 1]`` and the gradient norm is taken over all of them together. The
    result keeps its graph (``create_graph``), so adding ``lambda * penalty`` to the critic loss
    trains the critic towards unit gradient norm. Weight it by 10 as in Gulrajani et al.
    """
    reals, fakes = _as_tuple(real), _as_tuple(fake)
    if len(reals) != len(fakes):
        raise ValueError(
            f"real and fake must have the same number of inputs, got {len(reals)} and {len(fakes)}"
        )
    n = reals[0].shape[0]
    eps = torch.rand(n, generator=generator, device=reals[0].device, dtype=reals[0].dtype)
    mixed = []
    for r, f in zip(reals, fakes, strict=True):
        e = eps.view(n, *([1] * (r.dim() - 1)))
        mixed.append((e * r.detach() + (1 - e) * f.detach()).requires_grad_(True))
    scores = critic(*mixed)
    grads = torch.autograd.grad(scores.sum(), mixed, create_graph=True)
    sq = sum(g.reshape(n, -1).pow(2).sum(-1) for g in grads)
    return ((sq + 1e-12).sqrt() - 1).pow(2).mean()


@torch.no_grad()
def clip_weights(module: nn.Module, bound: float) -> None:
    """Clamp every parameter of ``module`` to ``[-bound, bound]`` in place (WGAN weight clipping)."""
    for p in module.parameters():
        p.clamp_(-bound, bound)


__all__ = [
    "bone_change_regularizer",
    "angle_loss",
    "clip_weights",
    "gradient_penalty",
    "lsgan_discriminator_loss",
    "lsgan_generator_loss",
    "lsgan_loss",
    "range_loss",
    "rectified_l2",
    "wgan_critic_loss",
    "wgan_generator_loss",
]
