"""The model file: one safetensors file holding the generator's weights and a JSON document.

Tensors are the generator network's ``state_dict()``; the safetensors ``__metadata__`` holds
``{"ganaug": json.dumps(doc)}``, where ``doc`` names the architecture and its constructor
arguments, the class names, the image geometry, the pixel normalisation and a training summary.
:func:`load` rebuilds the network through the registry from the file alone and never unpickles.
Every field is listed in ``docs/model-format.md``; safetensors: https://github.com/huggingface/safetensors
"""

from __future__ import annotations

import json
import math
import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ganaug._devices import DeviceLike, resolve_device
from ganaug._files import atomic_path
from ganaug.errors import GanaugConfigError, GanaugModelError
from ganaug.generator import Generator
from ganaug.model_document import (  # re-exported: the model file's public names live here
    CORE_FIELDS,
    FORMAT_VERSION,
    METADATA_KEY,
    NORMALIZATION,
    SCHEMA,
    build_document,
    file_kind,
    nonfinite_as_strings,
    validate_document,
)
from ganaug.models import (
    build_generator,
    check_parameter_budget,
    list_archs,
    nonfinite_tensors,
    to_channels_last,
)

__all__ = ["CORE_FIELDS", "FORMAT_VERSION", "METADATA_KEY", "NORMALIZATION", "SCHEMA",
           "build_document", "cpu_state_dict", "describe_model_file", "load",
           "nonfinite_as_strings", "read_metadata", "save", "validate_document"]

_SAFETENSORS_DTYPES = {
    torch.float64: "F64", torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
    torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8",
    torch.uint8: "U8", torch.bool: "BOOL",
}


# -- save -------------------------------------------------------------------------------------
def cpu_state_dict(net: nn.Module) -> dict[str, torch.Tensor]:
    """The network's ``state_dict()`` as contiguous CPU tensors that share no memory."""
    # clone(): safetensors refuses tensors that share storage (tied weights, views).
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in net.state_dict().items()}


def save(generator: Generator, path: str | os.PathLike, *,
         metadata: Mapping[str, Any] | None = None) -> Path:
    """Write ``generator`` to ``path`` as a safetensors model file, atomically.

    Args:
        generator: a :class:`ganaug.Generator` (or a bare registered generator network).
        path: the file to write, conventionally ``*.safetensors``; parent folders are made.
        metadata: merged into the metadata document; ``training`` (a dict: data spec, data
            fingerprint, steps, seed, wall_time_s, final metrics) is what the trainer passes.
            Non-finite floats are stored as the strings "nan", "inf", "-inf".

    Returns:
        The written path.

    Raises:
        GanaugConfigError: ``metadata`` sets a core field or is not JSON-serialisable.
        GanaugModelError: the network cannot be described by the registry.
    """
    from safetensors.torch import save_file

    if not isinstance(generator, Generator):
        generator = Generator(generator)
    doc = build_document(generator, metadata)
    validate_document(doc)
    state = cpu_state_dict(generator.net)
    _refuse_nonfinite(state, "Refusing to save a generator whose weights are", "Save the "
                      "generator of an earlier, finite step (its last good checkpoint).")
    path = Path(path)
    with atomic_path(path) as tmp:
        save_file(state, str(tmp),
                  metadata={METADATA_KEY: json.dumps(doc, allow_nan=False)})
    return path


def _refuse_nonfinite(state: Mapping[str, torch.Tensor], what: str, fix: str) -> None:
    _raise_nonfinite(nonfinite_tensors(dict(state)), what, fix)


def _raise_nonfinite(bad: list[str], what: str, fix: str) -> None:
    if bad:
        more = f" and {len(bad) - 3} more tensors" if len(bad) > 3 else ""
        raise GanaugModelError(f"{what} non-finite (NaN/Inf): {'; '.join(bad[:3])}{more}. Such a "
                               f"generator draws only black or garbage images. {fix}")


