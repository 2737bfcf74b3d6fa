"""ganaug: class-conditional GANs as data augmentation for image classifiers.

Train a conditional GAN on a labelled image dataset, save it as one safetensors file, and use it
in torchvision, albumentations and timm pipelines. Heavy submodules load on first use, so
``import ganaug`` stays fast.
"""

from __future__ import annotations

import importlib
import os

# albumentations phones home on import unless this is set; ganaug never wants that.
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

__version__ = "0.1.0"

from ganaug.errors import (
    GanaugConfigError,
    GanaugDataError,
    GanaugError,
    GanaugModelError,
    GanaugTrainingError,
)

# public name -> module that defines it (imported lazily by __getattr__)
_LAZY = {
    "LabeledImages": "ganaug.data",
    "load_data": "ganaug.data",
    "Generator": "ganaug.generator",
    "save": "ganaug.io",
    "load": "ganaug.io",
    "read_metadata": "ganaug.io",
    "describe_model_file": "ganaug.io",
    "export_image_folder": "ganaug.export",
    "TrainConfig": "ganaug.config",
    "Trainer": "ganaug.training",
    "SampleBank": "ganaug.transforms",
    "GANAugment": "ganaug.transforms",
    "BatchMixer": "ganaug.transforms",
    "with_labels": "ganaug.datasets",
    "SyntheticDataset": "ganaug.datasets",
    "MixedDataset": "ganaug.datasets",
    "build_generator": "ganaug.models",
    "build_discriminator": "ganaug.models",
    "list_archs": "ganaug.models",
}
_SUBMODULES = {"albumentations", "bench", "classifier", "config", "data", "datasets", "diffaug",
               "experiment", "export", "generator", "io", "losses", "metrics", "models", "plots",
               "training", "transforms"}

__all__ = [  # noqa: PLE0604 (the lazy names are strings too)
    "__version__",
    "GanaugError",
    "GanaugDataError",
    "GanaugConfigError",
    "GanaugModelError",
    "GanaugTrainingError",
    *_LAZY,
]


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        return importlib.import_module(f"ganaug.{name}")
    raise AttributeError(f"module 'ganaug' has no attribute '{name}'")


def __dir__():
    return sorted(set(globals()) | set(__all__) | _SUBMODULES)
