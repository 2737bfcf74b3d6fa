"""Teacher-guided synthesis: soft targets, input conventions, filters, the mask and weighted_loss."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ganaug.augment import BatchMixer, MixedDataset, SyntheticDataset, Teacher, weighted_loss
from ganaug.errors import GanaugConfigError, GanaugDataError

W, B = [-4.0, 0.0, 4.0], [2.0, 0.0, -2.0]
# MeanLinear's logits of const_generator's classes a, b, c (mean pixel 0, 0.5, 1 in [0, 1]).
LOGITS = {0: [2.0, 0.0, -2.0], 1: [0.0, 0.0, 0.0], 2: [-2.0, 0.0, 2.0]}


class MeanLinear(torch.nn.Module):
    """A fixed linear teacher: ``logits = mean pixel * w + b``; records every input."""

    def __init__(self, w=W, b=B):
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor(w))
        self.b = torch.nn.Parameter(torch.tensor(b))
        self.seen: list[torch.Tensor] = []

    def forward(self, x):
        self.seen.append(x.clone())
        return x.float().mean((1, 2, 3))[:, None] * self.w + self.b


def _soft(logits, intended, temperature=1.0, weight=1.0):
    """The documented target, by hand: (1 - a) * onehot + a * softmax(logits / T)."""
    e = [math.exp(v / temperature) for v in logits]
    return [(1 - weight) * (k == intended) + weight * v / sum(e) for k, v in enumerate(e)]


def _unit(generator_class):
    return [0.0, 0.5, 1.0][generator_class]


def _u8_logits(generator_class):
    """MeanLinear's logits of a class's uint8 image (b is 128, i.e. 0.50196 in [0, 1])."""
    return [[0, 128, 255][generator_class] / 255 * w + b for w, b in zip(W, B)]


# -- Teacher ---------------------------------------------------------------------------------
@pytest.mark.parametrize("temperature,weight", [(1.0, 1.0), (2.0, 0.25), (0.5, 0.0)])
def test_soft_targets_blend_the_intended_label_with_the_teacher(temperature, weight):
    teacher = Teacher(MeanLinear(), num_classes=3, input="unit", temperature=temperature,
                      weight=weight)
    images = torch.stack([torch.full((3, 4, 4), _unit(c)) for c in (0, 1, 2, 2)])
    targets, keep = teacher(images, torch.tensor([0, 1, 2, 0]))
    expected = [_soft(LOGITS[c], i, temperature, weight) for c, i in ((0, 0), (1, 1), (2, 2),
                                                                      (2, 0))]
    torch.testing.assert_close(targets, torch.tensor(expected), rtol=0, atol=1e-6)
    assert keep.tolist() == [True] * 4 and targets.dtype == torch.float32


def test_input_conventions_are_converted_exactly():
    x8 = torch.tensor([0, 51, 128, 255], dtype=torch.uint8).view(1, 1, 2, 2).expand(2, 3, 2, 2)
    unit = x8.float() / 255
    for given in (x8, unit):
        seen = {}
        for name, kwargs in [("uint8", {}), ("unit", {}),
                             ("normalized", {"mean": (0.5, 0.4, 0.3), "std": (0.25, 0.5, 0.8)})]:
            model = MeanLinear()
            Teacher(model, num_classes=3, input=name, **kwargs).logits(given)
            seen[name] = model.seen[0]
        assert seen["uint8"].dtype == torch.uint8 and torch.equal(seen["uint8"], x8)
        torch.testing.assert_close(seen["unit"], unit, rtol=0, atol=1e-7)
        expected = (unit - torch.tensor([0.5, 0.4, 0.3]).view(3, 1, 1)) / torch.tensor(
            [0.25, 0.5, 0.8]).view(3, 1, 1)
        torch.testing.assert_close(seen["normalized"], expected, rtol=0, atol=1e-6)
    # 0-255 statistics (timm's PrefetchLoader) are read on the 0-255 scale
    model = MeanLinear()
    Teacher(model, num_classes=3, input="normalized", mean=127.5, std=127.5).logits(x8)
    torch.testing.assert_close(model.seen[0], unit * 2 - 1, rtol=0, atol=1e-6)


def test_stated_statistics_timm_pretrained_cfg_and_ganaug_classifiers():
    x8 = torch.full((1, 3, 4, 4), 255, dtype=torch.uint8)
    timm_like = MeanLinear()
    timm_like.pretrained_cfg = {"mean": (0.5, 0.5, 0.5), "std": (0.25, 0.25, 0.25)}
    Teacher(timm_like, num_classes=3, input="normalized").logits(x8)
    torch.testing.assert_close(timm_like.seen[0], torch.full((1, 3, 4, 4), 2.0))
    ganaug_like = MeanLinear()  # what ganaug.evaluation.create_classifier records
    ganaug_like.ganaug_config = {"in_chans": 1, "image_size": 2}
    Teacher(ganaug_like, num_classes=3).logits(x8)
    luma = 0.2989 + 0.587 + 0.114  # RGB -> grey, then [0, 1] -> [-1, 1] at its size
    torch.testing.assert_close(ganaug_like.seen[0], torch.full((1, 1, 2, 2), 2 * luma - 1))


def test_a_ganaug_classifier_sees_what_ganaug_evaluation_feeds_it(tmp_path):
    from ganaug.evaluation.classifier import (
        create_classifier,
        load_classifier,
        save_classifier,
        to_input,
    )

    model = create_classifier("resnet10t", num_classes=3, in_chans=1, image_size=8, seed=0)
    save_classifier(model, tmp_path / "clf.safetensors")
    loaded = load_classifier(tmp_path / "clf.safetensors")[0]
    images = torch.randint(0, 256, (4, 3, 16, 16), dtype=torch.uint8)
    with torch.no_grad():
        expected = loaded(to_input(loaded, images))
    torch.testing.assert_close(Teacher(loaded, num_classes=3).logits(images), expected)


class ConvTeacher(torch.nn.Module):
    """A CNN-like teacher: a 1x1 ``Conv2d(channels, 1)`` stem averaging the channels, then
    MeanLinear; records the stem's input."""

    def __init__(self, channels):
        super().__init__()
        self.stem = torch.nn.Conv2d(channels, 1, 1, bias=False)
        with torch.no_grad():
            self.stem.weight.fill_(1 / channels)
        self.head = MeanLinear()
        self.seen: list[torch.Tensor] = []

    def forward(self, x):
        self.seen.append(x.clone())
        return self.head(self.stem(x.float()))


