"""``poseshift fit|validate|test|predict --config experiments/...yaml`` (LightningCLI).

Two more commands sit beside Lightning's: ``poseshift data check|convert`` (dataset folders)
and ``poseshift evolve --config ...`` (EvoSkeleton's offline dataset evolution).

Model and data are chosen by class path in the YAML (``model.class_path``,
``data.class_path``); every constructor argument is a documented option
(``poseshift fit --help``, ``poseshift fit --model.help poseshift.methods.Baseline``).

Every command runs in a folder of its own (:mod:`poseshift.runs`), prints it at the end and exits
0 on success; a failure prints one line ``error: <file or option>: <problem and what to do>``
and exits non-zero (the traceback with ``--debug`` or ``POSESHIFT_DEBUG=1``).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import os
import shutil
import sys
import traceback
import warnings
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
import yaml
from jsonargparse import Namespace
from lightning_fabric.utilities.rank_zero import rank_zero_only
from pytorch_lightning.cli import LightningArgumentParser, LightningCLI

from poseshift.callbacks import NpzPredictionWriter, ResultsTable
from poseshift.errors import DEBUG_ENV, UserError, format_error, pop_debug
from poseshift.frame_outputs import FrameOutputs
from poseshift.methods.base import LiftingModule
from poseshift.quiet import quiet_lightning
from poseshift.runs import (
    RUN_FILE,
    check_checkpoint_model,
    experiment_dir,
    find_checkpoint,
    hand_down_run_dir,
    inherited_run_dir,
    new_run_dir,
    now,
    read_checkpoint,
    read_run,
    run_of_checkpoint,
    trim_metrics_csv,
    update_run,
)

SUBCOMMANDS = ("fit", "validate", "test", "predict")
LIGHTNING_CSV = ("pytorch_lightning.loggers.CSVLogger", "lightning.pytorch.loggers.CSVLogger")


@dataclasses.dataclass
class RunState:
    """What :func:`main` needs to report after the CLI object is gone (or never finished).

    Args:
        run_dir: the run folder, once made.
        subcommand: fit, validate, test or predict.
        resumed: a fit continuing an earlier run's folder.
        writer: this process writes run.json (not a DDP child).
        argv: the command's arguments, for run.json.
    """

    run_dir: Path | None = None
    subcommand: str | None = None
    resumed: bool = False
    writer: bool = True  # this process writes run.json (not a DDP child)
    argv: tuple[str, ...] = ()  # the command's arguments, for run.json


_RUN = RunState()


def check_config_files(argv: list[str]) -> None:
    """Name the ``--config`` file that is missing or not valid YAML (jsonargparse does not)."""
    paths = []
    for i, arg in enumerate(argv):
        if arg in ("--config", "-c") and i + 1 < len(argv):
            paths.append(argv[i + 1])
        elif arg.startswith("--config="):
            paths.append(arg.split("=", 1)[1])
    for path in map(Path, paths):
        if not path.is_file():
            raise UserError(f"{path}: config file not found")
        try:
            yaml.safe_load(path.read_text())
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
            problem = getattr(err, "problem", None) or str(err).splitlines()[0]
            raise UserError(f"{path}: not valid YAML{at}: {problem}") from None
        except (OSError, UnicodeDecodeError) as err:
            raise UserError(f"{path}: cannot read it as a YAML config ({err})") from None


def _option_checks(group: str, node: Any, pretrained: bool = False) -> None:
    """Values a constructor would reject late or with a traceback, checked with the option's name."""
    from poseshift.methods.adversarial import SCRATCH
    from poseshift.models import BACKBONES

    if not isinstance(node, Namespace) or "init_args" not in node:
        return
    for key, value in vars(node.init_args).items():
        option = f"{group}.init_args.{key}"
        if isinstance(value, Namespace):
            _option_checks(option, value, pretrained)
        elif isinstance(value, list):
            for i, item in enumerate(value):
                _option_checks(f"{option}[{i}]", item, pretrained)
        if isinstance(value, bool) or value is None:
            continue
        if key in ("batch_size", "eval_batch_size") and isinstance(value, int) and value < 1:
            raise UserError(f"{option}: must be a positive number of samples, got {value}")
        if key == "num_workers" and isinstance(value, int) and value < 0:
            raise UserError(f"{option}: must be >= 0 (0 loads in the main process), got {value}")
        if (key == "lr" or key.startswith("lr_")) and isinstance(value, int | float) and value < 0:
            raise UserError(f"{option}: a learning rate must be positive, got {value}")
        if key == "backbone" and isinstance(value, str) and value not in BACKBONES:
            known = ", ".join(sorted(BACKBONES))
            raise UserError(f"{option}: unknown backbone {value!r}; known backbones: {known}")
        if pretrained and key == "pretrained" and isinstance(value, str) and value != SCRATCH:
            read_checkpoint(value, option=option)


