"""Real data plus synthetic data, appended: dataset expansion and long-tail rebalancing.

:class:`MixedDataset` appends synthetic samples to a real dataset: an exact ratio, or the
rarest classes topped up with :func:`balance_counts` (DA-Fusion and the long-tail studies,
https://arxiv.org/abs/2302.07944). To swap real samples for synthetic ones per access instead,
use :class:`ganaug.GANAugment` inside :func:`ganaug.with_labels`, or :class:`ganaug.BatchMixer`
per batch.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import PIL.Image
import torch
from torch.utils.data import Dataset
from torchvision.transforms.v2.functional import pil_to_tensor

from ganaug._checks import check_bool, check_float, check_index, check_seed, label_transform_owner
from ganaug._classnames import dataset_class_to_idx
from ganaug._imaging import fit_images, memory_shortfall
from ganaug.augment.classes import GENERATOR_ORDER, ClassMap, parse_classes
from ganaug.augment.counts import (  # re-exported: their home was this module
    balance_counts,
    dataset_labels,
    proportional_counts,
)
from ganaug.augment.functional import LabelRuns, check_unnormalised, match_image
from ganaug.augment.source import GeneratorSource
from ganaug.augment.synthetic import SyntheticDataset
from ganaug.augment.teacher import CHECK_ROWS, Teacher, check_teacher
from ganaug.errors import GanaugConfigError, GanaugDataError

__all__ = ["MixedDataset", "balance_counts", "dataset_labels", "proportional_counts"]


def match_real(fake: torch.Tensor, real: Any) -> Any:
    """:func:`match_image` of a synthetic image to the real one, which must not be normalised."""
    check_unnormalised(real, "MixedDataset",
                       "Give the real dataset no Normalize (or any rescaling) and put the "
                       "pipeline in MixedDataset(..., transform=v2.Compose([..., "
                       "v2.Normalize(mean, std)])), which runs on real and synthetic items.")
    return match_image(fake, real)


def match_label(label: int, real: Any) -> Any:
    """An appended item's ``label`` in the type of a real label ``real``, so a batch mixing
    both collates: a tensor of its dtype and shape, a NumPy integer or array of its dtype,
    else the int itself."""
    if isinstance(real, torch.Tensor):
        return torch.full(real.shape, label, dtype=real.dtype)
    if isinstance(real, (np.generic, np.ndarray)):
        return np.full(np.shape(real), label, dtype=real.dtype)[()]
    return label


def as_uint8_chw(img: Any, channels: int, size: int) -> torch.Tensor:
    """A real image (PIL, ``(H, W[, C])`` NumPy, ``(C, H, W)`` tensor) as ``(C, H, W)`` uint8
    at the generator's channels and size: what a teacher sees of the generated images."""
    if isinstance(img, PIL.Image.Image):
        x = pil_to_tensor(img.convert("L" if channels == 1 else "RGB"))
    elif isinstance(img, np.ndarray):
        x = torch.from_numpy(np.ascontiguousarray(img))
        x = x[None] if x.ndim == 2 else x.permute(2, 0, 1)
    else:
        x = torch.as_tensor(img)
        x = x[None] if x.ndim == 2 else x
    if x.is_floating_point():
        x = (x.clamp(0, 1) * 255).round().to(torch.uint8)
    return fit_images(x[None].to(torch.uint8), channels, size)[0]