def _grey_generator():
    from conftest import ClassConstNet

    from ganaug.generator import Generator

    return Generator(ClassConstNet(channels=1), classes=["a", "b", "c"])


@pytest.mark.parametrize("input", ["uint8", "unit"])
def test_a_grey_generator_feeds_an_rgb_teacher_repeated_grey(const_generator, input):
    # what torchvision's Grayscale(num_output_channels=3) gives: the grey value in R, G and B
    rgb, grey = ConvTeacher(3), ConvTeacher(3)
    expected = SyntheticDataset(const_generator, n_per_class=2, teacher=rgb, teacher_input=input,
                                seed=0)
    got = SyntheticDataset(_grey_generator(), n_per_class=2, teacher=grey, teacher_input=input,
                           seed=0)
    for i in range(len(got)):
        torch.testing.assert_close(got[i][1], expected[i][1])
    seen = torch.cat(grey.seen)
    assert seen.shape == (6, 3, 16, 16) and torch.equal(seen, seen[:, :1].expand(-1, 3, -1, -1))
    assert torch.equal(seen, torch.cat(rgb.seen))


def test_an_rgb_generator_feeds_a_grey_teacher_its_luma(const_generator):
    teacher = ConvTeacher(1)
    ds = SyntheticDataset(const_generator, n_per_class=1, teacher=teacher, teacher_input="uint8")
    ds.generate()
    seen = torch.cat(teacher.seen)
    assert seen.shape == (3, 1, 16, 16) and seen.dtype == torch.uint8
    from torchvision.transforms.v2.functional import rgb_to_grayscale

    rgb = torch.stack([ds.image(i) for i in range(3)])  # torchvision's Grayscale(): 255 -> 254
    assert torch.equal(seen, rgb_to_grayscale(rgb)) and seen[:, 0, 0, 0].tolist() == [0, 127, 254]


def test_a_teacher_of_unknown_channels_that_fails_on_grey_images_is_refused_with_the_fix():
    def rgb_only(x):  # a plain callable: its channels cannot be read off a Conv2d
        return torch.nn.functional.conv2d(x, torch.ones(3, 3, 1, 1)).mean((2, 3))

    ds = SyntheticDataset(_grey_generator(), n_per_class=1, teacher=rgb_only, teacher_input="unit")
    with pytest.raises(GanaugConfigError, match=r"(?s)teacher failed on its first batch of "
                                                r"\(1, 1, 16, 16\) .*1-channel.*Grayscale\("
                                                r"num_output_channels=3\), teacher\)"):
        ds[0]


def test_a_teacher_taking_neither_1_nor_3_channels_is_refused(const_generator):
    ds = SyntheticDataset(const_generator, n_per_class=1, teacher=ConvTeacher(4),
                          teacher_input="unit")
    with pytest.raises(GanaugConfigError, match=r"3-channel images but the teacher takes 4 "
                                                r"channels \(its first Conv2d\)"):
        ds[0]


@pytest.mark.parametrize("kwargs,match", [
    ({}, r"teacher_input=None: say what the teacher takes, one of 'uint8', 'unit', 'normalized'"),
    ({"input": "normalised"}, r"teacher_input='normalised'.*Did you mean 'normalized'"),
    ({"input": "normalized"}, r"teacher_input='normalized' needs the teacher's statistics"),
    ({"input": "unit", "mean": 0.5, "std": 0.5}, (r"teacher_mean/teacher_std are for "
                                                 r"teacher_input='normalized', not 'unit'")),
    ({"input": "unit", "mean": 0.5}, r"Pass both teacher_mean= and teacher_std="),
    ({"input": "unit", "temperature": 0}, r"temperature must be a finite number in \(0, inf\)"),
    ({"input": "unit", "weight": 1.5}, r"teacher_weight must be a finite number in \[0, 1\]"),
    ({"input": "unit", "drop_top": 1.0}, r"drop_top must be in \[0, 1\).*got 1\.0"),
    ({"input": "unit", "min_confidence": -1}, r"min_confidence must be a finite number"),
])
def test_teacher_settings_are_refused_with_the_fix(kwargs, match):
    with pytest.raises(GanaugConfigError, match=match):
        Teacher(MeanLinear(), num_classes=3, **kwargs)


def test_teacher_settings_without_a_teacher_and_non_finite_logits_are_refused(const_generator):
    with pytest.raises(GanaugConfigError, match=r"min_confidence=, drop_top= configure a teacher, "
                                                r"but teacher=None"):
        BatchMixer(const_generator, 0.5, min_confidence=0.5, drop_top=0.1)
    with pytest.raises(GanaugConfigError, match=r"teacher_input= configure a teacher"):
        SyntheticDataset(const_generator, n_per_class=1, teacher_input="unit")
    with pytest.raises(GanaugConfigError, match=r"temperature= configure a teacher"):
        MixedDataset(_real(), const_generator, ratio=0.5, temperature=2.0)
    nan = Teacher(MeanLinear(b=[float("nan"), 0.0, 0.0]), num_classes=3, input="unit")
    with pytest.raises(GanaugDataError, match=r"The teacher returned NaN or infinite logits"):
        nan.logits(torch.zeros(1, 3, 4, 4))


