"""BatchMixer: make_params draws positions, classes and a seed; apply replaces deterministically;
the synthetic mask and weighted_loss."""

from __future__ import annotations

import math

import pytest
import torch

from ganaug.augment import BatchMixer, weighted_loss
from ganaug.errors import GanaugConfigError, GanaugDataError
from ganaug.generator import to_uint8


# -- BatchMixer ------------------------------------------------------------------------------
def _mixer(generator, fraction=0.25, **kwargs):
    """A BatchMixer whose labels are the generator's own class indices unless classes= says."""
    kwargs.setdefault("classes", "generator")
    return BatchMixer(generator, fraction, **kwargs)


def _class_value(label, k=3):
    return (float(label) * 2 / (k - 1) - 1 + 1) / 2  # [0, 1] value of class ``label``


@pytest.mark.parametrize("batch,fraction,expected", [(10, 0.25, 3), (8, 0.25, 2), (7, 0.5, 4),
                                                     (5, 0.0, 0), (6, 1.0, 6)])
def test_mixer_count_and_labels_float(const_generator, batch, fraction, expected):
    x = torch.rand(batch, 3, 16, 16) * 0.1 + 0.9  # far from every class value but c
    y = torch.arange(batch) % 2
    x_in, y_in = x.clone(), y.clone()
    xo, yo = _mixer(const_generator, fraction, seed=0)(x, y)
    mixer_idx = _mixer(const_generator, fraction, seed=0)
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
    mixer = _mixer(const_generator, 1.0, seed=0)
    xo, _ = mixer(x, y)
    assert xo.dtype == torch.uint8 and xo.shape == x.shape
    expected = to_uint8(torch.tensor([-1.0, 0.0, 1.0]))
    for i in range(4):
        assert torch.all(xo[i] == expected[y[i]])


def test_mixer_normalised_half_and_grey(const_generator):
    mean, std = [0.5, 0.4, 0.3], [0.25, 0.2, 0.1]
    x = torch.zeros(4, 3, 16, 16, dtype=torch.float16)
    y = torch.tensor([2, 2, 1, 0])
    xo, _ = _mixer(const_generator, 1.0, mean=mean, std=std, seed=0)(x, y)
    assert xo.dtype == torch.float16
    for c in range(3):
        want = (_class_value(2) - mean[c]) / std[c]
        assert float(xo[0, c].float().mean()) == pytest.approx(want, rel=1e-3)
    grey = torch.zeros(2, 1, 16, 16)
    xg, _ = _mixer(const_generator, 1.0, seed=0)(grey, torch.tensor([1, 1]))
    assert xg.shape == grey.shape and float(xg.mean()) == pytest.approx(0.5, abs=1e-2)


def test_mixer_soft_targets(const_generator):
    y = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8], [0.3, 0.6, 0.1], [0.2, 0.5, 0.3]])
    x = torch.zeros(4, 3, 16, 16)
    mixer = _mixer(const_generator, 0.5, seed=3)
    xo, yo = mixer(x, y)
    for i in range(4):
        if i in mixer.last_indices.tolist():
            cls = int(y[i].argmax())  # the row keeps its floor (min) and its mass (sum)
            want = torch.full((3,), float(y[i].min()))
            want[cls] += 1 - 3 * float(y[i].min())
            torch.testing.assert_close(yo[i], want)
            torch.testing.assert_close(xo[i], torch.full((3, 16, 16), _class_value(cls)))
        else:
            assert torch.equal(yo[i], y[i])


def test_mixer_balance_changes_labels(const_generator):
    x = torch.zeros(64, 3, 16, 16)
    y = torch.zeros(64, dtype=torch.int64)
    mixer = _mixer(const_generator, 0.5, label_weights={"c": 1.0}, seed=0)
    xo, yo = mixer(x, y)
    idx = mixer.last_indices
    assert torch.all(yo[idx] == 2) and int((yo == 2).sum()) == 32
    torch.testing.assert_close(xo[idx], torch.ones(32, 3, 16, 16))
    _, yu = _mixer(const_generator, 1.0, label_weights="uniform", seed=0)(x, y)
    assert set(yu.tolist()) == {0, 1, 2}


def test_mixer_real_generator_one_pass_and_seeded(tiny_generator, monkeypatch):
    calls = []
    original = tiny_generator.sample
    monkeypatch.setattr(tiny_generator, "sample",
                        lambda *a, **k: calls.append(k["batch_size"]) or original(*a, **k))
    x, y = torch.rand(16, 3, 16, 16), torch.randint(0, 3, (16,))
    a = _mixer(tiny_generator, 0.5, seed=1)(x, y)[0]
    b = _mixer(tiny_generator, 0.5, seed=1)(x, y)[0]
    torch.testing.assert_close(a, b)
    assert calls == [8, 8]


def test_mixer_disabled_returns_inputs(const_generator):
    x, y = torch.rand(4, 3, 16, 16), torch.tensor([0, 1, 2, 0])
    mixer = _mixer(const_generator, 0.5, seed=0)
    mixer.enabled = False
    xo, yo = mixer(x, y)
    assert xo is x and yo is y and len(mixer.last_indices) == 0
    mixer.enabled = True
    xo, _ = mixer(x, y)
    assert len(mixer.last_indices) == 2 and not torch.equal(xo, x)