def _check_accelerator(trainer: Namespace) -> None:
    accelerator = trainer.get("accelerator")
    if not isinstance(accelerator, str):
        return
    if accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        raise UserError(
            f"--trainer.accelerator {accelerator}: torch sees no CUDA GPU here (torch {torch.__version__}); "
            "use --trainer.accelerator cpu or auto, or install a CUDA build of torch "
            "(README: GPUs and clusters)"
        )
    if accelerator == "mps" and not torch.backends.mps.is_available():
        raise UserError("--trainer.accelerator mps: not available here; use --trainer.accelerator cpu")


def _group_of(err: BaseException) -> str | None:
    """Which config group a jsonargparse instantiation error is about."""
    text = str(err)
    if "LightningDataModule" in text:
        return "--data"
    if "LightningModule" in text:
        return "--model"
    return None


class PoseShiftCLI(LightningCLI):
    """LightningCLI with run folders, exact resume, checked inputs, test after fit and an npz writer."""

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_argument(
            "--test_after_fit",
            type=bool,
            default=False,
            help="fit only: then test the best checkpoint on every test set and print the results table",
        )
        parser.add_argument(
            "--predict_output",
            type=str | None,
            default=None,
            help="predict only: npz file the lifted 3D poses are written to (key 'pose3d', metres); "
            "default: predictions.npz in the run folder. An existing file is never overwritten.",
        )
        # per-frame outputs of predict (poseshift.frame_outputs.FrameOutputs)
        parser.add_argument(
            "--predict_json",
            type=str | None,
            default=None,
            help="predict only: also write a JSON file with every frame's 3D pose, 2D input and scores",
        )
        parser.add_argument(
            "--predict_render",
            type=str | None,
            default=None,
            help="predict only: draw the 2D input beside the 3D pose: a .gif animation or .png per frame",
        )
        parser.add_argument(
            "--render_frames",
            type=str | None,
            default=None,
            help="predict only: frames to render, START:STOP (frame numbers, STOP excluded) or N; "
            "default: the first 100 lifted frames (.png: the first)",
        )
        parser.add_argument(
            "--render_fps", type=float, default=25.0, help="predict only: frames per second of a .gif render"
        )
        parser.add_argument(
            "--wandb",
            type=bool | None,
            default=None,
            help="log to Weights & Biases as the config says: default yes for fit, no for "
            "validate/test/predict (they start no W&B run unless this is true)",
        )

    # -- parsing: checkpoints ------------------------------------------------------------------------
    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        check_config_files(list(sys.argv[1:] if args is None else args))
        super().parse_arguments(parser, args)
        self.resume_dir: Path | None = None
        self.resume_epoch: int | None = None
        subcommand = self.config.get("subcommand")
        if subcommand in SUBCOMMANDS:
            self._resolve_checkpoint(subcommand, self.config[subcommand])

    def _resolve_checkpoint(self, subcommand: str, cfg: Namespace) -> None:
        """Turn ``last``/``best`` into a file, check the file, find the run a fit resumes."""
        model_path = cfg.model.class_path if isinstance(cfg.model, Namespace) else None
        self.experiment = experiment_dir(cfg.trainer.default_root_dir, model_path)
        ckpt = cfg.get("ckpt_path")
        if ckpt is None:
            if subcommand != "fit":
                raise UserError(
                    f"--ckpt_path: {subcommand} needs trained weights: a .ckpt file, or `last`/`best` "
                    f"(the latest fit of {self.experiment})"
                )
            return
        if ckpt == "hpc":  # Lightning's SLURM auto-requeue checkpoint: it finds that one itself
            return
        if ckpt in ("last", "best"):
            if subcommand == "fit" and ckpt == "best":
                raise UserError("--ckpt_path best: fit resumes from `last` (last completed epoch) or a file")
            path = find_checkpoint(self.experiment, ckpt)
            if rank_zero_only.rank == 0:
                print(f"--ckpt_path {ckpt}: {path}", flush=True)
            cfg.ckpt_path = ckpt = str(path)
        content = read_checkpoint(ckpt)
        self._ckpt_hparams = dict(content.get("hyper_parameters") or {})
        run = run_of_checkpoint(Path(ckpt))
        if model_path is not None:
            check_checkpoint_model(content, model_path, ckpt, run / "config.yaml" if run else None)
        if subcommand == "fit":
            self.resume_epoch = int(content.get("epoch", 0))
            # continue the run the checkpoint belongs to when it is one of this experiment's
            if run is not None and run.parent.resolve() == self.experiment.resolve():
                self.resume_dir = run

    def _parse_ckpt_path(self) -> None:
        """Apply the checkpoint's hyperparameters over the config, as LightningCLI does.

        Unlike LightningCLI's, this also works for checkpoints written without the CLI (no
        ``_class_path``): the class was checked to be the configured one.
        """
        subcommand = self.config.get("subcommand")
        hparams = dict(getattr(self, "_ckpt_hparams", {}))
        hparams.pop("_instantiator", None)
        if subcommand not in SUBCOMMANDS or not hparams:
            return
        class_path = hparams.pop("_class_path", None) or self.config[subcommand].model.class_path
        # hyperparameters saved outside the CLI hold objects (e.g. an Evaluation dataclass)
        plain = {k: dataclasses.asdict(v) if dataclasses.is_dataclass(v) else v for k, v in hparams.items()}
        model = {"class_path": class_path, "init_args": plain}
        try:
            self.config = self.parser.parse_object({subcommand: {"model": model}}, self.config)
        except Exception as err:
            ckpt = self.config[subcommand].ckpt_path
            raise UserError(f"--ckpt_path {ckpt}: {format_error(err).removeprefix('error: ')}") from err

    # -- before instantiation: options, run folder, loggers -------------------------------------------
    def before_instantiate_classes(self) -> None:
        subcommand = self.subcommand
        if subcommand not in SUBCOMMANDS:
            return
        cfg = self.config[subcommand]
        _check_accelerator(cfg.trainer)
        _option_checks("--model", cfg.model, pretrained=subcommand == "fit" and not cfg.get("ckpt_path"))
        _option_checks("--data", cfg.data)
        predict_output = cfg.get("predict_output")
        if subcommand == "predict" and predict_output and Path(predict_output).exists():
            raise UserError(f"--predict_output {predict_output}: exists; choose another file or delete it")
        # the configuration as given (experiment folder, loggers) is what config.yaml keeps
        given = copy.deepcopy(cfg)

        inherited = inherited_run_dir()
        _RUN.writer = inherited is None and rank_zero_only.rank == 0
        _RUN.subcommand = subcommand
        _RUN.resumed = self.resume_dir is not None and inherited is None
        run_dir = inherited or self.resume_dir or new_run_dir(self.experiment, subcommand)
        _RUN.run_dir = run_dir
        if inherited is None:
            hand_down_run_dir(run_dir)
        self.run_dir = run_dir

        cfg.trainer.default_root_dir = str(run_dir)
        if subcommand != "fit":  # test/validate/predict keep no checkpoints
            cfg.trainer.enable_checkpointing = False
        previous = read_run(run_dir) if _RUN.resumed else {}
        self._patch_loggers(cfg, subcommand, run_dir, previous.get("wandb_run_id"))
        if _RUN.resumed and self.resume_epoch is not None and _RUN.writer:
            # the interrupted epoch's rows are logged again by the resumed run
            trim_metrics_csv(run_dir / "csv" / "metrics.csv", self.resume_epoch)
        if _RUN.writer:
            self._save_config(given, run_dir)
            if _RUN.resumed:  # the first command stays on record; each resume is added to it
                resume = {"at": now(), "argv": list(_RUN.argv), "from": cfg.ckpt_path}
                resumes = previous.get("resumes", []) + [resume]
                update_run(run_dir, status="running", resumes=resumes, finished=None)
            else:
                update_run(
                    run_dir,
                    command=subcommand,
                    argv=list(_RUN.argv),
                    experiment=str(self.experiment),
                    ckpt_path=cfg.get("ckpt_path"),
                    status="running",
                    started=now(),
                )

    def _save_config(self, given: Namespace, run_dir: Path) -> None:
        name = "config.yaml"
        n = 0
        while (run_dir / name).exists():  # a resumed fit keeps the first config beside its own
            n += 1
            name = f"config.resume-{n}.yaml"
        self._parser(self.subcommand).save(given, run_dir / name, skip_unset=False, overwrite=False)

    @staticmethod
    def _patch_loggers(cfg: Namespace, subcommand: str, run_dir: Path, wandb_id: str | None) -> None:
        """Every logger writes into the run folder; W&B only when wanted; a resume continues them."""
        if subcommand == "predict":
            cfg.trainer.logger = False  # predict logs nothing: no CSV file, no W&B run
            return
        loggers = cfg.trainer.logger
        if loggers is None or loggers is True:  # Lightning's default logger: ours, in the run folder
            loggers = [Namespace(class_path="poseshift.loggers.CSVLogger", init_args=Namespace())]
        if not isinstance(loggers, list | Namespace):
            return
        entries = loggers if isinstance(loggers, list) else [loggers]
        want_wandb = cfg.get("wandb")
        kept = []
        for entry in entries:
            if not isinstance(entry, Namespace) or "class_path" not in entry:
                kept.append(entry)
                continue
            init = entry.get("init_args") or Namespace()
            entry.init_args = init
            name = entry.class_path.rsplit(".", 1)[-1]
            if name == "WandbLogger":
                if want_wandb is False or (want_wandb is None and subcommand != "fit"):
                    continue
                init.save_dir = str(run_dir)
                if wandb_id:
                    init.id = wandb_id
            elif name == "CSVLogger":
                if entry.class_path in LIGHTNING_CSV:
                    entry.class_path = "poseshift.loggers.CSVLogger"  # continues metrics.csv on resume
                init.save_dir, init.name, init.version = str(run_dir), "", "csv"
            elif name == "TensorBoardLogger":
                init.save_dir, init.name, init.version = str(run_dir), "", "tensorboard"
            elif "save_dir" in init:
                init.save_dir = str(run_dir)
            kept.append(entry)
        cfg.trainer.logger = kept if kept else False

    # -- instantiation --------------------------------------------------------------------------------
    def instantiate_classes(self) -> None:
        """LightningCLI's, with errors naming the config group they come from."""
        try:
            self.config_init = self.parser.instantiate_classes(self.config)
        except UserError:
            raise
        except Exception as err:
            raise UserError(format_error(err, _group_of(err)).removeprefix("error: ")) from err
        self.datamodule = self._get(self.config_init, "data")
        self.model = self._get(self.config_init, "model")
        self._add_configure_optimizers_method_to_model(self.subcommand)
        try:
            self.trainer = self.instantiate_trainer()
        except Exception as err:
            raise UserError(format_error(err, "--trainer").removeprefix("error: ")) from err

    def instantiate_trainer(self, **kwargs: Any) -> pl.Trainer:
        """The configured trainer plus the run's results table and run record."""
        extra: list[pl.Callback] = []
        if self.subcommand in SUBCOMMANDS and _RUN.run_dir is not None:
            extra = [ResultsTable(_RUN.run_dir), RunRecord(_RUN.run_dir, _RUN.writer)]
        configured = self._get(self.config_init, "trainer", default={}).get("callbacks") or []
        configured = configured if isinstance(configured, list) else [configured]
        return super().instantiate_trainer(callbacks=[*configured, *extra], **kwargs)

    # -- subcommands ----------------------------------------------------------------------------------
    def before_fit(self) -> None:
        # the model's own refusals, asked before the trainer starts any logger (W&B would print and
        # leave files in a run that never began)
        resuming = self.config_init[self.subcommand].get("ckpt_path") is not None
        check_pretrained = getattr(self.model, "check_pretrained", None)
        if check_pretrained is not None:
            check_pretrained(resuming=resuming)
        check_schedule = getattr(self.model, "check_schedule", None)
        if check_schedule is not None:
            with warnings.catch_warnings():  # the warning is the model's to give once, when it trains
                warnings.simplefilter("ignore")
                check_schedule(self.trainer.max_epochs, self.trainer.max_steps)
        describe = getattr(self.datamodule, "describe", None)
        if describe is not None and self.trainer.is_global_zero:
            print(describe(), flush=True)

    def after_fit(self) -> None:
        if not self.config_init[self.subcommand].get("test_after_fit"):
            return
        ckpt = self.trainer.checkpoint_callback
        ckpt_path = "best" if ckpt is not None and getattr(ckpt, "best_model_path", "") else None
        if ckpt_path is None and self.trainer.is_global_zero:
            print("no best checkpoint was saved; testing the final weights", flush=True)
        # verbose=False: our ResultsTable prints the one table
        self.trainer.test(self.model, datamodule=self.datamodule, ckpt_path=ckpt_path, verbose=False)

    def before_test(self) -> None:
        self.config_init[self.subcommand]["verbose"] = False  # our ResultsTable prints the one table

    def before_validate(self) -> None:
        self.config_init[self.subcommand]["verbose"] = False  # likewise

    def before_predict(self) -> None:
        config = self.config_init[self.subcommand]
        output = config.get("predict_output")
        output = Path(output) if output else Path(self.trainer.default_root_dir) / "predictions.npz"
        self.trainer.callbacks.append(NpzPredictionWriter(str(output)))
        if _RUN.writer:
            update_run(_RUN.run_dir, predictions=str(output))
        # a DataModule of user keypoints takes its temporal window from the checkpoint's lifter
        match_lifter = getattr(self.datamodule, "match_lifter", None)
        if match_lifter is not None:
            match_lifter(self.model)
        if config.get("predict_json") or config.get("predict_render"):
            self.trainer.callbacks.append(
                FrameOutputs(
                    config.get("predict_json"),
                    config.get("predict_render"),
                    config.get("render_frames"),
                    config.get("render_fps", 25.0),
                )
            )