def test_a_path_is_refused_with_how_to_load_it(tmp_path):
    with pytest.raises(GanaugConfigError, match=r"is a path; pass the classifier itself.*"
                                                r"load_classifier\(path\)\[0\]"):
        Teacher(str(tmp_path / "clf.safetensors"), num_classes=3, input="unit")


def test_a_teacher_with_the_wrong_class_count_is_refused(const_generator):
    four = MeanLinear(w=[1.0] * 4, b=[0.0] * 4)
    with pytest.raises(GanaugConfigError, match=r"The teacher returns 4 logits but the labels "
                                                r"have 3 classes"):
        Teacher(four, num_classes=3, input="unit").logits(torch.zeros(2, 3, 4, 4))
    mixer = BatchMixer(const_generator, 0.5, seed=0, teacher=four, teacher_input="unit")
    with pytest.raises(GanaugConfigError, match=r"returns 4 logits but the labels have 3"):
        mixer(torch.rand(4, 3, 16, 16), torch.tensor([0, 1, 2, 0]))
    ds = SyntheticDataset(const_generator, n_per_class=2, teacher=four, teacher_input="unit")
    with pytest.raises(GanaugConfigError, match=r"returns 4 logits but the labels have 3"):
        ds[0]
    with pytest.raises(GanaugConfigError, match=r"must map \(N, C, H, W\) images to \(N, K\)"):
        Teacher(lambda x: x.mean(1), num_classes=3, input="unit").logits(torch.zeros(2, 3, 4, 4))


def test_min_confidence_and_drop_top_with_known_teacher_outputs():
    logits = torch.log(torch.tensor([[0.9, 0.1], [0.5, 0.5], [0.2, 0.8], [0.7, 0.3],
                                     [0.6, 0.4], [0.95, 0.05], [0.3, 0.7], [0.7, 0.3]]))
    intended = torch.zeros(8, dtype=torch.int64)
    teacher = Teacher(MeanLinear(w=[0.0, 0.0], b=[0.0, 0.0]), num_classes=2, input="unit",
                      min_confidence=0.6)
    assert teacher.keep(logits, intended).tolist() == [True, False, False, True, True, True,
                                                       False, True]
    # drop_top 0.25 of 8: the two of highest loss -log p(class 0): p 0.2 and 0.3
    teacher = Teacher(MeanLinear(w=[0.0, 0.0], b=[0.0, 0.0]), num_classes=2, input="unit",
                      drop_top=0.25)
    assert teacher.keep(logits, intended).tolist() == [True, True, False, True, True, True,
                                                       False, True]
    # ties: floor(0.2 * 3 + 0.5) = 1 dropped; the earlier of the two equal losses goes
    tied = torch.log(torch.tensor([[0.9, 0.1], [0.4, 0.6], [0.4, 0.6]]))
    teacher.drop_top = 0.2
    assert teacher.keep(tied, intended[:3]).tolist() == [True, False, True]


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
    soft_t = [[1.0, 0.0, 0.0], [0.2, 0.5, 0.3], [0.0, 0.25, 0.75]]
    soft = [ce(r, t) for r, t in zip(rows, soft_t)]
    got = weighted_loss(logits, torch.tensor(soft_t), mask, synthetic_weight=0.5)
    assert float(got.detach()) == pytest.approx((soft[0] + 0.5 * soft[1] + 0.5 * soft[2]) / 2.0, rel=1e-6)
    assert float(weighted_loss(logits, torch.tensor(soft_t)).detach()) == pytest.approx(sum(soft) / 3)
    got.backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0
    with pytest.raises(GanaugDataError, match=r"Every row is synthetic and synthetic_weight=0"):
        weighted_loss(logits, torch.tensor([0, 1, 2]), torch.ones(3, dtype=torch.bool),
                      synthetic_weight=0.0)
    with pytest.raises(GanaugDataError, match=r"synthetic_mask has 2 rows for a batch of 3"):
        weighted_loss(logits, torch.tensor([0, 1, 2]), torch.ones(2, dtype=torch.bool))
    with pytest.raises(GanaugDataError, match=r"Soft targets \(3, 2\) do not match the logits"):
        weighted_loss(logits, torch.zeros(3, 2))
    with pytest.raises(GanaugDataError, match=r"Class-index targets must be integers in 0\.\.2, "
                                              r"got torch.int64 0\.\.3"):
        weighted_loss(logits, torch.tensor([0, 3, 1]))
    with pytest.raises(GanaugConfigError, match=r"synthetic_weight must be a finite number"):
        weighted_loss(logits, torch.tensor([0, 1, 2]), mask, synthetic_weight=-1)


# -- BatchMixer ------------------------------------------------------------------------------
def test_mixer_with_a_teacher_gives_soft_rows_one_hot_rows_and_the_mask(const_generator):
    x = torch.rand(6, 3, 16, 16)
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    mixer = BatchMixer(const_generator, 0.5, seed=3, teacher=MeanLinear(), teacher_input="unit",
                       temperature=2.0, teacher_weight=0.5)
    xo, yo = mixer(x, y)
    idx = mixer.last_indices.tolist()
    assert len(idx) == 3 and yo.shape == (6, 3) and yo.dtype == torch.float32
    assert mixer.last_synthetic_mask.tolist() == [i in idx for i in range(6)]
    for i in range(6):
        if i in idx:
            want = _soft(LOGITS[int(y[i])], int(y[i]), 2.0, 0.5)
            torch.testing.assert_close(xo[i], torch.full((3, 16, 16), _unit(int(y[i]))))
        else:
            want = [float(k == y[i]) for k in range(3)]
            torch.testing.assert_close(xo[i], x[i])
        torch.testing.assert_close(yo[i], torch.tensor(want), rtol=0, atol=1e-6)
    again = BatchMixer(const_generator, 0.5, seed=3, teacher=MeanLinear(), teacher_input="unit",
                       temperature=2.0, teacher_weight=0.5)
    xa, ya = again(x, y)
    assert torch.equal(xa, xo) and torch.equal(ya, yo)  # seeded: the same batch
    mixer.enabled = False
    xd, yd = mixer(x, y)
    assert torch.equal(xd, x) and torch.equal(yd, torch.eye(3)[y])  # still uniform, float
    assert mixer.last_synthetic_mask.tolist() == [False] * 6


