"""Teacher: soft targets, input conventions, the filter, the check on real labels; the teacher in
BatchMixer and SyntheticDataset filters candidates and the labels stay ints."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ganaug.augment import (
    BatchMixer,
    Distiller,
    MixedDataset,
    SyntheticDataset,
    Teacher,
    weighted_loss,
)
from ganaug.augment.teacher import CHECK_ROWS, agreement_floor
from ganaug.errors import GanaugConfigError, GanaugDataError

W, B = [-4.0, 0.0, 4.0], [2.0, 0.0, -2.0]
# MeanLinear's logits of const_generator's classes a, b, c (mean pixel 0, 0.5, 1 in [0, 1]).
LOGITS = {0: [2.0, 0.0, -2.0], 1: [0.0, 0.0, 0.0], 2: [-2.0, 0.0, 2.0]}
G = "generator"  # classes=: the labels are the generator's own class indices


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


def _soft(logits, label, temperature=1.0, label_weight=0.0):
    """The documented target, by hand: label_weight * onehot + (1 - label_weight) *
    softmax(logits / T)."""
    e = [math.exp(v / temperature) for v in logits]
    return [label_weight * (k == label) + (1 - label_weight) * v / sum(e)
            for k, v in enumerate(e)]


def _unit(generator_class):
    return [0.0, 0.5, 1.0][generator_class]


def _teacher(model=None, **kwargs):
    """A Teacher taking [0, 1] floats that keeps every candidate unless told otherwise."""
    kwargs.setdefault("expects", "unit")
    kwargs.setdefault("drop_hardest", 0.0)
    return Teacher(MeanLinear() if model is None else model, **kwargs)


# -- Teacher ---------------------------------------------------------------------------------
@pytest.mark.parametrize("temperature,label_weight", [(1.0, 0.0), (2.0, 0.75), (0.5, 1.0)])
def test_soft_targets_blend_the_intended_label_with_the_teacher(temperature, label_weight):
    teacher = Teacher(MeanLinear(), num_classes=3, expects="unit", temperature=temperature,
                      label_weight=label_weight, drop_hardest=0.0)
    images = torch.stack([torch.full((3, 4, 4), _unit(c)) for c in (0, 1, 2, 2)])
    logits = teacher.logits(images)
    targets = teacher.targets(logits, torch.tensor([0, 1, 2, 0]))
    expected = [_soft(LOGITS[c], i, temperature, label_weight)
                for c, i in ((0, 0), (1, 1), (2, 2), (2, 0))]
    torch.testing.assert_close(targets, torch.tensor(expected), rtol=0, atol=1e-6)
    assert targets.dtype == torch.float32
    assert teacher.keep(logits, torch.tensor([0, 1, 2, 0])).tolist() == [True] * 4


def test_teacher_defaults_are_the_recipe():
    teacher = Teacher(MeanLinear(), expects="unit")
    assert (teacher.temperature, teacher.label_weight, teacher.drop_hardest,
            teacher.min_confidence) == (4.0, 0.5, 0.1, None)
    assert repr(teacher) == ("Teacher(MeanLinear, expects='unit', temperature=4, "
                             "label_weight=0.5, drop_hardest=0.1)")
    targets = teacher.targets(torch.tensor([LOGITS[0]]), torch.tensor([0]))
    torch.testing.assert_close(targets, torch.tensor([_soft(LOGITS[0], 0, 4.0, 0.5)]))


def test_soft_labels_are_blended_with_the_teacher():
    # timm's Mixup gives (N, K) soft labels: they take the one-hot label's place in the blend
    teacher = Teacher(MeanLinear(), num_classes=3, expects="unit", temperature=2.0,
                      label_weight=0.25)
    logits = torch.tensor([LOGITS[0], LOGITS[2]])
    given = torch.tensor([[0.7, 0.3, 0.0], [0.1, 0.1, 0.8]])
    teach = [_soft(LOGITS[0], 0, 2.0, 0.0), _soft(LOGITS[2], 0, 2.0, 0.0)]
    expected = 0.25 * given + 0.75 * torch.tensor(teach)
    targets = teacher.targets(logits, given)
    torch.testing.assert_close(targets, expected, rtol=0, atol=1e-6)
    torch.testing.assert_close(targets.sum(1), torch.ones(2))
    one_hot = torch.nn.functional.one_hot(torch.tensor([0, 2]), 3).float()
    torch.testing.assert_close(teacher.targets(logits, one_hot),
                               teacher.targets(logits, torch.tensor([0, 2])))
    with pytest.raises(GanaugDataError, match=r"Soft labels \(2, 2\) do not match the "
                                              r"teacher's logits \(2, 3\)"):
        teacher.targets(logits, given[:, :2])
    with pytest.raises(GanaugDataError, match=r"finite and >= 0.*got values in \[-0\.5"):
        teacher.targets(logits, torch.tensor([[-0.5, 1.5, 0.0], [1.0, 0.0, 0.0]]))


def test_input_conventions_are_converted_exactly():
    x8 = torch.tensor([0, 51, 128, 255], dtype=torch.uint8).view(1, 1, 2, 2).expand(2, 3, 2, 2)
    unit = x8.float() / 255
    for given in (x8, unit):
        seen = {}
        for name, kwargs in [("uint8", {}), ("unit", {}),
                             ("normalized", {"mean": (0.5, 0.4, 0.3), "std": (0.25, 0.5, 0.8)})]:
            model = MeanLinear()
            Teacher(model, num_classes=3, expects=name, **kwargs).logits(given)
            seen[name] = model.seen[0]
        assert seen["uint8"].dtype == torch.uint8 and torch.equal(seen["uint8"], x8)
        torch.testing.assert_close(seen["unit"], unit, rtol=0, atol=1e-7)
        expected = (unit - torch.tensor([0.5, 0.4, 0.3]).view(3, 1, 1)) / torch.tensor(
            [0.25, 0.5, 0.8]).view(3, 1, 1)
        torch.testing.assert_close(seen["normalized"], expected, rtol=0, atol=1e-6)
    # 0-255 statistics (timm's PrefetchLoader) are read on the 0-255 scale
    model = MeanLinear()
    Teacher(model, num_classes=3, expects="normalized", mean=127.5, std=127.5).logits(x8)
    torch.testing.assert_close(model.seen[0], unit * 2 - 1, rtol=0, atol=1e-6)


def test_stated_statistics_timm_pretrained_cfg_and_ganaug_classifiers():
    x8 = torch.full((1, 3, 4, 4), 255, dtype=torch.uint8)
    timm_like = MeanLinear()
    timm_like.pretrained_cfg = {"mean": (0.5, 0.5, 0.5), "std": (0.25, 0.25, 0.25)}
    Teacher(timm_like, num_classes=3, expects="normalized").logits(x8)
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


@pytest.mark.parametrize("expects", ["uint8", "unit"])
def test_a_grey_generator_feeds_an_rgb_teacher_repeated_grey(const_generator, expects):
    # what torchvision's Grayscale(num_output_channels=3) gives: the grey value in R, G and B
    rgb, grey = ConvTeacher(3), ConvTeacher(3)
    expected = SyntheticDataset(const_generator, 2, teacher=Teacher(rgb, expects=expects),
                                seed=0).generate()
    got = SyntheticDataset(_grey_generator(), 2, teacher=Teacher(grey, expects=expects),
                           seed=0).generate()
    seen = torch.cat(grey.seen)
    assert seen.shape == (9, 3, 16, 16) and torch.equal(seen, seen[:, :1].expand(-1, 3, -1, -1))
    assert torch.equal(seen, torch.cat(rgb.seen))
    assert got.acceptance == expected.acceptance == {"a": 1.0, "b": 1.0, "c": 1.0}
    for i in range(len(got)):
        assert torch.equal(got.image(i), expected.image(i)[:1]) and got[i][1] == expected[i][1]


def test_an_rgb_generator_feeds_a_grey_teacher_its_luma(const_generator):
    teacher = ConvTeacher(1)
    ds = SyntheticDataset(const_generator, 1, teacher=_teacher(teacher, expects="uint8"))
    ds.generate()
    seen = torch.cat(teacher.seen)
    assert seen.shape == (3, 1, 16, 16) and seen.dtype == torch.uint8
    from torchvision.transforms.v2.functional import rgb_to_grayscale

    rgb = torch.stack([ds.image(i) for i in range(3)])  # torchvision's Grayscale(): 255 -> 254
    assert torch.equal(seen, rgb_to_grayscale(rgb)) and seen[:, 0, 0, 0].tolist() == [0, 127, 254]


def test_a_teacher_of_unknown_channels_that_fails_on_grey_images_is_refused_with_the_fix():
    def rgb_only(x):  # a plain callable: its channels cannot be read off a Conv2d
        return torch.nn.functional.conv2d(x, torch.ones(3, 3, 1, 1)).mean((2, 3))

    ds = SyntheticDataset(_grey_generator(), 1, teacher=_teacher(rgb_only))
    with pytest.raises(GanaugConfigError, match=r"(?s)teacher failed on its first batch of "
                                                r"\(1, 1, 16, 16\) .*1-channel.*Grayscale\("
                                                r"num_output_channels=3\), model\)"):
        ds[0]


def test_a_teacher_taking_neither_1_nor_3_channels_is_refused(const_generator):
    ds = SyntheticDataset(const_generator, 1, teacher=_teacher(ConvTeacher(4)))
    with pytest.raises(GanaugConfigError, match=r"The images have 3 channels but the teacher "
                                                r"takes 4 \(its first Conv2d\)"):
        ds[0]


@pytest.mark.parametrize("kwargs,match", [
    ({}, r"expects=None: say what the model takes, one of 'uint8', 'unit', 'normalized'"),
    ({"expects": "normalised"}, r"expects='normalised'.*Did you mean 'normalized'"),
    ({"expects": "normalized"}, r"expects='normalized' needs the model's statistics"),
    ({"expects": "unit", "mean": 0.5, "std": 0.5},
     r"mean= and std= are for expects='normalized', not 'unit'"),
    ({"expects": "unit", "mean": 0.5}, r"Pass both mean= and std="),
    ({"expects": "unit", "temperature": 0}, r"temperature must be a finite number in \(0, inf\)"),
    ({"expects": "unit", "label_weight": 1.5}, r"label_weight must be a finite number in \[0, 1\]"),
    ({"expects": "unit", "drop_hardest": 1.0}, (r"drop_hardest must be a finite number in \[0, 1\)"
                                               r", got 1\.0")),
    ({"expects": "unit", "min_confidence": -1}, r"min_confidence must be a finite number"),
    ({"expects": "unit", "num_classes": 0}, r"num_classes must be an integer >= 1, got 0"),
])
def test_teacher_settings_are_refused_with_the_fix(kwargs, match):
    with pytest.raises(GanaugConfigError, match=match):
        Teacher(MeanLinear(), **kwargs)


def test_non_finite_logits_are_refused():
    nan = Teacher(MeanLinear(b=[float("nan"), 0.0, 0.0]), num_classes=3, expects="unit")
    with pytest.raises(GanaugDataError, match=r"The teacher returned NaN or infinite logits"):
        nan.logits(torch.zeros(1, 3, 4, 4))


def test_a_path_or_a_non_model_is_refused_with_how_to_load_it(tmp_path):
    with pytest.raises(GanaugConfigError, match=r"is a path; pass the classifier itself.*"
                                                r"load_classifier\(path\)\[0\]"):
        Teacher(str(tmp_path / "clf.safetensors"), expects="unit")
    with pytest.raises(GanaugConfigError, match=r"model must be an nn.Module mapping images to "
                                                r"logits, got int"):
        Teacher(3, expects="unit")
    with pytest.raises(GanaugConfigError, match=r"model= is already a Teacher; pass it as "
                                                r"teacher= directly"):
        Teacher(_teacher(), expects="unit")


@pytest.mark.parametrize("build", [
    lambda g, m: BatchMixer(g, 0.5, classes=G, teacher=m),
    lambda g, m: SyntheticDataset(g, 2, teacher=m),
    lambda g, m: MixedDataset(g, [(torch.full((3, 4, 4), v, dtype=torch.uint8), c)
                               for c, v in enumerate((0, 128, 255))], ratio=1.0, classes=G,
                              teacher=m),
    lambda g, m: Distiller(m),
], ids=["BatchMixer", "SyntheticDataset", "MixedDataset", "Distiller"])
def test_a_bare_model_as_teacher_is_refused_naming_ganaug_teacher(const_generator, build):
    # The teacher's settings live in ganaug.Teacher: a bare classifier does not say what it takes
    with pytest.raises(GanaugConfigError, match=r"\(teacher=\.\.\.\) takes a ganaug\.Teacher, "
                                                r"got MeanLinear; wrap the classifier: teacher="
                                                r"ganaug\.Teacher\(model, expects="):
        build(const_generator, MeanLinear())
    teacher = _teacher()
    assert build(const_generator, teacher).teacher is teacher  # a Teacher is used as it is


def test_a_teacher_with_the_wrong_class_count_is_refused(const_generator):
    four = MeanLinear(w=[1.0] * 4, b=[0.0] * 4)
    with pytest.raises(GanaugConfigError, match=r"The teacher returns 4 logits but the labels "
                                                r"have 3 classes"):
        Teacher(four, num_classes=3, expects="unit").logits(torch.zeros(2, 3, 4, 4))
    mixer = BatchMixer(const_generator, 0.5, classes=G, seed=0, teacher=_teacher(four))
    assert mixer.teacher.num_classes == 3  # taken from the mixer's labels
    with pytest.raises(GanaugConfigError, match=r"returns 4 logits but the labels have 3"):
        mixer(torch.rand(4, 3, 16, 16), torch.tensor([0, 1, 2, 0]))
    ds = SyntheticDataset(const_generator, 2, teacher=_teacher(four))
    with pytest.raises(GanaugConfigError, match=r"returns 4 logits but the labels have 3"):
        ds[0]
    with pytest.raises(GanaugConfigError, match=r"The Teacher was made for 4 classes but the "
                                                r"labels have 3"):
        BatchMixer(const_generator, 0.5, classes=G, teacher=_teacher(four, num_classes=4))
    with pytest.raises(GanaugConfigError, match=r"must map \(N, C, H, W\) images to \(N, K\)"):
        Teacher(lambda x: x.mean(1), num_classes=3, expects="unit").logits(torch.zeros(2, 3, 4, 4))


def test_min_confidence_and_drop_hardest_with_known_teacher_outputs():
    logits = torch.log(torch.tensor([[0.9, 0.1], [0.5, 0.5], [0.2, 0.8], [0.7, 0.3],
                                     [0.6, 0.4], [0.95, 0.05], [0.3, 0.7], [0.7, 0.3]]))
    intended = torch.zeros(8, dtype=torch.int64)
    teacher = _teacher(MeanLinear(w=[0.0, 0.0], b=[0.0, 0.0]), num_classes=2,
                       min_confidence=0.6)
    assert teacher.keep(logits, intended).tolist() == [True, False, False, True, True, True,
                                                       False, True]
    # drop_hardest 0.25 of 8: the two of highest loss -log p(class 0): p 0.2 and 0.3
    teacher = _teacher(MeanLinear(w=[0.0, 0.0], b=[0.0, 0.0]), num_classes=2,
                       drop_hardest=0.25)
    assert teacher.keep(logits, intended).tolist() == [True, True, False, True, True, True,
                                                       False, True]
    # ties: floor(0.2 * 3 + 0.5) = 1 dropped; the earlier of the two equal losses goes
    tied = torch.log(torch.tensor([[0.9, 0.1], [0.4, 0.6], [0.4, 0.6]]))
    teacher.drop_hardest = 0.2
    assert teacher.keep(tied, intended[:3]).tolist() == [True, False, True]
    report = teacher.report(["x", "y"])  # 11 candidates of class 0: 7 top class 0, 8 kept
    assert report["synthetic_agreement"] == {"x": pytest.approx(7 / 11)}
    assert report["acceptance"] == {"x": pytest.approx(8 / 11)}


def test_check_refuses_a_teacher_no_better_than_chance():
    images = torch.stack([torch.full((3, 4, 4), _unit(c)) for c in (0, 1, 2, 0, 1, 2)])
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    good = _teacher(num_classes=3)
    assert good.real_agreement is None and good.real_rows == 0
    assert good.check(images, labels) == pytest.approx(4 / 6)  # b's logits are all 0: top is a
    assert good.real_rows == 6 and good.report()["real_agreement"] == pytest.approx(4 / 6)
    swapped = _teacher(MeanLinear(w=W[::-1], b=B[::-1]), num_classes=3)  # columns c, b, a
    assert swapped.check(images, labels, min_rows=10) == 0.0  # 6 rows: not judged yet
    with pytest.raises(GanaugConfigError, match=r"top class is the real label on only 0\.0% of "
                                                r"12 real images \(chance: 33\.3%; it must "
                                                r"reach 40\.7%\).*another class order"):
        swapped.check(images, labels, min_rows=10)
    assert agreement_floor(10) == pytest.approx(0.2)
    assert agreement_floor(2) == pytest.approx(5 / 9)


# -- BatchMixer: the teacher filters, labels stay ---------------------------------------------
def _class_batch(labels, size=16):
    """Real-looking images of ``labels``: 0.1, 0.5, 0.9 (a, b, c; b's MeanLinear logits tie)."""
    return torch.stack([torch.full((3, size, size), 0.1 + 0.8 * _unit(int(c))) for c in labels])


def test_mixer_with_a_teacher_keeps_int_labels_and_gives_the_mask(const_generator):
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    x = _class_batch(y)
    mixer = BatchMixer(const_generator, 0.5, classes=G, seed=3, teacher=_teacher())
    xo, yo = mixer(x, y)
    idx = mixer.last_indices.tolist()
    assert len(idx) == 3 and yo.dtype == torch.int64 and torch.equal(yo, y)  # no one-hot, no soft
    assert mixer.last_synthetic_mask.tolist() == [i in idx for i in range(6)]
    for i in range(6):
        want = torch.full((3, 16, 16), _unit(int(y[i]))) if i in idx else x[i]
        torch.testing.assert_close(xo[i], want)
    report = mixer.teacher_report
    assert report["real_agreement"] == pytest.approx(4 / 6) and report["real_rows"] == 6
    assert report["acceptance"] == {"abc"[int(y[i])]: 1.0 for i in idx}
    again = BatchMixer(const_generator, 0.5, classes=G, seed=3, teacher=_teacher())
    xa, ya = again(x, y)
    assert torch.equal(xa, xo) and torch.equal(ya, yo)  # seeded: the same batch
    mixer.enabled = False
    xd, yd = mixer(x, y)
    assert xd is x and yd is y and mixer.last_synthetic_mask.tolist() == [False] * 6
    assert BatchMixer(const_generator, 0.5, classes=G).teacher_report is None


def test_mixer_teacher_rejections_keep_the_real_sample(const_generator):
    x = torch.full((4, 3, 16, 16), 0.3)
    y = torch.tensor([0, 1, 2, 1])
    # p(intended) of a: 0.867, b: 1/3, c: 0.867 -> the b candidates are rejected
    mixer = BatchMixer(const_generator, 1.0, classes=G, seed=0,
                       teacher=_teacher(min_confidence=0.5))
    xo, yo = mixer(x, y)
    assert mixer.last_indices.tolist() == [0, 2] and mixer.last_labels.tolist() == [0, 2]
    assert mixer.last_synthetic_mask.tolist() == [True, False, True, False]
    assert torch.equal(xo[[1, 3]], x[[1, 3]]) and torch.equal(yo, y)
    torch.testing.assert_close(xo[2], torch.ones(3, 16, 16))
    report = mixer.teacher_report
    assert report["acceptance"] == {"a": 1.0, "b": 0.0, "c": 1.0}
    assert report["synthetic_agreement"] == {"a": 1.0, "b": 0.0, "c": 1.0}
    assert report["real_agreement"] == 0.25 and report["real_rows"] == 4  # 0.3 looks like a
    loss = weighted_loss(torch.zeros(4, 3), yo, mixer.last_synthetic_mask)
    assert float(loss) == pytest.approx(math.log(3))


def test_mixer_checks_the_teacher_on_the_first_real_rows(const_generator):
    y = torch.arange(256) % 3
    x = _class_batch(y, size=4)
    swapped = _teacher(MeanLinear(w=W[::-1], b=B[::-1]))  # its columns in another class order
    mixer = BatchMixer(const_generator, 0.25, classes=G, seed=0, teacher=swapped)
    mixer(x, y)  # 256 real rows: not judged yet
    assert swapped.real_rows == 256 and swapped.real_agreement == 0.0
    with pytest.raises(GanaugConfigError, match=r"top class is the real label on only 0\.0% of "
                                                r"512 real images"):
        mixer(x, y)
    good = _teacher()
    mixer = BatchMixer(const_generator, 0.25, classes=G, seed=0, teacher=good)
    for _ in range(3):
        mixer(x, y)
    assert good.real_rows == CHECK_ROWS == 512  # checked on the first 512 rows, then no more
    assert good.real_agreement == pytest.approx(float((y != 1).float().mean()))


def test_mixer_teacher_leaves_soft_input_rows_as_the_mixer_makes_them(const_generator):
    y = torch.tensor([[0.6, 0.3, 0.1], [0.1, 0.2, 0.7]])  # mixed: argmax a and c
    x = torch.stack([torch.zeros(3, 16, 16), torch.ones(3, 16, 16)])
    teacher = _teacher()
    _, yo = BatchMixer(const_generator, 1.0, classes=G, seed=0, teacher=teacher)(x, y)
    _, plain = BatchMixer(const_generator, 1.0, classes=G, seed=0)(x, y)
    torch.testing.assert_close(yo, plain)  # the row's floor and mass, not the teacher's targets
    torch.testing.assert_close(yo, torch.tensor([[0.8, 0.1, 0.1], [0.1, 0.1, 0.8]]))
    assert teacher.real_rows == 2 and teacher.real_agreement == 1.0  # checked on the argmax


def test_mixer_teacher_gets_unnormalised_images(const_generator):
    mean, std = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)
    model = MeanLinear()
    mixer = BatchMixer(const_generator, 1.0, classes=G, seed=0, mean=mean, std=std,
                       teacher=_teacher(model))
    xo, _yo = mixer(torch.zeros(2, 3, 16, 16), torch.tensor([2, 0]))
    real, fake = model.seen  # the real rows (the check), then the candidates
    torch.testing.assert_close(real, torch.full((2, 3, 16, 16), 0.5))  # the batch's stats undone
    torch.testing.assert_close(fake[:, 0, 0, 0], torch.tensor([1.0, 0.0]))
    torch.testing.assert_close(xo[:, 0, 0, 0], torch.tensor([2.0, -2.0]))  # batch convention
    for stats in ((np.array(mean), np.array(std)), (torch.tensor(mean), torch.tensor(std))):
        normed = MeanLinear()
        teacher = _teacher(normed, expects="normalized", mean=stats[0], std=stats[1])
        BatchMixer(const_generator, 1.0, classes=G, seed=0, mean=mean, std=std,
                   teacher=teacher)(torch.zeros(2, 3, 16, 16), torch.tensor([2, 0]))
        torch.testing.assert_close(normed.seen[0], torch.zeros(2, 3, 16, 16))
        torch.testing.assert_close(normed.seen[1][:, 0, 0, 0], torch.tensor([2.0, -2.0]))
    uint8 = MeanLinear()
    BatchMixer(const_generator, 1.0, classes=G, seed=0, teacher=_teacher(uint8))(
        torch.zeros(2, 3, 16, 16, dtype=torch.uint8), torch.tensor([1, 2]))
    torch.testing.assert_close(uint8.seen[1][:, 0, 0, 0], torch.tensor([128 / 255, 1.0]))