class RunRecord(pl.Callback):
    """Keeps ``run.json`` current: the W&B run id once known, results and the final status."""

    def __init__(self, run_dir: Path, writer: bool) -> None:
        self.run_dir = Path(run_dir)
        self.writer = writer

    def _wandb_ids(self, trainer: pl.Trainer) -> None:
        for logger in trainer.loggers:
            if type(logger).__name__ == "WandbLogger" and self.writer:
                update_run(self.run_dir, wandb_run_id=logger.version, wandb_dir=str(logger.save_dir))

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._wandb_ids(trainer)

    def on_test_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._wandb_ids(trainer)

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.writer and (self.run_dir / "results.json").is_file():
            update_run(self.run_dir, results=str(self.run_dir / "results.json"))

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        ckpt = trainer.checkpoint_callback
        if self.writer and ckpt is not None:
            update_run(
                self.run_dir,
                epochs_completed=trainer.current_epoch,
                best_checkpoint=getattr(ckpt, "best_model_path", "") or None,
            )


DESCRIPTION = (
    "poseshift: cross-dataset 3D human pose lifting. Lightning subcommands below; beside them, "
    "'poseshift data check|convert' inspects and converts dataset files and "
    "'poseshift evolve --config ...' grows an EvoSkeleton dataset. "
    "Every run gets its own folder under the experiment's trainer.default_root_dir; "
    "errors are one line (--debug or POSESHIFT_DEBUG=1 adds the traceback)."
)

