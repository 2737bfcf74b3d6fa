"""Test images that are not held out: shared, pixel for pixel, with the images a classifier or
the generator trained on. ``ganaug evaluate`` and ``ganaug experiment`` refuse them before any
compute, since every number measured on them would be a training score."""

from __future__ import annotations

import hashlib
from typing import Any

from ganaug.errors import GanaugDataError

__all__ = ["MAX_SHARED", "check_generator_unseen", "check_unseen", "refuse_shared", "shared_images"]

#: The share of test images that may also be training images (exact copies) before the test
#: accuracy stops being a test accuracy.
MAX_SHARED = 0.01


def _digests(images) -> list[bytes]:
    return [hashlib.blake2b(x.contiguous().numpy().tobytes(), digest_size=16).digest()
            for x in images.cpu()]


def shared_images(pool, test) -> int:
    """How many of the ``test`` images (a ``(N, C, H, W)`` tensor) are in ``pool``, exactly."""
    seen = set(_digests(pool))
    return sum(d in seen for d in _digests(test))


def check_unseen(train, test) -> None:
    """Refuse ``test`` (``LabeledImages``) of which more than :data:`MAX_SHARED` are images of
    ``train``, the data the feature classifier trains on (``--test`` naming ``--data``, or
    ``--split all`` with a ``--test`` inside it).

    Raises:
        GanaugDataError: the sets share too many images.
    """
    if tuple(train.images.shape[1:]) != tuple(test.images.shape[1:]):
        return  # other sizes: nothing can be shared pixel for pixel
    refuse_shared(train.images, test, lambda shared: (
        f"{shared:,} of the {len(test):,} test images are also training images of "
        f"{train.spec or 'the training data'}: the classifiers would be tested on what they "
        "learned from, and a generator that copies its training images would score well. "
        "Give a --test set disjoint from --data, or leave --test out (and --split train) to "
        "use the data's own test split."))


def refuse_shared(pool, test, message) -> None:
    """Raise ``GanaugDataError(message(shared))`` when more than :data:`MAX_SHARED` of the
    ``test`` images are in ``pool`` (a ``(N, C, H, W)`` tensor)."""
    shared = shared_images(pool, test.images)
    if shared > MAX_SHARED * len(test):
        raise GanaugDataError(message(shared))


def check_generator_unseen(generator: Any, train, test) -> None:
    """Refuse a generator whose model file records training data that holds more than
    :data:`MAX_SHARED` of the ``test`` images (trained on ``split=all``, or on the ``--test``
    set). The recorded ``data`` spec is loaded again at the test images' size; a spec that
    cannot be loaded any more (a moved folder, a Python dataset) is not checked. A generator
    trained on exactly ``train`` (same fingerprint) is covered by :func:`check_unseen`.

    Raises:
        GanaugDataError: the generator's training data holds the test images.
    """
    from ganaug.data import load_data

    training = (getattr(generator, "metadata", None) or {}).get("training") or {}
    spec, recorded = training.get("data"), training.get("data_fingerprint")
    if not isinstance(spec, str) or not spec or recorded == train.fingerprint():
        return
    size, channels = int(test.images.shape[-1]), int(test.images.shape[1])
    try:
        seen = load_data(spec, size=size, channels=channels)
    except (GanaugDataError, OSError, ValueError):
        return  # not loadable here: nothing to compare
    refuse_shared(seen.images, test, lambda shared: (
        f"The generator was trained on {spec}, which holds {shared:,} of the {len(test):,} "
        f"test images ({test.spec or 'the test data'}): it would be scored on images it was "
        "trained on, and copying them would look like quality. Evaluate a generator trained "
        "on the training split only (ganaug train --split train), or pass a --test set it "
        "never saw."))
