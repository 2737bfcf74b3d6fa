"""What each regime and seed of an experiment brings: its real training subset and its generator (a
GAN trained on exactly that subset, or a given one that passed the leakage check). Its teachers:
:mod:`ganaug.evaluation.teachers`."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from ganaug._devices import DeviceLike
from ganaug.config import TrainConfig, check_keys, resolve_config
from ganaug.data import LabeledImages, load_data
from ganaug.errors import GanaugConfigError, GanaugDataError
from ganaug.evaluation.leakage import refuse_shared
from ganaug.io import load
from ganaug.models import supported_sizes
from ganaug.models.layers import check_square, nearest_size
from ganaug.training import train_or_resume

__all__ = ["check_disjoint", "check_gan_config", "check_gan_size", "check_no_leakage",
           "check_regimes", "gan_folder", "load_regime", "parse_regimes", "regime_generator",
           "settings_digest", "train_gan"]


#: What ``per_class`` (the regimes) accepts, and an example.
_REGIMES = ("positive integers or 'all', comma-separated or as a list",
            "Use e.g. per_class='10,50,all'.")


def parse_regimes(per_class: str | Sequence) -> list[str]:
    """``"10,50,all"`` -> ``["10", "50", "all"]`` (checked, spelled one way: ``010`` is ``10``,
    ``ALL`` is ``all``; a regime named twice is refused)."""
    if isinstance(per_class, int) and not isinstance(per_class, bool):
        per_class = [per_class]  # per_class=10: one regime
    if not isinstance(per_class, (str, Sequence)):
        raise GanaugConfigError(f"per_class must be {_REGIMES[0]}, got {per_class!r}. "
                                f"{_REGIMES[1]}")
    items = per_class.split(",") if isinstance(per_class, str) else [str(v) for v in per_class]
    regimes: list[str] = []
    for item in (i.strip().lower() for i in items if i.strip()):
        if item != "all" and not (item.isascii() and item.isdigit() and int(item) > 0):
            raise GanaugConfigError(f"per_class must be {_REGIMES[0]}, got {item!r} in "
                                    f"{per_class!r}. {_REGIMES[1]}")
        regime = item if item == "all" else str(int(item))
        if regime in regimes:
            raise GanaugConfigError(f"per_class names {regime} twice, got {per_class!r}; name "
                                    f"each regime once. {_REGIMES[1]}")
        regimes.append(regime)
    if not regimes:
        raise GanaugConfigError(f"per_class names no regime, got {per_class!r}. "
                                f"{_REGIMES[1]}")
    return regimes


def load_regime(data: str, regime: str, *, seed: int, test: str | None, image_size: int | None,
                channels: int | None, imbalance: float | None) -> LabeledImages:
    """The real training subset of one regime and seed (from the train split only)."""
    n = None if regime == "all" else int(regime)
    return load_data(data, split=None if test else "train", size=image_size, channels=channels,
                     per_class=n, imbalance=imbalance, seed=seed)


def check_disjoint(data: str, test: str | None, test_data: LabeledImages, *,
                   image_size: int | None, channels: int | None) -> LabeledImages:
    """Refuse a ``test`` set of which more than :data:`~ganaug.evaluation.leakage.MAX_SHARED` are images (pixel for pixel)
    of the training pool the regimes draw from: for example ``test`` naming ``data`` itself.
    Without ``test`` the data's own split is checked too: a held-out split is disjoint by
    index, but a folder's ``train/`` (or an npz's ``x_train``) can hold copies of its test images.

    Returns:
        The training pool (every regime draws its subset from it).

    Raises:
        GanaugDataError: the sets share too many images.
    """
    pool = load_regime(data, "all", seed=0, test=test, image_size=image_size, channels=channels,
                       imbalance=None)
    if test is None:
        why = ("its own train split holds copies of its test split, so the accuracy would be "
               "measured on what the classifiers learned from. Remove the copies from the "
               "training images, or pass test= a set disjoint from them.")
    else:
        why = ("the accuracy would be measured on what the classifiers learned from. Pass "
               "test= a set disjoint from data= (or leave test= out to use the data's own "
               "test split).")
    refuse_shared(pool.images, test_data, lambda shared: (
        f"{shared:,} of the {len(test_data):,} test images are also training images of "
        f"{pool.spec}: {why}"))
    return pool


def check_regimes(pool: LabeledImages, regimes: Sequence[str], imbalance: float | None) -> None:
    """Refuse, before any cell trains, a regime whose subset cannot be drawn from the training
    ``pool`` (a ``per_class`` above a class's count, an ``imbalance`` the head cannot reach):
    the regimes before it would train first, for hours.

    Raises:
        GanaugDataError: as :func:`ganaug.data.load_data` would at that regime.
    """
    from ganaug.data import regime_counts

    for regime in regimes:  # the counts only: no subset is copied
        n = None if regime == "all" else int(regime)
        if imbalance is not None or n is not None:
            regime_counts(pool, per_class=n, imbalance=imbalance)


def check_no_leakage(generator, subset, test, *, path: str = "the generator") -> None:
    """Refuse a generator that saw images outside ``subset`` (other training images or the test
    split), judged by the data fingerprint it recorded at training time.

    Raises:
        GanaugDataError: no recorded fingerprint, or one that is not the subset's.
    """
    training = (getattr(generator, "metadata", None) or {}).get("training") or {}
    recorded = training.get("data_fingerprint")
    spec = training.get("data", "unknown data")
    if not recorded:
        raise GanaugDataError(
            f"{path} records no training-data fingerprint, so ganaug cannot check that it never "
            f"saw the test split ({test.spec}). Use a generator trained by ganaug, or leave out "
            "generator= to train one per regime.")
    if recorded == subset.fingerprint():
        return
    raise GanaugDataError(
        f"{path} was trained on {spec} (fingerprint {recorded[:12]}), not on this regime's "
        f"training subset {subset.spec} ({subset.fingerprint()[:12]}). It may have seen images "
        f"outside the subset or from the test split {test.spec}, which would inflate the GAN "
        "arms. Leave out generator= (a GAN is trained on each subset), or pass one trained on "
        "exactly that subset.")


def train_gan(data: LabeledImages, out: Path, *, seed: int, steps: int | None,
               device: DeviceLike = None, config: dict[str, Any] | None = None) -> Path:
    """Train a GAN on exactly ``data`` in the run folder ``out``, resuming from its checkpoint, or
    reuse the finished run there (same data fingerprint and step count); returns the model file.

    The one GAN-training call site of the experiment and the demo (through
    :func:`ganaug.training.train_or_resume`).
    """
    fields = dict(config or {})
    # A batch larger than a tiny subset cannot be drawn; presets assume thousands of images.
    if len(data) < 128 and "batch_size" not in fields:
        fields["batch_size"] = max(2, min(64, len(data)))
    cfg = TrainConfig(data=data.spec or "subset", seed=seed, steps=steps, out=str(out),
                      device=None if device is None else str(device), **fields)
    return train_or_resume(cfg, data=data)


def check_gan_size(gan_arms: list[str], gan_config: dict[str, Any], image_size: int,
                   channels: int, *, device: torch.device, width: int | None = None) -> None:
    """Refuse, before any cell trains, GAN arms whose generator cannot be built for the data's
    ``image_size`` (the arch the GAN's preset picks for it, or ``gan_config``'s), or for
    images ``width`` wide that are not square.

    Raises:
        GanaugConfigError: the arch makes no ``image_size`` images.
        GanaugDataError: the images are not square.
    """
    if not gan_arms:
        return
    fields = {k: v for k, v in gan_config.items() if k in ("arch", "loss")}
    cfg, _ = resolve_config(TrainConfig(data="experiment", **fields), num_images=1,
                            channels=channels, image_size=image_size, device_type=device.type)
    sizes = supported_sizes(cfg.arch)
    check_square(image_size, image_size if width is None else width, sizes)
    if image_size not in sizes:
        fit = nearest_size(sizes, image_size)
        raise GanaugConfigError(
            f"The GAN arms ({', '.join(gan_arms)}) need a generator of {image_size}x{image_size} "
            f"images, but arch '{cfg.arch}' makes sizes {', '.join(map(str, sizes))}. Resize "
            f"the data (image_size={fit}), give a generator= of this size, or leave the GAN "
            "arms out (arms=).")


def settings_digest(settings: dict[str, Any]) -> str:
    """A short name for a set of settings (JSON, sorted keys): folders and files made with other
    settings get other names."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:10]


#: TrainConfig fields the experiment sets itself for every GAN (steps: ``gan_steps``).
_EXPERIMENT_GAN_FIELDS = ("data", "per_class", "imbalance", "steps", "seed", "out", "resume",
                          "device")


def check_gan_config(gan_config: dict[str, Any] | None, *, generator: str | None = None,
                     gan_steps: int | None = None) -> dict[str, Any]:
    """``gan_config`` as a dict of :class:`ganaug.TrainConfig` fields, checked and normalised
    before any compute (an unknown key or a bad value would otherwise surface at the first GAN
    arm; ``"1e-4"`` and ``0.0001`` must name the same GAN). With a given ``generator`` no GAN
    is trained, so ``gan_config`` and ``gan_steps`` are refused: they would do nothing."""
    if generator and (gan_config or gan_steps is not None):
        raise GanaugConfigError(
            f"generator={str(generator)!r} is used as given, so no GAN is trained and "
            f"gan_steps= / gan_config= would do nothing: leave out those two, or leave out "
            f"generator= to train a GAN per regime and seed.")
    fields = dict(gan_config or {})
    for key in _EXPERIMENT_GAN_FIELDS:
        if key in fields:
            raise GanaugConfigError(
                f"gan_config sets {key!r}, which the experiment sets itself for every GAN "
                "(the regime's subset, its seed, the folder; steps: gan_steps=); "
                "leave it out.")
    check_keys(fields, "gan_config")
    cfg = TrainConfig(**fields)  # the values, checked and normalised as `ganaug train` does
    return {key: getattr(cfg, key) for key in fields}


def gan_folder(out: Path, regime: str, seed: int, gan_config: dict[str, Any]) -> Path:
    """The run folder of a regime and seed's GAN; other ``gan_config`` fields get another one,
    so that a GAN trained with other settings is neither reused nor overwritten."""
    name = f"{regime}-s{seed}"
    if gan_config:
        name += "-" + settings_digest(gan_config)
    return out / "gans" / name


def regime_generator(settings, subset, test, given, gan_dir: Path, seed: int):
    """The given generator (checked for leakage), or one trained on exactly ``subset``."""
    if given is not None:
        check_no_leakage(given, subset, test, path=settings.generator)
        return given
    path = train_gan(subset, gan_dir, seed=seed, steps=settings.gan_steps,
                      device=settings.device, config=settings.gan_config)
    return load(path, device=settings.device or "cpu")