COMMAND_GROUP = "poseshift.commands"


def extra_commands() -> dict[str, object]:
    """Commands that are not LightningCLI subcommands (``data``, ``evolve``), by name.

    They are entry points of the ``poseshift.commands`` group (setup.cfg): functions that take
    the remaining arguments and return an exit status.
    """
    return {ep.name: ep for ep in entry_points(group=COMMAND_GROUP)}


def _has_outputs(run_dir: Path) -> bool:
    """Whether a run folder holds anything beyond its config and record (checkpoints, logs, results)."""
    bookkeeping = (RUN_FILE, "hparams.yaml")
    files = (p for p in run_dir.rglob("*") if p.is_file())
    return any(p.name not in bookkeeping and not p.name.startswith("config") for p in files)


def _finish_run(status: str, error: str | None = None) -> None:
    """Record the outcome in run.json; a run that failed before doing anything leaves no folder."""
    run_dir = _RUN.run_dir
    if run_dir is None or not _RUN.writer or not run_dir.is_dir():
        return
    if status == "failed" and not _RUN.resumed and not _has_outputs(run_dir):
        shutil.rmtree(run_dir, ignore_errors=True)
        with contextlib.suppress(OSError):  # the experiment folder too, if this run was its first
            run_dir.parent.rmdir()
        _RUN.run_dir = None
        return
    update_run(run_dir, status=status, finished=now(), **({"error": error} if error else {}))


