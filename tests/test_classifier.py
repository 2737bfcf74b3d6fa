"""ganaug.evaluation.classifier: timm models for small images, inference, features, files."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ganaug.errors import GanaugConfigError, GanaugDataError, GanaugModelError
from ganaug.evaluation.classifier import (
    check_same_classes,
    create_classifier,
    evaluate_classifier,
    extract_features,
    load_classifier,
    predict_logits,
    save_classifier,
    to_input,
)


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
    with pytest.raises(GanaugConfigError, match=r"stem must be one of .*, got 'cifar'"):
        create_classifier("resnet10t", num_classes=3, in_chans=3, image_size=16, stem="cifar")
    with pytest.raises(GanaugConfigError, match=r"in_chans must be 1 or 3, got 2"):
        create_classifier("resnet10t", num_classes=3, in_chans=2, image_size=16)
    with pytest.raises(GanaugConfigError, match=r"num_classes must be an integer >= 1, got 0"):
        create_classifier("resnet10t", num_classes=0, in_chans=3, image_size=16)


# -- inputs -------------------------------------------------------------------------------------
def test_to_input_scales_uint8_and_unit_floats_to_minus_one_one():
    model = tiny(image_size=2)
    x = torch.tensor([0, 51, 204, 255], dtype=torch.uint8).reshape(1, 1, 2, 2)
    expected = torch.tensor([-1.0, -0.6, 0.6, 1.0]).reshape(1, 1, 2, 2)
    torch.testing.assert_close(to_input(model, x), expected)
    torch.testing.assert_close(to_input(model, x.float() / 255), expected)


def test_to_input_converts_channels_and_size():
    grey = tiny(image_size=4)
    rgb = torch.zeros(1, 3, 4, 4)
    rgb[:, 0] = 1.0  # pure red: luma 0.2989
    torch.testing.assert_close(to_input(grey, rgb), torch.full((1, 1, 4, 4), 0.2989 * 2 - 1),
                               atol=1e-4, rtol=0)
    colour = tiny(in_chans=3, image_size=2)
    out = to_input(colour, torch.full((1, 1, 4, 4), 255, dtype=torch.uint8))
    torch.testing.assert_close(out, torch.ones(1, 3, 2, 2))
    # the resize is the antialiased bilinear one of F.interpolate
    x = torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    want = torch.nn.functional.interpolate(x, size=(4, 4), mode="bilinear", antialias=True,
                                           align_corners=False)
    torch.testing.assert_close(to_input(tiny(image_size=4), x), want.sub(0.5).div(0.5))


def test_to_input_errors():
    with pytest.raises(GanaugDataError, match=r"images must be \(N, C, H, W\); got shape \(1, 4, 4\)"):
        to_input(tiny(), torch.zeros(1, 4, 4))
    with pytest.raises(GanaugDataError, match=r"images have 2 channels; the classifier takes 1"):
        to_input(tiny(), torch.zeros(1, 2, 4, 4))


def test_check_same_classes_names_the_differences():
    check_same_classes("a", ["x", "y"], "b", ["x", "y"])  # no error
    with pytest.raises(GanaugDataError, match=r"Class-count mismatch: a has 2 classes, b has 3"):
        check_same_classes("a", ["x", "y"], "b", ["x", "y", "z"])
    with pytest.raises(GanaugDataError, match=r"Class names differ between a and b.*'y' vs 'q'"):
        check_same_classes("a", ["x", "y"], "b", ["x", "q"])


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
    assert extract_features(model, test.images[:0]).shape == (0, model.num_features)
    assert predict_logits(model, test.images[:0]).shape == (0, 10)
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


def test_a_generator_file_is_named_as_one_and_never_to_be_deleted(model_file):
    """load_classifier(generator.safetensors) said "not a ganaug classifier ... Delete it to
    retrain": the advice would lose the user's model."""
    with pytest.raises(GanaugModelError, match=r"g\.safetensors is a ganaug generator model "
                                               r"file, not a classifier.*ganaug\.load") as err:
        load_classifier(model_file)
    assert "Delete" not in str(err.value)


