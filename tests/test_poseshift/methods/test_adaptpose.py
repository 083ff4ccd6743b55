"""AdaptPose: generator invariants, selection, which players a step changes, schedules, DDP and resume."""

from __future__ import annotations

import math
from typing import Any

import pytest
import pytorch_lightning as pl
import torch
from helpers import (
    REPO_ROOT,
    SameWeightsOnEveryRank,
    SyntheticDataModule,
    fit_and_test_in_bf16,
    synthetic_set,
)
from pytorch_lightning.utilities import CombinedLoader
from torch.utils.data import DataLoader

from data_modules.base import DomainSets
from data_modules.schema import collate_batch
from data_modules.temporal import WindowedPoseDataset
from poseshift.adversarial import hard_ratio_mask
from poseshift.augment import in_frame, reproject
from poseshift.geometry import bone_lengths, joints_to_bones
from poseshift.methods.adaptpose import AdaptPose
from poseshift.methods.baseline import Baseline
from poseshift.models import CameraGenerator, MotionGenerator
from poseshift.trainers import quiet_trainer

FRAMES = 3
TINY: dict[str, Any] = dict(
    backbone="videopose",
    backbone_kwargs={"filter_widths": [FRAMES], "channels": 32},
    g_width=16,
    g_stages=1,
    noise_dim=8,
    bl_noise_dim=8,
    d3d_width=16,
    pool_size=48,
    epochs=4,
)


class TargetData(SyntheticDataModule):
    """Synthetic source windows plus an unlabeled target set ("wild")."""

    def build_sets(self) -> DomainSets:
        sets = super().build_sets()
        # > one batch per process under DDP (its sampler splits the target set too)
        sets.target_train = {"wild": synthetic_set(160, 9, "wild").unlabeled()}
        return sets


def data(**kwargs: Any) -> TargetData:
    base = dict(num_train=96, num_test=17, batch_size=32, train_target="wild", receptive_field=FRAMES)
    return TargetData(**{**base, "window_3d": True, **kwargs})


def trainer(**kwargs: Any) -> pl.Trainer:
    return quiet_trainer(**{"limit_val_batches": 0, "num_sanity_val_steps": 0, **kwargs})


def snapshot(model: AdaptPose) -> dict[str, dict[str, torch.Tensor]]:
    return {
        n: {k: v.detach().clone() for k, v in m.named_parameters()} for n, m in model.player_modules().items()
    }


def changed(before: dict, model: AdaptPose) -> set[str]:
    after = snapshot(model)
    return {n for n in before if any(not torch.equal(before[n][k], after[n][k]) for k in before[n])}


def record_order(model: AdaptPose) -> list[str]:
    order: list[str] = []
    original = model.player_step

    def step(name, loss):
        order.append(name)
        return original(name, loss)

    model.player_step = step
    return order


def windows(n: int = 16, frames: int = 5, seed: int = 0) -> torch.Tensor:
    """Absolute camera-frame windows (n, T, J, 3): a pose that moves and walks forward."""
    g = torch.Generator().manual_seed(seed)
    s = synthetic_set(n, seed, "w")
    pose = (
        torch.as_tensor(s.pose3d, dtype=torch.float32)
        + torch.as_tensor(s.root3d, dtype=torch.float32)[:, None]
    )
    t = torch.arange(frames, dtype=torch.float32)
    wiggle = 0.02 * torch.randn(n, frames, 17, 3, generator=g)
    walk = torch.stack([0.1 * t, 0.02 * t, 0.05 * t], -1)[None, :, None]
    return pose[:, None] + wiggle + walk


# -- generator invariants ------------------------------------------------------------------------


def test_bone_lengths_are_shared_over_the_frames():
    torch.manual_seed(0)
    x = windows()
    gen = MotionGenerator(frames=5, width=16, num_stages=1, noise_dim=8, bl_noise_dim=8)
    out = gen(x)
    ratio = bone_lengths(out["pose_bl"]) / bone_lengths(out["pose_ba"])  # (B, T, nb)
    assert not torch.allclose(ratio, torch.ones_like(ratio), atol=1e-3)  # BL did change lengths
    torch.testing.assert_close(ratio, ratio[:, :1].expand_as(ratio), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ratio[:, 0], out["ratios"], atol=1e-5, rtol=1e-5)
    # BA changes directions only: every frame keeps its source bone lengths
    torch.testing.assert_close(bone_lengths(out["pose_ba"]), bone_lengths(x), atol=1e-5, rtol=1e-5)