class StrictLinear(MeanLinear):
    """MeanLinear through ``F.linear``, which refuses an input of another dtype than its own."""

    def forward(self, x):
        self.seen.append(x.clone())
        mean = x.to(self.w.dtype) if x.dtype == torch.uint8 else x
        mean = mean.flatten(1).mean(1, keepdim=True)
        return torch.nn.functional.linear(mean, self.w[:, None], self.b)


class DropoutTeacher(MeanLinear):
    """MeanLinear behind a Dropout and a BatchNorm: random and batch-dependent in train mode."""

    def __init__(self):
        super().__init__()
        self.drop = torch.nn.Dropout(0.5)
        self.bn = torch.nn.BatchNorm2d(3)

    def forward(self, x):
        return super().forward(self.drop(self.bn(x.float())))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("expects", ["unit", "normalized", "uint8"])
def test_a_teacher_in_another_float_dtype_gets_its_own_dtype(const_generator, dtype, expects):
    # A float64/half teacher used to fail deep in torch: "mat1 and mat2 must have the same dtype".
    model = StrictLinear().to(dtype)
    stats = {"mean": [0.5] * 3, "std": [0.5] * 3} if expects == "normalized" else {}
    teacher = _teacher(model, expects=expects, **stats)
    mixer = BatchMixer(const_generator, 1.0, classes=G, teacher=teacher, seed=0)
    x, y = mixer(torch.zeros(2, 3, 16, 16), torch.tensor([0, 2]))
    want = torch.uint8 if expects == "uint8" else dtype
    assert len(model.seen) == 2 and all(seen.dtype == want for seen in model.seen)
    assert y.tolist() == [0, 2] and mixer.last_indices.tolist() == [0, 1]
    targets = teacher.targets(teacher.logits(x), y)
    assert targets.dtype == torch.float32 and bool(torch.isfinite(targets).all())
    torch.testing.assert_close(targets.sum(1), torch.ones(2))


