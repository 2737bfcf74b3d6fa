"""ganaug.evaluation.features: the cached real-data classifier and timm feature extractors."""

from __future__ import annotations

import pytest
import torch

from ganaug.errors import GanaugConfigError, GanaugModelError
from ganaug.evaluation.features import (
    DEFAULT_MODEL_KWARGS,
    cache_dir,
    evaluation_recipe,
    timm_feature_extractor,
    train_real_classifier,
)

TINY = {"backbone": "resnet10t", "stem": "cifar-3x3-pool", "batch_size": 64,
        "model_kwargs": {"channels": (8, 16, 32, 64), "stem_width": 8}}


def test_timm_features_from_a_local_weights_file(tmp_path):
    import timm
    from safetensors.torch import save_file

    model = timm.create_model("resnet10t", pretrained=False)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()},
              str(tmp_path / "w.safetensors"))
    extractor = timm_feature_extractor(f"resnet10t:{tmp_path / 'w.safetensors'}")
    feats = extractor(torch.zeros(2, 1, 8, 8, dtype=torch.uint8))
    assert feats.shape == (2, model.num_features)
    assert "resnet10t" in extractor.name


def test_timm_features_errors(tmp_path):
    with pytest.raises(GanaugConfigError, match=r"features must be NAME:WEIGHTS_FILE"):
        timm_feature_extractor("inception_v3")
    with pytest.raises(GanaugModelError, match=r"does not exist"):
        timm_feature_extractor(f"resnet10t:{tmp_path / 'missing.safetensors'}")
    from safetensors.torch import save_file

    save_file({"fc.weight": torch.zeros(2, 2)}, str(tmp_path / "bad.safetensors"))
    with pytest.raises(GanaugModelError, match=r"does not fit timm 'resnet10t'"):
        timm_feature_extractor(f"resnet10t:{tmp_path / 'bad.safetensors'}")



#: Files that are no weights of a timm model, and what the message must say about each.
FOREIGN_WEIGHTS = {
    "g.safetensors": r"is a ganaug generator model file, not the weights of a timm model",
    "empty.safetensors": r"cannot be read as safetensors \(.*header too small.*damaged",
    "cut.safetensors": r"cannot be read as safetensors \(.*damaged",
    "text.pth": r"cannot be read as a torch state dict \(.*\).*damaged",
    "list.pth": r"holds a list, not a state dict",
    "nested.pth": r"holds a list, not a state dict",
    "values.pth": r"holds a state dict whose entry 'conv1\.weight' is of type str, not a tensor",
    "folder.safetensors": r"does not exist or is not a file",
    "clf.safetensors": r"is a ganaug classifier file, a network rebuilt by ganaug\.evaluation\."
                       r"load_classifier, not by timm 'resnet10t'",
}


def _write_foreign_weights(tmp_path, tiny_generator, name):
    from ganaug.evaluation import create_classifier, save_classifier
    from ganaug.io import save

    path = tmp_path / name
    if name in ("g.safetensors", "cut.safetensors"):
        save(tiny_generator, tmp_path / "g.safetensors")
    writers = {
        "empty.safetensors": lambda: path.write_bytes(b""),
        "cut.safetensors": lambda: path.write_bytes((tmp_path / "g.safetensors").read_bytes()[:300]),
        "text.pth": lambda: path.write_bytes(b"hello, not weights"),
        "list.pth": lambda: torch.save([torch.zeros(2)], path),
        "nested.pth": lambda: torch.save({"state_dict": [1, 2]}, path),
        "values.pth": lambda: torch.save({"conv1.weight": "zeros", "step": 3}, path),
        "folder.safetensors": path.mkdir,
        "clf.safetensors": lambda: save_classifier(create_classifier(
            "resnet10t", num_classes=3, in_chans=1, image_size=16, **TINY["model_kwargs"]), path),
    }
    if name in writers:
        writers[name]()
    return path


