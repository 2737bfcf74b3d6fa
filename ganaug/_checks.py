"""Argument checks shared by every module: one rule, one message per kind of argument.

Each check returns the value in its canonical Python type or raises the given
:class:`~ganaug.errors.GanaugError` subclass (``GanaugConfigError`` by default) naming the
argument, the value received and what is accepted.
"""

from __future__ import annotations

import math
import operator
import os
import re
from collections.abc import Iterable, Mapping
from collections.abc import Set as AbstractSet
from typing import Any

import numpy as np

from ganaug.errors import GanaugConfigError, GanaugError, GanaugTypeError


def check_int(name: str, value: Any, *, minimum: int | None = 1, maximum: int | None = None,
              hint: str = "", error: type[GanaugError] = GanaugConfigError) -> int:
    """``value`` as an ``int`` in ``[minimum, maximum]`` (bools refused; NumPy ints accepted)."""
    ok = not isinstance(value, bool) and isinstance(value, (int, np.integer))
    if ok and minimum is not None:
        ok = value >= minimum
    if ok and maximum is not None:
        ok = value <= maximum
    if not ok:
        if minimum is not None and maximum is not None:
            want = f"an integer from {minimum} to {maximum}"
        elif minimum is not None:
            want = f"an integer >= {minimum}"
        elif maximum is not None:
            want = f"an integer <= {maximum}"
        else:
            want = "an integer"
        raise error(f"{name} must be {want}, got {value!r}." + (f" {hint}" if hint else ""))
    return int(value)


def is_number(value: Any) -> bool:
    """Whether ``value`` is a plain int or float (a bool is no number here)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def is_count(value: Any) -> bool:
    """Whether ``value`` is an int >= 0 (a step, a count; not a bool, a float or text)."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def most_threads() -> int:
    """The most CPU threads (``--threads``) or DataLoader workers ganaug starts: 4 per CPU, at
    least 8. Each is an OS thread or process; ``--workers 1000000`` forked until the machine
    froze, and ``--threads 10**30`` overflowed inside torch."""
    return max(8, 4 * (os.cpu_count() or 1))


def check_float(name: str, value: Any, *, minimum: float | None = None,
                maximum: float | None = None, open_min: bool = False, open_max: bool = False,
                hint: str = "", error: type[GanaugError] = GanaugConfigError) -> float:
    """``value`` as a finite ``float`` in ``[minimum, maximum]`` (``(minimum, ...`` if
    ``open_min``, ``..., maximum)`` if ``open_max``).

    Strings are refused, even numeric ones (``"0.5"``): in the Python API a string where a
    number is expected is a mistake (the CLI converts its flags to numbers first). They raise
    :class:`~ganaug.errors.GanaugTypeError` with the default ``error``.
    """
    lo = "" if minimum is None else ("(" if open_min else "[") + f"{minimum:g}, "
    hi = "" if maximum is None else f"{maximum:g}" + (")" if open_max else "]")
    want = "a finite number" + (f" in {lo or '(-inf, '}{hi or 'inf)'}" if (lo or hi) else "")
    hint = f" {hint}" if hint else ""
    if isinstance(value, (str, bytes, bytearray)):
        kind = GanaugTypeError if error is GanaugConfigError else error
        raise kind(f"{name} must be {want}, got the {type(value).__name__} {value!r}: pass the "
                   f"number itself, not its text.{hint}")
    try:
        v = float(value)
    except (TypeError, ValueError):
        v = math.nan
    ok = not isinstance(value, bool) and math.isfinite(v)
    if ok and minimum is not None:
        ok = v > minimum if open_min else v >= minimum
    if ok and maximum is not None:
        ok = v < maximum if open_max else v <= maximum
    if not ok:
        raise error(f"{name} must be {want}, got {value!r}.{hint}")
    return v


_INT_TEXT = re.compile(r"[+-]?[0-9]+", re.ASCII)
_FLOAT_TEXT = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?", re.ASCII)


def number_text(text: str, kind: type = float) -> int | float:
    """A number written as plain ASCII text (``"2e-4"``, which PyYAML leaves a string; ``"40"``)
    as ``kind``. Raises ``ValueError`` for anything Python's ``int()``/``float()`` would also
    accept but a config file should not: underscores (``"1_000"``), Unicode digits
    (``"١٠"``), blanks, ``"nan"``, ``"inf"``, and a fraction where ``kind`` is ``int``."""
    if not (_INT_TEXT if kind is int else _FLOAT_TEXT).fullmatch(text):
        raise ValueError(text)
    return kind(text)


