"""Shared by the examples: a model path, or a tiny UNTRAINED generator saved to a temp dir.

The untrained generator makes noise-like images; it only shows the plumbing and runs in
seconds. Pass ``--model runs/NAME/generator.safetensors`` (from ``ganaug train``) for real use.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch

import ganaug
from ganaug.models import build_generator

REPO = Path(__file__).resolve().parents[1]
CIFAR_MINI = REPO.parent / "shared" / "data" / "cifar10-mini" / "train"


def model_path(model: str | None, classes: list[str], *, channels: int, size: int) -> str:
    """``model`` if given, else a tiny untrained dcgan for ``classes`` saved in a temp dir."""
    if model:
        return model
    torch.manual_seed(0)
    net = build_generator("dcgan", num_classes=len(classes), channels=channels, image_size=size,
                          z_dim=32, width=16)
    gen = ganaug.Generator(net, classes=classes, arch="dcgan")
    path = Path(tempfile.mkdtemp(prefix="ganaug-example-")) / "generator.safetensors"
    ganaug.save(gen, path)
    print(f"(no --model given: using a tiny UNTRAINED generator saved to {path})")
    return str(path)
