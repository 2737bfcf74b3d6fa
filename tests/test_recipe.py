"""ganaug.evaluation.recipe: crop/flip, batches, fixed-budget training, ClassifierRecipe."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ganaug.errors import GanaugConfigError, GanaugDataError
from ganaug.evaluation.batches import TensorBatches, collate_images
from ganaug.evaluation.classifier import create_classifier, evaluate_classifier, predict_logits
from ganaug.evaluation.recipe import (
    ClassifierRecipe,
    _batch_loss,
    _class_weight_tensor,
    flip_suits,
    random_crop_flip,
    train_classifier,
)


def tiny(num_classes=10, in_chans=1, image_size=16, **kw):
    # Narrow resnet10t: a few thousand parameters, trains in seconds on a CPU.
    return create_classifier("resnet10t", num_classes=num_classes, in_chans=in_chans,
                             image_size=image_size, stem="cifar-3x3-pool", seed=0,
                             channels=(8, 16, 32, 64), stem_width=8, **kw)


# -- augmentation --------------------------------------------------------------------------------
def test_crop_without_pad_or_flip_is_identity():
    x = torch.randint(0, 256, (4, 3, 8, 8), dtype=torch.uint8)
    torch.testing.assert_close(random_crop_flip(x, pad=0, flip=False), x)


def test_crop_returns_shifted_windows_of_the_padded_image():
    x = torch.arange(1, 2 * 1 * 6 * 6 + 1, dtype=torch.float32).reshape(2, 1, 6, 6)
    out = random_crop_flip(x, pad=2, flip=False, generator=torch.Generator().manual_seed(3))
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    for i in range(2):
        windows = [padded[i, :, dy:dy + 6, dx:dx + 6] for dy in range(5) for dx in range(5)]
        assert any(torch.equal(out[i], w) for w in windows)
    assert out.dtype == x.dtype and out.shape == x.shape


def test_flip_mirrors_some_images_and_keeps_the_rest():
    x = torch.randint(0, 256, (64, 1, 5, 5), dtype=torch.uint8)
    out = random_crop_flip(x, pad=0, flip=True, generator=torch.Generator().manual_seed(0))
    flipped = [torch.equal(o, xi.flip(-1)) for o, xi in zip(out, x)]
    kept = [torch.equal(o, xi) for o, xi in zip(out, x)]
    assert all(f or k for f, k in zip(flipped, kept))
    assert 10 < sum(flipped) < 54


def test_flip_suits_digits_not():
    assert not flip_suits("mnist5k?split=train")
    assert not flip_suits("digits")
    assert flip_suits("folder:/data/cifar10-mini")


# -- batches and weights -------------------------------------------------------------------------
def test_balanced_sampler_draws_classes_equally():
    labels = torch.tensor([0] * 90 + [1] * 10)
    images = torch.zeros(100, 1, 2, 2, dtype=torch.uint8)
    batches = TensorBatches(images, labels, 500, "balanced", torch.Generator().manual_seed(0))
    _, y = batches.next()
    assert 0.4 < y.float().mean().item() < 0.6


def test_class_balanced_sampler_draws_a_long_tail_in_equal_shares():
    from torch.utils.data import DataLoader, TensorDataset

    from ganaug import ClassBalancedSampler

    labels = [0] * 90 + [1] * 10
    dataset = TensorDataset(torch.arange(100), torch.tensor(labels))
    by_dataset = ClassBalancedSampler(dataset, num_samples=4000,
                                      generator=torch.Generator().manual_seed(0))
    assert len(by_dataset) == 4000
    picks = list(by_dataset)
    drawn = torch.tensor([labels[i] for i in picks])
    assert 0.45 < drawn.float().mean().item() < 0.55  # a plain uniform draw gives ~0.10
    # the weights are 1 / n_c of each item's class
    torch.testing.assert_close(by_dataset.weights[[0, 95]].float(), torch.tensor([1 / 90, 1 / 10]),
                               rtol=1e-6, atol=0)
    # the labels themselves work the same, and the same generator seed draws the same items
    by_labels = ClassBalancedSampler(labels, num_samples=4000,
                                     generator=torch.Generator().manual_seed(0))
    assert list(by_labels) == picks
    # without num_samples an epoch is the dataset's length; a DataLoader takes it as its sampler
    loader = DataLoader(dataset, batch_size=50, sampler=ClassBalancedSampler(
        dataset, generator=torch.Generator().manual_seed(1)))
    ys = torch.cat([y for _, y in loader])
    assert len(ys) == 100 and 25 < int(ys.sum()) < 75
    with pytest.raises(GanaugDataError, match=r"Class-balanced sampling needs >= 1 labels"):
        ClassBalancedSampler([])


def test_uniform_sampler_visits_every_image_once_per_epoch():
    labels = torch.arange(10)
    images = torch.arange(10, dtype=torch.uint8).reshape(10, 1, 1, 1)
    batches = TensorBatches(images, labels, 5, "uniform", torch.Generator().manual_seed(0))
    seen = torch.cat([batches.next()[1], batches.next()[1]])
    assert sorted(seen.tolist()) == list(range(10))


def test_a_batch_larger_than_memory_is_refused_before_drawing_it(monkeypatch):
    # --batch 10**12 on 40 images used to grow the index queue one permutation at a time:
    # quadratic, then out of memory (`ganaug experiment --batch 1000000000000` never ended).
    import ganaug._imaging as imaging

    monkeypatch.setattr(imaging, "available_memory", lambda: 10**9)
    images, labels = torch.zeros(40, 1, 8, 8, dtype=torch.uint8), torch.arange(40) % 4
    for sampler in ("uniform", "balanced"):
        with pytest.raises(GanaugConfigError, match=r"batch_size=1,000,000,000,000.*batch_size=128"):
            TensorBatches(images, labels, 10**12, sampler, torch.Generator().manual_seed(0))


def test_a_batch_of_many_epochs_is_drawn_in_one_go_as_epoch_by_epoch():
    labels = torch.arange(7)
    images = torch.arange(7, dtype=torch.uint8).reshape(7, 1, 1, 1)
    gen = torch.Generator().manual_seed(3)
    _, y = TensorBatches(images, labels, 7 * 5000 + 3, "uniform", gen).next()
    gen = torch.Generator().manual_seed(3)
    expected = torch.cat([torch.randperm(7, generator=gen) for _ in range(5001)])[:7 * 5000 + 3]
    assert torch.equal(y, expected)


def test_balanced_class_weights_formula():
    labels = torch.tensor([0, 0, 0, 1])
    weights = _class_weight_tensor("balanced", labels, 2)
    torch.testing.assert_close(weights, torch.tensor([4 / (2 * 3), 4 / (2 * 1)]))
    with pytest.raises(GanaugConfigError, match=r"class_weights needs 2 values"):
        _class_weight_tensor([1.0, 2.0, 3.0], labels, 2)


def test_class_weights_on_soft_targets_weigh_rows_not_the_target():
    """Class weights with soft targets (a Distiller, a teacher): PyTorch's weight= scales each
    class's term inside a row, so a head-class row's small teacher mass on a heavy tail class
    was pulled up ~7x: real+weighted+kd fell to 0.848 on the mnist5k long tail (tail classes at
    0.91-0.97, head classes lost). A row is weighted by its target's expected class weight, and
    the loss is still minimised by predicting the target itself."""
    weights = torch.tensor([0.5, 4.0, 1.0])
    soft = torch.tensor([[0.90, 0.05, 0.05], [0.10, 0.80, 0.10]])
    logits = soft.log().clone().requires_grad_(True)  # softmax(logits) == soft
    loss = _batch_loss(logits, soft, weights=weights, label_smoothing=0.0, row_weights=None)
    loss.backward()
    torch.testing.assert_close(logits.grad, torch.zeros_like(logits), atol=1e-6, rtol=0)
    per_row = -(soft * soft.log()).sum(1)
    row_w = soft @ weights
    torch.testing.assert_close(loss.detach(), (row_w * per_row).sum() / row_w.sum())
    # hard labels: PyTorch's weighted mean, and with row weights sum_i r_i w_yi CE_i / sum_i r_i,
    # as before (the cells of earlier experiments stay valid)
    hard = torch.tensor([0, 1])
    torch.testing.assert_close(
        _batch_loss(logits.detach(), hard, weights=weights, label_smoothing=0.0,
                    row_weights=None),
        nn.functional.cross_entropy(logits.detach(), hard, weight=weights))
    rows = torch.tensor([1.0, 0.3])
    ce = nn.functional.cross_entropy(logits.detach(), hard, reduction="none")
    torch.testing.assert_close(
        _batch_loss(logits.detach(), hard, weights=weights, label_smoothing=0.0,
                    row_weights=rows),
        (rows * weights[hard] * ce).sum() / rows.sum())
    # soft targets with row weights: the same normalisation, the expected class weight per row
    torch.testing.assert_close(
        _batch_loss(logits.detach(), soft, weights=weights, label_smoothing=0.0,
                    row_weights=rows),
        (rows * row_w * per_row).sum() / rows.sum())


# -- training ------------------------------------------------------------------------------------
def test_training_learns_digits(digits16):
    train, test = digits16
    model = train_classifier(tiny(), train, steps=40, batch_size=64, lr=0.1, augment="standard",
                             flip=False, progress=False)
    result = evaluate_classifier(model, test.images, test.labels)
    assert result["accuracy"] > 0.5  # chance is 0.1


def test_training_is_deterministic(digits16):
    train, test = digits16
    a = train_classifier(tiny(), train, steps=3, batch_size=32, augment="standard",
                         progress=False)
    b = train_classifier(tiny(), train, steps=3, batch_size=32, augment="standard",
                         progress=False)
    torch.testing.assert_close(predict_logits(a, test.images[:8]),
                               predict_logits(b, test.images[:8]))


def test_mixer_sees_uint8_batches_every_step(digits16):
    train, _ = digits16
    calls = []

    def mixer(x, y):
        calls.append((x.dtype, tuple(x.shape), y.dtype))
        soft = torch.nn.functional.one_hot(y, 10).float()  # soft labels must be accepted
        return x, soft

    train_classifier(tiny(), train, steps=3, batch_size=16, mixer=mixer, progress=False)
    assert calls == [(torch.uint8, (16, 1, 16, 16), torch.int64)] * 3


def test_dataset_input_and_tensor_tuple_input(digits16):
    train, _ = digits16
    small = train.subset(range(40))
    model = train_classifier(tiny(), small.to_dataset(), steps=2, batch_size=8, progress=False)
    assert not model.training
    train_classifier(tiny(), (small.images, small.labels), steps=2, batch_size=8,
                     class_weights="balanced", sampler="balanced", progress=False)


def test_training_argument_errors(digits16):
    train, _ = digits16
    with pytest.raises(GanaugConfigError, match=r"steps must be an integer >= 1, got 0"):
        train_classifier(tiny(), train, steps=0)
    with pytest.raises(GanaugConfigError, match=r"sampler must be 'uniform' or 'balanced'"):
        train_classifier(tiny(), train, steps=1, sampler="over")
    with pytest.raises(GanaugConfigError, match=r"augment must be None or 'standard'"):
        train_classifier(tiny(), train, steps=1, augment="strong")
    with pytest.raises(GanaugConfigError, match=r"batch_size must be an integer >= 2"):
        train_classifier(tiny(), train, steps=1, batch_size=1)
    with pytest.raises(GanaugDataError, match=r"train_data must be a LabeledImages"):
        train_classifier(tiny(), [1, 2, 3], steps=1)
    with pytest.raises(GanaugDataError, match=r"has label 9 but the classifier has 3 classes"):
        train_classifier(tiny(num_classes=3), train, steps=1)
    with pytest.raises(GanaugConfigError, match=r"was not built by ganaug.evaluation.create_classifier"):
        train_classifier(nn.Linear(2, 2), train, steps=1)




def test_collate_images_makes_uint8_batches():
    from PIL import Image

    items = [(Image.new("L", (2, 2), 7), 1), (torch.full((1, 2, 2), 0.5), 0),
             (torch.zeros(2, 2, dtype=torch.uint8), 2)]
    images, labels = collate_images(items)
    assert images.dtype == torch.uint8 and images.shape == (3, 1, 2, 2)
    assert images[:, 0, 0, 0].tolist() == [7, 128, 0] and labels.tolist() == [1, 0, 2]


# -- the recipe -----------------------------------------------------------------------------------
TINY_RECIPE = ClassifierRecipe(backbone="resnet10t", stem="cifar-3x3-pool", steps=3, batch_size=16,
                               model_kwargs={"channels": (8, 16, 32, 64), "stem_width": 8})


def test_recipe_trains_exactly_like_create_plus_train(digits16):
    train, test = digits16
    by_recipe = TINY_RECIPE.train(train, seed=0, progress=False)
    by_hand = train_classifier(tiny(), train, steps=3, batch_size=16, augment="standard",
                               flip=False, seed=0, progress=False)
    torch.testing.assert_close(predict_logits(by_recipe, test.images[:8]),
                               predict_logits(by_hand, test.images[:8]))
    assert by_recipe.ganaug_config == by_hand.ganaug_config


def test_recipe_follows_like_and_its_spec(digits16, monkeypatch):
    import ganaug.evaluation.recipe as recipe_module

    train, _ = digits16
    seen = {}

    def fake_train(model, data, **kwargs):
        seen.update(kwargs, model=model)
        return model

    monkeypatch.setattr(recipe_module, "train_classifier", fake_train)
    rgb_like = train.subset(range(4))
    rgb_like.images = rgb_like.images.expand(-1, 3, -1, -1)
    rgb_like.spec = "folder:/data/cats-and-dogs"
    TINY_RECIPE.train((train.images, train.labels), like=rgb_like, seed=1, sampler="balanced",
                      class_weights="balanced", desc="arm", progress=False)
    assert seen["model"].ganaug_config["in_chans"] == 3
    assert seen["flip"] is True  # cats and dogs may be mirrored; digits may not
    assert (seen["steps"], seen["batch_size"], seen["augment"], seen["seed"]) == (3, 16,
                                                                                  "standard", 1)
    assert (seen["sampler"], seen["class_weights"], seen["desc"]) == ("balanced", "balanced",
                                                                      "arm")
    TINY_RECIPE.train(train, seed=0, progress=False)
    assert seen["flip"] is False and seen["model"].ganaug_config["in_chans"] == 1


def test_recipe_checks_its_budget_on_creation():
    with pytest.raises(GanaugConfigError, match=r"steps must be an integer >= 1, got 0"):
        ClassifierRecipe(steps=0)
    with pytest.raises(GanaugConfigError, match=r"batch_size must be an integer >= 2, got 1"):
        ClassifierRecipe(batch_size=1)
    with pytest.raises(GanaugConfigError, match=r"augment must be None or 'standard'"):
        ClassifierRecipe(augment="strong")


# -- the synthetic loss weight ---------------------------------------------------------------------
def test_batch_loss_weights_rows_like_weighted_loss():
    from ganaug.augment import weighted_loss
    from ganaug.evaluation.recipe import _batch_loss

    torch.manual_seed(0)
    logits, labels = torch.randn(6, 4), torch.tensor([0, 1, 2, 3, 0, 1])
    mask = torch.tensor([False, True, False, True, True, False])
    w = torch.where(mask, 0.1, 1.0)
    got = _batch_loss(logits, labels, weights=None, label_smoothing=0.0, row_weights=w)
    torch.testing.assert_close(got, weighted_loss(logits, labels, mask, synthetic_weight=0.1))
    ce = torch.nn.functional.cross_entropy(logits, labels, reduction="none")
    torch.testing.assert_close(got, (ce * w).sum() / w.sum())
    plain = _batch_loss(logits, labels, weights=None, label_smoothing=0.0, row_weights=None)
    torch.testing.assert_close(plain, ce.mean())


def test_synthetic_rows_and_mixer_rows_get_the_synthetic_weight(digits16, monkeypatch):
    from ganaug.evaluation import recipe

    train, _ = digits16
    seen = []
    real_loss = recipe._batch_loss

    def spy(logits, labels, *, row_weights, **kw):
        seen.append((labels.clone(), row_weights.clone()))
        return real_loss(logits, labels, row_weights=row_weights, **kw)

    monkeypatch.setattr(recipe, "_batch_loss", spy)
    images, labels = train.images[:64], train.labels[:64]
    synthetic = labels >= 5  # pretend classes 5-9 are the synthetic rows

    class Replace:
        """Marks the batch's first row as replaced, like BatchMixer.last_synthetic_mask."""

        def __call__(self, x, y):
            self.last_synthetic_mask = torch.arange(len(y)) == 0
            return x, y

    train_classifier(tiny(), (images, labels), steps=3, batch_size=16, synthetic=synthetic,
                     synthetic_weight=0.25, mixer=Replace(), progress=False)
    assert len(seen) == 3
    for y, w in seen:
        expected = torch.where((y >= 5) | (torch.arange(16) == 0), 0.25, 1.0)
        torch.testing.assert_close(w, expected)
    with pytest.raises(GanaugDataError, match=r"synthetic= has 3 rows for 64 training images"):
        train_classifier(tiny(), (images, labels), steps=1, synthetic=synthetic[:3],
                         synthetic_weight=0.5, progress=False)
    with pytest.raises(GanaugConfigError, match=r"synthetic_weight must be a finite number in "
                                                 r"\(0, inf\), got 0.0"):
        train_classifier(tiny(), (images, labels), steps=1, synthetic=synthetic,
                         synthetic_weight=0.0, progress=False)