def test_a_teacher_in_train_mode_runs_in_eval_and_is_left_in_train_mode(const_generator):
    # The teacher used to be switched to eval() for good: a teacher that is also being trained
    # (online distillation, the model itself as teacher) silently lost its dropout and batch
    # statistics for the rest of the training run.
    model = DropoutTeacher()
    model.bn.eval()  # a frozen BatchNorm inside a training model stays frozen
    stats = {name: value.clone() for name, value in model.bn.state_dict().items()}
    teacher = _teacher(model)
    mixer = BatchMixer(const_generator, 1.0, classes=G, teacher=teacher, seed=0)
    x, y = torch.rand(4, 3, 16, 16), torch.tensor([0, 1, 2, 0])
    mixer(x, y)
    mixer.apply(x, y, {"idx": torch.arange(4), "classes": y, "seed": 1})
    assert len(model.seen) == 4 and mixer.last_indices.tolist() == [0, 1, 2, 3]  # check, fakes
    torch.testing.assert_close(teacher.logits(x), teacher.logits(x))  # no dropout: same logits
    assert model.training and model.drop.training and not model.bn.training
    for name, value in model.bn.state_dict().items():  # batch statistics untouched
        torch.testing.assert_close(value, stats[name])


def test_teacher_statistics_that_do_not_fit_the_channels_are_refused(const_generator):
    # Two values for RGB images were a raw broadcasting RuntimeError from inside the teacher call.
    teacher = _teacher(expects="normalized", mean=(0.5, 0.4), std=(0.25, 0.25))
    mixer = BatchMixer(const_generator, 1.0, classes=G, seed=0, teacher=teacher)
    with pytest.raises(GanaugConfigError, match=r"mean=/std= have 2 values but the teacher gets "
                                                r"3-channel images; pass 1 or 3 values"):
        mixer(torch.rand(2, 3, 16, 16), torch.tensor([0, 1]))
    with pytest.raises(GanaugConfigError, match=r"have 2 values but the teacher gets 1-channel "
                                                r"images; pass 1 value"):
        teacher.logits(torch.rand(2, 1, 4, 4))


