"""Drop-in GAN augmentation for torchvision v2 pipelines and training loops.

:class:`SampleBank` keeps per-class buffers of generated images so that per-sample transforms
generate in batches, seeded per DataLoader worker. :class:`GANAugment` is a label-aware
``torchvision.transforms.v2.Transform`` that replaces a sample's image by a synthetic image of
the same class with probability ``p``, keeping the input's type, size and channels.
:class:`BatchMixer` replaces a fraction of a batch in the training loop, on the batch's device,
in one forward pass, like timm's ``Mixup`` (https://arxiv.org/abs/1710.09412) but with
generated samples (GAN augmentation: https://arxiv.org/abs/1711.04340).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import PIL.Image
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from ganaug.errors import GanaugConfigError, GanaugDataError
from ganaug.generator import Generator

__all__ = [
    "BatchMixer",
    "GANAugment",
    "SampleBank",
    "default_labels_getter",
    "loader_throughput",
    "match_image",
]

LABEL_KEYS = ("label", "labels", "target", "targets")


# -- helpers shared with ganaug.albumentations and ganaug.datasets ---------------------------
def resolve_generator(source: Any, *, device: str | torch.device | None = None) -> Generator:
    """A :class:`Generator` from a Generator, a bare registered network or a model file path."""
    if isinstance(source, (str, os.PathLike)):
        from ganaug import io

        return io.load(str(source), device=device)
    if isinstance(source, Generator):
        return source
    if isinstance(source, torch.nn.Module) and all(
            hasattr(source, a) for a in ("num_classes", "channels", "image_size", "z_dim")):
        return Generator(source)
    raise GanaugConfigError(
        f"Expected a ganaug.Generator or a model file path, got {type(source).__name__}. "
        "Load one with ganaug.load('generator.safetensors') or pass the path itself."
    )


def derive_seed(*parts: int) -> int:
    """Mix integers into one well-spread seed in ``[0, 2**63)`` (NumPy ``SeedSequence``)."""
    words = np.random.SeedSequence([int(p) % 2**64 for p in parts]).generate_state(2, np.uint32)
    return (int(words[0]) << 31) ^ int(words[1])


def worker_key() -> tuple[int, int | None, int | None]:
    """Identify the current process: ``(pid, worker id, worker seed)`` (``None`` outside workers)."""
    info = torch.utils.data.get_worker_info()
    if info is None:
        return (os.getpid(), None, None)
    return (os.getpid(), int(info.id), int(info.seed))


def check_probability(name: str, value: float) -> float:
    """Check that ``value`` is a probability in [0, 1]."""
    try:
        ok = 0.0 <= float(value) <= 1.0
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise GanaugConfigError(f"{name} must be a probability in [0, 1], got {value!r}.")
    return float(value)


def check_positive(name: str, value: int) -> int:
    """Check that ``value`` is an int >= 1."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise GanaugConfigError(f"{name} must be an integer >= 1, got {value!r}.")
    return int(value)


def _channels_of_mode(mode: str) -> int:
    return 1 if mode in ("L", "1", "I", "F", "I;16", "LA") else 3


def match_image(fake: torch.Tensor, like: Any) -> Any:
    """Convert a synthetic image to the type, size, channels and value range of ``like``.

    Args:
        fake: ``(C, H, W) uint8`` in [0, 255], C in {1, 3}.
        like: a PIL image (any mode), a ``(C, H, W)`` or ``(H, W)`` tensor (uint8, or float in
            [0, 1]), a ``tv_tensors.Image``, or a NumPy ``(H, W, C)``/``(H, W)`` array.

    Returns:
        ``fake`` as the same type as ``like``: PIL in the same mode, a tensor of the same dtype
        and device (float in [0, 1]), a ``tv_tensors.Image``, or an array of the same dtype.

    Raises:
        GanaugDataError: ``like`` is not a single image with 1 or 3 channels.
    """
    if isinstance(like, PIL.Image.Image):
        out = _fit(fake, _channels_of_mode(like.mode), like.height, like.width)
        img = F.to_pil_image(out)
        return img if img.mode == like.mode else img.convert(like.mode)
    if isinstance(like, np.ndarray):
        chw = like.ndim == 3
        if like.ndim not in (2, 3) or (chw and like.shape[2] not in (1, 3)):
            raise _not_an_image(like.shape, "NumPy (H, W, C) array")
        out = _fit(fake, like.shape[2] if chw else 1, like.shape[0], like.shape[1])
        arr = out.permute(1, 2, 0).numpy() if chw else out[0].numpy()
        if like.dtype == np.uint8:
            return np.ascontiguousarray(arr)
        return (arr.astype(np.float32) / 255.0).astype(like.dtype)
    if isinstance(like, torch.Tensor):
        if like.ndim not in (2, 3) or (like.ndim == 3 and like.shape[0] not in (1, 3)):
            raise _not_an_image(tuple(like.shape), "tensor (C, H, W)")
        channels = like.shape[0] if like.ndim == 3 else 1
        out = _fit(fake, channels, like.shape[-2], like.shape[-1])
        out = F.to_dtype(out, like.dtype, scale=True) if like.dtype != torch.uint8 else out
        out = out.to(like.device)
        if like.ndim == 2:
            out = out[0]
        return tv_tensors.wrap(out, like=like) if isinstance(like, tv_tensors.Image) else out
    raise GanaugDataError(
        f"Cannot replace an image of type {type(like).__name__}. Accepted: PIL images, "
        "tensors (C, H, W), tv_tensors.Image and NumPy (H, W, C) arrays."
    )


