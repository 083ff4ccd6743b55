"""The base of every trained method: named players, each with its optimizer, schedule and clip.

A *player* is one network trained by its own optimizer: the lifter ``"p"``, a generator ``"g"``,
a discriminator ``"d3d"``, ... (a supervised method is the one-player case). A method lists its
players in :meth:`AdversarialModule.configure_players`; this base then owns everything around
the update, so a method's ``training_step`` holds only its algorithm:

* :meth:`~AdversarialModule.player_step` — zero the player's gradients, backward the loss into
  that player's parameters only (the other players get no gradient, as with Lightning's
  ``toggled_optimizer``), average them over processes under DDP, clip, check that loss and
  gradients are finite, step, and advance a per-step LR schedule;
* optimizers and LambdaLR schedules built from :class:`Player` specs, per-epoch schedules
  stepped at epoch end, per-player step counts kept in checkpoints;
* the hook :meth:`~AdversarialModule.on_train_epoch_batches_end`, called after the last batch
  of an epoch and before validation and checkpointing (Lightning validates *before*
  ``on_train_epoch_end``), for work done once per epoch such as PoseAug's estimator passes;
* loading a pretrained lifter when a fresh fit starts;
* DDP without the reducer: each player's gradients are all-reduced explicitly (no
  ``find_unused_parameters``) and the lifter's BatchNorm buffers broadcast at epoch end;
* exact resume (from :class:`~poseshift.methods.base.LiftingModule`): checkpoints carry every
  process's random states, restored just before the first batch of a resumed fit; with the
  suite's resumable training loaders (``data_modules.resumable``) a fit resumed from a
  mid-epoch checkpoint takes exactly the steps of the uninterrupted one.

A non-finite loss term or gradient stops training with :class:`NonFiniteLossError`, naming the
player, its step and the loss term; no checkpoint is written from the broken weights.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.distributed as dist
from torch import nn

from poseshift.methods.base import DEFAULT_EVALUATION, Evaluation, LiftingModule

OPTIMIZERS = ("adam", "rmsprop")
SCRATCH = "scratch"  # ``pretrained`` value that trains the lifter from random weights on purpose


class NonFiniteLossError(RuntimeError):
    """Training produced a NaN or infinite loss or gradient (GANs diverge; stop before saving it)."""


@dataclass
class Player:
    """One network trained by its own optimizer.

    Args:
        module: the network.
        lr: learning rate.
        optimizer: ``"adam"`` or ``"rmsprop"``.
        betas: Adam's betas.
        weight_decay: weight decay.
        max_grad_norm: gradient-norm clip; 0 disables clipping.
        lr_lambda: LR factor as a function of the schedule counter (LambdaLR); ``None`` = constant.
        fused: use torch's fused Adam kernel (the same update, one kernel for all parameters:
            about 7x faster than the per-parameter loop on CPU, equal to it up to float rounding).
        interval: what the schedule counter counts: ``"epoch"`` (stepped at every epoch end),
            ``"step"`` (this player's optimizer steps) or another player's name (that player's
            steps: e.g. ``"g"`` decays every player's LR per generator step, as one clock).
    """

    module: nn.Module
    lr: float
    optimizer: str = "adam"
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0
    max_grad_norm: float = 0.0
    lr_lambda: Callable[[int], float] | None = None
    interval: str = "epoch"
    fused: bool = True

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if not self.lr > 0:
            raise ValueError(f"learning rates must be positive, got {self.lr}")

    def build_optimizer(self) -> torch.optim.Optimizer:
        params = self.module.parameters()
        if self.optimizer == "rmsprop":
            return torch.optim.RMSprop(params, lr=self.lr, weight_decay=self.weight_decay)
        return torch.optim.Adam(
            params, lr=self.lr, betas=self.betas, weight_decay=self.weight_decay, fused=self.fused
        )


class AdversarialModule(LiftingModule):
    """A :class:`LiftingModule` trained by one or more named players (manual optimization).

    Subclasses implement :meth:`configure_players` and ``training_step``, calling
    :meth:`player_step` once per update.

    Args:
        backbone: lifter architecture (see :class:`LiftingModule`).
        backbone_kwargs: constructor arguments of the backbone.
        evaluation: evaluation options (:class:`~poseshift.methods.base.Evaluation`).
        pretrained: path to a poseshift checkpoint (e.g. a ``Baseline``'s) whose lifter weights
            start the lifter when a fresh fit starts (a resumed fit restores its own); ``"scratch"``
            = random weights, which methods with ``requires_pretrained`` accept only so.
        finite_check_every: host checks of the loss/gradient finiteness flags every this many
            player steps (``None``: every step on CPU, every 100 on an accelerator, where each
            check waits for the device); also checked before every checkpoint and epoch end.
        lifter: a ready lifter network (keyword only; for subclasses that build their own).
    """

    # True for methods that must start from a trained lifter (fit refuses pretrained=None)
    requires_pretrained: ClassVar[bool] = False

    def __init__(
        self,
        backbone: str = "simple_baseline",
        backbone_kwargs: dict[str, Any] | None = None,
        evaluation: Evaluation = DEFAULT_EVALUATION,
        pretrained: str | None = None,
        finite_check_every: int | None = None,
        *,
        lifter: nn.Module | None = None,
    ) -> None:
        super().__init__(backbone, backbone_kwargs, evaluation, lifter=lifter)
        if finite_check_every is not None and finite_check_every < 1:
            raise ValueError(f"finite_check_every must be >= 1 or None, got {finite_check_every}")
        self.automatic_optimization = False
        self.pretrained = pretrained
        self.finite_check_every = finite_check_every
        # optimizer steps per player, in player order: state (checkpoints, ddp_spawn's copy back),
        # mirrored in a dict so reading a count never waits for the device
        self.register_buffer("player_steps", torch.zeros(0, dtype=torch.long))
        self._steps: dict[str, int] = {}
        self._pending: list[tuple[str, int, tuple[str, ...], torch.Tensor]] = []
        self._names: list[str] = []
        self._ddp_block: contextlib.ExitStack | None = None

    # -- players ----------------------------------------------------------------------------------
    def configure_players(self) -> dict[str, Player]:
        """The players in optimizer order, by name."""
        raise NotImplementedError

    def player_modules(self) -> dict[str, nn.Module]:
        """Each player's network, by name."""
        return {name: p.module for name, p in self.configure_players().items()}

    def steps_of(self, name: str) -> int:
        """Optimizer steps player ``name`` has taken (kept in checkpoints)."""
        return self._steps.get(name, 0)

    def precision_context(self) -> contextlib.AbstractContextManager:
        """The trainer's precision for forward passes outside ``training_step`` (e.g. epoch-end
        lifter passes): bf16 autocast under ``bf16-mixed``, as Lightning applies to the step itself."""
        if self._trainer is None:
            return contextlib.nullcontext()
        return self._trainer.precision_plugin.train_step_context()

    def _load_from_state_dict(
        self, state_dict: dict[str, Any], prefix: str, *args: Any, **kwargs: Any
    ) -> None:
        saved = state_dict.get(prefix + "player_steps")
        if saved is not None:  # sized by the players: take the saved shape
            self.player_steps = torch.zeros_like(saved, device=self.player_steps.device)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        names = list(self.configure_players())
        self._steps = dict(zip(names, self.player_steps.tolist(), strict=False))

    def configure_optimizers(self) -> tuple[list[torch.optim.Optimizer], list[Any]]:
        players = self.configure_players()
        self._names = list(players)
        if len(self.player_steps) != len(players):
            self.player_steps = torch.zeros(len(players), dtype=torch.long, device=self.device)
        self._intervals = {n: p.interval for n, p in players.items()}
        self._clips = {n: p.max_grad_norm for n, p in players.items()}
        opts, scheds = [], []
        for player in players.values():
            opt = player.build_optimizer()
            opts.append(opt)
            if player.lr_lambda is not None:
                scheds.append(torch.optim.lr_scheduler.LambdaLR(opt, player.lr_lambda))
        self._has_schedule = {n: p.lr_lambda is not None for n, p in players.items()}
        unknown = {p.interval for p in players.values()} - {"epoch", "step", *players}
        if unknown:
            raise ValueError(f"a schedule's interval must be 'epoch', 'step' or a player name, got {unknown}")
        # schedules advanced after each step of a player: its own ("step") and those that name it
        self._clocked = {
            name: [n for n, p in players.items() if p.lr_lambda is not None and p.interval in (name,)]
            + ([name] if players[name].lr_lambda is not None and players[name].interval == "step" else [])
            for name in players
        }
        return opts, scheds

    def _optimizer(self, name: str) -> Any:
        opts = self.optimizers()
        opts = opts if isinstance(opts, list) else [opts]
        return opts[self._names.index(name)]

    def _scheduler(self, name: str) -> Any:
        scheds = self.lr_schedulers()
        scheds = scheds if isinstance(scheds, list) else [scheds]
        with_schedule = [n for n in self._names if self._has_schedule[n]]
        return scheds[with_schedule.index(name)]

    # -- the update ---------------------------------------------------------------------------------
    def player_step(self, name: str, loss: torch.Tensor | Mapping[str, torch.Tensor]) -> torch.Tensor:
        """One update of player ``name`` on ``loss`` (a tensor, or named terms that are summed).

        zero_grad -> backward into this player's parameters only -> average over processes ->
        clip -> finiteness check -> optimizer step -> per-step schedule. Returns the total loss.
        """
        terms = {"loss": loss} if isinstance(loss, torch.Tensor) else dict(loss)
        total = sum(terms.values())
        opt = self._optimizer(name)
        params = [p for group in opt.param_groups for p in group["params"] if p.requires_grad]
        opt.zero_grad(set_to_none=True)
        with self._no_ddp_sync():
            self.manual_backward(total, inputs=params)
        self._all_reduce_grads(params)
        grads = [p.grad for p in params if p.grad is not None]
        clip = self._clips[name]
        if clip:
            norm = torch.nn.utils.clip_grad_norm_(params, clip)
        else:
            norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
        self._steps[name] = self.steps_of(name) + 1
        self.player_steps[self._names.index(name)] += 1
        self._record_finite(name, terms, norm)
        opt.step()
        with warnings.catch_warnings():
            # a schedule clocked by another player (PoseAug: every LR per G step) advances while its
            # own player has not stepped yet (the lifter during warm-up); torch warns about that order
            warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step\\(\\)` before")
            for clocked in self._clocked[name]:
                self._scheduler(clocked).step()
        return total

    # -- finiteness ---------------------------------------------------------------------------------
    def _record_finite(self, name: str, terms: dict[str, torch.Tensor], norm: torch.Tensor) -> None:
        values = torch.stack(
            [t.detach().float().reshape(()) for t in terms.values()] + [norm.detach().float()]
        )
        self._pending.append((name, self._steps[name], (*terms, "gradient norm"), values))
        every = self.finite_check_every
        if every is None:
            every = 1 if self.device.type == "cpu" else 100
        if len(self._pending) >= every:
            self.check_finite()

    def check_finite(self) -> None:
        """Raise :class:`NonFiniteLossError` for the first recorded non-finite loss term or gradient."""
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        ok = torch.stack([torch.isfinite(v).all() for *_, v in pending]).tolist()
        if all(ok):
            return
        name, step, labels, values = pending[ok.index(False)]
        bad = [
            f"{label} = {v}" for label, v in zip(labels, values.tolist(), strict=True) if not math.isfinite(v)
        ]
        raise NonFiniteLossError(
            f"player {name!r} got a non-finite value at its step {step} (epoch {self.current_epoch}): "
            f"{', '.join(bad)}; training stopped and no checkpoint was written from these weights "
            "(the last saved checkpoint is intact); lower the learning rates or check the inputs"
        )

    # -- schedule hooks -----------------------------------------------------------------------------
    def on_train_epoch_batches_end(self) -> None:
        """Called after the epoch's last training batch, before validation and checkpointing."""

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        super().on_train_batch_start(batch, batch_idx)  # a resumed fit's random states
        # the DDP reducer expects every parameter's gradient after each backward, which a
        # multi-player step never provides: keep it out of the forward as well (no_sync)
        block = getattr(self.trainer.strategy, "block_backward_sync", None)
        if block is not None and self._distributed:
            self._ddp_block = contextlib.ExitStack()
            self._ddp_block.enter_context(block())

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self._ddp_block is not None:
            self._ddp_block.close()
            self._ddp_block = None
        if batch_idx + 1 >= self.trainer.num_training_batches:
            self.on_train_epoch_batches_end()

    def on_train_epoch_end(self) -> None:
        self.check_finite()
        scheds = [
            self._scheduler(n) for n in self._names if self._has_schedule[n] and self._intervals[n] == "epoch"
        ]
        with warnings.catch_warnings():
            # the references step every schedule once per epoch, also for a player that took no
            # step yet (PoseAug's lifter during warm-up); torch warns about that order
            warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step\\(\\)` before")
            for sched in scheds:
                sched.step()
        self._broadcast_lifter_buffers()

    # -- pretrained lifter --------------------------------------------------------------------------
    def load_pretrained(self, path: str) -> None:
        """Load the lifter weights of a poseshift checkpoint (any method's ``lifter.*`` entries)."""
        state = torch.load(path, map_location="cpu", weights_only=False)
        state = state.get("state_dict", state)
        lifter = {k[len("lifter.") :]: v for k, v in state.items() if k.startswith("lifter.")}
        if not lifter:
            raise ValueError(f"{path}: no 'lifter.*' weights found (is it a poseshift checkpoint?)")
        self.lifter.load_state_dict(lifter)

    def check_pretrained(self, resuming: bool) -> None:
        """Refuse a fresh fit without ``pretrained`` where the method starts from a trained lifter
        (``requires_pretrained``); the CLI asks before any logger or run folder is made."""
        if not resuming and self.pretrained is None and self.requires_pretrained:
            raise ValueError(
                f"--model.init_args.pretrained: {type(self).__name__} starts from a trained baseline of "
                "the same backbone (as the reference does); pass its checkpoint (poseshift fit --config "
                f"experiments/baseline/...), or `{SCRATCH}` to train the lifter from random weights"
            )

    def setup(self, stage: str) -> None:
        super().setup(stage)
        # a fresh fit starts from the pretrained lifter; a resumed one restores its own
        # checkpoint, and loading a finished model never needs the pretrained file
        if stage != "fit" or self.trainer.ckpt_path is not None:
            return
        self.check_pretrained(resuming=False)
        if self.pretrained and self.pretrained != SCRATCH:
            self.load_pretrained(self.pretrained)

    # -- checkpoints --------------------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.check_finite()  # never write weights that a non-finite step has already touched
        super().on_save_checkpoint(checkpoint)

    # -- distributed --------------------------------------------------------------------------------
    @property
    def _distributed(self) -> bool:
        return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1

    @contextlib.contextmanager
    def _no_ddp_sync(self) -> Iterator[None]:
        block = getattr(self.trainer.strategy, "block_backward_sync", None)
        with block() if block is not None and self._distributed else contextlib.nullcontext():
            yield

    def _all_reduce_grads(self, params: list[nn.Parameter]) -> None:
        """Average the gradients of ``params`` over processes (one all-reduce of a flat buffer)."""
        if not self._distributed:
            return
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        flat /= dist.get_world_size()
        offset = 0
        for p in params:
            n = p.numel()
            p.grad = flat[offset : offset + n].view_as(p).clone()
            offset += n

    def _broadcast_lifter_buffers(self) -> None:
        # BN statistics are not broadcast when the reducer is bypassed; align them for evaluation
        if self._distributed:
            for buf in self.lifter.buffers():
                dist.broadcast(buf, src=0)
