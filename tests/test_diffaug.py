"""Tests of DiffAugment ops, policies and the adaptive probability."""

from __future__ import annotations

import pytest
import torch

from ganaug.diffaug import POLICIES, AdaptiveAugment, diff_augment, parse_policy
from ganaug.errors import GanaugConfigError


def _images(n: int = 4, c: int = 3, size: int = 16, dtype=torch.float32) -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    return (torch.rand(n, c, size, size, generator=gen) * 2 - 1).to(dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("policy", [*POLICIES, "color,translation,cutout"])
def test_shape_dtype_kept_and_image_changed(policy, channels, dtype):
    x = _images(c=channels, dtype=dtype)
    torch.manual_seed(0)
    y = diff_augment(x, policy)
    assert y.shape == x.shape and y.dtype == dtype
    assert not torch.equal(y, x)


@pytest.mark.parametrize("policy", [*POLICIES, "color,translation,cutout"])
def test_gradients_flow(policy):
    x = _images().requires_grad_(True)
    diff_augment(x, policy).square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_p_zero_and_empty_policy_return_input():
    x = _images()
    assert diff_augment(x, "color,translation,cutout", p=0.0) is x
    for policy in (None, "", "none", "None", []):
        assert diff_augment(x, policy) is x


def test_deterministic_under_seed():
    x = _images()
    torch.manual_seed(3)
    a = diff_augment(x, "color,translation,cutout", p=0.7)
    torch.manual_seed(3)
    b = diff_augment(x, "color,translation,cutout", p=0.7)
    c = diff_augment(x, "color,translation,cutout", p=0.7)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not torch.equal(a, c)


def test_translation_moves_pixels_with_zero_padding():
    x = _images(n=16)
    torch.manual_seed(0)
    y = diff_augment(x, "translation")
    assert y.min() >= -1 and y.max() <= 1
    for xi, yi in zip(x, y, strict=True):
        # Every output value is a zero from the border or a pixel of the same image.
        values = set(xi.flatten().tolist()) | {0.0}
        assert set(yi.flatten().tolist()) <= values
    # Shifts are at most 1/8 of 16 = 2 pixels: the centre crop survives in every image.
    ones = torch.ones(16, 1, 16, 16)
    torch.manual_seed(1)
    shifted = diff_augment(ones, "translation")
    assert shifted[:, :, 2:14, 2:14].eq(1).all()
    assert shifted.eq(0).any()


def test_cutout_zeroes_part_of_a_half_size_square():
    ones = torch.ones(32, 3, 16, 16)
    torch.manual_seed(0)
    y = diff_augment(ones, "cutout")
    zeros = y[:, 0].eq(0).flatten(1).sum(1)
    # An 8x8 hole, clipped at the border to at least 4x4.
    assert zeros.min() >= 16 and zeros.max() <= 64 and (zeros == 64).any()
    assert torch.equal(y[:, 0], y[:, 2])  # the same hole in every channel


def test_color_on_grey_skips_saturation():
    x = _images(c=1)
    torch.manual_seed(5)
    y = diff_augment(x, "color")
    torch.manual_seed(5)
    brightness = torch.rand(4, 1, 1, 1) - 0.5
    torch.rand(4, 1, 1, 1)  # saturation draw, no effect on one channel
    contrast = torch.rand(4, 1, 1, 1) + 0.5
    b = x + brightness
    mean = b.mean(dim=(1, 2, 3), keepdim=True)
    torch.testing.assert_close(y, (b - mean) * contrast + mean)


def test_probability_applies_per_sample():
    x = _images(n=200)
    torch.manual_seed(0)
    y = diff_augment(x, "cutout", p=0.5)
    unchanged = (y == x).flatten(1).all(1).sum().item()
    assert 60 < unchanged < 140


def test_channels_last_input_matches_contiguous():
    x = _images()
    torch.manual_seed(2)
    a = diff_augment(x, "color,translation,cutout")
    torch.manual_seed(2)
    b = diff_augment(x.to(memory_format=torch.channels_last), "color,translation,cutout")
    torch.testing.assert_close(a, b)


def test_parse_policy_refuses_a_repeated_op_and_none_among_ops():
    # "translation,translation" shifted twice (up to 1/4 of the side): a typo, never the paper's.
    with pytest.raises(GanaugConfigError, match=r"names 'translation' twice.*once"):
        parse_policy("translation,cutout,Translation")
    with pytest.raises(GanaugConfigError, match=r"'none' cannot be combined.*'none' alone"):
        parse_policy("none,color")
    assert parse_policy(" , ,") == ()


def test_parse_policy_variants_and_errors():
    assert parse_policy("Color, translation") == ("color", "translation")
    assert parse_policy(["cutout", "color"]) == ("cutout", "color")
    assert parse_policy(None) == parse_policy("none") == ()
    with pytest.raises(GanaugConfigError,
                       match=r"Unknown DiffAugment policy 'colr'.*color, translation, cutout"
                             r".*Did you mean 'color'\?"):
        parse_policy("colr,cutout")
    with pytest.raises(GanaugConfigError, match=r"p must be in \[0, 1\], got 1.5"):
        diff_augment(_images(), "color", p=1.5)


def test_adaptive_augment_moves_p_both_ways_and_clamps():
    ada = AdaptiveAugment(target=0.6, interval=2, speed_images=100, max_p=0.3)
    positive, negative = torch.ones(10), -torch.ones(10)
    assert ada.update(positive) == 0.0  # no adjustment before `interval` calls
    assert ada.update(positive) == pytest.approx(0.2)  # r_t = 1 > 0.6: up by 20 / 100
    assert ada.last_rt == 1.0
    ada.update(positive), ada.update(positive)
    assert ada.p == pytest.approx(0.3)  # clamped at max_p
    # r_t = (1 - 1 + 1 - 1 ... ) / 20 = 0 < 0.6: down by batch 32 * 2 / 100.
    ada.update(torch.tensor([1.0, -1.0]), batch_size=32)
    ada.update(torch.tensor([1.0, -1.0]), batch_size=32)
    assert ada.last_rt == 0.0 and ada.p == 0.0  # 0.3 - 0.64, clamped at 0
    ada.update(negative), ada.update(negative)
    assert ada.p == 0.0  # clamped at 0


def test_adaptive_augment_state_round_trip_mid_interval():
    ada = AdaptiveAugment(target=0.2, interval=3, speed_images=50)
    for logits in (torch.ones(5), torch.ones(5), -torch.ones(5), torch.ones(5)):
        ada.update(logits)
    state = ada.state_dict()
    other = AdaptiveAugment()
    other.load_state_dict(state)
    assert other.state_dict() == state
    for logits in (torch.ones(5), -torch.ones(5)):
        assert other.update(logits) == ada.update(logits)
    assert other.p == ada.p == pytest.approx(0.6)  # two intervals with r_t = 1/3 > 0.2


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"target": 1.2}, r"target must be in \(0, 1\), got 1.2"),
    ({"interval": 0}, r"interval must be an integer >= 1, got 0"),
    ({"speed_images": 0}, r"speed_images must be > 0, got 0"),
    ({"p": 0.9, "max_p": 0.5}, r"0 <= p <= max_p <= 1, got p=0.9, max_p=0.5"),
])
def test_adaptive_augment_rejects_bad_settings(kwargs, message):
    with pytest.raises(GanaugConfigError, match=message):
        AdaptiveAugment(**kwargs)
