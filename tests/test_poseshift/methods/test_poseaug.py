"""PoseAug: networks, losses, pool, update order, which players a step changes, DDP and resume."""

from __future__ import annotations

import copy
import math

import pytest
import pytorch_lightning as pl
import torch
from helpers import SameWeightsOnEveryRank, SyntheticDataModule, fit_and_test_in_bf16, synthetic_set

from data_modules.base import DomainSets
from poseshift.adversarial import (
    grouped_pose_error,
    lsgan_discriminator_loss,
    lsgan_loss,
)
from poseshift.augment import bone_length_scale, reproject
from poseshift.geometry import H36M17, part_kcs
from poseshift.methods.baseline import Baseline
from poseshift.methods.poseaug import PoseAug
from poseshift.models import KCSDiscriminator
from poseshift.trainers import quiet_trainer

TINY = dict(
    backbone="simple_baseline",
    backbone_kwargs={"linear_size": 32, "num_stages": 1},
    g_width=16,
    g_stages=1,
    noise_dim=8,
    d3d_width=16,
    pool_size=48,
    epochs=4,
    pretrained="scratch",  # these tests train PoseAug on its own, without a baseline
)


def trainer(**kwargs) -> pl.Trainer:
    return quiet_trainer(**{"limit_val_batches": 0, "num_sanity_val_steps": 0, **kwargs})


def data(**kwargs) -> SyntheticDataModule:
    return SyntheticDataModule(**{"num_train": 96, "num_test": 17, "batch_size": 32, **kwargs})


def snapshot(model: PoseAug) -> dict[str, dict[str, torch.Tensor]]:
    players = model.player_modules()
    return {n: {k: v.detach().clone() for k, v in m.named_parameters()} for n, m in players.items()}


def changed(before: dict, model: PoseAug) -> set[str]:
    after = snapshot(model)
    return {n for n in before if any(not torch.equal(before[n][k], after[n][k]) for k in before[n])}


def sample_poses(n: int = 32) -> torch.Tensor:
    s = synthetic_set(n, 5, "x")
    return torch.as_tensor(s.pose3d) + torch.as_tensor(s.root3d)[:, None]


# -- losses and small parts ----------------------------------------------------------------------


def test_default_feedback_equals_three_separate_train_mode_passes():
    torch.manual_seed(0)
    model = PoseAug(**{**TINY, "backbone_kwargs": {"linear_size": 32, "num_stages": 1, "dropout": 0.0}})
    x = sample_poses()
    cam = torch.as_tensor(synthetic_set(32, 5, "x").intrinsics)
    aug = model.generator(x)
    pairs = [(reproject(p, cam), p) for p in (x, aug["pose_ba"], aug["pose_rt"])]
    got = model.feedback_errors(pairs)
    lifter = copy.deepcopy(model.lifter).train()  # the reference: every pair alone, in train mode
    want = [grouped_pose_error(lifter(x2d), x3d, model.fb_matrix) for x2d, x3d in pairs]
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-6)
    # pooling the BA and RT batches' BatchNorm statistics (batched_feedback) changes the errors
    model.hparams.batched_feedback = True
    pooled = model.feedback_errors(pairs)
    assert not torch.allclose(pooled[1], got[1], atol=1e-4)
    torch.testing.assert_close(pooled[0], got[0])  # the reference pair is lifted alone either way


def test_batched_passes_equal_separate_ones():
    torch.manual_seed(0)
    x = sample_poses()
    d3d = KCSDiscriminator(width=16)
    real, fake = x, x.flip(0) * 1.1
    separate = 0.5 * (lsgan_loss(d3d(real), 1.0) + lsgan_loss(d3d(fake), 0.0))
    torch.testing.assert_close(lsgan_discriminator_loss(d3d, real, fake), separate)
    model = PoseAug(**TINY, feedback_train_mode=False)  # eval BN: batch composition cannot matter
    cam = torch.as_tensor(synthetic_set(32, 5, "x").intrinsics)
    aug = model.generator(x)
    pairs = [(reproject(p, cam), p) for p in (x, aug["pose_ba"], aug["pose_rt"])]
    model.hparams.batched_feedback = True
    batched = model.feedback_errors(pairs)
    model.hparams.batched_feedback = False
    for a, b in zip(batched, model.feedback_errors(pairs), strict=True):
        torch.testing.assert_close(a, b)


