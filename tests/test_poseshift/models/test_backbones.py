"""Tests for the lifting backbones in ``poseshift.models``.

Shape, gradient and mode tests use narrow models (``SMALL``) to stay fast on CPU; only
the parameter-count tests build the reference default sizes.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from poseshift.geometry.skeleton import H36M17
from poseshift.models import (
    BACKBONES,
    STGCN,
    ResidualLinearBlock,
    ResidualMLP,
    SemGCN,
    SimpleBaseline,
    VideoPose3D,
    build_backbone,
    kaiming_init_linear,
)
from poseshift.models.stgcn import PART_NAMES, body_part_of_joints

J = H36M17.num_joints
SMALL: dict[str, dict] = {
    "simple_baseline": {"linear_size": 64},
    "videopose": {"channels": 64},
    "semgcn": {"hid_dim": 16, "num_layers": 2},
    "stgcn": {"channels": (16, 16, 32), "part_channels": 32},
}
NAMES = list(BACKBONES)


def small(name: str, **overrides: object) -> nn.Module:
    torch.manual_seed(0)
    return build_backbone(name, **{**SMALL[name], **overrides})


def poses2d(batch: int = 6, seed: int = 1) -> torch.Tensor:
    return torch.randn(batch, J, 2, generator=torch.Generator().manual_seed(seed)) * 0.3


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_registry_matches_classes() -> None:
    assert BACKBONES == {
        "simple_baseline": SimpleBaseline,
        "videopose": VideoPose3D,
        "semgcn": SemGCN,
        "stgcn": STGCN,
    }
    assert isinstance(build_backbone("semgcn", hid_dim=8, num_layers=1), SemGCN)


def test_build_backbone_unknown_name_lists_known() -> None:
    with pytest.raises(ValueError, match="unknown backbone 'mlp'") as err:
        build_backbone("mlp")
    for name in BACKBONES:
        assert name in str(err.value)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("train", [True, False])
def test_output_shape_and_zero_root(name: str, train: bool) -> None:
    model = small(name).train(train)
    out = model(poses2d())
    assert out.shape == (6, J, 3)
    assert torch.isfinite(out).all()
    assert torch.equal(out[:, 0], torch.zeros(6, 3))
    assert out[:, 1:].abs().sum() > 0
    assert model.receptive_field == 1
    assert model.skeleton is H36M17


@pytest.mark.parametrize("name", NAMES)
def test_gradient_reaches_every_parameter(name: str) -> None:
    model = small(name).train()
    if name == "stgcn":
        # the non-local output BN starts at zero weight, which blocks the gradient to the
        # block's convs at init (by design); open it so the whole path is checked
        nn.init.ones_(model.non_local.out_bn.weight)
    loss = (model(poses2d()) - torch.randn(6, J, 3)).square().mean()
    loss.backward()
    params = dict(model.named_parameters())
    assert params and all(p.requires_grad for p in params.values())
    for pname, p in params.items():
        assert p.grad is not None, f"{pname} got no gradient"
        assert torch.isfinite(p.grad).all(), f"{pname} has a non-finite gradient"
        # biases right before a train-mode BN get ~0 gradient by construction; weights and
        # edge logits must all really learn
        if p.ndim >= 2 or pname.endswith(".e"):
            assert p.grad.abs().max() > 0, f"{pname} has an all-zero gradient"


@pytest.mark.parametrize("name", NAMES)
def test_eval_mode_is_deterministic_and_per_sample(name: str) -> None:
    model = small(name, dropout=0.3)
    x = poses2d(8)
    model.train()
    train_out = model(x)
    assert not torch.equal(train_out, model(x)), "dropout should make train-mode calls differ"
    model.eval()
    with torch.no_grad():
        a, b, sub = model(x), model(x), model(x[:3])
    assert torch.equal(a, b)
    # in eval mode no sample may influence another (no batch statistics, no cross-sample ops)
    torch.testing.assert_close(sub, a[:3], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("shape", [(4, J - 1, 2), (4, J, 3), (4, 2 * J), (J, 2), (4, 3, J, 2)], ids=str)
def test_bad_input_shape_raises(name: str, shape: tuple[int, ...]) -> None:
    model = small(name)
    with pytest.raises(ValueError, match=rf"\(B, {J}, 2\)"):
        model(torch.zeros(shape))


@pytest.mark.parametrize("name", ["simple_baseline", "semgcn", "stgcn"])
def test_single_frame_models_reject_frame_axis(name: str) -> None:
    # only VideoPose3D takes a (B, T, J, 2) window, even a one-frame one
    with pytest.raises(ValueError, match=rf"\(B, {J}, 2\)"):
        small(name)(torch.zeros(4, 1, J, 2))


@pytest.mark.parametrize(
    "widths, rf",
    [((1, 1, 1, 1, 1), 1), ((1, 1, 1, 1), 1), ((3, 3, 3), 27), ((3, 3, 3, 3), 81), ((3, 3, 3, 3, 3), 243)],
)
def test_videopose_receptive_field(widths: tuple[int, ...], rf: int) -> None:
    model = VideoPose3D(filter_widths=widths, channels=16)
    assert model.receptive_field == rf
    assert len(model.layers_conv) == 2 * (len(widths) - 1)


def test_videopose_temporal_27_frames() -> None:
    torch.manual_seed(0)
    model = VideoPose3D(filter_widths=(3, 3, 3), channels=32).train()
    x = torch.randn(4, 27, J, 2, requires_grad=True)
    out = model(x)
    assert out.shape == (4, J, 3)
    assert torch.equal(out[:, 0], torch.zeros(4, 3))
    out.square().sum().backward()
    # the single output frame must see every one of the 27 input frames
    assert (x.grad.abs().sum(dim=(0, 2, 3)) > 0).all()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_videopose_temporal_shape_errors() -> None:
    model = VideoPose3D(filter_widths=(3, 3, 3), channels=16)
    for shape in [(2, 26, J, 2), (2, J, 2), (2, 27, J - 1, 2), (2, 27, J, 2, 1)]:
        with pytest.raises(ValueError, match=rf"\(B, 27, {J}, 2\)"):
            model(torch.zeros(shape))
    # a single-frame model takes both (B, J, 2) and (B, 1, J, 2), with the same result
    single = VideoPose3D(channels=16).eval()
    x = poses2d(3)
    torch.testing.assert_close(single(x), single(x.unsqueeze(1)))
    with pytest.raises(ValueError, match="odd"):
        VideoPose3D(filter_widths=(3, 2, 3))


def test_videopose_default_is_poseaug_1f_form() -> None:
    model = VideoPose3D()
    assert model.filter_widths == (1, 1, 1, 1, 1)
    assert len(model.layers_conv) == 8  # 4 residual blocks
    assert model.expand_conv.bias is None and model.expand_conv.stride == (1,)
    assert model.shrink.out_channels == 3 * (J - 1)
    assert model.drop.p == 0.25 and model.expand_bn.momentum == 0.1
    model.set_bn_momentum(0.01)
    assert all(bn.momentum == 0.01 for bn in [model.expand_bn, *model.layers_bn])


# Bands: the reference counts for 16 joints are SimpleBaseline ~4.29M (2 stages, width 1024:
# 4 x 1024^2 hidden weights + in/out layers), VideoPose-1f ~8.49M (8 x 1024^2 convs),
# SemGCN ~0.27M (10 hidden SemGraphConvs of 2 x 128^2), ST-GCN ~3.6M (dominated by the
# 512-wide part-graph blocks, conv4/conv2 and the 512-channel non-local block). Going to
# 17 joints adds only a few thousand parameters (one more input/output joint, a few edge
# logits), so a +-5% band around those figures catches any architectural slip (a missing
# or extra block moves the count by >= 6%) without pinning incidental details.
@pytest.mark.parametrize(
    "name, expected",
    [("simple_baseline", 4.29e6), ("videopose", 8.49e6), ("semgcn", 0.267e6), ("stgcn", 3.63e6)],
)
def test_parameter_counts_match_reference_scale(name: str, expected: float) -> None:
    count = n_params(build_backbone(name))
    assert abs(count - expected) / expected < 0.05, f"{name}: {count} parameters"


def test_simple_baseline_structure_and_init() -> None:
    model = SimpleBaseline(linear_size=256, num_stages=3)
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert len(linears) == 1 + 2 * 3 + 1
    assert linears[0].in_features == 2 * J and linears[-1].out_features == 3 * (J - 1)
    assert len(model.mlp.trunk) == 1 + 3
    # kaiming_normal_ (fan_in, gain sqrt 2) rather than PyTorch's uniform default
    hidden = linears[1].weight
    assert hidden.std().item() == pytest.approx(math.sqrt(2 / 256), rel=0.05)
    assert all(m.p == 0.25 for m in model.modules() if isinstance(m, nn.Dropout))


def test_residual_blocks_are_reusable() -> None:
    torch.manual_seed(0)
    trunk = ResidualMLP(10, None, width=32, num_stages=2, dropout=0.5)
    assert trunk.head is None and trunk(torch.randn(4, 10)).shape == (4, 32)
    gen = ResidualMLP(96, 45, width=256, num_stages=2, dropout=0.0, residual=False, activation=nn.LeakyReLU)
    assert gen(torch.randn(4, 96)).shape == (4, 45)
    assert sum(isinstance(m, nn.Linear) for m in gen.modules()) == 6  # PoseAug generator trunk + head
    assert not any(isinstance(m, nn.Dropout) for m in gen.modules())
    block = ResidualLinearBlock(8, dropout=0.0).eval()
    with torch.no_grad():
        for m in block.modules():
            if isinstance(m, nn.Linear):
                m.weight.zero_()
                m.bias.fill_(-1.0)  # ReLU output zero: the block reduces to its skip
    x = torch.randn(3, 8)
    torch.testing.assert_close(block(x), x)
    kaiming_init_linear(gen)
    assert gen.head.weight.std().item() == pytest.approx(math.sqrt(2 / 256), rel=0.1)


def test_semgcn_graph_attention() -> None:
    model = SemGCN(hid_dim=8, num_layers=1)
    layer = model.gconv_output
    assert layer.bias is None  # a bias shared by all joints cancels in the root subtraction
    att = layer.attention()
    torch.testing.assert_close(att.sum(dim=1), torch.ones(J))
    graph = torch.eye(J, dtype=torch.bool)
    for p, c in H36M17.bone_pairs:
        graph[p, c] = graph[c, p] = True
    assert torch.equal(att > 0, graph)
    assert layer.e.numel() == J + 2 * (J - 1)
    # uniform over each row's edges at init (logits all 1)
    torch.testing.assert_close(att[0, 0], 1.0 / graph[0].sum().float())
    assert model.gconv_input.gconv.W.shape == (2, 2, 8)


def test_stgcn_graph_parts_and_dropout() -> None:
    parts = body_part_of_joints(H36M17)
    groups = {PART_NAMES[p]: [j for j in range(J) if parts[j] == p] for p in range(len(PART_NAMES))}
    # the reference's pooling groups (la, ra, ll, rl, cb) for this joint order
    assert groups == {
        "left_arm": [11, 12, 13],
        "right_arm": [14, 15, 16],
        "left_leg": [4, 5, 6],
        "right_leg": [1, 2, 3],
        "centre": [0, 7, 8, 9, 10],
    }
    model = STGCN(**SMALL["stgcn"])
    a = model.joint_adjacency
    assert a.shape == (4, J, J) and model.part_adjacency.shape == (4, 5, 5)
    # every node averages over its inputs: columns of the summed partitions sum to one
    torch.testing.assert_close(a.sum(dim=0).sum(dim=0), torch.ones(J))
    spine, thorax, pelvis = (H36M17.index(n) for n in ("spine", "thorax", "pelvis"))
    assert a[0, spine, spine] > 0 and a[1, thorax, spine] > 0 and a[2, spine, thorax] > 0
    assert a[3, H36M17.index("l_wrist"), H36M17.index("r_wrist")] > 0 and a[:, pelvis, thorax].sum() == 0
    # graphs are non-persistent buffers: they follow .to() and stay out of checkpoints
    names = {n for n, _ in model.named_buffers()}
    assert {"joint_adjacency", "part_adjacency", "joint_part"} <= names
    assert not any("adjacency" in k for k in model.state_dict())

    def rates(m: nn.Module) -> list[float]:
        return sorted({d.p for d in m.modules() if isinstance(d, nn.Dropout)})

    assert rates(STGCN(**SMALL["stgcn"])) == [0.05, 0.1, 0.25]
    assert rates(STGCN(**SMALL["stgcn"], dropout=0.0)) == [0.0]
    assert model.data_bn.num_features == 2 * J and model.data_bn.eps == 0.1


def test_simple_baseline_overfits_tiny_set() -> None:
    torch.manual_seed(0)
    model = SimpleBaseline(linear_size=256, dropout=0.0).train()
    x = torch.randn(32, J, 2) * 0.3
    y = torch.randn(32, J, 3) * 0.2
    y[:, 0] = 0.0
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    with torch.no_grad():
        start = (model(x) - y).square().mean().item()
    for _ in range(200):
        opt.zero_grad()
        loss = (model(x) - y).square().mean()
        loss.backward()
        opt.step()
    with torch.no_grad():
        end = (model(x) - y).square().mean().item()
    assert end < start / 10, (start, end)


def conv_forward(model, x):
    """VideoPose3D's forward as the reference writes it: Conv1d modules on (B, C, T)."""
    b, t = x.shape[:2]
    h = x.reshape(b, t, -1).transpose(1, 2)
    h = model.drop(model.relu(model.expand_bn(model.expand_conv(h))))
    for i, fw in enumerate(model.filter_widths[1:]):
        res = h[:, :, fw // 2 :: fw]
        h = model.drop(model.relu(model.layers_bn[2 * i](model.layers_conv[2 * i](h))))
        h = res + model.drop(model.relu(model.layers_bn[2 * i + 1](model.layers_conv[2 * i + 1](h))))
    y = model.shrink(h)[:, :, 0]
    return torch.cat([y.new_zeros(b, 1, 3), y.reshape(b, -1, 3)], dim=1)


@pytest.mark.parametrize("widths", [(1, 1, 1, 1, 1), (3, 3, 3), (3, 1, 3)])
def test_matmul_forward_equals_the_conv1d_forward_with_the_same_bn_state(widths):
    torch.manual_seed(0)
    model = VideoPose3D(filter_widths=widths, channels=32, dropout=0.0)
    twin = VideoPose3D(filter_widths=widths, channels=32, dropout=0.0)
    twin.load_state_dict(model.state_dict())
    x = torch.randn(6, model.receptive_field, J, 2)
    torch.testing.assert_close(model.train()(x), conv_forward(twin.train(), x), atol=1e-5, rtol=1e-5)
    for (name, a), b in zip(model.state_dict().items(), twin.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5, msg=name)  # BN running stats moved alike
    torch.testing.assert_close(model.eval()(x), conv_forward(twin.eval(), x), atol=1e-5, rtol=1e-5)


def test_byte_mask_dropout_keeps_the_rate_and_the_expectation():
    from poseshift.models.blocks import Dropout

    torch.manual_seed(0)
    x = torch.ones(1000, 1000)
    for p in (0.25, 0.5):
        out = Dropout(p).train()(x)
        dropped = (out == 0).float().mean().item()
        # 1e6 Bernoulli(p) draws: the standard error is below 5e-4
        assert abs(dropped - p) < 2.5e-3, (p, dropped)
        assert torch.equal(out.unique(), torch.tensor([0.0, 1 / (1 - p)]))
        assert abs(out.mean().item() - 1.0) < 5e-3  # inverted dropout keeps the expectation
    odd = Dropout(0.1).train()  # 25.6 / 256 is not exact: torch's own dropout
    torch.manual_seed(1)
    a = odd(x)
    torch.manual_seed(1)
    assert torch.equal(a, torch.nn.Dropout(0.1).train()(x))
    assert torch.equal(Dropout(0.25).eval()(x), x)
    g = torch.ones(4, 5, requires_grad=True)
    y = Dropout(0.5).train()(g)
    y.sum().backward()
    assert torch.equal(g.grad, (y != 0).float() * 2)  # the gradient passes the same mask