@pytest.mark.parametrize("kwargs,match", [
    ({"fraction": 1.2}, r"fraction must be a finite number in \[0, 1\]"),
    ({"label_weights": {"a": -1}}, r"label_weights\['a'\] must be a finite number in \[0, inf\)"),
    ({"num_classes": 2}, r"num_classes=2 is smaller than the 3 labels of classes="),
    ({"label_weights": "rare"}, r"Unknown label_weights 'rare'"),
    ({"mean": [0.5]}, r"both mean= and std="),
    ({"label_weights": {"zz": 1}}, r"Unknown class 'zz' in label_weights"),
    ({"label_weights": {0: 1}}, r"label_weights takes class names as keys, got 0"),
    ({"label_weights": {"a": 0}}, r"label_weights sum to 0"),
    ({"label_weights": ["a"]}, r"label_weights must be None, 'uniform' or a \{class name"),
])
def test_mixer_config_errors(const_generator, kwargs, match):
    with pytest.raises(GanaugConfigError, match=match):
        _mixer(const_generator, **kwargs)


@pytest.mark.parametrize("x,y,match", [
    (torch.zeros(3, 16, 16), torch.tensor([0]), r"expects a batch \(B, C, H, W\)"),
    (torch.zeros(2, 3, 8, 8), torch.tensor([0, 3]),
     r"label 3 names no class of the generator \(labels 0\.\.2, classes='generator'\)"),
    (torch.zeros(2, 3, 8, 8), torch.zeros(2, 5), r"Soft targets have 5 columns"),
    (torch.zeros(2, 3, 8, 8), torch.tensor([0, 1, 2]), r"B=2, got \(3,\)"),
    (torch.zeros(2, 3, 0, 8), torch.tensor([0, 1]), r"has no pixels \(size 0x8\)"),
])
def test_mixer_data_errors(const_generator, x, y, match):
    with pytest.raises(GanaugDataError, match=match):
        _mixer(const_generator, 0.5)(x, y)


def test_mixer_soft_target_class_beyond_generator(const_generator):
    y = torch.nn.functional.one_hot(torch.tensor([4, 4]), 5).float()
    with pytest.raises(GanaugDataError, match=r"label 4 names no class of the generator"):
        _mixer(const_generator, 1.0, num_classes=5)(torch.zeros(2, 3, 8, 8), y)
    with pytest.raises(GanaugDataError, match=r"label 4 names no class of classes="):
        _mixer(const_generator, 1.0, classes=["a", "b", "c"], num_classes=5)(
            torch.zeros(2, 3, 8, 8), y)


# -- make_params / apply ---------------------------------------------------------------------
def test_apply_fixed_params_is_deterministic(const_generator):
    x = torch.zeros(4, 3, 16, 16)
    y = torch.tensor([0, 1, 2, 0])
    mixer = _mixer(const_generator, 0.5)
    params = {"idx": torch.tensor([1, 3]), "classes": torch.tensor([2, 1]), "seed": 0}
    xo, yo = mixer.apply(x, y, params)
    assert yo.tolist() == [0, 2, 2, 1]
    torch.testing.assert_close(xo[1], torch.ones(3, 16, 16))
    torch.testing.assert_close(xo[3], torch.full((3, 16, 16), 0.5))
    assert torch.equal(xo[[0, 2]], x[[0, 2]]) and torch.equal(x, torch.zeros(4, 3, 16, 16))
    assert mixer.last_indices.tolist() == [1, 3] and mixer.last_labels.tolist() == [2, 1]
    again, _ = _mixer(const_generator, 0.5).apply(x, y, params)
    torch.testing.assert_close(again, xo)
    soft = torch.nn.functional.one_hot(y, 3).float()
    _, ys = mixer.apply(x, soft, params)
    assert ys.argmax(1).tolist() == [0, 2, 2, 1] and float(ys.sum()) == 4.0
    empty = {"idx": torch.empty(0, dtype=torch.int64), "classes": torch.empty(0, dtype=torch.int64),
             "seed": None}
    assert mixer.apply(x, y, empty)[0] is x


def test_make_params_then_apply_equals_call(tiny_generator):
    x, y = torch.rand(8, 3, 16, 16), torch.randint(0, 3, (8,))
    drawn = _mixer(tiny_generator, 0.5, seed=4)
    params = drawn.make_params(x, y)
    assert params["idx"].tolist() == sorted(params["idx"].tolist()) and len(params["idx"]) == 4
    assert torch.equal(params["classes"], y[params["idx"]])
    xo, yo = drawn.apply(x, y, params)
    xc, yc = _mixer(tiny_generator, 0.5, seed=4)(x, y)
    torch.testing.assert_close(xo, xc)
    assert torch.equal(yo, yc)
    assert _mixer(tiny_generator, 0.1).make_params(x[:2], y[:2])["seed"] is None  # k = 0