def test_mixer_teacher_rejections_keep_the_real_sample(const_generator):
    x = torch.full((4, 3, 16, 16), 0.3)
    y = torch.tensor([0, 1, 2, 1])
    # p(intended) of a: 0.867, b: 1/3, c: 0.867 -> the b candidates are rejected
    mixer = BatchMixer(const_generator, 1.0, seed=0, teacher=MeanLinear(), teacher_input="unit",
                       min_confidence=0.5)
    xo, yo = mixer(x, y)
    assert mixer.last_indices.tolist() == [0, 2]
    assert mixer.last_synthetic_mask.tolist() == [True, False, True, False]
    assert torch.equal(xo[1], x[1]) and torch.equal(yo[1], torch.tensor([0.0, 1.0, 0.0]))
    torch.testing.assert_close(yo[2], torch.tensor(_soft(LOGITS[2], 2)))
    loss = weighted_loss(torch.zeros(4, 3), yo, mixer.last_synthetic_mask)
    assert float(loss) == pytest.approx(math.log(3))


def test_mixer_teacher_of_a_normalised_batch_uses_the_batch_stats(const_generator):
    mean, std = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)
    teacher = MeanLinear()
    mixer = BatchMixer(const_generator, 1.0, seed=0, mean=mean, std=std, teacher=teacher,
                       teacher_input="normalized")
    xo, _yo = mixer(torch.zeros(2, 3, 16, 16), torch.tensor([2, 0]))
    torch.testing.assert_close(teacher.seen[0][:, 0, 0, 0], torch.tensor([2.0, -2.0]))
    torch.testing.assert_close(xo[:, 0, 0, 0], torch.tensor([2.0, -2.0]))  # batch convention
    uint8 = MeanLinear()
    BatchMixer(const_generator, 1.0, seed=0, teacher=uint8, teacher_input="unit")(
        torch.zeros(2, 3, 16, 16, dtype=torch.uint8), torch.tensor([1, 2]))
    torch.testing.assert_close(uint8.seen[0][:, 0, 0, 0], torch.tensor([128 / 255, 1.0]))


def test_mixer_teacher_replaces_soft_input_rows(const_generator):
    y = torch.tensor([[0.9, 0.05, 0.05], [0.05, 0.05, 0.9]])
    mixer = BatchMixer(const_generator, 1.0, seed=0, teacher=MeanLinear(), teacher_input="unit")
    _, yo = mixer(torch.rand(2, 3, 16, 16), y)
    torch.testing.assert_close(yo, torch.tensor([_soft(LOGITS[0], 0), _soft(LOGITS[2], 2)]))


# -- SyntheticDataset ------------------------------------------------------------------------
def test_synthetic_items_carry_exact_soft_targets(const_generator):
    per_level = [w / 255 for w in W]  # the teacher receives uint8: same logits as LOGITS
    ds = SyntheticDataset(const_generator, n_per_class=2, teacher=MeanLinear(w=per_level),
                          teacher_input="uint8", temperature=0.5, teacher_weight=0.75, seed=1)
    for i in range(len(ds)):
        cls = ds.locate(i)[0]
        _, target = ds[i]
        logits = [[0, 128, 255][cls] * w + b for w, b in zip(per_level, B)]
        torch.testing.assert_close(target, torch.tensor(_soft(logits, cls, 0.5, 0.75)),
                                   rtol=1e-5, atol=1e-6)
    assert ds.targets == [0, 0, 1, 1, 2, 2]
    again = SyntheticDataset(const_generator, n_per_class=2, teacher=MeanLinear(w=per_level),
                             teacher_input="uint8", temperature=0.5, teacher_weight=0.75, seed=1)
    assert all(torch.equal(ds[i][1], again[i][1]) for i in range(len(ds)))


def test_synthetic_drop_top_keeps_the_lowest_teacher_loss(tiny_generator):
    teacher = MeanLinear(w=[-8.0, 8.0, 0.0], b=[4.0, -4.0, 0.0])
    ds = SyntheticDataset(tiny_generator, counts={"b": 6}, chunk_size=6, teacher=teacher,
                          teacher_input="unit", drop_top=0.25, seed=0)
    images = torch.stack([ds.image(i) for i in range(6)])
    (seen,) = teacher.seen  # one round of ceil(6 / 0.75) = 8 candidates, 2 dropped
    assert len(seen) == 8 and ds.acceptance == {"b": 0.75}
    loss = -(seen.mean((1, 2, 3)) * teacher.w[1] + teacher.b[1]
             - torch.logsumexp(seen.mean((1, 2, 3))[:, None] * teacher.w + teacher.b, 1))
    kept = sorted(torch.argsort(loss.detach(), descending=True)[2:].tolist())
    expected = (seen[kept] * 255).round().to(torch.uint8)
    assert torch.equal(images, expected)