def build_cli(args: list[str] | None = None, run: bool = True) -> PoseShiftCLI:
    """The LightningCLI of ``poseshift`` on ``args`` (``None`` reads ``sys.argv``).

    With ``run=False`` it only parses and instantiates (no subcommand, no run folder): benchmarks
    use this to build exactly what ``poseshift fit --config ...`` builds, then drive the Trainer
    themselves. Parse errors raise (:func:`main` turns them into one line).
    """
    return PoseShiftCLI(
        LiftingModule,
        pl.LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        auto_configure_optimizers=False,
        save_config_callback=None,  # config.yaml is written to the run folder by PoseShiftCLI
        parser_kwargs={"description": DESCRIPTION, "exit_on_error": False}
        | {name: {"exit_on_error": False} for name in SUBCOMMANDS},
        args=args,  # None reads sys.argv, as LightningCLI expects from a command line
        run=run,
    )


def main(args: list[str] | None = None) -> int:
    """Entry point of the ``poseshift`` command (``args`` for calling it from Python); the exit status."""
    global _RUN
    argv = list(sys.argv[1:] if args is None else args)
    debug, argv = pop_debug(argv)
    _RUN = RunState(argv=tuple(argv))
    if debug:
        os.environ[DEBUG_ENV] = "1"  # processes Lightning starts for DDP inherit it
    if args is None:
        sys.argv[1:] = argv  # LightningCLI reads sys.argv itself
    quiet_lightning()
    # W&B's run summary and sync hints at the end would bury the results table and the run folder
    # line; its start lines (where the offline run is saved) stay. WANDB_QUIET=false brings them back.
    os.environ.setdefault("WANDB_QUIET", "true")
    try:
        commands = extra_commands()
        if argv and argv[0] in commands:
            return int(commands[argv[0]].load()(argv[1:]) or 0)
        build_cli(None if args is None else argv)
    except SystemExit as exit_:
        if isinstance(exit_.__context__, KeyboardInterrupt):  # Lightning's graceful Ctrl-C ends so
            return _interrupted()
        code = exit_.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    except KeyboardInterrupt:
        return _interrupted()
    except Exception as err:  # noqa: BLE001 - every failure becomes one line
        if debug:
            traceback.print_exc()
        line = format_error(err)
        print(line, file=sys.stderr, flush=True)
        _close_wandb(1)
        _finish_run("failed", line)
        if _RUN.run_dir is not None and _RUN.writer:
            print(f"run folder: {_RUN.run_dir}", file=sys.stderr, flush=True)
        return 1
    _close_wandb(0)
    if _RUN.run_dir is not None and _RUN.writer:
        _finish_run("finished")
        print(f"run folder: {_RUN.run_dir}", flush=True)
    return 0


def _close_wandb(exit_code: int) -> None:
    """Finish a W&B run now, so its closing lines come before the run folder line, not after it."""
    wandb = sys.modules.get("wandb")
    if wandb is not None and getattr(wandb, "run", None) is not None:
        with contextlib.suppress(Exception):  # W&B failing to close must not turn a run into a failure
            wandb.finish(exit_code=exit_code)


def _interrupted() -> int:
    _close_wandb(130)
    _finish_run("interrupted")
    if _RUN.run_dir is not None and _RUN.writer:
        print(f"interrupted; run folder: {_RUN.run_dir}", file=sys.stderr, flush=True)
    return 130


if __name__ == "__main__":
    sys.exit(main())
