"""SyncAdv-wKCS: Syn vs Sep updates, which players a step changes, the critic's real branches,
metres at evaluation, DDP and resume."""

from __future__ import annotations

import math

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from helpers import (
    _REST,
    REPO_ROOT,
    SameWeightsOnEveryRank,
    SyntheticDataModule,
    fit_and_test_in_bf16,
    synthetic_set,
)
from pytorch_lightning.utilities import CombinedLoader
from torch import nn

from data_modules.base import DomainSets, PoseDataModule
from data_modules.schema import PoseSet
from poseshift.geometry import mean_root_distance, normalize_scale, rotate_about_vertical
from poseshift.methods import Evaluation, SyncAdv
from poseshift.trainers import quiet_trainer

TINY = dict(g_width=16, r_width=16, d_width=8, n_critic=1)


def trainer(**kwargs) -> pl.Trainer:
    return quiet_trainer(**{"limit_val_batches": 0, "num_sanity_val_steps": 0, **kwargs})


def data(**kwargs) -> SyntheticDataModule:
    return SyntheticDataModule(**{"num_train": 96, "num_test": 17, "batch_size": 32, **kwargs})


def networks(model: SyncAdv) -> dict[str, nn.Module]:
    """The three networks, whatever the player layout."""
    return {"generator": model.lifter, "reprojection": model.reprojection, "critic": model.critic}


def snapshot(model: SyncAdv) -> dict[str, list[torch.Tensor]]:
    return {n: [p.detach().clone() for p in m.parameters()] for n, m in networks(model).items()}


def changed(before: dict[str, list[torch.Tensor]], model: SyncAdv) -> set[str]:
    after = snapshot(model)
    return {n for n in before if any(not torch.equal(a, b) for a, b in zip(before[n], after[n], strict=True))}


def record_steps(model: SyncAdv) -> list[tuple[str, set[str]]]:
    """Wrap ``player_step``: for each call, the player's name and the networks it changed."""
    record: list[tuple[str, set[str]]] = []
    original = model.player_step

    def step(name, loss):
        before = snapshot(model)
        out = original(name, loss)
        record.append((name, changed(before, model)))
        return out

    model.player_step = step
    return record


# -- one iteration -------------------------------------------------------------------------------


def test_syn_iteration_updates_generator_and_reprojection_with_the_same_loss():
    pl.seed_everything(0)
    model = SyncAdv(**TINY)
    record = record_steps(model)
    grads: dict[str, list[torch.Tensor]] = {}
    stepping = model.player_step

    def capture(name, loss):
        if name == "g":
            total = sum(loss.values())
            for net in ("generator", "reprojection"):
                params = list(networks(model)[net].parameters())
                grads[net] = torch.autograd.grad(total, params, retain_graph=True, allow_unused=True)
        return stepping(name, loss)

    model.player_step = capture
    trainer(max_epochs=1, limit_train_batches=1).fit(model, datamodule=data())
    # one critic step, then one step of the player that owns both networks
    assert record == [("d", {"critic"}), ("g", {"generator", "reprojection"})]
    assert list(model.configure_players()) == ["g", "d"]
    # the gradients that step applied are those of the one generator loss, in both networks
    for net in ("generator", "reprojection"):
        for param, expected in zip(networks(model)[net].parameters(), grads[net], strict=True):
            if expected is None:  # BatchNorm of the generator's unused root-depth path, if any
                continue
            torch.testing.assert_close(param.grad, expected)
        assert any(g is not None and g.abs().sum() > 0 for g in grads[net]), net