def test_apply_refuses_mismatched_params(const_generator):
    params = {"idx": torch.tensor([0, 1]), "classes": torch.tensor([1]), "seed": 0}
    with pytest.raises(GanaugConfigError, match=r"2 positions but 1 classes"):
        _mixer(const_generator).apply(torch.zeros(2, 3, 8, 8), torch.tensor([0, 1]), params)


def test_bad_truncation_is_refused_when_set(const_generator):
    mixer = _mixer(const_generator)
    assert mixer.truncation == 1.0
    with pytest.raises(GanaugConfigError, match=r"truncation must be a finite number in \(0, 1\]"):
        mixer.truncation = 0.0
    assert mixer.truncation == 1.0
    mixer.truncation = 0.7
    assert mixer.truncation == 0.7


# -- class identity by name ------------------------------------------------------------------
NATURAL = [f"c{i}" for i in range(1, 12)]  # timm's reader: c1, c2, ..., c10, c11
PLAIN = sorted(NATURAL)  # torchvision and ganaug: c1, c10, c11, c2, ...


def _names_of_pixels(x, classes, mean=None, std=None):
    """Decode a ClassConstNet image per row: float [0, 1] (or normalised) or uint8."""
    v = x.float().mean(dim=(1, 2, 3)) if x.dtype != torch.uint8 else x.float().mean(dim=(1, 2, 3)) / 255
    if mean is not None:
        v = x.float()[:, 0].mean(dim=(1, 2)) * std[0] + mean[0]
    return [classes[round(float(c) * (len(classes) - 1))] for c in v]


@pytest.fixture
def plain_generator():
    from conftest import ClassConstNet

    from ganaug.generator import Generator
    return Generator(ClassConstNet(num_classes=len(PLAIN)), classes=PLAIN)


@pytest.mark.parametrize("dtype", [torch.float32, torch.uint8])
def test_natural_sort_labels_get_their_own_class(plain_generator, dtype):
    class_to_idx = {name: i for i, name in enumerate(NATURAL)}
    y = torch.arange(200) % 11  # the dataset's labels (natural order)
    x = torch.full((200, 3, 16, 16), 0.05) if dtype == torch.float32 else torch.full(
        (200, 3, 16, 16), 7, dtype=torch.uint8)
    mixer = _mixer(plain_generator, 1.0, classes=class_to_idx, seed=0)
    xo, yo = mixer(x, y)
    assert torch.equal(yo, y)
    assert _names_of_pixels(xo, PLAIN) == [NATURAL[i] for i in y.tolist()]
    by_index = _mixer(plain_generator, 1.0, seed=0)(x, y)[0]  # classes="generator": by index
    wrong = sum(a != NATURAL[i] for a, i in zip(_names_of_pixels(by_index, PLAIN), y.tolist()))
    assert wrong == 181  # what the names prevent (only label 0, c1, agrees)
    with pytest.raises(GanaugConfigError, match=r"does not know which class each label is"):
        BatchMixer(plain_generator, 1.0, seed=0)  # never by index silently
    same = _mixer(plain_generator, 1.0, classes=NATURAL, seed=0)(x, y)[0]
    assert torch.equal(same, xo)


def test_a_folder_with_only_some_classes(const_generator):
    mixer = _mixer(const_generator, 0.5, classes={"c": 0, "a": 1}, seed=1)
    x, y = torch.full((40, 3, 16, 16), 0.3), torch.arange(40) % 2
    xo, yo = mixer(x, y)
    idx = mixer.last_indices
    assert len(idx) == 20 and torch.equal(yo, y)
    assert _names_of_pixels(xo[idx], ["a", "b", "c"]) == [["c", "a"][i] for i in y[idx].tolist()]
    uniform = _mixer(const_generator, 1.0, classes={"c": 0, "a": 1}, label_weights="uniform",
                         seed=0)
    xu, yu = uniform(x, y)
    assert set(yu.tolist()) == {0, 1}  # never label 2, which the folder does not have
    assert _names_of_pixels(xu, ["a", "b", "c"]) == [["c", "a"][i] for i in yu.tolist()]
    only_a = _mixer(const_generator, 1.0, classes={"c": 0, "a": 1}, label_weights={"a": 1},
                        seed=0)(x, y)
    assert only_a[1].tolist() == [1] * 40 and _names_of_pixels(only_a[0], "abc") == ["a"] * 40
    soft = torch.nn.functional.one_hot(y, 2).float()
    xs, ys = _mixer(const_generator, 1.0, classes={"c": 0, "a": 1}, seed=0)(x, soft)
    assert torch.equal(ys, soft) and _names_of_pixels(xs, "abc") == [["c", "a"][i] for i in y]


