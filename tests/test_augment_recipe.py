"""The recipe in one object (Distiller), the teacher check on real labels, and composition with
stock tools (ConcatDataset, timm Mixup, torchvision MixUp/CutMix)."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import ConcatDataset, DataLoader, Dataset

import ganaug
from ganaug.augment.recipe import SYNTHETIC_WEIGHT
from ganaug.augment.teacher import DROP_HARDEST, LABEL_WEIGHT, TEMPERATURE, agreement_floor
from ganaug.generator import Generator
from tests.conftest import ClassConstNet

K = 10
NAMES = [f"c{k}" for k in range(K)]


class Brightness(torch.nn.Module):
    """A teacher trained on images normalised with mean 0.5, std 0.25 whose class is their mean
    brightness: class k is brightness k/9, i.e. (k/9 - 0.5) / 0.25 after Normalize."""

    def __init__(self, order: list[int] | None = None) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 1, 1)  # gives the teacher its 3 input channels
        centers = (torch.arange(K) / (K - 1) - 0.5) / 0.25
        self.register_buffer("centers", centers if order is None else centers[order])

    def forward(self, x):
        m = x.mean(dim=(1, 2, 3))
        return -((m[:, None] - self.centers[None]) ** 2) * 50


def real_batch(n: int, noise: float, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` float [0, 1] images of class ``k`` at brightness ``k/9`` plus a per-image offset."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, K, (n,), generator=g)
    level = y.float() / (K - 1) + noise * torch.randn(n, generator=g)
    x = level.view(-1, 1, 1, 1).expand(n, 3, 8, 8).clamp(0, 1).contiguous()
    return x, y


@pytest.fixture
def const10():
    return Generator(ClassConstNet(num_classes=K, image_size=8), classes=NAMES)


def right_teacher(**kw) -> ganaug.Teacher:
    return ganaug.Teacher(Brightness(), expects="normalized", mean=0.5, std=0.25, **kw)


# -- the teacher check -------------------------------------------------------------------------
def test_a_right_teacher_agrees_with_real_labels():
    x, y = real_batch(512, noise=0.02)
    t = right_teacher()
    assert t.check(x, y) > 0.98
    assert t.real_rows == 512


@pytest.mark.parametrize("wrong", ["input", "columns", "natural-sort"])
def test_a_wrongly_set_up_teacher_is_refused(wrong):
    x, y = real_batch(512, noise=0.02)
    if wrong == "input":  # trained on normalised images, told it takes [0, 1]
        t = ganaug.Teacher(Brightness(), expects="unit")
    elif wrong == "columns":
        t = ganaug.Teacher(Brightness(order=list(range(3, K)) + [0, 1, 2]),
                           expects="normalized", mean=0.5, std=0.25)
    else:  # columns in plain-sorted order c0, c1, c10.. for a naturally sorted dataset
        order = sorted(range(K), key=lambda k: str(k))[::-1]
        t = ganaug.Teacher(Brightness(order=order), expects="normalized", mean=0.5, std=0.25)
    with pytest.raises(ganaug.GanaugConfigError, match="top class is the real label on only"):
        t.check(x, y)
    assert t.real_agreement < agreement_floor(K)


def test_a_weak_but_honest_teacher_is_accepted():
    x, y = real_batch(1024, noise=0.14)
    t = right_teacher()
    agreement = t.check(x, y)
    assert 0.22 < agreement < 0.45  # weak: the case the check must let through
    assert agreement_floor(K) == pytest.approx(0.2)


def test_batch_mixer_checks_the_teacher_on_its_real_rows(const10):
    wrong = ganaug.Teacher(Brightness(), expects="unit")
    mixer = ganaug.BatchMixer(const10, 0.25, classes=NAMES, teacher=wrong, seed=0)
    with pytest.raises(ganaug.GanaugConfigError, match="expects=/mean=/std="):
        for seed in range(8):  # 4 batches of 128 real rows reach the 512 of the check
            mixer(*real_batch(128, noise=0.02, seed=seed))
    assert wrong.real_rows >= 512


def test_batch_mixer_reports_the_teacher(const10):
    mixer = ganaug.BatchMixer(const10, 0.5, classes=NAMES, teacher=right_teacher(), seed=0)
    for seed in range(6):
        x, y = real_batch(128, noise=0.14, seed=seed)
        _out_x, out_y = mixer(x, y)
        assert out_y.dtype == y.dtype and out_y.shape == y.shape  # labels stay ints
    report = mixer.teacher_report
    assert 0.22 < report["real_agreement"] < 0.45
    assert report["real_rows"] == 512  # checked on the first 512 real rows, then trusted
    # the generator draws class k at brightness k/9: the teacher recognises every class
    assert set(report["synthetic_agreement"]) <= set(NAMES)
    assert min(report["synthetic_agreement"].values()) == 1.0
    # drop_hardest 0.1 of each call's candidates
    assert 0.8 < sum(report["acceptance"].values()) / len(report["acceptance"]) < 0.95


class Items(Dataset):
    """uint8 (C, H, W) images of ``real_batch`` with class names, like an ImageFolder."""

    def __init__(self, n: int, noise: float) -> None:
        x, self.y = real_batch(n, noise)
        self.x = (x * 255).round().to(torch.uint8)
        self.classes = NAMES
        self.class_to_idx = {c: k for k, c in enumerate(NAMES)}
        self.targets = self.y.tolist()

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i):
        return self.x[i], int(self.y[i])


def test_mixed_dataset_checks_the_teacher_on_real_items(const10):
    real = Items(300, noise=0.02)
    with pytest.raises(ganaug.GanaugConfigError, match="top class is the real label"):
        ganaug.MixedDataset(const10, real, ratio=0.1,
                            teacher=ganaug.Teacher(Brightness(), expects="unit"))
    mixed = ganaug.MixedDataset(const10, real, ratio=0.1, teacher=right_teacher())
    assert mixed.teacher.real_agreement > 0.98
    assert len(mixed) == 330


def test_a_bare_model_as_teacher_is_refused_with_the_fix(const10):
    with pytest.raises(ganaug.GanaugConfigError, match=r"takes a ganaug.Teacher.*Teacher\(model"):
        ganaug.BatchMixer(const10, 0.25, classes=NAMES, teacher=Brightness())
    with pytest.raises(ganaug.GanaugConfigError, match="takes a ganaug.Teacher"):
        ganaug.SyntheticDataset(const10, 2, teacher=Brightness())


# -- one recipe --------------------------------------------------------------------------------
def test_the_recipe_defaults_are_the_experiments():
    from ganaug.evaluation.arms import RECOMMENDED_SETTINGS
    from ganaug.evaluation.experiment import ExperimentSettings

    settings = ExperimentSettings(data="digits", arms="real+aug+gan+kd", **RECOMMENDED_SETTINGS)
    d = ganaug.Distiller(right_teacher())
    assert (d.teacher.temperature, d.teacher.label_weight) == (TEMPERATURE, LABEL_WEIGHT)
    assert (settings.kd_temperature, settings.kd_alpha) == (TEMPERATURE, LABEL_WEIGHT)
    assert settings.teacher_filter == d.teacher.drop_hardest == DROP_HARDEST
    assert settings.synthetic_loss_weight == d.synthetic_weight == SYNTHETIC_WEIGHT


def test_experiment_and_user_loop_give_the_same_targets_and_loss():
    """``ganaug experiment``'s +kd cell trains through the Distiller; the same batch through
    the user's loop (``distiller(x, y, mask)`` then ``distiller.loss``) gives the same numbers."""
    from ganaug.evaluation import create_classifier
    from ganaug.evaluation.experiment import ExperimentSettings, cell_distiller
    from ganaug.evaluation.recipe import train_classifier

    teacher_model = create_classifier("resnet10t", num_classes=K, in_chans=3, image_size=8,
                                      seed=1, channels=(4, 4, 4, 4))
    settings = ExperimentSettings(data="digits", arms="real+aug+gan+kd", teacher_filter=0.1,
                                  synthetic_loss_weight=0.3)
    seen = []

    class Recording(ganaug.Distiller):
        def targets(self, images, labels):
            out = super().targets(images, labels)
            seen.append({"images": images.clone(), "labels": labels.clone(), "targets": out})
            return out

        def loss(self, logits, targets, weights=None):
            out = super().loss(logits, targets, weights)
            seen[-1].update(logits=logits.detach(), weights=weights, loss=out.detach())
            return out

    distiller = cell_distiller(settings, teacher_model)
    distiller.__class__ = Recording
    x, y = real_batch(24, noise=0.02)
    images = (x * 255).round().to(torch.uint8)
    images[:, 0, 0, 0] = torch.arange(24, dtype=torch.uint8)  # each row findable by its pixel
    synthetic = torch.arange(24) >= 16  # the last 8 rows are "generated"
    student = create_classifier("resnet10t", num_classes=K, in_chans=3, image_size=8, seed=0,
                                channels=(4, 4, 4, 4))
    train_classifier(student, (images, y), steps=1, batch_size=24, synthetic=synthetic,
                     distiller=distiller, progress=False)
    batch = seen[0]
    # the user's loop on the same batch (the rows in the order the experiment drew them)
    order = batch["images"][:, 0, 0, 0].long()
    user = cell_distiller(settings, teacher_model)
    targets, weights = user(batch["images"], batch["labels"], synthetic[order])
    assert torch.equal(targets, batch["targets"])
    assert torch.equal(weights, batch["weights"].cpu())
    assert torch.allclose(user.loss(batch["logits"], targets, weights), batch["loss"])
    expected = LABEL_WEIGHT * torch.nn.functional.one_hot(batch["labels"], K)
    assert torch.allclose(targets.sum(1), torch.ones(24))
    assert bool((targets >= expected - 1e-6).all())