def test_sep_iteration_alternates_a_generator_and_a_reprojection_step():
    pl.seed_everything(0)
    model = SyncAdv(**TINY, training="sep")
    record = record_steps(model)
    trainer(max_epochs=1, limit_train_batches=2).fit(model, datamodule=data())
    assert record == [
        ("d", {"critic"}),
        ("g", {"generator"}),
        ("r", {"reprojection"}),
        ("d", {"critic"}),
        ("g", {"generator"}),
        ("r", {"reprojection"}),
    ]
    assert {n: model.steps_of(n) for n in ("g", "r", "d")} == {"g": 2, "r": 2, "d": 2}
    # the adversarial variant of the reprojection step also changes only the reprojection network
    pl.seed_everything(0)
    model = SyncAdv(**TINY, training="sep", sep_rep_loss="adversarial")
    record = record_steps(model)
    trainer(max_epochs=1, limit_train_batches=1).fit(model, datamodule=data())
    assert record == [("d", {"critic"}), ("g", {"generator"}), ("r", {"reprojection"})]


def test_critic_steps_per_generator_iteration_and_weight_clipping():
    pl.seed_everything(0)
    model = SyncAdv(**{**TINY, "n_critic": 3}, lipschitz="clip", clip_value=0.05)
    record = record_steps(model)
    trainer(max_epochs=2, limit_train_batches=3).fit(model, datamodule=data())
    assert [name for name, _ in record] == ["d", "d", "d", "g", "d", "d", "d", "g"]
    assert all(p.abs().max() <= 0.05 for p in model.critic.parameters())
    assert model.generator_steps == 2


def test_generator_loss_terms_and_the_angle_term():
    pl.seed_everything(0)
    model = SyncAdv(**TINY, w_sup=0.5)
    trainer(max_epochs=1, limit_train_batches=1, log_every_n_steps=1).fit(model, datamodule=data())
    logged = set(model.trainer.callback_metrics)
    assert {"train/g_adv", "train/g_angle", "train/g_sup", "train/wasserstein", "train/gp"} <= logged
    # L_angle is the generated poses' (scale-free), zero for a correct body, positive mirrored
    body = torch.tensor(_REST, dtype=torch.float32).expand(4, -1, -1)
    y = torch.zeros(4, 17, 3)
    terms = model.generator_terms(y, torch.zeros(4, 17, 2), body, None)
    assert terms["angle"].item() == 0.0
    mirrored = model.generator_terms(y, torch.zeros(4, 17, 2), body * torch.tensor([1.0, 1.0, -1.0]), None)
    assert mirrored["angle"].item() > 0


def test_the_fake_pose_is_turned_renormalized_and_keeps_the_input_2d():
    torch.manual_seed(0)
    model = SyncAdv(**TINY, rotation_range=math.pi / 6)
    pose2d = torch.as_tensor(synthetic_set(64, 1, "x").pose2d).float()
    fake3d, fake2d, pose = model.fake(pose2d)
    torch.testing.assert_close(pose[..., :2], model.lifter.normalize_input(pose2d)[0])
    torch.testing.assert_close(mean_root_distance(fake3d), torch.ones(64))
    assert fake2d.shape == (64, 17, 2)
    # heights keep their proportions (a turn about the vertical axis, then one scale per pose)
    ratio = fake3d[:, 1:, 1] / pose[:, 1:, 1]
    torch.testing.assert_close(ratio, ratio[:, :1].expand_as(ratio))
    # turns stay within the range: the angle between the ground-plane hip lines is at most pi/6
    hips = lambda p: p[:, 4, [0, 2]] - p[:, 1, [0, 2]]  # noqa: E731
    a, b = hips(pose), hips(fake3d)
    cos = (a * b).sum(-1) / (a.norm(dim=-1) * b.norm(dim=-1))
    assert (cos >= math.cos(math.pi / 6) - 1e-5).all() and (cos < 1 - 1e-4).any()
    unturned = SyncAdv(**TINY, rotation_range=0.0, renormalize_fake=False)
    unturned.lifter.load_state_dict(model.lifter.state_dict())
    model.lifter.eval(), unturned.lifter.eval()
    fake3d, _, pose = unturned.fake(pose2d)
    torch.testing.assert_close(fake3d, pose)


# -- the critic's real branches ------------------------------------------------------------------


