"""Where the augmenters get their generator and their generated images.

:class:`GeneratorSource` holds a generator or a model file path: a path is loaded lazily, once
per process (CPU by default, never CUDA inside forked DataLoader workers), pickles as the path
alone, and tells its class names from the file header without loading the weights.
:class:`SampleBank` keeps per-class buffers of generated images so that per-sample transforms
generate in batches, seeded per DataLoader worker.
"""

from __future__ import annotations

import copy
import os
from typing import Any

import torch

from ganaug import io
from ganaug._checks import check_int, check_seed, check_truncation
from ganaug._devices import check_device
from ganaug._imaging import check_sample_memory
from ganaug._seeding import WorkerStream, derive_seed, worker_stream_seed
from ganaug.augment.functional import label_to_index
from ganaug.errors import GanaugConfigError
from ganaug.generator import Generator
from ganaug.models.layers import to_channels_last

__all__ = ["GeneratorSource", "SampleBank"]

GeneratorLike = Generator | str | os.PathLike


def _as_generator(source: Any) -> Generator:
    """A :class:`Generator` from a Generator or a bare registered generator network."""
    if isinstance(source, Generator):
        return source
    if isinstance(source, torch.nn.Module) and all(
            hasattr(source, a) for a in ("num_classes", "channels", "image_size", "z_dim")):
        return Generator(source)
    raise GanaugConfigError(
        f"Expected a ganaug.Generator or a model file path, got {type(source).__name__}. "
        "Load one with ganaug.load('generator.safetensors') or pass the path itself."
    )


class GeneratorSource:
    """A generator, or a model file loaded on first use in each process.

    Args:
        generator_or_path: a :class:`ganaug.Generator` (or a bare registered generator
            network), a model file path, or another GeneratorSource (its generator or path).
        device: where the generator runs. ``None``: a file loads on the CPU and a Generator
            stays where it is. A device: a file loads there, and a Generator elsewhere is
            copied there (the caller's model never moves).

    Raises:
        GanaugModelError: (path) the file is missing or not a ganaug model (header checked now).
        GanaugConfigError: anything else.
    """

    def __init__(self, generator_or_path: GeneratorLike | GeneratorSource, *,
                 device: str | torch.device | None = None) -> None:
        if isinstance(generator_or_path, GeneratorSource):
            other = generator_or_path
            generator_or_path = other.path if other.path is not None else other.generator
        self.device = check_device(device)
        self.path: str | None = None
        self._generator: Generator | None = None
        self._classes: list[str] | None = None
        if isinstance(generator_or_path, (str, os.PathLike)):
            self.path = str(generator_or_path)
            self._classes = list(io.read_metadata(self.path)["class_names"])  # header only
        else:
            gen = _as_generator(generator_or_path)
            if self.device is not None and gen.device != self.device:
                gen = copy.deepcopy(gen).to(self.device)
            self._generator = gen

    @property
    def generator(self) -> Generator:
        """The generator, loaded on first use in this process when the source is a path."""
        if self._generator is None:
            self._generator = io.load(self.path, device=self.device or "cpu")
        return self._generator

    @property
    def loaded(self) -> bool:
        """Whether this process holds the generator (always true without a path)."""
        return self._generator is not None

    @property
    def classes(self) -> list[str]:
        """The class names, from the file header when the generator is not loaded."""
        return list(self._classes if self._generator is None else self._generator.classes)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(channels, image_size, z_dim)``, from the file header when not loaded."""
        if self._generator is None:
            meta = io.read_metadata(self.path)
            return int(meta["channels"]), int(meta["image_size"]), int(meta["z_dim"])
        gen = self._generator
        return gen.channels, gen.image_size, gen.z_dim

    def check_memory(self, n: int, name: str, value: int, **kwargs: Any) -> None:
        """Refuse, before any image exists, a setting ``name=value`` under which one call
        holds ``n`` images (``divisor``: images per unit of ``value``) that memory cannot."""
        check_sample_memory(n, *self.shape, device=self.device, what=f"{name}={value:,}",
                            fix=f"Use {name} <= {{fits}}.", **kwargs)

    def class_index(self, label: Any, **kwargs: Any) -> int:
        """:func:`~ganaug.augment.functional.label_to_index` against this source's classes."""
        return label_to_index(label, self.classes, **kwargs)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        if self.path is not None:
            state["_generator"] = None  # every process loads the file itself
        return state

    def __repr__(self) -> str:
        return f"GeneratorSource({self.path or self._generator.__class__.__name__!r})"


class FromSource:
    """``generator`` and ``path`` of an object that draws from ``self.source``."""

    source: GeneratorSource

    @property
    def generator(self) -> Generator:
        """The generator, loaded on first use in this process when given as a path."""
        return self.source.generator

    @property
    def path(self) -> str | None:
        """The model file the generator comes from, or ``None`` for a live generator."""
        return self.source.path


