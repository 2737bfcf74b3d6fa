"""Class identity by name: map a dataset's labels to a generator's classes.

A dataset's label ``i`` means the class *named* ``dataset_classes[i]``; a generator's class
``j`` is the class named ``generator.classes[j]``. The two lists often differ in order (timm's
folder reader sorts ``c1, c2, ..., c10`` naturally, torchvision and ganaug sort plainly) or in
content (a folder holding only some of the classes). Every entry point that pairs a dataset's
labels with generated images goes through :func:`class_lookup`, so a label is turned into the
generator's class of the **same name**, never the one at the same index. Per-sample
transforms (``GANAugment``, :func:`ganaug.with_labels`, the albumentations transform) hold a
:class:`ClassMap` built on it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from ganaug._checks import label_transform_owner
from ganaug._classnames import dataset_class_to_idx
from ganaug.augment.functional import label_to_index
from ganaug.errors import GanaugDataError

#: The largest label a dataset's class_to_idx may give (the lookup table has one entry each).
MAX_LABEL = 2**16 - 1


def to_class_to_idx(*, class_to_idx: Any = None, classes: Any = None,
                    names_arg: str = "classes") -> dict[str, int] | None:
    """The dataset's ``{name: label}`` from a user's ``class_to_idx=`` or list of names.

    ``classes[i]`` names label ``i``; ``names_arg`` is what the caller calls that list
    (``classes`` or ``dataset_classes``), for the messages. ``None`` when neither is given.

    Raises:
        GanaugDataError: both given; a mapping that is not ``{str: int in 0..MAX_LABEL}``; names
            that are not a list of str or repeat a name; an empty mapping or list.
    """
    if class_to_idx is not None and classes is not None:
        raise GanaugDataError(f"Pass class_to_idx= or {names_arg}=, not both: they say the same "
                              f"thing ({names_arg}[i] is the name of label i).")
    if classes is not None:
        names = (list(classes) if isinstance(classes, Sequence) and not isinstance(classes, str)
                 else None)
        if names is None or not all(isinstance(name, str) for name in names):
            raise GanaugDataError(f"{names_arg}= must be a list of class names (str), "
                                  f"{names_arg}[i] naming label i; got {classes!r}.")
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise GanaugDataError(f"{names_arg}= names {', '.join(twice)} more than once: "
                                  "each label needs its own class name.")
        mapping = {name: i for i, name in enumerate(names)}
    elif class_to_idx is not None:
        if not isinstance(class_to_idx, Mapping):
            raise GanaugDataError(f"class_to_idx= must be a {{name: label}} dict, got "
                                  f"{type(class_to_idx).__name__}.")
        check_labels(class_to_idx, "class_to_idx=")
        mapping = {str(k): int(v) for k, v in class_to_idx.items()}
    else:
        return None
    if not mapping:
        raise GanaugDataError(f"class_to_idx= / {names_arg}= is empty; pass the dataset's class "
                              "names (e.g. class_to_idx=dataset.class_to_idx), or leave it out.")
    return mapping


def class_lookup(generator_classes: Sequence[str], class_to_idx: Mapping[str, int] | None, *,
                 what: str = "the dataset") -> torch.Tensor | None:
    """``lut`` with ``lut[label] = generator class index`` of the class with the same name.

    Args:
        generator_classes: the generator's class names (index ``j`` is class ``j``).
        class_to_idx: the dataset's ``{name: label}``; ``None`` when the dataset declares no
            names (then labels are taken as generator indices, and the caller says so).
        what: how to name the dataset in messages.

    Returns:
        An int64 tensor of length ``max(label) + 1`` (``-1`` for labels the dataset does not
        use), or ``None`` when ``class_to_idx`` is ``None``.

    Raises:
        GanaugDataError: names the generator does not have (listed, with the generator's
            classes), two names with one label, or a negative label.
    """
    if class_to_idx is None:
        return None
    gen = [str(c) for c in generator_classes]
    unknown = sorted(name for name in class_to_idx if name not in gen)
    if unknown:
        missing = sorted(set(gen) - set(class_to_idx))
        raise GanaugDataError(
            f"{what} has classes the generator does not know: {', '.join(unknown)}. The "
            f"generator's classes are: {', '.join(gen)}"
            + (f" (not in {what}: {', '.join(missing)})" if missing else "")
            + ". Train or pick a generator on the same classes, or pass class_to_idx= / classes= "
              "naming the generator's classes for each label.")
    labels = list(class_to_idx.values())
    if len(set(labels)) != len(labels) or min(labels) < 0:
        raise GanaugDataError(
            f"{what}'s class_to_idx gives two classes one label, or a negative label: "
            f"{dict(class_to_idx)}. Each class needs its own label >= 0.")
    lut = torch.full((max(labels) + 1,), -1, dtype=torch.int64)
    for name, label in class_to_idx.items():
        lut[label] = gen.index(name)
    return lut


def lookup(lut: torch.Tensor | None, labels: torch.Tensor, *, what: str = "the dataset"
           ) -> torch.Tensor:
    """Map dataset labels (int tensor) to generator indices with ``lut`` (``None``: unchanged)."""
    if lut is None:
        return labels
    labels = labels.long()
    bad = (labels < 0) | (labels >= len(lut))
    if not bad.any():
        out = lut.to(labels.device)[labels]
        bad = out < 0
        if not bad.any():
            return out
    first = int(labels[bad.nonzero()[0]].item()) if labels.ndim else int(labels.item())
    raise GanaugDataError(
        f"Label {first} of {what} names no class: its class_to_idx has labels "
        f"{sorted(int(i) for i in (lut >= 0).nonzero().flatten())}. Fix the labels or pass the "
        "matching class_to_idx= / classes=.")


# -- per-sample label maps (GANAugment, with_labels, the albumentations transform) -------
def dataset_mapping(class_to_idx: Any, dataset_classes: Any) -> dict[str, int] | None:
    """``{name: label}`` from ``class_to_idx=`` or ``dataset_classes=`` (a list), or ``None``."""
    return to_class_to_idx(class_to_idx=class_to_idx, classes=dataset_classes,
                           names_arg="dataset_classes")


def check_labels(class_to_idx: Mapping[Any, Any], what: str) -> None:
    """Refuse a ``{name: label}`` whose names are not str or labels not ints in 0..MAX_LABEL."""
    for name, label in class_to_idx.items():
        if (not isinstance(name, str) or isinstance(label, bool)
                or not isinstance(label, (int, np.integer)) or not 0 <= label <= MAX_LABEL):
            raise GanaugDataError(
                f"{what} must map class names (str) to int labels in 0..{MAX_LABEL}, got "
                f"{name!r}: {label!r}. Pass e.g. {{'cat': 0, 'dog': 1}}.")


def declared_class_to_idx(dataset: Any) -> dict[str, int] | None:
    """:func:`dataset_class_to_idx`, with a bad declared mapping as a GanaugDataError.

    Names that describe the labels before a ``target_transform`` (an ImageFolder's
    ``class_to_idx`` with ``target_transform=`` set) are refused: the labels that reach the
    caller are the transform's, whose classes nothing declares.
    """
    for obj in (dataset, getattr(dataset, "reader", None)):
        mapping = getattr(obj, "class_to_idx", None)
        if isinstance(mapping, Mapping):
            check_labels(mapping, f"{type(dataset).__name__}.class_to_idx")
    found = dataset_class_to_idx(dataset)
    owner = label_transform_owner(dataset) if found is not None else None
    if owner is not None:
        raise GanaugDataError(
            f"{type(dataset).__name__} passes its labels through the target_transform of "
            f"{owner}: its class_to_idx {found} names the labels before it, so ganaug cannot "
            "tell which class each label it returns is. Pass class_to_idx= naming the labels "
            "it returns, or remove the target_transform.")
    return found


class ClassMap:
    """Turns a dataset's labels into the generator's class indices, by class name.

    Unbound (no dataset names known), an int label is taken as the generator's index and
    must be in its range. Bound to a dataset's ``{name: label}``, label ``i`` becomes the
    generator's class named like the dataset's class ``i``; names the generator lacks are
    refused when binding, listing both sides.
    """

    def __init__(self, generator_classes: list[str], where: str) -> None:
        self.generator_classes = list(generator_classes)
        self.where = where
        self.mapping: dict[str, int] | None = None
        self.what = ""
        self._lut: list[int] | None = None
        self._fix = ""

    def bind(self, mapping: Mapping[str, int], what: str) -> None:
        """Map labels by the names in ``mapping``; refuses a second, different binding."""
        mapping = {str(k): int(v) for k, v in mapping.items()}
        if self.mapping is not None:
            if mapping != self.mapping:
                raise GanaugDataError(
                    f"{self.where} already maps labels by the class names of {self.what} "
                    f"({self.mapping}); {what} has other ones ({mapping}). Use one "
                    f"{self.where} per dataset.")
            return
        lut = class_lookup(self.generator_classes, mapping, what=what)
        self.mapping, self.what, self._lut = mapping, what, lut.tolist()
        self._fix = f"The labels of {what} are {mapping}."

    def __call__(self, label: Any) -> int:
        """The generator's class index of ``label`` (int, 0-d tensor, or a class name, which is
        always looked up by name)."""
        fix = "Use a generator trained on the same classes as the dataset."
        try:
            if self._lut is None or isinstance(label, str):
                return label_to_index(label, self.generator_classes, error=GanaugDataError,
                                      fix=fix)
            index = label_to_index(label, range(len(self._lut)), error=GanaugDataError,
                                   fix=self._fix)
        except GanaugDataError as err:
            raise GanaugDataError(f"{self.where}: {err}") from None
        cls = self._lut[index]
        if cls < 0:
            raise GanaugDataError(f"{self.where}: label {index} names no class of {self.what} "
                                  f"({self.mapping}). Fix the label or class_to_idx=.")
        return cls
