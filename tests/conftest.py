"""Shared fixtures: tiny seeded CPU models and data (8-16 channels, 16x16, 3 classes)."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

import pytest
import torch

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
CIFAR_MINI = SHARED_DATA / "cifar10-mini"

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
def cifar_mini() -> Path:
    """The shared cifar10-mini folder; skips the test when it is absent."""
    if not CIFAR_MINI.is_dir():
        pytest.skip(f"{CIFAR_MINI} is not present")
    return CIFAR_MINI


@pytest.fixture(scope="session")
def digits16():
    """The bundled digits at 16x16: ``(train split, test split)`` LabeledImages, 10 classes."""
    from ganaug.data import load_data

    return (load_data("digits", split="train", size=16),
            load_data("digits", split="test", size=16))