def test_distiller_blends_soft_labels_and_weighs_synthetic_rows():
    x, _y = real_batch(8, noise=0.0)
    d = ganaug.Distiller(right_teacher(temperature=1.0, label_weight=0.25), synthetic_weight=0.5)
    soft = torch.full((8, K), 1.0 / K)
    targets, weights = d(x, soft, torch.tensor([True, False] * 4))
    teacher_soft = d.teacher.logits(x).softmax(1)
    assert torch.allclose(targets, 0.25 * soft + 0.75 * teacher_soft, atol=1e-6)
    assert weights.tolist() == [0.5, 1.0] * 4
    logits = torch.randn(8, K)
    per_row = -(targets * logits.log_softmax(1)).sum(1)
    assert torch.allclose(d.loss(logits, targets, weights),
                          (weights * per_row).sum() / weights.sum())
    assert torch.allclose(ganaug.weighted_loss(logits, targets, weights == 0.5,
                                               synthetic_weight=0.5), d.loss(logits, targets,
                                                                             weights))


def test_weighted_loss_refuses_rows_that_are_not_probabilities():
    logits = torch.randn(2, 3)
    with pytest.raises(ganaug.GanaugDataError, match="must sum to 1"):
        ganaug.weighted_loss(logits, torch.zeros(2, 3))
    with pytest.raises(ganaug.GanaugDataError, match="must sum to 1"):
        ganaug.weighted_loss(logits, torch.full((2, 3), 2.0))


