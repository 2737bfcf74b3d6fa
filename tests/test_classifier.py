"""ganaug.classifier: timm models for small images, fixed-budget training, evaluation, features."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ganaug.classifier import (
    _class_weight_tensor,
    _TensorBatches,
    create_classifier,
    evaluate_classifier,
    extract_features,
    flip_suits,
    load_classifier,
    predict_logits,
    random_crop_flip,
    save_classifier,
    train_classifier,
)
from ganaug.errors import GanaugConfigError, GanaugDataError, GanaugModelError


def tiny(num_classes=10, in_chans=1, image_size=16, **kw):
    # Narrow resnet10t: a few thousand parameters, trains in seconds on a CPU.
    return create_classifier("resnet10t", num_classes=num_classes, in_chans=in_chans,
                             image_size=image_size, stem="cifar-3x3-pool", seed=0,
                             channels=(8, 16, 32, 64), stem_width=8, **kw)


# -- building ------------------------------------------------------------------------------------
def test_small_resnet_gets_cifar_stem_and_keeps_spatial_size():
    model = create_classifier("resnet18", num_classes=5, in_chans=3, image_size=16, seed=0)
    assert model.ganaug_stem == "cifar-3x3"
    assert isinstance(model.maxpool, nn.Identity)
    assert model.conv1.kernel_size == (3, 3) and model.conv1.stride == (1, 1)
    feats = model.forward_features(torch.zeros(2, 3, 16, 16))
    assert feats.shape == (2, 512, 2, 2)  # 16 -> 16 -> 8 -> 4 -> 2; timm's stem gives 1x1
    assert model(torch.zeros(2, 3, 16, 16)).shape == (2, 5)


def test_large_images_keep_the_timm_stem():
    model = create_classifier("resnet10t", num_classes=3, in_chans=1, image_size=96, seed=0)
    assert model.ganaug_stem == "timm"
    assert isinstance(model.maxpool, nn.MaxPool2d)


def test_pool_stem_keeps_the_maxpool():
    model = tiny()
    assert model.ganaug_stem == "cifar-3x3-pool"
    assert isinstance(model.maxpool, nn.MaxPool2d)
    assert model.conv1.in_channels == 1


def test_non_resnet_models_build_unchanged():
    model = create_classifier("vit_tiny_patch16_224", num_classes=4, in_chans=3, image_size=32,
                              seed=0, patch_size=8, depth=1)
    assert model.ganaug_stem == "timm"
    assert model(torch.zeros(1, 3, 32, 32)).shape == (1, 4)


def test_same_seed_same_weights():
    a, b = tiny(), tiny()
    for pa, pb in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(pa, pb)


def test_unknown_model_name_suggests_one():
    with pytest.raises(GanaugConfigError, match=r"Unknown timm model 'resnet1'.*Did you mean"):
        create_classifier("resnet1", num_classes=3, in_chans=3, image_size=16)


def test_cifar_stem_on_a_non_resnet_is_refused():
    with pytest.raises(GanaugConfigError, match=r"replaces a ResNet stem.*stem='timm'"):
        create_classifier("vit_tiny_patch16_224", num_classes=3, in_chans=3, image_size=32,
                          stem="cifar-3x3", patch_size=8, depth=1)


def test_bad_stem_and_sizes_are_refused():
    with pytest.raises(GanaugConfigError, match=r"Unknown stem 'cifar'"):
        create_classifier("resnet10t", num_classes=3, in_chans=3, image_size=16, stem="cifar")
    with pytest.raises(GanaugConfigError, match=r"in_chans must be 1 or 3; got 2"):
        create_classifier("resnet10t", num_classes=3, in_chans=2, image_size=16)
    with pytest.raises(GanaugConfigError, match=r"num_classes must be a positive integer; got 0"):
        create_classifier("resnet10t", num_classes=0, in_chans=3, image_size=16)


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
    batches = _TensorBatches(images, labels, 500, "balanced", torch.Generator().manual_seed(0))
    _, y = batches.next()
    assert 0.4 < y.float().mean().item() < 0.6


def test_uniform_sampler_visits_every_image_once_per_epoch():
    labels = torch.arange(10)
    images = torch.arange(10, dtype=torch.uint8).reshape(10, 1, 1, 1)
    batches = _TensorBatches(images, labels, 5, "uniform", torch.Generator().manual_seed(0))
    seen = torch.cat([batches.next()[1], batches.next()[1]])
    assert sorted(seen.tolist()) == list(range(10))


def test_balanced_class_weights_formula():
    labels = torch.tensor([0, 0, 0, 1])
    weights = _class_weight_tensor("balanced", labels, 2)
    torch.testing.assert_close(weights, torch.tensor([4 / (2 * 3), 4 / (2 * 1)]))
    with pytest.raises(GanaugConfigError, match=r"class_weights needs 2 values"):
        _class_weight_tensor([1.0, 2.0, 3.0], labels, 2)


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
    with pytest.raises(GanaugConfigError, match=r"steps must be a positive integer; got 0"):
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
    with pytest.raises(GanaugConfigError, match=r"was not built by ganaug.classifier"):
        train_classifier(nn.Linear(2, 2), train, steps=1)


# -- evaluation and features ---------------------------------------------------------------------
def test_evaluate_matches_predictions(digits16):
    _, test = digits16
    model = tiny()
    result = evaluate_classifier(model, test.images, test.labels)
    pred = predict_logits(model, test.images).argmax(1)
    assert result["accuracy"] == pytest.approx((pred == test.labels).float().mean().item())
    conf = torch.tensor(result["confusion"])
    assert conf.sum().item() == len(test) == result["n"]
    per_class = conf.diag() / conf.sum(1)
    assert result["per_class_accuracy"] == pytest.approx(per_class.tolist())
    assert result["balanced_accuracy"] == pytest.approx(per_class.mean().item())


def test_features_are_pooled_pre_logits(digits16):
    _, test = digits16
    model = tiny()
    feats = extract_features(model, test.images[:5])
    assert feats.shape == (5, model.num_features) and feats.dtype == torch.float32
    logits = model.get_classifier()(feats)
    torch.testing.assert_close(logits, predict_logits(model, test.images[:5]), atol=1e-4, rtol=1e-4)


def test_rgb_images_and_other_sizes_are_adapted(digits16):
    _, test = digits16
    model = tiny(image_size=16)
    rgb8 = test.images[:3, :, ::2, ::2].expand(-1, 3, -1, -1)
    assert predict_logits(model, rgb8).shape == (3, 10)


def test_save_load_round_trip(tmp_path, digits16):
    _, test = digits16
    model = tiny()
    path = save_classifier(model, tmp_path / "clf.safetensors", metadata={"note": "x"})
    loaded, meta = load_classifier(path)
    assert meta == {"note": "x"} and loaded.ganaug_stem == "cifar-3x3-pool"
    torch.testing.assert_close(predict_logits(loaded, test.images[:4]),
                               predict_logits(model, test.images[:4]))


def test_load_refuses_foreign_and_broken_files(tmp_path):
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, str(tmp_path / "foreign.safetensors"))
    with pytest.raises(GanaugModelError, match=r"not a ganaug classifier"):
        load_classifier(tmp_path / "foreign.safetensors")
    (tmp_path / "broken.safetensors").write_bytes(b"xx")
    with pytest.raises(GanaugModelError, match=r"Cannot read classifier file"):
        load_classifier(tmp_path / "broken.safetensors")
