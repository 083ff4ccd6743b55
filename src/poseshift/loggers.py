"""Weights & Biases logging that never blocks: offline unless the user has logged in."""

from __future__ import annotations

import netrc
import os
from pathlib import Path
from typing import Any

from pytorch_lightning.loggers import WandbLogger as _LightningWandbLogger


def wandb_logged_in() -> bool:
    """True when an API key is available (``WANDB_API_KEY`` or a ``wandb login`` netrc entry)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    path = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    try:
        hosts = netrc.netrc(path).hosts
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False
    return any("wandb" in host for host in hosts)


class WandbLogger(_LightningWandbLogger):
    """Lightning's WandbLogger with ``offline`` decided at run time.

    Args:
        offline: ``None`` (default) logs online only if the user is logged in to W&B,
            otherwise writes an offline run that ``wandb sync`` can upload later.
            ``WANDB_MODE`` in the environment always wins (e.g. ``disabled`` in tests).
        **kwargs: passed to :class:`pytorch_lightning.loggers.WandbLogger`.
    """

    def __init__(
        self, project: str = "poseshift", save_dir: str = "runs", offline: bool | None = None, **kwargs: Any
    ) -> None:
        if offline is None:
            offline = not wandb_logged_in()
        Path(save_dir).mkdir(parents=True, exist_ok=True)
        super().__init__(project=project, save_dir=save_dir, offline=offline, **kwargs)