def test_rgb_statistics_for_a_grey_stem_are_refused(const_generator):
    # A 1-channel timm model keeps ImageNet's 3-value pretrained_cfg: the grey images were
    # widened to 3 channels by Normalize, and the stem's failure was blamed on the generator's
    # "3-channel" images.
    model = ConvTeacher(1)
    model.pretrained_cfg = {"mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225)}
    ds = SyntheticDataset(const_generator, 1, teacher=_teacher(model, expects="normalized"))
    with pytest.raises(GanaugConfigError, match=r"mean=/std= have 3 values but the teacher gets "
                                                r"1-channel images; pass 1 value "):
        ds[0]


# -- SyntheticDataset: the teacher filters, labels stay ints ----------------------------------
def test_synthetic_items_carry_int_labels_and_the_teacher_their_soft_targets(const_generator):
    per_level = [w / 255 for w in W]  # the teacher receives uint8: same logits as LOGITS
    teacher = _teacher(MeanLinear(w=per_level), expects="uint8", temperature=0.5,
                       label_weight=0.25)
    ds = SyntheticDataset(const_generator, 2, teacher=teacher, seed=1)
    assert ds.targets == [0, 0, 1, 1, 2, 2] and not hasattr(ds, "soft")
    images = torch.stack([ds.image(i) for i in range(len(ds))])
    labels = torch.tensor([ds[i][1] for i in range(len(ds))])
    assert all(isinstance(ds[i][1], int) for i in range(len(ds)))
    expected = [_soft([[0, 128, 255][c] * w + b for w, b in zip(per_level, B)], c, 0.5, 0.25)
                for c in labels.tolist()]
    targets = Distiller(teacher).targets(images, labels)  # the soft targets, in the loop
    torch.testing.assert_close(targets, torch.tensor(expected), rtol=1e-5, atol=1e-6)
    again = SyntheticDataset(const_generator, 2, teacher=teacher, seed=1)
    assert all(torch.equal(ds.image(i), again.image(i)) for i in range(len(ds)))


def test_synthetic_drop_hardest_keeps_the_lowest_teacher_loss(tiny_generator, monkeypatch):
    monkeypatch.setattr(SyntheticDataset, "chunk_size", 6)
    model = MeanLinear(w=[-8.0, 8.0, 0.0], b=[4.0, -4.0, 0.0])
    ds = SyntheticDataset(tiny_generator, {"b": 6}, teacher=_teacher(model, drop_hardest=0.25),
                          seed=0)
    images = torch.stack([ds.image(i) for i in range(6)])
    (seen,) = model.seen  # one round of ceil(6 / 0.75) = 8 candidates, 2 dropped
    assert len(seen) == 8 and ds.acceptance == {"b": 0.75}
    assert ds.teacher.report(ds.classes)["acceptance"] == {"b": 0.75}
    loss = -(seen.mean((1, 2, 3)) * model.w[1] + model.b[1]
             - torch.logsumexp(seen.mean((1, 2, 3))[:, None] * model.w + model.b, 1))
    kept = sorted(torch.argsort(loss.detach(), descending=True)[2:].tolist())
    expected = (seen[kept] * 255).round().to(torch.uint8)
    assert torch.equal(images, expected) and ds.targets == [1] * 6


def test_a_synthetic_filter_that_keeps_too_few_is_refused(const_generator):
    ds = SyntheticDataset(const_generator, 1, teacher=_teacher(min_confidence=0.9))
    ds.max_tries = 4
    with pytest.raises(GanaugDataError, match=r"Class 'a': only 0 of 4 .*\(min_confidence=0\.9, "
                                              r"drop_hardest=0\.0\).*max_tries=4"):
        ds[0]  # p(a | a) = 0.867 < 0.9
    ok = SyntheticDataset(const_generator, 1, teacher=_teacher(min_confidence=0.5))
    assert ok[0][1] == 0 and ok[2][1] == 2 and isinstance(ok[2][1], int)
    with pytest.raises(GanaugDataError, match=r"Class 'b': only 0 of 20 .*max_tries=20"):
        ok[1]  # p(b | b) = 1/3 < 0.5; 20 x the chunk by default


def test_synthetic_teacher_cache_folder_rereads_and_guards(const_generator, tmp_path):
    first = SyntheticDataset(const_generator, 2, teacher=_teacher(), cache=tmp_path / "c")
    first.generate()
    model = MeanLinear()
    reread = SyntheticDataset(const_generator, 2, teacher=_teacher(model), cache=tmp_path / "c")
    for i in range(len(first)):
        assert torch.equal(reread.image(i), first.image(i)) and reread[i][1] == first[i][1]
    assert model.seen == []  # read from the folder: the teacher did not run again
    with pytest.raises(GanaugConfigError, match=r"already holds filtered synthetic images made "
                                                r"with other arguments \(teacher_sha256"):
        SyntheticDataset(const_generator, 2, teacher=_teacher(MeanLinear(b=[0.0, 0.0, 0.0])),
                         cache=tmp_path / "c")


@pytest.mark.parametrize("first,second,key", [
    ({"min_confidence": 0.1}, {"min_confidence": 0.3}, "min_confidence"),
    ({"expects": "normalized", "mean": 0.5, "std": 0.25},
     {"expects": "normalized", "mean": 0.0, "std": 1.0}, "teacher_mean"),
], ids=["min-confidence", "mean-std"])
def test_synthetic_cache_folder_guards_every_setting_that_chooses_the_images(
        const_generator, tmp_path, first, second, key):
    # Both used to be left out of the folder's settings: a folder filtered under one threshold
    # or normalisation was reused under another.
    def build(settings):
        return SyntheticDataset(const_generator, 2, teacher=_teacher(**settings),
                                cache=tmp_path / "c")

    build(first).generate()
    build(first)  # the same settings reuse it
    with pytest.raises(GanaugConfigError, match=rf"made with other arguments \({key}"):
        build(second)


# -- refusals --------------------------------------------------------------------------------
@pytest.mark.parametrize("temperature", [1e-45, 1e-300])
def test_a_tiny_temperature_gives_the_argmax_not_nan(temperature):
    # logits / T overflowed to inf, and softmax(inf, inf) is NaN: NaN targets poisoned the loss.
    teacher = _teacher(num_classes=3, temperature=temperature, label_weight=0.0)
    logits = torch.tensor([[2.0, 0.0, -2.0], [1e30, -1e30, 0.0], [0.0, 0.0, 0.0]])
    targets = teacher.targets(logits, torch.tensor([0, 1, 2]))
    torch.testing.assert_close(targets, torch.tensor([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0],
                                                      [1 / 3, 1 / 3, 1 / 3]]))


