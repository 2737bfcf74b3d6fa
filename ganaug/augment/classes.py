"""Class identity by name: which generator class each dataset label means.

A dataset's label ``i`` means the class *named* ``classes[i]``; a generator's class ``j`` is
the class named ``generator.classes[j]``. The two lists often differ in order (timm's folder
reader sorts ``c1, c2, ..., c10`` naturally, torchvision and ganaug sort plainly) or in content
(a folder holding only some of the classes). Every augmenter builds one :class:`ClassMap` from
the generator and the dataset's ``classes=`` and turns labels into generator classes through
it, by **name**. Labels are taken as the generator's own indices only when the caller says so
(``classes="generator"``); never silently.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from ganaug._checks import label_transform_owner
from ganaug._classnames import dataset_class_to_idx
from ganaug.augment.functional import label_to_index
from ganaug.errors import GanaugConfigError, GanaugDataError

__all__ = ["GENERATOR_ORDER", "ClassMap", "declared_class_to_idx", "parse_classes"]

#: ``classes="generator"``: the labels are the generator's own class indices.
GENERATOR_ORDER = "generator"
#: The largest label a dataset's class_to_idx may give (the lookup table has one entry each).
MAX_LABEL = 2**16 - 1


def parse_classes(classes: Any) -> dict[str, int] | str | None:
    """The dataset's classes from a ``classes=`` argument: ``{name: label}``, ``"generator"``
    or ``None`` (not given).

    ``classes`` is a list of names (``classes[i]`` names label ``i``, as torchvision's
    ``dataset.classes``), a ``{name: label}`` mapping (``dataset.class_to_idx``), or
    ``"generator"`` (the labels are the generator's own class indices).
    """
    if classes is None or classes == GENERATOR_ORDER:
        return classes
    if isinstance(classes, Mapping):
        check_labels(classes, "classes=")
        mapping = {str(k): int(v) for k, v in classes.items()}
    elif isinstance(classes, Sequence) and not isinstance(classes, str) and all(
            isinstance(name, str) for name in classes):
        twice = sorted({name for name in classes if list(classes).count(name) > 1})
        if twice:
            raise GanaugDataError(f"classes= names {', '.join(twice)} more than once: each "
                                  "label needs its own class name.")
        mapping = {name: i for i, name in enumerate(classes)}
    else:
        raise GanaugConfigError(
            f"classes= must be the dataset's class names in label order (dataset.classes), "
            f"its {{name: label}} mapping (dataset.class_to_idx), or 'generator' (the labels "
            f"are the generator's own class indices); got {classes!r}.")
    if not mapping:
        raise GanaugDataError("classes= is empty; pass the dataset's class names "
                              "(classes=dataset.classes).")
    return mapping


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
            "tell which class each label it returns is. Pass classes= naming the labels "
            "it returns, or remove the target_transform.")
    return found


class ClassMap:
    """Turns a dataset's labels into the generator's class indices, by class name.

    Args:
        generator_classes: the generator's class names (index ``j`` is class ``j``).
        classes: the dataset's classes (see :func:`parse_classes`); ``None`` leaves the map
            unbound until :meth:`bind` (a class name is still looked up by name, an int label
            is refused).
        where: the augmenter, for messages.
        what: where ``classes`` came from, for messages (``"classes="``, or the dataset).

    Raises:
        GanaugDataError: dataset names the generator lacks (both lists named), two names with
            one label.
    """

    def __init__(self, generator_classes: Sequence[str], classes: Any = None, *,
                 where: str, what: str = "classes=") -> None:
        self.generator_classes = [str(c) for c in generator_classes]
        self.where = where
        #: The dataset's ``{name: label}`` (None: unbound, or labels are generator indices).
        self.mapping: dict[str, int] | None = None
        self.by_index = False
        self.what = ""
        self._lut: torch.Tensor | None = None
        self._list: list[int] = []
        parsed = parse_classes(classes)
        if parsed is not None:
            self.bind(parsed, what)

    @property
    def bound(self) -> bool:
        """Whether int labels can be mapped (names known, or ``classes="generator"``)."""
        return self.by_index or self.mapping is not None

    def bind(self, classes: Mapping[str, int] | str, what: str) -> None:
        """Map labels by ``classes`` (``{name: label}`` or ``"generator"``); a second, different
        binding is refused (one augmenter per dataset)."""
        if classes != GENERATOR_ORDER:
            classes = {str(k): int(v) for k, v in classes.items()}
        if self.bound:
            current = GENERATOR_ORDER if self.by_index else self.mapping
            if classes != current:
                raise GanaugDataError(
                    f"{self.where} already maps labels by the classes of {self.what} "
                    f"({current}); {what} has other ones ({classes}). Use one {self.where} "
                    "per dataset.")
            return
        self.what = what
        if classes == GENERATOR_ORDER:
            self.by_index = True
            return
        gen = self.generator_classes
        unknown = sorted(name for name in classes if name not in gen)
        if unknown:
            missing = sorted(set(gen) - set(classes))
            raise GanaugDataError(
                f"{what} has classes the generator does not know: {', '.join(unknown)}. The "
                f"generator's classes are: {', '.join(gen)}"
                + (f" (not in {what}: {', '.join(missing)})" if missing else "")
                + ". Train or pick a generator on the same classes.")
        labels = list(classes.values())
        if len(set(labels)) != len(labels):
            raise GanaugDataError(f"{what} gives two classes one label: {classes}. Each class "
                                  "needs its own label.")
        lut = torch.full((max(labels) + 1,), -1, dtype=torch.int64)
        for name, label in classes.items():
            lut[label] = gen.index(name)
        self.mapping, self._lut, self._list = classes, lut, lut.tolist()

    @property
    def table(self) -> list[int] | None:
        """``table[label]`` = the generator's class index (-1: unused label); None when the
        labels are the generator's indices or the map is unbound."""
        return list(self._list) if self.mapping is not None else None

    def ordered_names(self) -> list[str]:
        """The dataset's class names by label, refusing labels that are not ``0..n-1`` (a
        dataset of consecutive labels, as a label space for generated items needs)."""
        n = len(self.mapping)
        if sorted(self.mapping.values()) != list(range(n)):
            raise GanaugDataError(
                f"{self.what} must use the labels 0..{n - 1}, got {self.mapping}. Relabel the "
                "dataset, or pass classes= with consecutive labels.")
        return sorted(self.mapping, key=self.mapping.__getitem__)

    @property
    def num_labels(self) -> int:
        """How many labels there are: ``max(label) + 1`` (the generator's class count when
        labels are its indices)."""
        return len(self._list) if self.mapping is not None else len(self.generator_classes)

    @property
    def label_names(self) -> list[str]:
        """The class name of each label (``""`` for a label the dataset leaves unused)."""
        if self.mapping is None:
            return list(self.generator_classes)
        names = [""] * len(self._list)
        for name, label in self.mapping.items():
            names[label] = name
        return names

    def require(self, label: Any = None) -> None:
        """Refuse int labels on an unbound map, with the fix."""
        if self.bound:
            return
        got = "" if label is None else f" got the int label {label!r} but"
        raise GanaugConfigError(
            f"{self.where}{got} does not know which class each label is. Pass the dataset's "
            "classes: classes=dataset.classes (names in label order) or classes="
            "dataset.class_to_idx; or classes='generator' if the labels are the generator's "
            f"own class indices ({', '.join(self.generator_classes[:10])}"
            f"{', ...' if len(self.generator_classes) > 10 else ''}).")

    def to_generator(self, labels: torch.Tensor) -> torch.Tensor:
        """A batch of int labels -> the generator's class indices (same device)."""
        self.require()
        labels = labels.long()
        size = len(self._list) if self.mapping is not None else len(self.generator_classes)
        bad = (labels < 0) | (labels >= size)
        if not bool(bad.any()):
            if self.mapping is None:
                return labels
            out = self._lut.to(labels.device)[labels]
            bad = out < 0
            if not bool(bad.any()):
                return out
        first = int(labels[bad].reshape(-1)[0])
        raise GanaugDataError(f"{self.where}: label {first} names no class of {self._known()}.")

    def _known(self) -> str:
        if self.mapping is None:
            return (f"the generator (labels 0..{len(self.generator_classes) - 1}, "
                    "classes='generator')")
        return f"{self.what} ({self.mapping})"

    def __call__(self, label: Any) -> int:
        """The generator's class index of one label (an int, a 0-d tensor, or a class name,
        which is always looked up by name)."""
        if isinstance(label, str):
            try:
                return label_to_index(label, self.generator_classes, error=GanaugDataError,
                                      fix="Use a generator trained on the dataset's classes.")
            except GanaugDataError as err:
                raise GanaugDataError(f"{self.where}: {err}") from None
        if not self.bound:
            self.require(label.item() if isinstance(label, torch.Tensor) and label.numel() == 1
                         else label)
        try:
            index = label_to_index(label, range(max(self.num_labels, 1)),
                                   error=GanaugDataError, fix="")
        except GanaugDataError as err:
            raise GanaugDataError(f"{self.where}: {err} It names no class of "
                                  f"{self._known()}.") from None
        cls = index if self.mapping is None else self._list[index]
        if cls < 0:
            raise GanaugDataError(f"{self.where}: label {index} names no class of "
                                  f"{self._known()}.")
        return cls

    def names_to_generator(self, names: Any, *, arg: str) -> frozenset[int]:
        """The generator's class indices of a list of class *names* (``only_classes=``)."""
        if isinstance(names, str) or not isinstance(names, Sequence | set | frozenset):
            raise GanaugConfigError(f"{arg} must be a list of class names, got {names!r}; "
                                    f"e.g. {arg}=['cat'].")
        ints = [n for n in names if not isinstance(n, str)]
        if ints:
            raise GanaugConfigError(
                f"{arg} takes class names, got {ints[0]!r}: an index could mean the dataset's "
                f"label or the generator's class. Name the class, e.g. {arg}="
                f"[{self.generator_classes[0]!r}].")
        return frozenset(self(name) for name in names)

    def __repr__(self) -> str:
        bound = ("'generator'" if self.by_index else
                 str(self.mapping) if self.mapping is not None else "unbound")
        return f"ClassMap({self.where}: {bound})"
