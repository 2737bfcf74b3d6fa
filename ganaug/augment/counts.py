"""How many synthetic images each class gets: a real dataset's labels, long-tail rebalancing
(:func:`balance_counts`) and proportional splits (:func:`proportional_counts`), for
:class:`ganaug.augment.MixedDataset` (rebalancing with synthetic data, e.g.
https://arxiv.org/abs/1803.09014).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import ConcatDataset, Dataset, Subset, WeightedRandomSampler

from ganaug.augment.functional import label_to_index, per_class_counts
from ganaug.errors import GanaugConfigError, GanaugDataError, did_you_mean

__all__ = ["BALANCE_MODES", "ClassBalancedSampler", "balance_counts", "class_balanced_weights", "dataset_labels", "declared_targets",
           "proportional_counts"]

BALANCE_MODES = ("uniform", "match_max")


# -- counting --------------------------------------------------------------------------------
def declared_targets(dataset: Any) -> list | None:
    """The labels a dataset declares without reading its items: its ``.targets``, else those of
    a ``Subset`` (its parent's, at its indices) or a ``ConcatDataset`` (its parts'); ``None``
    when it declares none. Not checked: see :func:`dataset_labels`."""
    targets = getattr(dataset, "targets", None)
    if isinstance(targets, (torch.Tensor, np.ndarray)):
        return list(targets.reshape(-1)) if targets.ndim == 1 else [targets]
    if targets is not None:
        return targets if isinstance(targets, list) else list(targets)
    if isinstance(dataset, Subset):
        parent = declared_targets(dataset.dataset)
        if parent is None:
            return None
        try:
            return [parent[int(i)] for i in dataset.indices]
        except (IndexError, TypeError):
            return None  # indices the parent's labels do not cover: read the items
    if isinstance(dataset, ConcatDataset):
        parts = [declared_targets(part) for part in dataset.datasets]
        if any(part is None for part in parts):
            return None
        return [label for part in parts for label in part]
    return None


def dataset_labels(dataset: Dataset) -> list[int]:
    """The int labels of a map-style dataset: declared (``.targets``, also through ``Subset``
    and ``ConcatDataset``: :func:`declared_targets`), else one pass over its items.

    Raises:
        GanaugDataError: a label that is not an integer class index (a float, a string, a
            multi-element tensor), instead of truncating it; ``.targets`` of another length
            than the dataset.
    """
    targets = declared_targets(dataset)
    declared = targets is not None
    if not declared:
        targets = [dataset[i][1] for i in range(len(dataset))]
    labels = [_int_label(t, i) for i, t in enumerate(targets)]
    if declared and len(labels) != len(dataset):
        raise GanaugDataError(
            f"The real dataset's .targets holds {len(targets)} labels but the dataset has "
            f"{len(dataset)} items ({type(dataset).__name__}), so labels cannot be matched to "
            "items. Keep .targets in step with the items (filter both), or remove .targets so "
            "that the labels are read from the items.")
    return labels


def _int_label(label: Any, i: int) -> int:
    size = label.numel() if isinstance(label, torch.Tensor) else getattr(label, "size", None)
    if isinstance(label, (torch.Tensor, np.ndarray)) and size == 1:
        label = label.item()
    if isinstance(label, (int, np.integer)) and not isinstance(label, bool):
        return int(label)
    raise GanaugDataError(
        f"Label {i} of the real dataset is {label!r} ({type(label).__name__}); MixedDataset "
        "needs one integer class index per item: give the real dataset int labels (a "
        "wrapper dataset returning (image, int(label.argmax())) for one-hot labels; not a "
        "target_transform of its own, which MixedDataset refuses), and turn them into the "
        "targets the loss takes with MixedDataset(target_transform=...).")


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
        targets = per_class_counts(balance, classes, what="balance")
        listed = {label_to_index(key, classes, what="balance") for key in balance}
        return [max(0, targets[c] - n) if c in listed else 0 for c, n in enumerate(real_counts)]
    if balance == "match_max":
        if budget is not None:
            raise GanaugConfigError("ratio= cannot be combined with balance='match_max'; use "
                                    "balance='uniform' to spend a ratio on the rarest classes.")
        return [top - n for n in real_counts]
    if balance != "uniform":
        raise GanaugConfigError(f"Unknown balance {balance!r}. Use 'uniform', 'match_max' or a "
                                "{class: total} dict." + did_you_mean(str(balance), BALANCE_MODES))
    if budget is None:
        return [top - n for n in real_counts]
    return _fill_evenly(list(real_counts), budget)


def _fill_evenly(real_counts: list[int], budget: int) -> list[int]:
    """Give ``budget`` images one at a time to the class with the fewest (ties: the lower
    index), in closed form: raise every class to the highest level the budget reaches, then
    one more to the first classes at that level (a loop per image hung on ratio=1e9)."""
    if not real_counts or budget <= 0:
        return [0] * len(real_counts)

    def cost(level: int) -> int:
        return sum(max(0, level - n) for n in real_counts)

    low, high = min(real_counts), max(real_counts) + budget  # cost(low) = 0 <= budget
    while low < high:  # the highest level whose cost fits the budget
        mid = (low + high + 1) // 2
        low, high = (mid, high) if cost(mid) <= budget else (low, mid - 1)
    extra = [max(0, low - n) for n in real_counts]
    left = budget - sum(extra)
    for c, n in enumerate(real_counts):
        if left and n <= low:
            extra[c] += 1
            left -= 1
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


# -- sampling ----------------------------------------------------------------------------------
def class_balanced_weights(labels: Any) -> torch.Tensor:
    """``(N,)`` float32 weights ``1 / n_c`` of each item's class ``c``: every class is drawn
    equally often (class-balanced oversampling)."""
    labels = torch.as_tensor(labels, dtype=torch.int64).reshape(-1)
    if not len(labels) or int(labels.min()) < 0:
        raise GanaugDataError("Class-balanced sampling needs >= 1 labels, all >= 0; got "
                              f"{len(labels)} labels.")
    return (1.0 / torch.bincount(labels).float().clamp(min=1))[labels]


class ClassBalancedSampler(WeightedRandomSampler):
    """A ``DataLoader`` sampler that draws every class equally often (with replacement).

    ``DataLoader(dataset, sampler=ganaug.ClassBalancedSampler(dataset), batch_size=...)``:
    each item is drawn with probability proportional to ``1 / n_c`` of its class ``c``, so a
    long-tailed dataset yields batches with the classes in equal shares (what
    ``ganaug experiment``'s ``real+oversample`` arm trains on).

    Args:
        data: a dataset (its ``.targets``, or its labels read once) or the labels themselves.
        num_samples: draws per epoch (default: the dataset's length).
        generator: a ``torch.Generator`` for reproducible draws.
    """

    def __init__(self, data: Any, num_samples: int | None = None,
                 generator: torch.Generator | None = None) -> None:
        labels = dataset_labels(data) if isinstance(data, Dataset) else data
        weights = class_balanced_weights(labels)
        super().__init__(weights, len(weights) if num_samples is None else num_samples,
                         replacement=True, generator=generator)

    def __repr__(self) -> str:
        return f"ClassBalancedSampler({len(self.weights)} items, num_samples={self.num_samples})"
