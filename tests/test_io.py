"""The model file: save/load round trips, the metadata document, and every kind of bad file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

import ganaug
from ganaug.errors import GanaugConfigError, GanaugModelError
from ganaug.generator import Generator
from ganaug.io import (
    FORMAT_VERSION,
    SCHEMA,
    build_document,
    cpu_state_dict,
    describe_model_file,
    load,
    read_metadata,
    save,
)


def _write(path: Path, tensors: dict, doc=None, raw_meta: dict | None = None) -> Path:
    """A safetensors file with ``doc`` as the ganaug document (or ``raw_meta`` verbatim)."""
    meta = raw_meta if raw_meta is not None else {"ganaug": json.dumps(doc)}
    save_file(tensors, str(path), metadata=meta)
    return path


# -- round trips --------------------------------------------------------------------------------
def test_round_trip_samples_identical(tiny_generator, model_file):
    loaded = load(model_file)
    assert isinstance(loaded, Generator)
    assert not loaded.training and not loaded.net.training
    assert torch.equal(loaded.sample(n_per_class=4, seed=0),
                       tiny_generator.sample(n_per_class=4, seed=0))
    out_f = loaded.sample([0, 2], seed=3, output="float")
    torch.testing.assert_close(out_f, tiny_generator.sample([0, 2], seed=3, output="float"),
                               rtol=0, atol=0)


def test_round_trip_state_dict_and_attributes(tiny_generator, model_file):
    loaded = load(model_file)
    want = tiny_generator.net.state_dict()
    got = loaded.net.state_dict()
    assert list(got) == list(want)
    for k in want:
        assert torch.equal(got[k], want[k]), k
    assert loaded.classes == ["a", "b", "c"]
    assert (loaded.num_classes, loaded.image_size, loaded.channels, loaded.z_dim) == (3, 16, 3, 16)
    assert loaded.arch == "dcgan"
    assert loaded.device == torch.device("cpu")


def test_metadata_round_trip(tiny_generator, model_file, model_training):
    doc = read_metadata(model_file)
    assert doc == load(model_file).metadata
    assert doc["format"] == FORMAT_VERSION
    assert doc["ganaug_version"] == ganaug.__version__
    assert doc["arch"] == "dcgan"
    assert doc["arch_config"] == tiny_generator.net.config
    assert doc["class_names"] == ["a", "b", "c"]
    assert (doc["num_classes"], doc["image_size"], doc["channels"], doc["z_dim"]) == (3, 16, 3, 16)
    assert doc["normalization"]["range"] == [-1, 1]
    assert doc["training"] == model_training
    assert set(SCHEMA) <= set(doc)


def test_header_is_one_json_string_and_tensors_are_the_state_dict(tiny_generator, model_file):
    with safe_open(str(model_file), framework="pt") as f:
        meta = f.metadata()
        keys = set(f.keys())
    assert list(meta) == ["ganaug"]
    assert json.loads(meta["ganaug"])["arch"] == "dcgan"
    assert keys == set(tiny_generator.net.state_dict())
    assert any(k.endswith("running_mean") for k in keys)  # BN buffers travel too


def test_resave_keeps_training_and_extra_keys(tmp_path, model_file, model_training):
    loaded = load(model_file)
    again = save(loaded, tmp_path / "again.safetensors", metadata={"note": "fine-tuned"})
    doc = read_metadata(again)
    assert doc["training"] == model_training
    assert doc["note"] == "fine-tuned"
    assert torch.equal(load(again).sample(n_per_class=2, seed=1),
                       loaded.sample(n_per_class=2, seed=1))


def test_save_bare_net_infers_arch(tiny_net, tmp_path):
    path = save(tiny_net, tmp_path / "sub" / "dir" / "net.safetensors")
    assert path.is_file()
    doc = read_metadata(path)
    assert doc["arch"] == "dcgan"
    assert doc["class_names"] == ["0", "1", "2"]
    assert doc["training"] == {}
    assert [p.name for p in path.parent.iterdir()] == ["net.safetensors"]  # no temp file left


def test_save_is_atomic_on_failure(tiny_generator, tmp_path, monkeypatch):
    path = save(tiny_generator, tmp_path / "g.safetensors")
    before = path.read_bytes()

    def boom(*args, **kwargs):
        import errno

        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("safetensors.torch.save_file", boom)
    with pytest.raises(GanaugConfigError, match=r"Cannot write .*g.safetensors: no space left on "
                                                r"device; free space or choose another"):
        save(tiny_generator, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["g.safetensors"]


def test_load_leaves_global_rng_alone(model_file):
    load(model_file)  # warm imports
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    load(model_file)
    assert torch.equal(torch.rand(3), expected)


def test_load_half_precision_weights_into_float32(tiny_generator, tmp_path):
    tensors = {k: (v.half() if v.is_floating_point() else v)
               for k, v in cpu_state_dict(tiny_generator.net).items()}
    path = _write(tmp_path / "half.safetensors", tensors, build_document(tiny_generator))
    loaded = load(path)
    w = loaded.net.state_dict()["embed.weight"]
    assert w.dtype == torch.float32
    assert torch.equal(w, tensors["embed.weight"].float())


def test_describe_model_file(tiny_net, model_file):
    text = describe_model_file(model_file)
    n_params = sum(p.numel() for p in tiny_net.parameters())
    assert f"{n_params:,}" in text
    assert "dcgan" in text and "a, b, c" in text and "3 x 16 x 16" in text
    assert "training.steps" in text and "fid=12.25" in text
    lines = text.splitlines()
    assert all(len(line.split(None, 1)) == 2 for line in lines)
    assert lines[0].startswith("file")


# -- save errors ---------------------------------------------------------------------------------
def test_save_refuses_core_fields_in_metadata(tiny_generator, tmp_path):
    with pytest.raises(GanaugConfigError, match=r"may not set arch, num_classes"):
        save(tiny_generator, tmp_path / "x.safetensors", metadata={"arch": "x", "num_classes": 9})
    assert not (tmp_path / "x.safetensors").exists()


def test_non_finite_metrics_are_stored_as_strings(tiny_generator, tmp_path):
    path = save(tiny_generator, tmp_path / "x.safetensors",
                metadata={"training": {"final": {"loss_d": float("nan"), "grad": [float("inf"),
                                                                                  1.5]}}})
    assert read_metadata(path)["training"]["final"] == {"loss_d": "nan", "grad": ["inf", 1.5]}


def test_save_refuses_unserialisable_metadata(tiny_generator, tmp_path):
    with pytest.raises(GanaugConfigError, match="JSON-serialisable"):
        save(tiny_generator, tmp_path / "x.safetensors", metadata={"training": {"p": Path(".")}})
    with pytest.raises(GanaugConfigError, match=r"metadata\['training'\] must be a dict"):
        save(tiny_generator, tmp_path / "x.safetensors", metadata={"training": [1, 2]})


# -- bad files ----------------------------------------------------------------------------------
def test_missing_file(tmp_path):
    path = tmp_path / "nope.safetensors"
    with pytest.raises(GanaugModelError, match=r"No model file at .*nope\.safetensors"):
        load(path)
    with pytest.raises(GanaugModelError, match="No model file"):
        read_metadata(path)


def test_directory(tmp_path, model_file):
    with pytest.raises(GanaugModelError, match=r"is a directory.*found: g\.safetensors"):
        load(tmp_path)


@pytest.mark.parametrize("cut", [0, 5, 100, -1])
def test_truncated_file(model_file, tmp_path, cut):
    data = model_file.read_bytes()
    bad = tmp_path / "cut.safetensors"
    bad.write_bytes(data[:cut])
    with pytest.raises(GanaugModelError, match=r"cut\.safetensors is not a readable safetensors "
                                               r"file.*truncated or corrupt"):
        load(bad)


def test_png_file(tmp_path):
    from PIL import Image

    png = tmp_path / "image.png"
    Image.new("RGB", (4, 4)).save(png)
    with pytest.raises(GanaugModelError, match=r"image\.png is not a readable.*looks like a PNG"):
        load(png)


def test_torch_save_zip(tiny_net, tmp_path):
    pt = tmp_path / "g.pt"
    torch.save(tiny_net.state_dict(), pt)
    with pytest.raises(GanaugModelError, match=r"g\.pt is not a readable.*zip archive.*never "
                                               r"unpickles"):
        load(pt)


def test_plain_state_dict_safetensors(tiny_net, tmp_path):
    # what a timm checkpoint or a hand-saved state dict looks like: tensors, no ganaug metadata
    path = tmp_path / "plain.safetensors"
    save_file(cpu_state_dict(tiny_net), str(path))
    with pytest.raises(GanaugModelError, match=r"safetensors file but not a ganaug model.*"
                                               r"15 tensors"):
        load(path)
    _write(path, cpu_state_dict(tiny_net), raw_meta={"format": "pt"})
    with pytest.raises(GanaugModelError, match="not a ganaug model"):
        read_metadata(path)


def test_metadata_not_json(tiny_net, tmp_path):
    path = _write(tmp_path / "m.safetensors", cpu_state_dict(tiny_net),
                  raw_meta={"ganaug": "{not json"})
    with pytest.raises(GanaugModelError, match="'ganaug' metadata is not valid JSON"):
        load(path)
    _write(path, cpu_state_dict(tiny_net), raw_meta={"ganaug": "[1, 2]"})
    with pytest.raises(GanaugModelError, match="must be a JSON object, got list"):
        load(path)


def test_metadata_missing_fields(tiny_generator, tmp_path):
    doc = build_document(tiny_generator)
    del doc["z_dim"], doc["class_names"]
    path = _write(tmp_path / "m.safetensors", cpu_state_dict(tiny_generator.net), doc)
    with pytest.raises(GanaugModelError, match="metadata lacks class_names, z_dim"):
        load(path)


@pytest.mark.parametrize("field,value,accepted", [
    ("num_classes", "3", "an int >= 2"),
    ("num_classes", True, "an int >= 2"),
    ("channels", 2, "1 or 3"),
    ("class_names", ["a", "a", "c"], "a list of distinct"),
    ("class_names", "abc", "a list"),
    ("image_size", 16.0, "an int >= 1"),
    ("arch_config", [], "an object of constructor arguments"),
    ("normalization", {"range": [0, 1]}, "an object with \"range\""),
    ("training", None, "an object"),
    ("format", 0, "an int >= 1"),
])
def test_metadata_wrong_types(tiny_generator, tmp_path, field, value, accepted):
    doc = build_document(tiny_generator)
    doc[field] = value
    path = _write(tmp_path / "m.safetensors", cpu_state_dict(tiny_generator.net), doc)
    with pytest.raises(GanaugModelError, match=f"field '{field}' must be {accepted}"):
        load(path)


def test_metadata_fields_disagree(tiny_generator, tmp_path):
    doc = build_document(tiny_generator)
    doc["class_names"] = ["a", "b"]
    path = _write(tmp_path / "m.safetensors", cpu_state_dict(tiny_generator.net), doc)
    with pytest.raises(GanaugModelError, match="num_classes is 3 but class_names has 2"):
        load(path)
    doc = build_document(tiny_generator)
    doc["z_dim"] = 32
    _write(path, cpu_state_dict(tiny_generator.net), doc)
    with pytest.raises(GanaugModelError, match="arch_config disagrees .* on z_dim"):
        load(path)


def test_unknown_arch(tiny_generator, tmp_path):
    doc = build_document(tiny_generator)
    doc["arch"] = "stylegan9"
    path = _write(tmp_path / "m.safetensors", cpu_state_dict(tiny_generator.net), doc)
    with pytest.raises(GanaugModelError, match="needs arch 'stylegan9'.*dcgan"):
        load(path)
    with pytest.raises(GanaugModelError, match="needs arch 'stylegan9'"):
        describe_model_file(path)
    assert read_metadata(path)["arch"] == "stylegan9"  # the header alone is still readable


def test_newer_format(tiny_generator, tmp_path):
    doc = build_document(tiny_generator)
    doc["format"] = FORMAT_VERSION + 1
    doc["ganaug_version"] = "9.0.0"
    path = _write(tmp_path / "m.safetensors", cpu_state_dict(tiny_generator.net), doc)
    with pytest.raises(GanaugModelError, match=rf"format {FORMAT_VERSION + 1} \(written by "
                                               rf"ganaug 9\.0\.0\).*reads format "
                                               rf"{FORMAT_VERSION} at most\. Upgrade ganaug"):
        read_metadata(path)


def test_arch_config_cannot_be_built(tiny_generator, tmp_path):
    doc = build_document(tiny_generator)
    doc["arch_config"]["colour"] = "red"
    path = _write(tmp_path / "m.safetensors", cpu_state_dict(tiny_generator.net), doc)
    with pytest.raises(GanaugModelError, match="cannot be built from the file's arch_config"):
        load(path)


def test_huge_arch_config_fails_on_shapes_not_memory(tiny_generator, tmp_path):
    doc = build_document(tiny_generator)
    doc["arch_config"]["width"] = 10**7  # would be terabytes if built for real
    path = _write(tmp_path / "m.safetensors", cpu_state_dict(tiny_generator.net), doc)
    with pytest.raises(GanaugModelError, match=r"would have 3,200,026,140,000,195 parameters.*cap"):
        load(path)


def test_tensor_names_shapes_dtypes_mismatch(tiny_generator, tmp_path):
    doc = build_document(tiny_generator)
    tensors = cpu_state_dict(tiny_generator.net)
    tensors["extra.weight"] = torch.zeros(2)
    del tensors["net.1.running_var"]
    tensors["embed.weight"] = torch.zeros(5, 5)
    tensors["net.1.weight"] = tensors["net.1.weight"].to(torch.int32)
    path = _write(tmp_path / "m.safetensors", tensors, doc)
    with pytest.raises(GanaugModelError) as info:
        load(path)
    msg = str(info.value)
    assert "do not match the architecture" in msg
    assert "missing net.1.running_var" in msg
    assert "unexpected extra.weight" in msg
    assert "embed.weight has shape [5, 5], expected [3, 64]" in msg
    assert "net.1.weight has dtype I32, expected F32" in msg


def test_load_state_dict_error_is_wrapped(model_file, monkeypatch):
    def broken(self, state, strict=True):
        raise RuntimeError("Error(s) in loading state_dict")

    monkeypatch.setattr(torch.nn.Module, "load_state_dict", broken)
    with pytest.raises(GanaugModelError, match="weights cannot be loaded into arch 'dcgan'"):
        load(model_file)


def test_bad_device(model_file):
    with pytest.raises(GanaugConfigError, match="Unknown device 'gpu9'"):
        load(model_file, device="gpu9")


def test_errors_are_value_errors_too(tmp_path):
    with pytest.raises(ValueError):
        load(tmp_path / "missing.safetensors")


def test_public_names():
    assert ganaug.save is save and ganaug.load is load and ganaug.read_metadata is read_metadata


# -- devices ------------------------------------------------------------------------------------
def test_load_defaults_to_cpu(model_file, monkeypatch):
    import inspect

    from ganaug import _devices

    assert inspect.signature(load).parameters["device"].default == "cpu"
    # Even where a better device exists, the default stays on the CPU.
    monkeypatch.setattr(_devices, "best_device", lambda local_rank=0: torch.device("meta"))
    assert load(model_file).device == torch.device("cpu")


@pytest.mark.parametrize("device", ["auto", None])
def test_load_auto_and_none_take_the_best_device(model_file, monkeypatch, device):
    from ganaug import _devices

    assert load(model_file, device=device).device == _devices.best_device()
    monkeypatch.setattr(_devices, "best_device", lambda local_rank=0: torch.device("meta"))
    gen = load(model_file, device=device)
    assert gen.device == torch.device("meta") and next(gen.net.buffers()).is_meta


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_load_on_a_missing_device_is_a_config_error(model_file):
    with pytest.raises(GanaugConfigError, match=r"device 'cuda' asked for CUDA.*Use device='cpu', or 'auto'"):
        load(model_file, device="cuda")


def test_arch_is_found_through_the_public_registry(tiny_net, tmp_path):
    path = save(Generator(tiny_net), tmp_path / "bare.safetensors")  # no arch= given
    assert read_metadata(path)["arch"] == "dcgan"
    with pytest.raises(GanaugModelError, match=r"Cannot tell which registered arch built a _NotRegistered"):
        build_document(Generator(_NotRegistered()))


class _NotRegistered(torch.nn.Linear):
    num_classes, channels, image_size, z_dim = 2, 1, 16, 4

    def __init__(self):
        super().__init__(4, 4)
        self.config = {"num_classes": 2}


def test_a_model_loaded_on_the_cpu_samples_with_the_fast_layout(model_file, tiny_generator):
    # channels_last weights (the 1x1 projection kept contiguous) drew 1.5-2.9x more images per
    # second on the CPU (docs/performance.md); the images are the same
    loaded = load(model_file)
    convs = [m for m in loaded.net.modules() if isinstance(m, torch.nn.ConvTranspose2d)]
    assert all(m.weight.is_contiguous(memory_format=torch.channels_last)
               for m in convs if m.stride == (2, 2))
    assert torch.equal(loaded.sample(n_per_class=8, seed=4),
                       tiny_generator.sample(n_per_class=8, seed=4))


def test_a_classifier_file_is_named_as_one_where_a_generator_is_expected(tmp_path):
    """ganaug.load / info of a ganaug classifier file said "If these are generator weights,
    load them into ganaug.build_generator": they are a classifier's."""
    from ganaug.evaluation import create_classifier, save_classifier

    path = save_classifier(create_classifier("resnet10t", num_classes=3, in_chans=1,
                                             image_size=16, channels=(8, 8, 8, 8), stem_width=8),
                           tmp_path / "clf.safetensors")
    for reader in (ganaug.load, read_metadata, describe_model_file):
        with pytest.raises(GanaugModelError, match=r"clf\.safetensors is a ganaug classifier "
                                                   r"file, not a generator model.*ganaug\."
                                                   r"evaluation\.load_classifier") as err:
            reader(path)
        assert "build_generator" not in str(err.value)
