"""The metadata document of a model file: its schema, how :func:`ganaug.save` builds it, and
the checks :func:`ganaug.load` runs on it (field by field, before any weight is read).

Every field is listed in ``docs/model-format.md``.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Mapping
from typing import Any

from ganaug import __version__
from ganaug.errors import GanaugConfigError, GanaugModelError
from ganaug.generator import Generator
from ganaug.models import arch_of

FORMAT_VERSION = 1
METADATA_KEY = "ganaug"
#: The metadata key of ``ganaug.evaluation.save_classifier`` files.
CLASSIFIER_METADATA_KEY = "ganaug_classifier"
NORMALIZATION = {"range": [-1, 1], "to_uint8": "round((x + 1) * 127.5)",
                 "to_float": "(x + 1) / 2"}

# Fields the loader reads; ``metadata=`` may add others (``training`` is the usual one).
CORE_FIELDS = ("format", "ganaug_version", "arch", "arch_config", "num_classes", "class_names",
               "image_size", "channels", "z_dim", "normalization", "training")


# -- the metadata document ------------------------------------------------------------------
def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _positive_int(v: Any) -> bool:
    return _is_int(v) and v > 0


def _class_names(v: Any) -> bool:
    return (isinstance(v, list) and all(isinstance(c, str) and c for c in v)
            and len(set(v)) == len(v))


# field -> (check, what is accepted). Checked in this order by ``validate_document``.
SCHEMA: dict[str, tuple[Callable[[Any], bool], str]] = {
    "format": (_positive_int, "an int >= 1"),
    "ganaug_version": (lambda v: isinstance(v, str), "a version string"),
    "arch": (lambda v: isinstance(v, str) and bool(v), "a non-empty arch name"),
    "arch_config": (lambda v: isinstance(v, dict), "an object of constructor arguments"),
    "num_classes": (lambda v: _is_int(v) and v >= 2, "an int >= 2"),
    "class_names": (_class_names, "a list of distinct, non-empty strings"),
    "image_size": (_positive_int, "an int >= 1"),
    "channels": (lambda v: v in (1, 3) and _is_int(v), "1 or 3"),
    "z_dim": (_positive_int, "an int >= 1"),
    "normalization": (lambda v: isinstance(v, dict) and v.get("range") == [-1, 1],
                      'an object with "range": [-1, 1]'),
    "training": (lambda v: isinstance(v, dict), "an object (may be empty)"),
}


def validate_document(doc: Any, path: str | os.PathLike = "<document>") -> dict[str, Any]:
    """Check a metadata document field by field and return it.

    Raises:
        GanaugModelError: not an object, a ``format`` newer than :data:`FORMAT_VERSION`, a
            missing field, a field of the wrong type, or fields that disagree with each other.
    """
    where = f"Model file {path}"
    if not isinstance(doc, dict):
        raise GanaugModelError(
            f"{where}: the '{METADATA_KEY}' metadata must be a JSON object, got "
            f"{type(doc).__name__}. The file is damaged; re-save the generator with ganaug.save.")
    fmt = doc.get("format")
    if _positive_int(fmt) and fmt > FORMAT_VERSION:
        raise GanaugModelError(
            f"{where} uses model format {fmt} (written by ganaug "
            f"{doc.get('ganaug_version', '?')}), but this ganaug {__version__} reads format "
            f"{FORMAT_VERSION} at most. Upgrade ganaug (pip install -U ganaug) to load it.")
    missing = [k for k in SCHEMA if k not in doc]
    if missing:
        raise GanaugModelError(
            f"{where}: the metadata lacks {', '.join(missing)}. Every ganaug model file has "
            f"{', '.join(SCHEMA)}; the file is damaged or was not written by ganaug.save.")
    for key, (check, accepted) in SCHEMA.items():
        if not check(doc[key]):
            raise GanaugModelError(
                f"{where}: metadata field '{key}' must be {accepted}, got {doc[key]!r:.200}. "
                "The file is damaged; re-save the generator with ganaug.save.")
    if len(doc["class_names"]) != doc["num_classes"]:
        raise GanaugModelError(
            f"{where}: num_classes is {doc['num_classes']} but class_names has "
            f"{len(doc['class_names'])} names; they must agree. The file is damaged.")
    clash = [k for k in ("num_classes", "channels", "image_size", "z_dim")
             if k in doc["arch_config"] and doc["arch_config"][k] != doc[k]]
    if clash:
        raise GanaugModelError(
            f"{where}: arch_config disagrees with the top-level fields on {', '.join(clash)} "
            f"(arch_config {[doc['arch_config'][k] for k in clash]} vs "
            f"{[doc[k] for k in clash]}). The file is damaged.")
    return doc


def _arch_name(generator: Generator) -> str:
    """The registered name of ``generator.net``'s architecture."""
    name = generator.arch or arch_of(generator.net)
    if name:
        return str(name)
    raise GanaugModelError(
        f"Cannot tell which registered arch built a {type(generator.net).__name__}; "
        "build it with ganaug.build_generator or pass Generator(net, arch=NAME).")


