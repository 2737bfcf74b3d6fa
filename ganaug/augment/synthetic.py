"""A deterministic, index-addressable dataset of generated images.

Item ``j`` of class ``c`` is image ``j`` of class ``c`` of a ``ganaug export`` with the same seed,
whatever the access order, process or worker; a cache folder uses the export's layout
(:class:`ganaug.export.ImageFolderLayout`). Optionally a teacher classifier filters the
candidates (cGAN-KD, https://arxiv.org/abs/2104.03164; https://arxiv.org/abs/2304.08466).
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

from ganaug._checks import check_bool, check_cache, check_index, check_seed, check_truncation
from ganaug._devices import check_device
from ganaug._files import atomic_path, guard_folder
from ganaug._imaging import human_bytes, memory_shortfall
from ganaug._seeding import derive_seed
from ganaug.augment.classes import GENERATOR_ORDER, ClassMap, parse_classes
from ganaug.augment.functional import LabelRuns, per_class_counts
from ganaug.augment.source import FromSource, GeneratorSource
from ganaug.augment.teacher import Teacher, check_teacher
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
    ``c`` of an export with the same seed. Items are generated in chunks of
    :attr:`chunk_size` per class (one forward pass each) on first access, or all at once by
    :meth:`generate`. With a teacher the candidates of chunk ``k`` are seeded from ``(seed,
    c, k, round)``.

    Args:
        generator: a :class:`ganaug.Generator` or a model file path (loaded lazily per process).
        counts: images per class: one int for every class (of ``classes`` when given),
            ``{class name: count}``, or one count per generator class.
        classes: the label space of the items: a real dataset's classes (names in label
            order, or ``{name: label}``), so the items carry that dataset's labels and
            concatenate with it (e.g. timm's naturally sorted folders); default (or
            ``"generator"``) the generator's classes in its order.
        teacher: a :class:`ganaug.Teacher` over those classes that filters the candidates
            (``drop_hardest``: each round draws ``ceil(m / (1 - q))`` candidates for ``m``
            images and drops the hardest; ``min_confidence``). Labels stay the intended ones;
            the teacher's soft targets come from :class:`ganaug.Distiller` in the loop. Check
            it first on real images with ``teacher.check(images, labels)``.
        seed: base seed of every chunk.
        truncation: in (0, 1], see :meth:`ganaug.Generator.noise`.
        transform, target_transform: applied to the PIL image / int label (settable).
        cache: ``None`` (default) keeps generated chunks in memory, per process and
            DataLoader worker, up to :attr:`memory_mb`; beyond it the least recently used
            chunks are dropped (and regenerated when read again). ``"memory"`` keeps every
            chunk. A directory keeps PNGs in ``ganaug export``'s ImageFolder layout
            ``DIR/<class>/<j:06d>.png`` + ``manifest.csv`` + ``export.json``, reused by later
            runs (and exports) with the same model, seed and truncation.
        device: where to generate (default: the generator's device; the CPU inside
            DataLoader workers).

    Attributes: ``chunk_size`` (256, images per generator call and class; a class attribute),
    ``memory_mb`` (256, the in-memory budget of ``cache=None`` per process; settable) and
    ``max_tries`` (most candidates drawn to fill one chunk with a teacher, default 20 x the
    chunk; settable). ``classes``/``class_to_idx`` describe the labels; ``generator_classes``
    the generator's, in which :meth:`index_of` is.

    Raises:
        GanaugConfigError: bad counts, unknown class names, bad settings, a cache folder made
            with other settings.
        GanaugDataError: (when generating) a class whose filter acceptance is too low.
    """

    chunk_size = 256
    memory_mb = MEMORY_MB
    max_tries: int | None = None

    def __init__(self, generator: Generator | str | os.PathLike | GeneratorSource,
                 counts: int | Mapping | Sequence[int], *, classes: Any = None,
                 teacher: Teacher | None = None, seed: int = 0, truncation: float = 1.0,
                 transform: Callable | None = None, target_transform: Callable | None = None,
                 cache: str | os.PathLike | None = None,
                 device: str | torch.device | None = None) -> None:
        """Build the dataset; the arguments are described in :class:`SyntheticDataset`."""
        self.source = GeneratorSource(generator)
        self.generator_classes = list(self.source.classes)
        self.counts = per_class_counts(counts, self.generator_classes, what="counts")
        self._labels = self._label_space(parse_classes(classes), isinstance(counts, int))
        self.offsets = list(itertools.accumulate(self.counts, initial=0))
        if self.offsets[-1] > sys.maxsize:
            raise GanaugConfigError(f"{self.offsets[-1]:,} synthetic images are more than a "
                                    f"dataset can index ({sys.maxsize:,}); ask for fewer.")
        self.targets = LabelRuns(self.counts, self._labels)
        self.seed = check_seed("seed", seed)
        self.truncation = check_truncation(truncation)
        # one chunk (and its noise) is generated at once
        self.source.check_memory(min(self.chunk_size, max(self.counts, default=0)), "chunk_size",
                                 self.chunk_size)
        self.transform, self.target_transform = transform, target_transform
        self.teacher = check_teacher(teacher, len(self.classes), where="SyntheticDataset")
        self.device = check_device(device)
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

    def __repr__(self) -> str:
        teacher = "" if self.teacher is None else f", teacher={self.teacher!r}"
        return (f"SyntheticDataset({self.source!r}, {len(self):,} images, classes="
                f"{self.classes}{teacher}, seed={self.seed}, truncation={self.truncation}, "
                f"cache={str(self.cache) if self.cache is not None else None!r})")

    def _label_space(self, mapping: dict[str, int] | str | None, per_class: bool) -> list[int]:
        """Set ``classes``/``class_to_idx``; return the label of each generator class."""
        gen = self.generator_classes
        if mapping is None or mapping == GENERATOR_ORDER:
            self.classes, self.class_to_idx = gen, {name: k for k, name in enumerate(gen)}
            return list(range(len(gen)))
        # refuses names the generator lacks and labels that are not 0..n-1
        self.classes = ClassMap(gen, mapping, where="SyntheticDataset").ordered_names()
        if per_class:  # n images of each of the dataset's classes
            self.counts = [n if name in mapping else 0 for name, n in zip(gen, self.counts)]
        unlabelled = [name for name, n in zip(gen, self.counts) if n and name not in mapping]
        if unlabelled:
            raise GanaugConfigError(
                f"counts asks for class(es) {', '.join(unlabelled)}, which classes= does not "
                f"name ({', '.join(mapping)}): their images would have no label.")
        self.class_to_idx = dict(mapping)
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

    def target(self, index: int) -> int:
        """Item ``index``'s label (in the label space of ``classes``)."""
        return self.targets[index]

    def __getitem__(self, index: int) -> tuple[Any, int | torch.Tensor]:
        img = to_pil_image(self.image(index))
        label = self.target(index)
        if self.transform is not None:
            img = self.transform(img)
        if self.target_transform is not None:
            label = self.target_transform(label)
        return img, label

    def generate(self, *, progress: bool = False) -> SyntheticDataset:
        """Generate (or read from the cache folder) every chunk now; returns ``self``.

        With ``cache=None`` this switches the cache to ``"memory"`` so the work is kept.
        ``progress``: show progress (one line per interval in a log).
        """
        progress = check_bool("progress", progress)
        self.check_room()
        if self.cache is None:
            self.cache = "memory"
        chunks = [-(-n // self.chunk_size) for n in self.counts]
        bar = progress_bar(sum(chunks), desc="synthetic chunks", unit="chunk",
                           disable=not progress)
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
            _, dropped = self._chunks.popitem(last=False)
            self._held -= dropped.nbytes
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
        kept, tried, accepted, rnd = [], 0, 0, 0
        while accepted < m:
            if tried >= max_tries:
                self._refuse(cls, tried, accepted, m, max_tries)
            n = min(math.ceil(m / (1 - self.teacher.drop_hardest) - 1e-9), max_tries - tried)
            cand = gen.sample([cls] * n, seed=derive_seed(self.seed, cls, k, rnd),
                              truncation=self.truncation, batch_size=n, device=device).cpu()
            intended = torch.full((n,), self._labels[cls])
            ok = self.teacher.keep(self.teacher.logits(cand), intended).cpu()
            kept.append(cand[ok])
            tried, accepted, rnd = tried + n, accepted + int(ok.sum()), rnd + 1
            self._tried[cls] += n
            self._accepted[cls] += int(ok.sum())
        return torch.cat(kept)[:m]

    def _refuse(self, cls: int, tried: int, accepted: int, m: int, max_tries: int) -> None:
        raise GanaugDataError(
            f"Class '{self.generator_classes[cls]}': only {accepted} of {tried} generated samples "
            f"({accepted / max(tried, 1):.1%}) pass the teacher's filter (min_confidence="
            f"{self.teacher.min_confidence}, drop_hardest={self.teacher.drop_hardest}), so {m} "
            f"images cannot be found within max_tries={max_tries}. Lower the Teacher's "
            "min_confidence, set dataset.max_tries higher, or train the generator longer.")

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
            t = self.teacher
            settings = {"seed": self.seed, "truncation": self.truncation,
                        "chunk_size": self.chunk_size, "counts": self.counts,
                        "classes": self.generator_classes, "min_confidence": t.min_confidence,
                        "drop_hardest": t.drop_hardest, "expects": t.expects,
                        "model_sha256": model_fingerprint(self.generator),
                        "teacher_sha256": teacher_fingerprint(t.model)}
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