@pytest.mark.parametrize("kwargs,y,match", [
    ({"classes": {"a": 0, "zebra": 1}}, None,
     (r"classes= has classes the generator does not know: zebra\. The generator's classes "
      r"are: a, b, c \(not in classes=: b, c\)")),
    ({"classes": {"c": 0, "a": 1}}, torch.tensor([0, 2]),
     r"label 2 names no class of classes= \(\{'c': 0, 'a': 1\}\)"),
    ({"classes": {"c": 0, "a": 1}, "label_weights": {"b": 1}}, None,
     r"Unknown class 'b' in label_weights"),
    ({"classes": {"c": 0, "a": 2}, "label_weights": {1: 1}}, None,
     r"label_weights takes class names as keys, got 1"),
    ({"classes": {"c": 0, "a": 1}, "num_classes": 1}, None,
     r"num_classes=1 is smaller than the 2 labels of classes="),
    ({"classes": None}, None, (r"BatchMixer does not know which class each label is.*"
                              r"classes='generator'.*\(a, b, c\)")),
    ({"classes": 3}, None, r"classes= must be the dataset's class names in label order"),
])
def test_class_identity_errors(const_generator, kwargs, y, match):
    with pytest.raises(GanaugDataError if y is not None or "zebra" in str(kwargs) else
                       GanaugConfigError, match=match):
        _mixer(const_generator, 1.0, **kwargs)(torch.zeros(2, 3, 8, 8), y)


# -- value range -----------------------------------------------------------------------------
@pytest.mark.parametrize("x,match", [
    ((torch.rand(4, 3, 8, 8) - 0.485) / 0.229, r"spans \[-2\.\d+, 2\.\d+\].*mean=\.\.\., std=\.\.\."),
    (torch.rand(4, 3, 8, 8) * 255, r"x / 255 for 0-255 floats"),
    (torch.full((4, 3, 8, 8), float("nan")), r"spans \[nan, nan\]"),
])
def test_a_normalised_batch_without_mean_std_is_refused(const_generator, x, match):
    mixer = _mixer(const_generator, 0.5)
    with pytest.raises(GanaugDataError, match=match):
        mixer(x, torch.tensor([0, 1, 2, 0]))
    with pytest.raises(GanaugDataError, match=match):
        mixer.make_params(x, torch.tensor([0, 1, 2, 0]))


def test_slight_overshoot_and_given_stats_pass(const_generator):
    x = torch.rand(4, 3, 8, 8) * 1.1 - 0.05  # bicubic resize overshoot of a [0, 1] batch
    assert _mixer(const_generator, 0.5, seed=0)(x, torch.tensor([0, 1, 2, 0]))[0].shape == x.shape
    normed = (torch.rand(4, 3, 8, 8) - 0.5) / 0.25
    xo, _ = _mixer(const_generator, 1.0, mean=[0.5], std=[0.25], seed=0)(
        normed, torch.tensor([0, 1, 2, 0]))
    assert xo[:, 0, 0, 0].tolist() == pytest.approx([-2.0, 0.0, 2.0, -2.0])


def test_prefetcher_scale_stats_are_read_as_0_255(const_generator):
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1) * 255  # timm's PrefetchLoader.mean
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1) * 255
    a = _mixer(const_generator, 1.0, mean=mean, std=std, seed=0)
    b = _mixer(const_generator, 1.0, mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225],
                   seed=0)
    torch.testing.assert_close(a.mean, b.mean) and torch.testing.assert_close(a.std, b.std)
    with pytest.raises(GanaugConfigError, match=r"same number \(>= 1\) of finite values"):
        _mixer(const_generator, mean=[0.5, 0.5], std=[0.5])
    with pytest.raises(GanaugConfigError, match=r"std must be > 0"):
        _mixer(const_generator, mean=[0.5], std=[0.0])


def _image_folder(root, names, per_class=2, value=7):
    import PIL.Image

    for name in names:
        (root / name).mkdir(parents=True)
        for j in range(per_class):
            PIL.Image.new("RGB", (16, 16), (value,) * 3).save(root / name / f"{j}.png")
    return root


def test_timm_prefetch_loader_on_cpu(tmp_path):
    """create_loader(use_prefetcher=True) normalises with 0-255 stats; timm sorts naturally."""
    from conftest import ClassConstNet
    from timm.data import create_dataset, create_loader

    from ganaug.generator import Generator

    names = ["c1", "c2", "c10"]  # timm's order; the generator's is plain: c1, c10, c2
    gen = Generator(ClassConstNet(num_classes=3), classes=sorted(names))
    ds = create_dataset("", root=str(_image_folder(tmp_path / "data", names, per_class=4)))
    assert ds.reader.class_to_idx == {"c1": 0, "c2": 1, "c10": 2}
    loader = create_loader(ds, input_size=(3, 16, 16), batch_size=12, use_prefetcher=True,
                           device=torch.device("cpu"), crop_pct=1.0)
    mixer = BatchMixer.for_loader(gen, loader, 0.5, seed=0)
    assert mixer.class_map.mapping == ds.reader.class_to_idx
    for x, y in loader:
        xo, yo = mixer(x, y)
        idx = mixer.last_indices
        assert len(idx) == 6 and torch.equal(yo, y)
        mean, std = mixer.mean.tolist(), mixer.std.tolist()
        assert _names_of_pixels(xo[idx], sorted(names), mean, std) == [names[i] for i in y[idx]]
        kept = [i for i in range(12) if i not in idx.tolist()]
        torch.testing.assert_close(xo[kept], x[kept])
    with pytest.raises(GanaugDataError, match=r"spans"):
        _mixer(gen, 0.5, classes=ds.reader.class_to_idx)(x, y)


