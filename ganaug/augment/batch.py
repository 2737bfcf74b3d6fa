"""Checks and helpers of :class:`ganaug.augment.BatchMixer`'s batches: how a batch comes in
(``x, y``, a tuple, a dict), what its targets and a replacement's ``params`` may hold, and the
soft targets of replaced rows (timm's ``Mixup`` targets, https://arxiv.org/abs/1710.09412).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from ganaug._checks import check_seed
from ganaug.augment.functional import outside_unit_range
from ganaug.errors import GanaugConfigError, GanaugDataError

__all__ = ["RANGE_SLACK", "check_params", "check_soft_targets", "check_target_matrix",
           "check_unit_range", "soft_rows", "unpack"]

#: A float batch without mean/std must lie in [0, 1]; this much slack covers the overshoot of
#: bicubic/antialiased resizing, while any Normalize-d batch reaches far below it.
RANGE_SLACK = 0.1  # a batch: antialiased resizes overshoot [0, 1] a little
LABEL_KEYS = ("labels", "label", "targets", "target", "y")
IMAGE_KEYS = ("images", "image", "inputs", "input", "img", "x")


def check_unit_range(x: torch.Tensor) -> None:
    """Refuse a float batch that is clearly not in [0, 1] (normalised, or 0-255 floats)."""
    bad = outside_unit_range(x, RANGE_SLACK)
    if bad is not None:
        low, high = bad
        raise GanaugDataError(
            f"The float batch spans [{low:.3g}, {high:.3g}], but without mean=/std= "
            "BatchMixer takes float batches as [0, 1] and would insert [0, 1] images "
            "into it. Pass the pipeline's Normalize statistics: BatchMixer(gen, "
            "mean=..., std=...) (for timm's prefetcher: BatchMixer.for_loader(gen, "
            "loader)), or scale the batch to [0, 1] (x / 255 for 0-255 floats).")


def check_soft_targets(y: torch.Tensor) -> None:
    """Refuse ``(B, K)`` soft targets with NaN, infinite or negative entries: their argmax
    class is arbitrary, and a replaced row would keep the NaN."""
    if not y.numel():
        return
    low, high = (float(v) for v in torch.aminmax(y.detach().float()))
    if not (low >= 0 and high < float("inf")):
        raise GanaugDataError(
            f"Soft targets (B, K) must be finite and >= 0 (probabilities), got values in "
            f"[{low:g}, {high:g}]. Check the label smoothing or mixing that made them.")


def check_target_matrix(y: torch.Tensor, num_classes: int) -> None:
    """Refuse ``(B, K)`` targets that are not ``num_classes`` columns of probabilities, naming
    ``(B, 1)`` integer targets (class indices in a column) for what they are."""
    if y.shape[1] == 1 != num_classes and not y.is_floating_point():
        raise GanaugDataError(
            f"BatchMixer got (B, 1) integer targets {tuple(y.shape)}: class indices in a "
            "column (a dataset returning torch.tensor([label]) collates to them). Pass "
            "them as (B,): mixer(x, y.squeeze(1)).")
    if y.shape[1] != num_classes:
        raise GanaugDataError(
            f"Soft targets have {y.shape[1]} columns but num_classes={num_classes}; "
            "pass num_classes= to BatchMixer.")
    if not y.is_floating_point():
        raise GanaugDataError(f"Soft targets (B, K) must be float, got {y.dtype}.")
    check_soft_targets(y)


def check_params(params: Any, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(idx, classes)`` as int64 CPU tensors of what :meth:`BatchMixer.make_params` drew for
    a batch of ``batch``; refuses positions out of range or repeated, non-integer tensors and
    a missing seed."""
    if not isinstance(params, Mapping) or not {"idx", "classes", "seed"} <= set(params):
        got = list(params) if isinstance(params, Mapping) else type(params).__name__
        raise GanaugConfigError(f"params must hold 'idx', 'classes' and 'seed' (what "
                                f"make_params returns), got {got}.")
    idx, labels = params["idx"], params["classes"]
    for value in (idx, labels):
        if not isinstance(value, torch.Tensor) or value.is_floating_point() or \
                value.dtype == torch.bool or value.ndim != 1:
            got = (f"{value.dtype} {tuple(value.shape)}" if isinstance(value, torch.Tensor)
                   else type(value).__name__)
            raise GanaugConfigError(f"params['idx'] and params['classes'] must be 1-D integer "
                                    f"tensors (what make_params returns), got {got}.")
    idx, labels = idx.long().cpu(), labels.long().cpu()
    if len(idx) != len(labels):
        raise GanaugConfigError(f"params hold {len(idx)} positions but {len(labels)} classes; "
                                "pass what make_params returned.")
    if len(idx) and (int(idx.min()) < 0 or int(idx.max()) >= batch
                     or len(torch.unique(idx)) != len(idx)):
        raise GanaugConfigError(f"params' positions must be distinct integers in 0..{batch - 1} "
                                f"(the batch's rows), got {idx.tolist()[:10]}.")
    if len(idx):
        check_seed("params['seed']", params["seed"])
    return idx, labels


def soft_rows(rows: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Soft targets of generated images of ``labels``, keeping each row's mass and floor."""
    work = rows.float()
    floor = work.min(dim=1, keepdim=True).values
    mass = work.sum(dim=1, keepdim=True) - floor * work.shape[1]
    out = floor.expand_as(work).clone()
    out.scatter_add_(1, labels.view(-1, 1), mass)
    return out.to(rows.dtype)


def unpack(inputs: tuple) -> tuple[torch.Tensor, torch.Tensor, Any]:
    """``(x, y, pack)``: the images, the labels, and a function rebuilding the structure."""
    if len(inputs) == 2:
        return inputs[0], inputs[1], lambda x, y: (x, y)
    if len(inputs) == 1 and isinstance(inputs[0], (tuple, list)) and len(inputs[0]) == 2:
        kind = type(inputs[0])
        kind = kind if kind in (tuple, list) else tuple
        return inputs[0][0], inputs[0][1], lambda x, y: kind((x, y))
    if len(inputs) == 1 and isinstance(inputs[0], Mapping):
        batch = inputs[0]
        label_key = find_key(batch, LABEL_KEYS, contains="label")
        image_key = find_key(batch, IMAGE_KEYS, exclude=label_key)

        def pack(x, y):
            out = dict(batch)
            out[image_key], out[label_key] = x, y
            return out

        return batch[image_key], batch[label_key], pack
    got = ", ".join(type(i).__name__ for i in inputs) or "nothing"
    raise GanaugDataError(f"BatchMixer takes (images, labels), one (images, labels) tuple, or a "
                          f"dict with an image and a label entry; got {got}.")


def find_key(batch: Mapping, names: tuple[str, ...], *, contains: str | None = None,
             exclude: Any = None) -> Any:
    """The key of ``batch`` named one of ``names`` (any case), else one containing
    ``contains``, else (for images) the only 4-D tensor."""
    keys = [k for k in batch if k != exclude]
    for name in names:
        for key in keys:
            if isinstance(key, str) and key.lower() == name:
                return key
    if contains is not None:
        for key in keys:
            if isinstance(key, str) and contains in key.lower():
                return key
    else:
        tensors = [k for k in keys if isinstance(batch[k], torch.Tensor) and batch[k].ndim == 4]
        if len(tensors) == 1:
            return tensors[0]
    what = "labels" if contains else "images"
    raise GanaugDataError(f"BatchMixer cannot find the {what} in a dict batch with keys "
                          f"{list(batch)}; name them one of: {', '.join(names)}.")