def test_beta_and_lr_schedules_follow_the_reference():
    model = PoseAug(**{**TINY, "epochs": 50})
    torch.testing.assert_close(model.beta_at(1), torch.tensor([3.04, 17.0]))
    torch.testing.assert_close(model.beta_at(50), torch.tensor([5.0, 17.0]))
    opts, scheds = model.configure_optimizers()
    assert len(opts) == 4
    factors = []
    for _ in range(3):
        factors.append(opts[0].param_groups[0]["lr"] / 1e-4)
        opts[0].step()
        scheds[0].step()
    assert factors == pytest.approx([1.0, 1 - 1 / 51, 1 - 2 / 51])


def test_part_kcs_discriminator_is_blind_to_bone_lengths_and_mirrors_parts():
    x = sample_poses()
    ratios = 0.7 + 0.6 * torch.rand(x.shape[0], 16)
    torch.testing.assert_close(part_kcs(bone_length_scale(x, ratios)), part_kcs(x), atol=1e-5, rtol=1e-5)
    d3d = KCSDiscriminator(width=16)
    torch.testing.assert_close(d3d(bone_length_scale(x, ratios)), d3d(x), atol=1e-4, rtol=1e-4)
    full = KCSDiscriminator(mode="full", width=16)
    assert full(x).shape == (x.shape[0], 1)
    assert not torch.allclose(full(bone_length_scale(x, ratios)), full(x))
    # mirroring the body swaps the left and right parts' features
    names = list(H36M17.parts)
    mirrored = x[:, H36M17.flip_permutation] * torch.tensor([-1.0, 1.0, 1.0])
    feats, feats_m = part_kcs(x), part_kcs(mirrored)
    bperm = H36M17.bone_flip_permutation
    la, ra = names.index("left_arm"), names.index("right_arm")
    torch.testing.assert_close(feats_m[:, la][:, bperm][:, :, bperm], feats[:, ra], atol=1e-5, rtol=1e-5)
    ll, rl = names.index("left_leg"), names.index("right_leg")
    torch.testing.assert_close(feats_m[:, ll][:, bperm][:, :, bperm], feats[:, rl], atol=1e-5, rtol=1e-5)


def test_left_leg_part_holds_the_left_leg():
    names = H36M17.names
    for part, side in (("left_leg", "l_"), ("right_leg", "r_"), ("left_arm", "l_"), ("right_arm", "r_")):
        limb = [names[b + 1] for b in H36M17.parts[part] if names[b + 1][:2] in ("l_", "r_")]
        limb = [j for j in limb if not j.endswith("hip")]  # both hip bones belong to each leg part
        assert limb and all(j.startswith(side) for j in limb), (part, limb)


def test_gradients_reach_every_generator_head():
    torch.manual_seed(0)
    model = PoseAug(**TINY)
    x = sample_poses()
    cam = torch.as_tensor(synthetic_set(32, 5, "x").intrinsics)
    aug = model.generator(x)
    x2d = reproject(aug["pose_rt"], cam)
    orig, ba, rt = model.feedback_errors(
        [(reproject(x, cam), x), (reproject(aug["pose_ba"], cam), aug["pose_ba"]), (x2d, aug["pose_rt"])]
    )
    loss = (model.d3d(aug["pose_ba"]) - 1).pow(2).mean() + (model.d2d(x2d) - 1).pow(2).mean()
    loss = loss + model.regularizer(aug) + (ba / orig).mean() + (rt / orig).mean()
    loss.backward()
    g = model.generator
    for name, head in (("ba", g.ba), ("bl", g.bl), ("rot", g.rot), ("trans", g.trans)):
        assert head.head.weight.grad is not None and head.head.weight.grad.abs().sum() > 0, name