class TargetData(SyntheticDataModule):
    def build_sets(self) -> DomainSets:
        sets = super().build_sets()
        sets.target_train = {"wild": synthetic_set(40, 9, "wild").unlabeled()}
        return sets


def first_batch(dm: SyntheticDataModule) -> dict:
    dm.setup("fit")
    batch, _, _ = next(iter(dm.train_dataloader()))
    return batch


def test_real_branches_come_from_the_configured_sources():
    pl.seed_everything(0)
    batch = first_batch(TargetData(num_train=96, batch_size=32, train_target="wild"))
    src, tgt = batch["source"], batch["target"]
    paired = SyncAdv(**TINY)
    gen2d, real3d, real2d, y_src = paired._inputs(batch)
    assert torch.equal(gen2d, src["pose2d"]) and torch.equal(y_src, src["pose3d"])
    assert torch.equal(real3d, normalize_scale(src["pose3d"])[0])
    assert torch.equal(real2d, normalize_scale(src["pose2d"])[0])
    cross = SyncAdv(**TINY, generator_input="mixed", real_3d="shuffled", real_2d="target")
    gen2d, real3d, real2d, y_gen = cross._inputs(batch)
    assert torch.equal(gen2d, torch.cat([src["pose2d"][:16], tgt["pose2d"][:16]]))
    assert torch.equal(y_gen, src["pose3d"][:16])
    assert torch.equal(real2d, normalize_scale(tgt["pose2d"])[0])
    source3d = normalize_scale(src["pose3d"])[0]
    hits = (real3d[:, None] == source3d[None]).all(-1).all(-1)
    assert hits.any(1).all() and not torch.equal(real3d, source3d)  # the source poses, reordered
    target_only = SyncAdv(**TINY, generator_input="target", real_3d="shuffled")
    assert torch.equal(target_only._inputs(batch)[0], tgt["pose2d"])
    with pytest.raises(ValueError, match="paired"):
        SyncAdv(generator_input="target")
    with pytest.raises(RuntimeError, match="train_target"):
        cross._inputs({"source": src})


def test_target_domain_2d_trains_every_player():
    pl.seed_everything(0)
    model = SyncAdv(**TINY, generator_input="mixed", real_3d="shuffled", real_2d="target", w_sup=1.0)
    before = snapshot(model)
    dm = TargetData(num_train=96, batch_size=32, train_target="wild")
    trainer(max_epochs=1, limit_train_batches=2).fit(model, datamodule=dm)
    assert changed(before, model) == {"generator", "reprojection", "critic"}


@pytest.mark.parametrize("kcs", ["weighted", "plain", "none"])
def test_kcs_ablation_switches_the_critic_branch(kcs):
    pl.seed_everything(0)
    model = SyncAdv(**TINY, kcs=kcs)
    assert model.critic.kcs_mode == kcs and (model.critic.branch_kcs is None) == (kcs == "none")
    trainer(max_epochs=1, limit_train_batches=1).fit(model, datamodule=data())
    assert model.generator_steps == 1


# -- metres --------------------------------------------------------------------------------------


def turned_body(n: int) -> np.ndarray:
    """One body (fixed bone lengths) in n poses: turned about the vertical axis, arms moved."""
    g = torch.Generator().manual_seed(0)
    body = torch.tensor(_REST, dtype=torch.float64).expand(n, -1, -1).clone()
    # swing both forearms about the elbows (keeps every bone length)
    angle = torch.rand(n, generator=g, dtype=torch.float64) * math.pi / 2
    for elbow, wrist in ((12, 13), (15, 16)):
        fore = body[:, wrist] - body[:, elbow]
        body[:, wrist] = body[:, elbow] + torch.stack(
            [fore[:, 0], fore[:, 1] * torch.cos(angle), fore[:, 1] * torch.sin(angle)], -1
        )
    return rotate_about_vertical(body, torch.rand(n, generator=g, dtype=torch.float64) * 2 * math.pi).numpy()


