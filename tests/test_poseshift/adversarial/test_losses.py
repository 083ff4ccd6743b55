"""GAN and band losses: hand-computed values, the WGAN-GP textbook case, weight clipping, L_angle."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from poseshift.adversarial import (
    angle_loss,
    clip_weights,
    feedback_ratio_loss,
    gradient_penalty,
    lsgan_discriminator_loss,
    lsgan_generator_loss,
    lsgan_loss,
    range_loss,
    rectified_l2,
    wgan_critic_loss,
    wgan_generator_loss,
)


def test_range_and_rectified_losses():
    a = torch.tensor([0.0, 0.5, 1.0, 2.0])
    # band around 1 with half width 0.6: only 0 and 2 are outside
    assert range_loss(a, 1.0, 0.6).item() == pytest.approx((1 + 1) / 4)
    assert rectified_l2(torch.tensor([0.05, -0.2]), 0.1).item() == pytest.approx(0.04 / 2)
    assert feedback_ratio_loss(torch.tensor([4.0, 30.0]), torch.tensor([1.0, 1.0]), 3.0, 2.0).item() == (
        pytest.approx(27**2 / 2)
    )


def test_lsgan_terms():
    scores = torch.tensor([[0.0], [2.0]])
    assert lsgan_loss(scores, 1.0).item() == pytest.approx(1.0)
    assert lsgan_generator_loss(scores, 6.0).item() == pytest.approx(6 * 0.5 * 1.0)
    disc = nn.Linear(3, 1)
    real, fake = torch.randn(4, 3), torch.randn(5, 3)
    separate = 0.5 * (lsgan_loss(disc(real), 1.0) + lsgan_loss(disc(fake), 0.0))
    torch.testing.assert_close(lsgan_discriminator_loss(disc, real, fake), separate)


def test_wgan_losses_have_the_textbook_signs():
    real, fake = torch.tensor([3.0, 5.0]), torch.tensor([1.0, -1.0])
    assert wgan_critic_loss(real, fake).item() == pytest.approx(0.0 - 4.0)
    assert wgan_generator_loss(fake).item() == pytest.approx(0.0)


def test_gradient_penalty_on_a_linear_critic_is_the_textbook_value():
    # D(x) = w.x has gradient w everywhere, so the penalty is (|w| - 1)^2 whatever the interpolates
    w = torch.tensor([3.0, 4.0])  # |w| = 5

    def critic(x):
        return x @ w

    real, fake = torch.randn(16, 2), torch.randn(16, 2)
    assert gradient_penalty(critic, real, fake).item() == pytest.approx(16.0, rel=1e-5)
    # two inputs: the gradient norm is taken over both together, sqrt(|a|^2 + |b|^2)
    a, b = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 0.0, 2.0])

    def critic2(x, y):
        return x @ a + y @ b

    pen = gradient_penalty(critic2, (real, torch.randn(16, 3)), (fake, torch.randn(16, 3)))
    assert pen.item() == pytest.approx((5**0.5 - 1) ** 2, rel=1e-5)


def test_gradient_penalty_trains_the_critic_and_is_evaluated_on_interpolates():
    torch.manual_seed(0)
    critic = nn.Linear(2, 1)
    seen = []

    def spy(x):
        seen.append(x.detach().clone())
        return critic(x)

    real, fake = torch.zeros(64, 2), torch.ones(64, 2)
    pen = gradient_penalty(spy, real, fake)
    pen.backward()
    assert critic.weight.grad is not None and critic.weight.grad.abs().sum() > 0
    x = seen[0]
    # every interpolate lies on the segment from fake (1, 1) to real (0, 0), not at its ends
    assert torch.allclose(x[:, 0], x[:, 1]) and (x > 0).all() and (x < 1).all()


def test_clip_weights_keeps_every_parameter_in_range():
    net = nn.Sequential(nn.Linear(4, 8), nn.Linear(8, 1))
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(100)
    clip_weights(net, 0.01)
    assert all(p.abs().max() <= 0.01 for p in net.parameters())
    assert any((p.abs() == 0.01).any() for p in net.parameters())


def test_discriminator_loss_takes_several_inputs_per_sample():
    torch.manual_seed(0)

    class Two(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = torch.nn.Linear(4, 1)

        def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
            return self.lin(torch.cat([a, b], -1))

    d = Two()
    ra, rb, fa, fb = (torch.randn(5, 2) for _ in range(4))
    want = 0.5 * (lsgan_loss(d(ra, rb), 1.0) + lsgan_loss(d(fa, fb), 0.0))
    torch.testing.assert_close(lsgan_discriminator_loss(d, (ra, rb), (fa, fb)), want)


def test_angle_loss_is_zero_on_a_correctly_oriented_pose_and_positive_on_a_mirrored_one():
    import math

    from helpers import _REST

    from poseshift.geometry import rotate_about_vertical

    body = torch.tensor(_REST, dtype=torch.float32).expand(12, -1, -1)
    body = rotate_about_vertical(body, torch.linspace(-math.pi, math.pi, 12))
    assert angle_loss(body).item() == 0.0
    mirrored = body * torch.tensor([1.0, 1.0, -1.0])  # the depth inversion a lifter can fall into
    loss = angle_loss(mirrored)
    assert loss.item() > 0.05
    # its gradient turns the face back: moving the nose along the facing direction lowers it
    nose = mirrored.clone().requires_grad_(True)
    angle_loss(nose).backward()
    assert nose.grad[:, 9].abs().sum() > 0
    # a half-mirrored batch: the loss is the mean over samples, zero for the correct half
    half = torch.cat([body[:6], mirrored[:6]])
    torch.testing.assert_close(angle_loss(half), angle_loss(mirrored[:6]) / 2)
