"""The class names a dataset declares, read the same way by training and by the augment side.

A dataset's label ``i`` means the class *named* by its declaration: ``class_to_idx``
(torchvision ImageFolder and friends), timm's ``reader.class_to_idx``
(``timm.data.create_dataset``), or ``classes`` (a list or 1-D array: label ``i`` is
``classes[i]``), looking through wrappers that keep the original as ``.dataset`` (``Subset``,
:func:`ganaug.with_labels`) and into the parts of a ``ConcatDataset``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from torch.utils.data import ConcatDataset

from ganaug.errors import GanaugDataError


def dataset_class_to_idx(dataset: Any) -> dict[str, int] | None:
    """The ``{class name: label}`` a dataset declares, or ``None`` when it declares none.

    Reads, in order, ``class_to_idx``, ``reader.class_to_idx`` and ``classes`` (see the module
    docstring), through ``.dataset`` wrappers and into the parts of a ``ConcatDataset``.

    Raises:
        GanaugDataError: a ``ConcatDataset`` whose parts declare other names (a label would
            mean another class in each part), or of which only some parts declare names; a
            ``class_to_idx`` whose labels are not ints; ``classes`` naming a class twice.
    """
    seen = set()
    while dataset is not None and id(dataset) not in seen:
        seen.add(id(dataset))
        found = _declared(dataset)
        if found is not None:
            return found
        if isinstance(dataset, ConcatDataset):
            return _concat_class_to_idx(dataset)
        dataset = getattr(dataset, "dataset", None)
    return None


def _concat_class_to_idx(dataset: ConcatDataset) -> dict[str, int] | None:
    """The one ``{name: label}`` all parts of a ``ConcatDataset`` declare (``None``: none do)."""
    found = [dataset_class_to_idx(part) for part in dataset.datasets]
    named = [i for i, names in enumerate(found) if names is not None]
    if not named:
        return None
    first = named[0]
    for i, names in enumerate(found):
        part = f"part {i} ({type(dataset.datasets[i]).__name__})"
        if names is None:
            raise GanaugDataError(
                f"The ConcatDataset's {part} declares no class names, while part {first} "
                f"declares {found[first]}: ganaug cannot tell which class its labels are. Give "
                "every part the same class_to_idx (or classes), or pass classes= naming "
                "the labels of the whole ConcatDataset.")
        if names != found[first]:
            raise GanaugDataError(
                f"The ConcatDataset joins datasets with other class names: part {first} "
                f"declares {found[first]}, {part} {names}. A label would mean another class in "
                "each part. Relabel the parts to one class_to_idx (e.g. a target_transform "
                "mapping each part's labels by name) and pass classes= for the result, or "
                "use one dataset.")
    return found[first]


def _declared(dataset: Any) -> dict[str, int] | None:
    mapping = getattr(dataset, "class_to_idx", None)
    if not isinstance(mapping, Mapping) or not mapping:
        mapping = getattr(getattr(dataset, "reader", None), "class_to_idx", None)
    if isinstance(mapping, Mapping) and mapping:
        try:
            return {str(k): int(v) for k, v in mapping.items()}
        except (TypeError, ValueError, OverflowError) as err:  # {"cat": "zero"}, {"cat": None}
            raise GanaugDataError(
                f"{type(dataset).__name__}.class_to_idx maps a class name to something that is "
                f"not an int label ({err}). Give it {{name: label}} with int labels, or pass "
                "classes= explicitly.") from None
    classes = getattr(dataset, "classes", None)
    if isinstance(classes, np.ndarray) and classes.ndim == 1:  # a label encoder's classes_
        classes = classes.tolist()
    if isinstance(classes, Sequence) and not isinstance(classes, str) and len(classes) > 0:
        names = [str(name) for name in classes]
        if len(set(names)) < len(names):
            twice = sorted(n for n, k in Counter(names).items() if k > 1)
            raise GanaugDataError(
                f"{type(dataset).__name__}.classes names {', '.join(map(repr, twice[:5]))} more "
                "than once, so a class name would stand for two labels. Give each label its own "
                "name (dataset.classes = [name of label 0, name of label 1, ...]).")
        return {name: i for i, name in enumerate(names)}
    return None


__all__ = ["dataset_class_to_idx"]