# -- torchvision v2 batch transform, collate_fn, workers --------------------------------------
def test_v2_compose_random_choice_tuple_and_dict(const_generator):
    from torchvision import tv_tensors
    from torchvision.transforms import v2

    x, y = torch.full((8, 3, 16, 16), 0.3), torch.arange(8) % 3
    mixer = _mixer(const_generator, 0.5, seed=0)
    _, yo = v2.Compose([mixer])(x, y)
    assert len(mixer.last_indices) == 4 and torch.equal(yo, y)
    out = v2.RandomChoice([mixer, mixer])({"image": x, "label": y, "id": 5})
    assert set(out) == {"image", "label", "id"} and out["id"] == 5
    assert _names_of_pixels(out["image"][mixer.last_indices], "abc") == [
        "abc"[i] for i in y[mixer.last_indices]]
    pair = mixer((x, y))
    assert isinstance(pair, tuple) and mixer([x, y]).__class__ is list
    img = tv_tensors.Image(x)
    xi, _ = v2.Compose([mixer, v2.CutMix(num_classes=3)])(img, y)
    assert isinstance(xi, tv_tensors.Image) and xi.shape == x.shape
    with pytest.raises(GanaugDataError, match=r"cannot find the labels in a dict batch"):
        mixer({"image": x, "cls": y})
    with pytest.raises(GanaugDataError, match=r"takes \(images, labels\)"):
        mixer(x)


class _ConstSet(torch.utils.data.Dataset):
    def __len__(self):
        return 64

    def __getitem__(self, i):
        return torch.full((3, 8, 8), 7, dtype=torch.uint8), i % 3


def _worker_positions(mixer, seed, workers=2, by_hand=False):
    from torch.utils.data import default_collate

    collate = (lambda b: mixer(*default_collate(b))) if by_hand else mixer.collate
    loader = torch.utils.data.DataLoader(_ConstSet(), batch_size=8, num_workers=workers,
                                         collate_fn=collate,
                                         generator=torch.Generator().manual_seed(seed))
    out = []
    for x, y in loader:
        replaced = (x != 7).flatten(1).any(1)
        assert int(replaced.sum()) == 4
        assert _names_of_pixels(x[replaced], "abc") == ["abc"[i] for i in y[replaced]]
        out.append(replaced.nonzero().flatten().tolist())
    return out[0::2], out[1::2]  # batches of worker 0, of worker 1


@pytest.mark.parametrize("seed,by_hand", [(None, False), (3, False), (None, True)])
def test_collate_workers_draw_their_own_positions_reproducibly(const_generator, seed, by_hand):
    mixer = _mixer(const_generator, 0.5, seed=seed)
    w0, w1 = _worker_positions(mixer, 0, by_hand=by_hand)
    assert w0 != w1  # each worker its own stream (they were identical)
    assert (w0, w1) == _worker_positions(mixer, 0, by_hand=by_hand)  # a seeded DataLoader
    assert (w0, w1) != _worker_positions(mixer, 1, by_hand=by_hand)


def test_smoothed_and_mixed_targets_keep_their_mass(const_generator):
    from timm.data.mixup import mixup_target

    y = torch.tensor([0, 1, 2, 1])
    smooth = mixup_target(y, 3, lam=1.0, smoothing=0.3)  # off 0.1, on 0.8
    mixed = mixup_target(y, 3, lam=0.7, smoothing=0.3)
    mixer = _mixer(const_generator, 1.0, seed=0)
    for target in (smooth, mixed):
        xo, yo = mixer(torch.zeros(4, 3, 8, 8), target)
        torch.testing.assert_close(yo.sum(1), torch.ones(4))
        cls = target.argmax(1)
        torch.testing.assert_close(yo, mixup_target(cls, 3, lam=1.0, smoothing=0.3))
        assert _names_of_pixels(xo, "abc") == ["abc"[i] for i in cls]


@pytest.mark.parametrize("y,match", [
    # bool targets were read as classes 0/1 and a drawn class 2 was stored as True
    (torch.tensor([True, False]), r"Class-index targets must be integers, got torch\.bool"),
    (torch.tensor([[float("nan"), 0.0, 1.0], [1.0, 0.0, 0.0]]), r"finite and >= 0.*got values in \[nan"),
    (torch.tensor([[-1.0, 0.0, 0.0], [1.0, 0.0, 0.0]]), r"finite and >= 0.*-1"),
    (torch.tensor([[float("inf"), 0.0, 0.0], [1.0, 0.0, 0.0]]), r"finite and >= 0.*inf"),
])
def test_bool_and_non_finite_or_negative_soft_targets_are_refused(const_generator, y, match):
    # NaN/negative rows drew an arbitrary argmax class, and the replaced row came back NaN.
    with pytest.raises(GanaugDataError, match=match):
        _mixer(const_generator, 1.0, label_weights="uniform", seed=0)(torch.zeros(2, 3, 8, 8), y)


