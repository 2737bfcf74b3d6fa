"""The architecture registry: a name maps to a (generator class, discriminator class) pair.

Contract every registered pair keeps (the trainer, the model file and the tests rely on it):

* ``G(num_classes=, channels=, image_size=, z_dim=, **arch_kwargs)``;
  ``G.forward(z: (N, z_dim) float, labels: (N,) int64) -> (N, C, H, W) float in [-1, 1]``;
  attributes ``num_classes, channels, image_size, z_dim`` and ``config``: the dict of every
  constructor argument (JSON-serialisable), so ``type(G)(**G.config)`` rebuilds it.
* ``D(num_classes=, channels=, image_size=, **arch_kwargs)``;
  ``D.forward(x: (N, C, H, W) float, labels: (N,) int64) -> (N,) float logits``.
* Each class has ``SUPPORTED_SIZES`` (tuple of ints) and ``DEFAULTS`` (dict of arch kwargs).
* Each constructor checks its own arguments (the built-in families call
  :func:`ganaug.models.layers.record_config`), so the registry does not check them again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from ganaug.errors import GanaugConfigError, did_you_mean
from ganaug.models.layers import MAX_PARAMETERS, check_parameter_budget, count_parameters

_ARCHS: dict[str, tuple[type[nn.Module], type[nn.Module]]] = {}


def register_arch(name: str) -> Callable[[Callable[[], tuple]], Callable[[], tuple]]:
    """Register ``fn() -> (GeneratorClass, DiscriminatorClass)`` under ``name``.

    Raises:
        GanaugConfigError: ``name`` is already registered.
    """

    def decorator(fn):
        if name in _ARCHS:
            raise GanaugConfigError(f"Arch '{name}' is already registered; pick another name.")
        _ARCHS[name] = fn()
        return fn

    return decorator


def _ensure_builtin() -> None:
    # Importing the family modules runs their @register_arch decorators.
    import ganaug.models.dcgan
    import ganaug.models.resnet  # noqa: F401


def list_archs() -> list[str]:
    """Names of every registered architecture, sorted."""
    _ensure_builtin()
    return sorted(_ARCHS)


def _lookup(arch: str) -> tuple[type[nn.Module], type[nn.Module]]:
    _ensure_builtin()
    if arch not in _ARCHS:
        raise GanaugConfigError(
            f"arch must be one of {', '.join(sorted(_ARCHS))}, got {arch!r}."
            + did_you_mean(arch, _ARCHS)
        )
    return _ARCHS[arch]


def arch_of(net: nn.Module) -> str | None:
    """The registered name of the arch whose generator or discriminator class built ``net``.

    Returns:
        The arch name, or ``None`` when no registered arch has ``type(net)`` as its class.
    """
    _ensure_builtin()
    for name, classes in _ARCHS.items():
        if type(net) in classes:
            return name
    return None


def arch_defaults(arch: str) -> dict[str, Any]:
    """The default extra constructor arguments (widths, ...) of the generator of ``arch``."""
    gen_cls, _ = _lookup(arch)
    return dict(getattr(gen_cls, "DEFAULTS", {}))


def disc_defaults(arch: str) -> dict[str, Any]:
    """The default extra constructor arguments of the discriminator of ``arch``.

    Generator and discriminator take different extra arguments (e.g. ``embed_dim`` is G's
    only), so configs keep the two apart.
    """
    _, disc_cls = _lookup(arch)
    return dict(getattr(disc_cls, "DEFAULTS", {}))


def build_generator(
    arch: str, *, num_classes: int, channels: int = 3, image_size: int = 32, z_dim: int = 128,
    **arch_kwargs: Any,
) -> nn.Module:
    """Build the conditional generator of ``arch``.

    Raises:
        GanaugConfigError: unknown arch, unsupported image size, or bad channels/classes.
    """
    gen_cls, _ = _lookup(arch)
    return gen_cls(
        num_classes=num_classes, channels=channels, image_size=image_size, z_dim=z_dim,
        **arch_kwargs,
    )


def build_discriminator(
    arch: str, *, num_classes: int, channels: int = 3, image_size: int = 32, **arch_kwargs: Any
) -> nn.Module:
    """Build the conditional discriminator of ``arch`` (returns logits of shape ``(N,)``).

    Raises:
        GanaugConfigError: unknown arch, unsupported image size, or bad channels/classes.
    """
    _, disc_cls = _lookup(arch)
    return disc_cls(num_classes=num_classes, channels=channels, image_size=image_size, **arch_kwargs)



def estimate_parameters(arch: str, *, num_classes: int, channels: int = 3, image_size: int = 32,
                        z_dim: int = 128, disc_kwargs: dict[str, Any] | None = None,
                        where: str = "this network", **arch_kwargs: Any) -> tuple[int, int]:
    """Parameter counts ``(generator, discriminator)`` of ``arch``, built on the meta device.

    Nothing is allocated, so a damaged ``width`` or class count is refused here instead of
    asking the allocator for terabytes. ``disc_kwargs=None`` skips the discriminator (0).

    Raises:
        GanaugConfigError: unknown arch, bad arguments, or a network above the parameter cap
            (:data:`ganaug.models.layers.MAX_PARAMETERS`).
    """
    with torch.random.fork_rng(devices=[]), torch.device("meta"):
        g = count_parameters(_meta_build(
            build_generator, f"The {arch} generator of {where}", arch, num_classes=num_classes,
            channels=channels, image_size=image_size, z_dim=z_dim, **arch_kwargs))
        check_parameter_budget(g, f"The {arch} generator of {where}")
        d = 0
        if disc_kwargs is not None:
            d = count_parameters(_meta_build(
                build_discriminator, f"The {arch} discriminator of {where}", arch,
                num_classes=num_classes, channels=channels, image_size=image_size,
                **disc_kwargs))
            check_parameter_budget(d, f"The {arch} discriminator of {where}")
    return g, d


def _meta_build(build: Callable[..., nn.Module], what: str, arch: str,
                **kwargs: Any) -> nn.Module:
    """``build(arch, **kwargs)``; a size torch cannot hold (above 2**63) becomes a config error."""
    try:
        return build(arch, **kwargs)
    except (TypeError, RuntimeError, OverflowError) as err:
        # One size above the cap alone makes a layer too large to build.
        sizes = {k: v for k, v in kwargs.items()
                 if isinstance(v, int) and not isinstance(v, bool) and v > MAX_PARAMETERS}
        if not sizes:
            raise
        raise GanaugConfigError(
            f"{what} cannot be built: {', '.join(f'{k}={v}' for k, v in sizes.items())} is "
            f"far too large (ganaug builds at most {MAX_PARAMETERS:,} parameters; torch "
            "cannot even hold sizes from 2**63). A value this large is a typo or a damaged "
            "file.") from err


def supported_sizes(arch: str | None = None) -> tuple[int, ...]:
    """The image sizes ``arch`` builds (``None``: any registered arch), sorted."""
    archs = [arch] if arch is not None else list_archs()
    sizes = {int(s) for name in archs for cls in _lookup(name)
             for s in getattr(cls, "SUPPORTED_SIZES", ())}
    return tuple(sorted(sizes))
