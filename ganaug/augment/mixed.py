"""Real data plus synthetic data: appended (expansion, rebalancing) or replaced per access.

:class:`MixedDataset` appends synthetic samples to a real dataset (an exact ratio, or long-tail
rebalancing with :func:`balance_counts`), or, with ``mode="replace"``, swaps real samples for
synthetic ones per access with probability ``p`` (:class:`Replacer`, DA-Fusion style,
https://arxiv.org/abs/2302.07944).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from ganaug._checks import (
    check_bool,
    check_float,
    check_index,
    check_probability,
    check_seed,
    check_truncation,
    label_transform_owner,
)
from ganaug._imaging import memory_shortfall
from ganaug._seeding import WorkerStream, worker_stream_seed
from ganaug.augment.classes import (
    class_lookup,
    dataset_class_to_idx,
    lookup,
    to_class_to_idx,
)
from ganaug.augment.counts import (  # re-exported: their home was this module
    balance_counts,
    dataset_labels,
    proportional_counts,
)
from ganaug.augment.functional import LabelRuns, check_unnormalised, match_image
from ganaug.augment.source import GeneratorSource, SampleBank
from ganaug.augment.synthetic import SyntheticDataset
from ganaug.augment.teacher import Teacher, teacher_from_kwargs
from ganaug.errors import GanaugConfigError, GanaugDataError, did_you_mean

__all__ = ["MixedDataset", "Replacer", "balance_counts", "dataset_labels", "proportional_counts"]

MODES = ("append", "replace")


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


# -- replace mode ----------------------------------------------------------------------------
class Replacer:
    """Swap a real image for a synthetic one of its class with probability ``p``, per access.

    The coin flips come from a stream seeded once per process and DataLoader worker from
    ``(seed, worker seed)`` (see :func:`ganaug._seeding.worker_stream_seed`). The synthetic image
    is the next one of a :class:`SampleBank` or a random item of a :class:`SyntheticDataset`,
    converted to the real image's type, size and channels.

    Args:
        p: replacement probability in [0, 1].
        source: a :class:`SyntheticDataset`, or a generator / model file for a SampleBank.
        seed: seeds the coin flips (and the bank).
        truncation: of the bank's samples, in (0, 1].
    """

    def __init__(self, p: float, source: Any, *, seed: int = 0, truncation: float = 1.0,
                 teacher: Teacher | None = None) -> None:
        self.p = check_probability("p", p)
        self.teacher = teacher
        self.seed = check_seed("seed", seed)
        self.synthetic = source if isinstance(source, SyntheticDataset) else None
        self.bank = None if self.synthetic is not None else SampleBank(
            source, seed=self.seed, truncation=check_truncation(truncation))
        self._stream = WorkerStream()

    def __call__(self, img: Any, label: int) -> tuple[Any, bool]:
        """``(image, replaced)``: ``img`` itself, or a synthetic image of generator class ``label``."""
        return self.draw(img, label)[:2]

    def draw(self, img: Any, label: int,
             intended: int | None = None) -> tuple[Any, bool, torch.Tensor | None]:
        """``(image, replaced, soft target or None)``; ``intended``: the real label (teacher).

        With a teacher (bank source) a candidate it rejects (``min_confidence``) leaves ``img``
        in place; a teacher-labelled SyntheticDataset gives its items' own soft targets.
        """
        if self._stream.due():
            self._rng = torch.Generator().manual_seed(worker_stream_seed(self.seed))
            self._stream.claim()
        if not bool(torch.rand((), generator=self._rng) < self.p):
            return img, False, None
        target = None
        if self.bank is not None:
            fake = self.bank.draw(label)
            if self.teacher is not None:
                intended = label if intended is None else intended
                targets, keep = self.teacher(fake[None], torch.tensor([intended]))
                if not bool(keep[0]):
                    return img, False, None
                target = targets[0].cpu()
        else:
            j = int(torch.randint(0, self.synthetic.counts[label], (), generator=self._rng))
            index = self.synthetic.index_of(label, j)
            fake = self.synthetic.image(index)
            target = self.synthetic.target(index) if self.synthetic.soft else None
        return match_real(fake, img), True, target


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
    worker, like :class:`ganaug.SampleBank`; see :class:`Replacer`).

    Class identity: a real label ``l`` means the class *named* ``l`` in the real dataset
    (its ``class_to_idx``, timm's ``reader.class_to_idx`` or ``classes``, looked up through
    ``Subset``-like wrappers, or the explicit ``class_to_idx=``/``classes=``); its synthetic
    images come from the generator's class of the same name, and synthetic items carry the real
    dataset's labels. Names the generator lacks are refused, listing both sides; a dataset with
    only some of the generator's classes is fine. A dataset that declares no names has its
    labels taken as the generator's class indices.

    Synthetic images are converted to the type, mode and size of the real images (the first
    real image in append mode, the replaced one in replace mode), and appended labels to the
    type of the first real label (so batches collate); give ``real`` no tensor
    transform; put the pipeline in ``transform`` (settable, applied to real and synthetic).

    Args:
        real: a non-empty map-style dataset of ``(image, int label)``; ``.targets`` is used
            when present, otherwise the labels are read once.
        synthetic_or_generator: a :class:`SyntheticDataset`, a :class:`ganaug.Generator` or a
            model file path (then a SyntheticDataset / SampleBank is made with ``seed``).
        mode: ``"append"`` or ``"replace"``.
        ratio: synthetic size relative to ``len(real)`` (append).
        p: replacement probability (replace).
        balance: see above (append).
        seed: seeds the synthetic images and the replacement draws.
        transform, target_transform: applied to every image / label.
        class_to_idx, classes: the real dataset's ``{name: label}`` (or names by label), when
            it does not declare them itself or declares them wrongly.
        truncation: in (0, 1], of the images generated here (checked at construction).
        teacher, **teacher_settings: a classifier over the real classes and its settings
            (``temperature``, ``teacher_weight``, ``teacher_input``, ``teacher_mean``,
            ``teacher_std``, ``min_confidence``, ``drop_top``; see :class:`SyntheticDataset`).
            Every label is then a ``(K,)`` float32 target: soft for synthetic items, one-hot
            for real ones. In replace mode a rejected candidate leaves the real item.
        return_mask: items are ``(image, label, is_synthetic)``, so a DataLoader batch
            carries the ``(B,)`` bool mask :func:`ganaug.augment.weighted_loss` takes.

    Raises:
        GanaugConfigError: bad settings (mode, ratio, p, balance, truncation).
        GanaugDataError: an empty real dataset, class names the generator lacks, labels
            without a class.
    """

    def __init__(self, real: Dataset, synthetic_or_generator: Any, *, mode: str = "append",
                 ratio: float | None = None, p: float | None = None,
                 balance: str | Mapping | None = None, seed: int = 0,
                 transform: Callable | None = None,
                 target_transform: Callable | None = None,
                 class_to_idx: Mapping[str, int] | None = None,
                 classes: Sequence[str] | None = None, truncation: float = 1.0,
                 teacher: Any = None, return_mask: bool = False,
                 **teacher_settings: Any) -> None:
        if mode not in MODES:
            raise GanaugConfigError(f"Unknown mode '{mode}'. Use 'append' or 'replace'."
                                    + did_you_mean(str(mode), MODES))
        self.real, self.mode, self.seed = real, mode, check_seed("seed", seed)
        self.return_mask = check_bool("return_mask", return_mask)
        self.truncation = check_truncation(truncation)
        self.transform, self.target_transform = transform, target_transform
        given = synthetic_or_generator if isinstance(
            synthetic_or_generator, SyntheticDataset) else None
        source = None if given is not None else GeneratorSource(synthetic_or_generator)
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
        self._lut = self._class_lookup(gen_classes, class_to_idx, classes)
        self.real_counts = np.bincount(np.asarray(self.real_targets, dtype=np.int64),
                                       minlength=len(self.classes)).tolist()
        self.synthetic, self.replacer = given, None
        self.synthetic_counts = [0] * len(self.classes)
        self._synth_labels = LabelRuns([], [])  # the label of each appended item, lazily
        self._synth_starts = [0] * (len(self.classes) + 1)
        self._like = self._like_label = None  # the first real item (append mode)
        self._last_replaced: np.ndarray | None = None  # replace mode: one bool per real item
        self.teacher = self._teacher(teacher, teacher_settings, given, mode)
        self.soft = self.teacher is not None or bool(given is not None and given.soft)
        if mode == "append":
            self._append(source, ratio, p, balance)
        else:
            if ratio is not None or balance is not None:
                raise GanaugConfigError("ratio= and balance= are for mode='append'; "
                                        "mode='replace' takes p= only.")
            if p is None:
                raise GanaugConfigError("mode='replace' needs p=, the replacement probability.")
            if given is not None:
                empty = [self.classes[c] for c, n in enumerate(self.real_counts)
                         if n and not given.counts[self._gen(c)]]
                if empty:
                    raise GanaugConfigError(f"The SyntheticDataset has no images of class(es) "
                                            f"{', '.join(empty)}, which the real data has.")
            self.replacer = Replacer(p, given if given is not None else source, seed=self.seed,
                                     truncation=self.truncation, teacher=self.teacher)

    @property
    def p(self) -> float | None:
        """The replacement probability (replace mode; None in append mode)."""
        return None if self.replacer is None else self.replacer.p

    @property
    def bank(self) -> SampleBank | None:
        """The SampleBank of replace mode with a generator (None otherwise)."""
        return None if self.replacer is None else self.replacer.bank

    def _class_lookup(self, gen_classes: list[str], class_to_idx, classes) -> list[int] | None:
        """Set ``classes``/``class_to_idx`` (the real label space); the label -> generator map."""
        mapping = to_class_to_idx(class_to_idx=class_to_idx, classes=classes)
        mapping = mapping if mapping is not None else dataset_class_to_idx(self.real)
        if mapping is None:  # no names: labels are the generator's indices
            self.classes = gen_classes
            self.class_to_idx = {name: k for k, name in enumerate(gen_classes)}
            top, low = max(self.real_targets, default=-1), min(self.real_targets, default=0)
            if top >= len(gen_classes) or low < 0:
                raise GanaugDataError(
                    f"Real labels span {low}..{top} but the generator has {len(gen_classes)} "
                    f"classes (labels 0..{len(gen_classes) - 1}). Pass class_to_idx= / "
                    "classes= (the real dataset's), or use a generator trained on it.")
            return None
        lut = class_lookup(gen_classes, mapping, what="the real dataset")
        if sorted(mapping.values()) != list(range(len(mapping))):
            raise GanaugDataError(
                f"The real dataset's class_to_idx must use the labels 0..{len(mapping) - 1}, "
                f"got {mapping}. Relabel it, or pass class_to_idx= with consecutive labels.")
        self.class_to_idx = dict(mapping)
        self.classes = sorted(mapping, key=mapping.__getitem__)
        lookup(lut, torch.as_tensor(self.real_targets, dtype=torch.int64),
               what="the real dataset")
        return lut.tolist()

    def _teacher(self, teacher: Any, settings: dict, given: SyntheticDataset | None,
                 mode: str) -> Teacher | None:
        """The teacher of generated images (see :class:`ganaug.augment.Teacher`)."""
        if given is not None and (teacher is not None or settings):
            raise GanaugConfigError("teacher= goes to the SyntheticDataset when one is given: "
                                    "build it with SyntheticDataset(..., teacher=...).")
        if given is not None and given.soft and given.classes != self.classes:
            raise GanaugConfigError(
                f"The SyntheticDataset's soft targets are over {given.classes} but the real "
                f"classes are {self.classes}; build it with class_to_idx= of the real dataset.")
        made = teacher_from_kwargs(teacher, settings, num_classes=len(self.classes),
                                   what="MixedDataset")
        if made is not None and mode == "replace" and made.drop_top:  # a ready Teacher's too
            raise GanaugConfigError("drop_top needs a pool of candidates; mode='replace' draws "
                                    f"one at a time (got drop_top={made.drop_top}). Use "
                                    "min_confidence=, or a SyntheticDataset built with teacher= "
                                    "and drop_top=.")
        return made

    def _gen(self, label: int) -> int:
        """The generator's class of real label ``label``."""
        return label if self._lut is None else self._lut[label]

    def _append(self, source: GeneratorSource | None, ratio, p, balance) -> None:
        """Decide how many synthetic images of each class to append, and index them."""
        if p is not None:
            raise GanaugConfigError("p= is for mode='replace'; in mode='append' use ratio= or "
                                    "balance=.")
        budget = None
        if ratio is not None:
            ratio = check_float("ratio", ratio, minimum=0.0)
            budget = math.floor(ratio * len(self.real_targets) + 0.5)
        if balance is not None:
            needed = balance_counts(self.real_counts, balance, budget=budget, classes=self.classes)
        elif budget is not None:
            needed = proportional_counts(self.real_counts, budget)
        elif self.synthetic is not None:
            needed = [self.synthetic.counts[self._gen(c)] for c in range(len(self.classes))]
            unused = sorted(set(range(len(self.synthetic.counts)))
                            - {self._gen(c) for c in range(len(self.classes))})
            extra = [self.synthetic.generator_classes[g] for g in unused if self.synthetic.counts[g]]
            if extra:
                raise GanaugDataError(
                    f"The SyntheticDataset has images of class(es) {', '.join(extra)}, which the "
                    f"real dataset does not have (its classes: {', '.join(self.classes)}); they "
                    "would have no label. Build it with counts= for the real classes only.")
        else:
            raise GanaugConfigError("With a generator, say how many synthetic images to add: "
                                    "ratio=0.5 (half as many as the real ones) or "
                                    "balance='match_max'/'uniform'/{class: total}.")
        if self.synthetic is None:
            counts = [0] * len(source.classes)
            for label, n in enumerate(needed):
                counts[self._gen(label)] = n
            extra = {} if self.teacher is None else {"class_to_idx": self.class_to_idx}
            self.synthetic = SyntheticDataset(source, counts=counts, seed=self.seed,
                                              truncation=self.truncation,
                                              teacher=self.teacher, **extra)
            # keep every image read when all fit in memory; else at most memory_mb of chunks
            # (regenerated when dropped), as keeping all grew the process until it ran out
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

    # -- access -----------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.real_targets) + len(self._synth_labels)

    @property
    def targets(self) -> list[int]:
        return self.real_targets + list(self._synth_labels)

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
        index = check_index(index, len(self))
        if self.replacer is not None:
            return self._replaced(index)
        return index >= len(self.real_targets)

    def _replaced(self, index: int) -> bool:
        """Whether the last access of real item ``index`` in this process was replaced."""
        return self._last_replaced is not None and bool(self._last_replaced[index])

    def __getitem__(self, index: int) -> tuple[Any, ...]:
        n_real = len(self.real_targets)
        index = check_index(index, len(self))
        if index < n_real:
            img, label = self.real[index][:2]
            soft = None
            if self.replacer is not None:
                img, replaced, soft = self.replacer.draw(img, self._gen(int(label)), int(label))
                if self._last_replaced is None:  # created lazily: not pickled to workers
                    self._last_replaced = np.zeros(n_real, dtype=bool)
                self._last_replaced[index] = replaced
            if self.soft:
                label = soft if soft is not None else F.one_hot(
                    torch.tensor(int(label)), len(self.classes)).float()
        else:
            label = self._synth_labels[index - n_real]
            k = self.synthetic.index_of(self._gen(label),
                                        index - n_real - self._synth_starts[label])
            img = self.synthetic.image(k)
            label = self.synthetic.target(k) if self.soft else match_label(label,
                                                                             self._like_label)
            img = match_real(img, self._like) if self._like is not None else img
        if self.transform is not None:
            img = self.transform(img)
        if self.target_transform is not None:
            label = self.target_transform(label)
        if self.return_mask:  # (image, label, is synthetic): a batch's synthetic_mask
            return img, label, index >= n_real or self._replaced(index)
        return img, label
