"""Figures (matplotlib, headless): what an augmentor produces and how methods compare."""

from __future__ import annotations

from typing import Any

import torch

from poseshift.geometry.camera import body_frame_viewpoint
from poseshift.geometry.skeleton import H36M17, Skeleton


def viewpoint_position_figure(
    source: torch.Tensor, augmented: torch.Tensor, skeleton: Skeleton = H36M17
) -> Any:
    """Figure 7: source vs augmented absolute poses: view points (top), root positions (bottom)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(8, 7), sharex="row", sharey="row")
    for col, (name, pose) in enumerate((("source", source), ("augmented", augmented))):
        pose = pose.detach().float().cpu()
        az, el = body_frame_viewpoint(pose, skeleton)
        axes[0, col].scatter(az.numpy(), el.numpy(), s=2, alpha=0.3)
        axes[0, col].set(title=f"{name}: view point", xlabel="azimuth (deg)", ylabel="elevation (deg)")
        axes[1, col].scatter(pose[:, 0, 0].numpy(), pose[:, 0, 2].numpy(), s=2, alpha=0.3)
        axes[1, col].set(title=f"{name}: root position", xlabel="x (m)", ylabel="z / depth (m)")
    fig.tight_layout()
    return fig


__all__ = ["viewpoint_position_figure"]
