"""Does GAN augmentation help my classifier? Regimes x seeds x arms, with honest statistics.

For each data regime (images per class, optionally long-tailed) and seed: draw the real training
subset, train a GAN on exactly that subset (or check that a given generator saw nothing else),
then train one timm classifier per arm with the same optimiser-step budget and test it on the
untouched test split. Gains are reported as paired differences against ``real+aug`` (what users
already do), with 95% t-intervals and paired t-tests over seeds (Student 1908; see e.g. Bouthillier
et al. 2021, https://arxiv.org/abs/2103.03098, on variance in ML benchmarks). Finished cells are
cached in ``OUT/cells`` so a rerun resumes.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import platform
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ganaug._files import atomic_write_text
from ganaug.errors import GanaugConfigError, GanaugDataError

__all__ = [
    "ARMS",
    "DEFAULT_ARMS",
    "check_no_leakage",
    "demo",
    "experiment_cli",
    "paired_comparison",
    "run_experiment",
    "summarize",
    "t_interval",
]

ARMS = ("real", "real+aug", "real+gan", "real+aug+gan", "gan", "real+weighted", "real+oversample")
DEFAULT_ARMS = ("real", "real+aug", "real+gan", "real+aug+gan", "gan")
IMBALANCE_ARMS = ("real+weighted", "real+oversample")
BASELINE = "real+aug"
DEFAULT_CLASSIFIER_STEPS = 500


# -- statistics -----------------------------------------------------------------------------------
def t_interval(values: Sequence[float], confidence: float = 0.95) -> dict[str, Any]:
    """Mean, sample std and the Student-t interval of the mean.

    ``mean ± t_{(1+c)/2, n-1} * s / sqrt(n)`` (scipy.stats.t); ``low``/``high`` are None for
    fewer than 2 values.
    """
    from scipy import stats

    x = np.asarray(values, dtype=np.float64)
    n = len(x)
    mean = float(x.mean()) if n else float("nan")
    std = float(x.std(ddof=1)) if n >= 2 else None
    low = high = None
    if n >= 2:
        sem = std / math.sqrt(n)
        if sem > 0:
            low, high = (float(v) for v in stats.t.interval(confidence, n - 1, loc=mean,
                                                             scale=sem))
        else:
            low = high = mean
    return {"mean": mean, "std": std, "low": low, "high": high, "n": n}


def paired_comparison(arm: Sequence[float], baseline: Sequence[float],
                      confidence: float = 0.95) -> dict[str, Any]:
    """Paired difference ``arm - baseline`` over seeds: mean, t-interval, paired t-test p-value.

    ``p`` is the two-sided p-value of ``scipy.stats.ttest_rel`` (None for fewer than 2 pairs
    or identical pairs).
    """
    from scipy import stats

    a, b = np.asarray(arm, dtype=np.float64), np.asarray(baseline, dtype=np.float64)
    if a.shape != b.shape:
        raise GanaugDataError(f"Paired comparison needs one value per seed on both sides; got "
                              f"{len(a)} and {len(b)}.")
    out = t_interval(a - b, confidence)
    p = None
    if len(a) >= 2 and np.any(a != b):
        p = float(stats.ttest_rel(a, b).pvalue)
        p = None if math.isnan(p) else p
    out["p"] = p
    return out


# -- settings -------------------------------------------------------------------------------------
def parse_regimes(per_class: str | Sequence) -> list[str]:
    """``"10,50,all"`` -> ``["10", "50", "all"]`` (checked)."""
    items = per_class.split(",") if isinstance(per_class, str) else [str(v) for v in per_class]
    items = [i.strip() for i in items if i.strip()]
    for item in items:
        if item != "all" and not (item.isdigit() and int(item) > 0):
            raise GanaugConfigError(f"--per-class takes positive integers or 'all', comma-"
                                    f"separated (e.g. 10,50,all); got {item!r}.")
    if not items:
        raise GanaugConfigError("--per-class is empty; give e.g. 10,50,all.")
    return items


def parse_arms(arms: str | Sequence | None, imbalance: float | None) -> list[str]:
    """Checked arm names; imbalanced runs also get ``real+weighted`` and ``real+oversample``."""
    from ganaug.errors import did_you_mean

    items = list(DEFAULT_ARMS) if arms is None else (
        [a.strip() for a in arms.split(",") if a.strip()] if isinstance(arms, str) else list(arms))
    for arm in items:
        if arm not in ARMS:
            raise GanaugConfigError(f"Unknown arm '{arm}'. Available: {', '.join(ARMS)}."
                                    + did_you_mean(arm, ARMS))
    if imbalance is not None:
        items += [a for a in IMBALANCE_ARMS if a not in items]
    return list(dict.fromkeys(items))


def _environment(device: torch.device) -> dict[str, Any]:
    import timm
    import torchvision

    from ganaug import __version__

    return {"ganaug": __version__, "python": platform.python_version(), "torch": torch.__version__,
            "torchvision": torchvision.__version__, "timm": timm.__version__,
            "platform": platform.platform(), "device": str(device),
            "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads()}


# -- data and generators --------------------------------------------------------------------------
def load_regime(data: str, regime: str, *, seed: int, test: str | None, image_size: int | None,
                channels: int | None, imbalance: float | None):
    """The real training subset of one regime and seed (from the train split only)."""
    from ganaug.data import load_data

    n = None if regime == "all" else int(regime)
    return load_data(data, split=None if test else "train", size=image_size, channels=channels,
                     per_class=n, imbalance=imbalance, seed=seed)


def check_no_leakage(generator, subset, test, *, path: str = "the generator") -> None:
    """Refuse a generator that saw images outside ``subset`` (other training images or the test
    split), judged by the data fingerprint it recorded at training time.

    Raises:
        GanaugDataError: no recorded fingerprint, or one that is not the subset's.
    """
    training = (getattr(generator, "metadata", None) or {}).get("training") or {}
    recorded = training.get("data_fingerprint")
    spec = training.get("data", "unknown data")
    if not recorded:
        raise GanaugDataError(
            f"{path} records no training-data fingerprint, so ganaug cannot check that it never "
            f"saw the test split ({test.spec}). Use a generator trained by ganaug, or leave out "
            "--generator to train one per regime.")
    if recorded == subset.fingerprint():
        return
    raise GanaugDataError(
        f"{path} was trained on {spec} (fingerprint {recorded[:12]}), not on this regime's "
        f"training subset {subset.spec} ({subset.fingerprint()[:12]}). It may have seen images "
        f"outside the subset or from the test split {test.spec}, which would inflate the GAN "
        "arms. Leave out --generator (a GAN is trained on each subset), or pass one trained on "
        "exactly that subset.")


def train_regime_gan(subset, out: Path, *, seed: int, gan_steps: int | None, device,
                     gan_config: dict[str, Any] | None = None):
    """Train (or reuse the finished run in ``out``) a GAN on exactly ``subset``; returns it."""
    from ganaug.config import TrainConfig
    from ganaug.io import load
    from ganaug.training import Trainer

    path = out / "generator.safetensors"
    if path.is_file():
        gen = load(path, device=device)
        training = gen.metadata.get("training", {})
        done = training.get("steps") == (gan_steps or training.get("config", {}).get("steps"))
        if training.get("data_fingerprint") == subset.fingerprint() and done:
            return gen
    fields = dict(gan_config or {})
    # A batch larger than a tiny subset cannot be drawn; presets assume thousands of images.
    if len(subset) < 128 and "batch_size" not in fields:
        fields["batch_size"] = max(2, min(64, len(subset)))
    cfg = TrainConfig(data=subset.spec or "subset", seed=seed, steps=gan_steps, out=str(out),
                      device=None if device is None else str(device),
                      resume=(out / "checkpoints" / "last.pt").is_file() or None, **fields)
    Trainer(cfg, data=subset).fit()
    return load(path, device=device)


def _materialize(dataset) -> tuple[torch.Tensor, torch.Tensor]:
    """All items of a ``(PIL or tensor, int)`` dataset as uint8 ``(N, C, H, W)`` + int64."""
    from torch.utils.data import DataLoader

    from ganaug.classifier import _collate

    images, labels = [], []
    for x, y in DataLoader(dataset, batch_size=256, shuffle=False, collate_fn=_collate):
        images.append(x)
        labels.append(y.long())
    return torch.cat(images), torch.cat(labels)


def _filter_fn(model):
    """A SyntheticDataset ``filter``: ``(N, C, H, W) [0, 1] -> (N, K)`` logits of ``model``."""
    from ganaug.classifier import _to_input

    def fn(x: torch.Tensor) -> torch.Tensor:
        dev = next(model.parameters()).device
        with torch.inference_mode():
            return model(_to_input(model, x.to(dev))).float()

    return fn


def _synthetic_counts(real_counts: list[int], ratio: float, balanced_mode: bool) -> list[int]:
    from ganaug.datasets import balance_counts, proportional_counts

    budget = round(ratio * sum(real_counts))
    if balanced_mode:
        return balance_counts(real_counts, "uniform", budget=budget)
    return proportional_counts(real_counts, budget)


# -- one cell -------------------------------------------------------------------------------------
def _arm_data(arm: str, subset, generator, *, s: dict[str, Any], seed: int, real_model):
    """``(train_data, mixer, note)`` of an arm."""
    from ganaug.datasets import MixedDataset, SyntheticDataset
    from ganaug.transforms import BatchMixer

    real = (subset.images, subset.labels)
    if arm in ("real", "real+aug", "real+weighted", "real+oversample"):
        return real, None, f"{len(subset)} real"
    flt = {"filter": _filter_fn(real_model), "min_confidence": s["min_confidence"]} \
        if s["min_confidence"] is not None and real_model is not None else {}
    k = subset.num_classes
    if arm == "gan":
        per = math.ceil(len(subset) / k)
        synth = SyntheticDataset(generator, n_per_class=per, seed=seed, **flt).generate()
        images, labels = _materialize(synth)
        return (images, labels), None, f"{len(images)} synthetic ({per} per class)"
    if s["replace_p"] is not None:
        mixer = BatchMixer(generator, fraction=s["replace_p"], seed=seed)
        return real, mixer, f"{len(subset)} real, {s['replace_p']:.0%} of each batch replaced"
    counts = _synthetic_counts(subset.class_counts(), s["synthetic_ratio"],
                               s["imbalance"] is not None)
    synth = SyntheticDataset(generator, counts=counts, seed=seed, **flt).generate()
    mixed = MixedDataset(subset.to_dataset(), synth, mode="append")
    images, labels = _materialize(mixed)
    return (images, labels), None, f"{len(subset)} real + {sum(counts)} synthetic"


def _run_cell(arm: str, subset, test, generator, *, s: dict[str, Any], seed: int, real_model):
    from ganaug.classifier import (
        create_classifier,
        evaluate_classifier,
        flip_suits,
        train_classifier,
    )

    start = time.perf_counter()
    train_data, mixer, note = _arm_data(arm, subset, generator, s=s, seed=seed,
                                        real_model=real_model)
    model = create_classifier(s["backbone"], num_classes=subset.num_classes,
                              in_chans=subset.channels, image_size=subset.image_size,
                              stem=s["stem"], seed=seed, **s["model_kwargs"])
    augment = "standard" if arm in ("real+aug", "real+aug+gan", "real+weighted",
                                    "real+oversample") else None
    train_classifier(model, train_data, steps=s["classifier_steps"], batch_size=s["batch_size"],
                     augment=augment, flip=flip_suits(s["data"]), mixer=mixer,
                     class_weights="balanced" if arm == "real+weighted" else None,
                     sampler="balanced" if arm == "real+oversample" else "uniform",
                     seed=seed, device=s["device"], progress=s["progress"], desc=arm)
    result = evaluate_classifier(model, test.images, test.labels, device=s["device"])
    result.update(train_data=note, wall_s=round(time.perf_counter() - start, 2))
    return result, model


# -- the experiment -------------------------------------------------------------------------------
def _settings_key(s: dict[str, Any]) -> dict[str, Any]:
    """The settings a cached cell must match to be reused."""
    keys = ("data", "test", "imbalance", "backbone", "stem", "classifier_steps", "batch_size",
            "gan_steps", "generator", "image_size", "synthetic_ratio", "replace_p",
            "min_confidence", "model_kwargs")
    return {k: s[k] for k in keys}


def run_experiment(data: str, *, out: str | os.PathLike, test: str | None = None,
                   per_class: str | Sequence = "all", imbalance: float | None = None,
                   arms: str | Sequence | None = None, backbone: str = "resnet18",
                   stem: str = "auto", seeds: int = 3, gan_steps: int | None = None,
                   classifier_steps: int | None = None, batch_size: int = 128,
                   generator: str | os.PathLike | None = None, image_size: int | None = None,
                   synthetic_ratio: float | None = None, replace_p: float | None = None,
                   min_confidence: float | None = None, device=None,
                   gan_config: dict[str, Any] | None = None,
                   model_kwargs: dict[str, Any] | None = None,
                   progress: bool = True) -> dict[str, Any]:
    """Run (or resume) the experiment and write ``results.json``, ``results.csv``, ``report.md``
    and the plots into ``out``.

    Args:
        data: dataset spec; without ``test`` its ``train`` split is used for training and its
            ``test`` split (own, or a fixed stratified 20%) for testing.
        out: output folder (cells, GANs, reports).
        test: a separate test spec.
        per_class: regimes, e.g. ``"10,50,all"``.
        imbalance: long-tail ratio; adds ``real+weighted`` and ``real+oversample``.
        arms: subset of :data:`ARMS` (default :data:`DEFAULT_ARMS`).
        backbone, stem: the timm classifier (see :func:`ganaug.classifier.create_classifier`).
        seeds: seeds 0..seeds-1; each draws its own subset, GAN and classifiers.
        gan_steps: generator steps per GAN (default: the trainer's preset).
        classifier_steps: optimiser steps of every classifier (default 500).
        batch_size: classifier batch size.
        generator: a model file to use instead of training GANs; refused where it saw images
            outside the regime's subset (see :func:`check_no_leakage`).
        image_size: resize the data (default: the generator's size with ``generator``).
        synthetic_ratio: synthetic images appended per real image (default 1.0).
        replace_p: instead of appending, replace this fraction of each batch with
            :class:`ganaug.BatchMixer`.
        min_confidence: keep only synthetic images that the ``real`` arm's classifier assigns
            to their class with at least this probability.
        gan_config: extra :class:`ganaug.TrainConfig` fields for the GANs.
        model_kwargs: extra ``timm.create_model`` arguments of the classifier.

    Returns:
        The ``results.json`` document.
    """
    from tqdm.auto import tqdm

    from ganaug.classifier import load_classifier, resolve_device, save_classifier

    out = Path(out)
    regimes = parse_regimes(per_class)
    arm_list = parse_arms(arms, imbalance)
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise GanaugConfigError(f"seeds must be a positive integer; got {seeds!r}.")
    if replace_p is not None and not 0.0 < replace_p <= 1.0:
        raise GanaugConfigError(f"--replace-p must be in (0, 1]; got {replace_p}.")
    if synthetic_ratio is not None and not synthetic_ratio > 0:
        raise GanaugConfigError(f"--synthetic-ratio must be > 0; got {synthetic_ratio}.")
    if min_confidence is not None and not 0.0 <= min_confidence <= 1.0:
        raise GanaugConfigError(f"--min-confidence must be in [0, 1]; got {min_confidence}.")
    dev = resolve_device(device)
    given = None
    channels = None
    if generator is not None:
        from ganaug.io import load

        given = load(generator, device=dev)
        image_size = image_size or given.image_size
        channels = given.channels
    s = {"data": data, "test": test, "imbalance": imbalance, "backbone": backbone, "stem": stem,
             "classifier_steps": classifier_steps or DEFAULT_CLASSIFIER_STEPS,
             "batch_size": batch_size, "gan_steps": gan_steps,
             "generator": str(generator) if generator else None, "image_size": image_size,
             "synthetic_ratio": synthetic_ratio or 1.0, "replace_p": replace_p,
             "min_confidence": min_confidence, "model_kwargs": dict(model_kwargs or {}),
             "device": dev,
             "progress": progress}
    from ganaug.data import load_data

    test_data = load_data(test or data, split=None if test else "test", size=image_size,
                          channels=channels)
    started = time.perf_counter()
    cells: list[dict[str, Any]] = []
    gan_arms = any("gan" in a for a in arm_list)
    total = len(regimes) * seeds * len(arm_list)
    bar = tqdm(total=total, desc="experiment", unit="cell", disable=not progress)
    samples: dict[str, Path] = {}
    for regime in regimes:
        for seed in range(seeds):
            subset = load_regime(data, regime, seed=seed, test=test, image_size=image_size,
                                 channels=channels, imbalance=imbalance)
            if subset.num_classes != test_data.num_classes:
                raise GanaugDataError(f"The test data has {test_data.num_classes} classes but "
                                      f"the training data has {subset.num_classes}.")
            gen = None
            real_model = None
            for arm in arm_list:
                cell_path = out / "cells" / f"{regime}-s{seed}-{arm.replace('+', '_')}.json"
                if cell_path.is_file():
                    cached = json.loads(cell_path.read_text())
                    if cached.get("settings") == json.loads(json.dumps(_settings_key(s))):
                        cells.append(cached)
                        bar.update(1)
                        continue
                if "gan" in arm and gen is None:
                    if given is not None:
                        check_no_leakage(given, subset, test_data, path=str(generator))
                        gen = given
                    else:
                        gen = train_regime_gan(subset, out / "gans" / f"{regime}-s{seed}",
                                               seed=seed, gan_steps=gan_steps, device=dev,
                                               gan_config=gan_config)
                if "gan" in arm and min_confidence is not None and real_model is None:
                    model_path = out / "cells" / f"{regime}-s{seed}-real.safetensors"
                    if model_path.is_file():
                        real_model = load_classifier(model_path)[0].to(dev)
                result, model = _run_cell(arm, subset, test_data, gen, s=s, seed=seed,
                                          real_model=real_model)
                if arm == "real":
                    real_model = model
                    if min_confidence is not None:
                        save_classifier(model, out / "cells" / f"{regime}-s{seed}-real.safetensors")
                        model.to(dev)
                cell = {"regime": regime, "seed": seed, "arm": arm,
                        "n_real": len(subset), "real_spec": subset.spec,
                        "settings": json.loads(json.dumps(_settings_key(s))), **result}
                atomic_write_text(cell_path, json.dumps(cell, indent=1) + "\n")
                cells.append(cell)
                bar.update(1)
            if gan_arms and seed == 0 and regime not in samples:
                samples[regime] = _sample_grid(out, regime, gen or given, subset)
    bar.close()
    doc = {
        "settings": {**_settings_key(s), "regimes": regimes, "arms": arm_list, "seeds": seeds,
                     "baseline": BASELINE if BASELINE in arm_list else arm_list[0],
                     "test_spec": test_data.spec, "n_test": len(test_data),
                     "classes": list(test_data.classes)},
        "environment": _environment(dev),
        "wall_s": round(time.perf_counter() - started, 1),
        "summary": summarize(cells, regimes, arm_list,
                             BASELINE if BASELINE in arm_list else arm_list[0]),
        "cells": cells,
    }
    _write_outputs(out, doc, samples)
    return doc


def _sample_grid(out: Path, regime: str, gen, subset) -> Path | None:
    """A grid of generated images (one row per class) for a regime, when a generator exists."""
    if gen is None:
        return None
    from ganaug.plots import save_class_grid

    images, labels = gen.sample(n_per_class=8, seed=0, return_labels=True)
    return save_class_grid(images.cpu(), labels.cpu(), gen.classes,
                           out / f"samples-{regime}.png", per_row=8,
                           title=f"generator of regime {regime}, seed 0")


# -- summaries and reports ------------------------------------------------------------------------
def summarize(cells: list[dict[str, Any]], regimes: Sequence[str], arms: Sequence[str],
              baseline: str) -> list[dict[str, Any]]:
    """One row per (regime, arm): accuracy and balanced accuracy over seeds, per-class means,
    and the paired difference against ``baseline``."""
    rows = []
    for regime in regimes:
        base = {c["seed"]: c for c in cells if c["regime"] == regime and c["arm"] == baseline}
        for arm in arms:
            mine = sorted((c for c in cells if c["regime"] == regime and c["arm"] == arm),
                          key=lambda c: c["seed"])
            if not mine:
                continue
            acc = [c["accuracy"] for c in mine]
            row = {"regime": regime, "arm": arm, "seeds": len(mine),
                   "accuracy": t_interval(acc),
                   "balanced_accuracy": t_interval([c["balanced_accuracy"] for c in mine]),
                   "per_class_accuracy": np.nanmean(
                       [c["per_class_accuracy"] for c in mine], axis=0).tolist(),
                   "wall_s": round(sum(c["wall_s"] for c in mine), 1)}
            paired = [(c["accuracy"], base[c["seed"]]["accuracy"]) for c in mine
                      if c["seed"] in base]
            if arm != baseline and paired:
                row["vs_baseline"] = paired_comparison([a for a, _ in paired],
                                                       [b for _, b in paired])
            rows.append(row)
    return rows


def _fmt_ci(stat: dict[str, Any]) -> str:
    if stat.get("std") is None:
        return f"{stat['mean']:.4f}"
    ci = "" if stat["low"] is None else f" [{stat['low']:.4f}, {stat['high']:.4f}]"
    return f"{stat['mean']:.4f} ± {stat['std']:.4f}{ci}"


def format_table(doc: dict[str, Any]) -> str:
    """The summary as a markdown table (also printed by the CLI)."""
    base = doc["settings"]["baseline"]
    lines = [("| regime | arm | accuracy mean ± std [95% CI] | balanced acc. | "
             f"diff vs {base} [95% CI] | p |"), "|---|---|---|---|---|---|"]
    for row in doc["summary"]:
        vs = row.get("vs_baseline")
        diff = _fmt_ci(vs) if vs else "—"
        p = f"{vs['p']:.3g}" if vs and vs.get("p") is not None else "—"
        lines.append(f"| {row['regime']} | {row['arm']} | {_fmt_ci(row['accuracy'])} | "
                     f"{row['balanced_accuracy']['mean']:.4f} | {diff} | {p} |")
    return "\n".join(lines)


def _report(doc: dict[str, Any], samples: dict[str, Path | None]) -> str:
    st, env = doc["settings"], doc["environment"]
    classes = st["classes"]
    out = io.StringIO()
    out.write("# ganaug experiment\n\n")
    tail = "" if st["imbalance"] is None else f", long tail ratio {st['imbalance']}"
    out.write(f"Data `{st['data']}`, test `{st['test_spec']}` ({st['n_test']} images); regimes "
              f"{', '.join(st['regimes'])} images per class{tail}; {st['seeds']} seeds; "
              f"classifier `{st['backbone']}` (stem {st['stem']}), "
              f"{st['classifier_steps']} steps x {st['batch_size']} images for every arm; GAN "
              f"steps {st['gan_steps'] or 'preset'}"
              f"{'; generator ' + st['generator'] if st['generator'] else ''}.\n\n")
    out.write("Accuracy on the untouched test split: mean ± sample std over seeds, 95% Student-t "
              f"interval; paired difference against `{st['baseline']}` (same seed = same real "
              "subset) with its 95% interval and the two-sided paired t-test p-value.\n\n")
    out.write(format_table(doc) + "\n\n")
    out.write("## Per-class accuracy (mean over seeds)\n\n")
    out.write("| regime | arm | " + " | ".join(map(str, classes)) + " |\n")
    out.write("|---|---|" + "---|" * len(classes) + "\n")
    for row in doc["summary"]:
        vals = " | ".join("—" if math.isnan(v) else f"{v:.3f}" for v in row["per_class_accuracy"])
        out.write(f"| {row['regime']} | {row['arm']} | {vals} |\n")
    out.write("\n## Pictures\n\n![accuracy](accuracy.png)\n\n")
    for regime, path in samples.items():
        if path is not None:
            out.write(f"![samples {regime}]({Path(path).name})\n\n")
    out.write(f"## Environment\n\nwall time {doc['wall_s']} s (cells computed in this run or "
              "cached); ")
    out.write(", ".join(f"{k} {v}" for k, v in env.items() if v is not None) + ".\n")
    return out.getvalue()


def _csv(doc: dict[str, Any]) -> str:
    buf = io.StringIO()
    fields = ["regime", "seed", "arm", "accuracy", "balanced_accuracy", "n_real", "train_data",
              "wall_s", "per_class_accuracy"]
    writer = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore")
    writer.writeheader()
    for cell in doc["cells"]:
        writer.writerow({**cell, "per_class_accuracy": json.dumps(cell["per_class_accuracy"])})
    return buf.getvalue()


def save_accuracy_plot(doc: dict[str, Any], path: str | os.PathLike) -> Path:
    """Accuracy vs images per class, one line per arm, 95% t-interval error bars."""
    from ganaug.plots import _pyplot, save_figure

    plt = _pyplot()
    regimes = doc["settings"]["regimes"]
    fig, ax = plt.subplots(figsize=(6, 4))
    xs = np.arange(len(regimes))
    for arm in doc["settings"]["arms"]:
        rows = {r["regime"]: r for r in doc["summary"] if r["arm"] == arm}
        mean = np.array([rows[g]["accuracy"]["mean"] if g in rows else np.nan for g in regimes])
        err = np.array([(rows[g]["accuracy"]["high"] - rows[g]["accuracy"]["mean"])
                        if g in rows and rows[g]["accuracy"]["high"] is not None else 0.0
                        for g in regimes])
        ax.errorbar(xs, mean, yerr=err, marker="o", capsize=3, label=arm)
    ax.set_xticks(xs, regimes)
    ax.set_xlabel("real images per class")
    ax.set_ylabel("test accuracy")
    ax.set_title("accuracy by arm (95% t-interval over seeds)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path, dpi=120)


def _write_outputs(out: Path, doc: dict[str, Any], samples: dict[str, Path | None]) -> None:
    from ganaug.metrics import finite_json

    atomic_write_text(out / "results.json", json.dumps(finite_json(doc), indent=1) + "\n")
    atomic_write_text(out / "results.csv", _csv(doc))
    save_accuracy_plot(doc, out / "accuracy.png")
    atomic_write_text(out / "report.md", _report(doc, samples))


# -- CLI ------------------------------------------------------------------------------------------
def parse_model_kwargs(text: str | None) -> dict[str, Any] | None:
    """``--model-kwargs`` (a YAML/JSON mapping) -> dict, with a clear error otherwise."""
    if not text:
        return None
    import yaml

    from ganaug.config import yaml_problem

    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as err:
        _, problem = yaml_problem(err)
        raise GanaugConfigError(
            f"--model-kwargs is not valid YAML/JSON: {text!r} ({problem}). "
            "Example: --model-kwargs '{channels: [32, 64, 128, 256]}'.") from None
    if not isinstance(value, dict):
        raise GanaugConfigError(
            f"--model-kwargs must be a mapping of timm.create_model arguments, got {text!r}. "
            "Example: --model-kwargs '{drop_rate: 0.1}'.")
    return value


def experiment_cli(args) -> int:
    """``ganaug experiment ...``: run, print the table and the paths."""
    doc = run_experiment(
        args.data, out=args.out, test=args.test, per_class=args.per_class,
        imbalance=args.imbalance, arms=args.arms, backbone=args.backbone, seeds=args.seeds,
        stem=args.stem, batch_size=args.batch_size,
        model_kwargs=parse_model_kwargs(args.model_kwargs),
        gan_steps=args.gan_steps, classifier_steps=args.classifier_steps,
        generator=args.generator, image_size=args.image_size,
        synthetic_ratio=args.synthetic_ratio, replace_p=args.replace_p,
        min_confidence=args.min_confidence, device=args.device)
    print(format_table(doc))
    out = Path(args.out)
    print(f"\nreport: {out / 'report.md'}\nresults: {out / 'results.json'}, "
          f"{out / 'results.csv'}\nplot: {out / 'accuracy.png'}")
    return 0


#: Budgets of ``ganaug demo``: the full one fits in 10 minutes on 2 CPU cores once installed;
#: ``quick`` takes seconds (tests).
DEMO_BUDGETS: dict[bool, dict[str, Any]] = {
    False: {"data": "mnist5k", "size": None, "gan_steps": 5000, "eval_per_class": 300,
            "eval_steps": 300, "classifier_steps": 250, "seeds": 2},
    True: {"data": "digits", "size": 16, "gan_steps": 4, "eval_per_class": 20,
           "eval_steps": 3, "classifier_steps": 3, "seeds": 2},
}
DEMO_ARMS = "real,real+aug,real+aug+gan,gan"


def demo(out: str = "runs/demo", quick: bool = False) -> dict[str, Any]:
    """The whole pipeline on the built-in mnist5k: data, GAN, samples, evaluation, experiment.

    Trains a conditional GAN on the train split (resuming or reusing a run already in
    ``out/gan``), writes a sample grid, evaluates the generator (FID-style distances,
    precision/recall, CAS) against the held-out test split, and runs a small experiment with
    that generator (``per_class=all``: the generator saw exactly that split, so no leakage).
    ``quick=True`` uses seconds-long budgets on ``digits`` (for tests).

    Returns:
        ``{"generator", "samples", "metrics", "experiment"}``.
    """
    from ganaug.config import TrainConfig
    from ganaug.data import load_data, save_data_grid
    from ganaug.io import load, read_metadata
    from ganaug.metrics import (
        DEFAULT_BACKBONE,
        DEFAULT_MODEL_KWARGS,
        DEFAULT_STEM,
        evaluate_generator,
        finite_json,
        format_metrics,
    )
    from ganaug.plots import save_class_grid
    from ganaug.training import Trainer

    b = DEMO_BUDGETS[bool(quick)]
    out = Path(out)
    train = load_data(b["data"], split="train", size=b["size"])
    test = load_data(b["data"], split="test", size=b["size"])
    print(f"[1/4] data: {train.source}: {len(train):,} training and {len(test):,} held-out test "
          f"images, {train.num_classes} classes, {train.channels}x{train.image_size}"
          f"x{train.image_size}")
    data_grid = save_data_grid(train, out / "data.png")

    print(f"[2/4] training a class-conditional GAN ({b['gan_steps']} steps)")
    gan_dir = out / "gan"
    model_file = gan_dir / "generator.safetensors"
    finished = model_file.is_file() and (
        read_metadata(model_file).get("training", {}).get("steps") == b["gan_steps"])
    if not finished:
        Trainer(TrainConfig(data=train.spec, steps=b["gan_steps"], seed=0, out=str(gan_dir),
                            resume=(gan_dir / "checkpoints" / "last.pt").is_file() or None),
                data=train).fit()
    gen = load(model_file)
    images, labels = gen.sample(n_per_class=8, seed=0, return_labels=True)
    samples = save_class_grid(images, labels, gen.classes, out / "samples.png", per_row=8,
                              title=f"{b['data']} generator, {b['gan_steps']} steps (seed 0)")

    print("[3/4] evaluating the generator against the held-out test split")
    metrics = evaluate_generator(gen, train, test, n_per_class=b["eval_per_class"],
                                 classifier_steps=b["eval_steps"], progress=not quick)
    atomic_write_text(out / "metrics.json", json.dumps(finite_json(metrics), indent=1) + "\n")
    print(format_metrics(metrics))

    print("[4/4] does it help a timm classifier? (same step budget per arm, "
          f"{b['seeds']} seeds)")
    doc = run_experiment(b["data"], out=out / "experiment", per_class="all", arms=DEMO_ARMS,
                         backbone=DEFAULT_BACKBONE, stem=DEFAULT_STEM,
                         model_kwargs=dict(DEFAULT_MODEL_KWARGS), seeds=b["seeds"],
                         classifier_steps=b["classifier_steps"], generator=str(model_file),
                         image_size=b["size"], progress=not quick)
    print(format_table(doc))
    exp = out / "experiment"
    print(f"\ngenerator: {model_file}\ndata grid: {data_grid}\nsamples:   {samples}\n"
          f"loss plot: {gan_dir / 'loss.png'}\nmetrics:   {out / 'metrics.json'}\n"
          f"report:    {exp / 'report.md'}\nplot:      {exp / 'accuracy.png'}")
    return {"generator": str(model_file), "samples": str(samples), "metrics": metrics,
            "experiment": doc}
