"""PoseDA: update order and which players each step changes, the critic's clipping and penalty,
GPA in the step, the ablation switches, DDP and an exact mid-epoch resume."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
import yaml
from helpers import (
    REPO_ROOT,
    SameWeightsOnEveryRank,
    SyntheticDataModule,
    fit_and_test_in_bf16,
    synthetic_set,
)
from torch import nn

from data_modules.base import DomainSets
from poseshift.augment import box_normalize, global_position_alignment, in_view, reproject
from poseshift.geometry.camera import project_pinhole
from poseshift.methods.poseda import PoseDA, critic_score
from poseshift.trainers import quiet_trainer

TINY = dict(
    backbone="simple_baseline",
    backbone_kwargs={"linear_size": 32, "num_stages": 1},
    g_width=16,
    noise_dim=8,
    d_width=16,
)


class TargetData(SyntheticDataModule):
    """The synthetic source plus unlabeled target 2D ("wild") seen by its own mixed cameras."""

    def build_sets(self) -> DomainSets:
        sets = super().build_sets()
        wild = synthetic_set(80, 9, "wild")
        # a far-away, zoomed target: boxes and positions unlike the source's
        wild.intrinsics[:, :2] *= torch.linspace(0.8, 2.0, 80)[:, None].numpy()
        sets.target_train = {"wild": wild.unlabeled()}
        return sets


def data(**kwargs) -> TargetData:
    return TargetData(**{"num_train": 96, "num_test": 17, "batch_size": 32, "train_target": "wild", **kwargs})


def trainer(**kwargs) -> pl.Trainer:
    return quiet_trainer(**{"limit_val_batches": 0, "num_sanity_val_steps": 0, **kwargs})


def snapshot(model: PoseDA) -> dict[str, dict[str, torch.Tensor]]:
    # parameters only: G's BatchNorm running statistics (never used: G always runs in train mode)
    # move with every generation, including the critic's, as in PoseAug
    return {
        n: {k: v.detach().clone() for k, v in m.named_parameters()} for n, m in model.player_modules().items()
    }


def changed(before: dict, after: dict) -> set[str]:
    return {n for n in before if any(not torch.equal(before[n][k], after[n][k]) for k in before[n])}


class PerBatchChanges(pl.Callback):
    """Which players' weights each training batch changed."""

    def __init__(self) -> None:
        self.changes: list[set[str]] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self._before = snapshot(pl_module)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.changes.append(changed(self._before, snapshot(pl_module)))


def record_order(model: PoseDA) -> list[str]:
    order: list[str] = []
    original = model.player_step

    def step(name, loss):
        order.append(name)
        return original(name, loss)

    model.player_step = step
    return order


# -- the schedule ------------------------------------------------------------------------------------


def test_five_critic_steps_then_g_and_the_lifter_only_after_the_warmup():
    pl.seed_everything(0)
    model = PoseDA(**TINY, warmup_steps=6)
    probe = PerBatchChanges()
    order = record_order(model)
    # 2 epochs of 3 batches + 1 epoch: 9 iterations
    trainer(max_epochs=3, limit_train_batches=3, callbacks=[probe]).fit(model, datamodule=data())
    # the warm-up is 6 iterations; iteration 5 ends with G's step
    assert order == ["d3d"] * 5 + ["g", "d3d"] + ["d3d", "p"] * 3
    assert probe.changes == [{"d3d"}] * 4 + [{"d3d", "g"}, {"d3d"}] + [{"d3d", "p"}] * 3
    assert model.steps_of("d3d") == 9 and model.steps_of("g") == 1 and model.steps_of("p") == 3