def turned_about(axis: torch.Tensor, before: torch.Tensor, after: torch.Tensor) -> torch.Tensor:
    """Signed angle (radians) by which ``before`` turns into ``after`` about ``axis`` (..., 3)."""
    k = axis / axis.norm(dim=-1, keepdim=True)
    a = before - (before * k).sum(-1, keepdim=True) * k
    b = after - (after * k).sum(-1, keepdim=True) * k
    return torch.atan2((k * torch.cross(a, b, dim=-1)).sum(-1), (a * b).sum(-1))


def test_bg3_angle_is_zero_at_frame_0_and_linear_in_time():
    torch.manual_seed(0)
    x = windows(frames=9)
    gen = MotionGenerator(
        frames=9, width=16, num_stages=1, noise_dim=8, bl_noise_dim=8, use_bl=False, use_rt=False
    )
    with torch.no_grad():
        out = gen(x)
    torch.testing.assert_close(out["pose_ba"][:, 0], x[:, 0], atol=1e-6, rtol=0)
    u0 = joints_to_bones(x) / bone_lengths(x)[..., None]
    u1 = joints_to_bones(out["pose_ba"]) / bone_lengths(out["pose_ba"])[..., None]
    got = turned_about(out["bone_axis"][:, None], u0, u1)  # (B, T, nb)
    want = out["bone_angle"][:, None] * torch.arange(9.0)[:, None] / 9  # angle * t / T
    want = torch.remainder(want + math.pi, 2 * math.pi) - math.pi
    moving = [b for b in range(16) if b not in (6, 7)]  # pelvis->spine->thorax are held
    diff = torch.remainder(got[..., moving] - want[..., moving] + math.pi, 2 * math.pi) - math.pi
    assert float(diff.abs().max()) < 1e-3
    assert float(want[..., moving].abs().mean()) > 0.05  # the generator did turn the bones
    assert float((u0 - u1)[..., [6, 7], :].abs().max()) < 1e-6


@pytest.mark.parametrize("rotation", ["axis_angle", "quaternion", "euler"])
def test_reparameterized_camera_gives_mu_and_sigma_gradients_the_code_flag_none(rotation):
    cond = torch.randn(32, 51)
    for sample, expect in (("reparameterized", True), ("code", False)):
        torch.manual_seed(0)
        cam = CameraGenerator(51, width=16, num_stages=1, noise_dim=8, rotation=rotation, sample=sample)
        out = cam(cond)
        out["mu"].retain_grad()
        out["sigma"].retain_grad()
        (out["rotation"] * torch.randn(3, 3)).sum().backward()
        for name in ("mu", "sigma"):
            grad = out[name].grad
            got = grad is not None and bool(grad.abs().sum() > 0)
            assert got == expect, (rotation, sample, name)
    det = CameraGenerator(51, width=16, num_stages=1, noise_dim=8, rotation=rotation, probabilistic=False)
    assert det(cond)["sigma"].abs().sum() == 0


def test_static_root_removes_the_trajectory_and_the_option_keeps_it():
    x = windows()
    for static in (True, False):
        torch.manual_seed(0)
        gen = MotionGenerator(
            frames=5, width=16, num_stages=1, noise_dim=8, bl_noise_dim=8, static_root=static
        )
        out = gen(x)
        roots, t = out["pose_rt"][:, :, 0], out["translation"]
        src = x[:, :, 0] - x[:, 2:3, 0]
        if static:
            torch.testing.assert_close(roots, t[:, None].expand_as(roots))
        else:  # the trajectory is turned rigidly about the middle frame's root, which lands at t
            torch.testing.assert_close(roots[:, 2], t)
            got = roots - roots[:, 2:3]
            torch.testing.assert_close(got.norm(dim=-1), src.norm(dim=-1), atol=1e-5, rtol=1e-5)
            assert float(got.norm(dim=-1).max()) > 0.1