def test_ablation_switches_build_only_the_players_used():
    model = PoseAug(**TINY, use_ba=False, use_d2d=False, kcs_mode="full")
    assert model.generator.ba is None and model.d2d is None and model.pool2d is None
    assert model.d3d is not None and model.d3d.mode == "full"
    assert list(model.configure_players()) == ["g", "d3d", "p"]
    out = model.generator(sample_poses(8))
    assert torch.equal(out["pose_ba"], sample_poses(8))
    with pytest.raises(ValueError):
        PoseAug(**TINY, use_ba=False, use_bl=False, use_rt=False)


def test_pretrained_baseline_weights_are_loaded(tmp_path):
    base = Baseline(backbone="simple_baseline", backbone_kwargs=TINY["backbone_kwargs"])
    path = tmp_path / "base.ckpt"
    torch.save({"state_dict": base.state_dict()}, path)
    model = PoseAug(**{**TINY, "pretrained": str(path)})
    assert any(not torch.equal(model.lifter.state_dict()[k], v) for k, v in base.lifter.state_dict().items())
    # loaded when a fresh fit starts (max_epochs=0: set up, then stop before any step)
    trainer = quiet_trainer(max_epochs=0, default_root_dir=tmp_path)
    trainer.fit(model, datamodule=SyntheticDataModule(num_train=64))
    for k, v in base.lifter.state_dict().items():
        assert torch.equal(model.lifter.state_dict()[k], v), k
    # the finished model's checkpoint loads without the baseline file
    trainer.save_checkpoint(tmp_path / "poseaug.ckpt")
    path.unlink()
    restored = PoseAug.load_from_checkpoint(tmp_path / "poseaug.ckpt")
    for k, v in model.lifter.state_dict().items():
        assert torch.equal(restored.lifter.state_dict()[k], v), k


# -- the training step ---------------------------------------------------------------------------


def record_order(model: PoseAug) -> list[str]:
    order: list[str] = []
    original = model.player_step

    def step(name, loss):
        order.append(name)
        return original(name, loss)

    model.player_step = step
    return order


def test_warmup_step_updates_g_and_both_ds_but_not_the_lifter():
    pl.seed_everything(0)
    model = PoseAug(**TINY, warmup=2)
    before = snapshot(model)
    order = record_order(model)
    trainer(max_epochs=1, limit_train_batches=1).fit(model, datamodule=data())
    assert order == ["g", "d3d", "d2d"]
    assert changed(before, model) == {"g", "d3d", "d2d"}
    assert int(model.pool3d.count) == 32 and int(model.pool2d.count) == 32


def test_iteration_schedule_step_order_and_d_frequency():
    pl.seed_everything(0)
    model = PoseAug(**TINY, warmup=0, estimator_schedule="iteration")
    order = record_order(model)
    trainer(max_epochs=1, limit_train_batches=2).fit(model, datamodule=data())
    # reference order: G, then D3d and D2d every second G step, then the estimator
    assert order == ["g", "d3d", "d2d", "p", "g", "p"]
    before = snapshot(model)
    model._steps["g"] = 1  # an odd G step: no D update
    trainer(max_epochs=1, limit_train_batches=1).fit(model, datamodule=data())
    assert changed(before, model) == {"g", "p"}