@pytest.mark.parametrize("name, message", [
    ("missing.safetensors", r"No classifier file at .*missing\.safetensors"),
    ("folder", r"folder is not a file"),
    ("foreign.safetensors", (r"foreign\.safetensors is a safetensors file but not a ganaug "
                             r"classifier .*save_classifier")),
    ("photo.png", r"Cannot read classifier file .*photo\.png: .*damaged.*save_classifier"),
])
def test_no_classifier_file_is_refused_without_advice_to_delete_it(tmp_path, name, message):
    """A user's file (or a wrong path) passed to load_classifier is no cache entry: "Delete it
    to retrain" was wrong advice, and nonsense for a path that does not exist."""
    from safetensors.torch import save_file

    path = tmp_path / name
    if name == "folder":
        path.mkdir()
    elif name == "foreign.safetensors":
        save_file({"w": torch.zeros(2)}, str(path))
    elif name == "photo.png":
        path.write_bytes(b"\x89PNG\r\n\x1a\n not a classifier")
    with pytest.raises(GanaugModelError, match=message) as err:
        load_classifier(path)
    assert "Delete" not in str(err.value)


@pytest.mark.parametrize("doc", ["{not json", "[]", '{"config": 3}', '{"metadata": {}}',
                                 '{"config": {"name": "resnet10t"}}'])
def test_load_refuses_damaged_classifier_metadata(tmp_path, doc):
    """A classifier file whose ganaug metadata was damaged raised a raw JSONDecodeError,
    KeyError or TypeError."""
    from safetensors.torch import save_file

    path = tmp_path / "clf.safetensors"
    save_file({"w": torch.zeros(2)}, str(path), metadata={"ganaug_classifier": doc})
    with pytest.raises(GanaugModelError, match=r"clf\.safetensors.*damaged.*Delete it"):
        load_classifier(path)


def test_load_refuses_weights_of_another_network(tmp_path):
    model = tiny()
    path = save_classifier(model, tmp_path / "clf.safetensors")
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
        tensors = {k: f.get_tensor(k) for k in list(f.keys())[:-1]}
    save_file(tensors, str(path), metadata=meta)
    with pytest.raises(GanaugModelError, match=r"clf\.safetensors.*do not fit"):
        load_classifier(path)


@pytest.mark.parametrize("key,value", [("num_classes", 10**6), ("channels", [64, 128, 256, 512])])
def test_load_refuses_metadata_larger_than_the_weights_before_building(tmp_path, monkeypatch,
                                                                       key, value):
    """A damaged or edited config (num_classes 10**6, wider channels) built the full network,
    allocating what the metadata asked for, before the weights were found not to fit: a
    hostile file could ask for terabytes. The network is now measured without memory first."""
    import json

    from safetensors import safe_open
    from safetensors.torch import save_file

    from ganaug.evaluation import classifier

    path = save_classifier(tiny(), tmp_path / "clf.safetensors")
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
        tensors = {k: f.get_tensor(k) for k in list(f.keys())}
    doc = json.loads(meta["ganaug_classifier"])
    config = doc["config"] if key == "num_classes" else doc["config"]["model_kwargs"]
    config[key] = value
    save_file(tensors, str(path), metadata={"ganaug_classifier": json.dumps(doc)})
    built = []
    real = classifier.create_classifier

    def spy(*args, **kwargs):
        model = real(*args, **kwargs)
        built.append(next(model.parameters()).device.type)
        return model

    monkeypatch.setattr(classifier, "create_classifier", spy)
    with pytest.raises(GanaugModelError, match=r"clf\.safetensors.*do not fit.*Delete it"):
        load_classifier(path)
    assert built == ["meta"]  # measured without memory, never built for real