def build_document(generator: Generator, metadata: Mapping[str, Any] | None = None
                   ) -> dict[str, Any]:
    """The metadata document :func:`save` writes for ``generator``.

    Extra keys of ``generator.metadata`` (e.g. a loaded file's ``training``) are kept, then
    ``metadata`` is merged on top; the core fields always come from the network itself.

    Raises:
        GanaugConfigError: ``metadata`` sets a core field other than ``training``, or holds
            values JSON cannot encode.
    """
    metadata = dict(metadata or {})
    reserved = sorted(k for k in metadata if k in CORE_FIELDS and k != "training")
    if reserved:
        raise GanaugConfigError(
            f"metadata= may not set {', '.join(reserved)}: ganaug.save takes them from the "
            "generator itself. Put your own information under other keys or in 'training'.")
    net = generator.net
    config = dict(getattr(net, "config", None) or {})
    if not config:
        raise GanaugModelError(
            f"{type(net).__name__} has no 'config' dict of constructor arguments, so a loader "
            "could not rebuild it. Build generators with ganaug.build_generator.")
    doc: dict[str, Any] = {k: v for k, v in generator.metadata.items() if k not in CORE_FIELDS}
    doc["training"] = dict(generator.metadata.get("training") or {})
    doc.update(nonfinite_as_strings(metadata))
    doc.update({
        "format": FORMAT_VERSION, "ganaug_version": __version__, "arch": _arch_name(generator),
        "arch_config": config, "num_classes": generator.num_classes,
        "class_names": list(generator.classes), "image_size": generator.image_size,
        "channels": generator.channels, "z_dim": generator.z_dim,
        "normalization": dict(NORMALIZATION),
    })
    if not isinstance(doc["training"], dict):
        raise GanaugConfigError(
            f"metadata['training'] must be a dict, got {type(doc['training']).__name__}.")
    try:
        json.dumps(doc, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise GanaugConfigError(
            f"The model metadata must be JSON-serialisable (str, int, float, bool, None, lists, "
            f"dicts with str keys): {err}. Convert the offending value (e.g. a Path or tensor) first."
        ) from err
    return doc


def nonfinite_as_strings(value: Any) -> Any:
    """``value`` with NaN/inf floats as the strings "nan"/"inf"/"-inf" (strict JSON has none).

    A diverged run's last losses are NaN; saving its generator must not fail on that. The model
    file keeps the *string* on purpose (docs/model-format.md): ``ganaug info`` then shows that a
    loss was NaN, where ``null`` would read as "not recorded". The JSON reports of the
    evaluation write ``null`` instead (``finite_json`` there), as tables and plots expect.
    """
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, Mapping):
        return {k: nonfinite_as_strings(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [nonfinite_as_strings(v) for v in value]
    return value


def file_kind(meta: dict[str, str] | None) -> str | None:
    """Which ganaug file a safetensors header's metadata belongs to: ``"generator"`` (a model
    file), ``"classifier"`` (``ganaug.evaluation.save_classifier``), or ``None``."""
    if meta and METADATA_KEY in meta:
        return "generator"
    if meta and CLASSIFIER_METADATA_KEY in meta:
        return "classifier"
    return None
