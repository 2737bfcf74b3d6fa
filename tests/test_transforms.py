"""SampleBank, the torchvision v2 GANAugment and BatchMixer."""

from __future__ import annotations

import math
import pickle
from typing import ClassVar

import numpy as np
import PIL.Image
import pytest
import torch
from torch import nn
from torchvision import tv_tensors
from torchvision.transforms import v2

from ganaug.datasets import with_labels
from ganaug.errors import GanaugConfigError, GanaugDataError
from ganaug.generator import Generator, to_uint8
from ganaug.transforms import BatchMixer, GANAugment, SampleBank


class ClassConstNet(nn.Module):
    """A stand-in generator: every pixel of class k is ``2k/(K-1) - 1`` (noise is ignored)."""

    def __init__(self, num_classes=3, channels=3, image_size=16, z_dim=4):
        super().__init__()
        self.num_classes, self.channels, self.image_size, self.z_dim = (
            num_classes, channels, image_size, z_dim)
        self.config = {"num_classes": num_classes, "channels": channels,
                       "image_size": image_size, "z_dim": z_dim}
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, z, labels):
        value = labels.float() * 2 / (self.num_classes - 1) - 1
        out = value.view(-1, 1, 1, 1) * self.scale
        return out.expand(len(labels), self.channels, self.image_size, self.image_size)


@pytest.fixture
def const_generator():
    return Generator(ClassConstNet(), classes=["a", "b", "c"])


# -- SampleBank ------------------------------------------------------------------------------
def test_bank_refills_in_one_call_per_bank(tiny_generator, monkeypatch):
    calls = []
    original = tiny_generator.sample
    monkeypatch.setattr(tiny_generator, "sample", lambda *a, **k: calls.append(a) or original(*a, **k))
    bank = SampleBank(tiny_generator, bank_size=4, seed=0)
    images = [bank.draw(1) for _ in range(9)]
    assert len(calls) == 3 and all(list(a[0]) == [1] * 4 for a in calls)
    assert images[0].shape == (3, 16, 16) and images[0].dtype == torch.uint8
    assert len({img.numpy().tobytes() for img in images}) == 9


def test_bank_seed_reproduces_and_differs(tiny_generator):
    a = [SampleBank(tiny_generator, bank_size=3, seed=7).draw("c") for _ in range(2)]
    b = SampleBank(tiny_generator, bank_size=3, seed=8).draw("c")
    torch.testing.assert_close(a[0], a[1])
    assert not torch.equal(a[0], b)


def test_bank_with_path_pickles_without_weights(model_path, tiny_generator):
    bank = SampleBank(model_path, bank_size=2, seed=1)
    expected = SampleBank(tiny_generator, bank_size=2, seed=1).draw(0)
    torch.testing.assert_close(bank.draw(0), expected)  # loads lazily
    weights = sum(t.numel() * 4 for t in tiny_generator.state_dict().values())
    assert len(pickle.dumps(bank)) < weights / 4
    restored = pickle.loads(pickle.dumps(bank))
    assert restored._generator is None and restored.draw(2).shape == (3, 16, 16)


# -- GANAugment: types and sizes -------------------------------------------------------------
def _replaced(seed, label, like, generator):
    from ganaug.transforms import match_image

    return match_image(SampleBank(generator, seed=seed).draw(label), like)


@pytest.mark.parametrize("make", [
    lambda: PIL.Image.new("RGB", (20, 24), (9, 9, 9)),
    lambda: PIL.Image.new("L", (16, 16), 9),
    lambda: torch.full((3, 16, 16), 9, dtype=torch.uint8),
    lambda: torch.full((1, 12, 12), 0.04),
    lambda: tv_tensors.Image(torch.full((3, 8, 8), 9, dtype=torch.uint8)),
], ids=["pil-rgb-resized", "pil-L", "uint8", "float-1ch", "tv-image"])
def test_type_size_and_content_preserved(make, tiny_generator):
    img = make()
    out, label = GANAugment(tiny_generator, p=1.0, seed=3)(img, 2)
    assert label == 2 and type(out) is type(img)
    expected = _replaced(3, 2, img, tiny_generator)
    if isinstance(img, PIL.Image.Image):
        assert out.mode == img.mode and out.size == img.size
        np.testing.assert_array_equal(np.asarray(out), np.asarray(expected))
        assert np.asarray(out).std() > 0  # a generated image, not the flat input
    else:
        assert out.shape == img.shape and out.dtype == img.dtype
        torch.testing.assert_close(out, expected)
        assert not torch.equal(out, img)
        if out.is_floating_point():
            assert 0.0 <= float(out.min()) and float(out.max()) <= 1.0