def test_synthetic_filter_is_the_teacher_alias_with_int_labels(const_generator):
    ds = SyntheticDataset(const_generator, n_per_class=1, filter=MeanLinear(), max_tries=4)
    assert ds.min_confidence == 0.9 and ds.teacher.input == "unit" and not ds.soft
    with pytest.raises(GanaugDataError, match=r"Class 'a': only 0 of 4 .*min_confidence=0\.9"):
        ds[0]  # p(a | a) = 0.867 < 0.9
    ok = SyntheticDataset(const_generator, n_per_class=1, filter=MeanLinear(), min_confidence=0.5)
    assert ok[0][1] == 0 and ok[2][1] == 2 and isinstance(ok[2][1], int)
    with pytest.raises(GanaugConfigError, match=r"filter= takes \[0, 1\] floats and keeps int "):
        SyntheticDataset(const_generator, n_per_class=1, filter=MeanLinear(), teacher_weight=0.5)
    with pytest.raises(GanaugConfigError, match=r"Pass teacher= or its older alias filter=, not "):
        SyntheticDataset(const_generator, n_per_class=1, filter=MeanLinear(),
                         teacher=MeanLinear(), teacher_input="unit")


def test_synthetic_teacher_cache_folder_relabels_and_guards(const_generator, tmp_path):
    kwargs = {"n_per_class": 2, "teacher_input": "unit", "cache": tmp_path / "c"}
    first = SyntheticDataset(const_generator, teacher=MeanLinear(), **kwargs).generate()
    reread = SyntheticDataset(const_generator, teacher=MeanLinear(), **kwargs)
    for i in range(len(first)):
        torch.testing.assert_close(reread[i][1], first[i][1])
    with pytest.raises(GanaugConfigError, match=r"already holds filtered synthetic images made "
                                                r"with other arguments \(teacher_sha256"):
        SyntheticDataset(const_generator, teacher=MeanLinear(b=[0.0, 0.0, 0.0]), **kwargs)


# -- MixedDataset ----------------------------------------------------------------------------
def _real(n=6):
    from torch.utils.data import TensorDataset

    return TensorDataset(torch.full((n, 3, 16, 16), 77, dtype=torch.uint8), torch.arange(n) % 3)


def test_mixed_append_labels_are_uniform_floats(const_generator):
    from torch.utils.data import DataLoader

    mixed = MixedDataset(_real(), const_generator, ratio=0.5, teacher=MeanLinear(),
                         teacher_input="unit", teacher_weight=0.5)
    assert len(mixed) == 9
    torch.testing.assert_close(mixed[1][1], torch.tensor([0.0, 1.0, 0.0]))
    for i in range(6, 9):
        c = mixed.targets[i]
        torch.testing.assert_close(mixed[i][1], torch.tensor(_soft(_u8_logits(c), c, 1.0, 0.5)))
    _x, y = next(iter(DataLoader(mixed, batch_size=9)))
    assert y.shape == (9, 3) and y.dtype == torch.float32
    assert mixed.synthetic_mask.tolist() == [False] * 6 + [True] * 3
    flagged = MixedDataset(_real(), const_generator, ratio=0.5, teacher=MeanLinear(),
                           teacher_input="unit", return_mask=True)
    _x, y, mask = next(iter(DataLoader(flagged, batch_size=9)))
    assert mask.tolist() == [False] * 6 + [True] * 3 and y.shape == (9, 3)
    assert float(weighted_loss(torch.zeros(9, 3), y, mask)) == pytest.approx(math.log(3))


def test_mixed_replace_mode_teacher_and_refusals(const_generator):
    mixed = MixedDataset(_real(), const_generator, mode="replace", p=1.0, teacher=MeanLinear(),
                         teacher_input="unit", min_confidence=0.5)
    img, target = mixed[0]
    assert mixed.is_synthetic(0) and torch.equal(img, torch.zeros(3, 16, 16, dtype=torch.uint8))
    torch.testing.assert_close(target, torch.tensor(_soft(_u8_logits(0), 0)))
    img, target = mixed[1]  # class b: p(b) = 1/3 < 0.5, the real item stays
    assert torch.equal(img, torch.full((3, 16, 16), 77, dtype=torch.uint8))
    assert not mixed.is_synthetic(1) and torch.equal(target, torch.tensor([0.0, 1.0, 0.0]))
    flagged = MixedDataset(_real(), const_generator, mode="replace", p=1.0, teacher=MeanLinear(),
                           teacher_input="unit", min_confidence=0.5, return_mask=True)
    assert [flagged[i][2] for i in range(3)] == [True, False, True]
    with pytest.raises(GanaugConfigError, match=r"drop_top needs a pool of candidates"):
        MixedDataset(_real(), const_generator, mode="replace", p=0.5, teacher=MeanLinear(),
                     teacher_input="unit", drop_top=0.1)
    synth = SyntheticDataset(const_generator, n_per_class=2)
    with pytest.raises(GanaugConfigError, match=r"build it with SyntheticDataset\(\.\.\., "
                                                r"teacher=\.\.\.\)"):
        MixedDataset(_real(), synth, teacher=MeanLinear(), teacher_input="unit")
    with pytest.raises(GanaugConfigError, match=r"unexpected argument\(s\) temprature"):
        MixedDataset(_real(), const_generator, ratio=0.5, temprature=2.0)
    labelled = SyntheticDataset(const_generator, n_per_class=2, teacher=MeanLinear(),
                                teacher_input="unit")
    mixed = MixedDataset(_real(), labelled, mode="replace", p=1.0)
    torch.testing.assert_close(mixed[2][1], labelled.target(labelled.index_of(2, 0)))


@pytest.mark.parametrize("temperature", [1e-45, 1e-300])
def test_a_tiny_temperature_gives_the_argmax_not_nan(temperature):
    # logits / T overflowed to inf, and softmax(inf, inf) is NaN: NaN targets poisoned the loss.
    teacher = Teacher(MeanLinear(), num_classes=3, input="unit", temperature=temperature)
    logits = torch.tensor([[2.0, 0.0, -2.0], [1e30, -1e30, 0.0], [0.0, 0.0, 0.0]])
    targets = teacher.targets(logits, torch.tensor([0, 1, 2]))
    torch.testing.assert_close(targets, torch.tensor([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0],
                                                      [1 / 3, 1 / 3, 1 / 3]]))