# -- composition with stock tools ---------------------------------------------------------------
def test_concat_of_real_and_teacher_filtered_synthetic_collates(const10):
    real = Items(40, noise=0.02)
    from torchvision.transforms.v2.functional import pil_to_tensor

    synth = ganaug.SyntheticDataset(const10, 3, classes=real.classes, teacher=right_teacher(),
                                    transform=pil_to_tensor)
    both = ConcatDataset([real, synth])
    x, y = next(iter(DataLoader(both, batch_size=70, shuffle=False)))
    assert x.shape == (70, 3, 8, 8) and y.dtype == torch.int64
    assert y[40:].tolist() == synth.targets[:30] == [k for k in range(K) for _ in range(3)]


def test_timm_mixup_before_or_after_a_teacher_guided_mixer(const10):
    from timm.data import Mixup

    mixup = Mixup(mixup_alpha=1.0, num_classes=K, label_smoothing=0.1)
    mixer = ganaug.BatchMixer(const10, 0.5, classes=NAMES, teacher=right_teacher(), seed=0)
    distiller = ganaug.Distiller(mixer.teacher)
    for seed in range(5):
        x, y = real_batch(8, noise=0.02, seed=seed)
        _after_x, after_y = mixup(*mixer(x, y))  # after: the mixer keeps (B,) int labels
        assert after_y.shape == (8, K)
        before_x, before_y = mixer(*mixup(x.clone(), y.clone()))  # before: (B, K) in and out
        assert before_y.shape == (8, K)
        assert torch.allclose(before_y.sum(1), torch.ones(8))
        targets, weights = distiller(before_x, before_y, mixer.last_synthetic_mask)
        assert targets.shape == (8, K) and weights.shape == (8,)


