"""Replace a fraction of a training batch by generated samples, on the batch's device.

:class:`BatchMixer` works like timm's ``Mixup`` (https://arxiv.org/abs/1710.09412), but with
generated samples (GAN augmentation: https://arxiv.org/abs/1711.04340): ``x, y = mixer(x, y)``
in the training loop. :meth:`BatchMixer.make_params` draws which positions, which classes and
which noise seed; :meth:`BatchMixer.apply` replaces them deterministically.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import Any

import torch

from ganaug._checks import check_float, check_int, check_probability, check_seed, check_truncation
from ganaug.augment.functional import fit_images, label_to_index, normalize
from ganaug.augment.source import GeneratorSource
from ganaug.errors import GanaugConfigError, GanaugDataError
from ganaug.generator import Generator

__all__ = ["BatchMixer"]

_EMPTY = torch.empty(0, dtype=torch.int64)


class BatchMixer:
    """Replace a random fraction of a training batch by generated samples, on its device.

    ``x, y = mixer(x, y)`` in the training loop, before timm's ``Mixup``. Exactly
    ``floor(fraction * B + 0.5)`` samples (round half up) at random positions are replaced,
    generated in ONE forward pass on the batch's device. Labels: integer targets ``(B,)``
    keep their class; soft targets ``(B, K)`` use the row's argmax as the class and the
    replaced row becomes the one-hot of that class. With ``balance`` the replaced samples get
    classes drawn from the balance weights instead, and their labels are changed to match.
    Returns new tensors (the input is never modified); ``last_indices`` holds the replaced
    positions ``(k,)`` int64 of the last call and ``last_labels`` their classes.

    ``mixer(x, y)`` is ``mixer.apply(x, y, mixer.make_params(x, y))``: the draw and the
    replacement can be called apart, e.g. to replay one draw on two batches.

    Args:
        generator: a :class:`ganaug.Generator` or a model file path.
        fraction: share of each batch to replace, in [0, 1].
        balance: ``None`` (same classes as replaced), ``"uniform"`` (classes drawn uniformly),
            or ``{class name or index: weight}`` (classes drawn in proportion to the weights).
        device: where the generator runs (default: the batch's device). A generator on
            another device is copied there; a file is loaded there.
        mean, std: per-channel Normalize statistics of a float batch; synthetic images are
            normalised the same way. Without them float batches are taken as [0, 1].
        num_classes: K of soft targets (default: the generator's class count).
        seed: seeds the choice of positions, classes and noise (default: torch's global RNG).
        enabled: switch, like timm's ``mixup_enabled``.
        truncation: in (0, 1], see :meth:`ganaug.Generator.noise`.

    Value conventions: uint8 batches ``(B, C, H, W)`` in [0, 255] stay uint8; float batches
    (any float dtype) in [0, 1], or normalised with ``mean``/``std``, keep their dtype.
    """

    def __init__(self, generator: Generator | str | os.PathLike | GeneratorSource,
                 fraction: float = 0.25, *, balance: str | Mapping | None = None,
                 device: str | torch.device | None = None, mean=None, std=None,
                 num_classes: int | None = None, seed: int | None = None,
                 enabled: bool = True, truncation: float = 1.0) -> None:
        self.generator = GeneratorSource(generator, device=device).generator
        self.fraction = check_probability("fraction", fraction)
        self.device = torch.device(device) if device is not None else None
        if (mean is None) != (std is None):
            raise GanaugConfigError("Pass both mean= and std= (the pipeline's Normalize), or neither.")
        self.mean = None if mean is None else torch.as_tensor(mean, dtype=torch.float32).reshape(-1)
        self.std = None if std is None else torch.as_tensor(std, dtype=torch.float32).reshape(-1)
        if self.std is not None and bool((self.std <= 0).any()):
            raise GanaugConfigError(f"std must be > 0, got {self.std.tolist()}.")
        n_gen = self.generator.num_classes
        self.num_classes = n_gen if num_classes is None else check_int("num_classes", num_classes)
        if self.num_classes < n_gen:
            raise GanaugConfigError(
                f"num_classes={self.num_classes} is smaller than the generator's "
                f"{n_gen} classes; pass the classifier's class count.")
        self.weights = self._balance_weights(balance)
        self.balance = balance
        self.truncation = check_truncation(truncation)
        self.enabled = bool(enabled)
        seed = check_seed("seed", seed, allow_none=True)
        self._rng = torch.Generator()
        self._rng.manual_seed(seed if seed is not None else int(torch.randint(0, 2**62, ()).item()))
        self.last_indices = _EMPTY
        self.last_labels = _EMPTY

    def _balance_weights(self, balance) -> torch.Tensor | None:
        if balance is None:
            return None
        n = self.generator.num_classes
        if isinstance(balance, str):
            if balance != "uniform":
                raise GanaugConfigError(
                    f"Unknown balance '{balance}'. Use None, 'uniform' or a {{class: weight}} dict.")
            return torch.ones(n, dtype=torch.float64)
        if isinstance(balance, Mapping):
            weights = torch.zeros(n, dtype=torch.float64)
            for key, w in balance.items():
                weights[label_to_index(key, self.generator.classes, what="balance")] = check_float(
                    f"balance weight of class {key!r}", w, minimum=0.0)
            if weights.sum() <= 0:
                raise GanaugConfigError("balance weights sum to 0; give at least one class weight > 0.")
            return weights
        raise GanaugConfigError(
            f"balance must be None, 'uniform' or a {{class: weight}} dict, got {type(balance).__name__}.")

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(x', y')``: copies of the batch with some samples replaced.

        Args:
            x: ``(B, C, H, W)`` uint8 in [0, 255], or float in [0, 1] (or normalised).
            y: ``(B,)`` int64 class indices or ``(B, K)`` float soft targets.
        """
        soft = self._check(x, y)
        if not self.enabled:
            self.last_indices, self.last_labels = _EMPTY, _EMPTY
            return x, y
        return self._apply(x, y, self._draw(x, y, soft), soft)

    def make_params(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, Any]:
        """Draw the replacement of one batch: ``{"idx", "classes", "seed"}``.

        ``idx``: the ``(k,)`` int64 CPU positions to replace, sorted; ``classes``: their
        ``(k,)`` int64 CPU classes; ``seed``: the noise seed of the generated images (None when
        ``k == 0``). Uses the mixer's own random stream (``seed=`` of the constructor).
        """
        return self._draw(x, y, self._check(x, y))

    def apply(self, x: torch.Tensor, y: torch.Tensor,
              params: Mapping[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """Replace ``x[idx]`` by generated images of ``classes`` and their labels, deterministically.

        The same ``params`` on the same batch give the same result; ``enabled`` is not
        consulted. Returns the inputs themselves when ``idx`` is empty.
        """
        return self._apply(x, y, params, self._check(x, y))

    def _draw(self, x: torch.Tensor, y: torch.Tensor, soft: bool) -> dict[str, Any]:
        batch = x.shape[0]
        k = math.floor(self.fraction * batch + 0.5)
        if k == 0:
            return {"idx": _EMPTY, "classes": _EMPTY, "seed": None}
        idx = torch.randperm(batch, generator=self._rng)[:k].sort().values
        if self.weights is not None:
            cls = torch.multinomial(self.weights, k, replacement=True, generator=self._rng)
        else:
            cls = (y[idx.to(y.device)].argmax(1) if soft else y[idx.to(y.device)]).long().cpu()
            if soft and int(cls.max()) >= self.generator.num_classes:
                raise GanaugDataError(
                    f"A soft target's top class is {int(cls.max())} but the generator has "
                    f"{self.generator.num_classes} classes; it cannot draw that class. Use "
                    "balance= to draw only the generator's classes.")
        seed = int(torch.randint(0, 2**62, (), generator=self._rng).item())
        return {"idx": idx, "classes": cls, "seed": seed}

    def _apply(self, x: torch.Tensor, y: torch.Tensor, params: Mapping[str, Any],
               soft: bool) -> tuple[torch.Tensor, torch.Tensor]:
        idx, cls = params["idx"].long().cpu(), params["classes"].long().cpu()
        if len(idx) != len(cls):
            raise GanaugConfigError(
                f"params hold {len(idx)} positions but {len(cls)} classes; pass what "
                "make_params returned.")
        if len(idx) == 0:
            self.last_indices, self.last_labels = _EMPTY, _EMPTY
            return x, y
        fake = self.generate(cls, like=x, seed=params["seed"])
        x_out, y_out = x.clone(), y.clone()
        x_out[idx.to(x.device)] = fake
        if soft:
            y_out[idx.to(y.device)] = torch.nn.functional.one_hot(
                cls.to(y.device), y.shape[1]).to(y.dtype)
        else:
            y_out[idx.to(y.device)] = cls.to(y.device, y.dtype)
        self.last_indices, self.last_labels = idx, cls
        return x_out, y_out

    def generate(self, labels: torch.Tensor, *, like: torch.Tensor, seed: int) -> torch.Tensor:
        """Generate ``labels`` in one pass and convert them to the convention of batch ``like``."""
        device = self.device or like.device
        out = "uint8" if like.dtype == torch.uint8 else "float"
        fake = self.generator.sample(labels, seed=seed, truncation=self.truncation, output=out,
                                     batch_size=max(1, len(labels)), device=device)
        fake = fit_images(fake.to(like.device), like.shape[1], like.shape[-2:])
        if out == "float":
            if self.mean is not None:
                fake = normalize(fake, self.mean, self.std)
            fake = fake.to(like.dtype)
        return fake

    def _check(self, x: torch.Tensor, y: torch.Tensor) -> bool:
        if not isinstance(x, torch.Tensor) or x.ndim != 4:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise GanaugDataError(f"BatchMixer expects a batch (B, C, H, W), got {shape}. "
                                  "For single samples use ganaug.GANAugment.")
        if x.shape[1] not in (1, 3):
            raise GanaugDataError(f"BatchMixer handles 1 or 3 channels, got {x.shape[1]}.")
        if not (x.dtype == torch.uint8 or x.is_floating_point()):
            raise GanaugDataError(f"BatchMixer expects uint8 or float images, got {x.dtype}.")
        if self.mean is not None and x.dtype == torch.uint8:
            raise GanaugConfigError("mean/std were given but the batch is uint8; Normalize "
                                    "makes float batches. Drop mean/std or mix after Normalize.")
        if self.mean is not None and len(self.mean) not in (1, x.shape[1]):
            raise GanaugConfigError(f"mean has {len(self.mean)} values for {x.shape[1]} channels.")
        if not isinstance(y, torch.Tensor) or y.shape[:1] != x.shape[:1] or y.ndim not in (1, 2):
            got = tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
            raise GanaugDataError(
                f"BatchMixer expects targets (B,) class indices or (B, K) soft targets with "
                f"B={x.shape[0]}, got {got}.")
        if y.ndim == 2:
            if y.shape[1] != self.num_classes:
                raise GanaugDataError(
                    f"Soft targets have {y.shape[1]} columns but num_classes={self.num_classes}; "
                    "pass num_classes= to BatchMixer.")
            return True
        if y.is_floating_point():
            raise GanaugDataError(f"Class-index targets must be integers, got {y.dtype}.")
        if y.numel() and (int(y.min()) < 0 or int(y.max()) >= self.generator.num_classes):
            raise GanaugDataError(
                f"Targets must be in 0..{self.generator.num_classes - 1} (the generator's "
                f"classes), got {int(y.min())}..{int(y.max())}. Use a generator trained on "
                "these classes.")
        return False