def _not_an_image(shape, kind: str) -> GanaugDataError:
    return GanaugDataError(
        f"Expected one image as a {kind} with 1 or 3 channels, got shape {shape}. Per-sample "
        "transforms take one image; for batches use ganaug.BatchMixer."
    )


def _fit(fake: torch.Tensor, channels: int, height: int, width: int) -> torch.Tensor:
    """Convert ``(C, H, W) uint8`` to ``channels`` (1 <-> 3) and resize to ``height x width``."""
    if fake.shape[0] != channels:
        if channels == 1:
            fake = F.rgb_to_grayscale(fake, num_output_channels=1)
        elif channels == 3:
            fake = fake.expand(3, -1, -1).contiguous()
        else:
            raise GanaugDataError(
                f"Cannot make a {channels}-channel image from a {fake.shape[0]}-channel generator; "
                "1 and 3 channels are supported. Convert the images to RGB or L first."
            )
    if tuple(fake.shape[-2:]) != (height, width):
        fake = F.resize(fake, [int(height), int(width)], antialias=True)
    return fake


# -- SampleBank ------------------------------------------------------------------------------
class SampleBank:
    """Per-class buffers of generated images, refilled in batches, seeded per process.

    ``draw(label)`` pops the next image of that class; an empty buffer is refilled by ONE
    ``Generator.sample`` call of ``bank_size`` images. The random stream is set up lazily on
    first use in each process: from ``(seed, DataLoader worker seed)`` in a worker (so workers
    differ and ``DataLoader(generator=torch.Generator().manual_seed(s))`` reproduces an
    epoch), from ``seed`` in the main process (or torch's global RNG when ``seed`` is None).

    Args:
        generator_or_path: a :class:`ganaug.Generator` or a model file path. A path is loaded
            lazily in each process and only the path is pickled (spawn-safe).
        bank_size: images generated per refill and class.
        seed: base seed; ``None`` uses the worker seed (or torch's global RNG).
        truncation: see :meth:`ganaug.Generator.noise`.
        device: where refills run. Keep ``"cpu"`` inside DataLoader workers (CUDA cannot be
            used in forked workers); use :class:`BatchMixer` for the GPU.
        reuse: how many times each generated image is served (in a shuffled order) before
            the next refill. 1 (default) gives every draw a fresh image; 4 cuts the generator
            cost per draw by 4 at the price of fewer distinct images.
    """

    def __init__(self, generator_or_path: Generator | str | os.PathLike, *, bank_size: int = 64,
                 seed: int | None = None, truncation: float = 1.0,
                 device: str | torch.device = "cpu", reuse: int = 1) -> None:
        self.bank_size = check_positive("bank_size", bank_size)
        self.reuse = check_positive("reuse", reuse)
        if not float(truncation) > 0:
            raise GanaugConfigError(f"truncation must be > 0, got {truncation}.")
        self.seed, self.truncation, self.device = seed, float(truncation), torch.device(device)
        self.path: str | None = None
        self._generator: Generator | None = None
        if isinstance(generator_or_path, (str, os.PathLike)):
            from ganaug import io

            self.path = str(generator_or_path)
            io.read_metadata(self.path)  # fail now on a bad file; reads the header only
        else:
            gen = resolve_generator(generator_or_path)
            if gen.device != self.device:
                # Keep the caller's model where it is; workers get a copy on the bank's device.
                import copy

                gen = copy.deepcopy(gen).to(self.device)
            self._generator = gen
        self._owner: tuple | None = None
        self.reseed_count = 0

    @property
    def generator(self) -> Generator:
        """The generator, loaded on first use in this process when the bank holds a path."""
        if self._generator is None:
            self._generator = resolve_generator(self.path, device=self.device)
        return self._generator

    @property
    def classes(self) -> list[str]:
        return list(self.generator.classes)

    def reseed(self, seed: int) -> None:
        """Restart this process's stream from ``seed`` and empty the buffers."""
        self._owner = worker_key()
        self._stream = int(seed)
        self._buffers: dict[int, torch.Tensor] = {}
        self._pos: dict[int, int] = {}
        self._order: dict[int, torch.Tensor] = {}
        self._refills: dict[int, int] = {}
        self.reseed_count += 1

    def _ensure_stream(self) -> None:
        key = worker_key()
        if self._owner == key:
            return
        worker_seed = key[2]
        if worker_seed is not None:
            stream = worker_seed if self.seed is None else derive_seed(self.seed, worker_seed)
        elif self.seed is not None:
            stream = derive_seed(self.seed)
        else:
            stream = int(torch.randint(0, 2**62, ()).item())
        self.reseed(stream)

    def draw(self, label: int | str) -> torch.Tensor:
        """The next synthetic image of class ``label`` as ``(C, H, W) uint8`` on the CPU."""
        self._ensure_stream()
        cls = self.generator.class_index(label)
        pos = self._pos.get(cls, self.bank_size * self.reuse)
        if pos >= self.bank_size * self.reuse:
            self._refill(cls)
            pos = 0
        self._pos[cls] = pos + 1
        return self._buffers[cls][int(self._order[cls][pos])].clone()

    def _refill(self, cls: int) -> None:
        count = self._refills.get(cls, 0)
        self._refills[cls] = count + 1
        images = self.generator.sample(
            [cls] * self.bank_size, seed=derive_seed(self._stream, cls, count),
            truncation=self.truncation, batch_size=self.bank_size, device=self.device)
        self._buffers[cls] = images.cpu()
        if self.reuse == 1:
            self._order[cls] = torch.arange(self.bank_size)
        else:
            rng = torch.Generator().manual_seed(derive_seed(self._stream, cls, count, 1))
            self._order[cls] = torch.cat([torch.randperm(self.bank_size, generator=rng)
                                          for _ in range(self.reuse)])

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        if self.path is not None:
            state["_generator"] = None  # workers load the file themselves
        return state