@pytest.mark.parametrize("name", list(FOREIGN_WEIGHTS))
def test_a_damaged_or_foreign_weights_file_is_one_model_error(tmp_path, tiny_generator, name):
    """`--features NAME:FILE` ended in a raw SafetensorError, TypeError or KeyError traceback
    for an empty, truncated or foreign file."""
    path = _write_foreign_weights(tmp_path, tiny_generator, name)
    with pytest.raises(GanaugModelError, match=FOREIGN_WEIGHTS[name] + r".*Give the weights of "
                                                r"timm 'resnet10t'") as err:
        timm_feature_extractor(f"resnet10t:{path}")
    assert str(err.value).count("Give the weights") == 1  # one message, not one inside another


def test_timm_features_are_the_normalised_pooled_pre_logits(tmp_path):
    import timm
    from safetensors.torch import save_file

    model = timm.create_model("resnet10t", pretrained=False).eval()
    save_file({k: v.contiguous() for k, v in model.state_dict().items()},
              str(tmp_path / "w.safetensors"))
    extractor = timm_feature_extractor(f"resnet10t:{tmp_path / 'w.safetensors'}", device="cpu")
    images = torch.randint(0, 256, (3, 1, 8, 8), dtype=torch.uint8,
                           generator=torch.Generator().manual_seed(0))
    size = model.pretrained_cfg["input_size"][1:]  # (176, 176) for resnet10t
    x = torch.nn.functional.interpolate(images.float().div(255).expand(-1, 3, -1, -1),
                                        size=size, mode="bilinear", antialias=True)
    mean = torch.tensor(model.pretrained_cfg["mean"])[None, :, None, None]
    std = torch.tensor(model.pretrained_cfg["std"])[None, :, None, None]
    with torch.inference_mode():
        want = model.forward_head(model.forward_features((x - mean) / std), pre_logits=True)
    torch.testing.assert_close(extractor(images), want, atol=1e-4, rtol=1e-4)


# -- the real classifier --------------------------------------------------------------------------
def test_evaluation_recipe_defaults():
    narrow = evaluation_recipe()
    assert (narrow.backbone, narrow.stem, narrow.steps, narrow.batch_size, narrow.augment) == (
        "resnet10t", "cifar-3x3-pool", 300, 128, "standard")
    assert narrow.model_kwargs == DEFAULT_MODEL_KWARGS
    assert narrow.model_kwargs is not DEFAULT_MODEL_KWARGS
    assert evaluation_recipe("resnet18").model_kwargs == {}  # the narrow width is resnet10t's
    assert evaluation_recipe("resnet18", model_kwargs={"drop_rate": 0.1}).model_kwargs == {
        "drop_rate": 0.1}


def test_cache_dir_follows_the_argument_then_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("GANAUG_CACHE_DIR", str(tmp_path / "env"))
    assert cache_dir() == tmp_path / "env" / "features"
    assert cache_dir(tmp_path / "arg") == tmp_path / "arg" / "features"


def test_real_classifier_is_cached_by_data_and_recipe(digits16, tmp_path):
    train, _ = digits16
    model, path, cached = train_real_classifier(train, steps=2, seed=3, cache=tmp_path,
                                                progress=False, **TINY)
    assert not cached and path.parent == tmp_path / "features"
    assert path.name.startswith(train.fingerprint()[:20] + "-resnet10t-cifar-3x3-pool-")
    assert path.name.endswith("-2x64-s3.safetensors")
    again, same_path, cached = train_real_classifier(train, steps=2, seed=3, cache=tmp_path,
                                                     progress=False, **TINY)
    assert cached and same_path == path
    for a, b in zip(model.state_dict().values(), again.state_dict().values()):
        torch.testing.assert_close(a.cpu(), b)
    path.write_bytes(b"broken")  # a broken entry is retrained and overwritten
    _, _, cached = train_real_classifier(train, steps=2, seed=3, cache=tmp_path, progress=False,
                                         **TINY)
    assert not cached and path.stat().st_size > 100
    assert train_real_classifier(train, steps=1, cache=False, progress=False, **TINY)[1] is None
