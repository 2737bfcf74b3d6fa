"""Tests of the GAN losses and regularisers against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ganaug import losses
from ganaug.errors import GanaugConfigError


class LinearCritic(nn.Module):
    """``D(x, y) = <w, flatten(x)>``: its input gradient is ``w`` everywhere."""

    def __init__(self, numel: int, norm: float) -> None:
        super().__init__()
        w = torch.randn(numel, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        self.w = nn.Parameter(w / w.norm() * norm)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return x.flatten(1) @ self.w


REAL = torch.tensor([1.0, 0.0, -1.0, 2.5])
FAKE = torch.tensor([-1.0, 0.0, 1.0, -3.0])


def test_hinge_known_values():
    # relu(1 - r) = [0, 1, 2, 0] -> 0.75; relu(1 + f) = [0, 1, 2, 0] -> 0.75.
    assert losses.hinge_d(REAL, FAKE).item() == pytest.approx(1.5)
    assert losses.hinge_d(torch.tensor([1.0, 3.0]), torch.tensor([-1.0, -2.0])).item() == 0.0
    assert losses.hinge_g(FAKE).item() == pytest.approx(0.75)


def test_non_saturating_matches_bce_with_logits():
    expected_d = (F.binary_cross_entropy_with_logits(REAL, torch.ones(4))
                  + F.binary_cross_entropy_with_logits(FAKE, torch.zeros(4)))
    torch.testing.assert_close(losses.ns_d(REAL, FAKE), expected_d)
    torch.testing.assert_close(losses.ns_g(FAKE),
                               F.binary_cross_entropy_with_logits(FAKE, torch.ones(4)))
    assert losses.ns_g(torch.zeros(3)).item() == pytest.approx(math.log(2.0))
    # Stable for huge logits (no inf/nan from log(sigmoid)).
    assert torch.isfinite(losses.ns_d(torch.tensor([-1e4]), torch.tensor([1e4])))


def test_wgan_known_values():
    assert losses.wgan_d(REAL, FAKE).item() == pytest.approx(-0.75 - 0.625)
    assert losses.wgan_g(FAKE).item() == pytest.approx(0.75)


@pytest.mark.parametrize(("norm", "expected"), [(1.0, 0.0), (3.0, 4.0), (0.5, 0.25)])
def test_gradient_penalty_of_linear_critic(norm, expected):
    critic = LinearCritic(2 * 4 * 4, norm)
    real = torch.randn(5, 2, 4, 4, dtype=torch.float64)
    fake = torch.randn(5, 2, 4, 4, dtype=torch.float64)
    gp = losses.gradient_penalty(critic, real, fake, torch.zeros(5, dtype=torch.long))
    assert gp.dtype == torch.float64
    assert gp.item() == pytest.approx(expected, abs=1e-10)
    if expected:
        gp.backward()  # create_graph=True: the penalty trains the critic
        assert critic.w.grad is not None and critic.w.grad.abs().sum() > 0


def test_gradient_penalty_is_seeded_by_global_rng():
    critic = nn.Sequential(nn.Flatten(), nn.Linear(12, 4), nn.Tanh(), nn.Linear(4, 1)).double()

    def d(x, labels):
        return critic(x).squeeze(1)

    real, fake = torch.randn(3, 3, 2, 2).double(), torch.randn(3, 3, 2, 2).double()
    labels = torch.zeros(3, dtype=torch.long)
    torch.manual_seed(7)
    a = losses.gradient_penalty(d, real, fake, labels)
    torch.manual_seed(7)
    b = losses.gradient_penalty(d, real, fake, labels)
    c = losses.gradient_penalty(d, real, fake, labels)
    assert a.item() == b.item() and a.item() != c.item()


def test_r1_of_linear_critic_is_squared_weight_norm():
    critic = LinearCritic(3 * 2 * 2, norm=1.7)
    real = torch.randn(4, 3, 2, 2, dtype=torch.float64, requires_grad=True)
    r1 = losses.r1_penalty(critic(real, None), real)
    assert r1.item() == pytest.approx(1.7**2)
    r1.backward()
    torch.testing.assert_close(critic.w.grad, 2 * critic.w.detach())  # d||w||^2/dw = 2w


def test_lecam_zero_on_right_side_and_known_value():
    # Real logits below the fake anchor, fake logits above the real anchor: nothing to pull.
    zero = losses.lecam_reg(torch.tensor([-1.0, 0.0]), torch.tensor([2.0]), ema_real=1.0,
                            ema_fake=0.5)
    assert zero.item() == 0.0
    # relu(2 - 0)^2 = 4 (mean over [4, 0] = 2), relu(1 - (-1))^2 = 4.
    value = losses.lecam_reg(torch.tensor([2.0, -1.0]), torch.tensor([-1.0]),
                             ema_real=torch.tensor(1.0), ema_fake=torch.tensor(0.0))
    assert value.item() == pytest.approx(6.0)


def test_lecam_ema_update_and_state_round_trip():
    ema = losses.LeCamEMA(decay=0.5)
    ema.update(torch.tensor([2.0, 4.0]), torch.tensor([-2.0]))
    assert (ema.real, ema.fake) == (pytest.approx(1.5), pytest.approx(-1.0))
    ema.update(torch.tensor([1.5]), torch.tensor([1.0]))
    assert (ema.real, ema.fake) == (pytest.approx(1.5), pytest.approx(0.0))
    other = losses.LeCamEMA()
    other.load_state_dict(ema.state_dict())
    assert other.state_dict() == ema.state_dict() == {"decay": 0.5, "real": 1.5, "fake": 0.0}
    with pytest.raises(GanaugConfigError, match=r"decay must be in \[0, 1\), got 1.5"):
        losses.LeCamEMA(decay=1.5)


def test_get_loss_names_and_errors():
    assert set(losses.LOSSES) == {"hinge", "ns", "wgan-gp"}
    assert losses.get_loss("hinge") == (losses.hinge_d, losses.hinge_g)
    assert losses.get_loss("wgan-gp") == (losses.wgan_d, losses.wgan_g)
    with pytest.raises(GanaugConfigError,
                       match=r"loss must be one of hinge, ns, wgan-gp, got 'hing'\. Did you mean 'hinge'"):
        losses.get_loss("hing")


def test_consistency_reg_is_the_mean_squared_logit_gap():
    from ganaug.losses import consistency_reg

    a = torch.tensor([1.0, -2.0, 0.5])
    b = torch.tensor([0.0, -2.0, 2.5])
    assert consistency_reg(a, b).item() == pytest.approx((1.0 + 0.0 + 4.0) / 3)
    assert consistency_reg(a, a).item() == 0.0
    a.requires_grad_(True)
    consistency_reg(a, b).backward()
    torch.testing.assert_close(a.grad, 2 * (a.detach() - b) / 3)


def test_consistency_reg_refuses_mismatched_rows():
    from ganaug import GanaugConfigError
    from ganaug.losses import consistency_reg

    with pytest.raises(GanaugConfigError, match="same shape"):
        consistency_reg(torch.zeros(4), torch.zeros(3))