def test_every_bone_generator_and_camera_runs_and_keeps_lengths_under_ba():
    x = windows()
    for bg in ("bg1", "bg2", "bg3"):
        gen = MotionGenerator(
            frames=5, width=16, num_stages=1, noise_dim=8, bl_noise_dim=8, bone_generator=bg
        )
        out = gen(x)
        assert out["pose_rt"].shape == x.shape and torch.isfinite(out["pose_rt"]).all()
        lengths = bone_lengths(x[:, :1]) if bg == "bg2" else bone_lengths(x)  # BG2 grows frame 0's bones
        torch.testing.assert_close(
            bone_lengths(out["pose_ba"]), lengths.expand_as(bone_lengths(x)), atol=1e-5, rtol=1e-5
        )
    # BG2's first frame is the source's (the motion grows from it)
    gen = MotionGenerator(frames=5, width=16, num_stages=1, noise_dim=8, bl_noise_dim=8, bone_generator="bg2")
    torch.testing.assert_close(gen(x)["pose_ba"][:, 0], x[:, 0], atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="5-frame"):
        gen(windows(frames=3))


# -- selection and losses ------------------------------------------------------------------------


def test_selection_keeps_exactly_the_samples_inside_the_band():
    ratios = torch.tensor([1.0, 1.001, 17.0, 32.999, 33.0, 0.5, 40.0])
    groups = ratios[:, None].expand(-1, 3)
    kept = hard_ratio_mask(groups, 17.0, 16.0)
    assert kept.tolist() == [False, True, True, True, False, False, False]
    # the band reads the mean over the three groups
    mixed = torch.tensor([[0.5, 1.0, 40.0], [0.5, 0.5, 0.5]])
    assert hard_ratio_mask(mixed, 17.0, 16.0).tolist() == [True, False]