def test_torchvision_mixup_and_cutmix_after_the_mixer(const10):
    from torchvision.transforms import v2

    mixer = ganaug.BatchMixer(const10, 0.5, classes=NAMES, seed=0)
    x, y = real_batch(8, noise=0.02)
    for stock in (v2.MixUp(num_classes=K), v2.CutMix(num_classes=K)):
        out_x, out_y = stock(*mixer(x, y))
        assert out_x.shape == x.shape and out_y.shape == (8, K)
        _again_x, again_y = mixer(out_x, out_y)  # and before it: soft rows keep their mass
        assert torch.allclose(again_y.sum(1), torch.ones(8))


# -- nothing that silently does nothing ---------------------------------------------------------
def test_mixed_dataset_refuses_settings_that_add_nothing(const10):
    balanced = Items(100, noise=0.02)
    balanced.y = torch.arange(100) % K
    balanced.targets = balanced.y.tolist()
    with pytest.raises(ganaug.GanaugConfigError, match="adds no synthetic image.*ratio=0.5"):
        ganaug.MixedDataset(const10, balanced, balance="uniform")
    with pytest.raises(ganaug.GanaugConfigError, match="adds no synthetic image"):
        ganaug.MixedDataset(const10, balanced, ratio=0.001)
    mixed = ganaug.MixedDataset(const10, balanced, balance="uniform", ratio=0.5)
    assert sum(mixed.class_counts("synthetic").values()) == 50


def test_reprs_show_the_settings(const10):
    t = right_teacher(min_confidence=0.5)
    assert repr(t) == ("Teacher(Brightness, expects='normalized', temperature=4, "
                       "label_weight=0.5, drop_hardest=0.1, min_confidence=0.5)")
    mixer = ganaug.BatchMixer(const10, 0.25, classes=NAMES, teacher=t, seed=3)
    assert "fraction=0.25" in repr(mixer) and "seed=3" in repr(mixer) and "Teacher(" in repr(mixer)
    assert "synthetic_weight=0.3" in repr(ganaug.Distiller(t))


def test_distiller_takes_a_normalised_batch_with_its_statistics():
    x, y = real_batch(16, noise=0.02)
    plain = ganaug.Distiller(right_teacher())
    normalised = ganaug.Distiller(right_teacher(), mean=(0.4,) * 3, std=(0.2,) * 3)
    expected = plain.targets(x, y)
    assert torch.allclose(normalised.targets((x - 0.4) / 0.2, y), expected, atol=1e-5)
    with pytest.raises(ganaug.GanaugDataError, match="before Normalize"):
        plain.targets((x - 0.4) / 0.2, y)


def test_batch_mixer_checks_the_teacher_even_when_it_replaces_nothing(const10):
    wrong = ganaug.Teacher(Brightness(), expects="unit")
    mixer = ganaug.BatchMixer(const10, 0.0, classes=NAMES, teacher=wrong, seed=0)
    with pytest.raises(ganaug.GanaugConfigError, match="top class is the real label"):
        for seed in range(4):
            mixer(*real_batch(128, noise=0.02, seed=seed))
