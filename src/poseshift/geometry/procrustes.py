"""Batched similarity Procrustes alignment (the alignment behind PA-MPJPE, DATA_FORMATS.md 7.2)."""

from __future__ import annotations

import torch

_TINY = 1e-12


def procrustes_align(
    pred: torch.Tensor, target: torch.Tensor, scale: bool = True, allow_reflection: bool = False
) -> torch.Tensor:
    """Align ``pred`` (..., J, 3) onto ``target`` (..., J, 3) with the best similarity transform.

    Per pose, finds rotation R, scale s (1 when ``scale=False``) and translation t minimising
    ``||s * pred @ R + t - target||_F`` and returns the transformed ``pred`` (same dtype).
    Unless ``allow_reflection``, R is a proper rotation: when the SVD optimum has det -1 the
    last singular pair is flipped (which also lowers the scale accordingly).

    Computed in float64 internally (3x3 SVDs are cheap) and cast back to ``pred``'s dtype.
    Degenerate inputs stay finite: an all-zero (or single-point) ``pred`` gets s = 0 and lands
    on the target's centroid. Gradients through the SVD are undefined where singular values
    repeat (e.g. exactly these degenerate cases), so use this for evaluation, not as a loss.
    """
    if pred.shape != target.shape:
        raise ValueError(
            f"pred and target must have the same shape, got {tuple(pred.shape)} and {tuple(target.shape)}"
        )
    if pred.dim() < 2 or pred.shape[-1] != 3:
        raise ValueError(f"expected poses of shape (..., J, 3), got {tuple(pred.shape)}")
    out_dtype = pred.dtype
    p = pred.to(torch.float64)
    t = target.to(torch.float64)
    mu_p = p.mean(dim=-2, keepdim=True)
    mu_t = t.mean(dim=-2, keepdim=True)
    p0 = p - mu_p
    t0 = t - mu_t

    # With row-vector poses, R = U Vᵀ for p0ᵀ t0 = U S Vᵀ maximises tr(Rᵀ p0ᵀ t0).
    u, sv, vh = torch.linalg.svd(p0.transpose(-1, -2) @ t0)
    if not allow_reflection:
        det = torch.linalg.det(u @ vh)
        flip = torch.ones_like(sv)
        flip[..., -1] = torch.where(det < 0, -1.0, 1.0)
        u = u * flip.unsqueeze(-2)  # negate U's last column where needed
        sv = sv * flip
    rot = u @ vh

    aligned = p0 @ rot
    if scale:
        s = sv.sum(dim=-1) / (p0 * p0).sum(dim=(-2, -1)).clamp_min(_TINY)
        aligned = aligned * s[..., None, None]
    return (aligned + mu_t).to(out_dtype)