def test_the_method_buffers_exactly_the_in_band_in_frame_windows(monkeypatch):
    pl.seed_everything(0)
    # one section (the buffer holds the epoch); no RT, so most generated windows stay in the image
    model = AdaptPose(**TINY, warmup=0, sections=1, use_rt=False)
    wanted = torch.tensor([0.5, 2.0, 16.0, 20.0, 32.0, 33.5, 1.0, 5.0] * 4)
    seen: dict[str, torch.Tensor] = {}
    errors = model.feedback_errors
    generator = model.generator.forward

    def fixed_errors(pairs):
        orig, ba, rt = errors(pairs)
        ones = torch.ones_like(orig)
        return ones, ba, wanted[:, None].expand_as(rt).clone()

    def remember(window):
        out = generator(window)
        seen["pose_rt"] = out["pose_rt"].detach()
        return out

    class Probe(pl.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            seen["cam"] = batch["source"]["intrinsics"]

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            if batch_idx == 0:
                seen["keep"] = pl_module._buffer["keep"][-1].clone()
                seen["in_image"] = in_frame(reproject(seen["pose_rt"], seen["cam"][:, None])).all(-1)

    monkeypatch.setattr(model, "feedback_errors", fixed_errors)
    monkeypatch.setattr(model.generator, "forward", remember)
    trainer(max_epochs=1, limit_train_batches=2, callbacks=[Probe()]).fit(
        model, datamodule=data(num_train=64, batch_size=32)
    )
    in_band = (wanted > 1) & (wanted < 33)
    assert torch.equal(seen["keep"], in_band & seen["in_image"])
    assert seen["keep"].any() and not seen["keep"].all()


def test_projection_loss_paper_form_reaches_the_generator_code_form_does_not():
    pl.seed_everything(0)
    for mode, expect in (("paper", True), ("code", False)):
        model = AdaptPose(**TINY, proj_loss=mode)
        dm = data()
        dm.setup()
        batch = next(iter(dm.train_dataloader()))[0]
        window = model._source_window(batch["source"])
        gen = model.generator(window)
        fake2d = reproject(gen["pose_rt"], batch["source"]["intrinsics"][:, None])[:, 1]
        reals2d = model._domain_2d(batch, len(window))
        loss = model.projection_loss(batch, reals2d, fake2d, batch["source"]["intrinsics"])
        assert torch.isfinite(loss)
        assert loss.requires_grad == expect, mode
        if expect:
            loss.backward()
            assert model.generator.camera.trans.head.weight.grad.abs().sum() > 0
            assert all(p.grad is None for p in model.lifter.parameters())


# -- the training step ---------------------------------------------------------------------------


def test_warmup_step_changes_g_and_both_ds_not_the_lifter():
    pl.seed_everything(0)
    model = AdaptPose(**TINY, warmup=2)
    before = snapshot(model)
    order = record_order(model)
    trainer(max_epochs=1, limit_train_batches=1).fit(model, datamodule=data())
    assert order == ["g", "d3d", "d2d"]
    assert changed(before, model) == {"g", "d3d", "d2d"}


def test_step_order_d_frequency_and_lifter_after_warmup():
    pl.seed_everything(0)
    model = AdaptPose(**TINY, warmup=0, estimator_schedule="iteration")
    order = record_order(model)
    trainer(max_epochs=1, limit_train_batches=2).fit(model, datamodule=data())
    assert order == ["g", "d3d", "d2d", "p", "g", "p"]
    before = snapshot(model)
    model._steps["g"] = 1  # an odd G step: no D update
    trainer(max_epochs=1, limit_train_batches=1).fit(model, datamodule=data())
    assert changed(before, model) == {"g", "p"}


def test_d_steps_do_not_touch_g_and_g_steps_do_not_touch_the_ds(monkeypatch):
    pl.seed_everything(0)
    model = AdaptPose(**TINY, warmup=0, estimator_schedule="iteration")
    seen: list[set[str]] = []
    original = model.player_step

    def step(name, loss):
        before = snapshot(model)
        out = original(name, loss)
        seen.append(changed(before, model))
        return out

    monkeypatch.setattr(model, "player_step", step)
    trainer(max_epochs=1, limit_train_batches=1).fit(model, datamodule=data())
    assert seen == [{"g"}, {"d3d"}, {"d2d"}, {"p"}]


def test_sections_train_the_lifter_after_each_part_then_on_the_real_windows():
    pl.seed_everything(0)
    model = AdaptPose(**TINY, warmup=0, sections=2, use_selection=False, estimator_schedule="sections")
    order = record_order(model)
    passes: list[int] = []
    fake_pass = model._fake_pass

    def counted():
        passes.append(sum(len(k) for k in model._buffer["keep"]))
        fake_pass()

    model._fake_pass = counted
    trainer(max_epochs=1, limit_train_batches=4).fit(model, datamodule=data(num_train=160))
    g = [i for i, n in enumerate(order) if n == "g"]
    # sections end after batches 2 and 4, each with a pass over its 2 batches of windows (the
    # in-frame ones), then one pass over the 4 real batches (4 steps of 32)
    assert passes == [64, 64, 0]  # the epoch end finds the last section's windows already used
    assert "p" not in order[: g[1]]
    assert order[g[3] :].count("p") >= 4 and order.count("p") >= 4
    assert all(len(v) == 0 for v in model._buffer.values())


def test_single_frame_lifter_reads_the_windows_middle_frame():
    pl.seed_everything(0)
    model = AdaptPose(
        **{**TINY, "backbone": "simple_baseline", "backbone_kwargs": {"linear_size": 32, "num_stages": 1}},
        frames=FRAMES,
        warmup=0,
    )
    assert model.receptive_field == 1
    win = torch.randn(4, FRAMES, 17, 2)
    model.eval()
    torch.testing.assert_close(model(win), model.lifter(win[:, 1]))
    before = snapshot(model)
    trainer(max_epochs=1, limit_train_batches=2, limit_test_batches=1).fit(model, datamodule=data())
    assert changed(before, model) == {"g", "d3d", "d2d", "p"}
    with pytest.raises(ValueError, match="whole window or single frames"):
        AdaptPose(**TINY, frames=5)


@pytest.mark.parametrize(
    "overrides",
    [
        dict(camera_sample="reparameterized", proj_loss="paper", feedback="inband", d3d_perturb_deg=10.0),
        dict(d3d_full_kcs=True, d2d_kcs=True, static_root=False, bone_generator="bg1", rotation="quaternion"),
        dict(domain_2d="source", use_selection=False, bone_generator="bg2", rotation="euler"),
        dict(probabilistic_camera=False, camera_head="linear", use_ba=False, use_bl=False),
    ],
)
def test_paper_and_ablation_variants_train(overrides):
    pl.seed_everything(0)
    model = AdaptPose(**TINY, warmup=0, estimator_schedule="iteration", **overrides)
    before = snapshot(model)
    trainer(max_epochs=1, limit_train_batches=2).fit(model, datamodule=data())
    assert changed(before, model) == {"g", "d3d", "d2d", "p"}
    assert math.isfinite(float(model.beta[0]))


class EmptyTargetData(TargetData):
    def train_dataloader(self) -> CombinedLoader:
        loaders = super().train_dataloader().iterables
        # what DDP's sampler makes of a target set smaller than one batch per process: no batch
        loaders["target"] = DataLoader(loaders["target"].dataset, batch_size=10_000, drop_last=True)
        return CombinedLoader(loaders, mode="max_size_cycle")


def test_an_epoch_without_batches_is_an_error_not_a_silent_no_op():
    dm = EmptyTargetData(
        num_train=96, batch_size=32, train_target="wild", receptive_field=FRAMES, window_3d=True
    )
    with pytest.raises(RuntimeError, match="no training batch"):
        trainer(max_epochs=1, limit_train_batches=2).fit(AdaptPose(**TINY), datamodule=dm)


def test_missing_target_2d_or_3d_windows_fail_with_a_clear_message():
    with pytest.raises(RuntimeError, match="train_target"):
        trainer(max_epochs=1, limit_train_batches=1).fit(
            AdaptPose(**TINY), datamodule=data(train_target=None)
        )
    with pytest.raises(RuntimeError, match="window_3d"):
        trainer(max_epochs=1, limit_train_batches=1).fit(AdaptPose(**TINY), datamodule=data(window_3d=False))
    with pytest.raises(ValueError, match="proj_loss"):
        AdaptPose(**TINY, proj_loss="both")


def test_pretrained_lifter_is_loaded(tmp_path):
    base = Baseline(backbone="videopose", backbone_kwargs=TINY["backbone_kwargs"])
    path = tmp_path / "base.ckpt"
    torch.save({"state_dict": base.state_dict()}, path)
    model = AdaptPose(**TINY, pretrained=str(path))
    trainer(max_epochs=0, default_root_dir=tmp_path).fit(model, datamodule=data())
    for k, v in base.lifter.state_dict().items():
        assert torch.equal(model.lifter.state_dict()[k], v), k


def test_step_budget_schedules_lr_beta_and_warmup():
    pl.seed_everything(0)
    model = AdaptPose(**TINY, warmup_steps=2, schedule_steps=4, estimator_schedule="iteration")
    order = record_order(model)
    trainer(max_epochs=2, limit_train_batches=2).fit(model, datamodule=data())
    per_iteration = " ".join(order).split("g")[1:]
    assert ["p" in s for s in per_iteration] == [False, False, True, True]
    for opt in model.optimizers():
        assert opt.param_groups[0]["lr"] / opt.defaults["lr"] == pytest.approx(1 - 4 / 5)
    assert float(model.beta[0]) == pytest.approx(5.0)


# -- DDP and resume ------------------------------------------------------------------------------


@pytest.mark.slow
def test_ddp_spawn_two_processes_runs_the_full_loop_and_keeps_players_identical(tmp_path):
    pl.seed_everything(0)
    model = AdaptPose(**TINY, warmup=0, sections=2)
    tr = trainer(
        callbacks=[SameWeightsOnEveryRank()],
        strategy="ddp_spawn",
        devices=2,
        max_epochs=2,
        limit_train_batches=2,
        default_root_dir=tmp_path,
        limit_val_batches=1,
    )
    tr.fit(model, datamodule=data(num_train=192))
    assert tr.state.finished and model.steps_of("g") == 4 and model.steps_of("p") > 0


class ResumableLoader:
    """A batch iterable in Lightning's resumable-loader protocol: a fixed order per epoch, and the
    position inside the epoch in its ``state_dict`` (so a mid-epoch resume continues exactly)."""

    def __init__(self, dataset: Any, batch_size: int, seed: int) -> None:
        self.dataset, self.batch_size, self.seed = dataset, batch_size, seed
        self.epoch, self.done, self._skip = 0, 0, 0

    def __len__(self) -> int:
        return len(self.dataset) // self.batch_size

    def __iter__(self):
        order = torch.randperm(
            len(self.dataset), generator=torch.Generator().manual_seed(self.seed + self.epoch)
        )
        self.done = self._skip
        self._skip = 0
        while self.done < len(self):
            idx = order[self.done * self.batch_size : (self.done + 1) * self.batch_size].tolist()
            self.done += 1
            yield collate_batch(self.dataset.__getitems__(idx))
        self.epoch += 1

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "done": self.done}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.epoch, self._skip = state["epoch"], state["done"]