# -- torchvision v2 --------------------------------------------------------------------------
def default_labels_getter(sample: Any) -> Any:
    """Find the label in a ``(image, label, ...)`` tuple/list or an ``{"image", "label"}`` dict.

    Returns the label object itself (an int, a 0-d/1-element tensor, a str class name), or
    ``None`` when the sample has no label. Dict keys tried: label, labels, target, targets.
    """
    if isinstance(sample, Mapping):
        lowered = {str(k).lower(): k for k in sample}
        for key in LABEL_KEYS:
            if key in lowered:
                return sample[lowered[key]]
        return None
    if isinstance(sample, (tuple, list)) and len(sample) >= 2:
        second = sample[1]
        if isinstance(second, Mapping):
            return default_labels_getter(second)
        return second
    return None


def label_to_index(label: Any, generator: Generator, *, where: str = "GANAugment") -> int:
    """Turn a label (int, 0-d/1-element int tensor, NumPy int, class name) into a class index."""
    if isinstance(label, torch.Tensor):
        if label.numel() != 1 or label.is_floating_point():
            raise GanaugDataError(
                f"{where} needs one integer class label per sample, got a tensor of shape "
                f"{tuple(label.shape)} and dtype {label.dtype}. Pass the class index (int)."
            )
        label = int(label.item())
    elif isinstance(label, np.ndarray) and label.size == 1:
        label = label.item()
    if isinstance(label, (bool, float)) or not isinstance(label, (int, np.integer, str)):
        raise GanaugDataError(
            f"{where} got the label {label!r} ({type(label).__name__}); accepted: an int class "
            "index, a 0-d integer tensor or a class name."
        )
    try:
        return generator.class_index(label if isinstance(label, str) else int(label))
    except GanaugConfigError as err:
        raise GanaugDataError(
            f"{where}: {err} Use a generator trained on the same classes as the dataset."
        ) from None


