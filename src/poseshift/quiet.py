"""What the ``poseshift`` command does not print: advertisements and warnings that do not apply.

Each filter names one message and says why it is noise here; nothing else is hidden. Warnings
that remain are printed on one line (``warning: <message>``) instead of Python's two-line form
with a source path.
"""

from __future__ import annotations

import logging
import re
import sys
import warnings

# Lightning's info messages (rank_zero_info) that are not about the user's run
_NOISE_INFO = (
    # advertisements for Lightning's cloud products, shown on every run
    re.compile(r"^💡 Tip:"),
    # poseshift methods replace Lightning's default ModelCheckpoint (and keep one ResultsTable)
    # by design; the notice reads like a problem
    re.compile(r"callbacks returned in `LightningModule\.configure_callbacks` will override"),
)

# (message regex, why) of warnings that do not apply to poseshift runs
_NOISE_WARNINGS = (
    # raised inside pytorch_lightning's own _pytree helper against torch 2.13: nothing a user can change
    r"`isinstance\(treespec, LeafSpec\)` is deprecated",
    # val/ and test/ metrics are torchmetrics objects whose compute() already sums their states
    # over processes (exact under DDP); sync_dist would reduce them a second time
    r"It is recommended to use `self\.log\('(val|test)/",
    # test/validate/predict deliberately run without the fit's checkpoint callback (it would
    # restore the fit's bookkeeping and save nothing); only that callback being absent is noise
    r"Be aware that when using `ckpt_path`.*the following callbacks: \[\"LiftingCheckpoint\{[^}]*\}\"\]\.$",
    # a resumed fit continues in its own run folder, checkpoints included, on purpose (a fresh run
    # always gets a new folder, so the folder is never someone else's)
    r"Checkpoint directory .* exists and is not empty\.",
)


class _DropNoise(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(p.search(message) for p in _NOISE_INFO)


def _one_line_warning(message, category, filename, lineno, line=None) -> str:  # noqa: ANN001
    return f"warning: {str(message).strip()}\n"


def quiet_lightning() -> None:
    """Install the filters above (idempotent); called by the ``poseshift`` command in every process."""
    for name in ("pytorch_lightning.utilities.rank_zero", "lightning_fabric.utilities.rank_zero"):
        log = logging.getLogger(name)
        if not any(isinstance(f, _DropNoise) for f in log.filters):
            log.addFilter(_DropNoise())
    # Lightning's progress notes ("Seed set to 0", "GPU available", ...) are output, not errors:
    # on stdout, stderr keeps only warnings and the one error line of a failure
    for name in ("pytorch_lightning", "lightning_fabric"):
        for handler in logging.getLogger(name).handlers:
            if isinstance(handler, logging.StreamHandler) and handler.stream is sys.stderr:
                handler.setStream(sys.stdout)
    for pattern in _NOISE_WARNINGS:
        warnings.filterwarnings("ignore", message=pattern)
    warnings.formatwarning = _one_line_warning