def test_huge_finite_logits_give_finite_targets():
    teacher = _teacher(num_classes=3, temperature=0.5, label_weight=0.0)
    targets = teacher.targets(torch.tensor([[3e38, 0.0, -3e38]]), torch.tensor([0]))
    torch.testing.assert_close(targets, torch.tensor([[1.0, 0.0, 0.0]]))


@pytest.mark.parametrize("labels,match", [
    ([0], r"got 1 label\(s\) for 2 images"),  # was broadcast into both rows' targets
    ([0, 3], r"got 0\.\.3"),  # was a raw RuntimeError of one_hot
    ([0, -1], r"got -1\.\.0"),
    ([0.0, 1.5], r"got torch.float32"),  # was truncated to class 1
    ([[0], [1]], r"got \(2, 1\)"),
])
def test_a_teacher_refuses_labels_that_do_not_fit_its_logits(labels, match):
    teacher = _teacher(num_classes=3)
    logits, labels = torch.zeros(2, 3), torch.tensor(labels)
    calls = [teacher.keep] if labels.ndim == 2 else [teacher.keep, teacher.targets]
    for call in calls:
        with pytest.raises(GanaugDataError, match=r"The labels must be \(N,\) integers in "
                                                  rf"0\.\.2, one per image; {match}"):
            call(logits, labels)
    if labels.ndim == 2:  # (N, K) labels are soft labels to targets()
        with pytest.raises(GanaugDataError, match=r"Soft labels \(2, 1\) do not match the "
                                                  r"teacher's logits \(2, 3\)"):
            teacher.targets(logits, labels)