# -- MixedDataset ----------------------------------------------------------------------------
class MixedDataset(Dataset):
    """Real data plus appended synthetic data: expansion, or long-tail rebalancing.

    Items ``0..len(real)-1`` are the real ones, then the synthetic ones. The synthetic part is
    ``round(ratio * len(real))`` images split like the real classes (``ratio=``), or tops the
    classes up (``balance=``, see :func:`balance_counts`: ``"match_max"``, ``"uniform"``
    optionally with a ``ratio`` budget, or ``{class: total}``), or is the whole given
    :class:`SyntheticDataset` (neither). A setting that would append no image is refused.

    Class identity: a real label ``l`` means the class *named* ``l`` in the real dataset: its
    ``class_to_idx``, timm's ``reader.class_to_idx`` or ``classes`` (through ``Subset``-like
    wrappers), or ``classes=``. Its synthetic images come from the generator's class of the same
    name, and synthetic items carry the real dataset's labels. A dataset that declares no names
    needs ``classes=`` (``"generator"`` if its labels are the generator's class indices).

    Synthetic images are converted to the type, mode and size of the first real image, and
    their labels to the type of the first real label (so batches collate); give ``real`` no
    tensor transform and put the pipeline in ``transform`` (applied to real and synthetic).

    Args:
        generator: a :class:`ganaug.Generator` or a model file path (a SyntheticDataset is
            made with ``seed``), or a :class:`SyntheticDataset` (its truncation, cache, ...).
        real: a non-empty map-style dataset of ``(image, int label)``; ``.targets`` is used
            when present, otherwise the labels are read once.
        ratio: synthetic size relative to ``len(real)``.
        balance: ``"match_max"``, ``"uniform"`` or ``{class: total}`` (see above).
        classes: the real dataset's classes (names in label order, ``{name: label}``, or
            ``"generator"``), when it does not declare them itself or declares them wrongly.
        teacher: a :class:`ganaug.Teacher` over the real classes that filters the generated
            candidates; it is first checked on up to ``CHECK_ROWS`` real items (a teacher no
            better than chance on their labels is refused).
        seed: seeds the synthetic images.
        transform, target_transform: applied to every image / label (settable).
        return_mask: items are ``(image, label, is_synthetic)``, so a DataLoader batch carries
            the ``(B,)`` bool mask :func:`ganaug.weighted_loss` and :class:`ganaug.Distiller`
            take.

    Raises:
        GanaugConfigError: bad settings, or settings that append nothing.
        GanaugDataError: an empty real dataset, class names the generator lacks, labels
            without a class.
    """

    def __init__(self, generator: Any, real: Dataset, *, ratio: float | None = None,
                 balance: str | Mapping | None = None, classes: Any = None,
                 teacher: Teacher | None = None, seed: int = 0,
                 transform: Callable | None = None, target_transform: Callable | None = None,
                 return_mask: bool = False) -> None:
        """Build the dataset; the arguments are described in :class:`MixedDataset`."""
        self.real, self.seed = real, check_seed("seed", seed)
        self.return_mask = check_bool("return_mask", return_mask)
        self.transform, self.target_transform = transform, target_transform
        given = generator if isinstance(generator, SyntheticDataset) else None
        source = None if given is not None else GeneratorSource(generator)
        gen_classes = list(given.generator_classes if given is not None else source.classes)
        if len(real) == 0:
            raise GanaugDataError("The real dataset is empty (0 items): there is nothing to mix "
                                  "with or to take the class mix from. Check its root and split.")
        owner = label_transform_owner(real)
        if owner is not None:
            raise GanaugDataError(
                f"The real dataset passes its labels through the target_transform of {owner}: "
                "its class_to_idx and targets describe the labels before it, so the class mix "
                "and the class of each label would be wrong. Move it to MixedDataset("
                "target_transform=...), which applies it to real and synthetic items alike.")
        self.real_targets = dataset_labels(real)
        self._lut = self._class_lookup(gen_classes, classes)
        self.real_counts = np.bincount(np.asarray(self.real_targets, dtype=np.int64),
                                       minlength=len(self.classes)).tolist()
        self.synthetic = given
        if given is not None and teacher is not None:
            raise GanaugConfigError("teacher= goes to the SyntheticDataset when one is given: "
                                    "SyntheticDataset(..., teacher=teacher).")
        self.teacher = check_teacher(teacher, len(self.classes), where="MixedDataset")
        if self.teacher is not None:
            self._check_teacher(source)
        self._append(source, ratio, balance)

    def __repr__(self) -> str:
        return (f"MixedDataset({len(self.real_targets):,} real + {len(self._synth_labels):,} "
                f"synthetic, classes={self.classes}, teacher={self.teacher!r}, "
                f"seed={self.seed})")

    def _class_lookup(self, gen_classes: list[str], classes: Any) -> list[int] | None:
        """Set ``classes``/``class_to_idx`` (the real label space); the label -> generator map."""
        mapping, what = parse_classes(classes), "classes="
        if mapping is None:
            mapping, what = dataset_class_to_idx(self.real), "the real dataset"
        if mapping is None:
            raise GanaugConfigError(
                f"The real dataset ({type(self.real).__name__}) declares no class names, so "
                "which generator class each label means is unknown. Pass classes= (its names "
                "in label order), or classes='generator' if its labels are the generator's own "
                f"class indices ({', '.join(gen_classes[:10])}).")
        if mapping == GENERATOR_ORDER:
            self.classes = gen_classes
            self.class_to_idx = {name: k for k, name in enumerate(gen_classes)}
            top, low = max(self.real_targets, default=-1), min(self.real_targets, default=0)
            if top >= len(gen_classes) or low < 0:
                raise GanaugDataError(
                    f"Real labels span {low}..{top} but the generator has {len(gen_classes)} "
                    f"classes (labels 0..{len(gen_classes) - 1}); classes='generator' does not "
                    "fit. Pass the real dataset's class names as classes=.")
            return None
        class_map = ClassMap(gen_classes, mapping, where="MixedDataset", what=what)
        self.classes = class_map.ordered_names()
        self.class_to_idx = dict(mapping)
        class_map.to_generator(torch.as_tensor(self.real_targets, dtype=torch.int64))
        return class_map.table

    def _check_teacher(self, source: GeneratorSource) -> None:
        """Measure the teacher on up to ``CHECK_ROWS`` real items, evenly spread."""
        n = len(self.real_targets)
        picks = np.linspace(0, n - 1, min(n, CHECK_ROWS)).round().astype(int)
        c, size, _ = source.shape
        images = torch.stack([as_uint8_chw(self.real[int(i)][0], c, size) for i in picks])
        labels = torch.as_tensor([self.real_targets[int(i)] for i in picks])
        self.teacher.check(images, labels)

    def _gen(self, label: int) -> int:
        """The generator's class of real label ``label``."""
        return label if self._lut is None else self._lut[label]

    def _append(self, source: GeneratorSource | None, ratio, balance) -> None:
        """Decide how many synthetic images of each class to append, and index them."""
        budget = None
        if ratio is not None:
            ratio = check_float("ratio", ratio, minimum=0.0)
            budget = math.floor(ratio * len(self.real_targets) + 0.5)
        if balance is not None:
            needed = balance_counts(self.real_counts, balance, budget=budget, classes=self.classes)
        elif budget is not None:
            needed = proportional_counts(self.real_counts, budget)
        elif self.synthetic is not None:
            needed = self._given_counts()
        else:
            raise GanaugConfigError("With a generator, say how many synthetic images to add: "
                                    "ratio=0.5 (half as many as the real ones) or "
                                    "balance='match_max'/'uniform'/{class: total}.")
        if sum(needed) == 0:
            raise GanaugConfigError(self._nothing_added(ratio, balance))
        if self.synthetic is None:
            counts = [0] * len(source.classes)
            for label, n in enumerate(needed):
                counts[self._gen(label)] = n
            self.synthetic = SyntheticDataset(source, counts, classes=self.class_to_idx,
                                              teacher=self.teacher, seed=self.seed)
            # keep every image read when all fit in memory; else at most memory_mb of chunks
            c, size, _ = source.shape
            fits = memory_shortfall(len(self.synthetic), c * size * size) is None
            self.synthetic.cache = "memory" if fits else None
        short = [(self.classes[c], self.synthetic.counts[self._gen(c)], n)
                 for c, n in enumerate(needed) if self.synthetic.counts[self._gen(c)] < n]
        if short:
            name, have, want = short[0]
            raise GanaugConfigError(
                f"The SyntheticDataset has {have} images of class '{name}' but {want} are "
                "needed; build it with counts= at least that large, or pass the generator.")
        self.synthetic_counts = needed
        # lazy, like SyntheticDataset: a list of indices held ratio=1e9 forever (or never)
        self._synth_labels = LabelRuns(needed, range(len(needed)))
        self._synth_starts = list(itertools.accumulate(needed, initial=0))
        self._like, self._like_label = self.real[0][:2]

    def _given_counts(self) -> list[int]:
        """The counts of a given SyntheticDataset per real label (its other classes refused)."""
        needed = [self.synthetic.counts[self._gen(c)] for c in range(len(self.classes))]
        unused = sorted(set(range(len(self.synthetic.counts)))
                        - {self._gen(c) for c in range(len(self.classes))})
        extra = [self.synthetic.generator_classes[g] for g in unused if self.synthetic.counts[g]]
        if extra:
            raise GanaugDataError(
                f"The SyntheticDataset has images of class(es) {', '.join(extra)}, which the "
                f"real dataset does not have (its classes: {', '.join(self.classes)}); they "
                "would have no label. Build it with counts= for the real classes only.")
        return needed

    def _nothing_added(self, ratio, balance) -> str:
        counts = ", ".join(str(n) for n in self.real_counts[:10])
        if len(self.real_counts) > 10:
            counts += ", ..."
        if balance is not None and ratio is None:
            return (f"balance={balance!r} adds no synthetic image: the real classes already "
                    f"reach its targets (counts {counts}). To add images to balanced data, give "
                    f"a budget: ratio=0.5 with balance={balance!r}, or ratio= alone.")
        return (f"ratio={ratio!r} adds no synthetic image to {len(self.real_targets)} real ones "
                "(round(ratio * len(real)) is 0); use a larger ratio.")

    # -- access -----------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.real_targets) + len(self._synth_labels)

    @property
    def targets(self) -> list[int]:
        return self.real_targets + list(self._synth_labels)

    def class_counts(self, part: str = "all") -> dict[str, int]:
        """Images per class name: ``"all"``, ``"real"`` or ``"synthetic"``."""
        if part not in ("all", "real", "synthetic"):
            raise GanaugConfigError(f"part must be 'all', 'real' or 'synthetic', got {part!r}.")
        counts = {"real": self.real_counts, "synthetic": self.synthetic_counts}.get(part)
        if counts is None:
            counts = [a + b for a, b in zip(self.real_counts, self.synthetic_counts)]
        return dict(zip(self.classes, counts))

    @property
    def synthetic_mask(self) -> torch.Tensor:
        """``(len,) bool``: True for appended synthetic items."""
        mask = torch.zeros(len(self), dtype=torch.bool)
        mask[len(self.real_targets):] = True
        return mask

    def is_synthetic(self, index: int) -> bool:
        """Whether item ``index`` is synthetic."""
        return check_index(index, len(self)) >= len(self.real_targets)

    def __getitem__(self, index: int) -> tuple[Any, ...]:
        n_real = len(self.real_targets)
        index = check_index(index, len(self))
        if index < n_real:
            img, label = self.real[index][:2]
        else:
            label = self._synth_labels[index - n_real]
            k = self.synthetic.index_of(self._gen(label),
                                        index - n_real - self._synth_starts[label])
            img = match_real(self.synthetic.image(k), self._like)
            label = match_label(label, self._like_label)
        if self.transform is not None:
            img = self.transform(img)
        if self.target_transform is not None:
            label = self.target_transform(label)
        if self.return_mask:  # (image, label, is synthetic): a batch's synthetic_mask
            return img, label, index >= n_real
        return img, label
