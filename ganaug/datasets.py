"""Datasets of generated images and real/synthetic mixtures.

:func:`with_labels` lets a label-aware transform (:class:`ganaug.GANAugment`) see the label of
ImageFolder/CIFAR10-style datasets. :class:`SyntheticDataset` is a deterministic, index-
addressable dataset of generated images (optionally filtered by a classifier's confidence, as
in https://arxiv.org/abs/2304.08466). :class:`MixedDataset` appends synthetic samples to a
real dataset (exact ratio or long-tail rebalancing) or replaces real samples per access with
probability ``p`` (DA-Fusion style, https://arxiv.org/abs/2302.07944).
"""

from __future__ import annotations

import heapq
import inspect
import json
import math
import os
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import PIL.Image
import torch
from torch.utils.data import Dataset

from ganaug.errors import GanaugConfigError, GanaugDataError
from ganaug.generator import Generator
from ganaug.transforms import (
    SampleBank,
    check_positive,
    check_probability,
    derive_seed,
    match_image,
    resolve_generator,
    worker_key,
)

__all__ = [
    "LabeledTransformDataset",
    "MixedDataset",
    "SyntheticDataset",
    "balance_counts",
    "with_labels",
]

CACHE_META = "ganaug-synthetic.json"
LRU_CHUNKS = 8  # chunks kept per process with cache=None


# -- with_labels -----------------------------------------------------------------------------
def _takes_label(transform: Callable) -> bool:
    """True when ``transform`` accepts ``(image, label)``: two positional args or ``*args``."""
    try:
        params = inspect.signature(transform).parameters.values()
    except (TypeError, ValueError):
        return False
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return any(p.kind == p.VAR_POSITIONAL for p in params) or len(positional) >= 2


def apply_transform(transform: Callable | None, img: Any, label: Any) -> tuple[Any, Any]:
    """Apply ``transform`` to a sample: ``transform(img, label)`` when it takes a label (v2
    transforms, ``v2.Compose``, two-argument callables), else ``transform(img)``."""
    if transform is None:
        return img, label
    if _takes_label(transform):
        out = transform(img, label)
        if isinstance(out, (tuple, list)) and len(out) == 2:
            return out[0], out[1]
        return out, label
    return transform(img), label


class LabeledTransformDataset(Dataset):
    """A dataset wrapper that calls ``transform(image, label)`` (see :func:`with_labels`)."""

    def __init__(self, dataset: Dataset, transform: Callable | None) -> None:
        self.dataset = dataset
        self.transform = transform

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        img, label = self.dataset[index][:2]
        return apply_transform(self.transform, img, label)

    @property
    def classes(self) -> list[str]:
        return self.dataset.classes

    @property
    def class_to_idx(self) -> dict[str, int]:
        return self.dataset.class_to_idx

    @property
    def targets(self) -> list[int]:
        return self.dataset.targets

    def __repr__(self) -> str:
        return f"with_labels({self.dataset!r}, {self.transform!r})"


def with_labels(dataset: Dataset, transform: Callable | None) -> LabeledTransformDataset:
    """Wrap an ``(image, label)`` dataset so ``transform`` receives the label too.

    torchvision's ImageFolder/CIFAR10 call ``transform(image)`` alone, so a label-aware
    transform such as :class:`ganaug.GANAugment` cannot reach the label. The wrapper reads
    ``dataset[i] -> (image, label)`` and returns ``transform(image, label)``. A transform that
    takes one argument (e.g. a classic ``transforms.Compose``, as timm's ``create_loader``
    assigns to ``.transform``) gets the image only. ``transform`` is a settable attribute;
    ``classes``, ``class_to_idx`` and ``targets`` come from ``dataset``; ``len`` is the same.

    Args:
        dataset: a map-style dataset returning ``(image, int label)``; give it no
            ``transform`` of its own (the wrapper's runs after it).
        transform: e.g. ``v2.Compose([ganaug.GANAugment(gen), v2.RandomCrop(32, 4), ...])``.
    """
    return LabeledTransformDataset(dataset, transform)


