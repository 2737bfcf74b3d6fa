"""A deterministic, index-addressable dataset of generated images.

Item ``j`` of class ``c`` is image ``j`` of class ``c`` of a ``ganaug export`` with the same seed,
whatever the access order, process or worker; a cache folder uses the export's layout
(:class:`ganaug.export.ImageFolderLayout`). Optionally only samples a classifier recognises
confidently are kept, as in https://arxiv.org/abs/2304.08466.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import os
import sys
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import PIL.Image
import torch
from torch.utils.data import Dataset
from torchvision.transforms.v2.functional import pil_to_tensor, to_pil_image

from ganaug._checks import (
    check_bool,
    check_cache,
    check_float,
    check_index,
    check_int,
    check_probability,
    check_seed,
    check_truncation,
)
from ganaug._devices import check_device
from ganaug._files import atomic_path, guard_folder
from ganaug._imaging import human_bytes, memory_shortfall
from ganaug._seeding import derive_seed
from ganaug.augment.classes import class_lookup, to_class_to_idx
from ganaug.augment.functional import LabelRuns, per_class_counts
from ganaug.augment.source import FromSource, GeneratorSource
from ganaug.augment.teacher import Teacher, make_teacher
from ganaug.errors import GanaugConfigError, GanaugDataError
from ganaug.export import ImageFolderLayout, export_spec, generate_items, model_fingerprint
from ganaug.generator import Generator
from ganaug.progress import progress_bar

__all__ = ["SyntheticDataset"]

CACHE_META = "ganaug-synthetic.json"
_MEMORY_FIX = ("Use cache=None (at most memory_mb MiB kept, chunks regenerated when dropped), "
               "a cache folder (cache=DIR) to keep them on disk, or at most {fits} images.")
#: Default bytes of generated chunks kept per process (and per DataLoader worker) with
#: ``cache=None``: 256 MiB holds ~87,000 32x32 RGB images or ~1,700 224x224 RGB ones.
MEMORY_MB = 256


class SyntheticDataset(FromSource, Dataset):
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
        cache: ``None`` (default) keeps every generated chunk in memory, per process and
            DataLoader worker, up to ``memory_mb`` (with a teacher's soft targets), so a
            shuffled epoch generates each image once when the dataset fits; beyond it the least recently used chunks are dropped,
            and a shuffled read then often regenerates a whole chunk (``chunk_size`` images)
            for one image: use a cache directory, or :meth:`generate` before the DataLoader
            starts (workers share the parent's chunks copy-on-write). ``"memory"`` keeps every
            chunk whatever its size. A directory keeps PNGs in ``ganaug export``'s ImageFolder
            layout ``DIR/<class>/<j:06d>.png`` + ``manifest.csv`` + ``export.json``, reused by
            later runs (and exports) with the same model, seed and truncation.
        chunk_size: images generated per call and class.
        truncation: in (0, 1], see :meth:`ganaug.Generator.noise`.
        progress: show progress in :meth:`generate` (one line per interval in a log).
        teacher: a classifier over the labels' K classes (class ``k`` = label ``k``: the
            generator's class ``k``, or the dataset's label ``k`` with ``class_to_idx``) that
            filters and relabels the candidates (:class:`ganaug.augment.Teacher`): items then
            carry ``(K,)`` float32 soft targets ``(1 - teacher_weight) * onehot + teacher_weight
            * softmax(logits / temperature)``; ``targets`` keeps the intended int labels. The
            teacher sees ``(N, C, H, W)`` images at the generator's size in ``teacher_input``
            (``"uint8"``, ``"unit"`` or ``"normalized"`` with ``teacher_mean``/``teacher_std``).
        temperature, teacher_weight, teacher_input, teacher_mean, teacher_std: see above
            (defaults 1, 1: relabel by the teacher, as cGAN-KD does).
        min_confidence: keep only candidates whose teacher probability of their intended class
            is ``>= min_confidence`` (None: no such filter; 0.9 with ``filter=``).
        drop_top: q in [0, 1): each round draws ``ceil(m / (1 - q))`` candidates for ``m``
            images and drops the ``floor(q * n + 0.5)`` of highest teacher loss (cGAN-KD: 0.1).
        filter: the older form of ``teacher=``: a classifier ``(N, C, H, W) float in [0, 1]
            -> (N, K) logits``, used only to filter (items keep int labels); it is
            ``teacher=filter, teacher_input="unit", teacher_weight=0`` without soft targets.
        max_tries: most candidates drawn to fill one chunk (default 20 x the chunk length).
        device: where to generate (default: the generator's device; the CPU inside
            DataLoader workers).
        memory_mb: the in-memory budget of ``cache=None`` (and of a cache directory's
            decoded chunks), in MiB per process.
        class_to_idx, classes: a real dataset's ``{name: label}`` (or names by label): items
            then carry that dataset's labels (to concatenate with it, e.g. timm's naturally
            sorted folders), ``n_per_class`` covers only its classes, and ``filter``'s logit
            columns are its labels. ``classes``/``class_to_idx`` describe the labels;
            ``generator_classes`` the generator's, in which ``counts`` and :meth:`index_of` are.

    Raises:
        GanaugConfigError: bad counts, unknown class names, bad settings, a cache folder made
            with other settings.
        GanaugDataError: (when generating) a class whose filter acceptance is too low.
        GanaugConfigError: (when generating) a teacher whose logits are not ``(N, K)``.
    """

    def __init__(self, generator: Generator | str | os.PathLike | GeneratorSource,
                 n_per_class: int | None = None, counts: Mapping | Sequence[int] | None = None,
                 *, seed: int = 0, transform: Callable | None = None,
                 target_transform: Callable | None = None,
                 cache: str | os.PathLike | None = None, chunk_size: int = 256,
                 truncation: float = 1.0, progress: bool = False, filter: Callable | None = None,
                 min_confidence: float | None = None, max_tries: int | None = None,
                 device: str | torch.device | None = None,
                 memory_mb: float = MEMORY_MB,
                 class_to_idx: Mapping[str, int] | None = None,
                 classes: Sequence[str] | None = None, teacher: Any = None,
                 temperature: float = 1.0, teacher_weight: float = 1.0,
                 teacher_input: str | None = None, teacher_mean=None, teacher_std=None,
                 drop_top: float = 0.0) -> None:
        self.source = GeneratorSource(generator)
        self.generator_classes = list(self.source.classes)
        if (n_per_class is None) == (counts is None):
            raise GanaugConfigError("Pass exactly one of n_per_class= (images per class) or "
                                    "counts= ({class: count} or one count per class).")
        self.counts = per_class_counts(n_per_class if counts is None else counts,
                                       self.generator_classes,
                                       what="n_per_class" if counts is None else "counts")
        self._labels = self._label_space(to_class_to_idx(class_to_idx=class_to_idx,
                                                            classes=classes), n_per_class)
        self.offsets = list(itertools.accumulate(self.counts, initial=0))
        if self.offsets[-1] > sys.maxsize:
            raise GanaugConfigError(f"{self.offsets[-1]:,} synthetic images are more than a "
                                    f"dataset can index ({sys.maxsize:,}); ask for fewer.")
        self.targets = LabelRuns(self.counts, self._labels)
        self.seed = check_seed("seed", seed)
        self.truncation = check_truncation(truncation)
        self.chunk_size = check_int("chunk_size", chunk_size)
        # one chunk (and its noise) is generated at once
        self.source.check_memory(min(self.chunk_size, max(self.counts, default=0)), "chunk_size",
                                 self.chunk_size)
        self.transform, self.target_transform = transform, target_transform
        self.progress, self.filter = check_bool("progress", progress), filter
        if filter is not None and teacher is not None:
            raise GanaugConfigError("Pass teacher= or its older alias filter=, not both.")
        if isinstance(filter, Teacher):  # its own settings would override filter='s
            raise GanaugConfigError("filter= takes a classifier, not a ready Teacher; pass "
                                    "teacher=Teacher(...) (its own settings apply).")
        if filter is not None and (any(v is not None for v in (
                teacher_input, teacher_mean, teacher_std)) or (temperature, teacher_weight) != (1, 1)):
            raise GanaugConfigError("filter= takes [0, 1] floats and keeps int labels; for "
                                    "teacher_input=, temperature=, teacher_weight= use teacher=.")
        if min_confidence is not None:
            min_confidence = check_probability("min_confidence", min_confidence)
        elif filter is not None:
            min_confidence = 0.9  # filter='s default since it exists
        self.min_confidence = min_confidence
        # filter=f is teacher=f taking [0, 1] floats, keeping int labels (weight 0).
        self.soft = teacher is not None
        self.teacher = make_teacher(
            teacher if self.soft else filter, num_classes=len(self.classes),
            temperature=temperature, weight=0.0 if filter is not None else teacher_weight,
            input="unit" if filter is not None else teacher_input, mean=teacher_mean,
            std=teacher_std,
            min_confidence=min_confidence, drop_top=drop_top)
        if self.teacher is not None:  # a ready Teacher's own threshold filters the images
            self.min_confidence = self.teacher.min_confidence
        self._soft: dict[tuple[int, int], torch.Tensor] = {}
        self.max_tries = None if max_tries is None else check_int("max_tries", max_tries)
        self.device = check_device(device)
        self.memory_mb = check_float("memory_mb", memory_mb, minimum=0.0)
        self.cache_dir: Path | None = None
        self.layout: ImageFolderLayout | None = None
        cache = check_cache(cache)
        if cache not in (None, "memory"):
            self.cache_dir = Path(cache)
            self.layout = self._claim_cache_dir()
        self.cache = cache
        if cache == "memory":  # every chunk read is kept: refuse up front what cannot be
            self.check_room("cache='memory' would keep", _MEMORY_FIX)
        self._chunks: OrderedDict[tuple[int, int], torch.Tensor] = OrderedDict()
        self._held = 0  # bytes in self._chunks
        self._tried = [0] * len(self.generator_classes)
        self._accepted = [0] * len(self.generator_classes)

    def _label_space(self, mapping: dict[str, int] | None, n_per_class) -> list[int]:
        """Set ``classes``/``class_to_idx``; return the label of each generator class."""
        gen = self.generator_classes
        if mapping is None:
            self.classes, self.class_to_idx = gen, {name: k for k, name in enumerate(gen)}
            return list(range(len(gen)))
        class_lookup(gen, mapping, what="class_to_idx")  # refuses names the generator lacks
        if sorted(mapping.values()) != list(range(len(mapping))):
            raise GanaugConfigError(f"class_to_idx must use the labels 0..{len(mapping) - 1}, "
                                    f"got {mapping}.")
        if n_per_class is not None:  # n images of each of the dataset's classes
            self.counts = [n if name in mapping else 0 for name, n in zip(gen, self.counts)]
        unlabelled = [name for name, n in zip(gen, self.counts) if n and name not in mapping]
        if unlabelled:
            raise GanaugConfigError(
                f"counts asks for class(es) {', '.join(unlabelled)}, which class_to_idx does not "
                f"name ({', '.join(mapping)}): their images would have no label.")
        self.class_to_idx = dict(mapping)
        self.classes = sorted(mapping, key=mapping.__getitem__)
        return [mapping.get(name, -1) for name in gen]

    # -- indexing ---------------------------------------------------------------------------
    def __len__(self) -> int:
        return self.offsets[-1]

    def locate(self, index: int) -> tuple[int, int]:
        """``index -> (class, index within the class)``."""
        index = check_index(index, len(self), what="synthetic images")
        cls = int(np.searchsorted(self.offsets, index, side="right")) - 1
        return cls, index - self.offsets[cls]

    def index_of(self, cls: int, j: int) -> int:
        """The dataset index of image ``j`` of class ``cls``."""
        if isinstance(cls, bool) or not isinstance(cls, int) or not 0 <= cls < len(self.counts):
            raise IndexError(f"class {cls!r} is not one of 0..{len(self.counts) - 1} (the "
                             "generator's class indices)")
        if not 0 <= j < self.counts[cls]:
            raise IndexError(f"class {cls} has {self.counts[cls]} images, asked for {j}")
        return self.offsets[cls] + j

    def image(self, index: int) -> torch.Tensor:
        """Item ``index`` as ``(C, H, W) uint8`` (no transform)."""
        cls, j = self.locate(index)
        return self._chunk(cls, j // self.chunk_size)[j % self.chunk_size]

    def target(self, index: int) -> int | torch.Tensor:
        """Item ``index``'s label: an int, or with ``teacher=`` its ``(K,)`` float32 soft target."""
        if not self.soft:
            return self.targets[index]
        cls, j = self.locate(index)
        key = (cls, j // self.chunk_size)
        images = self._chunk(*key)
        if key not in self._soft:  # read from a cache folder: the teacher relabels it here
            labels = torch.full((len(images),), self._labels[cls], dtype=torch.int64)
            self._keep_soft(key, self.teacher.targets(self.teacher.logits(images), labels).cpu())
        return self._soft[key][j % self.chunk_size].clone()

    def _keep_soft(self, key: tuple[int, int], soft: torch.Tensor) -> None:
        """Keep a chunk's soft targets with its images (counted in, and dropped with, them)."""
        old = self._soft.get(key)
        self._held += soft.nbytes - (0 if old is None else old.nbytes)
        self._soft[key] = soft

    def __getitem__(self, index: int) -> tuple[Any, int | torch.Tensor]:
        img = to_pil_image(self.image(index))
        label = self.target(index)
        if self.transform is not None:
            img = self.transform(img)
        if self.target_transform is not None:
            label = self.target_transform(label)
        return img, label

    def generate(self) -> SyntheticDataset:
        """Generate (or read from the cache folder) every chunk now; returns ``self``.

        With ``cache=None`` this switches the cache to ``"memory"`` so the work is kept.
        """
        self.check_room()
        if self.cache is None:
            self.cache = "memory"
        chunks = [-(-n // self.chunk_size) for n in self.counts]
        bar = progress_bar(sum(chunks), desc="synthetic chunks", unit="chunk",
                           disable=not self.progress)
        for cls, k in ((c, k) for c, n in enumerate(chunks) for k in range(n)):
            self._chunk(cls, k)
            bar.update(1)
        bar.close()
        if self.layout is not None:
            manifest = self.cache_dir / ImageFolderLayout.MANIFEST
            if not manifest.is_file() or self.teacher is not None:  # keep an export's own
                self.layout.write_manifest(
                    ((c, j) for c, n in enumerate(self.counts) for j in range(n)), self.seed)
        return self

    def check_room(self, keeps: str = "generate() would keep", fix: str = (
            "Pass a cache folder (cache=DIR) to keep them on disk, ask for at most {fits} "
            "images, or let a DataLoader read items lazily without generate().")) -> None:
        """Refuse, before generating, what keeping every image needs: more images than fit
        in memory (no cache folder; ``fix`` may use ``{fits}``) or on the folder's disk."""
        if self.layout is not None:
            self.layout.check_space(len(self))
            return
        c, size, _ = self.source.shape  # from the file header: the model need not load
        short = memory_shortfall(len(self), c * size * size)
        if short is not None:
            need, have, fits = short
            raise GanaugConfigError(
                f"{keeps} {len(self):,} images of {c}x{size}x{size} ({human_bytes(need)}) in "
                f"memory, but {human_bytes(have)} is available. {fix.format(fits=f'{fits:,}')}")

    # -- acceptance -------------------------------------------------------------------------
    @property
    def acceptance(self) -> dict[str, float]:
        """Filter acceptance rate per class name (classes drawn so far in this process)."""
        return {self.generator_classes[c]: self._accepted[c] / self._tried[c]
                for c in range(len(self.generator_classes)) if self._tried[c]}

    # -- chunks -----------------------------------------------------------------------------
    def _chunk_len(self, cls: int, k: int) -> int:
        return min(self.chunk_size, self.counts[cls] - k * self.chunk_size)

    def _chunk(self, cls: int, k: int) -> torch.Tensor:
        key = (cls, k)
        if key in self._chunks:
            self._chunks.move_to_end(key)
            return self._chunks[key]
        images = self._read_chunk(cls, k) if self.layout is not None else None
        if images is None:
            images = self._make_chunk(cls, k)
            if self.layout is not None:
                self._write_chunk(cls, k, images)
        self._chunks[key] = images
        self._held += images.nbytes
        budget = self.memory_mb * 2**20
        while self.cache != "memory" and self._held > budget and len(self._chunks) > 1:
            old, dropped = self._chunks.popitem(last=False)
            soft = self._soft.pop(old, None)  # regenerated (or relabelled) with its images
            self._held -= dropped.nbytes + (0 if soft is None else soft.nbytes)
        return images

    def _device(self) -> torch.device | None:
        if torch.utils.data.get_worker_info() is not None:
            return torch.device("cpu")  # CUDA cannot run in forked workers
        return self.device

    def _make_chunk(self, cls: int, k: int) -> torch.Tensor:
        m = self._chunk_len(cls, k)
        gen, device = self.generator, self._device()
        if self.teacher is None:
            first = k * self.chunk_size
            return generate_items(gen, [cls] * m, list(range(first, first + m)), seed=self.seed,
                                  truncation=self.truncation, batch_size=m, device=device).cpu()
        max_tries = self.max_tries or 20 * m
        kept, soft, tried, accepted, rnd = [], [], 0, 0, 0
        while accepted < m:
            if tried >= max_tries:
                self._refuse(cls, tried, accepted, m, max_tries)
            n = min(math.ceil(m / (1 - self.teacher.drop_top) - 1e-9), max_tries - tried)
            cand = gen.sample([cls] * n, seed=derive_seed(self.seed, cls, k, rnd),
                              truncation=self.truncation, batch_size=n, device=device).cpu()
            targets, ok = self.teacher(cand, torch.full((n,), self._labels[cls]))
            ok = ok.cpu()
            kept.append(cand[ok])
            soft.append(targets.cpu()[ok])
            tried, accepted, rnd = tried + n, accepted + int(ok.sum()), rnd + 1
            self._tried[cls] += n
            self._accepted[cls] += int(ok.sum())
        if self.soft:
            self._keep_soft((cls, k), torch.cat(soft)[:m])
        return torch.cat(kept)[:m]

    def _refuse(self, cls: int, tried: int, accepted: int, m: int, max_tries: int) -> None:
        raise GanaugDataError(
            f"Class '{self.generator_classes[cls]}': only {accepted} of {tried} generated samples "
            f"({accepted / max(tried, 1):.1%}) reach min_confidence={self.min_confidence} under "
            f"the filter (drop_top={self.teacher.drop_top}), so {m} images cannot be found "
            f"within max_tries={max_tries}. Lower min_confidence or drop_top, raise max_tries, "
            "or train the generator longer.")

    # -- cache folder -----------------------------------------------------------------------
    # Unfiltered items are ganaug export images (same noise, layout and export.json), so a
    # folder written by `ganaug export` with the same model, seed and truncation is reused
    # and vice versa. Filtered items are not, so they get their own settings file.
    def _claim_cache_dir(self) -> ImageFolderLayout:
        """The cache folder's layout, after refusing a folder made with other settings."""
        n_per_class = max(self.counts, default=1)
        fix = "Use a new cache folder, or delete this one."
        if self.teacher is None:
            spec = export_spec(self.generator, n_per_class=n_per_class, seed=self.seed,
                               fmt="png", labels=range(len(self.generator_classes)),
                               truncation=self.truncation)
            old = ImageFolderLayout(self.cache_dir, self.generator_classes, n_per_class=n_per_class).guard(
                spec, ("model_sha256", "seed", "fmt", "truncation"), fix=fix)
            if old is not None:  # the export (or cache) that made the folder set the padding
                n_per_class = int(old.get("n_per_class", 1))
        else:
            settings = {"seed": self.seed, "truncation": self.truncation,
                        "chunk_size": self.chunk_size, "counts": self.counts,
                        "classes": self.generator_classes, "min_confidence": self.min_confidence,
                        "model_sha256": model_fingerprint(self.generator)}
            t = self.teacher
            if not self.soft and isinstance(t.model, torch.nn.Module):  # a filter= classifier
                settings.update(teacher_sha256=teacher_fingerprint(t.model))
            if self.soft:  # the teacher's settings and weights choose and label the images
                settings.update(drop_top=t.drop_top, teacher_input=t.input,
                                teacher_sha256=teacher_fingerprint(t.model))
                if t.mean is not None:  # the normalisation changes what the teacher keeps
                    settings.update(teacher_mean=t.mean.tolist(), teacher_std=t.std.tolist())
            guard_folder(self.cache_dir, settings, name=CACHE_META,
                         what="filtered synthetic images", fix=fix)
        return ImageFolderLayout(self.cache_dir, self.generator_classes, n_per_class=n_per_class)

    def _read_chunk(self, cls: int, k: int) -> torch.Tensor | None:
        start = k * self.chunk_size
        files = [self.layout.path(cls, start + i) for i in range(self._chunk_len(cls, k))]
        if not all(f.is_file() for f in files):
            return None
        mode = "L" if self.generator.channels == 1 else "RGB"
        images = []
        for f in files:
            with PIL.Image.open(f) as img:
                images.append(pil_to_tensor(img.convert(mode)))
        return torch.stack(images)

    def _write_chunk(self, cls: int, k: int, images: torch.Tensor) -> None:
        for i, img in enumerate(images):
            with atomic_path(self.layout.path(cls, k * self.chunk_size + i)) as tmp:
                to_pil_image(img).save(tmp, format="PNG")


def teacher_fingerprint(model: Any) -> str:
    """SHA-256 of a teacher's ``state_dict`` (names, shapes, dtypes and values)."""
    if not isinstance(model, torch.nn.Module):
        raise GanaugConfigError("A cache folder with teacher= needs an nn.Module teacher (its "
                                "weights identify the images); use cache=None or 'memory'.")
    digest = hashlib.sha256()
    for name, value in sorted(model.state_dict().items()):
        value = value.detach().cpu().contiguous()
        digest.update(f"{name}:{tuple(value.shape)}:{value.dtype};".encode())
        digest.update(value.reshape(-1).view(torch.uint8).numpy().tobytes() if value.numel() else b"")
    return digest.hexdigest()