def test_huge_finite_logits_give_finite_targets():
    teacher = Teacher(MeanLinear(), num_classes=3, input="unit", temperature=0.5)
    targets = teacher.targets(torch.tensor([[3e38, 0.0, -3e38]]), torch.tensor([0]))
    torch.testing.assert_close(targets, torch.tensor([[1.0, 0.0, 0.0]]))


class StrictLinear(MeanLinear):
    """MeanLinear through ``F.linear``, which refuses an input of another dtype than its own."""

    def forward(self, x):
        self.seen.append(x.clone())
        mean = x.to(self.w.dtype) if x.dtype == torch.uint8 else x
        mean = mean.flatten(1).mean(1, keepdim=True)
        return torch.nn.functional.linear(mean, self.w[:, None], self.b)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("teacher_input", ["unit", "normalized", "uint8"])
def test_a_teacher_in_another_float_dtype_gets_its_own_dtype(const_generator, dtype,
                                                           teacher_input):
    # A float64/half teacher used to fail deep in torch: "mat1 and mat2 must have the same dtype".
    model = StrictLinear().to(dtype)
    stats = {"teacher_mean": [0.5] * 3, "teacher_std": [0.5] * 3} if teacher_input == \
        "normalized" else {}
    mixer = BatchMixer(const_generator, 1.0, teacher=model, teacher_input=teacher_input, seed=0,
                       **stats)
    _x, y = mixer(torch.zeros(2, 3, 16, 16), torch.tensor([0, 2]))
    seen = model.seen[0]
    assert seen.dtype == (torch.uint8 if teacher_input == "uint8" else dtype)
    assert y.dtype == torch.float32 and bool(torch.isfinite(y).all())
    torch.testing.assert_close(y.sum(1), torch.ones(2))