# -- helpers ---------------------------------------------------------------------------------
def _round_half_up(x: float) -> int:
    return math.floor(x + 0.5)


def _class_indices(classes: Sequence[str], key: Any, *, what: str) -> int:
    if isinstance(key, str):
        if key in classes:
            return list(classes).index(key)
        from ganaug.errors import did_you_mean

        raise GanaugConfigError(f"Unknown class '{key}' in {what}. Classes: "
                                f"{', '.join(classes)}." + did_you_mean(key, classes))
    if isinstance(key, bool) or not isinstance(key, (int, np.integer)) or not 0 <= key < len(classes):
        raise GanaugConfigError(f"Class {key!r} in {what} is out of range: use a class name or an "
                                f"index 0..{len(classes) - 1}.")
    return int(key)


def _per_class(value: Mapping | Sequence | int, classes: Sequence[str], *, what: str) -> list[int]:
    """Per-class non-negative ints from an int, a sequence or a {class: count} mapping."""
    if isinstance(value, Mapping):
        out = [0] * len(classes)
        for key, n in value.items():
            out[_class_indices(classes, key, what=what)] = n
    elif isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        out = [value] * len(classes)
    else:
        out = list(value)
        if len(out) != len(classes):
            raise GanaugConfigError(f"{what} has {len(out)} entries for {len(classes)} classes; "
                                    "give one count per class or a {class: count} dict.")
    for n in out:
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise GanaugConfigError(f"{what} must hold integers >= 0, got {n!r}.")
    return [int(n) for n in out]


def dataset_labels(dataset: Dataset) -> list[int]:
    """The int labels of a map-style dataset: ``.targets`` if present, else one pass over it."""
    targets = getattr(dataset, "targets", None)
    if targets is None:
        return [int(dataset[i][1]) for i in range(len(dataset))]
    if isinstance(targets, torch.Tensor):
        return targets.tolist()
    return [int(t) for t in targets]