def orthographic_set(n: int, name: str) -> PoseSet:
    """2D = an orthographic view of the 3D (a scale and an offset), so the exact depths are known."""
    pose = turned_body(n)
    return PoseSet(
        pose2d=0.3 * pose[..., :2] + np.array([0.1, -0.05]),
        pose3d=pose,
        root3d=np.tile([0.0, 0.0, 5.0], (n, 1)),
        intrinsics=np.zeros((n, 9)),
        image_size=np.tile([1000.0, 1000.0], (n, 1)),
        subject=np.zeros(n),
        action=np.zeros(n),
        camera=np.zeros(n),
        frame=np.arange(n),
        sequence=np.zeros(n),
        action_names=("a",),
        name=name,
    )


class OrthographicData(PoseDataModule):
    def build_sets(self) -> DomainSets:
        return DomainSets(
            train=orthographic_set(64, "train"),
            val=orthographic_set(16, "val"),
            test={"ortho": orthographic_set(40, "o")},
        )


class ExactDepth(nn.Module):
    """A stand-in generator that returns the true depths of known normalized 2D inputs."""

    def __init__(self, sets: list[PoseSet]) -> None:
        super().__init__()
        x2d = torch.cat([torch.as_tensor(s.pose2d) for s in sets]).float()
        x3d = torch.cat([torch.as_tensor(s.pose3d) for s in sets]).float()
        self.keys, scale = normalize_scale(x2d)
        self.depth = x3d[..., 2] * 0.3 / scale[:, None]  # the 2D is 0.3 x the 3D's x, y

    def forward(self, flat: torch.Tensor) -> torch.Tensor:
        nearest = torch.cdist(flat, self.keys.flatten(1)).argmin(1)
        return self.depth[nearest]


def test_metrics_are_real_millimetres():
    pl.seed_everything(0)
    dm = OrthographicData(batch_size=16)
    dm.setup("fit")
    model = SyncAdv(**TINY)
    model.lifter.generator = ExactDepth([dm.sets.train, dm.sets.test["ortho"]])
    model.lifter.set_metric_reference(torch.as_tensor(dm.sets.train.pose3d).float())

    def mpjpe() -> float:
        tr = quiet_trainer()
        return tr.test(model, datamodule=dm, verbose=False)[0]["test/ortho/mpjpe"]

    # exact depths and the body's own size: the lifted poses are the ground truth in metres
    assert mpjpe() < 1e-3
    # a body size 10 % too large: every joint is 10 % too far from the root, in mm
    model.lifter.metric_bone_length.mul_(1.1)
    truth = torch.as_tensor(dm.sets.test["ortho"].pose3d).float()
    expected = 0.1 * truth.norm(dim=-1).mean().item() * 1000
    assert mpjpe() == pytest.approx(expected, rel=1e-4)
    assert 20 < expected < 60  # a real body: joints 0.2-0.6 m from the pelvis
    # the ground-truth scale (the weakly supervised protocol) removes exactly that error
    model.hparams.oracle_scale = True
    assert mpjpe() < 1e-3


def test_an_untrained_lifter_has_no_metres():
    model = SyncAdv(**TINY)
    with pytest.raises(RuntimeError, match="metric reference"):
        quiet_trainer().test(model, datamodule=data())


def test_noise_robustness_evaluation_and_depth_error_on_a_trained_model():
    pl.seed_everything(0)
    model = SyncAdv(**TINY)
    dm = data()
    trainer(max_epochs=1, limit_train_batches=2).fit(model, datamodule=dm)
    clean = quiet_trainer().test(model, datamodule=dm, verbose=False)[0]
    noisy_model = SyncAdv(**TINY, evaluation=Evaluation(noise_px=20.0, depth_error=True))
    noisy_model.load_state_dict(model.state_dict())
    noisy = quiet_trainer().test(noisy_model, datamodule=dm, verbose=False)[0]
    assert "test/alpha/z_error" in noisy and "test/alpha/z_error" not in clean
    assert noisy["test/alpha/mpjpe"] != clean["test/alpha/mpjpe"]


