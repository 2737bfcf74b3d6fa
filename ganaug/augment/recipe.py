"""The recommended recipe in one object: distil a teacher into every row, weigh synthetic rows down.

``ganaug experiment``'s ``+kd`` arms and a user's own training loop run the same code: the
teacher's soft targets blended with every row's label (real and generated alike; Hinton et al.
2015, https://arxiv.org/abs/1503.02531), the generated candidates it disagrees with most
dropped before they reach the batch (cGAN-KD, https://arxiv.org/abs/2104.03164), and the
synthetic rows' loss weighted down (EC-GAN, https://arxiv.org/abs/2012.15864).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from ganaug._checks import check_float
from ganaug._imaging import unnormalize
from ganaug.augment.batch import check_soft_targets
from ganaug.augment.teacher import Teacher, check_teacher, parse_stats
from ganaug.errors import GanaugConfigError, GanaugDataError

__all__ = ["SYNTHETIC_WEIGHT", "Distiller", "row_weighted_loss", "row_weights", "weighted_loss"]

#: The recommended weight of a synthetic row's loss (a real row weighs 1).
SYNTHETIC_WEIGHT = 0.3


class Distiller:
    """Teacher-guided training on real plus generated images: the recipe, in your loop.

    ``targets, weights = distiller(x, y, synthetic_mask)`` gives every row the target
    ``label_weight * y + (1 - label_weight) * softmax(teacher(x) / T)`` (the teacher's
    settings) and the weight ``synthetic_weight`` on synthetic rows, 1 on real ones;
    ``distiller.loss(logits, targets, weights)`` is their weighted cross-entropy. The
    generated images are filtered where they are drawn: give the same teacher to
    :class:`ganaug.BatchMixer` or :class:`ganaug.SyntheticDataset`, or call :meth:`keep` on a
    pool. ``ganaug experiment``'s ``+kd`` arms train through this object.

    Args:
        teacher: a :class:`ganaug.Teacher` (temperature, label weight, filter).
        synthetic_weight: weight >= 0 of a synthetic row's loss (EC-GAN uses 0.1; ganaug's
            recommended recipe 0.3).
        mean, std: the Normalize statistics of a float batch (as given to
            :class:`ganaug.BatchMixer`); the teacher then sees the batch un-normalised, in
            [0, 1]. Without them a float batch must be in [0, 1].

    Example::

        teacher = ganaug.Teacher(model, expects="normalized", mean=MEAN, std=STD)
        mixer = ganaug.BatchMixer(gen, 0.25, classes=train_set.classes, teacher=teacher)
        distiller = ganaug.Distiller(teacher)
        for x, y in loader:
            x, y = mixer(x, y)
            targets, weights = distiller(x, y, mixer.last_synthetic_mask)
            loss = distiller.loss(student(x), targets, weights)
    """

    def __init__(self, teacher: Teacher, *, synthetic_weight: float = SYNTHETIC_WEIGHT,
                 mean=None, std=None) -> None:
        """Build the recipe; the arguments are described in :class:`Distiller`."""
        if not isinstance(teacher, Teacher):
            check_teacher(teacher, 0, where="Distiller")  # refuses with the fix
        self.teacher = teacher
        self.synthetic_weight = check_float("synthetic_weight", synthetic_weight, minimum=0.0)
        self.mean, self.std = parse_stats(mean, std)

    def __repr__(self) -> str:
        return f"Distiller({self.teacher!r}, synthetic_weight={self.synthetic_weight:g})"

    def targets(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """``(N, K)`` float32 targets of uint8 or [0, 1] ``images`` with ``labels`` ((N,) int
        or (N, K) soft), on the images' device."""
        if self.mean is not None and images.is_floating_point():  # back to [0, 1]
            images = unnormalize(images, self.mean, self.std)
        return self.teacher.targets(self.teacher.logits(images), labels)

    def weights(self, synthetic_mask: torch.Tensor | None, n: int,
                device: torch.device | str = "cpu") -> torch.Tensor:
        """``(n,)`` float32 row weights: ``synthetic_weight`` where the mask is True, else 1."""
        return row_weights(synthetic_mask, n, self.synthetic_weight, device)

    def __call__(self, images: torch.Tensor, labels: torch.Tensor,
                 synthetic_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(targets (N, K), weights (N,))`` of a batch (see the class docstring)."""
        targets = self.targets(images, labels)
        return targets, self.weights(synthetic_mask, len(targets), targets.device)

    def loss(self, logits: torch.Tensor, targets: torch.Tensor,
             weights: torch.Tensor | None = None) -> torch.Tensor:
        """``sum_i w_i CE(logits_i, targets_i) / sum_i w_i`` (the plain mean without weights)."""
        return row_weighted_loss(logits, targets, weights)

    def keep(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """``(N,)`` bool: which of a pool of generated images (of intended ``labels``) the
        teacher's filter keeps (``drop_hardest`` of the pool, ``min_confidence``)."""
        return self.teacher.keep(self.teacher.logits(images), labels)


def row_weights(synthetic_mask: Any, n: int, synthetic_weight: float,
                device: torch.device | str = "cpu") -> torch.Tensor:
    """``(n,)`` float32: ``synthetic_weight`` where ``synthetic_mask`` is True, else 1."""
    weights = torch.ones(n, device=device)
    if synthetic_mask is None:
        return weights
    mask = torch.as_tensor(synthetic_mask, device=device)
    if mask.ndim != 1 or mask.shape[0] != n or (
            mask.dtype != torch.bool and not bool(((mask == 0) | (mask == 1)).all())):
        raise GanaugDataError(
            f"synthetic_mask must be (B,) bool, True at synthetic rows, with B={n}; got "
            f"{mask.dtype} {tuple(mask.shape)}. Pass mixer.last_synthetic_mask (in DataLoader "
            "workers: collate_fn=mixer.collate_with_mask).")
    return torch.where(mask.bool(), synthetic_weight, 1.0).float()


def row_weighted_loss(logits: torch.Tensor, targets: torch.Tensor,
                      weights: torch.Tensor | None) -> torch.Tensor:
    """Cross-entropy of ``(B, K)`` logits on ``(B,)`` int or ``(B, K)`` soft targets, each row
    weighted: ``sum_i w_i CE_i / sum_i w_i``; refuses what would be NaN or silently wrong."""
    if not isinstance(logits, torch.Tensor) or not isinstance(targets, torch.Tensor):
        raise GanaugDataError(f"The loss takes tensors, got {type(logits).__name__} and "
                              f"{type(targets).__name__}; use torch.as_tensor(targets).")
    if logits.ndim != 2 or targets.shape[:1] != logits.shape[:1] or targets.ndim not in (1, 2):
        raise GanaugDataError(f"The loss takes (B, K) logits and (B,) or (B, K) targets, got "
                              f"{tuple(logits.shape)} and {tuple(targets.shape)}.")
    if not logits.is_floating_point():
        raise GanaugDataError(f"The loss takes float logits (the classifier's outputs), got "
                              f"{logits.dtype}; cast them with logits.float().")
    if not len(logits):
        raise GanaugDataError("The loss got an empty batch (B=0): its mean is 0/0 (NaN). Skip "
                              "empty batches, or use drop_last=True.")
    if targets.ndim == 2:
        if targets.shape != logits.shape:
            raise GanaugDataError(f"Soft targets {tuple(targets.shape)} do not match the logits "
                                  f"{tuple(logits.shape)}.")
        check_soft_targets(targets)
        sums = targets.detach().float().sum(1)
        if not bool(((sums - 1).abs() < 1e-3).all()):
            raise GanaugDataError(
                f"Soft target rows must sum to 1 (probabilities); got sums in "
                f"[{float(sums.min()):.3g}, {float(sums.max()):.3g}]. Normalise them: "
                "targets / targets.sum(1, keepdim=True).")
        per_row = -(targets.to(logits.dtype) * logits.log_softmax(dim=1)).sum(dim=1)
    else:
        if targets.is_floating_point() or targets.dtype == torch.bool or not (
                int(targets.min()) >= 0 and int(targets.max()) < logits.shape[1]):
            raise GanaugDataError(
                f"Class-index targets must be integers in 0..{logits.shape[1] - 1}, got "
                f"{targets.dtype} {targets.min().item()}..{targets.max().item()}.")
        per_row = F.cross_entropy(logits, targets.long(), reduction="none")
    if weights is None:
        return per_row.mean()
    weights = torch.as_tensor(weights, dtype=per_row.dtype, device=per_row.device)
    if weights.shape != per_row.shape or not bool(torch.isfinite(weights).all()) or bool(
            (weights < 0).any()):
        raise GanaugDataError(f"weights must be (B,) finite values >= 0 with B={len(per_row)}, "
                              f"got {tuple(weights.shape)}.")
    if float(weights.sum()) == 0:
        raise GanaugConfigError("Every row weighs 0 (all synthetic with synthetic_weight=0): the "
                                "loss would be 0/0. Use synthetic_weight > 0.")
    return (weights * per_row).sum() / weights.sum()


def weighted_loss(logits: torch.Tensor, targets: torch.Tensor,
                  synthetic_mask: torch.Tensor | None = None, *,
                  synthetic_weight: float = SYNTHETIC_WEIGHT) -> torch.Tensor:
    """Mean cross-entropy over a batch, synthetic rows weighted by ``synthetic_weight``.

    ``loss = sum_i w_i CE_i / sum_i w_i`` with ``w_i = synthetic_weight`` on synthetic rows
    and 1 on real ones; without a mask, the plain mean cross-entropy. The same loss as
    :meth:`Distiller.loss`.

    Args:
        logits: ``(B, K)`` the classifier's outputs.
        targets: ``(B,)`` int class indices or ``(B, K)`` float soft targets (rows sum to 1).
        synthetic_mask: ``(B,)`` bool, True for synthetic rows (``BatchMixer.last_synthetic_mask``).
        synthetic_weight: weight >= 0 of each synthetic row.
    """
    weight = check_float("synthetic_weight", synthetic_weight, minimum=0.0)
    weights = None
    if synthetic_mask is not None and isinstance(logits, torch.Tensor):
        mask = torch.as_tensor(synthetic_mask, device=logits.device)
        n = logits.shape[0] if logits.ndim else 0
        if mask.ndim == 1 and mask.shape[0] == 0 and n:
            raise GanaugDataError(
                f"synthetic_mask has 0 rows for a batch of {n} (a BatchMixer's "
                "last_synthetic_mask before it mixed a batch in this process: in DataLoader "
                "workers use collate_fn=mixer.collate_with_mask and x, y, mask = batch).")
        weights = row_weights(mask, n, weight, logits.device)
    return row_weighted_loss(logits, targets, weights)
