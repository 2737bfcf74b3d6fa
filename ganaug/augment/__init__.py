"""Generated images as data augmentation: transforms, a batch mixer and datasets.

* :mod:`~ganaug.augment.functional`: pure kernels (:func:`match_image`, :func:`fit_images`,
  :func:`normalize`, :func:`label_to_index`).
* :mod:`~ganaug.augment.source`: :class:`GeneratorSource` (a generator or a lazily loaded model
  file) and :class:`SampleBank` (per-class buffers, seeded per DataLoader worker).
* :mod:`~ganaug.augment.transform`: the torchvision v2 :class:`GANAugment` and :func:`with_labels`.
* :mod:`~ganaug.augment.albumentations`: the albumentations ``GANAugment`` (import it as
  ``ganaug.albumentations``; it needs albumentations, so it is not imported here).
* :mod:`~ganaug.augment.mixer`: :class:`BatchMixer` for the training loop.
* :mod:`~ganaug.augment.synthetic`: :class:`SyntheticDataset`; :mod:`~ganaug.augment.mixed`:
  :class:`MixedDataset` and the balance helpers.
* :mod:`~ganaug.augment.teacher`: :class:`Teacher` (relabel and filter generated samples by a
  classifier: soft targets, confidence and top-q loss filters) and :func:`weighted_loss`.

Randomness is drawn in one method and applied in a deterministic one: ``GANAugment.make_params``
then ``GANAugment.transform``, ``BatchMixer.make_params`` then ``BatchMixer.apply``.
"""

from ganaug.augment.functional import (
    UnsupportedImageError,
    check_same_classes,
    fit_images,
    label_to_index,
    match_image,
    normalize,
    per_class_counts,
)
from ganaug.augment.mixed import (
    MixedDataset,
    Replacer,
    balance_counts,
    dataset_labels,
    proportional_counts,
)
from ganaug.augment.mixer import BatchMixer
from ganaug.augment.source import GeneratorSource, SampleBank
from ganaug.augment.synthetic import SyntheticDataset
from ganaug.augment.teacher import Teacher, weighted_loss
from ganaug.augment.transform import (
    GANAugment,
    LabeledTransformDataset,
    default_labels_getter,
    with_labels,
)

__all__ = [
    "BatchMixer",
    "GANAugment",
    "GeneratorSource",
    "LabeledTransformDataset",
    "MixedDataset",
    "Replacer",
    "SampleBank",
    "SyntheticDataset",
    "Teacher",
    "UnsupportedImageError",
    "balance_counts",
    "check_same_classes",
    "dataset_labels",
    "default_labels_getter",
    "fit_images",
    "label_to_index",
    "match_image",
    "normalize",
    "per_class_counts",
    "proportional_counts",
    "weighted_loss",
    "with_labels",
]