def test_dict_sample_and_compose(tiny_generator):
    img = tv_tensors.Image(torch.zeros(3, 16, 16, dtype=torch.uint8))
    sample = {"image": img, "label": torch.tensor(1), "id": "x7"}
    out = GANAugment(tiny_generator, p=1.0, seed=0)(sample)
    assert set(out) == {"image", "label", "id"} and out["id"] == "x7"
    assert out["label"] is sample["label"] and isinstance(out["image"], tv_tensors.Image)
    torch.testing.assert_close(out["image"].as_subclass(torch.Tensor),
                               SampleBank(tiny_generator, seed=0).draw(1))
    pipe = v2.Compose([GANAugment(tiny_generator, p=1.0, seed=0), v2.ToDtype(torch.float32, scale=True)])
    x, y = pipe(torch.zeros(3, 16, 16, dtype=torch.uint8), 1)
    assert y == 1 and x.dtype == torch.float32 and 0 < float(x.mean()) < 1


def test_p_zero_is_identity(tiny_generator):
    img = torch.zeros(3, 16, 16, dtype=torch.uint8)
    out = GANAugment(tiny_generator, p=0.0)(img, 0)
    assert out[0] is img


def test_replacement_rate_within_binomial_bounds(tiny_generator):
    torch.manual_seed(0)
    t = GANAugment(tiny_generator, p=0.3, seed=0, bank_size=128)
    img = torch.zeros(3, 16, 16, dtype=torch.uint8)
    n = 1000
    hits = sum(int(not torch.equal(t(img, i % 3)[0], img)) for i in range(n))
    assert abs(hits - 0.3 * n) <= 4 * math.sqrt(n * 0.3 * 0.7)


def test_classes_limits_replacement(tiny_generator):
    t = GANAugment(tiny_generator, p=1.0, classes=["c"], seed=0)
    img = torch.zeros(3, 16, 16, dtype=torch.uint8)
    assert t(img, 0)[0] is img and t(img, 1)[0] is img
    assert not torch.equal(t(img, 2)[0], img)


def test_same_torch_seed_gives_same_draws(tiny_generator):
    img = torch.zeros(3, 16, 16, dtype=torch.uint8)
    runs = []
    for _ in range(2):
        torch.manual_seed(4)
        t = GANAugment(tiny_generator, p=0.5, seed=1)
        runs.append(torch.stack([t(img, i % 3)[0] for i in range(12)]))
    torch.testing.assert_close(runs[0], runs[1])


# -- GANAugment: DataLoader workers ----------------------------------------------------------
class _Zeros(torch.utils.data.Dataset):
    classes: ClassVar[list[str]] = ["a", "b", "c"]
    targets: ClassVar[list[int]] = [0, 1, 2, 0, 1, 2, 0, 1]

    def __len__(self):
        return 8

    def __getitem__(self, i):
        return torch.zeros(3, 16, 16, dtype=torch.uint8), self.targets[i]


def _epoch(model_path, seed):
    ds = with_labels(_Zeros(), GANAugment(model_path, p=1.0, seed=5))
    loader = torch.utils.data.DataLoader(ds, batch_size=4, num_workers=2,
                                         generator=torch.Generator().manual_seed(seed))
    return [b for b in loader]


