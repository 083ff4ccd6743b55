"""Figures of lifted poses: the 2D input beside the 3D skeleton, as PNG files or an animated GIF.

Drawn with matplotlib's Agg canvas directly (no pyplot, no display, no global backend change).
Left panel: the 2D keypoints in image pixels (y down) around the person, with the image border
dashed; joints taken from another frame because their confidence was low are drawn hollow.
Right panel: the root-relative 3D pose in the camera frame, shown upright (camera y down becomes
up) with depth going into the picture. Subject's left side blue, right side red, centre line grey.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image

from poseshift.geometry.skeleton import H36M17, Skeleton

# figure size in inches at DPI: PNG frames are 1000 x 500 pixels, GIF frames 800 x 400
FIGSIZE = (10.0, 5.0)
PNG_DPI = 100
GIF_DPI = 80
RANGE_3D = 0.9  # metres shown either side of the root


def _bone_colors(skeleton: Skeleton) -> list[str]:
    left, right = set(skeleton.left), set(skeleton.right)
    return ["tab:blue" if c in left else "tab:red" if c in right else "0.4" for _, c in skeleton.bone_pairs]


class _Scene:
    """One figure whose artists are updated frame by frame (fast enough for GIFs of ~100 frames)."""

    def __init__(
        self,
        dpi: int,
        image_size: np.ndarray | None,
        limits_2d: tuple[float, float, float, float],
        skeleton: Skeleton,
    ) -> None:
        self.skeleton = skeleton
        self.fig = Figure(figsize=FIGSIZE, dpi=dpi)
        self.canvas = FigureCanvasAgg(self.fig)
        colors = _bone_colors(skeleton)
        self.ax2 = self.fig.add_subplot(1, 2, 1)
        x0, x1, y0, y1 = limits_2d
        self.ax2.set_xlim(x0, x1)
        self.ax2.set_ylim(y1, y0)  # image rows grow downwards
        self.ax2.set_aspect("equal")
        self.ax2.set_title("2D input (H36M-17)", fontsize=10)
        unit = "pixels" if image_size is not None else "screen-normalized"
        self.ax2.set_xlabel(f"x ({unit})")
        self.ax2.set_ylabel(f"y ({unit})")
        if image_size is not None:  # the image border, where it is in view
            w, h = np.max(image_size, axis=0)
            self.ax2.plot([0, w, w, 0, 0], [0, 0, h, h, 0], "--", color="0.6", lw=1, label="image border")
        self.bones2 = [self.ax2.plot([], [], color=c, lw=2)[0] for c in colors]
        self.sure = self.ax2.plot([], [], "o", color="k", ms=3)[0]
        self.unsure = self.ax2.plot(
            [], [], "o", mfc="none", mec="tab:orange", ms=6, label="filled (low score)"
        )[0]
        self.ax2.legend(loc="lower right", fontsize=7)
        self.ax3 = self.fig.add_subplot(1, 2, 2, projection="3d")
        r = RANGE_3D
        self.ax3.set_xlim(-r, r)
        self.ax3.set_ylim(-r, r)
        self.ax3.set_zlim(-r, r)
        self.ax3.set_box_aspect((1, 1, 1), zoom=1.2)
        self.ax3.set_xlabel("x (m)")
        self.ax3.set_ylabel("depth (m)")
        self.ax3.set_zlabel("up (m)")
        self.ax3.set_title("lifted 3D (root-relative)", fontsize=10)
        # seen from about where the camera is (depth away from the viewer), a little from above
        self.ax3.view_init(elev=15, azim=-75)
        for axis in (self.ax3.xaxis, self.ax3.yaxis, self.ax3.zaxis):
            axis.set_ticks([-0.5, 0.0, 0.5])
        self.ax3.tick_params(labelsize=7)
        self.bones3 = [self.ax3.plot([], [], [], color=c, lw=2)[0] for c in colors]
        self.title = self.fig.suptitle("")
        self.fig.subplots_adjust(left=0.07, right=0.97, bottom=0.1, top=0.9, wspace=0.15)

    def draw(self, kp: np.ndarray, pose: np.ndarray, filled: np.ndarray, title: str) -> np.ndarray:
        """Update to one frame and return its RGBA pixels (H, W, 4)."""
        for line, (p, c) in zip(self.bones2, self.skeleton.bone_pairs, strict=True):
            line.set_data(kp[[p, c], 0], kp[[p, c], 1])
        self.sure.set_data(kp[~filled, 0], kp[~filled, 1])
        self.unsure.set_data(kp[filled, 0], kp[filled, 1])
        # camera frame (x right, y down, z forward) shown as (x, depth, up)
        shown = np.stack([pose[:, 0], pose[:, 2], -pose[:, 1]], -1)
        for line, (p, c) in zip(self.bones3, self.skeleton.bone_pairs, strict=True):
            line.set_data_3d(shown[[p, c], 0], shown[[p, c], 1], shown[[p, c], 2])
        self.title.set_text(title)
        self.canvas.draw()
        return np.asarray(self.canvas.buffer_rgba())


def _limits(keypoints: np.ndarray) -> tuple[float, float, float, float]:
    """A square view around every keypoint of the rendered frames (the person fills the panel)."""
    lo, hi = keypoints.reshape(-1, 2).min(0), keypoints.reshape(-1, 2).max(0)
    centre, half = (lo + hi) / 2, 0.6 * float(np.max(hi - lo)) + 1e-3
    return float(centre[0] - half), float(centre[0] + half), float(centre[1] - half), float(centre[1] + half)


def render_poses(
    path: str | Path,
    keypoints: np.ndarray,
    pose3d: np.ndarray,
    frames: np.ndarray,
    image_size: np.ndarray | None = None,
    filled: np.ndarray | None = None,
    fps: float = 25.0,
    skeleton: Skeleton = H36M17,
) -> list[Path]:
    """Draw each frame's 2D input beside its lifted 3D pose.

    Args:
        path: ``.gif`` for one animation of all frames; ``.png`` for one picture per frame (a
            single frame is written to ``path`` itself, several to ``<stem>_<frame>.png``).
        keypoints: (N, J, 2) 2D input, pixels when ``image_size`` is given.
        pose3d: (N, J, 3) root-relative camera-frame poses, metres.
        frames: (N,) frame numbers for the titles and file names.
        image_size: (N, 2) width and height in pixels, or None (axes fit the keypoints).
        filled: (N, J) joints filled from another frame, drawn hollow.
        fps: frames per second of the GIF.
        skeleton: bones to draw.

    Returns the files written.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".png", ".gif"):
        raise ValueError(f"{path}: renders are .png or .gif files")
    n = len(frames)
    if n == 0 or len(keypoints) != n or len(pose3d) != n:
        raise ValueError(f"render needs frames, keypoints and poses of one non-zero length, got {n}")
    filled = np.zeros(keypoints.shape[:2], bool) if filled is None else filled.astype(bool)
    dpi = GIF_DPI if suffix == ".gif" else PNG_DPI
    scene = _Scene(dpi, image_size, _limits(keypoints), skeleton)
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".png":
        written = []
        for i in range(n):
            rgba = scene.draw(keypoints[i], pose3d[i], filled[i], f"frame {int(frames[i])}")
            out = path if n == 1 else path.with_name(f"{path.stem}_{int(frames[i]):06d}.png")
            Image.fromarray(rgba).convert("RGB").save(out)
            written.append(out)
        return written
    # GIF: quantize every frame to a palette at once, so memory stays ~1 byte per pixel
    images = [
        Image.fromarray(scene.draw(keypoints[i], pose3d[i], filled[i], f"frame {int(frames[i])}"))
        .convert("RGB")
        .quantize(colors=64)
        for i in range(n)
    ]
    images[0].save(path, save_all=True, append_images=images[1:], duration=max(1, round(1000 / fps)), loop=0)
    return [path]
