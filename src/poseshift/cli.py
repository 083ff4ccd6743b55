"""``poseshift fit|validate|test|predict --config experiments/...yaml`` (LightningCLI).

Two more commands sit beside Lightning's: ``poseshift data check|convert`` (dataset folders)
and ``poseshift evolve --config ...`` (EvoSkeleton's offline dataset evolution).

Model and data are chosen by class path in the YAML (``model.class_path``,
``data.class_path``); every constructor argument is a documented option
(``poseshift fit --help``, ``poseshift fit --model.help poseshift.methods.Baseline``).
"""

from __future__ import annotations

import sys
from importlib.metadata import entry_points

import pytorch_lightning as pl
from pytorch_lightning.cli import LightningArgumentParser, LightningCLI

from poseshift.callbacks import NpzPredictionWriter
from poseshift.frame_outputs import FrameOutputs
from poseshift.methods.base import LiftingModule


class PoseShiftCLI(LightningCLI):
    """LightningCLI with two additions: test after fit, and an npz writer for predict."""

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_argument(
            "--test_after_fit",
            type=bool,
            default=False,
            help="fit only: then test the best checkpoint on every test set and print the results table",
        )
        parser.add_argument(
            "--predict_output",
            type=str,
            default="predictions.npz",
            help="predict only: npz file the lifted 3D poses are written to (key 'pose3d', metres)",
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

    def before_fit(self) -> None:
        describe = getattr(self.datamodule, "describe", None)
        if describe is not None and self.trainer.is_global_zero:
            print(describe(), flush=True)

    def after_fit(self) -> None:
        if not self.config_init[self.subcommand].get("test_after_fit"):
            return
        ckpt = self.trainer.checkpoint_callback
        ckpt_path = "best" if ckpt is not None and getattr(ckpt, "best_model_path", "") else None
        if ckpt_path is None:
            print("no best checkpoint was saved; testing the final weights", flush=True)
        self.trainer.test(self.model, datamodule=self.datamodule, ckpt_path=ckpt_path)

    def before_predict(self) -> None:
        config = self.config_init[self.subcommand]
        output = config.get("predict_output", "predictions.npz")
        self.trainer.callbacks.append(NpzPredictionWriter(output))
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


DESCRIPTION = (
    "poseshift: cross-dataset 3D human pose lifting. Lightning subcommands below; beside them, "
    "'poseshift data check|convert' inspects and converts dataset files and "
    "'poseshift evolve --config ...' grows an EvoSkeleton dataset."
)

COMMAND_GROUP = "poseshift.commands"


def extra_commands() -> dict[str, object]:
    """Commands that are not LightningCLI subcommands (``data``, ``evolve``), by name.

    They are entry points of the ``poseshift.commands`` group (setup.cfg): functions that take
    the remaining arguments and return an exit status.
    """
    return {ep.name: ep for ep in entry_points(group=COMMAND_GROUP)}


def build_cli(args: list[str] | None = None, run: bool = True) -> PoseShiftCLI:
    """The LightningCLI of ``poseshift`` on ``args`` (``None`` reads ``sys.argv``).

    With ``run=False`` it only parses and instantiates (no subcommand): benchmarks use this to
    build exactly what ``poseshift fit --config ...`` builds, then drive the Trainer themselves.
    """
    return PoseShiftCLI(
        LiftingModule,
        pl.LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        auto_configure_optimizers=False,
        save_config_kwargs={"overwrite": True},
        parser_kwargs={"description": DESCRIPTION},
        args=args,  # None reads sys.argv, as LightningCLI expects from a command line
        run=run,
    )


def main(args: list[str] | None = None) -> None:
    """Entry point of the ``poseshift`` command (``args`` for calling it from Python)."""
    argv = sys.argv[1:] if args is None else list(args)
    commands = extra_commands()
    if argv and argv[0] in commands:
        code = commands[argv[0]].load()(argv[1:])
        if code:
            raise SystemExit(code)
        return
    # the CLI object is not returned: the console script does sys.exit(main()), and a non-None
    # value would make every successful run exit 1
    build_cli(args)


if __name__ == "__main__":
    main()