def test_workers_reproducible_and_distinct(model_path):
    first, second = _epoch(model_path, 0), _epoch(model_path, 0)
    for (xa, ya), (xb, yb) in zip(first, second):
        torch.testing.assert_close(xa, xb)
        assert torch.equal(ya, yb)
    # batch 0 came from worker 0, batch 1 from worker 1: the first class-0 image of each
    # worker (item 0 vs item 6) differs, so the workers do not repeat each other.
    (x0, y0), (x1, y1) = first
    assert y0[0] == y1[2] == 0 and not torch.equal(x0[0], x1[2])
    other = _epoch(model_path, 1)
    assert not torch.equal(other[0][0], first[0][0])


# -- GANAugment: errors ----------------------------------------------------------------------
def test_error_no_label(tiny_generator):
    with pytest.raises(GanaugDataError, match=r"needs the label.*with_labels"):
        GANAugment(tiny_generator)(PIL.Image.new("RGB", (8, 8)))


def test_error_label_out_of_range(tiny_generator):
    with pytest.raises(GanaugDataError, match=r"Label 5 is out of range.*3 classes"):
        GANAugment(tiny_generator)(torch.zeros(3, 8, 8), 5)


def test_error_float_label(tiny_generator):
    with pytest.raises(GanaugDataError, match="one integer class label"):
        GANAugment(tiny_generator)(torch.zeros(3, 8, 8), torch.tensor([0.2, 0.8]))


@pytest.mark.parametrize("p", [-0.1, 1.5, "x"])
def test_error_bad_p(tiny_generator, p):
    with pytest.raises(GanaugConfigError, match=r"p must be a probability in \[0, 1\]"):
        GANAugment(tiny_generator, p=p)


def test_error_unknown_class_name(tiny_generator):
    with pytest.raises(GanaugConfigError, match=r"Unknown class 'bb'.*Did you mean 'b'"):
        GANAugment(tiny_generator, classes=["bb"])


def test_error_batched_tensor(tiny_generator):
    with pytest.raises(GanaugDataError, match="BatchMixer"):
        GANAugment(tiny_generator, p=1.0)(torch.zeros(4, 3, 8, 8), 0)


def test_error_bad_model_path(tmp_path):
    with pytest.raises(Exception, match="missing.safetensors"):
        GANAugment(tmp_path / "missing.safetensors")


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
    ({"fraction": 1.2}, r"fraction must be a probability"),
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


def test_bank_reuse_serves_each_image_exactly_reuse_times(tiny_generator, monkeypatch):
    calls = []
    original = tiny_generator.sample
    monkeypatch.setattr(tiny_generator, "sample", lambda *a, **k: calls.append(1) or original(*a, **k))
    bank = SampleBank(tiny_generator, bank_size=4, seed=0, reuse=3)
    served = [bank.draw(0).numpy().tobytes() for _ in range(12)]
    assert len(calls) == 1 and len(set(served)) == 4
    assert sorted(served.count(img) for img in set(served)) == [3, 3, 3, 3]
    assert served[:4] != served[4:8] or served[4:8] != served[8:]  # shuffled per pass
    bank.draw(0)
    assert len(calls) == 2


def test_path_transform_pickles_small_and_works(model_path, tiny_generator):
    t = GANAugment(model_path, p=1.0, seed=2, classes=["a", "b"])  # classes= loads it here
    blob = pickle.dumps(t)
    weights = sum(v.numel() * 4 for v in tiny_generator.state_dict().values())
    assert len(blob) < weights / 4
    out, _ = pickle.loads(blob)(torch.zeros(3, 16, 16, dtype=torch.uint8), 1)
    torch.testing.assert_close(out, SampleBank(tiny_generator, seed=2).draw(1))


@pytest.mark.slow
def test_loader_throughput_runs(cifar_mini):
    from ganaug.transforms import loader_throughput

    out = loader_throughput(f"folder:{cifar_mini / 'train'}", batch=32, batches=3, warmup=1,
                            mixer_repeats=2)
    assert out["baseline_images_per_s"] > 0 and out["ganaugment_images_per_s"] > 0
    assert out["slowdown"] == pytest.approx(
        1 - out["ganaugment_images_per_s"] / out["baseline_images_per_s"])
    assert out["mixer_ms_per_batch"] > 0