class GANAugment(v2.Transform):
    """Replace a sample's image by a synthetic image of its class with probability ``p``.

    Works on ``(image, label)`` tuples and ``{"image": ..., "label": ...}`` dicts, alone or in
    ``v2.Compose``. The image keeps its type, size and channels: PIL -> PIL (same mode),
    ``(C, H, W)`` uint8 tensor -> uint8, float tensor -> float in [0, 1], ``tv_tensors.Image``
    -> ``tv_tensors.Image``; other entries pass through. The draw uses torch's global RNG,
    like every v2 transform. Datasets such as ImageFolder call ``transform(img)`` without the
    label: wrap them with :func:`ganaug.with_labels`.

    Args:
        generator_or_path: a :class:`ganaug.Generator` or a model file path (loaded lazily
            in each DataLoader worker).
        p: replacement probability in [0, 1].
        classes: only replace samples of these classes (names or indices), e.g. rare ones.
        seed: base seed of the :class:`SampleBank`.
        bank_size: images generated per refill and class.
        truncation: see :meth:`ganaug.Generator.noise`.
        reuse: times each generated image is served (see :class:`SampleBank`); raise it
            when the generator is the DataLoader's bottleneck.
        labels_getter: ``sample -> label`` (default :func:`default_labels_getter`).

    Raises:
        GanaugConfigError: bad ``p``/``bank_size``, or an unknown class in ``classes``.
        GanaugDataError: (when called) the sample has no label, or a label the generator lacks.
    """

    def __init__(self, generator_or_path: Generator | str | os.PathLike, p: float = 0.5, *,
                 classes=None, seed: int | None = None, bank_size: int = 64,
                 truncation: float = 1.0, reuse: int = 1,
                 labels_getter: Callable[[Any], Any] = default_labels_getter) -> None:
        super().__init__()
        self.p = check_probability("p", p)
        self.bank = SampleBank(generator_or_path, bank_size=bank_size, seed=seed,
                               truncation=truncation, reuse=reuse)
        self.labels_getter = labels_getter
        self.classes = None
        if classes is not None:
            gen = self.bank.generator
            self.classes = frozenset(gen.class_index(c) for c in classes)

    def forward(self, *inputs: Any) -> Any:
        sample = inputs if len(inputs) > 1 else inputs[0]
        label = self.labels_getter(sample)
        if label is None:
            raise GanaugDataError(
                f"GANAugment needs the label of each sample, got {_describe(sample)} without "
                "one. Call it as t(image, label) or t({'image': ..., 'label': ...}); datasets "
                "like ImageFolder or CIFAR10 call transform(image) alone, so wrap them: "
                "ganaug.with_labels(dataset, transform)."
            )
        cls = label_to_index(label, self.bank.generator)
        params = self.make_params([])
        if not params["apply"] or (self.classes is not None and cls not in self.classes):
            return sample
        from torch.utils._pytree import tree_flatten, tree_unflatten

        flat, spec = tree_flatten(sample)
        targets = _image_leaves(flat, label)
        if not targets:
            return sample
        fake = self.bank.draw(cls)
        out = [match_image(fake, leaf) if i in targets else leaf for i, leaf in enumerate(flat)]
        return tree_unflatten(out, spec)

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        # Drawn every call, whatever the class, so the RNG stream does not depend on labels.
        return {"apply": bool(torch.rand(()) < self.p)}

    def extra_repr(self) -> str:
        return f"p={self.p}, bank_size={self.bank.bank_size}, classes={self.classes}"


def _describe(sample: Any) -> str:
    if isinstance(sample, PIL.Image.Image):
        return f"a PIL image ({sample.mode} {sample.width}x{sample.height})"
    if isinstance(sample, torch.Tensor):
        return f"a tensor of shape {tuple(sample.shape)}"
    return f"a {type(sample).__name__}"


def _image_leaves(flat: list[Any], label: Any) -> set[int]:
    """Indices of the image leaves: every PIL/tv_tensors.Image, else the first pure tensor."""
    typed = {i for i, x in enumerate(flat)
             if x is not label and isinstance(x, (PIL.Image.Image, tv_tensors.Image))}
    if typed:
        return typed
    for i, x in enumerate(flat):
        if x is label:
            continue
        if (isinstance(x, torch.Tensor) and not isinstance(x, tv_tensors.TVTensor)
                and x.ndim >= 2) or (isinstance(x, np.ndarray) and x.ndim in (2, 3)):
            return {i}
    return set()


