"""Fuzz the model-file loader: damaged files load correctly or raise GanaugModelError, nothing else.

Real tiny model files get bytes flipped (mostly in the JSON header, where parsing happens),
slices cut out, or their tail truncated; every outcome must be a working generator or a
:class:`ganaug.GanaugModelError`, never another exception type and never a hang.
"""

from __future__ import annotations

import contextlib
import struct
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ganaug.errors import GanaugModelError
from ganaug.generator import Generator
from ganaug.io import describe_model_file, load, read_metadata, save


@pytest.fixture(scope="module")
def original(tmp_path_factory) -> tuple[bytes, int, Path]:
    """(file bytes, end of the JSON header, a scratch path) for a tiny 2-class model."""
    from ganaug.models import build_generator

    torch.manual_seed(0)
    net = build_generator("dcgan", num_classes=2, channels=1, image_size=16, z_dim=8, width=4,
                          embed_dim=4)
    folder = tmp_path_factory.mktemp("fuzz")
    path = save(Generator(net, classes=["cat", "dog"]), folder / "g.safetensors",
                metadata={"training": {"steps": 3, "seed": 0}})
    data = path.read_bytes()
    header_end = 8 + struct.unpack("<Q", data[:8])[0]
    return data, header_end, folder / "damaged.safetensors"


def _check_outcome(path: Path) -> None:
    """Load ``path`` every public way; only success or GanaugModelError is acceptable."""
    try:
        gen = load(path)
    except GanaugModelError as err:
        assert str(path) in str(err) or "Model file" in str(err)
    else:
        images = gen.sample([0, 1], seed=0)
        assert images.shape == (2, gen.channels, gen.image_size, gen.image_size)
    for reader in (read_metadata, describe_model_file):
        with contextlib.suppress(GanaugModelError):
            reader(path)


def _mutations(max_pos: int):
    return st.lists(st.tuples(st.integers(0, max_pos - 1), st.integers(0, 255)),
                    min_size=1, max_size=4)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_flipped_header_bytes(original, data):
    raw, header_end, path = original
    buf = bytearray(raw)
    for pos, value in data.draw(_mutations(header_end)):
        buf[pos] = value
    path.write_bytes(bytes(buf))
    _check_outcome(path)


@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_flipped_bytes_anywhere_or_cut(original, data):
    raw, _, path = original
    buf = bytearray(raw)
    for pos, value in data.draw(_mutations(len(raw))):
        buf[pos] = value
    start = data.draw(st.integers(0, len(buf)))
    stop = data.draw(st.integers(start, len(buf)))
    if data.draw(st.booleans()):
        del buf[start:stop]
    path.write_bytes(bytes(buf))
    _check_outcome(path)


@settings(max_examples=25, deadline=None)
@given(length=st.integers(0, 10_000))
def test_truncated(original, length):
    raw, _, path = original
    length = length % len(raw)  # every proper prefix, the empty file included
    path.write_bytes(raw[:length])
    with pytest.raises(GanaugModelError, match="not a readable safetensors file"):
        load(path)


def test_original_loads(original):
    raw, _, path = original
    path.write_bytes(raw)
    assert load(path).classes == ["cat", "dog"]