class SampleBank(FromSource):
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
        seed: base seed; ``None`` draws one from torch's global RNG on first use in each
            process (which a DataLoader seeds per worker).
        truncation: in (0, 1], see :meth:`ganaug.Generator.noise`.
        device: where refills run. Keep ``"cpu"`` inside DataLoader workers (CUDA cannot be
            used in forked workers); use :class:`BatchMixer` for the GPU.
        reuse: how many times each generated image is served (in a shuffled order) before
            the next refill. 1 (default) gives every draw a fresh image; 4 cuts the generator
            cost per draw by 4 at the price of fewer distinct images.

    On the CPU, refills run the network in :func:`ganaug.models.to_channels_last`'s layout
    (1.3-1.5x the images per second; the images are the same), as :func:`ganaug.load` gives a
    model file on the CPU; a live :class:`ganaug.Generator` is copied once per
    process on the first refill, so later changes to its weights are not seen by the bank
    (build a new bank, or pass the model file). A pickled bank keeps its position but not
    its buffered images, which a copy regenerates from their seeds when it draws again.
    """

    def __init__(self, generator_or_path: GeneratorLike | GeneratorSource, *,
                 bank_size: int = 64, seed: int | None = None, truncation: float = 1.0,
                 device: str | torch.device = "cpu", reuse: int = 1) -> None:
        self.bank_size = check_int("bank_size", bank_size)
        self.reuse = check_int("reuse", reuse)
        self.seed = check_seed("seed", seed, allow_none=True)
        self.truncation = check_truncation(truncation)
        self.device = check_device(device) or torch.device("cpu")
        self.source = GeneratorSource(generator_or_path, device=self.device)
        # every class's buffer is kept: num_classes x bank_size images at once
        self.source.check_memory(self.bank_size * self.source.num_classes, "bank_size",
                                 self.bank_size, divisor=self.source.num_classes)
        self._stream = WorkerStream()
        self.reseed_count = 0
        self._sampler: Generator | None = None

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_sampler"] = None  # each process makes its own
        # the buffers (num_classes x bank_size images) are regenerated from their seeds when
        # drawn from again, so spawn workers do not each receive them
        state["_buffers"], state["_order"] = {}, {}
        return state

    @property
    def sampler(self) -> Generator:
        """The generator refills run: ``channels_last`` on the CPU (see the class notes)."""
        if self._sampler is None:
            gen = self.source.generator
            if self.device.type == "cpu":
                if self.source.path is None:  # never change the caller's model
                    gen = copy.deepcopy(gen)
                to_channels_last(gen.net)
            self._sampler = gen
        return self._sampler

    @property
    def classes(self) -> list[str]:
        return self.source.classes

    def reseed(self, seed: int) -> None:
        """Restart this process's stream from ``seed`` and empty the buffers."""
        self._stream.claim()
        self._seed = int(seed)
        self._buffers: dict[int, torch.Tensor] = {}
        self._pos: dict[int, int] = {}
        self._order: dict[int, torch.Tensor] = {}
        self._refills: dict[int, int] = {}
        self.reseed_count += 1

    def draw(self, label: int | str) -> torch.Tensor:
        """The next synthetic image of class ``label`` as ``(C, H, W) uint8`` on the CPU."""
        if self._stream.due():
            self.reseed(worker_stream_seed(self.seed))
        cls = self.source.class_index(label)
        pos = self._pos.get(cls, self.bank_size * self.reuse)
        if pos >= self.bank_size * self.reuse:
            self._refill(cls)
            pos = 0
        elif cls not in self._buffers:  # dropped by pickling: the same images again
            self._refill(cls, self._refills[cls] - 1)
        self._pos[cls] = pos + 1
        return self._buffers[cls][int(self._order[cls][pos])].clone()

    def _refill(self, cls: int, count: int | None = None) -> None:
        """Generate refill number ``count`` of class ``cls`` (default: the next one)."""
        if count is None:
            count = self._refills.get(cls, 0)
            self._refills[cls] = count + 1
        images = self.sampler.sample(
            [cls] * self.bank_size, seed=derive_seed(self._seed, cls, count),
            truncation=self.truncation, batch_size=self.bank_size, device=self.device)
        self._buffers[cls] = images.cpu().contiguous()
        if self.reuse == 1:
            self._order[cls] = torch.arange(self.bank_size)
        else:
            rng = torch.Generator().manual_seed(derive_seed(self._seed, cls, count, 1))
            self._order[cls] = torch.cat([torch.randperm(self.bank_size, generator=rng)
                                          for _ in range(self.reuse)])