@pytest.mark.parametrize("params,match", [
    ({"idx": torch.tensor([9]), "classes": torch.tensor([0]), "seed": 1},
     r"positions must be distinct integers in 0\.\.3 \(the batch's rows\), got \[9\]"),
    ({"idx": torch.tensor([-1]), "classes": torch.tensor([0]), "seed": 1},
     r"positions must be distinct integers in 0\.\.3 \(the batch's rows\), got \[-1\]"),
    ({"idx": torch.tensor([1, 1]), "classes": torch.tensor([0, 2]), "seed": 1},
     r"positions must be distinct integers in 0\.\.3 \(the batch's rows\), got \[1, 1\]"),
    ({"idx": torch.tensor([1.7]), "classes": torch.tensor([0]), "seed": 1},
     r"integer tensors \(what make_params returns\), got torch\.float32"),
    ({"idx": torch.tensor([1])}, r"params must hold 'idx', 'classes' and 'seed'"),
    ({"idx": [1], "classes": [0], "seed": 3}, r"integer tensors \(what make_params returns\), got list"),
    ({"idx": torch.tensor([1]), "classes": torch.tensor([0]), "seed": None},
     r"params\['seed'\] must be an integer"),
    ({"idx": torch.tensor([1]), "classes": torch.tensor([0]), "seed": -3},
     r"params\['seed'\] must be an integer"),
])
def test_apply_refuses_params_it_did_not_draw(const_generator, params, match):
    # These raised IndexError/KeyError/AttributeError, or wrote two fakes at one position,
    # truncated 1.7 to 1, took -1 as the last row, or drew an unseeded (not reproducible) image.
    mixer = _mixer(const_generator, 1.0)
    with pytest.raises(GanaugConfigError, match=match):
        mixer.apply(torch.zeros(4, 3, 8, 8), torch.tensor([0, 1, 2, 0]), params)


@pytest.mark.parametrize("kwargs,match", [
    ({"device": "bogus"}, r"Unknown device 'bogus'"),
])
def test_switch_and_device_are_checked(const_generator, kwargs, match):
    # device="bogus" failed inside torch.device
    with pytest.raises(GanaugConfigError, match=match):
        _mixer(const_generator, **kwargs)


def test_the_enabled_switch_is_checked(const_generator):
    # enabled="no" was truthy (the mixer ran)
    mixer = _mixer(const_generator, 0.5)
    with pytest.raises(GanaugConfigError, match=r"enabled must be True or False, got 'no'"):
        mixer.enabled = "no"
    assert mixer.enabled is True


@pytest.mark.parametrize("x,y", [
    (torch.empty(2, 3, 8, 8, device="meta"), torch.tensor([0, 1])),
    (torch.empty(2, 3, 8, 8, dtype=torch.uint8, device="meta"), torch.tensor([0, 1])),
    (torch.zeros(2, 3, 8, 8), torch.tensor([0, 1], device="meta")),
], ids=["float", "uint8", "labels"])
def test_a_batch_without_values_is_refused(const_generator, x, y):
    # a meta-device batch (shape-only tracing, a model built on "meta") died in torch with
    # "Tensor.item() cannot be called on meta tensors"
    with pytest.raises(GanaugDataError, match=r"meta device.*no values"):
        _mixer(const_generator, 0.5, seed=0)(x, y)


@pytest.mark.parametrize("y", [[0, 1], (0, 1)], ids=["list", "tuple"])
def test_labels_that_are_not_a_tensor_name_the_fix(const_generator, y):
    with pytest.raises(GanaugDataError, match=r"got list|got tuple"):
        _mixer(const_generator, 0.5)(torch.zeros(2, 3, 8, 8), y)
    with pytest.raises(GanaugDataError, match=r"torch\.as_tensor\(labels\)"):
        _mixer(const_generator, 0.5)(torch.zeros(2, 3, 8, 8), y)


def _rank_draws(generator, monkeypatch, rank, world):
    """What a seeded mixer and a seeded SampleBank draw first in DDP rank ``rank`` of ``world``."""
    from ganaug.augment import SampleBank

    monkeypatch.setenv("RANK", str(rank))
    monkeypatch.setenv("WORLD_SIZE", str(world))
    params = _mixer(generator, 0.5, seed=0).make_params(
        torch.zeros(16, 3, 16, 16), torch.zeros(16, dtype=torch.long))
    unseeded = _mixer(generator, 0.5)  # seed=None: torch's RNG, seeded alike in every rank
    torch.manual_seed(0)
    return (params["idx"].tolist(), params["seed"],
            unseeded.make_params(torch.zeros(16, 3, 16, 16),
                                 torch.zeros(16, dtype=torch.long))["seed"],
            SampleBank(generator, seed=0, bank_size=2).draw(0))