@pytest.mark.parametrize("value", [-1.0, 255.0])
def test_a_teacher_refuses_float_images_outside_0_1(value):
    # Normalised or 0-255 float images were read as [0, 1] and silently converted again.
    with pytest.raises(GanaugDataError, match=r"The teacher takes uint8 \[0, 255\] or float "
                                              r"\[0, 1\] images, got floats spanning"):
        _teacher(num_classes=3).logits(torch.full((2, 3, 4, 4), value))


def test_a_ganaug_classifier_keeps_its_recorded_input_when_expects_is_given():
    # With an input stated it lost its size/channel fit and took the batch's (or timm's
    # ImageNet) statistics, or [0, 1] floats, instead of the [-1, 1] it was trained on.
    x8 = torch.full((1, 3, 4, 4), 255, dtype=torch.uint8)
    luma = 0.2989 + 0.587 + 0.114
    for kwargs in ({"expects": "normalized"}, {"expects": "normalized", "mean": 0.5, "std": 0.5}):
        model = MeanLinear()
        model.ganaug_config = {"in_chans": 1, "image_size": 2}
        model.pretrained_cfg = {"mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225)}
        Teacher(model, num_classes=3, **kwargs).logits(x8)
        torch.testing.assert_close(model.seen[0], torch.full((1, 1, 2, 2), 2 * luma - 1))
    for kwargs in ({"expects": "unit"}, {"expects": "uint8"},
                   {"expects": "normalized", "mean": (0.485, 0.456, 0.406),
                    "std": (0.229, 0.224, 0.225)}):
        with pytest.raises(GanaugConfigError, match=r"but a ganaug.evaluation classifier records "
                                                    r"its input: \[-1, 1\] at 2x2, 1 channel\(s\)"
                                                    r"; drop expects=, mean= and std="):
            Teacher(model, num_classes=3, **kwargs)


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
    teacher = _teacher(model, num_classes=3)
    with pytest.raises(GanaugConfigError, match=rf"it returned {got}; wrap it in an nn.Module "
                                                r"whose forward returns only the logits"):
        teacher.logits(torch.rand(2, 3, 4, 4))


@pytest.mark.parametrize("images,got", [
    (torch.rand(3, 4, 4), r"\(3, 4, 4\)"),  # one image: its channels were read as the batch
    (torch.rand(2, 3, 4, 4).numpy(), "ndarray"),  # was a raw AttributeError
    (torch.zeros(2, 3, 4, 4, dtype=torch.int32), r"\(2, 3, 4, 4\) torch.int32"),  # as [0, 1]
])
def test_a_teacher_refuses_what_is_no_image_batch(images, got):
    with pytest.raises(GanaugDataError, match=r"The teacher takes a \(N, C, H, W\) uint8 or float "
                                              rf"image batch, got {got}"):
        _teacher(num_classes=3).logits(images)