# -- read -------------------------------------------------------------------------------------
def _sniff(path: Path) -> str:
    """A hint about what a non-safetensors file is, from its first bytes."""
    with open(path, "rb") as f:
        head = f.read(8)
    if head.startswith(b"\x89PNG"):
        return " It looks like a PNG image."
    if head.startswith(b"\xff\xd8"):
        return " It looks like a JPEG image."
    if head.startswith(b"PK"):
        return (" It looks like a zip archive, such as a torch.save checkpoint; ganaug never "
                "unpickles, so convert the weights with ganaug.save.")
    if head.startswith(b"\x80"):
        return " It looks like a pickle; ganaug never unpickles, so re-save with ganaug.save."
    return ""


def _check_path(path: str | os.PathLike) -> Path:
    path = Path(path)
    if not path.exists():
        raise GanaugModelError(
            f"No model file at {path}. Check the path; model files are written by "
            "'ganaug train' (runs/NAME/generator.safetensors) or ganaug.save.")
    if path.is_dir():
        hint = sorted(p.name for p in path.glob("*.safetensors"))[:3]
        raise GanaugModelError(
            f"{path} is a directory, not a model file. Pass the .safetensors file inside it"
            + (f" (found: {', '.join(hint)})." if hint else "."))
    try:
        mode = path.stat().st_mode
    except OSError as err:
        raise GanaugModelError(f"Cannot read the model file {path} ({err}).") from err
    if not stat.S_ISREG(mode):
        raise GanaugModelError(
            f"{path} is not a regular file (a FIFO, socket or device would block or never end); "
            "pass the .safetensors file written by ganaug.save or 'ganaug train'.")
    return path


def _read_header(path: Path) -> tuple[dict[str, str] | None, dict[str, tuple[str, tuple]]]:
    """The ``__metadata__`` dict (None when absent) and ``{name: (dtype, shape)}``."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            meta = f.metadata()
            tensors = {}
            for name in f.keys():  # noqa: SIM118 (safe_open is not iterable)
                sl = f.get_slice(name)
                tensors[name] = (str(sl.get_dtype()), tuple(sl.get_shape()))
    except (SafetensorError, OSError, ValueError, OverflowError) as err:
        hint = _sniff(path)
        advice = (" Pass the .safetensors file written by ganaug.save or 'ganaug train'." if hint
                  else " It is truncated or corrupt; write it again with ganaug.save or "
                       "'ganaug train'.")
        raise GanaugModelError(
            f"{path} is not a readable safetensors file ({err}).{hint}{advice}") from err
    return meta, tensors


def _parse_document(path: Path, meta: dict[str, str] | None,
                    tensors: Mapping[str, tuple[str, tuple]]) -> dict[str, Any]:
    if file_kind(meta) == "classifier":
        raise GanaugModelError(
            f"{path} is a ganaug classifier file, not a generator model. Load it with "
            "ganaug.evaluation.load_classifier; a generator model is the generator.safetensors "
            "that 'ganaug train' writes in its run folder.")
    if not meta or METADATA_KEY not in meta:
        names = ", ".join(list(tensors)[:3])
        raise GanaugModelError(
            f"{path} is a safetensors file but not a ganaug model: its metadata has no "
            f"'{METADATA_KEY}' entry (it holds {len(tensors)} tensors, e.g. {names}). If these "
            "are generator weights, load them into ganaug.build_generator(...) with "
            "load_state_dict and write a model file with ganaug.save.")
    try:
        doc = json.loads(meta[METADATA_KEY])
    except (ValueError, RecursionError) as err:
        raise GanaugModelError(
            f"{path}: the '{METADATA_KEY}' metadata is not valid JSON ({err}). The file is "
            "damaged; re-save the generator with ganaug.save.") from err
    return validate_document(doc, path)


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The validated metadata document of a model file, read from its header only.

    Raises:
        GanaugModelError: the file is missing, not safetensors, not a ganaug model, or its
            metadata is malformed or of a newer format.
    """
    path = _check_path(path)
    meta, tensors = _read_header(path)
    return _parse_document(path, meta, tensors)


