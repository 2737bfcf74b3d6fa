"""Generated images as data augmentation: transforms, a batch mixer, datasets and the recipe.

* :mod:`~ganaug.augment.classes`: :class:`ClassMap`, the one place that says which generator
  class a dataset's label means (by name; by index only with ``classes="generator"``).
* :mod:`~ganaug.augment.source`: :class:`GeneratorSource` (a generator or a lazily loaded model
  file) and :class:`SampleBank` (per-class buffers, seeded per DataLoader worker).
* :mod:`~ganaug.augment.transform`: the torchvision v2 :class:`GANAugment` and :func:`with_labels`.
* :mod:`~ganaug.augment.albumentations`: the albumentations ``GANAugment`` (import it as
  ``ganaug.albumentations``; it needs albumentations, so it is not imported here).
* :mod:`~ganaug.augment.mixer`: :class:`BatchMixer` for the training loop.
* :mod:`~ganaug.augment.synthetic`: :class:`SyntheticDataset`; :mod:`~ganaug.augment.mixed`:
  :class:`MixedDataset`; :mod:`~ganaug.augment.counts`: the balance helpers and
  :class:`ClassBalancedSampler`.
* :mod:`~ganaug.augment.teacher`: :class:`Teacher` (a classifier that filters generated images
  and gives soft targets, checked on real labels); :mod:`~ganaug.augment.recipe`:
  :class:`Distiller` (the recommended recipe in a training loop) and :func:`weighted_loss`.

Every augmenter takes the generator first (``generator``), the dataset's classes as
``classes=`` and a :class:`Teacher` as ``teacher=``.
"""

from ganaug.augment.classes import ClassMap
from ganaug.augment.counts import ClassBalancedSampler, balance_counts, proportional_counts
from ganaug.augment.functional import UnsupportedImageError, fit_images, match_image, normalize
from ganaug.augment.mixed import MixedDataset, dataset_labels
from ganaug.augment.mixer import BatchMixer
from ganaug.augment.recipe import Distiller, weighted_loss
from ganaug.augment.source import GeneratorSource, SampleBank
from ganaug.augment.synthetic import SyntheticDataset
from ganaug.augment.teacher import Teacher
from ganaug.augment.transform import (
    GANAugment,
    LabeledTransformDataset,
    default_labels_getter,
    with_labels,
)

__all__ = [
    "BatchMixer",
    "ClassBalancedSampler",
    "ClassMap",
    "Distiller",
    "GANAugment",
    "GeneratorSource",
    "LabeledTransformDataset",
    "MixedDataset",
    "SampleBank",
    "SyntheticDataset",
    "Teacher",
    "UnsupportedImageError",
    "balance_counts",
    "dataset_labels",
    "default_labels_getter",
    "fit_images",
    "match_image",
    "normalize",
    "proportional_counts",
    "weighted_loss",
    "with_labels",
]
