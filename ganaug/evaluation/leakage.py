"""Test images that are not held out: shared with the images a classifier or the generator
trained on, pixel for pixel or as near copies (the same picture saved again, e.g. as a JPEG).
``ganaug evaluate`` and ``ganaug experiment`` refuse them before any compute, since every number
measured on them would be a training score."""

from __future__ import annotations

import hashlib
from typing import Any

import torch
import torch.nn.functional as F

from ganaug.errors import GanaugDataError

__all__ = ["MAX_SHARED", "check_generator_unseen", "check_unseen", "near_copies", "refuse_shared",
           "shared_images"]

#: The share of test images that may also be training images (exact copies) before the test
#: accuracy stops being a test accuracy.
MAX_SHARED = 0.01


#: Near copies are compared as luma, area-averaged to at most NEAR_SIDE x NEAR_SIDE pixels.
NEAR_SIDE = 32
#: A test image is a near copy when its nearest training image is within NEAR_RMS grey levels
#: (RMS, 0..255) and within NEAR_SHARE of the training images' median distance to their own
#: nearest neighbour (images that all look alike, e.g. flat shades, get a tighter tolerance).
#: Measured on cifar10-mini and mnist5k: JPEG re-encodings at quality 75-95 lie within 7.1 of
#: their original at full size; the nearest distinct training image of a test image lies 10.7
#: or more away (``benchmarks/near_copy_margins.py``; on the 8x8 digits q75 copies reach 10.6).
NEAR_RMS = 8.0
NEAR_SHARE = 0.25
#: Pool signatures compared at a time: at most 4096 x 1024 floats (16 MB) beside the distances.
POOL_SLICE = 4096
#: Multiply-adds the nearest-neighbour search may spend (about 10 s of one core); a larger
#: set is judged on a seeded sample of its test images (at least NEAR_MIN_SAMPLE).
NEAR_BUDGET = 5 * 10**10
NEAR_MIN_SAMPLE = 200


def _chunk(images: torch.Tensor) -> int:
    """Images per slice whose float copy stays near 128 MB (224 px RGB: 222 images)."""
    return max(1, min(4096, 2**25 // max(1, images[0].numel())))


def _signatures(images: torch.Tensor) -> torch.Tensor:
    """``(N, D)`` float32: luma area-averaged to at most NEAR_SIDE pixels a side, centred."""
    parts, step = [], _chunk(images)
    for start in range(0, len(images), step):
        x = images[start:start + step].float()
        if x.shape[1] == 3:
            x = (x * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
        side = (min(NEAR_SIDE, x.shape[-2]), min(NEAR_SIDE, x.shape[-1]))
        parts.append((F.adaptive_avg_pool2d(x[:, :1], side) - 128.0).flatten(1))
    return torch.cat(parts)


def _nearest_ms(queries: torch.Tensor, pool: torch.Tensor,
                exclude: torch.Tensor | None = None) -> torch.Tensor:
    """The mean squared difference of each query signature to its nearest ``pool`` signature
    (``exclude[i]``: a pool index query ``i`` may not match, itself)."""
    best = torch.full((len(queries),), float("inf"))
    qn = (queries * queries).sum(1, keepdim=True)
    step = POOL_SLICE
    for start in range(0, len(pool), step):
        sig = pool[start:start + step]
        d = (qn + (sig * sig).sum(1)[None] - 2 * queries @ sig.T).clamp_min_(0)
        if exclude is not None:
            rows = ((exclude >= start) & (exclude < start + len(sig))).nonzero().flatten()
            d[rows, exclude[rows] - start] = float("inf")
        best = torch.minimum(best, d.min(1).values)
    return best / queries.shape[1]


def near_copies(pool: torch.Tensor, test: torch.Tensor, *,
                budget: int = NEAR_BUDGET) -> tuple[int, int]:
    """``(near, checked)``: how many of the ``checked`` test images (all of ``test``, or a
    seeded sample when the search would exceed ``budget`` multiply-adds) are near copies of
    a ``pool`` image (both ``(N, C, H, W)`` uint8 of one shape): see :data:`NEAR_RMS`."""
    if not len(pool) or not len(test):
        return 0, len(test)
    with torch.no_grad():
        sigs = _signatures(pool)  # once: at most 32x32 floats an image
        m = min(len(test), max(NEAR_MIN_SAMPLE, budget // (len(pool) * sigs.shape[1])))
        g = torch.Generator().manual_seed(0)
        picked = torch.randperm(len(test), generator=g)[:m].sort().values
        if len(pool) > 1:  # the pool's own spacing: a median over a sample of its images
            k = torch.randperm(len(pool), generator=g)[:min(len(pool), NEAR_MIN_SAMPLE)]
            spacing = float(_nearest_ms(sigs[k], sigs, exclude=k).median().sqrt())
        else:
            spacing = 0.0
        tolerance = max(min(NEAR_RMS, NEAR_SHARE * spacing), 0.5)  # 0.5: float rounding
        dist = _nearest_ms(_signatures(test[picked]), sigs).sqrt()
    return int((dist < tolerance).sum()), m


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
        "Pass test= a set disjoint from data=, or leave test= out (with split='train') to use "
        "the data's own test split."))


def refuse_shared(pool, test, message) -> None:
    """Raise ``GanaugDataError(message(shared))`` when more than :data:`MAX_SHARED` of the
    ``test`` images are in ``pool`` (a ``(N, C, H, W)`` tensor), pixel for pixel or as near
    copies (:func:`near_copies`)."""
    exact = shared_images(pool, test.images)
    near, checked = near_copies(pool, test.images)
    shared = max(exact, round(near / max(checked, 1) * len(test)))
    if shared > MAX_SHARED * len(test):
        raise GanaugDataError(
            f"{message(shared)} (Counted: {exact:,} identical pixel for pixel; {near:,} of "
            f"the {checked:,} test images checked are near copies of a training image, such "
            f"as the same picture re-encoded or saved again.)")


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
        "on the training split only (split='train'), or pass test= a set it never saw."))