def test_training_noise_perturbs_the_generator_input():
    pl.seed_everything(0)
    batch = first_batch(data())
    model = SyncAdv(**TINY, train_noise_px=10.0)
    gen2d, _, real2d, _ = model._inputs(batch)
    diff = gen2d - batch["source"]["pose2d"]
    # 10 px on the H36M cameras' 1000 px wide images: 0.02 screen units
    assert diff.std().item() == pytest.approx(0.02, rel=0.15)
    torch.testing.assert_close(real2d, normalize_scale(gen2d)[0])  # the paired real 2D is the noisy 2D


# -- DDP and resume ------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("training", ["syn", "sep"])
def test_ddp_spawn_two_processes_keeps_every_player_identical(tmp_path, training):
    pl.seed_everything(0)
    model = SyncAdv(**TINY, training=training)
    tr = trainer(
        callbacks=[SameWeightsOnEveryRank(networks, buffers=True)],
        strategy="ddp_spawn",
        devices=2,
        max_epochs=2,
        limit_train_batches=2,
        default_root_dir=tmp_path,
        limit_val_batches=1,
        enable_checkpointing=True,  # the epoch-end checkpoints gather both processes' RNG states
    )
    tr.fit(model, datamodule=data(num_train=192))
    # ddp_spawn copies the trained weights back to this process
    assert tr.state.finished and model.generator_steps == 4
    saved = torch.load(next(tmp_path.rglob("last.ckpt")), weights_only=False)
    assert len(saved["syncadv_rng"]) == 2


class FixedBatches:
    """A training loader with a fixed batch order that remembers how far it got (stateful), so a
    mid-epoch resume continues with the next batch, as Lightning does for stateful loaders."""

    def __init__(self, batches: list[dict]) -> None:
        self.batches, self.start, self.taken = batches, 0, 0

    def __iter__(self):
        start, self.start = self.start, 0
        for i in range(start, len(self.batches)):
            self.taken = i + 1
            yield self.batches[i]

    def __len__(self) -> int:
        return len(self.batches)

    def state_dict(self) -> dict:
        return {"taken": self.taken}

    def load_state_dict(self, state: dict) -> None:
        self.start = state["taken"]


class FixedOrderData(SyntheticDataModule):
    def train_dataloader(self) -> CombinedLoader:
        train = self.sets.train.arrays()
        b = self.batch_size
        batches = [
            {"source": {k: torch.as_tensor(v[i : i + b]) for k, v in train.items()}}
            for i in range(0, len(self.sets.train), b)
        ]
        return CombinedLoader(FixedBatches(batches), "max_size_cycle")


