"""Replace a fraction of a training batch by generated samples, on the batch's device.

:class:`BatchMixer` works like timm's ``Mixup`` (https://arxiv.org/abs/1710.09412), but with
generated samples (GAN augmentation: https://arxiv.org/abs/1711.04340): ``x, y = mixer(x, y)``
in the training loop, a ``torchvision.transforms.v2`` batch transform, or a DataLoader
``collate_fn``. :meth:`BatchMixer.make_params` draws which positions, which labels and which
noise seed; :meth:`BatchMixer.apply` replaces them deterministically.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import Any

import torch

from ganaug._checks import (
    check_bool,
    check_float,
    check_int,
    check_probability,
    check_seed,
    check_truncation,
)
from ganaug._devices import check_device
from ganaug._imaging import unnormalize
from ganaug._seeding import WorkerStream, worker_stream_seed
from ganaug.augment.batch import (
    check_params,
    check_target_matrix,
    check_unit_range,
    soft_rows,
    unpack,
)
from ganaug.augment.classes import ClassMap, declared_class_to_idx
from ganaug.augment.functional import check_has_values, fit_images, label_to_index, normalize
from ganaug.augment.source import GeneratorSource
from ganaug.augment.teacher import CHECK_ROWS, Teacher, check_teacher, parse_stats
from ganaug.errors import GanaugConfigError, GanaugDataError
from ganaug.generator import Generator

__all__ = ["BatchMixer"]

_EMPTY = torch.empty(0, dtype=torch.int64)


class BatchMixer:
    """Replace a random fraction of a training batch by generated samples, on its device.

    ``x, y = mixer(x, y)`` in the training loop, before timm's ``Mixup``. Exactly
    ``floor(fraction * B + 0.5)`` samples (round half up) at random positions are replaced,
    generated in ONE forward pass on the batch's device. Returns new tensors (the input is never
    modified); ``last_indices`` holds the replaced positions ``(k,)`` int64 of the last call and
    ``last_labels`` their labels.

    Class identity: a batch label ``l`` means the class *named* ``l`` in the dataset, given by
    ``classes=`` (``dataset.classes``, ``dataset.class_to_idx``, or ``"generator"`` when the
    labels are the generator's own class indices; :meth:`for_loader` reads them from a
    loader's dataset, e.g. timm's reader). Each label is generated as the generator's class of
    the same name; names the generator lacks are refused, listing both sides. Without
    ``classes`` the mixer is refused: labels are never mapped by index silently.

    Labels: integer targets ``(B,)`` keep their label; soft targets ``(B, K)`` (one-hot,
    smoothed, or mixed by timm's ``Mixup``) draw the row's argmax class, and the replaced row
    keeps its total mass and its smoothing floor (``min`` of the row) with the rest of the mass
    on the drawn class. With ``label_weights`` the replaced samples get labels drawn from those
    weights instead. The output targets have the input's form, so timm's ``Mixup`` or
    torchvision's ``MixUp``/``CutMix`` compose before or after the mixer.

    Teacher: with ``teacher=`` (a :class:`ganaug.Teacher`) each generated candidate it
    rejects (its ``drop_hardest`` share of the candidates, ``min_confidence``) leaves the real
    sample in place; the labels stay the intended ones (for the teacher's soft targets on
    every row, use :class:`ganaug.Distiller` on the mixed batch). The teacher is first checked
    on the real rows of the first batches (``CHECK_ROWS`` of them): one whose top class is
    not clearly above chance on real labels is refused. :attr:`teacher_report` holds its
    agreement with real labels, and per class its agreement with the intended class of the
    candidates and their acceptance.

    Randomness: drawn from a stream seeded once per process and DataLoader worker from
    ``seed`` and the worker's seed, so workers of a collate-time mixer draw different
    positions and noise, reproducibly under a seeded DataLoader.

    Calling conventions: ``mixer(x, y)`` and ``mixer((x, y))`` return a tuple (a list for a
    list), ``mixer({"image": x, "label": y, ...})`` a dict with the same keys, so it fits in
    ``v2.Compose``/``v2.RandomChoice`` next to ``v2.CutMix``; ``collate_fn=mixer.collate``
    collates and mixes.

    Args:
        generator: a :class:`ganaug.Generator` or a model file path.
        fraction: share of each batch to replace, in [0, 1].
        classes: the dataset's classes (names in label order, ``{name: label}``, or
            ``"generator"``). Required (or use :meth:`for_loader`).
        label_weights: ``None`` (replaced rows keep their class), ``"uniform"`` (labels drawn
            uniformly among the dataset's classes), or ``{class name: weight}``.
        teacher: a :class:`ganaug.Teacher` over the labels' classes that filters candidates.
        mean, std: per-channel Normalize statistics of a float batch; synthetic images are
            normalised the same way. Values on the 0-255 scale (any value > 1, as timm's
            ``PrefetchLoader.mean``/``.std`` hold them) are divided by 255. Without them a
            float batch must be in [0, 1]: one outside [-0.1, 1.1] is refused.
        num_classes: K of soft targets (default: the number of labels).
        seed: seeds positions, labels and noise (default: torch's global RNG, or the worker's).
        device: where the generator runs (default: the batch's device). A generator on
            another device is copied there; a file is loaded there.

    Attributes (settable): ``enabled`` (a switch, like timm's ``mixup_enabled``) and
    ``truncation`` (in (0, 1], see :meth:`ganaug.Generator.noise`). After each call:
    ``last_indices`` (the replaced positions), ``last_labels`` (their labels) and
    ``last_synthetic_mask`` (``(B,)`` bool on the batch's device, for
    :func:`ganaug.weighted_loss` and :class:`ganaug.Distiller`).

    Value conventions: uint8 batches ``(B, C, H, W)`` in [0, 255] stay uint8; float batches
    (any float dtype) in [0, 1], or normalised with ``mean``/``std``, keep their dtype.
    """

    def __init__(self, generator: Generator | str | os.PathLike | GeneratorSource,
                 fraction: float = 0.25, *, classes: Any = None, label_weights: Any = None,
                 teacher: Teacher | None = None, mean=None, std=None,
                 num_classes: int | None = None, seed: int | None = None,
                 device: str | torch.device | None = None) -> None:
        """Build the mixer; the arguments are described in :class:`BatchMixer`."""
        self.device = check_device(device)
        # a model file pickles as its path (collate_fn in spawn workers), loaded here once
        self.source = GeneratorSource(generator, device=self.device)
        self.source.generator  # noqa: B018 - a bad file fails now, not in a worker
        self.fraction = check_probability("fraction", fraction)
        self.mean, self.std = parse_stats(mean, std)
        self.class_map = ClassMap(self.source.classes, classes, where="BatchMixer")
        self.class_map.require()
        n_labels = self.class_map.num_labels
        self.num_classes = n_labels if num_classes is None else check_int("num_classes",
                                                                            num_classes)
        if self.num_classes < n_labels:
            raise GanaugConfigError(f"num_classes={self.num_classes} is smaller than the "
                                    f"{n_labels} labels of classes=; pass the classifier's "
                                    "class count.")
        self.label_weights = label_weights
        self.weights = self._label_weights(label_weights)
        self._truncation = 1.0
        self.enabled = True
        self.seed = check_seed("seed", seed, allow_none=True)
        self._stream, self._rng = WorkerStream(), None
        self.last_indices = _EMPTY
        self.last_labels = _EMPTY
        self.last_synthetic_mask = torch.zeros(0, dtype=torch.bool)
        self.teacher = check_teacher(teacher, self.num_classes, where="BatchMixer")

    @classmethod
    def for_loader(cls, generator: Generator | str | os.PathLike | GeneratorSource, loader: Any,
                   fraction: float = 0.25, **kwargs: Any) -> BatchMixer:
        """A mixer for the batches of ``loader``: its Normalize statistics and class names.

        Reads ``loader.mean``/``loader.std`` when present (timm's ``create_loader(...,
        use_prefetcher=True)`` returns a ``PrefetchLoader`` that normalises on the device with
        them, on the 0-255 scale) and the classes of ``loader.dataset`` (``class_to_idx``,
        timm's ``reader.class_to_idx``, or ``classes``). Keyword arguments override both.
        """
        stats = (getattr(loader, "mean", None), getattr(loader, "std", None))
        if "mean" not in kwargs and "std" not in kwargs and None not in stats:
            kwargs["mean"], kwargs["std"] = stats
        if "classes" not in kwargs:
            kwargs["classes"] = declared_class_to_idx(getattr(loader, "dataset", None))
        return cls(generator, fraction, **kwargs)

    @property
    def generator(self) -> Generator:
        """The generator; from a model file, loaded on first use in each process."""
        return self.source.generator

    @property
    def truncation(self) -> float:
        """Truncation of the generated samples, in (0, 1] (settable)."""
        return self._truncation

    @truncation.setter
    def truncation(self, value: float) -> None:
        self._truncation = check_truncation(value)

    @property
    def enabled(self) -> bool:
        """Whether calls replace anything (settable, like timm's ``mixup_enabled``)."""
        return self._enabled

    @enabled.setter
    def enabled(self, value: bool) -> None:
        self._enabled = check_bool("enabled", value)

    @property
    def teacher_report(self) -> dict[str, Any] | None:
        """The teacher's agreement with real labels, and per class its agreement with the
        intended class of the candidates and their acceptance (None without a teacher)."""
        return None if self.teacher is None else self.teacher.report(self.class_map.label_names)

    def __repr__(self) -> str:
        teacher = "" if self.teacher is None else f", teacher={self.teacher!r}"
        weights = "" if self.label_weights is None else f", label_weights={self.label_weights!r}"
        return (f"BatchMixer({self.source!r}, fraction={self.fraction}, "
                f"classes={self.class_map!r}{weights}{teacher}, seed={self.seed})")

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_rng"] = None  # reseeded in the new process
        return state

    # -- labels -----------------------------------------------------------------------------
    def _label_weights(self, weights) -> torch.Tensor | None:
        if weights is None:
            return None
        names = self.class_map.label_names
        if isinstance(weights, str):
            if weights != "uniform":
                raise GanaugConfigError(f"Unknown label_weights {weights!r}. Use None, 'uniform' "
                                        "or a {class name: weight} dict.")
            return torch.tensor([1.0 if n else 0.0 for n in names], dtype=torch.float64)
        if isinstance(weights, Mapping):
            out = torch.zeros(len(names), dtype=torch.float64)
            for key, w in weights.items():
                if not isinstance(key, str):
                    raise GanaugConfigError(f"label_weights takes class names as keys, got "
                                            f"{key!r}; e.g. {{{names[0]!r}: 2.0}}.")
                label = label_to_index(key, names, what="label_weights")
                out[label] = check_float(f"label_weights[{key!r}]", w, minimum=0.0)
            if out.sum() <= 0:
                raise GanaugConfigError("label_weights sum to 0; give one class a weight > 0.")
            return out
        raise GanaugConfigError(f"label_weights must be None, 'uniform' or a {{class name: "
                                f"weight}} dict, got {type(weights).__name__}.")

    # -- calling ----------------------------------------------------------------------------
    def __call__(self, *inputs: Any) -> Any:
        """Return the batch with some samples replaced, in the structure it came in.

        Args:
            inputs: ``x, y``; or one ``(x, y)`` tuple/list; or one dict holding the images
                (key ``image(s)``/``input(s)``/``img``/``x``, or the only 4-D tensor) and the
                labels (key ``label(s)``/``target(s)``/``y``, or a key containing "label").
                ``x``: ``(B, C, H, W)`` uint8 in [0, 255], or float in [0, 1] (or normalised);
                ``y``: ``(B,)`` int class labels or ``(B, K)`` float soft targets.
        """
        x, y, pack = unpack(inputs)
        soft = self._check(x, y)
        if not self.enabled:
            self._record(x, _EMPTY, _EMPTY)
            return pack(x, y)
        return pack(*self._apply(x, y, self._draw(x, y, soft), soft))

    def collate(self, samples: list) -> Any:
        """``collate_fn=mixer.collate``: ``default_collate(samples)``, then mix the batch."""
        from torch.utils.data import default_collate

        return self(default_collate(samples))

    def collate_with_mask(self, samples: list) -> Any:
        """``collate_fn=mixer.collate_with_mask``: :meth:`collate`, and the batch's synthetic mask.

        In DataLoader workers the mixer mixes each batch in a worker, so the main process's
        ``last_synthetic_mask`` never describes the batch it receives. This returns
        ``(x, y, mask)`` (``[x, y, mask]`` for a list batch) or, for a dict batch, the dict
        with a ``"synthetic_mask"`` entry: the ``(B,)`` bool rows replaced, for
        :func:`ganaug.augment.weighted_loss`.
        """
        from torch.utils.data import default_collate

        batch = default_collate(samples)
        if isinstance(batch, Mapping) and "synthetic_mask" in batch:
            raise GanaugDataError("The batch already has a 'synthetic_mask' key; rename that "
                                  "entry, or use collate_fn=mixer.collate.")
        out = self(batch)
        mask = self.last_synthetic_mask
        if isinstance(out, Mapping):
            return {**out, "synthetic_mask": mask}
        return type(out)((*out, mask)) if isinstance(out, list) else (*out, mask)

    def make_params(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, Any]:
        """Draw the replacement of one batch: ``{"idx", "classes", "seed"}``.

        ``idx``: the ``(k,)`` int64 CPU positions to replace, sorted; ``classes``: their
        ``(k,)`` int64 CPU labels (the batch's label space); ``seed``: the noise seed of the
        generated images (None when ``k == 0``). Uses the mixer's own random stream.
        """
        return self._draw(x, y, self._check(x, y))

    def apply(self, x: torch.Tensor, y: torch.Tensor,
              params: Mapping[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """Replace ``x[idx]`` by generated images of ``classes`` and their labels, deterministically.

        The same ``params`` on the same batch give the same result; ``enabled`` is not
        consulted. Returns the inputs themselves when ``idx`` is empty.
        """
        return self._apply(x, y, params, self._check(x, y))

    def _random(self) -> torch.Generator:
        if self._rng is None or self._stream.due():
            self._rng = torch.Generator().manual_seed(worker_stream_seed(self.seed))
            self._stream.claim()
        return self._rng

    def _draw(self, x: torch.Tensor, y: torch.Tensor, soft: bool) -> dict[str, Any]:
        batch = x.shape[0]
        k = math.floor(self.fraction * batch + 0.5)
        if k == 0:
            return {"idx": _EMPTY, "classes": _EMPTY, "seed": None}
        rng = self._random()
        idx = torch.randperm(batch, generator=rng)[:k].sort().values
        if self.weights is not None:
            labels = torch.multinomial(self.weights, k, replacement=True, generator=rng)
        else:
            labels = (y[idx.to(y.device)].argmax(1) if soft else y[idx.to(y.device)]).long().cpu()
            if soft:
                self._to_generator(labels)
        seed = int(torch.randint(0, 2**62, (), generator=rng).item())
        return {"idx": idx, "classes": labels, "seed": seed}

    def _apply(self, x: torch.Tensor, y: torch.Tensor, params: Mapping[str, Any],
               soft: bool) -> tuple[torch.Tensor, torch.Tensor]:
        idx, labels = check_params(params, x.shape[0])
        if self.teacher is not None:  # on every batch until checked, replaced rows or not
            self._check_teacher(x, y, soft)
        if len(idx) == 0:
            self._record(x, _EMPTY, _EMPTY)
            return x, y
        gen_labels = self._to_generator(labels)
        if self.teacher is None:
            fake = self.generate(gen_labels, like=x, seed=params["seed"])
        else:
            raw = self._generate_raw(gen_labels, like=x, seed=params["seed"])
            keep = self.teacher.keep(self.teacher.logits(raw), labels.to(raw.device)).cpu()
            idx, labels = idx[keep], labels[keep]
            fake = self._finish(raw[keep.to(raw.device)], like=x)
        x_out, y_out = x.clone(), y.clone()
        x_out[idx.to(x.device)] = fake
        rows = idx.to(y.device)
        if soft:
            y_out[rows] = soft_rows(y[rows], labels.to(y.device))
        else:
            y_out[rows] = labels.to(y.device, y.dtype)
        self._record(x, idx, labels)
        return x_out, y_out

    def _check_teacher(self, x: torch.Tensor, y: torch.Tensor, soft: bool) -> None:
        """Measure the teacher on the batch's real rows until it has seen ``CHECK_ROWS``."""
        if self.teacher.real_rows >= CHECK_ROWS:
            return
        real = x if self.mean is None else unnormalize(x, self.mean, self.std)  # [0, 1]
        labels = y.argmax(1) if soft else y
        self.teacher.check(real, labels.long(), min_rows=CHECK_ROWS)

    def _to_generator(self, labels: torch.Tensor) -> torch.Tensor:
        """Batch labels -> the generator's class indices of the same names."""
        return self.class_map.to_generator(labels)

    def _record(self, x: torch.Tensor, idx: torch.Tensor, labels: torch.Tensor) -> None:
        self.last_indices, self.last_labels = idx, labels
        mask = torch.zeros(x.shape[0], dtype=torch.bool)
        mask[idx] = True
        self.last_synthetic_mask = mask.to(x.device)

    def generate(self, labels: torch.Tensor, *, like: torch.Tensor, seed: int) -> torch.Tensor:
        """Generate the generator's classes ``labels`` in one pass, in the convention of ``like``."""
        return self._finish(self._generate_raw(labels, like=like, seed=seed), like=like)

    def _generate_raw(self, labels: torch.Tensor, *, like: torch.Tensor,
                      seed: int) -> torch.Tensor:
        """Generated images at ``like``'s size and channels: uint8, or float32 in [0, 1]."""
        device = self.device or like.device
        out = "uint8" if like.dtype == torch.uint8 else "float"
        fake = self.generator.sample(labels, seed=seed, truncation=self.truncation, output=out,
                                     batch_size=max(1, len(labels)), device=device)
        return fit_images(fake.to(like.device), like.shape[1], like.shape[-2:])

    def _finish(self, fake: torch.Tensor, *, like: torch.Tensor) -> torch.Tensor:
        """Raw generated images -> ``like``'s convention (Normalize-d with mean/std, dtype)."""
        if fake.dtype != torch.uint8:
            if self.mean is not None:
                fake = normalize(fake, self.mean, self.std)
            fake = fake.to(like.dtype)
        return fake

    def _check(self, x: torch.Tensor, y: torch.Tensor) -> bool:
        check_has_values("BatchMixer", x, y)
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
        if self.mean is None and x.is_floating_point():
            check_unit_range(x)
        if not isinstance(y, torch.Tensor) or y.shape[:1] != x.shape[:1] or y.ndim not in (1, 2):
            got = tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
            raise GanaugDataError(
                f"BatchMixer expects targets (B,) class indices or (B, K) soft targets with "
                f"B={x.shape[0]}, got {got}."
                + ("" if isinstance(y, torch.Tensor) else
                   " Pass the labels as a tensor: torch.as_tensor(labels)."))
        if y.ndim == 2:
            check_target_matrix(y, self.num_classes)
            return True
        if y.is_floating_point() or y.dtype == torch.bool or y.is_complex():
            raise GanaugDataError(f"Class-index targets must be integers, got {y.dtype}.")
        self._to_generator(y)
        return False
