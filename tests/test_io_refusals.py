"""Model files that must be refused: non-finite weights, non-regular files, absurd sizes."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from ganaug.errors import GanaugModelError
from ganaug.generator import Generator
from ganaug.io import (
    cpu_state_dict,
    describe_model_file,
    load,
    read_metadata,
    save,
)
from ganaug.models import MAX_PARAMETERS


def _poison(generator: Generator, value: float) -> str:
    name, tensor = next((k, v) for k, v in generator.net.state_dict().items()
                        if v.is_floating_point())
    with torch.no_grad():
        tensor.view(-1)[0] = value
    return name


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_save_refuses_non_finite_weights(tiny_generator, tmp_path, value):
    name = _poison(tiny_generator, value)
    out = tmp_path / "g.safetensors"
    with pytest.raises(GanaugModelError, match=rf"non-finite.*{name}"):
        save(tiny_generator, out)
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []  # no temp file left behind


def test_load_refuses_non_finite_weights(model_file, tmp_path):
    from safetensors import safe_open

    with safe_open(str(model_file), framework="pt") as f:
        meta = f.metadata()
        state = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    name = next(k for k, v in state.items() if v.is_floating_point())
    state[name].view(-1)[3] = float("nan")
    bad = tmp_path / "nan.safetensors"
    save_file(state, str(bad), metadata=meta)
    with pytest.raises(GanaugModelError, match=rf"{name}.*1 non-finite"):
        load(bad)


def test_generate_refuses_non_finite_output(tiny_generator):
    _poison(tiny_generator, float("nan"))
    with pytest.raises(GanaugModelError, match="non-finite"):
        tiny_generator.sample(n_per_class=2, seed=0)
    with pytest.raises(GanaugModelError, match="non-finite"):
        tiny_generator.sample([0, 1], seed=0, output="float")


def test_cpu_state_dict_unchanged(tiny_generator):
    assert set(cpu_state_dict(tiny_generator.net)) == set(tiny_generator.net.state_dict())


# -- not a regular file ---------------------------------------------------------------------------
@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
@pytest.mark.parametrize("reader", [load, read_metadata, describe_model_file])
def test_fifo_refused_without_hanging(tmp_path, reader):
    fifo = tmp_path / "model.safetensors"
    os.mkfifo(fifo)
    result: list = []

    def call():
        try:
            reader(fifo)
        except GanaugModelError as err:
            result.append(err)

    t = threading.Thread(target=call, daemon=True)
    t.start()
    t.join(10)
    if t.is_alive():  # unblock the reader so the test process can exit
        with open(fifo, "wb"):
            pass
        pytest.fail(f"{reader.__name__} hangs on a FIFO")
    assert result and "not a regular file" in str(result[0])


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="needs /dev/zero")
def test_device_file_refused():
    with pytest.raises(GanaugModelError, match=r"/dev/zero is not a regular file.*FIFO"):
        load("/dev/zero")


# -- absurd sizes ---------------------------------------------------------------------------------
def _absurd(model_file: Path, tmp_path: Path, **changes) -> Path:
    from safetensors import safe_open

    with safe_open(str(model_file), framework="pt") as f:
        doc = json.loads(f.metadata()["ganaug"])
        state = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    for key, value in changes.items():
        if key in doc["arch_config"]:
            doc["arch_config"][key] = value
        if key in doc:
            doc[key] = value
    if "num_classes" in changes:
        doc["class_names"] = [f"c{i}" for i in range(changes["num_classes"])]
    out = tmp_path / "absurd.safetensors"
    save_file(state, str(out), metadata={"ganaug": json.dumps(doc)})
    return out


@pytest.mark.parametrize("changes", [{"width": 10**7}, {"embed_dim": 10**9}])
def test_absurd_architecture_refused_before_allocating(model_file, tmp_path, changes):
    path = _absurd(model_file, tmp_path, **changes)
    with pytest.raises(GanaugModelError, match=r"(parameters|pixels).*(cap|at most)"):
        load(path)
    with pytest.raises(GanaugModelError, match=r"(parameters|pixels).*(cap|at most)"):
        describe_model_file(path)


def test_cap_is_generous():
    assert MAX_PARAMETERS >= 10**9


def _nan_file(model_file: Path, tmp_path: Path) -> Path:
    from safetensors import safe_open

    with safe_open(str(model_file), framework="pt") as f:
        meta = f.metadata()
        state = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    name = next(k for k, v in state.items() if v.is_floating_point())
    state[name].view(-1)[0] = float("inf")
    out = tmp_path / "inf.safetensors"
    save_file(state, str(out), metadata=meta)
    return out


def test_info_refuses_what_load_refuses(model_file, tmp_path):
    path = _nan_file(model_file, tmp_path)
    with pytest.raises(GanaugModelError, match="non-finite"):
        load(path)
    with pytest.raises(GanaugModelError, match=r"the weights are non-finite.*1 non-finite of"):
        describe_model_file(path)


def test_info_refuses_mismatched_tensors(model_file, tmp_path):
    from safetensors import safe_open

    with safe_open(str(model_file), framework="pt") as f:
        meta = f.metadata()
        state = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    state.pop(min(state))
    path = tmp_path / "short.safetensors"
    save_file(state, str(path), metadata=meta)
    with pytest.raises(GanaugModelError, match="do not match the architecture.*missing"):
        describe_model_file(path)


def test_sampling_refuses_negative_and_huge_seeds(tiny_generator):
    from ganaug.errors import GanaugConfigError

    for seed in (-1, 2**70):
        with pytest.raises(GanaugConfigError, match=r"seed must be an integer from 0"):
            tiny_generator.sample([0], seed=seed)


def test_every_sampler_refuses_a_generator_that_draws_nan(tiny_generator):
    """GANAugment and BatchMixer go through Generator.generate: no black images slip through."""
    from ganaug import BatchMixer, GANAugment

    _name, tensor = next((k, v) for k, v in tiny_generator.net.state_dict().items()
                        if v.is_floating_point() and not k.startswith("embed"))
    with torch.no_grad():
        tensor.view(-1)[0] = float("nan")  # every class's images go through it
    x = torch.rand(4, 3, 16, 16)
    y = torch.tensor([0, 1, 2, 0])
    with pytest.raises(GanaugModelError, match="non-finite"):
        BatchMixer(tiny_generator, 1.0, classes="generator", seed=0)(x, y)
    with pytest.raises(GanaugModelError, match="non-finite"):
        GANAugment(tiny_generator, p=1.0, classes="generator", seed=0)(
            torch.zeros(3, 16, 16, dtype=torch.uint8), 1)
    with pytest.raises(GanaugModelError, match="non-finite"):  # a class name needs no classes=
        GANAugment(tiny_generator, p=1.0, seed=0)(torch.zeros(3, 16, 16, dtype=torch.uint8), "b")


def _recast(model_file: Path, tmp_path: Path, dtype: torch.dtype, scale: float = 1.0) -> Path:
    """``model_file`` with its float tensors stored as ``dtype`` (times ``scale``)."""
    from safetensors import safe_open

    with safe_open(str(model_file), framework="pt") as f:
        meta = f.metadata()
        state = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    state = {k: (v.double() * scale).to(dtype) if v.is_floating_point() else v
             for k, v in state.items()}
    out = tmp_path / f"{str(dtype).split('.')[-1]}.safetensors"
    save_file(state, str(out), metadata=meta)
    return out


def test_weights_that_overflow_the_network_dtype_are_refused_at_load_and_info(model_file,
                                                                            tmp_path):
    # float64 weights of 1e300 are finite in the file but inf once cast to the float32 network:
    # load and info passed them, and every sample then failed on NaN pixels
    path = _recast(model_file, tmp_path, torch.float64, scale=1e300)
    with pytest.raises(GanaugModelError, match=r"non-finite.*float32"):
        load(path)
    with pytest.raises(GanaugModelError, match=r"non-finite.*float32"):
        describe_model_file(path)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64,
                                   torch.float8_e4m3fn, torch.float8_e5m2])
def test_weights_of_any_float_width_load_and_pass_info(model_file, tmp_path, dtype):
    # float8 was refused as "damaged": isfinite is not implemented for it
    path = _recast(model_file, tmp_path, dtype)
    gen = load(path)
    assert next(gen.net.parameters()).dtype == torch.float32
    assert gen.sample(n_per_class=1, seed=0).shape == (3, 3, 16, 16)
    assert "parameters" in describe_model_file(path)
