"""Shared fixtures: tiny seeded CPU models and data (8-16 channels, 16x16, 3 classes)."""

from __future__ import annotations

import copy
import os
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

import pytest
import torch

# The shared data folder: $GANAUG_SHARED_DATA, else ../shared/data next to the repository.
SHARED_DATA = Path(os.environ.get("GANAUG_SHARED_DATA")
                   or Path(__file__).resolve().parents[1].parent / "shared" / "data")
CIFAR_MINI = SHARED_DATA / "cifar10-mini"
#: The training summary the shared model file carries.
MODEL_TRAINING = {"data": "digits", "data_fingerprint": "abc123", "steps": 10, "seed": 0,
                  "wall_time_s": 1.5, "metrics": {"fid": 12.25}}

# One thread: tiny test models gain nothing from more, and CI has 2 cores in all.
torch.set_num_threads(1)


@pytest.fixture
def tiny_net():
    """A 3-class, 3-channel, 16x16 dcgan generator network with 8 base channels."""
    from ganaug.models import build_generator

    torch.manual_seed(0)
    return build_generator("dcgan", num_classes=3, channels=3, image_size=16, z_dim=16, width=8)


@pytest.fixture
def tiny_generator(tiny_net):
    """A :class:`ganaug.Generator` around ``tiny_net`` with classes a, b, c."""
    from ganaug.generator import Generator

    return Generator(tiny_net, classes=["a", "b", "c"], arch="dcgan")


@pytest.fixture
def model_training() -> dict:
    """A copy of :data:`MODEL_TRAINING`, the ``training`` metadata of ``model_file``."""
    return copy.deepcopy(MODEL_TRAINING)


@pytest.fixture
def model_file(tiny_generator, tmp_path) -> Path:
    """``tiny_generator`` saved as ``tmp_path/g.safetensors`` with ``model_training``.

    Its BatchNorm running variances are shrunk first (on ``tiny_generator`` itself, so the two
    stay equal), which makes the images vary with z: grids and exports are not flat grey.
    """
    from ganaug.io import save

    with torch.no_grad():
        for m in tiny_generator.net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_var.fill_(1e-3)
    return save(tiny_generator, tmp_path / "g.safetensors",
                metadata={"training": copy.deepcopy(MODEL_TRAINING)})


@pytest.fixture
def model_path(model_file) -> str:
    """``model_file`` as a str, the form the transforms store and serialise."""
    return str(model_file)


@pytest.fixture(scope="module")
def digits16():
    """The digits train and test splits at 16x16 (grey): ``(train, test)``."""
    from ganaug.data import load_data

    return (load_data("digits", split="train", size=16),
            load_data("digits", split="test", size=16))


@pytest.fixture
def cifar_mini() -> Path:
    """The shared cifar10-mini folder; skips the test when it is absent."""
    if not CIFAR_MINI.is_dir():
        pytest.skip(f"{CIFAR_MINI} is not present")
    return CIFAR_MINI


class ClassConstNet(torch.nn.Module):
    """A stand-in generator: every pixel of class k is ``2k/(K-1) - 1`` (noise is ignored)."""

    def __init__(self, num_classes=3, channels=3, image_size=16, z_dim=4):
        super().__init__()
        self.num_classes, self.channels, self.image_size, self.z_dim = (
            num_classes, channels, image_size, z_dim)
        self.config = {"num_classes": num_classes, "channels": channels,
                       "image_size": image_size, "z_dim": z_dim}
        self.scale = torch.nn.Parameter(torch.ones(()))

    def forward(self, z, labels):
        value = labels.float() * 2 / (self.num_classes - 1) - 1
        out = value.view(-1, 1, 1, 1) * self.scale
        return out.expand(len(labels), self.channels, self.image_size, self.image_size)


@pytest.fixture
def const_generator():
    """A Generator whose class-k images are constant (``ClassConstNet``), classes a, b, c."""
    from ganaug.generator import Generator

    return Generator(ClassConstNet(), classes=["a", "b", "c"])


@pytest.fixture
def tiny_model_path(tiny_generator, tmp_path) -> Path:
    """``tiny_generator`` saved as ``tmp_path / "g.safetensors"``."""
    from ganaug import io

    path = tmp_path / "g.safetensors"
    io.save(tiny_generator, path)
    return path