def test_g_weights_change_only_on_g_steps():
    pl.seed_everything(0)
    model = PoseDA(**TINY, warmup_steps=100, n_critic=5)
    g_params: list[torch.Tensor] = []

    class Probe(pl.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            g_params.append(torch.cat([p.detach().reshape(-1) for p in pl_module.generator.parameters()]))

    start = torch.cat([p.detach().reshape(-1) for p in model.generator.parameters()])
    trainer(max_epochs=2, limit_train_batches=3, callbacks=[Probe()]).fit(model, datamodule=data())
    moved = [not torch.equal(a, b) for a, b in zip([start, *g_params[:-1]], g_params, strict=True)]
    assert moved == [False, False, False, False, True, False]


def test_epoch_warmup_counts_epochs():
    pl.seed_everything(0)
    model = PoseDA(**TINY, warmup=1, n_critic=2)
    order = record_order(model)
    trainer(max_epochs=2, limit_train_batches=2).fit(model, datamodule=data())
    assert order == ["d3d", "d3d", "g", "d3d", "p", "d3d", "g", "p"]


# -- the critic ---------------------------------------------------------------------------------------


def test_weight_clipping_keeps_every_critic_weight_in_range():
    pl.seed_everything(0)
    model = PoseDA(**TINY, warmup_steps=0, clip_value=0.01, d2d="target")
    assert max(float(p.abs().max()) for p in model.d3d.parameters()) > 0.01  # kaiming init exceeds it
    trainer(max_epochs=1, limit_train_batches=2).fit(model, datamodule=data())
    for critic in (model.d3d, model.d2d):
        assert max(float(p.abs().max()) for p in critic.parameters()) <= 0.01
    unclipped = PoseDA(**TINY, warmup_steps=0, critic_constraint="gp")
    trainer(max_epochs=1, limit_train_batches=2).fit(unclipped, datamodule=data())
    assert max(float(p.abs().max()) for p in unclipped.d3d.parameters()) > 0.01


class LinearCritic(nn.Module):
    """D(x) = <w, x> + b on the flattened pose, recording every input it scores."""

    def __init__(self, w: torch.Tensor) -> None:
        super().__init__()
        self.w = nn.Parameter(w)
        self.b = nn.Parameter(torch.tensor(0.3))
        self.seen: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(x.detach().clone())
        return (x.flatten(1) @ self.w + self.b)[:, None]


def test_gradient_penalty_is_on_interpolates_with_the_textbook_value():
    torch.manual_seed(0)
    model = PoseDA(**TINY, critic_constraint="gp", gp_weight=10.0)
    w = torch.randn(51) * 0.3
    critic = LinearCritic(w)
    real, fake = torch.randn(8, 17, 3), torch.randn(8, 17, 3)
    terms = model.critic_loss(critic, real, fake)
    # a linear critic's gradient is w everywhere: penalty (||w|| - 1)^2, weighted
    expected_gp = 10.0 * (torch.linalg.vector_norm(w) - 1) ** 2
    torch.testing.assert_close(terms["gp"], expected_gp)
    wgan = (fake.flatten(1) @ w).mean() - (real.flatten(1) @ w).mean()
    torch.testing.assert_close(terms["wgan"], wgan)
    # the penalty's inputs are points on the segments between each real and its fake
    mixed = critic.seen[-1]
    t = ((mixed - fake) * (real - fake)).flatten(1).sum(-1) / (real - fake).flatten(1).pow(2).sum(-1)
    torch.testing.assert_close(mixed, fake + t[:, None, None] * (real - fake), atol=1e-5, rtol=1e-5)
    assert ((t > 0) & (t < 1)).all() and t.std() > 0.05  # one random mix per sample
    assert "gp" not in PoseDA(**TINY).critic_loss(critic, real, fake)


def test_critic_score_is_the_mean_of_the_part_scores():
    model = PoseDA(**TINY)
    x = torch.as_tensor(synthetic_set(8, 1, "x").pose3d).float()
    parts = model.d3d(x)
    assert parts.shape == (8, 5)
    torch.testing.assert_close(critic_score(model.d3d, x), parts.mean(-1))


# -- GPA and the lifter's pairs ---------------------------------------------------------------------


def test_augmented_pairs_are_placed_by_gpa_with_the_target_cameras():
    pl.seed_everything(0)
    model = PoseDA(**TINY, use_lpa=False)
    dm = data()
    dm.setup("fit")
    batch, _, _ = next(iter(dm.train_dataloader()))
    source, target = batch["source"], model._target(batch["target"], 32)
    placed, pose2d = model.place(source["pose3d"], source, target)
    torch.testing.assert_close(
        placed, global_position_alignment(source["pose3d"], target["pose2d"], target["intrinsics"])
    )
    torch.testing.assert_close(pose2d, reproject(placed, target["intrinsics"]))
    # GPA places the root as a pinhole point (the H36M cameras here also distort, by < 1 px)
    root2d = project_pinhole(placed, target["intrinsics"])[:, 0]
    torch.testing.assert_close(root2d, target["pose2d"][:, 0], atol=1e-5, rtol=1e-5)
    # without GPA the pose keeps its source root and camera
    lpa_only = PoseDA(**TINY, use_gpa=False)
    placed, pose2d = lpa_only.place(source["pose3d"], source, target)
    torch.testing.assert_close(pose2d, source["pose2d"], atol=1e-5, rtol=1e-5)


def test_gpa_only_has_no_adversarial_players_and_trains_on_both_halves():
    pl.seed_everything(0)
    model = PoseDA(**TINY, use_lpa=False, warmup=5)
    assert list(model.configure_players()) == ["p"]
    seen: list[int] = []
    lifter_forward = model.lifter.forward
    model.lifter.forward = lambda x: (seen.append(x.shape[0]), lifter_forward(x))[1]
    order = record_order(model)
    trainer(max_epochs=1, limit_train_batches=2).fit(model, datamodule=data())
    assert order == ["p", "p"]  # nothing to warm up
    assert seen == [64, 64]  # 32 augmented + 32 source pairs per step


def test_unprojectable_pairs_get_no_weight():
    pl.seed_everything(0)
    model = PoseDA(**TINY, use_lpa=False)
    logged: dict[str, float] = {}

    class Probe(pl.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            logged.update({k: float(v) for k, v in trainer.callback_metrics.items()})

    # a huge target box puts the poses so close that some joints fall behind the camera
    dm = data()
    dm.setup("fit")
    dm.sets.target_train["wild"].pose2d *= 40.0
    trainer(max_epochs=1, limit_train_batches=1, callbacks=[Probe()]).fit(model, datamodule=dm)
    assert logged["poseda/kept_fraction"] < 1.0
    assert math.isfinite(logged["train/p_loss"])


def test_source_pairs_get_gpa_only_when_asked():
    pl.seed_everything(0)
    dm = data()
    dm.setup("fit")
    batch, _, _ = next(iter(dm.train_dataloader()))
    source = batch["source"]
    for flag in (False, True):
        model = PoseDA(**TINY, use_lpa=False, gpa_source=flag)
        target = model._target(batch["target"], 32)
        x2d, x3d, _ = model._source_pairs(source, target)
        assert torch.equal(x3d, source["pose3d"])
        assert torch.equal(x2d, source["pose2d"]) != flag
        if flag:  # paired with the next target sample, not the one the augmented copy gets
            assert (x2d[:, 0] - target["pose2d"].roll(1, 0)[:, 0]).abs().max() < 2e-3  # distortion
            assert (x2d[:, 0] - target["pose2d"][:, 0]).abs().max() > 0.05


def test_missing_target_2d_is_named():
    with pytest.raises(RuntimeError, match="train_target"):
        trainer(max_epochs=1, limit_train_batches=1).fit(PoseDA(**TINY), datamodule=data(train_target=None))
    # LPA alone needs no target
    trainer(max_epochs=1, limit_train_batches=1).fit(
        PoseDA(**TINY, use_gpa=False, warmup_steps=0), datamodule=data(train_target=None)
    )


# -- ablation switches ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "g_condition, d3d_real, d2d",
    [("target", "target", "target"), ("source", "target", None), ("source", "source", "source")],
)
def test_table7_inputs_train_the_right_players(g_condition, d3d_real, d2d):
    pl.seed_everything(0)
    model = PoseDA(**TINY, warmup_steps=0, n_critic=1, g_condition=g_condition, d3d_real=d3d_real, d2d=d2d)
    order = record_order(model)
    trainer(max_epochs=1, limit_train_batches=1).fit(model, datamodule=data())
    assert order == ["d3d"] + (["d2d"] if d2d else []) + ["g", "p"]


def test_target_condition_changes_what_g_sees():
    torch.manual_seed(0)
    model = PoseDA(**TINY)
    x = torch.as_tensor(synthetic_set(8, 1, "x").pose3d).float()
    cond = torch.as_tensor(synthetic_set(8, 2, "y").pose3d).float()
    model.generator.eval()
    torch.manual_seed(1)
    own = model.generator(x)["pose"]
    torch.manual_seed(1)
    other = model.generator(x, cond)["pose"]
    assert not torch.allclose(own, other)


def test_random_baselines_rotate_about_the_vertical_and_scale_bones():
    pl.seed_everything(0)
    model = PoseDA(**TINY, use_lpa=False, use_gpa=False, random_rotation_deg=30, random_bone_length=0.2)
    x = torch.as_tensor(synthetic_set(64, 1, "x").pose3d).float()
    y = model._random_augment(x)
    from poseshift.geometry import bone_lengths

    ratio = bone_lengths(y) / bone_lengths(x)
    assert ((ratio > 0.79) & (ratio < 1.21)).all() and ratio.std() > 0.05
    with pytest.raises(ValueError, match="use_lpa"):
        PoseDA(**TINY, random_rotation_deg=30)


def test_crop_normalized_inputs_reach_the_lifter_in_training_and_evaluation():
    torch.manual_seed(0)
    model = PoseDA(**TINY, input_norm="square_crop").eval()
    x = torch.as_tensor(synthetic_set(8, 1, "x").pose2d).float()
    torch.testing.assert_close(model(x), model.lifter(box_normalize(x, square=True)))
    # a person moved and scaled in the image gets the same prediction
    torch.testing.assert_close(model(x * 0.5 + 0.2), model(x), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    "backbone, kwargs",
    [
        ("videopose", {"channels": 32}),
        ("semgcn", {"hid_dim": 16, "num_layers": 1}),
        ("stgcn", {"channels": (16, 16, 16), "part_channels": 16, "dropout": 0.0}),
    ],
)
def test_every_backbone_trains_under_poseda(backbone, kwargs):
    pl.seed_everything(0)
    model = PoseDA(**{**TINY, "backbone": backbone, "backbone_kwargs": kwargs}, warmup_steps=0, n_critic=1)
    before = snapshot(model)
    trainer(max_epochs=1, limit_train_batches=1).fit(model, datamodule=data())
    assert changed(before, snapshot(model)) == {"g", "d3d", "p"}


# -- DDP and resume ------------------------------------------------------------------------------------


@pytest.mark.slow
def test_ddp_spawn_two_processes_keeps_every_player_identical(tmp_path):
    pl.seed_everything(0)
    model = PoseDA(**TINY, warmup_steps=2, n_critic=2, d2d="target", critic_constraint="gp")
    tr = trainer(
        callbacks=[SameWeightsOnEveryRank()],
        strategy="ddp_spawn",
        devices=2,
        max_epochs=2,
        limit_train_batches=2,
        default_root_dir=tmp_path,
    )
    tr.fit(model, datamodule=data(num_train=192))
    assert tr.state.finished
    assert model.steps_of("d3d") == 4 and model.steps_of("g") == 2 and model.steps_of("p") == 2


def _all_state(model: PoseDA, tr: pl.Trainer) -> dict[str, torch.Tensor]:
    state = {f"model.{k}": v.detach().clone() for k, v in model.state_dict().items()}
    for i, opt in enumerate(tr.optimizers):
        for pid, values in opt.state_dict()["state"].items():
            for k, v in values.items():
                state[f"opt{i}.{pid}.{k}"] = torch.as_tensor(v).clone()
    return state


def test_resume_from_a_mid_epoch_checkpoint_equals_the_uninterrupted_run(tmp_path):
    kw = dict(**TINY, warmup_steps=3, n_critic=2, d2d="target", critic_constraint="gp")

    class SaveAfter(pl.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            if trainer.current_epoch == 1 and batch_idx == 0:
                trainer.save_checkpoint(tmp_path / "mid.ckpt")

    pl.seed_everything(0)
    full = PoseDA(**kw)
    tr_full = trainer(max_epochs=3, callbacks=[SaveAfter()])
    tr_full.fit(full, datamodule=data())
    # another process would start from nothing: scramble the global RNG before resuming
    torch.manual_seed(12345)
    pl.seed_everything(0)
    resumed = PoseDA(**kw)
    tr_res = trainer(max_epochs=3)
    tr_res.fit(resumed, datamodule=data(), ckpt_path=tmp_path / "mid.ckpt")
    assert {n: resumed.steps_of(n) for n in ("g", "d3d", "d2d", "p")} == {
        n: full.steps_of(n) for n in ("g", "d3d", "d2d", "p")
    }
    want, got = _all_state(full, tr_full), _all_state(resumed, tr_res)
    assert want.keys() == got.keys()
    differ = [k for k in want if not torch.equal(want[k], got[k])]
    assert not differ, differ[:5]


def test_view_filter_matches_in_view():
    # the lifter's weights come from the library's in_view test of the placed poses
    x = torch.as_tensor(synthetic_set(16, 1, "x").pose3d).float()
    placed = x + torch.tensor([0.0, 0.0, 0.5])  # so close that feet leave the clamp
    assert not in_view(placed).all()


# -- the shipped configs ---------------------------------------------------------------------------------

EXPERIMENTS = REPO_ROOT / "experiments" / "poseda"
MAIN_CONFIGS = sorted(EXPERIMENTS.glob("h36m*.yaml"))
OVERLAYS = sorted((EXPERIMENTS / "ablations").glob("*.yaml"))


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder whose ``data/`` holds every dataset file the configs name (fixture files)."""
    from fixtures import write_all

    root = tmp_path_factory.mktemp("datasets")
    write_all(root / "data")
    return root


def build(dataset_dir: Path, monkeypatch, *configs: Path, extra: tuple[str, ...] = ()):
    from poseshift.cli import build_cli

    monkeypatch.chdir(dataset_dir)  # the configs name data/<dataset>
    args = [a for c in configs for a in ("--config", str(c))]
    args += [
        "--trainer.logger=false",
        "--trainer.callbacks=[]",
        "--trainer.enable_checkpointing=false",
        *extra,
    ]
    return build_cli(args, run=False)


@pytest.mark.parametrize("config", MAIN_CONFIGS, ids=[c.stem for c in MAIN_CONFIGS])
def test_main_configs_train_every_player_on_their_target_2d(config, dataset_dir, monkeypatch):
    pl.seed_everything(0)
    small = {"videopose": "channels", "semgcn": "hid_dim", "stgcn": None, "simple_baseline": "linear_size"}
    backbone = yaml.safe_load(config.read_text())["model"]["init_args"]["backbone"]
    extra = (
        "--data.init_args.batch_size=16",
        "--model.init_args.warmup_steps=0",
        "--model.init_args.n_critic=1",
        "--trainer.max_steps=4",
        "--trainer.limit_val_batches=0",
        "--trainer.accelerator=cpu",
        "--trainer.devices=1",
    )
    if small[backbone]:
        extra += (f"--model.init_args.backbone_kwargs.{small[backbone]}=32",)
    cli = build(dataset_dir, monkeypatch, config, extra=extra)
    model, dm = cli.model, cli.datamodule
    assert isinstance(model, PoseDA) and model.hparams.warmup == 5 and model.hparams.n_critic == 1
    dm.setup("fit")
    assert dm.train_target in dm.sets.target_train
    before = snapshot(model)
    cli.trainer.fit(model, datamodule=dm)
    assert changed(before, snapshot(model)) == {"g", "d3d", "p"}


@pytest.mark.parametrize("overlay", OVERLAYS, ids=[c.stem for c in OVERLAYS])
def test_ablation_overlays_set_what_they_name(overlay, dataset_dir, monkeypatch):
    cli = build(dataset_dir, monkeypatch, EXPERIMENTS / "h36m_3dhp_videopose.yaml", overlay)
    wanted = yaml.safe_load(overlay.read_text())["model"]["init_args"]
    hp = cli.model.hparams
    assert {k: hp[k] for k in wanted} == wanted
    players = list(cli.model.configure_players())
    assert players == (["p"] if not hp.use_lpa else ["g", "d3d", *(["d2d"] if hp.d2d else []), "p"])


def test_mocap_config_targets_all_shift(monkeypatch, tmp_path):
    cli = build(tmp_path, monkeypatch, EXPERIMENTS / "mocap.yaml")
    assert cli.datamodule.train_target == "all_shift" and cli.model.hparams.backbone == "simple_baseline"


def test_every_player_steps_under_bf16_autocast():
    pl.seed_everything(0)
    fit_and_test_in_bf16(PoseDA(**TINY, warmup=1), data(), max_epochs=2)