def check_bool(name: str, value: Any, *, error: type[GanaugError] = GanaugConfigError) -> bool:
    """``value`` as a ``bool``: True/False (NumPy bools too). Strings such as ``"no"`` and
    numbers are refused, since ``bool("no")`` is True."""
    if not isinstance(value, (bool, np.bool_)):
        raise error(f"{name} must be True or False, got {value!r}.")
    return bool(value)


def check_index(index: Any, length: int, *, what: str = "items") -> int:
    """A sequence index of a dataset of ``length`` items as an ``int`` in ``[0, length)``
    (negative ones count from the end). Ints, NumPy ints and 0-d integer tensors are indices.

    Raises the builtins a sequence raises, with the value and the range: ``TypeError`` for a
    non-integer, ``IndexError`` out of range (``for x in dataset`` stops at it).
    """
    try:
        i = operator.index(index)
    except TypeError:
        raise TypeError(f"Dataset indices must be integers, got {index!r} "
                        f"({type(index).__name__}).") from None
    if not -length <= i < length:
        raise IndexError(f"index {i} is out of range for {length} {what}")
    return i + length if i < 0 else i


def check_label_sequence(labels: Any, name: str = "labels") -> Iterable:
    """``labels`` if it is an ordered iterable of labels (a list, tuple, range, array, iterator).

    Sets and dicts are refused: a set has no order (``{2, 1}`` would draw the classes in hash
    order, not as written) and a dict would silently use only its keys. Bytes are refused too
    (they iterate as byte values). A single string is one class name, handled by the caller.
    """
    kind = ("a set (unordered)" if isinstance(labels, AbstractSet) else
            "a mapping (only its keys would be used)" if isinstance(labels, Mapping) else
            "bytes" if isinstance(labels, (bytes, bytearray, memoryview)) else None)
    if kind is None and not isinstance(labels, Iterable):
        kind = f"a {type(labels).__name__}, not a sequence"
    if kind is not None:
        raise GanaugTypeError(
            f"{name} must be an ordered sequence of labels (a list, tuple, range or 1-D int "
            f"array/tensor of class indices or names), got {kind}: {labels!r}. Use e.g. "
            f"{name}=[1, 2], or sorted(...) of a set.")
    return labels


def check_cache(value: Any, modes: tuple[str, ...] = ("memory",), name: str = "cache") -> Any:
    """A ``cache=`` argument: ``None``, one of ``modes``, or a folder path (str or PathLike).

    A string that is not a mode but reads like one (``"Memory"``, ``" memory"``, ``"memroy"``,
    ``"none"``, ``""``) is refused unless that folder already exists: it would silently become
    a folder in the working directory. A string with a path separator, or a ``pathlib.Path``,
    is always a path.
    """
    if value is None or value in modes or isinstance(value, os.PathLike):
        return value
    if not isinstance(value, str):
        raise GanaugTypeError(f"{name} must be None, {' or '.join(map(repr, modes))} or a folder "
                              f"path, got {value!r} ({type(value).__name__}).")
    import difflib

    word = value.strip().lower()
    pathlike = os.sep in value or "/" in value or value.startswith(("~", "."))
    like = [m for m in (*modes, "none") if m == word] or difflib.get_close_matches(
        word, [*modes, "none", "null"], n=1, cutoff=0.75)
    if not pathlike and (like or not word) and not os.path.isdir(value):
        mean = (f"the mode {like[0]!r}" if like and like[0] in modes else "None"
                if like or not word else "")
        raise GanaugConfigError(
            f"{name}={value!r} is not a mode ({', '.join(map(repr, modes))}) and would create a "
            f"folder named {value!r} in the working directory. Did you mean {mean}? For a cache "
            f"folder of that name pass a path such as {name}='./{value.strip() or 'cache'}' or "
            f"pathlib.Path({value!r}).")
    return value


def check_probability(name: str, value: Any) -> float:
    """``value`` as a float probability in [0, 1]."""
    return check_float(name, value, minimum=0.0, maximum=1.0)


def check_truncation(value: Any) -> float:
    """The truncation of the noise: a float in (0, 1]; 1.0 means no truncation."""
    return check_float("truncation", value, minimum=0.0, maximum=1.0, open_min=True,
                       hint="Use 1.0 for no truncation, or e.g. 0.7 for fewer, more typical "
                            "images.")