# -- SyntheticDataset ------------------------------------------------------------------------
class SyntheticDataset(Dataset):
    """A deterministic, index-addressable dataset of generated ``(PIL image, int label)``.

    Items are class-major: ``counts[0]`` images of class 0, then class 1, ... Item ``i`` maps
    to (class ``c``, index ``j`` in the class), whose noise is seeded from ``(seed, c, j)``
    exactly as in ``ganaug export`` (:func:`ganaug.export.generate_items`): item ``i`` is the
    same image whatever the access order, process or worker, and equals image ``j`` of class
    ``c`` of an export with the same seed. Items are generated in chunks of ``chunk_size``
    per class (one forward pass each) on first access, or all at once by :meth:`generate`.
    With ``filter`` the candidates of chunk ``k`` are seeded from ``(seed, c, k, round)``.

    Args:
        generator: a :class:`ganaug.Generator` or a model file path (loaded lazily per process).
        n_per_class: images per class (exclusive with ``counts``).
        counts: ``{class name or index: count}`` or one count per class.
        seed: base seed of every chunk.
        transform, target_transform: applied to the PIL image / int label (settable).
        cache: ``None`` keeps the last few chunks per process (fine for sequential reads);
            ``"memory"`` keeps every generated chunk (use it, or :meth:`generate`, when
            shuffling); a directory keeps PNGs in ``ganaug export``'s ImageFolder layout
            ``DIR/<class>/<j:06d>.png`` + ``manifest.csv`` + ``export.json``, reused by later
            runs (and exports) with the same model, seed and truncation.
        chunk_size: images generated per call and class.
        truncation: see :meth:`ganaug.Generator.noise`.
        progress: show a tqdm bar in :meth:`generate`.
        filter: a classifier ``(N, C, H, W) float in [0, 1] -> (N, K) logits`` (class ``k``
            of the classifier = class ``k`` of the generator); only samples whose softmax
            probability of their intended class is ``>= min_confidence`` are kept.
        min_confidence: acceptance threshold in [0, 1].
        max_tries: most candidates drawn to fill one chunk (default 20 x the chunk length).
        device: where to generate (default: the generator's device; the CPU inside
            DataLoader workers).

    Raises:
        GanaugConfigError: bad counts, unknown class names, bad settings, a cache folder made
            with other settings.
        GanaugDataError: (when generating) a class whose filter acceptance is too low.
    """

    def __init__(self, generator: Generator | str | os.PathLike, n_per_class: int | None = None,
                 counts: Mapping | Sequence[int] | None = None, *, seed: int = 0,
                 transform: Callable | None = None, target_transform: Callable | None = None,
                 cache: str | os.PathLike | None = None, chunk_size: int = 256,
                 truncation: float = 1.0, progress: bool = False, filter: Callable | None = None,
                 min_confidence: float = 0.9, max_tries: int | None = None,
                 device: str | torch.device | None = None) -> None:
        self.path = str(generator) if isinstance(generator, (str, os.PathLike)) else None
        self._generator = None if self.path else resolve_generator(generator)
        self.classes = list(self.generator.classes)
        self.class_to_idx = {name: k for k, name in enumerate(self.classes)}
        if (n_per_class is None) == (counts is None):
            raise GanaugConfigError("Pass exactly one of n_per_class= (images per class) or "
                                    "counts= ({class: count} or one count per class).")
        self.counts = _per_class(n_per_class if counts is None else counts, self.classes,
                                 what="n_per_class" if counts is None else "counts")
        self.offsets = np.cumsum([0] + self.counts).tolist()
        self.targets = [c for c, n in enumerate(self.counts) for _ in range(n)]
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise GanaugConfigError(f"seed must be an int >= 0, got {seed!r}.")
        self.seed, self.truncation = int(seed), float(truncation)
        self.chunk_size = check_positive("chunk_size", chunk_size)
        self.transform, self.target_transform = transform, target_transform
        self.progress, self.filter = progress, filter
        self.min_confidence = check_probability("min_confidence", min_confidence)
        self.max_tries = None if max_tries is None else check_positive("max_tries", max_tries)
        self.device = None if device is None else torch.device(device)
        self.cache_dir: Path | None = None
        if cache not in (None, "memory"):
            self.cache_dir = Path(cache)
            self._check_cache_dir()
        self.cache = cache
        self._chunks: OrderedDict[tuple[int, int], torch.Tensor] = OrderedDict()
        self._tried = [0] * len(self.classes)
        self._accepted = [0] * len(self.classes)

    # -- generator --------------------------------------------------------------------------
    @property
    def generator(self) -> Generator:
        if self._generator is None:
            self._generator = resolve_generator(self.path)
        return self._generator

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        if self.path is not None:
            state["_generator"] = None
        return state

    # -- indexing ---------------------------------------------------------------------------
    def __len__(self) -> int:
        return self.offsets[-1]

    def locate(self, index: int) -> tuple[int, int]:
        """``index -> (class, index within the class)``."""
        n = len(self)
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError(f"index {index} is out of range for {n} synthetic images")
        cls = int(np.searchsorted(self.offsets, index, side="right")) - 1
        return cls, index - self.offsets[cls]

    def index_of(self, cls: int, j: int) -> int:
        """The dataset index of image ``j`` of class ``cls``."""
        if not 0 <= j < self.counts[cls]:
            raise IndexError(f"class {cls} has {self.counts[cls]} images, asked for {j}")
        return self.offsets[cls] + j

    def image(self, index: int) -> torch.Tensor:
        """Item ``index`` as ``(C, H, W) uint8`` (no transform)."""
        cls, j = self.locate(index)
        return self._chunk(cls, j // self.chunk_size)[j % self.chunk_size]

    def __getitem__(self, index: int) -> tuple[Any, int]:
        from torchvision.transforms.v2.functional import to_pil_image

        img = to_pil_image(self.image(index))
        label = self.targets[index]
        if self.transform is not None:
            img = self.transform(img)
        if self.target_transform is not None:
            label = self.target_transform(label)
        return img, label

    def generate(self) -> SyntheticDataset:
        """Generate (or read from the cache folder) every chunk now; returns ``self``.

        With ``cache=None`` this switches the cache to ``"memory"`` so the work is kept.
        """
        if self.cache is None:
            self.cache = "memory"
        jobs = [(c, k) for c, n in enumerate(self.counts) for k in range(-(-n // self.chunk_size))]
        if self.progress:
            from tqdm.auto import tqdm

            jobs = tqdm(jobs, desc="synthetic chunks", unit="chunk")
        for cls, k in jobs:
            self._chunk(cls, k)
        if self.cache_dir is not None:
            self._write_manifest()
        return self

    # -- acceptance -------------------------------------------------------------------------
    @property
    def acceptance(self) -> dict[str, float]:
        """Filter acceptance rate per class name (classes drawn so far in this process)."""
        return {self.classes[c]: self._accepted[c] / self._tried[c]
                for c in range(len(self.classes)) if self._tried[c]}

    # -- chunks -----------------------------------------------------------------------------
    def _chunk_len(self, cls: int, k: int) -> int:
        return min(self.chunk_size, self.counts[cls] - k * self.chunk_size)

    def _chunk(self, cls: int, k: int) -> torch.Tensor:
        key = (cls, k)
        if key in self._chunks:
            self._chunks.move_to_end(key)
            return self._chunks[key]
        images = self._read_chunk(cls, k) if self.cache_dir is not None else None
        if images is None:
            images = self._make_chunk(cls, k)
            if self.cache_dir is not None:
                self._write_chunk(cls, k, images)
        self._chunks[key] = images
        if self.cache is None and len(self._chunks) > LRU_CHUNKS:
            self._chunks.popitem(last=False)
        return images

    def _device(self) -> torch.device | None:
        if torch.utils.data.get_worker_info() is not None:
            return torch.device("cpu")  # CUDA cannot run in forked workers
        return self.device

    def _make_chunk(self, cls: int, k: int) -> torch.Tensor:
        m = self._chunk_len(cls, k)
        gen, device = self.generator, self._device()
        if self.filter is None:
            from ganaug.export import generate_items

            first = k * self.chunk_size
            return generate_items(gen, [cls] * m, list(range(first, first + m)), seed=self.seed,
                                  truncation=self.truncation, batch_size=m, device=device).cpu()
        max_tries = self.max_tries or 20 * m
        kept, tried, accepted, rnd = [], 0, 0, 0
        while accepted < m:
            if tried >= max_tries:
                self._refuse(cls, tried, accepted, m, max_tries)
            n = min(m, max_tries - tried)
            cand = gen.sample([cls] * n, seed=derive_seed(self.seed, cls, k, rnd),
                              truncation=self.truncation, batch_size=n, device=device).cpu()
            ok = self._accept(cand, cls)
            kept.append(cand[ok])
            tried, accepted, rnd = tried + n, accepted + int(ok.sum()), rnd + 1
            self._tried[cls] += n
            self._accepted[cls] += int(ok.sum())
        return torch.cat(kept)[:m]

    def _accept(self, images: torch.Tensor, cls: int) -> torch.Tensor:
        """Boolean mask of the candidates the filter assigns to ``cls`` confidently enough."""
        model = self.filter
        params = list(model.parameters()) if isinstance(model, torch.nn.Module) else []
        device = params[0].device if params else torch.device("cpu")
        if isinstance(model, torch.nn.Module):
            model.eval()  # deterministic (no dropout / batch statistics) so items are stable
        with torch.no_grad():
            logits = model(images.to(device).float() / 255.0)
        if not isinstance(logits, torch.Tensor) or logits.ndim != 2 or logits.shape[0] != len(images):
            got = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
            raise GanaugConfigError(f"filter must map (N, C, H, W) images to (N, K) logits; for "
                                    f"N={len(images)} it returned {got}.")
        if logits.shape[1] <= cls:
            raise GanaugConfigError(f"filter returns {logits.shape[1]} logits but class {cls} "
                                    f"('{self.classes[cls]}') needs at least {cls + 1}.")
        probs = logits.float().softmax(dim=1)[:, cls].cpu()
        return probs >= self.min_confidence

    def _refuse(self, cls: int, tried: int, accepted: int, m: int, max_tries: int) -> None:
        raise GanaugDataError(
            f"Class '{self.classes[cls]}': only {accepted} of {tried} generated samples "
            f"({accepted / max(tried, 1):.1%}) reach min_confidence={self.min_confidence} under "
            f"the filter, so {m} images cannot be found within max_tries={max_tries}. Lower "
            "min_confidence, raise max_tries, or train the generator longer.")

    # -- cache folder -----------------------------------------------------------------------
    # Unfiltered items are ganaug export images (same noise, layout and export.json), so a
    # folder written by `ganaug export` with the same model, seed and truncation is reused
    # and vice versa. Filtered items are not, so they get their own settings file.
    def _export_spec(self) -> dict[str, Any]:
        from ganaug import __version__
        from ganaug.export import EXPORT_FORMAT, model_fingerprint

        return {"format": EXPORT_FORMAT, "ganaug_version": __version__,
                "model_sha256": model_fingerprint(self.generator),
                "n_per_class": max(self.counts), "seed": self.seed, "fmt": "png",
                "jpeg_quality": None, "classes": list(self.classes),
                "labels": list(range(len(self.classes))), "truncation": self.truncation,
                "noise": "image_seed(seed, label, index)"}

    def _check_cache_dir(self) -> None:
        from ganaug._files import atomic_write_text

        if self.filter is None:
            meta, settings = self.cache_dir / "export.json", self._export_spec()
            keys = ("model_sha256", "seed", "fmt", "truncation")
        else:
            from ganaug.export import model_fingerprint

            meta = self.cache_dir / CACHE_META
            settings = {"seed": self.seed, "truncation": self.truncation,
                        "chunk_size": self.chunk_size, "counts": self.counts,
                        "classes": self.classes, "min_confidence": self.min_confidence,
                        "model_sha256": model_fingerprint(self.generator)}
            keys = tuple(settings)
        if meta.is_file():
            old = json.loads(meta.read_text())
            diff = [k for k in keys if old.get(k) != settings[k]]
            if diff:
                raise GanaugConfigError(
                    f"Cache folder '{self.cache_dir}' holds images made with other settings "
                    f"({', '.join(diff)} differ). Use a new folder, or delete this one.")
            self._digits = max(6, len(str(int(old.get("n_per_class", 1)) - 1)))
        elif self.cache_dir.exists() and any(self.cache_dir.iterdir()):
            raise GanaugConfigError(
                f"Cache folder '{self.cache_dir}' is not empty and holds no {meta.name}; "
                "pick a new or empty folder so no other files get mixed in.")
        else:
            atomic_write_text(meta, json.dumps(settings, indent=2) + "\n")
        if not hasattr(self, "_digits"):
            self._digits = max(6, len(str(max(self.counts, default=1) - 1)))

    def _relpath(self, cls: int, j: int) -> str:
        from ganaug.export import _folder_name

        return f"{_folder_name(self.classes[cls], cls)}/{j:0{self._digits}d}.png"

    def _file(self, cls: int, j: int) -> Path:
        return self.cache_dir / self._relpath(cls, j)

    def _read_chunk(self, cls: int, k: int) -> torch.Tensor | None:
        from torchvision.transforms.v2.functional import pil_to_tensor

        start = k * self.chunk_size
        files = [self._file(cls, start + i) for i in range(self._chunk_len(cls, k))]
        if not all(f.is_file() for f in files):
            return None
        mode = "L" if self.generator.channels == 1 else "RGB"
        images = []
        for f in files:
            with PIL.Image.open(f) as img:
                images.append(pil_to_tensor(img.convert(mode)))
        return torch.stack(images)

    def _write_chunk(self, cls: int, k: int, images: torch.Tensor) -> None:
        from torchvision.transforms.v2.functional import to_pil_image

        from ganaug._files import atomic_path

        for i, img in enumerate(images):
            path = self._file(cls, k * self.chunk_size + i)
            with atomic_path(path) as tmp:
                to_pil_image(img).save(tmp, format="PNG")

    def _write_manifest(self) -> None:
        """Write ``manifest.csv`` (the export's columns) unless an export already wrote one."""
        import csv

        from ganaug._files import atomic_path
        from ganaug.export import MANIFEST_FIELDS

        manifest = self.cache_dir / "manifest.csv"
        if manifest.is_file() and self.filter is None:
            return
        with atomic_path(manifest) as tmp, open(tmp, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(MANIFEST_FIELDS)
            for cls, n in enumerate(self.counts):
                for j in range(n):
                    writer.writerow([self._relpath(cls, j), self.classes[cls], cls, self.seed, j])


# -- balancing -------------------------------------------------------------------------------
BALANCE_MODES = ("uniform", "match_max")


def balance_counts(real_counts: Sequence[int], balance: str | Mapping, *,
                   budget: int | None = None, classes: Sequence[str] | None = None) -> list[int]:
    """Synthetic images to add per class.

    * ``"match_max"``: top every class up to the largest real class count.
    * ``"uniform"``: spend ``budget`` synthetic images (default: exactly what ``match_max``
      needs) filling the smallest classes first, so totals end as equal as possible; a
      budget beyond equality is spread evenly (ties go to the lower class index).
    * ``{class: total}``: top each listed class up to that total (never removes real images).
    """
    classes = list(classes) if classes is not None else [str(i) for i in range(len(real_counts))]
    top = max(real_counts) if real_counts else 0
    if isinstance(balance, Mapping):
        if budget is not None:
            raise GanaugConfigError("ratio= cannot be combined with a {class: total} balance; "
                                    "the dict already fixes the totals.")
        targets = _per_class(balance, classes, what="balance")
        listed = {_class_indices(classes, key, what="balance") for key in balance}
        return [max(0, targets[c] - n) if c in listed else 0 for c, n in enumerate(real_counts)]
    if balance == "match_max":
        if budget is not None:
            raise GanaugConfigError("ratio= cannot be combined with balance='match_max'; use "
                                    "balance='uniform' to spend a ratio on the rarest classes.")
        return [top - n for n in real_counts]
    if balance != "uniform":
        from ganaug.errors import did_you_mean

        raise GanaugConfigError(f"Unknown balance {balance!r}. Use 'uniform', 'match_max' or a "
                                "{class: total} dict." + did_you_mean(str(balance), BALANCE_MODES))
    if budget is None:
        return [top - n for n in real_counts]
    heap = [(n, c) for c, n in enumerate(real_counts)]
    heapq.heapify(heap)
    extra = [0] * len(real_counts)
    for _ in range(budget):
        n, c = heapq.heappop(heap)
        extra[c] += 1
        heapq.heappush(heap, (n + 1, c))
    return extra


def proportional_counts(real_counts: Sequence[int], total: int) -> list[int]:
    """Split ``total`` in proportion to ``real_counts`` (largest remainder, exact sum)."""
    n = sum(real_counts)
    if n == 0:
        return [0] * len(real_counts)
    exact = [total * c / n for c in real_counts]
    out = [math.floor(e) for e in exact]
    order = sorted(range(len(exact)), key=lambda c: (-(exact[c] - out[c]), c))
    for c in order[: total - sum(out)]:
        out[c] += 1
    return out


# -- MixedDataset ----------------------------------------------------------------------------
class MixedDataset(Dataset):
    """Real data plus synthetic data: appended (expansion, rebalancing) or replaced per access.

    ``mode="append"``: items ``0..len(real)-1`` are the real ones, then the synthetic ones.
    The synthetic part is ``round(ratio * len(real))`` images split like the real classes
    (``ratio=``), or tops classes up (``balance=``, see :func:`balance_counts`: ``"match_max"``,
    ``"uniform"`` optionally with a ``ratio`` budget, or ``{class: total}``), or is the whole
    given :class:`SyntheticDataset` (neither).
    ``mode="replace"``: same length as ``real``; each access of item ``i`` returns a synthetic
    image of its class instead with probability ``p`` (seeded per process and DataLoader
    worker, like :class:`ganaug.SampleBank`).

    Synthetic images are converted to the type, mode and size of the real images (the first
    real image in append mode, the replaced one in replace mode), so give ``real`` no tensor
    transform; put the pipeline in ``transform`` (settable, applied to real and synthetic).

    Args:
        real: a map-style dataset of ``(image, int label)``; ``.targets`` is used when present,
            otherwise the labels are read once.
        synthetic_or_generator: a :class:`SyntheticDataset`, a :class:`ganaug.Generator` or a
            model file path (then a SyntheticDataset / SampleBank is made with ``seed``).
        mode: ``"append"`` or ``"replace"``.
        ratio: synthetic size relative to ``len(real)`` (append).
        p: replacement probability (replace).
        balance: see above (append).
        seed: seeds the synthetic images and the replacement draws.
        transform, target_transform: applied to every image / label.
    """

    def __init__(self, real: Dataset, synthetic_or_generator: Any, *, mode: str = "append",
                 ratio: float | None = None, p: float | None = None,
                 balance: str | Mapping | None = None, seed: int = 0,
                 transform: Callable | None = None,
                 target_transform: Callable | None = None) -> None:
        if mode not in ("append", "replace"):
            raise GanaugConfigError(f"Unknown mode '{mode}'. Use 'append' or 'replace'.")
        self.real, self.mode, self.seed = real, mode, int(seed)
        self.transform, self.target_transform = transform, target_transform
        self.synthetic = synthetic_or_generator if isinstance(
            synthetic_or_generator, SyntheticDataset) else None
        source = synthetic_or_generator if self.synthetic is None else None
        gen_classes = (self.synthetic.classes if self.synthetic is not None
                       else _generator_classes(source))
        self.real_targets = dataset_labels(real)
        self.classes = list(getattr(real, "classes", None) or gen_classes)
        self._check_classes(gen_classes)
        self.class_to_idx = {name: k for k, name in enumerate(self.classes)}
        self.real_counts = np.bincount(np.asarray(self.real_targets, dtype=np.int64),
                                       minlength=len(self.classes)).tolist()
        if mode == "append":
            self._init_append(source, ratio, p, balance)
        else:
            self._init_replace(source, ratio, p, balance)

    def _check_classes(self, gen_classes: list[str]) -> None:
        real_classes = getattr(self.real, "classes", None)
        if real_classes is not None and list(real_classes) != list(gen_classes):
            raise GanaugDataError(
                f"The real dataset's classes ({', '.join(map(str, real_classes))}) differ from "
                f"the generator's ({', '.join(gen_classes)}). Use a generator trained on this "
                "dataset, with the same classes in the same order.")
        top = max(self.real_targets, default=-1)
        if top >= len(gen_classes) or min(self.real_targets, default=0) < 0:
            raise GanaugDataError(
                f"Real labels go up to {top} but the generator has {len(gen_classes)} classes "
                f"(labels 0..{len(gen_classes) - 1}). Use a generator trained on this dataset.")

    def _init_append(self, source, ratio, p, balance) -> None:
        if p is not None:
            raise GanaugConfigError("p= is for mode='replace'; in mode='append' use ratio= or "
                                    "balance=.")
        budget = None
        if ratio is not None:
            if not float(ratio) >= 0:
                raise GanaugConfigError(f"ratio must be >= 0, got {ratio!r}.")
            budget = _round_half_up(float(ratio) * len(self.real_targets))
        if balance is not None:
            needed = balance_counts(self.real_counts, balance, budget=budget, classes=self.classes)
        elif budget is not None:
            needed = proportional_counts(self.real_counts, budget)
        elif self.synthetic is not None:
            needed = list(self.synthetic.counts)
        else:
            raise GanaugConfigError("With a generator, say how many synthetic images to add: "
                                    "ratio=0.5 (half as many as the real ones) or "
                                    "balance='match_max'/'uniform'/{class: total}.")
        if self.synthetic is None:
            self.synthetic = SyntheticDataset(source, counts=needed, seed=self.seed,
                                              cache="memory")
        short = [(self.classes[c], self.synthetic.counts[c], n)
                 for c, n in enumerate(needed) if self.synthetic.counts[c] < n]
        if short:
            name, have, want = short[0]
            raise GanaugConfigError(
                f"The SyntheticDataset has {have} images of class '{name}' but {want} are "
                "needed; build it with counts= at least that large, or pass the generator.")
        self.synthetic_counts = needed
        self._synth_index = [self.synthetic.index_of(c, j)
                             for c, n in enumerate(needed) for j in range(n)]
        self._like = self.real[0][0] if len(self.real) else None

    def _init_replace(self, source, ratio, p, balance) -> None:
        if ratio is not None or balance is not None:
            raise GanaugConfigError("ratio= and balance= are for mode='append'; mode='replace' "
                                    "takes p= only.")
        if p is None:
            raise GanaugConfigError("mode='replace' needs p=, the replacement probability.")
        self.p = check_probability("p", p)
        self.synthetic_counts = [0] * len(self.classes)
        self._synth_index = []
        self.bank = None if self.synthetic is not None else SampleBank(source, seed=self.seed)
        if self.synthetic is not None:
            empty = [self.classes[c] for c, n in enumerate(self.real_counts)
                     if n and not self.synthetic.counts[c]]
            if empty:
                raise GanaugConfigError(f"The SyntheticDataset has no images of class(es) "
                                        f"{', '.join(empty)}, which the real data has.")
        self._owner: tuple | None = None
        self._last_replaced: dict[int, bool] = {}

    # -- access -----------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.real_targets) + len(self._synth_index)

    @property
    def targets(self) -> list[int]:
        synth = [self.synthetic.targets[i] for i in self._synth_index]
        return self.real_targets + synth

    def class_counts(self, part: str = "all") -> dict[str, int]:
        """Images per class name: ``"all"``, ``"real"`` or ``"synthetic"`` (append mode)."""
        if part not in ("all", "real", "synthetic"):
            raise GanaugConfigError(f"part must be 'all', 'real' or 'synthetic', got {part!r}.")
        counts = {"real": self.real_counts, "synthetic": self.synthetic_counts}.get(part)
        if counts is None:
            counts = [a + b for a, b in zip(self.real_counts, self.synthetic_counts)]
        return dict(zip(self.classes, counts))

    @property
    def synthetic_mask(self) -> torch.Tensor:
        """``(len,) bool``: True for appended synthetic items (all False in replace mode)."""
        mask = torch.zeros(len(self), dtype=torch.bool)
        mask[len(self.real_targets):] = True
        return mask

    def is_synthetic(self, index: int) -> bool:
        """Append: whether item ``index`` is synthetic. Replace: whether its last access in
        this process was replaced."""
        if self.mode == "replace":
            return self._last_replaced.get(index, False)
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} is out of range for {len(self)} items")
        return index % len(self) >= len(self.real_targets)

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        n_real = len(self.real_targets)
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} is out of range for {len(self)} items")
        if index < n_real:
            img, label = self.real[index][:2]
            if self.mode == "replace":
                img = self._maybe_replace(index, img, int(label))
        else:
            k = self._synth_index[index - n_real]
            label = self.synthetic.targets[k]
            img = self.synthetic.image(k)
            img = match_image(img, self._like) if self._like is not None else img
        if self.transform is not None:
            img = self.transform(img)
        if self.target_transform is not None:
            label = self.target_transform(label)
        return img, label

    def _maybe_replace(self, index: int, img: Any, label: int) -> Any:
        key = worker_key()
        if self._owner != key:
            worker_seed = key[2] if key[2] is not None else 0
            self._rng = torch.Generator().manual_seed(derive_seed(self.seed, worker_seed))
            self._owner = key
        replace = bool(torch.rand((), generator=self._rng) < self.p)
        self._last_replaced[index] = replace
        if not replace:
            return img
        if self.bank is not None:
            fake = self.bank.draw(label)
        else:
            j = int(torch.randint(0, self.synthetic.counts[label], (), generator=self._rng))
            fake = self.synthetic.image(self.synthetic.index_of(label, j))
        return match_image(fake, img)


def _generator_classes(source: Any) -> list[str]:
    if isinstance(source, (str, os.PathLike)):
        from ganaug import io

        doc = io.read_metadata(source)
        names = doc.get("class_names")
        if names:
            return list(names)
    return list(resolve_generator(source).classes)
