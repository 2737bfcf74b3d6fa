"""Knowledge distillation for the experiment's ``+kd`` arms: a teacher relabels each batch.

Hinton et al. 2015, https://arxiv.org/abs/1503.02531 (soft targets at a temperature); for
synthetic images relabelled by a teacher trained on the real data, see cGAN-KD (Ding et al. 2023,
https://arxiv.org/abs/2104.03164). The teacher of an arm is the seed's classifier of its
real-only counterpart (:attr:`ganaug.evaluation.arms.Arm.teacher`).

:class:`DistillMixer` is a mixer (``(images, labels) -> (images, soft labels)``) for
:func:`ganaug.evaluation.train_classifier`: each row's target becomes
``alpha * label + (1 - alpha) * softmax(teacher(image) / T)``, so the classifier's
cross-entropy on it is ``alpha * CE(label) + (1 - alpha) * CE(teacher at T)``. Real and synthetic
rows are relabelled alike (a synthetic row's ``label`` is the class the generator was asked for).
The student is not softened (its logits enter at T = 1), and the teacher sees each batch before
the student's random crop/flip.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ganaug._checks import check_float
from ganaug.evaluation.classifier import to_input

__all__ = ["KD_ALPHA", "KD_TEMPERATURE", "DistillMixer", "drop_hardest", "hardest_rows"]

#: Defaults of the ``+kd`` arms (Hinton et al. use T in 2..20; 4 is a common middle).
KD_TEMPERATURE = 4.0
KD_ALPHA = 0.5


class DistillMixer:
    """Replace each batch's labels by the teacher's soft targets blended with the labels.

    Args:
        teacher: a classifier from :func:`ganaug.evaluation.create_classifier` (its input
            convention is handled by :func:`ganaug.evaluation.classifier.to_input`); it is put in
            eval mode and never trained.
        temperature: the teacher's softmax temperature (> 0).
        alpha: the weight of the given labels, in [0, 1] (0: teacher only).
        then: an optional mixer applied first (e.g. a :class:`ganaug.BatchMixer` with
            ``replace_p``); its soft labels are blended the same way.

    Call: ``images (N, C, H, W)`` uint8 or float in [0, 1] and ``labels`` ``(N,)`` int or
    ``(N, K)`` float -> the images unchanged and ``(N, K)`` float targets whose rows sum to 1.
    """

    def __init__(self, teacher: nn.Module, *, temperature: float = KD_TEMPERATURE,
                 alpha: float = KD_ALPHA, then=None) -> None:
        self.temperature = check_float("kd_temperature", temperature, minimum=0.0,
                                       open_min=True)
        self.alpha = check_float("kd_alpha", alpha, minimum=0.0, maximum=1.0)
        self.teacher = teacher.eval()
        self.then = then

    def soft_targets(self, images: torch.Tensor) -> torch.Tensor:
        """``softmax(teacher(images) / T)``: ``(N, K)`` float32 on ``images``' device."""
        dev = next(self.teacher.parameters()).device
        with torch.inference_mode():
            logits = self.teacher(to_input(self.teacher, images.to(dev))).float()
        return F.softmax(logits / self.temperature, dim=1).to(images.device)

    @property
    def last_synthetic_mask(self) -> torch.Tensor | None:
        """The rows the ``then`` mixer replaced in the last batch (None without one)."""
        return getattr(self.then, "last_synthetic_mask", None)

    def __call__(self, images: torch.Tensor, labels: torch.Tensor):
        if self.then is not None:
            images, labels = self.then(images, labels)
        soft = self.soft_targets(images).clone()
        if labels.ndim == 1:
            labels = F.one_hot(labels.long(), soft.shape[1]).to(soft.dtype)
        return images, self.alpha * labels.to(soft.dtype) + (1.0 - self.alpha) * soft


def hardest_rows(teacher: nn.Module, images: torch.Tensor, labels: torch.Tensor, *, start: int,
                 fraction: float, batch_size: int = 256) -> torch.Tensor:
    """The ``floor(fraction * (N - start))`` rows among ``start:`` (the synthetic ones) with the
    highest teacher cross-entropy on their label, hardest first (cGAN-KD's filter).

    Args: as :func:`drop_hardest`.

    Returns:
        ``(k,)`` int64 row indices into ``images``.
    """
    fraction = check_float("teacher_filter", fraction, minimum=0.0, maximum=1.0)
    k = int(fraction * (len(images) - start))
    if k == 0:
        return torch.zeros(0, dtype=torch.int64)
    dev = next(teacher.parameters()).device
    teacher.eval()
    losses = []
    with torch.inference_mode():
        for i in range(start, len(images), batch_size):
            x = images[i:i + batch_size].to(dev)
            logits = teacher(to_input(teacher, x)).float()
            losses.append(F.cross_entropy(logits, labels[i:i + batch_size].to(dev),
                                          reduction="none").cpu())
    return start + torch.argsort(torch.cat(losses), descending=True, stable=True)[:k]


def drop_hardest(teacher: nn.Module, images: torch.Tensor, labels: torch.Tensor, *, start: int,
                 fraction: float, batch_size: int = 256) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Drop the ``fraction`` of rows ``start:`` (the synthetic ones) with the highest teacher
    cross-entropy on their label (cGAN-KD's filter: the teacher disagrees most with those).

    Args:
        teacher: a classifier (see :class:`DistillMixer`).
        images: ``(N, C, H, W)`` uint8; rows ``0..start-1`` (the real ones) are always kept.
        labels: ``(N,)`` int64.
        start: the first synthetic row.
        fraction: in [0, 1]: ``floor(fraction * (N - start))`` rows are dropped.
        batch_size: images per teacher forward pass.

    Returns:
        The kept ``images`` and ``labels`` (order kept) and the number dropped.
    """
    worst = hardest_rows(teacher, images, labels, start=start, fraction=fraction,
                         batch_size=batch_size)
    if len(worst) == 0:
        return images, labels, 0
    keep = torch.ones(len(images), dtype=torch.bool)
    keep[worst] = False
    return images[keep], labels[keep], len(worst)