class ResumableData(TargetData):
    def train_dataloader(self) -> CombinedLoader:
        sets = self._require_sets()
        source = WindowedPoseDataset(sets.train, FRAMES, window_3d=True)
        target = WindowedPoseDataset(sets.target_train["wild"], FRAMES)
        loaders = {"source": ResumableLoader(source, 32, 0), "target": ResumableLoader(target, 32, 100)}
        return CombinedLoader(loaders, mode="max_size_cycle")


def test_resume_from_a_mid_epoch_checkpoint_equals_an_uninterrupted_run(tmp_path):
    def run(ckpt: str | None = None, save_at: int | None = None) -> AdaptPose:
        pl.seed_everything(0)
        model = AdaptPose(**TINY, warmup_steps=1, sections=2)
        callbacks = []
        if save_at is not None:

            class Save(pl.Callback):
                def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
                    if trainer.current_epoch == 1 and batch_idx == save_at:
                        trainer.save_checkpoint(tmp_path / "mid.ckpt")

            callbacks.append(Save())
        dm = ResumableData(
            num_train=128, batch_size=32, train_target="wild", receptive_field=FRAMES, window_3d=True
        )
        trainer(max_epochs=2, limit_train_batches=4, callbacks=callbacks, default_root_dir=tmp_path).fit(
            model, datamodule=dm, ckpt_path=ckpt
        )
        return model

    whole = run(save_at=0)  # the checkpoint lands inside the second epoch's first section
    resumed = run(ckpt=str(tmp_path / "mid.ckpt"))
    assert resumed.steps_of("g") == whole.steps_of("g") == 8
    assert resumed.steps_of("p") == whole.steps_of("p") > 0
    for (name, a), b in zip(whole.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


# -- configs ------------------------------------------------------------------------------------


CONFIGS = sorted((REPO_ROOT / "experiments" / "adaptpose").glob("*.yaml"))
OVERLAYS = sorted((REPO_ROOT / "experiments" / "adaptpose").glob("*/*.yaml"))


@pytest.mark.parametrize("config", CONFIGS + OVERLAYS, ids=lambda p: p.name)
def test_every_config_builds(config):
    from poseshift.cli import build_cli

    configs = ["--config", str(config)]
    if config.parent.name != "adaptpose":  # an overlay on the main 3DHP config
        configs = ["--config", str(REPO_ROOT / "experiments/adaptpose/h36m_3dhp.yaml"), *configs]
    cli = build_cli([*configs, "--trainer.logger=false"], run=False)
    assert type(cli.model).__name__ in ("AdaptPose", "Baseline")


@pytest.mark.parametrize("rotation", ["axis_angle", "quaternion", "euler"])
def test_every_player_steps_under_bf16_autocast(rotation):
    # bf16 generator outputs turn float32 bones (BG3's ramp) and rotate by each camera form
    pl.seed_everything(0)
    fit_and_test_in_bf16(AdaptPose(**TINY, warmup=0, sections=2, rotation=rotation), data(), max_epochs=2)
