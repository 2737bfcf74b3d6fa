"""BatchMixer: make_params draws positions, classes and a seed; apply replaces deterministically."""

from __future__ import annotations

import pytest
import torch

from ganaug.augment import BatchMixer
from ganaug.errors import GanaugConfigError, GanaugDataError
from ganaug.generator import to_uint8


# -- BatchMixer ------------------------------------------------------------------------------
def _class_value(label, k=3):
    return (float(label) * 2 / (k - 1) - 1 + 1) / 2  # [0, 1] value of class ``label``


@pytest.mark.parametrize("batch,fraction,expected", [(10, 0.25, 3), (8, 0.25, 2), (7, 0.5, 4),
                                                     (5, 0.0, 0), (6, 1.0, 6)])
def test_mixer_count_and_labels_float(const_generator, batch, fraction, expected):
    x = torch.rand(batch, 3, 16, 16) * 0.1 + 0.9  # far from every class value but c
    y = torch.arange(batch) % 2
    x_in, y_in = x.clone(), y.clone()
    xo, yo = BatchMixer(const_generator, fraction, seed=0)(x, y)
    mixer_idx = BatchMixer(const_generator, fraction, seed=0)
    mixer_idx(x, y)
    idx = mixer_idx.last_indices
    assert len(idx) == expected and len(set(idx.tolist())) == expected
    torch.testing.assert_close(x, x_in)  # input untouched
    assert torch.equal(y, y_in) and torch.equal(yo, y)
    changed = (xo != x).flatten(1).any(1).nonzero().flatten()
    assert changed.tolist() == sorted(idx.tolist())
    for i in idx.tolist():
        torch.testing.assert_close(xo[i], torch.full((3, 16, 16), _class_value(y[i])))


def test_mixer_uint8_and_resize(const_generator):
    x = torch.full((4, 3, 32, 32), 7, dtype=torch.uint8)
    y = torch.tensor([0, 1, 2, 1])
    mixer = BatchMixer(const_generator, 1.0, seed=0)
    xo, _ = mixer(x, y)
    assert xo.dtype == torch.uint8 and xo.shape == x.shape
    expected = to_uint8(torch.tensor([-1.0, 0.0, 1.0]))
    for i in range(4):
        assert torch.all(xo[i] == expected[y[i]])


def test_mixer_normalised_half_and_grey(const_generator):
    mean, std = [0.5, 0.4, 0.3], [0.25, 0.2, 0.1]
    x = torch.zeros(4, 3, 16, 16, dtype=torch.float16)
    y = torch.tensor([2, 2, 1, 0])
    xo, _ = BatchMixer(const_generator, 1.0, mean=mean, std=std, seed=0)(x, y)
    assert xo.dtype == torch.float16
    for c in range(3):
        want = (_class_value(2) - mean[c]) / std[c]
        assert float(xo[0, c].float().mean()) == pytest.approx(want, rel=1e-3)
    grey = torch.zeros(2, 1, 16, 16)
    xg, _ = BatchMixer(const_generator, 1.0, seed=0)(grey, torch.tensor([1, 1]))
    assert xg.shape == grey.shape and float(xg.mean()) == pytest.approx(0.5, abs=1e-2)


def test_mixer_soft_targets(const_generator):
    y = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8], [0.3, 0.6, 0.1], [0.2, 0.5, 0.3]])
    x = torch.zeros(4, 3, 16, 16)
    mixer = BatchMixer(const_generator, 0.5, seed=3)
    xo, yo = mixer(x, y)
    for i in range(4):
        if i in mixer.last_indices.tolist():
            cls = int(y[i].argmax())
            assert yo[i].tolist() == torch.nn.functional.one_hot(torch.tensor(cls), 3).float().tolist()
            torch.testing.assert_close(xo[i], torch.full((3, 16, 16), _class_value(cls)))
        else:
            assert torch.equal(yo[i], y[i])


def test_mixer_balance_changes_labels(const_generator):
    x = torch.zeros(64, 3, 16, 16)
    y = torch.zeros(64, dtype=torch.int64)
    mixer = BatchMixer(const_generator, 0.5, balance={"c": 1.0}, seed=0)
    xo, yo = mixer(x, y)
    idx = mixer.last_indices
    assert torch.all(yo[idx] == 2) and int((yo == 2).sum()) == 32
    torch.testing.assert_close(xo[idx], torch.ones(32, 3, 16, 16))
    _, yu = BatchMixer(const_generator, 1.0, balance="uniform", seed=0)(x, y)
    assert set(yu.tolist()) == {0, 1, 2}


def test_mixer_real_generator_one_pass_and_seeded(tiny_generator, monkeypatch):
    calls = []
    original = tiny_generator.sample
    monkeypatch.setattr(tiny_generator, "sample",
                        lambda *a, **k: calls.append(k["batch_size"]) or original(*a, **k))
    x, y = torch.rand(16, 3, 16, 16), torch.randint(0, 3, (16,))
    a = BatchMixer(tiny_generator, 0.5, seed=1)(x, y)[0]
    b = BatchMixer(tiny_generator, 0.5, seed=1)(x, y)[0]
    torch.testing.assert_close(a, b)
    assert calls == [8, 8]