def test_epoch_schedule_trains_lifter_on_buffer_then_real_at_epoch_end():
    pl.seed_everything(0)
    model = PoseAug(**TINY, warmup=0, estimator_schedule="epoch", in_frame_lower=False)
    order = record_order(model)
    trainer(max_epochs=1, limit_train_batches=3).fit(model, datamodule=data())
    g_positions = [i for i, n in enumerate(order) if n == "g"]
    assert len(g_positions) == 3
    assert "p" not in order[: g_positions[-1]]  # no lifter step before the last batch
    assert order.count("p") >= 3  # >= 1 augmented batch (if any kept) + 3 real batches
    assert all(len(v) == 0 for v in model._buffer.values())  # cleared after the passes


def test_feedback_forms_and_template_swap_run():
    pl.seed_everything(0)
    model = PoseAug(**TINY, warmup=0, feedback="exp", estimator_schedule="iteration", d3d_input="rt")
    trainer(max_epochs=1, limit_train_batches=1).fit(model, datamodule=data())
    assert model.templates.shape == (1, 16)  # one subject in the synthetic data
    assert math.isfinite(float(model.beta[0]))


class ExtraTargetData(SyntheticDataModule):
    def build_sets(self) -> DomainSets:
        sets = super().build_sets()
        sets.target_train = {"wild": synthetic_set(40, 9, "wild").unlabeled()}
        return sets


