"""Throughput benchmarks: ``ganaug bench train|sample|loader``.

``bench train`` runs the :class:`~ganaug.training.Trainer`'s own step (its
:class:`~ganaug.training.GANStep` on its real batches) against :class:`ReferenceLoop`, a minimal hand-written PyTorch loop of the same generator, discriminator,
hinge loss and Adam, alternating the two in one process after a warm-up, so the ratio measures
framework overhead (and the waste ganaug removes), not the machine or its load. ``bench sample``
times :meth:`ganaug.Generator.generate`; ``bench loader`` times a torchvision DataLoader with and
without :class:`ganaug.GANAugment` and :class:`ganaug.BatchMixer` per batch. Figures are printed
(and optionally written as JSON), never asserted. See docs/performance.md.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torchvision.transforms import v2

from ganaug._checks import check_int, most_threads
from ganaug._devices import resolve_device
from ganaug._files import check_json_file
from ganaug._timing import (
    alternate,
    format_table,
    peak_memory_mb,
    rss_mb,
    time_calls,
    write_json,
)
from ganaug.augment import BatchMixer, GANAugment, with_labels
from ganaug.data import load_data
from ganaug.generator import Generator
from ganaug.io import load
from ganaug.models import build_generator
from ganaug.reference_loop import (  # noqa: F401  (synthetic_data: re-exported)
    NUM_CLASSES,
    ReferenceLoop,
    make_trainer,
    synthetic_data,
)

#: The loader benchmark's data when no spec is given (built in, so it runs anywhere).
LOADER_DATA = "digits?size=32&channels=3"


def _train_settings(quick: bool) -> dict[str, int]:
    # quick: seconds on a CPU; else 5 timed rounds of 5 steps per side after one warm-up round.
    return {"steps": 2, "rounds": 3, "warmup": 1} if quick else {"steps": 5, "rounds": 5,
                                                                  "warmup": 1}


def bench_train(*, arch: str = "dcgan", image_size: int = 32, batch_size: int = 64,
                device: str | None = None, width: int | None = None, quick: bool = False,
                sides: tuple[str, ...] = ("ganaug", "reference"),
                steps: int | None = None, rounds: int | None = None, amp: bool = False,
                channels_last: bool = False, compile: bool = False,
                cr_weight: float = 0.0) -> dict[str, Any]:
    """Trainer steps vs :class:`ReferenceLoop` steps, alternated in one process.

    Args:
        arch, image_size, batch_size, width: the networks and batch (width None: the preset's,
            32 for dcgan on the CPU, the arch default elsewhere; 32 for resnet with ``quick``
            on the CPU).
        device: ``cpu`` | ``cuda`` | ... (None: best available).
        quick: few steps (seconds on a CPU).
        sides: ``"ganaug"`` and/or ``"reference"`` (one side alone: no ratio).
        steps, rounds: override the steps per round and the timed rounds.
        amp, channels_last: on both sides (AMP: CUDA, or a CPU with native bf16; the reference autocasts alike).
        compile: ``torch.compile`` the Trainer's networks (the reference stays eager); the
            warm-up round pays the compile.
        cr_weight: bCR on the Trainer's side only (the ratio then shows what bCR costs).

    Returns:
        A dict with ``images_per_s`` and ``ms_per_step`` per side, ``ratio`` (ganaug /
        reference images/s, median of the per-round ratios), ``peak_memory_mb`` per side and
        the settings. Images are real images seen by D: ``batch_size * d_steps`` per step.
    """
    if quick and width is None and arch == "resnet" and resolve_device(device).type == "cpu":
        width = 32  # the default width (256/128) takes minutes per round on a CPU
    settings = _train_settings(quick)
    settings["steps"] = steps or settings["steps"]
    settings["rounds"] = rounds or settings["rounds"]
    rss_before = rss_mb()  # after the imports at the top: the baseline excludes code
    trainer = make_trainer(arch=arch, image_size=image_size, batch_size=batch_size,
                           device=device, width=width, amp=amp, channels_last=channels_last,
                           compile=compile, cr_weight=cr_weight)
    dev, cfg = trainer.device, trainer.cfg
    fns: dict[str, Callable[[], Any]] = {}
    if "ganaug" in sides:
        fns["ganaug"] = trainer.train_step
    if "reference" in sides:
        fns["reference"] = ReferenceLoop(trainer).step
    timing = alternate(fns, device=dev, **settings)
    images = cfg.batch_size * cfg.d_steps * settings["steps"]
    rows = []
    for name, secs in timing["seconds"].items():
        med = statistics.median(secs)
        rows.append({"side": name, "images_per_s": images / med,
                     "ms_per_step": med / settings["steps"] * 1e3,
                     "peak_memory_mb": timing["peak_memory_mb"][name]})
    ratio = None
    if len(fns) == 2:
        ratio = statistics.median(ref / ours for ref, ours in zip(timing["seconds"]["reference"],
                                                                  timing["seconds"]["ganaug"]))
    return {"bench": "train", "device": str(dev), "arch": cfg.arch, "image_size": image_size,
            "batch_size": cfg.batch_size, "d_steps": cfg.d_steps,
            "width": cfg.arch_kwargs.get("width", "default"), "ema": True, "diffaug": "none",
            # amp: what ran (autocast needs CUDA or a native-bf16 CPU), not what was asked for.
            "amp": bool(trainer.gan.autocast), "channels_last": cfg.channels_last,
            "compile": cfg.compile,
            "cr_weight": cfg.cr_weight, **settings,
            "torch_threads": torch.get_num_threads(), "rows": rows, "ratio": ratio,
            "rss_before_mb": rss_before, "seconds_per_round": timing["seconds"]}


def print_train_result(result: dict[str, Any]) -> None:
    """The table of :func:`bench_train` and the line ``ratio ganaug/reference: X.XX``."""
    print(f"train {result['arch']} (width {result['width']}) {result['image_size']}px, batch "
          f"{result['batch_size']} x {result['d_steps']} D step(s), hinge, Adam, EMA on both, "
          f"DiffAugment off, on {result['device']} ({result['torch_threads']} threads)"
          f"{_options(result)}; "
          f"{result['rounds']} alternated rounds of {result['steps']} steps after "
          f"{result['warmup']} warm-up round(s)")
    mem = "peak RSS MiB" if result["device"] == "cpu" else "peak MiB"
    print(format_table(result["rows"], [("side", "side", ""), ("images_per_s", "images/s", ".1f"),
                                        ("ms_per_step", "ms/step", ".2f"),
                                        ("peak_memory_mb", mem, ".0f")]))
    if result["ratio"] is not None:
        print(f"ratio ganaug/reference: {result['ratio']:.2f}")


def _options(result: dict[str, Any]) -> str:
    on = [name for name in ("amp", "channels_last", "compile") if result.get(name)]
    if result.get("cr_weight"):
        on.append(f"bCR {result['cr_weight']:g} (ganaug side)")
    return f", {', '.join(on)}" if on else ""


# -- bench sample -------------------------------------------------------------------------------
def default_generator(*, arch: str = "dcgan", image_size: int = 32, num_classes: int = NUM_CLASSES,
                      channels: int = 3, seed: int = 0, classes: list[str] | None = None):
    """An untrained generator at the arch's default width (sampling speed ignores training).

    ``classes`` names its classes (default ``class0, class1, ...``; ``num_classes`` is then
    ``len(classes)``): name them like the dataset's, which is matched by name.
    """
    torch.manual_seed(seed)
    classes = [f"class{k}" for k in range(num_classes)] if classes is None else list(classes)
    net = build_generator(arch, num_classes=len(classes), channels=channels,
                          image_size=image_size)
    return Generator(net, classes=classes, arch=arch)


def bench_sample(generator, *, batch_sizes=(1, 16, 256, 1024), min_images: int = 2048,
                 device: str | torch.device | None = None, quick: bool = False) -> dict:
    """Generated images/s (uint8 output) at each batch size and the batch-1 latency.

    Args:
        generator: a :class:`ganaug.Generator`.
        batch_sizes: forward-pass batch sizes to measure.
        min_images: images generated per measurement (at least one call).
        device: where to run (default: the generator's device).
        quick: fewer images (seconds in total on a CPU).

    Returns:
        ``{"rows": [{"batch": b, "images_per_s": x, "ms_per_call": y}], "latency_ms_batch1": z,
        "peak_memory_mb": m, ...}``; the time per call is the median over the calls.
    """
    device = torch.device(device) if device is not None else generator.device
    generator.to(device)
    if quick:
        min_images = min(min_images, 256)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    rows = []
    for batch in batch_sizes:
        labels = torch.arange(batch) % generator.num_classes
        z = generator.noise(batch, seed=0)

        def call(z=z, labels=labels, batch=batch):
            generator.generate(z, labels, batch_size=batch, output="uint8", device=device)

        call()  # warm-up
        calls = max(1, min_images // batch)
        times = time_calls(call, repeats=calls, device=device)
        per_call = statistics.median(times)
        rows.append({"batch": batch, "images_per_s": batch / per_call,
                     "ms_per_call": per_call * 1e3})
    latency = next((r["ms_per_call"] for r in rows if r["batch"] == 1), None)
    return {"bench": "sample", "device": str(device), "arch": generator.arch,
            "image_size": generator.image_size, "rows": rows, "latency_ms_batch1": latency,
            "peak_memory_mb": peak_memory_mb(device), "torch_threads": torch.get_num_threads()}


def print_sample_result(result: dict[str, Any], name: str) -> None:
    """The table of :func:`bench_sample` and the batch-1 latency."""
    print(f"sampling {name} on {result['device']} ({result['torch_threads']} threads), "
          "uint8 output, median time per call")
    print(format_table(result["rows"], [("batch", "batch", "d"),
                                        ("images_per_s", "images/s", ".1f"),
                                        ("ms_per_call", "ms/call", ".2f")]))
    if result["latency_ms_batch1"] is not None:
        print(f"latency at batch 1: {result['latency_ms_batch1']:.2f} ms")
    if result["peak_memory_mb"] is not None:
        kind = "peak RSS" if result["device"] == "cpu" else "peak CUDA memory"
        print(f"{kind}: {result['peak_memory_mb']:.0f} MiB")


# -- bench loader -------------------------------------------------------------------------------
def bench_loader(*, model=None, data: str | None = None, batch_size: int = 128, workers: int = 2,
                 p: float = 0.5, quick: bool = False) -> dict[str, Any]:
    """DataLoader images/s with and without ``GANAugment(p)``, and ``BatchMixer`` ms per batch.

    Delegates to :func:`loader_throughput`. ``data`` is a dataset spec
    (None: :data:`LOADER_DATA`, ``digits`` at 32 px RGB; docs/performance.md uses
    ``folder:../shared/data/cifar10-mini/train``). ``model`` is a Generator or model file;
    None: an untrained default-width 32 px dcgan.
    """
    data = data or LOADER_DATA
    batches, warmup, repeats, rounds = (5, 2, 5, 1) if quick else (20, 2, 10, 3)
    result = loader_throughput(data, model, p=p, workers=workers, batch=batch_size,
                               batches=batches, warmup=warmup, mixer_repeats=repeats,
                               rounds=rounds)
    return {"bench": "loader", **result}


CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


def loader_throughput(data_spec: str, model_or_path=None, *, p: float = 0.5, workers: int = 2,
                      batch: int = 128, batches: int = 20, warmup: int = 2, image_size: int = 32,
                      seed: int = 0, reuse: int = 1, mixer_fraction: float = 0.25,
                      mixer_repeats: int = 10, rounds: int = 3) -> dict[str, Any]:
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
            dcgan for the dataset's classes (:func:`default_generator`; the speed is the same
            as a trained one).

    Returns:
        ``{"baseline_images_per_s", "ganaugment_images_per_s", "slowdown" (fraction, 0.1 =
        10% slower), "mixer_ms_per_batch", "clone_ms_per_batch", ...settings}``.
    """
    if data_spec.startswith("folder:"):
        from torchvision.datasets import ImageFolder

        dataset = ImageFolder(data_spec[len("folder:"):])
    else:
        dataset = load_data(data_spec).to_dataset()
    if model_or_path is None:
        model_or_path = default_generator(image_size=image_size, seed=seed,
                                          classes=[str(c) for c in dataset.classes])
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
    mixer = BatchMixer(model_or_path, mixer_fraction, classes=[str(c) for c in dataset.classes],
                       seed=seed, device="cpu")

    def median_ms(fn) -> float:
        fn()
        return 1e3 * statistics.median(time_calls(fn, repeats=mixer_repeats,
                                                  device=torch.device("cpu")))

    return {"data": data_spec, "num_images": len(dataset), "p": p, "workers": workers,
            "batch": batch, "batches": batches, "image_size": image_size, "reuse": reuse,
            "rounds": rounds, "baseline_images_per_s": base, "ganaugment_images_per_s": gan,
            "baseline_rounds": base_runs, "ganaugment_rounds": gan_runs,
            "slowdown": 1.0 - gan / base, "mixer_fraction": mixer_fraction,
            "mixer_ms_per_batch": median_ms(lambda: mixer(x, y)),
            "clone_ms_per_batch": median_ms(lambda: x.clone()),
            "torch_threads": torch.get_num_threads()}


def print_loader_result(result: dict[str, Any]) -> None:
    """The loader table and the BatchMixer line."""
    print(f"DataLoader on {result['data']} ({result['num_images']} images), batch "
          f"{result['batch']}, {result['workers']} workers, {result['batches']} timed batches; "
          "RandomCrop(pad 4), flip, ToImage, ToDtype, Normalize")
    rows = [{"pipeline": "baseline", "images_per_s": result["baseline_images_per_s"]},
            {"pipeline": f"+GANAugment(p={result['p']:g})",
             "images_per_s": result["ganaugment_images_per_s"]}]
    print(format_table(rows, [("pipeline", "pipeline", ""), ("images_per_s", "images/s", ".1f")]))
    print(f"GANAugment slowdown: {100 * result['slowdown']:.1f}%")
    print(f"BatchMixer(fraction={result['mixer_fraction']:g}) on a ({result['batch']}, 3, "
          f"{result['image_size']}, {result['image_size']}) batch, CPU: "
          f"{result['mixer_ms_per_batch']:.2f} ms per call (a clone: "
          f"{result['clone_ms_per_batch']:.2f} ms)")


# -- output ---------------------------------------------------------------------------------------
def run_bench(what: str, *, file: str | None = None, data: str | None = None,
              arch: str = "dcgan", image_size: int = 32, batch_size: int | None = None,
              width: int | None = None, device: str | None = None, threads: int | None = None,
              quick: bool = False, json_path: str | None = None, amp: bool = False,
              channels_last: bool = False, compile: bool = False,
              cr_weight: float = 0.0) -> dict[str, Any]:
    """``ganaug bench train|sample|loader``: run one benchmark, print it, optionally save JSON.

    ``file`` is the model file of ``sample`` and ``loader`` (default: an untrained ``arch``,
    dcgan for ``loader``); ``data`` the dataset spec of ``loader``; ``batch_size`` defaults to 64
    (train) and 128 (loader); ``threads`` sets torch's CPU threads; ``json_path`` also writes the
    result there. The other arguments are those of :func:`bench_train` and :func:`bench_sample`
    (``amp``, ``channels_last``, ``compile``, ``cr_weight``: train only).
    Returns the result dict.

    Raises:
        GanaugConfigError: ``threads``, ``batch_size`` or ``width`` below 1; ``threads``
            above :func:`ganaug._checks.most_threads`; a ``json_path`` that cannot be written
            (checked before the benchmark).
    """
    if threads is not None:
        check_int("--threads", threads, minimum=1, hint="e.g. --threads 1.")
        check_int("--threads", threads, minimum=None, maximum=most_threads(),
                  hint="(4 per CPU): more than the CPUs only slow the work down.")
        torch.set_num_threads(threads)
    for name, value in (("batch_size", batch_size), ("width", width)):
        if value is not None:  # 0 must not read as "not given" below
            check_int(name, value, minimum=1)
    if json_path:
        check_json_file(json_path)  # before the benchmark, not when writing its result
    if what == "sample":
        if file:
            gen, name = load(file, device=device or "cpu"), Path(file).name
        else:
            gen = default_generator(arch=arch, image_size=image_size)
            name = f"an untrained {arch} {image_size}px (no FILE given)"
        result = bench_sample(gen, quick=quick, device=device)
        print_sample_result(result, name)
    elif what == "train":
        result = bench_train(arch=arch, image_size=image_size, batch_size=batch_size or 64,
                             device=device, width=width, quick=quick, amp=amp,
                             channels_last=channels_last, compile=compile, cr_weight=cr_weight)
        print_train_result(result)
    else:
        result = bench_loader(model=file, data=data, batch_size=batch_size or 128, quick=quick)
        print_loader_result(result)
    write_json(json_path, result)
    return result