#: The largest seed (seeds are integers in ``[0, 2**63)``: what ``--seed`` and torch take).
MAX_SEED = 2**63 - 1


def check_seed(name: str, value: Any, *, allow_none: bool = False) -> int | None:
    """A seed: an integer in ``[0, 2**63)`` (``None`` too where ``allow_none``)."""
    if value is None and allow_none:
        return None
    return check_int(name, value, minimum=0, maximum=MAX_SEED,
                     hint="Seeds are integers >= 0, e.g. 0.")


def plain_value(value: Any) -> Any:
    """``value`` as the plain YAML/JSON value it stands for (NumPy scalars become Python ones);
    raises ``TypeError`` for anything else."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (np.bool_, np.integer, np.floating)):
        return value.item()
    if isinstance(value, (list, tuple)):
        return [plain_value(v) for v in value]
    raise TypeError(value)


def check_arch_kwargs(arch_kwargs: Any) -> dict[str, Any]:
    """``arch_kwargs`` checked to be a mapping of names to plain values, which the run's
    ``config.yaml`` and a model file's JSON metadata can hold."""
    accepted = "a mapping of argument names to values, such as {width: 32}"
    if not isinstance(arch_kwargs, dict) or not all(isinstance(k, str) for k in arch_kwargs):
        raise GanaugConfigError(f"arch_kwargs must be {accepted}, got {arch_kwargs!r}.")
    out = {}
    for name, value in arch_kwargs.items():
        try:
            out[name] = plain_value(value)
        except TypeError:
            raise GanaugConfigError(f"arch_kwargs[{name!r}] must be a number, True/False, a "
                                    f"string or a list of them, got {value!r}.") from None
    return out


def _declared_label_values(dataset: Any) -> set[int] | None:
    """The labels ``dataset`` declares before its ``target_transform``: its ``class_to_idx``
    values, ``classes`` indices and distinct ``targets``; ``None`` when it declares none or
    one that is not an int."""
    import torch

    values: set[int] = set()
    mapping = getattr(dataset, "class_to_idx", None)
    classes = getattr(dataset, "classes", None)
    targets = getattr(dataset, "targets", None)
    try:
        if isinstance(mapping, Mapping):
            values.update(mapping.values())
        if isinstance(classes, (list, tuple)):
            values.update(range(len(classes)))
        if targets is not None:
            targets = torch.as_tensor(np.asarray(targets))
            if targets.is_floating_point() or targets.dtype == torch.bool:
                return None
            values.update(targets.unique().tolist())
    except (TypeError, ValueError, RuntimeError):
        return None
    if not values or not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return None
    return values


def _keeps_labels(dataset: Any) -> bool:
    """Whether ``dataset.target_transform`` returns each label it declares unchanged, as an int
    (Python, NumPy or a 0-d integer tensor): then its names still describe the labels."""
    import torch

    values = _declared_label_values(dataset)
    if values is None:
        return False
    for value in values:
        try:
            out = dataset.target_transform(value)
        except Exception:  # noqa: BLE001 - one that cannot take an int index changes them
            return False
        if isinstance(out, torch.Tensor):
            if out.ndim or out.is_floating_point() or out.dtype == torch.bool:
                return False
            out = out.item()
        if isinstance(out, bool) or not isinstance(out, (int, np.integer)) or out != value:
            return False
    return True


def label_transform_owner(dataset: Any) -> str | None:
    """The type name of the first dataset (through ``Subset``-like wrappers and
    ``ConcatDataset`` parts) that passes its labels through a ``target_transform``, or
    ``None``: then the labels are those its ``class_to_idx``/``classes``/``targets`` describe.

    A ``target_transform`` that returns every label the dataset declares unchanged (an
    identity, ``int``) is no change: it is probed once on each declared label value.
    """
    from torch.utils.data import ConcatDataset

    stack, seen = [dataset], set()
    while stack:
        item = stack.pop()
        if item is None or id(item) in seen:
            continue
        seen.add(id(item))
        if getattr(item, "target_transform", None) is not None and not _keeps_labels(item):
            return type(item).__name__
        stack.extend(item.datasets if isinstance(item, ConcatDataset) else
                     [getattr(item, "dataset", None)])
    return None