# -- BatchMixer ------------------------------------------------------------------------------
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

    Args:
        generator: a :class:`ganaug.Generator` or a model file path.
        fraction: share of each batch to replace, in [0, 1].
        balance: ``None`` (same classes as replaced), ``"uniform"`` (classes drawn uniformly),
            or ``{class name or index: weight}`` (classes drawn in proportion to the weights).
        device: where the generator runs (default: the batch's device).
        mean, std: per-channel Normalize statistics of a float batch; synthetic images are
            normalised the same way. Without them float batches are taken as [0, 1].
        num_classes: K of soft targets (default: the generator's class count).
        seed: seeds the choice of positions, classes and noise (default: torch's global RNG).
        enabled: switch, like timm's ``mixup_enabled``.
        truncation: see :meth:`ganaug.Generator.noise`.

    Value conventions: uint8 batches ``(B, C, H, W)`` in [0, 255] stay uint8; float batches
    (any float dtype) in [0, 1], or normalised with ``mean``/``std``, keep their dtype.
    """

    def __init__(self, generator: Generator | str | os.PathLike, fraction: float = 0.25, *,
                 balance: str | Mapping | None = None, device: str | torch.device | None = None,
                 mean=None, std=None, num_classes: int | None = None, seed: int | None = None,
                 enabled: bool = True, truncation: float = 1.0) -> None:
        self.generator = resolve_generator(generator, device=device)
        self.fraction = check_probability("fraction", fraction)
        self.device = torch.device(device) if device is not None else None
        if (mean is None) != (std is None):
            raise GanaugConfigError("Pass both mean= and std= (the pipeline's Normalize), or neither.")
        self.mean = None if mean is None else torch.as_tensor(mean, dtype=torch.float32).reshape(-1)
        self.std = None if std is None else torch.as_tensor(std, dtype=torch.float32).reshape(-1)
        if self.std is not None and bool((self.std <= 0).any()):
            raise GanaugConfigError(f"std must be > 0, got {self.std.tolist()}.")
        self.num_classes = int(num_classes) if num_classes is not None else self.generator.num_classes
        if self.num_classes < self.generator.num_classes:
            raise GanaugConfigError(
                f"num_classes={self.num_classes} is smaller than the generator's "
                f"{self.generator.num_classes} classes; pass the classifier's class count.")
        self.weights = self._balance_weights(balance)
        self.balance = balance
        self.truncation = float(truncation)
        self.enabled = bool(enabled)
        self._rng = torch.Generator()
        self._rng.manual_seed(seed if seed is not None else int(torch.randint(0, 2**62, ()).item()))
        self.last_indices = torch.empty(0, dtype=torch.int64)
        self.last_labels = torch.empty(0, dtype=torch.int64)

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
                if not float(w) >= 0:
                    raise GanaugConfigError(f"balance weight of class {key!r} must be >= 0, got {w}.")
                weights[self.generator.class_index(key)] = float(w)
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
        batch = x.shape[0]
        k = math.floor(self.fraction * batch + 0.5)
        if not self.enabled or k == 0:
            self.last_indices = torch.empty(0, dtype=torch.int64)
            self.last_labels = torch.empty(0, dtype=torch.int64)
            return x, y
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
        fake = self.generate(cls, like=x, seed=seed)
        x_out, y_out = x.clone(), y.clone()
        dev_idx = idx.to(x.device)
        x_out[dev_idx] = fake
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
        fake = fake.to(like.device)
        channels, height, width = like.shape[1:]
        if fake.shape[1] != channels:
            fake = (F.rgb_to_grayscale(fake) if channels == 1 else fake.expand(-1, 3, -1, -1))
        if tuple(fake.shape[-2:]) != (height, width):
            fake = F.resize(fake, [height, width], antialias=True)
        if out == "float":
            if self.mean is not None:
                mean = self.mean.to(fake.device).reshape(1, -1, 1, 1)
                std = self.std.to(fake.device).reshape(1, -1, 1, 1)
                fake = (fake - mean) / std
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


# -- throughput ------------------------------------------------------------------------------
CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


def loader_throughput(data_spec: str, model_or_path: Generator | str | os.PathLike | None = None,
                      *, p: float = 0.5, workers: int = 2, batch: int = 128, batches: int = 20,
                      warmup: int = 2, image_size: int = 32, seed: int = 0, reuse: int = 1,
                      mixer_fraction: float = 0.25, mixer_repeats: int = 10,
                      rounds: int = 3) -> dict[str, Any]:
    """Measure what GANAugment costs a CIFAR-style DataLoader, and BatchMixer per batch.

    Both arms run ``with_labels(dataset, v2.Compose([...]))`` with RandomCrop(size, padding=4),
    RandomHorizontalFlip, ToImage, ToDtype(float32, scale=True) and Normalize; the GAN arm
    puts ``GANAugment(model, p)`` first. Images/s are timed over ``batches`` batches after
    ``warmup`` batches (worker start-up excluded), ``rounds`` times per arm in alternation;
    each arm reports its best round. The mixer is timed on the CPU on a
    ``(batch, 3, size, size)`` float batch (median of ``mixer_repeats`` calls).

    Args:
        data_spec: ``folder:PATH`` (read from disk by torchvision's ImageFolder, as users do)
            or any :func:`ganaug.data.load_data` spec.
        model_or_path: a Generator or model file; ``None`` builds an untrained default-width
            dcgan for the dataset's classes (the speed is the same as a trained one).

    Returns:
        ``{"baseline_images_per_s", "ganaugment_images_per_s", "slowdown" (fraction, 0.1 =
        10% slower), "mixer_ms_per_batch", "clone_ms_per_batch", ...settings}``.
    """
    import time

    from ganaug.datasets import with_labels

    if data_spec.startswith("folder:"):
        from torchvision.datasets import ImageFolder

        dataset = ImageFolder(data_spec[len("folder:"):])
    else:
        from ganaug.data import load_data

        dataset = load_data(data_spec).to_dataset()
    if model_or_path is None:
        from ganaug.models import build_generator

        torch.manual_seed(seed)
        net = build_generator("dcgan", num_classes=len(dataset.classes), channels=3,
                              image_size=image_size)
        model_or_path = Generator(net, classes=list(dataset.classes), arch="dcgan")
    tail = [v2.RandomCrop(image_size, padding=4), v2.RandomHorizontalFlip(), v2.ToImage(),
            v2.ToDtype(torch.float32, scale=True), v2.Normalize(CIFAR_MEAN, CIFAR_STD)]

    def images_per_s(transform) -> float:
        loader = torch.utils.data.DataLoader(
            with_labels(dataset, v2.Compose(transform)), batch_size=batch, shuffle=True,
            num_workers=workers, drop_last=True, persistent_workers=workers > 0,
            generator=torch.Generator().manual_seed(seed))
        done, start, it = 0, None, iter(loader)
        while done < warmup + batches:
            try:
                next(it)
            except StopIteration:
                it = iter(loader)
                continue
            done += 1
            if done == warmup:
                start = time.perf_counter()
        start = start if start is not None else time.perf_counter()
        return batches * batch / (time.perf_counter() - start)

    # Alternate the arms and keep each one's best round (timeit's rule): load drift on a
    # shared machine then slows both arms alike instead of whichever ran second.
    gan_tf = [GANAugment(model_or_path, p=p, seed=seed, reuse=reuse), *tail]
    base_runs, gan_runs = [], []
    for r in range(rounds):
        order = [(base_runs, tail), (gan_runs, gan_tf)]
        for runs, transform in order if r % 2 == 0 else order[::-1]:
            runs.append(images_per_s(transform))
    base, gan = max(base_runs), max(gan_runs)
    x = torch.rand(batch, 3, image_size, image_size)
    y = torch.randint(0, len(dataset.classes), (batch,))
    mixer = BatchMixer(model_or_path, mixer_fraction, seed=seed, device="cpu")

    def median_ms(fn) -> float:
        fn()
        times = []
        for _ in range(mixer_repeats):
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1e3)
        return float(np.median(times))

    return {"data": data_spec, "num_images": len(dataset), "p": p, "workers": workers,
            "batch": batch, "batches": batches, "image_size": image_size, "reuse": reuse,
            "rounds": rounds, "baseline_images_per_s": base, "ganaugment_images_per_s": gan,
            "baseline_rounds": base_runs, "ganaugment_rounds": gan_runs,
            "slowdown": 1.0 - gan / base, "mixer_fraction": mixer_fraction,
            "mixer_ms_per_batch": median_ms(lambda: mixer(x, y)),
            "clone_ms_per_batch": median_ms(lambda: x.clone()),
            "torch_threads": torch.get_num_threads()}