def test_distributed_ranks_do_not_draw_the_same_fakes(tiny_generator, monkeypatch):
    # Every DDP rank (torchrun sets RANK and WORLD_SIZE) drew the same positions, noise and
    # bank images from the same seed: the global batch held each fake world_size times.
    rank0, rank1 = (_rank_draws(tiny_generator, monkeypatch, r, 2) for r in (0, 1))
    assert rank0[0] != rank1[0] and rank0[1] != rank1[1] and rank0[2] != rank1[2]
    assert not torch.equal(rank0[3], rank1[3])
    single = _rank_draws(tiny_generator, monkeypatch, 0, 1)  # one process: as before
    assert single[:3] == rank0[:3] and torch.equal(single[3], rank0[3])


@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.uint8])
def test_class_indices_in_a_column_are_refused_with_the_squeeze(const_generator, dtype):
    # A dataset returning torch.tensor([label]) collates to (B, 1) labels. They were taken for
    # soft targets ("Soft targets have 1 columns but num_classes=3; pass num_classes="), and
    # num_classes=1 is refused in turn: the message sent the user in a circle.
    mixer = _mixer(const_generator, 0.5)
    with pytest.raises(GanaugDataError, match=r"\(B, 1\) integer targets.*y\.squeeze\(1\)"):
        mixer(torch.zeros(2, 3, 8, 8), torch.tensor([[0], [2]], dtype=dtype))
    _x, y = mixer(torch.zeros(2, 3, 8, 8), torch.tensor([[0], [2]], dtype=dtype).squeeze(1))
    assert y.tolist() == [0, 2]


def test_a_mixer_from_a_path_pickles_as_the_path(model_path, tiny_generator):
    # collate_fn=mixer.collate under spawn pickles the mixer into every worker, every epoch:
    # given a path, it loaded the file when built and pickled all the weights
    import pickle

    weights = sum(v.numel() * 4 for v in tiny_generator.state_dict().values())
    mixer = _mixer(model_path, 0.5, seed=0)
    x, y = torch.rand(6, 3, 16, 16), torch.tensor([0, 1, 2, 2, 1, 0])
    params = mixer.make_params(x, y)
    expected = mixer.apply(x, y, params)
    blob = pickle.dumps(mixer)
    assert len(blob) < weights / 4
    twin = pickle.loads(blob)
    assert twin.generator.classes == ["a", "b", "c"]
    torch.testing.assert_close(twin.apply(x, y, params), expected)
    assert not torch.equal(expected[0], x) and len(params["idx"]) == 3
    live = _mixer(tiny_generator, 0.5)  # a live generator is pickled with its weights
    assert len(pickle.dumps(live)) > weights


# -- the synthetic mask where the batch was mixed in a worker -----------------------------------
def test_collate_with_mask_brings_each_batchs_mask_from_the_workers(const_generator):
    # collate_fn=mixer.collate in workers left last_synthetic_mask in the workers: the main
    # process read its own (empty, or stale from an earlier call there) mask for weighted_loss
    mixer = _mixer(const_generator, 0.5, seed=0)
    mixer(torch.full((8, 3, 8, 8), 7, dtype=torch.uint8), torch.arange(8) % 3)  # a stale mask
    stale = mixer.last_synthetic_mask.clone()
    loader = torch.utils.data.DataLoader(_ConstSet(), batch_size=8, num_workers=2,
                                         collate_fn=mixer.collate_with_mask,
                                         generator=torch.Generator().manual_seed(0))
    masks = []
    for x, _y, mask in loader:
        replaced = (x != 7).flatten(1).any(1)
        assert mask.dtype == torch.bool and torch.equal(mask, replaced)
        masks.append(mask)
    assert len(masks) == 8 and any(not torch.equal(m, stale) for m in masks)
    assert torch.equal(mixer.last_synthetic_mask, stale)  # the main process's own call


def test_collate_with_mask_keeps_a_dict_batch_a_dict(const_generator):
    class Dicts(_ConstSet):
        def __getitem__(self, i):
            x, y = super().__getitem__(i)
            return {"image": x, "label": y}

    mixer = _mixer(const_generator, 0.5, seed=0)
    batch = mixer.collate_with_mask([Dicts()[i] for i in range(6)])
    assert set(batch) == {"image", "label", "synthetic_mask"}
    assert torch.equal(batch["synthetic_mask"], (batch["image"] != 7).flatten(1).any(1))
    with pytest.raises(GanaugDataError, match=r"already has a 'synthetic_mask' key"):
        mixer.collate_with_mask([{**Dicts()[i], "synthetic_mask": 1} for i in range(2)])


def test_the_empty_mask_of_a_mixer_that_mixed_nothing_here_names_the_fix(const_generator):
    from ganaug.augment import weighted_loss

    mixer = _mixer(const_generator, 0.5, seed=0)
    assert mixer.last_synthetic_mask.shape == (0,)
    with pytest.raises(GanaugDataError,
                       match=r"synthetic_mask has 0 rows .* this process.*collate_with_mask"):
        weighted_loss(torch.zeros(4, 3), torch.arange(4) % 3, mixer.last_synthetic_mask)


