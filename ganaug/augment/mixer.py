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
from collections.abc import Mapping, Sequence
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
from ganaug._seeding import WorkerStream, worker_stream_seed
from ganaug.augment.batch import (
    check_params,
    check_target_matrix,
    check_unit_range,
    soft_rows,
    unpack,
)
from ganaug.augment.classes import class_lookup, declared_class_to_idx, lookup, to_class_to_idx
from ganaug.augment.functional import check_has_values, fit_images, label_to_index, normalize
from ganaug.augment.source import GeneratorSource
from ganaug.augment.teacher import Teacher, make_teacher, parse_stats
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

    Class identity: a batch label ``l`` means the class *named* ``l`` in the dataset. Pass the
    dataset's ``class_to_idx=`` (or ``classes=``; :meth:`for_loader` reads them from a loader's
    dataset, e.g. timm's reader) and each label is generated as the generator's class of the
    same name; names the generator lacks are refused, listing both sides. Without them, labels
    are taken as the generator's class indices (right only for a dataset with the generator's
    classes in the generator's order, e.g. the one it was trained on).

    Labels: integer targets ``(B,)`` keep their label; soft targets ``(B, K)`` (one-hot,
    smoothed, or mixed by timm's ``Mixup``) draw the row's argmax class, and the replaced row
    keeps its total mass and its smoothing floor (``min`` of the row) with the rest of the mass
    on the drawn class: a one-hot row stays one-hot, a smoothed row stays smoothed. With
    ``balance`` the replaced samples get labels drawn from the balance weights instead.

    Randomness: drawn from a stream seeded once per process and DataLoader worker from
    ``seed`` and the worker's seed (:func:`ganaug._seeding.worker_stream_seed`), so workers of
    a collate-time mixer draw different positions and noise, reproducibly under a seeded
    DataLoader (``generator=torch.Generator().manual_seed(s)``).

    Calling conventions: ``mixer(x, y)`` and ``mixer((x, y))`` return a tuple (a list for a
    list), ``mixer({"image": x, "label": y, ...})`` a dict with the same keys, so it fits in
    ``v2.Compose``/``v2.RandomChoice`` next to ``v2.CutMix``; ``collate_fn=mixer.collate``
    collates and mixes.

    Args:
        generator: a :class:`ganaug.Generator` or a model file path.
        fraction: share of each batch to replace, in [0, 1].
        balance: ``None`` (same labels as replaced), ``"uniform"`` (labels drawn uniformly
            among the dataset's classes), or ``{class name or label: weight}``.
        device: where the generator runs (default: the batch's device). A generator on
            another device is copied there; a file is loaded there.
        mean, std: per-channel Normalize statistics of a float batch; synthetic images are
            normalised the same way. Values on the 0-255 scale (any value > 1, as timm's
            ``PrefetchLoader.mean``/``.std`` hold them) are divided by 255. Without them a
            float batch must be in [0, 1]: one outside [-0.1, 1.1] is refused.
        num_classes: K of soft targets (default: the number of labels).
        seed: seeds positions, labels and noise (default: torch's global RNG, or the worker's).
        enabled: switch, like timm's ``mixup_enabled``.
        truncation: in (0, 1], see :meth:`ganaug.Generator.noise`.
        class_to_idx, classes: the dataset's ``{name: label}`` (or names by label).
        teacher, temperature, teacher_weight, teacher_input, teacher_mean, teacher_std,
            min_confidence, drop_top: a classifier over the labels' classes that relabels
            and filters the generated samples (:class:`ganaug.augment.Teacher`; a normalised
            teacher defaults to the batch's mean/std). Generated rows then get soft targets,
            int targets become float one-hot ``(B, K)`` for the whole batch, and positions
            whose candidate the teacher rejects keep their real sample.
        ``last_synthetic_mask``: ``(B,)`` bool on the batch's device, True at the replaced rows
        of the last call, for :func:`ganaug.augment.weighted_loss`.

    Value conventions: uint8 batches ``(B, C, H, W)`` in [0, 255] stay uint8; float batches
    (any float dtype) in [0, 1], or normalised with ``mean``/``std``, keep their dtype.
    """

    def __init__(self, generator: Generator | str | os.PathLike | GeneratorSource,
                 fraction: float = 0.25, *, balance: str | Mapping | None = None,
                 device: str | torch.device | None = None, mean=None, std=None,
                 num_classes: int | None = None, seed: int | None = None,
                 enabled: bool = True, truncation: float = 1.0,
                 class_to_idx: Mapping[str, int] | None = None,
                 classes: Sequence[str] | None = None, teacher: Any = None,
                 temperature: float = 1.0, teacher_weight: float = 1.0,
                 teacher_input: str | None = None, teacher_mean=None, teacher_std=None,
                 min_confidence: float | None = None, drop_top: float = 0.0) -> None:
        self.device = check_device(device)
        # a model file pickles as its path (collate_fn in spawn workers), loaded here once
        self.source = GeneratorSource(generator, device=self.device)
        self.source.generator  # noqa: B018 - a bad file fails now, not in a worker
        self.fraction = check_probability("fraction", fraction)
        self.mean, self.std = parse_stats(mean, std)
        self.class_to_idx = to_class_to_idx(class_to_idx=class_to_idx, classes=classes)
        self._lut = class_lookup(self.generator.classes, self.class_to_idx, what="class_to_idx")
        n_labels = self.generator.num_classes if self._lut is None else len(self._lut)
        self.num_classes = n_labels if num_classes is None else check_int("num_classes", num_classes)
        if self.num_classes < n_labels:
            raise GanaugConfigError(
                f"num_classes={self.num_classes} is smaller than "
                + ("the generator's" if self._lut is None else "class_to_idx's")
                + f" {n_labels} classes; pass the classifier's class count.")
        self.weights = self._balance_weights(balance)
        self.balance = balance
        self.truncation = check_truncation(truncation)
        self.enabled = check_bool("enabled", enabled)
        self.seed = check_seed("seed", seed, allow_none=True)
        self._stream, self._rng = WorkerStream(), None
        self.last_indices = _EMPTY
        self.last_labels = _EMPTY
        self.last_synthetic_mask = torch.zeros(0, dtype=torch.bool)
        self.teacher: Teacher | None = make_teacher(
            teacher, num_classes=self.num_classes, temperature=temperature,
            weight=teacher_weight, input=teacher_input, mean=teacher_mean, std=teacher_std,
            min_confidence=min_confidence, drop_top=drop_top, default_stats=(self.mean, self.std))

    @classmethod
    def for_loader(cls, generator: Generator | str | os.PathLike | GeneratorSource, loader: Any,
                   fraction: float = 0.25, **kwargs: Any) -> BatchMixer:
        """A mixer for the batches of ``loader``: its Normalize statistics and class names.

        Reads ``loader.mean``/``loader.std`` when present (timm's ``create_loader(...,
        use_prefetcher=True)`` returns a ``PrefetchLoader`` that normalises on the device with
        them, on the 0-255 scale) and the class names of ``loader.dataset`` (``class_to_idx``,
        timm's ``reader.class_to_idx``, or ``classes``). Keyword arguments override both.
        """
        stats = (getattr(loader, "mean", None), getattr(loader, "std", None))
        if "mean" not in kwargs and "std" not in kwargs and None not in stats:
            kwargs["mean"], kwargs["std"] = stats
        if "class_to_idx" not in kwargs and "classes" not in kwargs:
            kwargs["class_to_idx"] = declared_class_to_idx(getattr(loader, "dataset", None))
        return cls(generator, fraction, **kwargs)

    @property
    def generator(self) -> Generator:
        """The generator; from a model file, loaded on first use in each process."""
        return self.source.generator

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_rng"] = None  # reseeded in the new process
        return state

    # -- labels -----------------------------------------------------------------------------
    def _label_names(self) -> list[str]:
        """Name of each label (``""`` for a label class_to_idx leaves unused)."""
        if self.class_to_idx is None:
            return list(self.generator.classes)
        names = [""] * len(self._lut)
        for name, label in self.class_to_idx.items():
            names[label] = name
        return names

    def _balance_weights(self, balance) -> torch.Tensor | None:
        if balance is None:
            return None
        names = self._label_names()
        if isinstance(balance, str):
            if balance != "uniform":
                raise GanaugConfigError(
                    f"Unknown balance '{balance}'. Use None, 'uniform' or a {{class: weight}} dict.")
            return torch.tensor([1.0 if n else 0.0 for n in names], dtype=torch.float64)
        if isinstance(balance, Mapping):
            weights = torch.zeros(len(names), dtype=torch.float64)
            for key, w in balance.items():
                label = label_to_index(key, names, what="balance")
                if not names[label]:
                    raise GanaugConfigError(f"balance names label {label}, which class_to_idx "
                                            f"does not use; its labels: {self.class_to_idx}.")
                weights[label] = check_float(f"balance weight of class {key!r}", w, minimum=0.0)
            if weights.sum() <= 0:
                raise GanaugConfigError("balance weights sum to 0; give at least one class weight > 0.")
            return weights
        raise GanaugConfigError(
            f"balance must be None, 'uniform' or a {{class: weight}} dict, got {type(balance).__name__}.")

    def _to_generator(self, labels: torch.Tensor, *, soft: bool = False) -> torch.Tensor:
        """Batch labels -> the generator's class indices of the same names."""
        if self._lut is not None:
            return lookup(self._lut, labels, what="the batch")
        n = self.generator.num_classes
        if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= n):
            if soft:
                raise GanaugDataError(
                    f"A soft target's top class is {int(labels.max())} but the generator has "
                    f"{n} classes; it cannot draw that class. Use balance= to draw only the "
                    "generator's classes, or pass class_to_idx= naming each label's class.")
            raise GanaugDataError(
                f"Targets must be in 0..{n - 1} (the generator's classes), got "
                f"{int(labels.min())}..{int(labels.max())}. Pass class_to_idx= / classes= "
                "(the dataset's), or use a generator trained on these classes.")
        return labels

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
            return pack(x, self._uniform(y))
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
                self._to_generator(labels, soft=True)
        seed = int(torch.randint(0, 2**62, (), generator=rng).item())
        return {"idx": idx, "classes": labels, "seed": seed}

    def _apply(self, x: torch.Tensor, y: torch.Tensor, params: Mapping[str, Any],
               soft: bool) -> tuple[torch.Tensor, torch.Tensor]:
        idx, labels = check_params(params, x.shape[0])
        if len(idx) == 0:
            self._record(x, _EMPTY, _EMPTY)
            return x, self._uniform(y)
        gen_labels = self._to_generator(labels, soft=soft)
        if self.teacher is None:
            fake, targets = self.generate(gen_labels, like=x, seed=params["seed"]), None
        else:
            raw = self._generate_raw(gen_labels, like=x, seed=params["seed"])
            targets, keep = self.teacher(raw, labels)
            keep = keep.cpu()
            idx, labels, targets = idx[keep], labels[keep], targets[keep.to(targets.device)]
            fake = self._finish(raw[keep.to(raw.device)], like=x)
        x_out, y_out = x.clone(), self._uniform(y).clone()
        x_out[idx.to(x.device)] = fake
        rows = idx.to(y.device)
        if targets is not None:
            y_out[rows] = targets.to(y.device, y_out.dtype)
        elif soft:
            y_out[rows] = soft_rows(y[rows], labels.to(y.device))
        else:
            y_out[rows] = labels.to(y.device, y.dtype)
        self._record(x, idx, labels)
        return x_out, y_out

    def _uniform(self, y: torch.Tensor) -> torch.Tensor:
        """With a teacher, int targets become float one-hot rows so the batch is uniform."""
        if self.teacher is None or y.ndim == 2:
            return y
        return torch.nn.functional.one_hot(y.long(), self.num_classes).float()

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