def test_mixer_disabled_returns_inputs(const_generator):
    x, y = torch.rand(4, 3, 16, 16), torch.tensor([0, 1, 2, 0])
    mixer = BatchMixer(const_generator, 0.5, enabled=False)
    xo, yo = mixer(x, y)
    assert xo is x and yo is y and len(mixer.last_indices) == 0


@pytest.mark.parametrize("kwargs,match", [
    ({"fraction": 1.2}, r"fraction must be a finite number in \[0, 1\]"),
    ({"balance": {"a": -1}}, r"balance weight of class 'a' must be a finite number"),
    ({"num_classes": 2}, r"num_classes=2 is smaller than the generator's 3 classes"),
    ({"balance": "rare"}, r"Unknown balance 'rare'"),
    ({"mean": [0.5]}, r"both mean= and std="),
    ({"balance": {"zz": 1}}, r"Unknown class 'zz'"),
])
def test_mixer_config_errors(const_generator, kwargs, match):
    with pytest.raises(GanaugConfigError, match=match):
        BatchMixer(const_generator, **kwargs)


@pytest.mark.parametrize("x,y,match", [
    (torch.zeros(3, 16, 16), torch.tensor([0]), r"expects a batch \(B, C, H, W\)"),
    (torch.zeros(2, 3, 8, 8), torch.tensor([0, 3]), r"Targets must be in 0\.\.2.*got 0\.\.3"),
    (torch.zeros(2, 3, 8, 8), torch.zeros(2, 5), r"Soft targets have 5 columns"),
    (torch.zeros(2, 3, 8, 8), torch.tensor([0, 1, 2]), r"B=2, got \(3,\)"),
])
def test_mixer_data_errors(const_generator, x, y, match):
    with pytest.raises(GanaugDataError, match=match):
        BatchMixer(const_generator, 0.5)(x, y)


def test_mixer_soft_target_class_beyond_generator(const_generator):
    y = torch.nn.functional.one_hot(torch.tensor([4, 4]), 5).float()
    with pytest.raises(GanaugDataError, match=r"top class is 4 but the generator has 3"):
        BatchMixer(const_generator, 1.0, num_classes=5)(torch.zeros(2, 3, 8, 8), y)


# -- make_params / apply ---------------------------------------------------------------------
def test_apply_fixed_params_is_deterministic(const_generator):
    x = torch.zeros(4, 3, 16, 16)
    y = torch.tensor([0, 1, 2, 0])
    mixer = BatchMixer(const_generator, 0.5)
    params = {"idx": torch.tensor([1, 3]), "classes": torch.tensor([2, 1]), "seed": 0}
    xo, yo = mixer.apply(x, y, params)
    assert yo.tolist() == [0, 2, 2, 1]
    torch.testing.assert_close(xo[1], torch.ones(3, 16, 16))
    torch.testing.assert_close(xo[3], torch.full((3, 16, 16), 0.5))
    assert torch.equal(xo[[0, 2]], x[[0, 2]]) and torch.equal(x, torch.zeros(4, 3, 16, 16))
    assert mixer.last_indices.tolist() == [1, 3] and mixer.last_labels.tolist() == [2, 1]
    again, _ = BatchMixer(const_generator, 0.5).apply(x, y, params)
    torch.testing.assert_close(again, xo)
    soft = torch.nn.functional.one_hot(y, 3).float()
    _, ys = mixer.apply(x, soft, params)
    assert ys.argmax(1).tolist() == [0, 2, 2, 1] and float(ys.sum()) == 4.0
    empty = {"idx": torch.empty(0, dtype=torch.int64), "classes": torch.empty(0, dtype=torch.int64),
             "seed": None}
    assert mixer.apply(x, y, empty)[0] is x


def test_make_params_then_apply_equals_call(tiny_generator):
    x, y = torch.rand(8, 3, 16, 16), torch.randint(0, 3, (8,))
    drawn = BatchMixer(tiny_generator, 0.5, seed=4)
    params = drawn.make_params(x, y)
    assert params["idx"].tolist() == sorted(params["idx"].tolist()) and len(params["idx"]) == 4
    assert torch.equal(params["classes"], y[params["idx"]])
    xo, yo = drawn.apply(x, y, params)
    xc, yc = BatchMixer(tiny_generator, 0.5, seed=4)(x, y)
    torch.testing.assert_close(xo, xc)
    assert torch.equal(yo, yc)
    assert BatchMixer(tiny_generator, 0.1).make_params(x[:2], y[:2])["seed"] is None  # k = 0


def test_apply_refuses_mismatched_params(const_generator):
    params = {"idx": torch.tensor([0, 1]), "classes": torch.tensor([1]), "seed": 0}
    with pytest.raises(GanaugConfigError, match=r"2 positions but 1 classes"):
        BatchMixer(const_generator).apply(torch.zeros(2, 3, 8, 8), torch.tensor([0, 1]), params)


def test_bad_truncation_at_construction(tiny_model_path):
    with pytest.raises(GanaugConfigError, match=r"truncation must be a finite number in \(0, 1\]"):
        BatchMixer(tiny_model_path, truncation=0.0)
