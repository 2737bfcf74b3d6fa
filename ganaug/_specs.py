"""Dataset spec strings: ``kind[:arg][?key=value&...]`` parsed, checked and rebuilt.

:func:`parse_spec` splits a spec into its source kind, the argument after ``kind:`` and the
options after ``?``; :func:`spec_with` writes the canonical spec (options in
:data:`OPTION_ORDER`) that :attr:`ganaug.data.LabeledImages.spec` records. The sources
themselves are the table in :mod:`ganaug._sources`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ganaug._folders import folder_splits
from ganaug._sources import SOURCES, TV_NAMES
from ganaug.errors import GanaugDataError, did_you_mean

__all__ = ["OPTION_ORDER", "SPEC_FORMS", "bad_spec", "check_output_outside", "parse_spec", "spec_option", "spec_with",
           "split_query"]

#: ``("mnist5k", "digits", "folder:PATH", "npz:PATH", "torchvision:NAME[:ROOT]")``
SPEC_FORMS = tuple(f"{kind}:{s.arg}" if s.arg else kind for kind, s in SOURCES.items())
#: The options a spec may carry after ``?``, in the order the canonical spec writes them.
OPTION_ORDER = ("split", "holdout", "per_class", "imbalance", "seed", "size", "channels")


def bad_spec(spec: str, why: str) -> GanaugDataError:
    names = [f"{kind}:" if s.arg else kind for kind, s in SOURCES.items()]
    hint = did_you_mean(spec.split(":")[0].split("?")[0], names)
    base = spec.split("?")[0].lower()
    if base in TV_NAMES:
        also = f"'{hint[15:-2]}' (offline) or " if hint else ""
        hint = f" Did you mean {also}'torchvision:{TV_NAMES[base]}'?"
    elif os.path.isdir(base):
        hint = f" Did you mean 'folder:{spec}'?"
    elif base.endswith(".npz"):
        hint = f" Did you mean 'npz:{spec}'?"
    return GanaugDataError(f"{why} Valid specs: {', '.join(SPEC_FORMS)}, optionally followed by "
                           f"'?key=value&...' options ({', '.join(OPTION_ORDER)}).{hint}")


def split_query(spec: str) -> tuple[str, dict[str, str]]:
    """``"base?k=v&k=v"`` -> ``("base", {"k": "v", ...})``; a ``?`` without ``k=v`` stays in base.

    Raises:
        GanaugDataError: an unknown option, or one given twice.
    """
    head, sep, tail = spec.rpartition("?")
    if not (sep and tail and all("=" in part for part in tail.split("&"))):
        return spec, {}
    options = {}
    for part in tail.split("&"):
        key, _, value = part.partition("=")
        if key not in OPTION_ORDER:
            raise bad_spec(spec, f"Unknown option {key!r} in dataset spec {spec!r}; options "
                                  f"are {', '.join(OPTION_ORDER)}.{did_you_mean(key, OPTION_ORDER)}")
        if key in options:  # the last one would win silently: split=train&split=test
            raise GanaugDataError(f"Option {key!r} is given twice in dataset spec {spec!r} "
                                  f"({options[key]!r} and {value!r}); give each option once.")
        options[key] = value
    return head, options


def parse_spec(spec: str) -> tuple[str, str, dict[str, str]]:
    """Split ``"kind:arg?k=v&k=v"`` into ``(kind, arg, options)``.

    Raises:
        GanaugDataError: unknown kind, missing PATH/NAME, or an unknown option key.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise bad_spec(str(spec), f"Empty dataset spec {spec!r}.")
    base, options = split_query(spec.strip())
    kind, colon, arg = base.partition(":")
    kind = kind.lower()
    source = SOURCES.get(kind)
    if source is not None and not source.arg and not colon:
        return kind, "", options
    if source is not None and source.arg and colon:
        if not arg:
            what = source.arg.split("[")[0]
            raise bad_spec(spec, f"Dataset spec {spec!r} needs a {what} after '{kind}:'.")
        return kind, arg, options
    raise bad_spec(spec, f"Unknown dataset spec {spec!r}.")


def spec_with(spec: str, **options: Any) -> str:
    """``spec`` with the given options (None dropped) merged in, in canonical order."""
    head, current = split_query(spec)
    merged = {**current, **{k: v for k, v in options.items() if v is not None}}
    parts = [f"{k}={_fmt(merged[k])}" for k in OPTION_ORDER if k in merged]
    return head + ("?" + "&".join(parts) if parts else "")


def _fmt(value: Any) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:  # not 1e308's digits
        return str(int(value))
    return str(value)


def spec_option(options: dict[str, str], key: str, given: Any, cast, default: Any = None) -> Any:
    """The explicit argument when given, else the spec's ``?key=`` option, else ``default``."""
    if given is not None:
        return given
    if key not in options:
        return default
    try:
        return cast(options[key])
    except ValueError:
        raise GanaugDataError(f"Option {key}={options[key]!r} in the dataset spec is not a valid "
                              f"{cast.__name__}; fix the value after '{key}='.") from None


def _is_image_name(name: str) -> bool:
    from torchvision.datasets.folder import IMG_EXTENSIONS

    return name.lower().endswith(IMG_EXTENSIONS)


def check_output_outside(out: str | os.PathLike, spec: str | None, flag: str = "out", *,
                         file: bool = False) -> None:
    """Refuse an output inside the class folders that the ``folder:`` ``spec`` reads (``PATH``,
    or its ``train/`` and ``test/``), before anything is written there: an empty output folder
    is a class without images, a full one one more class of the data; an output file (``file``)
    in a class folder one more image of that class (beside the class folders it is not read).

    Raises:
        GanaugDataError: naming ``flag`` (the argument ``out`` was given as), the folder and
            the fix.
    """
    if not isinstance(spec, str) or not spec.strip().lower().startswith("folder:"):
        return
    root = Path(parse_spec(spec)[1]).expanduser()
    if not root.is_dir():
        return  # the load names the problem
    target = Path(out).expanduser().resolve()
    for split, read in (folder_splits(root) or {"": root}).items():
        inside = read.resolve() in target.parents
        if file and split and target.parent == read.resolve() and _is_image_name(target.name):
            raise GanaugDataError(
                f"{flag}={str(out)!r} is in {str(read)!r}, a split of data={spec!r}: a split "
                f"folder holds class folders only, and an image of its own there would make "
                f"{read.name}/ no split, and the data would no longer load. Write it beside the "
                f"splits (in {str(root)!r}) or elsewhere.")
        if file and inside and target.parent != read.resolve():
            raise GanaugDataError(
                f"{flag}={str(out)!r} is inside {str(read)!r}, whose folders are the classes of "
                f"data={spec!r}: the file would be read as one more image of that class. Write "
                f"it outside the class folders (beside them in {str(read)!r} is fine).")
        if not file and (target == read.resolve() or inside):
            raise GanaugDataError(
                f"{flag}={str(out)!r} is inside {str(read)!r}, whose folders are the classes of "
                f"data={spec!r}: the output would be read as one more class (and, still empty, "
                f"as a class without images). Write it outside {str(read)!r}.")