# -- weighted_loss ---------------------------------------------------------------------------
def test_weighted_loss_matches_a_hand_computation():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.0, 1.0, 0.0], [1.0, 1.0, 3.0]],
                          requires_grad=True)

    def ce(row, target):
        lse = math.log(sum(math.exp(v) for v in row))
        return -sum(t * (v - lse) for v, t in zip(row, target))

    rows = logits.tolist()
    hard = [ce(r, [float(k == t) for k in range(3)]) for r, t in zip(rows, [0, 2, 2])]
    mask = torch.tensor([False, True, True])
    expected = (hard[0] + 0.1 * hard[1] + 0.1 * hard[2]) / 1.2
    got = weighted_loss(logits, torch.tensor([0, 2, 2]), mask, synthetic_weight=0.1)
    assert float(got.detach()) == pytest.approx(expected, rel=1e-6)
    default = (hard[0] + 0.3 * hard[1] + 0.3 * hard[2]) / 1.6  # the recipe's weight, 0.3
    assert float(weighted_loss(logits, torch.tensor([0, 2, 2]), mask).detach()) == pytest.approx(default)
    soft_t = [[1.0, 0.0, 0.0], [0.2, 0.5, 0.3], [0.0, 0.25, 0.75]]
    soft = [ce(r, t) for r, t in zip(rows, soft_t)]
    got = weighted_loss(logits, torch.tensor(soft_t), mask, synthetic_weight=0.5)
    assert float(got.detach()) == pytest.approx((soft[0] + 0.5 * soft[1] + 0.5 * soft[2]) / 2.0, rel=1e-6)
    assert float(weighted_loss(logits, torch.tensor(soft_t)).detach()) == pytest.approx(sum(soft) / 3)
    got.backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0
    with pytest.raises(GanaugConfigError, match=r"Every row weighs 0 \(all synthetic with "
                                                r"synthetic_weight=0\)"):
        weighted_loss(logits, torch.tensor([0, 1, 2]), torch.ones(3, dtype=torch.bool),
                      synthetic_weight=0.0)
    with pytest.raises(GanaugDataError, match=r"synthetic_mask must be \(B,\) bool, True at "
                                              r"synthetic rows, with B=3; got torch.bool \(2,\)"):
        weighted_loss(logits, torch.tensor([0, 1, 2]), torch.ones(2, dtype=torch.bool))
    with pytest.raises(GanaugDataError, match=r"Soft targets \(3, 2\) do not match the logits"):
        weighted_loss(logits, torch.zeros(3, 2))
    with pytest.raises(GanaugDataError, match=r"Class-index targets must be integers in 0\.\.2, "
                                              r"got torch.int64 0\.\.3"):
        weighted_loss(logits, torch.tensor([0, 3, 1]))
    with pytest.raises(GanaugConfigError, match=r"synthetic_weight must be a finite number"):
        weighted_loss(logits, torch.tensor([0, 1, 2]), mask, synthetic_weight=-1)
    with pytest.raises(GanaugDataError, match=r"Soft target rows must sum to 1 \(probabilities\); "
                                              r"got sums in \[1\.5, 1\.5\]"):
        weighted_loss(logits, torch.full((3, 3), 0.5))


@pytest.mark.parametrize("args,match", [
    ((torch.zeros(0, 3), torch.zeros(0, dtype=torch.long)), r"empty batch"),  # was NaN
    ((torch.zeros(0, 3), torch.zeros(0)), r"empty batch \(B=0\)"),  # min() of an empty tensor
    ((torch.zeros(2, 3), torch.full((2, 3), float("nan"))), r"finite and >= 0"),  # was NaN
    ((torch.zeros(2, 3), torch.tensor([True, False])), r"got torch\.bool"),  # read as 1, 0
    ((torch.zeros(2, 3), [0, 1]), r"tensors, got Tensor and list"),  # AttributeError
    ((torch.zeros(2, 3, dtype=torch.long), torch.tensor([0, 1])),
     r"takes float logits \(the classifier's outputs\), got torch.int64"),  # log_softmax of Long
    ((torch.zeros(4, 3), torch.zeros(4, dtype=torch.long), torch.ones(2, 2, dtype=torch.bool)),
     r"synthetic_mask must be \(B,\) bool"),  # reshaped to 4 rows silently
    ((torch.zeros(2, 3), torch.zeros(2, dtype=torch.long), torch.tensor([0.5, 0.0])),
     r"synthetic_mask must be \(B,\) bool"),  # 0.5 was read as True
])
def test_weighted_loss_refuses_what_would_give_nan_or_a_wrong_weight(args, match):
    with pytest.raises(GanaugDataError, match=match):
        weighted_loss(*args)


def test_weighted_loss_takes_int_masks_and_int32_targets():
    logits = torch.tensor([[2.0, 0.0], [0.0, 2.0]])
    loss = weighted_loss(logits, torch.tensor([0, 0], dtype=torch.int32), torch.tensor([0, 1]),
                         synthetic_weight=0.5)
    ce = torch.nn.functional.cross_entropy(logits, torch.tensor([0, 0]), reduction="none")
    assert float(loss) == pytest.approx(float((ce[0] + 0.5 * ce[1]) / 1.5))