def _build_net(path: Path, doc: Mapping[str, Any], *, meta_device: bool) -> nn.Module:
    """Rebuild the network named by ``doc`` (on the meta device: shapes only, no memory)."""
    if doc["arch"] not in list_archs():
        raise GanaugModelError(
            f"{path} needs arch '{doc['arch']}', which this ganaug does not know (it has "
            f"{', '.join(list_archs())}). Upgrade ganaug, or import the module that registers "
            f"'{doc['arch']}' before loading.")
    kwargs = {k: v for k, v in doc["arch_config"].items()
              if k not in ("num_classes", "channels", "image_size", "z_dim")}
    try:
        # The meta build lets a damaged arch_config (say width 10**9) fail on shapes, not RAM;
        # fork_rng keeps the caller's global RNG untouched by the weight init.
        with torch.random.fork_rng(devices=[]), torch.device("meta" if meta_device else "cpu"):
            net = build_generator(doc["arch"], num_classes=doc["num_classes"],
                                  channels=doc["channels"], image_size=doc["image_size"],
                                  z_dim=doc["z_dim"], **kwargs)
        if meta_device:
            check_parameter_budget(sum(p.numel() for p in net.parameters()),
                                   f"The generator in {path}")
        return net
    except (GanaugConfigError, TypeError, ValueError, RuntimeError) as err:
        raise GanaugModelError(
            f"{path}: arch '{doc['arch']}' cannot be built from the file's arch_config "
            f"{doc['arch_config']!r:.300} ({err}). The file is damaged or was written by a "
            "different ganaug version.") from err


def _dtype_kind(name: str) -> str:
    return "float" if name.startswith(("F", "BF")) else name


def _check_tensors(path: Path, net: nn.Module, tensors: Mapping[str, tuple[str, tuple]]) -> None:
    """Compare the file's tensor names, shapes and dtypes with the rebuilt network's."""
    expected = {k: (_SAFETENSORS_DTYPES.get(v.dtype, str(v.dtype)), tuple(v.shape))
                for k, v in net.state_dict().items()}
    problems = [f"missing {k}" for k in expected if k not in tensors]
    problems += [f"unexpected {k}" for k in tensors if k not in expected]
    for k in expected.keys() & tensors.keys():
        (want_dtype, want_shape), (got_dtype, got_shape) = expected[k], tensors[k]
        if want_shape != got_shape:
            problems.append(f"{k} has shape {list(got_shape)}, expected {list(want_shape)}")
        elif _dtype_kind(want_dtype) != _dtype_kind(got_dtype):
            problems.append(f"{k} has dtype {got_dtype}, expected {want_dtype}")
    if problems:
        more = f" and {len(problems) - 4} more" if len(problems) > 4 else ""
        raise GanaugModelError(
            f"{path}: the tensors do not match the architecture in its metadata: "
            f"{'; '.join(sorted(problems)[:4])}{more}. The file is damaged, or its weights "
            "come from a different architecture than its metadata says.")


def _network_dtype(name: str, tensor: torch.Tensor, dtypes: Mapping[str, torch.dtype]
                   ) -> tuple[str, torch.Tensor]:
    """A floating tensor cast to the network's dtype, and its name for a message: float64 of
    1e300 is finite in the file but inf in a float32 network; float8 has no ``isfinite``."""
    want = dtypes.get(name, tensor.dtype)
    if not tensor.is_floating_point() or tensor.dtype == want:
        return name, tensor
    src, dst = (str(d).removeprefix("torch.") for d in (tensor.dtype, want))
    return f"{name} (stored as {src}, read as {dst})", tensor.to(want)


def _check_weights_finite(path: Path, net: nn.Module) -> None:
    """Refuse NaN/Inf weights, as the network's dtypes read them, one tensor at a time (never
    the whole model at once)."""
    from safetensors import SafetensorError, safe_open

    dtypes = {k: v.dtype for k, v in net.state_dict().items()}
    bad: list[str] = []
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            for name in f.keys():  # noqa: SIM118
                bad += nonfinite_tensors(dict([_network_dtype(name, f.get_tensor(name), dtypes)]))
    except (SafetensorError, OSError, RuntimeError) as err:
        raise GanaugModelError(f"{path}: the weights cannot be read ({err}). The file is "
                               "damaged; re-save the generator with ganaug.save.") from err
    _raise_nonfinite(bad, f"{path}: the weights are", "The file was saved from a diverged run "
                     "or is damaged; use the model of an earlier checkpoint.")