@pytest.mark.parametrize("training", ["syn", "sep"])
def test_resume_from_a_mid_epoch_checkpoint_equals_an_uninterrupted_run(tmp_path, training):
    kwargs = dict(**{**TINY, "n_critic": 2}, training=training)

    def fit(model, ckpt=None, callbacks=()):
        tr = trainer(max_epochs=2, callbacks=list(callbacks), default_root_dir=tmp_path)
        tr.fit(model, datamodule=FixedOrderData(num_train=128, batch_size=32), ckpt_path=ckpt)
        return tr

    class SaveMidEpoch(pl.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            if trainer.current_epoch == 0 and batch_idx == 2:
                trainer.save_checkpoint(tmp_path / "mid.ckpt")  # after 3 of the epoch's 4 batches

    pl.seed_everything(0)
    whole = SyncAdv(**kwargs)
    whole_trainer = fit(whole)
    pl.seed_everything(0)
    interrupted = SyncAdv(**kwargs)
    fit(interrupted, callbacks=[SaveMidEpoch()])
    saved = torch.load(tmp_path / "mid.ckpt", weights_only=False)
    assert saved["state_dict"]["player_steps"].tolist()[-1] == 3  # the critic's steps
    pl.seed_everything(123)  # the checkpoint, not the seed, decides what follows
    resumed = SyncAdv(**kwargs)
    resumed_trainer = fit(resumed, ckpt=tmp_path / "mid.ckpt")
    for name in networks(whole):
        for (k, a), b in zip(
            networks(whole)[name].state_dict().items(),
            networks(resumed)[name].state_dict().values(),
            strict=True,
        ):
            assert torch.equal(a, b), (name, k)
    assert {n: whole.steps_of(n) for n in whole.player_modules()} == {
        n: resumed.steps_of(n) for n in resumed.player_modules()
    }
    for a, b in zip(whole_trainer.optimizers, resumed_trainer.optimizers, strict=True):
        for sa, sb in zip(a.state.values(), b.state.values(), strict=True):
            assert all(torch.equal(torch.as_tensor(sa[k]), torch.as_tensor(sb[k])) for k in sa)


# -- configs -------------------------------------------------------------------------------------

CONFIGS = REPO_ROOT / "experiments" / "syncadv"


def build(*configs: str):
    from poseshift.cli import build_cli

    args = [a for c in configs for a in ("--config", str(CONFIGS / c))]
    return build_cli([*args, "--trainer.logger=false", "--trainer.callbacks=[]"], run=False)


def test_every_config_and_overlay_builds_what_it_says():
    base = {name: build(name) for name in ("mocap.yaml", "h36m_gt.yaml", "h36m_sh.yaml", "h36m_to_3dhp.yaml")}
    for name, cli in base.items():
        hp = cli.model.hparams
        assert isinstance(cli.model, SyncAdv) and hp.training == "syn" and hp.kcs == "weighted", name
        assert hp.lr == hp.lr_d == 8e-5 and tuple(hp.betas) == (0.0, 0.9) and hp.w_angle == 1.0, name
    assert base["h36m_gt.yaml"].model.hparams.real_3d == "paired"  # the paper's supervision
    assert base["h36m_sh.yaml"].datamodule.keypoints == "sh_ft_h36m"
    assert base["mocap.yaml"].datamodule.train_target == "all_shift"
    expected = {
        "sep.yaml": {"training": "sep", "sep_rep_loss": "reprojection"},
        "sep_adversarial.yaml": {"training": "sep", "sep_rep_loss": "adversarial"},
        "kcs_plain.yaml": {"kcs": "plain"},
        "kcs_none.yaml": {"kcs": "none"},
        "small_rotation.yaml": {"rotation_range": pytest.approx(math.pi / 6)},
        "paper_pairs.yaml": {"generator_input": "source", "real_3d": "paired"},
        "target_real_2d.yaml": {"real_2d": "target"},
        "hidden_head.yaml": {"d_head_hidden": 100},
        "n_critic5.yaml": {"n_critic": 5},
        "clip.yaml": {"lipschitz": "clip"},
        "oracle_scale.yaml": {"oracle_scale": True},
    }
    assert {p.name for p in (CONFIGS / "ablations").glob("*.yaml") if not p.name.startswith("noise")} == set(
        expected
    )
    for overlay, values in expected.items():
        hp = build("mocap.yaml", f"ablations/{overlay}").model.hparams
        assert {k: hp[k] for k in values} == values, overlay
    for sigma in (5, 10, 15, 20):
        both = build("h36m_gt.yaml", f"ablations/noise{sigma}.yaml").model
        train_only = build("h36m_gt.yaml", f"ablations/noise{sigma}_test_gt.yaml").model
        assert both.hparams.train_noise_px == train_only.hparams.train_noise_px == sigma
        assert both.evaluation.noise_px == sigma and train_only.evaluation.noise_px == 0
        assert both.evaluation.depth_error and both.evaluation.per_action


def test_every_player_steps_under_bf16_autocast():
    pl.seed_everything(0)
    fit_and_test_in_bf16(SyncAdv(**TINY), data(), max_epochs=1)