def test_extra_2d_mixes_target_poses_into_d2d_reals():
    pl.seed_everything(0)
    model = PoseAug(**TINY, extra_2d=True, extra_2d_fraction=0.25)
    seen = []

    class TargetProbe(pl.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            seen.append(batch["target"]["pose2d"])

    dm = ExtraTargetData(num_train=96, batch_size=32, train_target="wild")
    trainer(max_epochs=1, limit_train_batches=1, callbacks=[TargetProbe()]).fit(model, datamodule=dm)
    wild = torch.as_tensor(dm.sets.target_train["wild"].pose2d)
    assert seen[0].shape == (32, 17, 2)  # a target batch beside each source batch
    assert (seen[0][:, None] == wild[None]).all(-1).all(-1).any(-1).all()
    target = {"pose2d": seen[0]}
    _, real2d = model._draw_real(
        sample_poses(32), torch.as_tensor(synthetic_set(32, 5, "x").intrinsics), target
    )
    hits = (real2d[:, None] == wild[None]).all(-1).all(-1).any(-1)
    assert int(hits.sum()) == 8
    with pytest.raises(RuntimeError, match="train_target"):
        model._draw_real(sample_poses(32), torch.as_tensor(synthetic_set(32, 5, "x").intrinsics), None)


# -- DDP and resume ------------------------------------------------------------------------------


class SameWeightsDifferentPools(SameWeightsOnEveryRank):
    """Same players on every rank, but each rank's fake pool holds its own shard's samples."""

    def on_train_end(self, trainer, pl_module):
        import torch.distributed as dist

        super().on_train_end(trainer, pl_module)
        pools = [torch.zeros_like(pl_module.pool2d.items) for _ in range(dist.get_world_size())]
        dist.all_gather(pools, pl_module.pool2d.items)
        assert not torch.equal(pools[0], pools[1])


@pytest.mark.slow
def test_ddp_spawn_two_processes_runs_the_full_adversarial_loop(tmp_path):
    pl.seed_everything(0)
    model = PoseAug(**TINY, warmup=0, estimator_schedule="epoch")
    tr = trainer(
        callbacks=[SameWeightsDifferentPools()],
        strategy="ddp_spawn",
        devices=2,
        max_epochs=2,
        limit_train_batches=2,
        default_root_dir=tmp_path,
        limit_val_batches=1,
    )
    tr.fit(model, datamodule=data(num_train=192))
    # ddp_spawn copies the trained weights back to this process
    assert tr.state.finished and model.steps_of("g") == 4


def test_resume_restores_beta_optimizers_schedulers_and_pool(tmp_path):
    pl.seed_everything(0)
    model = PoseAug(**TINY, warmup=0)
    tr = trainer(max_epochs=1, limit_train_batches=2, default_root_dir=tmp_path)
    tr.fit(model, datamodule=data())
    path = tmp_path / "mid.ckpt"
    tr.save_checkpoint(path)
    saved = {
        "opt": copy.deepcopy([o.state_dict() for o in tr.optimizers]),
        "sched": [s.scheduler.state_dict() for s in tr.lr_scheduler_configs],
        "beta": model.beta.clone(),
        "pool": model.pool3d.items.clone(),
        "count": int(model.pool2d.count),
        "g_steps": model.steps_of("g"),
    }
    assert saved["sched"][0]["last_epoch"] == 1

    seen: dict = {}

    class Probe(pl.Callback):
        def on_train_start(self, trainer, pl_module):
            seen["opt"] = copy.deepcopy([o.state_dict() for o in trainer.optimizers])
            seen["sched"] = [s.scheduler.state_dict() for s in trainer.lr_scheduler_configs]
            seen["beta"] = pl_module.beta.clone()
            seen["pool"] = pl_module.pool3d.items.clone()
            seen["count"] = int(pl_module.pool2d.count)
            seen["g_steps"] = pl_module.steps_of("g")

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            seen.setdefault("beta_epoch2", pl_module.beta.clone())

    resumed = PoseAug(**TINY, warmup=0)
    trainer(max_epochs=2, limit_train_batches=2, default_root_dir=tmp_path, callbacks=[Probe()]).fit(
        resumed, datamodule=data(), ckpt_path=path
    )
    assert torch.equal(seen["beta"], saved["beta"])
    torch.testing.assert_close(seen["beta_epoch2"], resumed.beta_at(2))
    assert torch.equal(seen["pool"], saved["pool"]) and seen["count"] == saved["count"]
    assert seen["g_steps"] == saved["g_steps"]
    assert [s["last_epoch"] for s in seen["sched"]] == [s["last_epoch"] for s in saved["sched"]]
    for got, want in zip(seen["opt"], saved["opt"], strict=True):
        assert got["state"].keys() == want["state"].keys()
        for k in want["state"]:
            for name, value in want["state"][k].items():
                assert torch.equal(torch.as_tensor(got["state"][k][name]), torch.as_tensor(value)), (k, name)
    assert resumed.steps_of("g") == saved["g_steps"] + 2


def test_mid_epoch_buffer_survives_a_checkpoint_round_trip():
    model = PoseAug(**TINY)
    model._buffer["aug2d"].append(torch.ones(3, 17, 2))
    ckpt = {"state_dict": model.state_dict()}
    model.on_save_checkpoint(ckpt)
    other = PoseAug(**TINY)
    other.on_load_checkpoint(ckpt)
    assert torch.equal(other._buffer["aug2d"][0], torch.ones(3, 17, 2))


def test_figure7_viewpoints_and_plot():
    from helpers import _REST

    from poseshift.geometry.camera import body_frame_viewpoint
    from poseshift.plots import viewpoint_position_figure

    pose = torch.tensor(_REST, dtype=torch.float32)[None] + torch.tensor([0.0, 0.0, 5.0])
    az, el = body_frame_viewpoint(pose)  # the rest pose faces the camera
    assert abs(float(az)) < 1e-3 and abs(float(el)) < 1e-3
    turned = pose.clone()
    turned[..., 0] = -(pose[..., 2] - 5.0)  # rotate 90 degrees about the vertical axis
    turned[..., 2] = pose[..., 0] + 5.0
    assert abs(abs(float(body_frame_viewpoint(turned)[0])) - 90) < 1e-3
    fig = viewpoint_position_figure(sample_poses(), sample_poses(16))
    assert len(fig.axes) == 4


class _Recorder:
    def __init__(self) -> None:
        self.histograms: list[str] = []
        self.figures: list[str] = []

    def add_histogram(self, tag, values, step):
        self.histograms.append(tag)

    def add_figure(self, tag, figure, step):
        self.figures.append(tag)


class RecordingLogger(pl.loggers.Logger):
    """A TensorBoard-like logger that records histogram and figure calls."""

    def __init__(self) -> None:
        super().__init__()
        self._experiment = _Recorder()

    @property
    def name(self) -> str:
        return "recording"

    @property
    def version(self) -> int:
        return 0

    @property
    def experiment(self) -> _Recorder:
        return self._experiment

    def log_metrics(self, metrics, step=None) -> None:
        pass

    def log_hyperparams(self, params, *args, **kwargs) -> None:
        pass


def test_augmentation_histograms_and_figure_are_logged():
    pl.seed_everything(0)
    model = PoseAug(**TINY, log_every_n_steps_hist=1, figure_every_n_epochs=1)
    logger = RecordingLogger()
    trainer(max_epochs=1, limit_train_batches=2, logger=logger).fit(model, datamodule=data())
    assert "aug/rotation_deg" in logger.experiment.histograms
    assert "aug/bone_length_ratio" in logger.experiment.histograms
    assert logger.experiment.figures == ["poseaug/figure7"]


@pytest.mark.parametrize(
    "backbone, kwargs",
    [
        ("videopose", {"channels": 32}),
        ("semgcn", {"hid_dim": 16, "num_layers": 1}),
        ("stgcn", {"channels": (16, 16, 16), "part_channels": 16, "dropout": 0.0}),
    ],
)
def test_every_backbone_trains_under_poseaug(backbone, kwargs):
    pl.seed_everything(0)
    model = PoseAug(**{**TINY, "backbone": backbone, "backbone_kwargs": kwargs}, warmup=0)
    before = snapshot(model)
    trainer(max_epochs=1, limit_train_batches=2).fit(model, datamodule=data())
    assert changed(before, model) == {"g", "d3d", "d2d", "p"}


def test_resume_mid_epoch_keeps_the_epoch_buffer(tmp_path):
    class SaveAfterFirstBatch(pl.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            if batch_idx == 0:
                trainer.save_checkpoint(tmp_path / "mid.ckpt")

    seen: list[tuple[int, int]] = []

    class Probe(pl.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            seen.append((batch_idx, len(pl_module._buffer["real2d"])))

    pl.seed_everything(0)
    trainer(max_epochs=1, limit_train_batches=3, callbacks=[SaveAfterFirstBatch()]).fit(
        PoseAug(**TINY, warmup=0), datamodule=data()
    )
    resumed = PoseAug(**TINY, warmup=0)
    order = record_order(resumed)
    trainer(max_epochs=1, limit_train_batches=3, callbacks=[Probe()]).fit(
        resumed, datamodule=data(), ckpt_path=tmp_path / "mid.ckpt"
    )
    # Lightning continues the epoch at batch 1 with the first batch's pairs restored, so the
    # epoch-end pass sees all three batches of real pairs, as without the interruption
    assert seen == [(1, 1), (2, 2)]
    assert resumed.steps_of("g") == 3
    assert order.count("p") >= 3  # at least the 96 real pairs in batches of 32
    assert all(len(v) == 0 for v in resumed._buffer.values())


# -- schedules counted in G steps ------------------------------------------------------------------


def test_step_counted_warmup_lr_decay_and_beta():
    pl.seed_everything(0)
    model = PoseAug(
        **TINY, warmup_steps=2, schedule_steps=6, estimator_schedule="iteration", beta_ba=(3.0, 5.0)
    )
    order = record_order(model)
    betas: list[float] = []

    class Probe(pl.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            betas.append(float(pl_module.beta[0]))

    trainer(max_epochs=2, limit_train_batches=3, callbacks=[Probe()]).fit(model, datamodule=data())
    per_iteration = " ".join(order).split("g")[1:]  # what follows each G step: D and lifter steps
    # G steps 1 and 2 are warm-up (no lifter step); from the third on the lifter trains every step
    assert ["p" in steps for steps in per_iteration] == [False, False, True, True, True, True]
    assert model.steps_of("g") == 6
    # every player's LR decays per G step: 1 - 6 / 7 after the sixth
    for opt in model.optimizers():
        assert opt.param_groups[0]["lr"] / opt.defaults["lr"] == pytest.approx(1 - 6 / 7)
    # beta during G step k is k / 6 of the way from 3 to 5
    assert betas == pytest.approx([3 + 2 * k / 6 for k in range(1, 7)])


def test_strict_filter_keeps_only_pairs_whose_2d_is_their_projection():
    pl.seed_everything(0)
    model = PoseAug(**TINY, warmup=0, in_frame_filter="strict", estimator_schedule="epoch")
    logged: dict = {}

    class Probe(pl.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            logged.update({k: float(v) for k, v in trainer.callback_metrics.items() if "kept" in k})
            logged["strict_rows"] = int(pl_module._buffer["keep"][-1].sum())

    trainer(max_epochs=1, limit_train_batches=1, callbacks=[Probe()]).fit(model, datamodule=data())
    assert logged["poseaug/kept_fraction"] == logged["poseaug/kept_fraction_strict"]
    assert logged["poseaug/kept_fraction_strict"] <= logged["poseaug/kept_fraction_reference"]
    assert logged["strict_rows"] == round(32 * logged["poseaug/kept_fraction_strict"])
    with pytest.raises(ValueError, match="in_frame_filter"):
        PoseAug(**TINY, in_frame_filter="loose")


def test_templates_from_named_subjects_or_a_file(tmp_path):
    import numpy as np
    from fixtures import write_h36m

    from data_modules.h36m import H36MDataModule

    write_h36m(tmp_path, variants=("gt",))
    s1_only = H36MDataModule(str(tmp_path), train_subjects=["S1"], batch_size=16)
    pl.seed_everything(0)
    alone = PoseAug(**TINY)
    trainer(max_epochs=1, limit_train_batches=1).fit(alone, datamodule=s1_only)
    assert alone.templates.shape == (1, 16)  # S1's own: the swap would be a no-op
    pl.seed_everything(0)
    five = PoseAug(**TINY, template_subjects=["S1", "S5"])
    trainer(max_epochs=1, limit_train_batches=1).fit(five, datamodule=s1_only)
    torch.testing.assert_close(five.templates, s1_only.bone_length_templates(["S1", "S5"]))
    np.save(tmp_path / "bones.npy", np.full((3, 16), 0.2, dtype=np.float32))
    from_file = PoseAug(**TINY, bone_templates_file=str(tmp_path / "bones.npy"), template_subjects=["S1"])
    trainer(max_epochs=1, limit_train_batches=1).fit(from_file, datamodule=s1_only)
    assert torch.equal(from_file.templates, torch.full((3, 16), 0.2))  # the file comes first


def test_every_player_steps_under_bf16_autocast():
    pl.seed_everything(0)
    fit_and_test_in_bf16(PoseAug(**TINY, warmup=0), data(), max_epochs=2)


def test_epoch_end_estimator_passes_run_under_the_trainers_bf16_autocast():
    # Lightning autocasts training_step only; the buffer and real passes run at epoch end
    pl.seed_everything(0)
    model = PoseAug(**TINY, warmup=0)
    lift, depth, dtypes = model.lift, [], []

    def estimator_pass(*args, **kwargs):
        depth.append(1)
        try:
            return PoseAug.estimator_pass(model, *args, **kwargs)
        finally:
            depth.pop()

    def spy_lift(x):
        out = lift(x)
        if depth:
            dtypes.append(out.dtype)
        return out

    model.estimator_pass, model.lift = estimator_pass, spy_lift
    fit_and_test_in_bf16(model, data(), max_epochs=1)
    assert dtypes and set(dtypes) == {torch.bfloat16}