def load(path: str | os.PathLike, device: DeviceLike = "cpu") -> Generator:
    """Load a model file written by :func:`save` (never unpickles).

    Args:
        path: the ``.safetensors`` model file.
        device: where to put the generator: ``"cpu"`` (the default); ``"auto"`` for the best
            device here (CUDA, else MPS, else CPU); ``None``, "no preference", means the same
            as ``"auto"`` (ganaug's one meaning of ``device=None``: code that creates a module
            takes the best device); or any torch device this machine has.

    Returns:
        A :class:`ganaug.Generator` in eval mode with ``classes``, ``num_classes``,
        ``image_size``, ``channels``, ``z_dim`` and ``metadata`` (the file's document).

    Raises:
        GanaugConfigError: an unknown device, or one this machine does not have.
        GanaugModelError: missing path, a directory, a truncated or foreign file, missing or
            malformed metadata, an unknown arch, a newer format, or tensors whose names,
            shapes or dtypes do not match the architecture.
    """
    from safetensors import SafetensorError, safe_open

    target = resolve_device(device)
    path = _check_path(path)
    meta, tensors = _read_header(path)
    doc = _parse_document(path, meta, tensors)
    _check_tensors(path, _build_net(path, doc, meta_device=True), tensors)
    net = _build_net(path, doc, meta_device=False)
    try:
        dtypes = {k: v.dtype for k, v in net.state_dict().items()}
        with safe_open(str(path), framework="pt", device="cpu") as f:
            state = {name: f.get_tensor(name) for name in f.keys()}  # noqa: SIM118
        named = dict(_network_dtype(name, t, dtypes) for name, t in state.items())
        _refuse_nonfinite(named, f"{path}: the weights are", "The file was saved from a "
                          "diverged run or is damaged; use the model of an earlier checkpoint.")
        net.load_state_dict(dict(zip(state, named.values())), strict=True)
    except (SafetensorError, OSError, RuntimeError) as err:
        raise GanaugModelError(
            f"{path}: the weights cannot be loaded into arch '{doc['arch']}' ({err}). The file "
            "is damaged; re-save the generator with ganaug.save.") from err
    if target.type == "cpu":  # 1.5-2.9x the images per second, the same images (performance.md)
        to_channels_last(net)
    return Generator(net, classes=doc["class_names"], metadata=doc, arch=doc["arch"]).to(target)


# -- describe ---------------------------------------------------------------------------------
def _fmt_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}" if math.isfinite(value) else str(value)
    if isinstance(value, dict):
        return ", ".join(f"{k}={_fmt_value(v)}" for k, v in value.items())
    if isinstance(value, list):
        return ", ".join(_fmt_value(v) for v in value)
    return str(value)


def _fmt_classes(names: list[str], limit: int = 20) -> str:
    shown = ", ".join(names[:limit])
    return f"{len(names)}: {shown}" + (f", ... (+{len(names) - limit})" if len(names) > limit else "")


def describe_model_file(path: str | os.PathLike) -> str:
    """A readable two-column table of a model file's metadata and parameter count.

    Reads the header only; the parameter count comes from the architecture built on the meta
    device, so nothing is loaded into memory.

    Raises:
        GanaugModelError: as :func:`read_metadata`, plus an unknown arch.
    """
    path = _check_path(path)
    meta, tensors = _read_header(path)
    doc = _parse_document(path, meta, tensors)
    net = _build_net(path, doc, meta_device=True)
    _check_tensors(path, net, tensors)
    _check_weights_finite(path, net)  # ganaug info passes exactly the files load() accepts
    n_params = sum(p.numel() for p in net.parameters())
    rows: list[tuple[str, str]] = [
        ("file", f"{path} ({path.stat().st_size / 1e6:.2f} MB)"),
        ("format", f"{doc['format']} (ganaug {doc['ganaug_version']})"),
        ("arch", doc["arch"]),
        ("arch_config", _fmt_value(doc["arch_config"])),
        ("classes", _fmt_classes(doc["class_names"])),
        ("image", f"{doc['channels']} x {doc['image_size']} x {doc['image_size']} (C x H x W)"),
        ("z_dim", str(doc["z_dim"])),
        ("normalization", _fmt_value(doc["normalization"])),
        ("parameters", f"{n_params:,} ({len(tensors)} tensors)"),
    ]
    for key, value in doc["training"].items():
        rows.append((f"training.{key}", _fmt_value(value)))
    for key, value in doc.items():
        if key not in CORE_FIELDS:
            rows.append((key, _fmt_value(value)))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)