@pytest.mark.parametrize("args,match", [
    ((torch.zeros(0, 3), torch.zeros(0, dtype=torch.long)), r"empty batch"),  # was NaN
    ((torch.zeros(2, 3), torch.full((2, 3), float("nan"))), r"finite and >= 0"),  # was NaN
    ((torch.zeros(2, 3), torch.tensor([True, False])), r"got torch\.bool"),  # read as 1, 0
    ((torch.zeros(2, 3), [0, 1]), r"tensors, got Tensor and list"),  # AttributeError
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


class DropoutTeacher(MeanLinear):
    """MeanLinear behind a Dropout and a BatchNorm: random and batch-dependent in train mode."""

    def __init__(self):
        super().__init__()
        self.drop = torch.nn.Dropout(0.5)
        self.bn = torch.nn.BatchNorm2d(3)

    def forward(self, x):
        return super().forward(self.drop(self.bn(x.float())))


def test_a_teacher_in_train_mode_runs_in_eval_and_is_left_in_train_mode(const_generator):
    # The teacher used to be switched to eval() for good: a teacher that is also being trained
    # (online distillation, the model itself as teacher) silently lost its dropout and batch
    # statistics for the rest of the training run.
    model = DropoutTeacher()
    model.bn.eval()  # a frozen BatchNorm inside a training model stays frozen
    stats = {name: value.clone() for name, value in model.bn.state_dict().items()}
    mixer = BatchMixer(const_generator, 1.0, teacher=model, teacher_input="unit", seed=0)
    x, y = torch.zeros(4, 3, 16, 16), torch.tensor([0, 1, 2, 0])
    first, second = mixer(x, y)[1], mixer.apply(x, y, {"idx": torch.arange(4),
                                                       "classes": torch.tensor([0, 1, 2, 0]),
                                                       "seed": 1})[1]
    torch.testing.assert_close(first, second)  # no dropout: the same image, the same target
    assert model.training and model.drop.training and not model.bn.training
    for name, value in model.bn.state_dict().items():  # batch statistics untouched
        torch.testing.assert_close(value, stats[name])


# -- a ready Teacher -------------------------------------------------------------------------
@pytest.mark.parametrize("build", [
    lambda g, t: BatchMixer(g, 0.5, teacher=t, temperature=5.0),
    lambda g, t: SyntheticDataset(g, n_per_class=2, teacher=t, temperature=5.0),
    lambda g, t: MixedDataset(_real(), g, ratio=0.5, teacher=t, temperature=5.0),
], ids=["BatchMixer", "SyntheticDataset", "MixedDataset"])
def test_settings_beside_a_ready_teacher_are_refused_not_ignored(const_generator, build):
    # The Teacher's own temperature (1) was used and temperature=5.0 silently dropped.
    teacher = Teacher(MeanLinear(), num_classes=3, input="unit")
    with pytest.raises(GanaugConfigError, match=r"temperature= would be ignored: a ready "
                                                r"Teacher uses its own settings; pass them to "
                                                r"Teacher\(\.\.\.\)"):
        build(const_generator, teacher)
    assert BatchMixer(const_generator, 0.5, teacher=teacher).teacher is teacher


@pytest.mark.parametrize("drop_top", [0.3, 0.6])
def test_mixed_replace_refuses_a_ready_teachers_drop_top(const_generator, drop_top):
    # One candidate at a time: floor(q + 0.5) dropped it always (0.6) or never (0.3), silently.
    teacher = Teacher(MeanLinear(), num_classes=3, input="unit", drop_top=drop_top)
    with pytest.raises(GanaugConfigError, match=r"drop_top needs a pool of candidates; "
                                                rf".*\(got drop_top={drop_top}\)"):
        MixedDataset(_real(), const_generator, mode="replace", p=1.0, teacher=teacher)


@pytest.mark.parametrize("first,second,key", [
    ({"teacher": "ready", "min_confidence": 0.1}, {"teacher": "ready", "min_confidence": 0.3},
     "min_confidence"),
    ({"teacher_input": "normalized", "teacher_mean": 0.5, "teacher_std": 0.25},
     {"teacher_input": "normalized", "teacher_mean": 0.0, "teacher_std": 1.0}, "teacher_mean"),
], ids=["ready-teacher-min-confidence", "teacher-mean-std"])
def test_synthetic_cache_folder_guards_every_setting_that_chooses_the_images(
        const_generator, tmp_path, first, second, key):
    # Both used to be left out of the folder's settings: a folder filtered under one threshold
    # or normalisation was reused under another.
    def build(settings):
        settings = dict(settings)
        if settings.pop("teacher", None) == "ready":
            teacher = Teacher(MeanLinear(), num_classes=3, input="unit", **settings)
            return SyntheticDataset(const_generator, n_per_class=2, teacher=teacher,
                                    cache=tmp_path / "c")
        return SyntheticDataset(const_generator, n_per_class=2, teacher=MeanLinear(),
                                cache=tmp_path / "c", **settings)

    build(first).generate()
    build(first)  # the same settings reuse it
    with pytest.raises(GanaugConfigError, match=rf"made with other arguments \({key}"):
        build(second)


@pytest.mark.parametrize("intended,match", [
    ([0], r"got 1 label\(s\) for 2 images"),  # was broadcast into both rows' targets
    ([0, 3], r"got 0\.\.3"),  # was a raw RuntimeError of one_hot
    ([0, -1], r"got -1\.\.0"),
    ([0.0, 1.5], r"got torch.float32"),  # was truncated to class 1
    ([[0], [1]], r"got \(2, 1\)"),
])
def test_a_teacher_refuses_intended_labels_that_do_not_fit_its_logits(intended, match):
    teacher = Teacher(MeanLinear(), num_classes=3, input="unit")
    logits = torch.zeros(2, 3)
    for call in (lambda y: teacher(torch.zeros(2, 3, 4, 4), y),
                 lambda y: teacher.targets(logits, y), lambda y: teacher.keep(logits, y)):
        with pytest.raises(GanaugDataError, match=r"intended labels must be \(N,\) integers in "
                                                  rf"0\.\.2, one per image; {match}"):
            call(torch.tensor(intended))


def test_weighted_loss_refuses_empty_float_targets_and_integer_logits():
    # Both were raw torch errors: min() of an empty tensor, log_softmax of Long.
    with pytest.raises(GanaugDataError, match=r"Class-index targets must be integers in 0\.\.2, "
                                              r"got torch.float32 \(empty\)"):
        weighted_loss(torch.zeros(0, 3), torch.zeros(0))
    with pytest.raises(GanaugDataError, match=r"weighted_loss takes float logits \(the "
                                              r"classifier's outputs\), got torch.int64"):
        weighted_loss(torch.zeros(2, 3, dtype=torch.long), torch.tensor([0, 1]))


def test_teacher_statistics_that_do_not_fit_the_channels_are_refused(const_generator):
    # Two values for RGB images were a raw broadcasting RuntimeError from inside the teacher call.
    stats = {"teacher_mean": (0.5, 0.4), "teacher_std": (0.25, 0.25)}
    mixer = BatchMixer(const_generator, 1.0, seed=0, teacher=MeanLinear(),
                       teacher_input="normalized", **stats)
    with pytest.raises(GanaugConfigError, match=r"teacher_mean/teacher_std have 2 values but the "
                                                r"teacher gets 3-channel images"):
        mixer(torch.rand(2, 3, 16, 16), torch.tensor([0, 1]))
    teacher = Teacher(MeanLinear(), num_classes=3, input="normalized", mean=(0.5, 0.4),
                      std=(0.25, 0.25))
    with pytest.raises(GanaugConfigError, match=r"have 2 values but the teacher gets 1-channel"):
        teacher.logits(torch.rand(2, 1, 4, 4))


@pytest.mark.parametrize("value", [-1.0, 255.0])
def test_a_teacher_refuses_float_images_outside_0_1(value):
    # Normalised or 0-255 float images were read as [0, 1] and silently converted again.
    teacher = Teacher(MeanLinear(), num_classes=3, input="unit")
    with pytest.raises(GanaugDataError, match=r"The teacher takes uint8 \[0, 255\] or float "
                                              r"\[0, 1\] images, got floats spanning"):
        teacher(torch.full((2, 3, 4, 4), value), torch.tensor([0, 1]))


def test_a_ready_teacher_as_filter_is_refused_with_the_fix(const_generator):
    # filter= sets teacher_input='unit', teacher_weight=0 and min_confidence 0.9 itself; a ready
    # Teacher kept its own (no threshold: nothing was filtered) while min_confidence said 0.9.
    teacher = Teacher(MeanLinear(), num_classes=3, input="unit")
    with pytest.raises(GanaugConfigError, match=r"filter= takes a classifier, not a ready "
                                                r"Teacher; pass teacher=Teacher\(\.\.\.\)"):
        SyntheticDataset(const_generator, n_per_class=2, filter=teacher)


def test_a_ganaug_classifier_keeps_its_recorded_input_when_teacher_input_is_given():
    # With teacher_input= it lost its size/channel fit and took the batch's (or timm's
    # ImageNet) statistics, or [0, 1] floats, instead of the [-1, 1] it was trained on.
    x8 = torch.full((1, 3, 4, 4), 255, dtype=torch.uint8)
    luma = 0.2989 + 0.587 + 0.114
    for kwargs in ({"input": "normalized"}, {"input": "normalized", "mean": 0.5, "std": 0.5},
                   {"input": "normalized", "default_stats": ((0.2,), (0.3,))}):
        model = MeanLinear()
        model.ganaug_config = {"in_chans": 1, "image_size": 2}
        model.pretrained_cfg = {"mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225)}
        Teacher(model, num_classes=3, **kwargs).logits(x8)
        torch.testing.assert_close(model.seen[0], torch.full((1, 1, 2, 2), 2 * luma - 1))
    for kwargs in ({"input": "unit"}, {"input": "uint8"},
                   {"input": "normalized", "mean": (0.485, 0.456, 0.406),
                    "std": (0.229, 0.224, 0.225)}):
        with pytest.raises(GanaugConfigError, match=r"a ganaug.evaluation classifier records its "
                                                    r"input: \[-1, 1\] \(teacher_input="
                                                    r"'normalized', mean = std = 0.5\) at 2x2, "
                                                    r"1 channel\(s\); drop teacher_input="):
            Teacher(model, num_classes=3, **kwargs)


def test_a_filter_cache_folder_refuses_another_filter_model(const_generator, tmp_path):
    # Only teacher= recorded its weights: a folder filtered by one classifier was reused as if
    # another had chosen its images.
    kwargs = {"n_per_class": 2, "min_confidence": 0.3, "cache": tmp_path / "c"}
    SyntheticDataset(const_generator, filter=MeanLinear(), **kwargs).generate()
    SyntheticDataset(const_generator, filter=MeanLinear(), **kwargs)  # the same one reuses it
    with pytest.raises(GanaugConfigError, match=r"made with other arguments \(teacher_sha256"):
        SyntheticDataset(const_generator, filter=MeanLinear(b=[0.0, 0.0, 0.0]), **kwargs)


def test_numpy_and_tensor_statistics_configure_a_teacher(const_generator):
    for mean, std in ((np.array([0.5, 0.5, 0.5]), np.array([0.25, 0.25, 0.25])),
                      (torch.tensor([0.5, 0.5, 0.5]), torch.tensor([0.25, 0.25, 0.25]))):
        teacher = MeanLinear()
        mixer = BatchMixer(const_generator, 1.0, seed=0, teacher=teacher,
                           teacher_input="normalized", teacher_mean=mean, teacher_std=std)
        mixer(torch.zeros(2, 3, 16, 16), torch.tensor([2, 0]))
        torch.testing.assert_close(teacher.seen[0][:, 0, 0, 0], torch.tensor([2.0, -2.0]))
        with pytest.raises(GanaugConfigError, match=r"teacher_mean=, teacher_std= configure a "
                                                    r"teacher, but teacher=None"):
            BatchMixer(const_generator, 1.0, teacher_mean=mean, teacher_std=std)


class TupleTeacher(MeanLinear):
    """Returns ``(logits, features)``, as some timm/torchvision heads do."""

    def forward(self, x):
        return super().forward(x), x.flatten(1)


class DictTeacher(MeanLinear):
    """Returns ``{"logits": ...}``, as Hugging Face models do."""

    def forward(self, x):
        return {"logits": super().forward(x)}


@pytest.mark.parametrize("model,got", [(TupleTeacher(), "tuple"), (DictTeacher(), "dict")])
def test_a_teacher_returning_a_tuple_or_dict_is_refused_with_the_fix(model, got):
    teacher = Teacher(model, num_classes=3, input="unit")
    with pytest.raises(GanaugConfigError, match=rf"it returned {got}; wrap it in an nn.Module "
                                                r"whose forward returns only the logits"):
        teacher(torch.rand(2, 3, 4, 4), torch.tensor([0, 1]))


def test_rgb_statistics_for_a_grey_stem_are_refused(const_generator):
    # A 1-channel timm model keeps ImageNet's 3-value pretrained_cfg: the grey images were
    # widened to 3 channels by Normalize, and the stem's failure was blamed on the generator's
    # "3-channel" images.
    teacher = ConvTeacher(1)
    teacher.pretrained_cfg = {"mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225)}
    ds = SyntheticDataset(const_generator, n_per_class=1, teacher=teacher,
                          teacher_input="normalized")
    with pytest.raises(GanaugConfigError, match=r"teacher_mean/teacher_std have 3 values but the "
                                                r"teacher gets 1-channel images; pass "
                                                r"teacher_mean=/teacher_std= with 1 value "):
        ds[0]


@pytest.mark.parametrize("images,got", [
    (torch.rand(3, 4, 4), r"\(3, 4, 4\)"),  # one image: its channels were read as the batch
    (torch.rand(2, 3, 4, 4).numpy(), "ndarray"),  # was a raw AttributeError
    (torch.zeros(2, 3, 4, 4, dtype=torch.int32), r"\(2, 3, 4, 4\) torch.int32"),  # as [0, 1]
])
def test_a_teacher_refuses_what_is_no_image_batch(images, got):
    teacher = Teacher(MeanLinear(), num_classes=3, input="unit")
    with pytest.raises(GanaugDataError, match=r"The teacher takes a \(N, C, H, W\) uint8 or float "
                                              rf"image batch, got {got}"):
        teacher.logits(images)


@pytest.mark.parametrize("kwargs", [
    {"temperature": 2.0},
    {"teacher_mean": (0.5,) * 3, "teacher_std": (0.5,) * 3},
    {"teacher_mean": np.array([0.5, 0.5, 0.5]), "teacher_std": np.array([0.5] * 3)},
], ids=["temperature", "statistics", "numpy-statistics"])
def test_teacher_settings_with_filter_are_refused(const_generator, kwargs):
    # numpy statistics made the settings check itself a raw ambiguous-truth ValueError.
    with pytest.raises(GanaugConfigError, match=r"filter= takes \[0, 1\] floats and keeps int "
                                                r"labels; for teacher_input="):
        SyntheticDataset(const_generator, n_per_class=1, filter=MeanLinear(), **kwargs)
