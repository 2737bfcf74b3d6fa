"""ganaug: class-conditional GANs as data augmentation for image classifiers.

Train a conditional GAN on a labelled image dataset, save it as one safetensors file, and use it
in torchvision, albumentations and timm pipelines. Heavy submodules load on first use, so
``import ganaug`` stays fast.
"""

from __future__ import annotations

import importlib as _importlib
import os as _os
from typing import TYPE_CHECKING

# albumentations phones home on import unless this is set; ganaug never wants that.
_os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

__version__ = "0.1.0"

from ganaug.errors import (
    GanaugConfigError,
    GanaugDataError,
    GanaugError,
    GanaugModelError,
    GanaugTrainingError,
)

# The one table of the public API: name -> module that defines it. ``__getattr__`` imports the
# module on first use, ``__all__`` lists the names, and the ``TYPE_CHECKING`` block below
# spells the same imports out for type checkers and IDEs (tests/test_public_api.py keeps the
# two equal).
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
    "SampleBank": "ganaug.augment",
    "GANAugment": "ganaug.augment",
    "BatchMixer": "ganaug.augment",
    "with_labels": "ganaug.augment",
    "SyntheticDataset": "ganaug.augment",
    "MixedDataset": "ganaug.augment",
    "Teacher": "ganaug.augment",
    "Distiller": "ganaug.augment",
    "weighted_loss": "ganaug.augment",
    "ClassBalancedSampler": "ganaug.augment",
    "build_generator": "ganaug.models",
    "build_discriminator": "ganaug.models",
    "list_archs": "ganaug.models",
}
# Submodules reachable as ``ganaug.<name>`` without an import statement.
_SUBMODULES = {
    "albumentations",
    "augment",
    "bench",
    "config",
    "data",
    "demo",
    "diffaug",
    "evaluation",
    "export",
    "generator",
    "io",
    "losses",
    "models",
    "plots",
    "training",
}

if TYPE_CHECKING:  # ``X as X``: an explicit re-export (PEP 484), as timm writes its API
    from ganaug.augment import BatchMixer as BatchMixer
    from ganaug.augment import ClassBalancedSampler as ClassBalancedSampler
    from ganaug.augment import Distiller as Distiller
    from ganaug.augment import GANAugment as GANAugment
    from ganaug.augment import MixedDataset as MixedDataset
    from ganaug.augment import SampleBank as SampleBank
    from ganaug.augment import SyntheticDataset as SyntheticDataset
    from ganaug.augment import Teacher as Teacher
    from ganaug.augment import weighted_loss as weighted_loss
    from ganaug.augment import with_labels as with_labels
    from ganaug.config import TrainConfig as TrainConfig
    from ganaug.data import LabeledImages as LabeledImages
    from ganaug.data import load_data as load_data
    from ganaug.export import export_image_folder as export_image_folder
    from ganaug.generator import Generator as Generator
    from ganaug.io import describe_model_file as describe_model_file
    from ganaug.io import load as load
    from ganaug.io import read_metadata as read_metadata
    from ganaug.io import save as save
    from ganaug.models import build_discriminator as build_discriminator
    from ganaug.models import build_generator as build_generator
    from ganaug.models import list_archs as list_archs
    from ganaug.training import Trainer as Trainer

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
        value = getattr(_importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        return _importlib.import_module(f"ganaug.{name}")
    raise AttributeError(f"module 'ganaug' has no attribute '{name}'")


def __dir__():
    """The public surface only: ``__all__`` and the submodules."""
    return sorted(set(__all__) | _SUBMODULES)
