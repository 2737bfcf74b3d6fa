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

import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from ganaug._devices import DeviceLike, environment
from ganaug._specs import check_output_outside
from ganaug.augment import Distiller, Teacher
from ganaug.augment.teacher import LABEL_WEIGHT, TEMPERATURE
from ganaug.data import load_data
from ganaug.evaluation.arms import (
    ARMS,
    arm_data,
)
from ganaug.evaluation.cells import CellCache, experiment_folder
from ganaug.evaluation.classifier import (
    check_same_classes,
    evaluate_classifier,
)
from ganaug.evaluation.regime import (
    check_disjoint,
    check_gan_size,
    check_no_leakage,
    check_regimes,
    gan_folder,
    load_regime,
    parse_regimes,
    regime_generator,
)
from ganaug.evaluation.report import save_received, summarize, write_outputs
from ganaug.evaluation.settings import ExperimentSettings
from ganaug.evaluation.teachers import SeedTeachers
from ganaug.evaluation.verdict import verdicts
from ganaug.io import load
from ganaug.plots import save_generator_grid
from ganaug.progress import progress_bar

__all__ = [
    "ExperimentSettings",
    "check_no_leakage",
    "load_regime",
    "parse_regimes",
    "run_experiment",
]

# -- the cells --------------------------------------------------------------------------------------
def cell_distiller(settings: ExperimentSettings, teacher_model) -> Distiller | None:
    """The :class:`ganaug.Distiller` of a cell whose arm learns from (or is filtered by)
    ``teacher_model``: the recipe's one object, with the experiment's settings."""
    if teacher_model is None:
        return None
    teacher = Teacher(teacher_model, temperature=settings.kd_temperature,
                      label_weight=settings.kd_alpha,
                      drop_hardest=settings.teacher_filter or 0.0)
    return Distiller(teacher, synthetic_weight=settings.synthetic_loss_weight)


def _run_cell(name: str, subset, test, generator, *, settings: ExperimentSettings, seed: int,
              real_model, teacher=None, grids: Path | None = None, regime: str = ""):
    arm = ARMS[name]
    start = time.perf_counter()
    train_data, mixer, note = arm_data(
        arm, subset, generator, seed=seed, synthetic_ratio=settings.synthetic_ratio,
        replace_p=settings.replace_p, balanced=settings.imbalance is not None,
        filter_model=real_model, min_confidence=settings.min_confidence)
    who = settings.teacher_backbone or arm.teacher
    distiller = cell_distiller(settings, teacher)
    if arm.uses_gan and mixer is None:
        images, labels = train_data
        first = len(subset) if arm.data == "real+synthetic" else 0  # the first synthetic row
        keep = torch.ones(len(labels), dtype=torch.bool)
        if settings.teacher_filter is not None:
            keep[first:] = distiller.keep(images[first:], labels[first:])
            note += f", {int((~keep).sum())} synthetic dropped by the {who} teacher's loss"
        if grids is not None:
            save_received(grids, name, regime, subset.classes, images, labels, keep, first)
        if not keep.all():
            train_data = (images[keep], labels[keep])
    if arm.distill:
        note += f", distilled from {who} (T={settings.kd_temperature:g}, " \
                f"alpha={settings.kd_alpha:g})"
    synthetic, weight = None, 1.0
    if arm.data == "real+synthetic" and settings.synthetic_loss_weight != 1.0:
        # Appended synthetic rows follow the real ones; a BatchMixer marks the rows it replaced.
        weight = settings.synthetic_loss_weight
        synthetic = torch.arange(len(train_data[1])) >= len(subset)
        note += f", synthetic loss x{weight:g}"
    model = settings.recipe(arm.augment).train(
        train_data, like=subset, seed=seed, mixer=mixer, class_weights=arm.class_weights,
        sampler=arm.sampler, synthetic=synthetic, synthetic_weight=weight,
        distiller=distiller if arm.distill else None,
        device=settings.device, progress=settings.progress, desc=name)
    result = evaluate_classifier(model, test.images, test.labels, device=settings.device)
    result.update(train_data=note, wall_s=round(time.perf_counter() - start, 2))
    return result, model


# -- the experiment -------------------------------------------------------------------------------
def _run_arms(settings: ExperimentSettings, cache: CellCache, regime: str, seed: int, subset,
              test, given, gan_dir: Path, done: Callable[[dict[str, Any]], None]):
    """Every arm of one regime and seed (cached or computed); returns the generator used, if any."""
    gen = None
    teachers = SeedTeachers(settings, cache, regime, seed, subset)
    for name in settings.arms:
        cached = None if teachers.missing(name) else cache.get(regime, seed, name, subset)
        if cached is not None:
            done(cached)
            continue
        if ARMS[name].uses_gan and gen is None:
            gen = regime_generator(settings, subset, test, given, gan_dir, seed)
        # min_confidence: the real arm (run first) filters the GAN arms' synthetic images.
        real_model = (teachers.real_filter() if ARMS[name].uses_gan
                      and settings.min_confidence is not None else None)
        result, model = _run_cell(name, subset, test, gen, settings=settings, seed=seed,
                                  real_model=real_model, teacher=teachers.of(name),
                                  regime=regime, grids=cache.folder.parent if seed == 0 else None)
        teachers.keep(name, model)
        cell = cache.cell(regime, seed, name, subset, result)
        cache.put(cell)
        done(cell)
    return gen


def run_experiment(data: str, *, out: str | os.PathLike, test: str | None = None,
                   per_class: str | int | Sequence = "all", imbalance: float | None = None,
                   arms: str | Sequence | None = None, backbone: str = "resnet18",
                   stem: str = "auto", seeds: int = 3, first_seed: int = 0,
                   gan_steps: int | None = None,
                   classifier_steps: int | None = None, batch_size: int = 128,
                   generator: str | os.PathLike | None = None, image_size: int | None = None,
                   synthetic_ratio: float | None = None, replace_p: float | None = None,
                   min_confidence: float | None = None, kd_temperature: float = TEMPERATURE,
                   kd_alpha: float = LABEL_WEIGHT, teacher_filter: float | None = None,
                   synthetic_loss_weight: float = 1.0, teacher_backbone: str | None = None,
                   device: DeviceLike = None,
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
        backbone, stem: the timm classifier (see :func:`ganaug.evaluation.create_classifier`).
        seeds, first_seed: seeds ``first_seed`` .. ``first_seed + seeds - 1``; each draws its
            own subset, GAN and classifiers. Processes sharing ``out`` can take different seeds;
            a run over all seeds then reuses their cells.
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
            to their class with at least this probability (with GAN arms, ``real`` is added to
            the arms if missing, and runs first).
        kd_temperature, kd_alpha: the ``+kd`` arms' teacher temperature and the weight of the
            hard labels (:class:`ganaug.Teacher`'s ``temperature`` and ``label_weight``).
        teacher_filter: drop this fraction of each GAN arm's appended synthetic images, those
            with the highest loss under the seed's teacher.
        synthetic_loss_weight: weight of each synthetic row's loss in the ``real+synthetic``
            arms (``sum w_i CE_i / sum w_i``; 1 = unweighted; e.g. 0.1 as in EC-GAN).
        teacher_backbone: the teacher of ``+kd`` arms and ``teacher_filter``: None uses the
            seed's classifier of each arm's real-only counterpart (``real+aug``, or
            ``real+weighted``/``real+oversample``: already trained, no extra cost); a timm name trains
            that backbone (default width, real+aug's recipe) on each seed's real subset once.
        device: where classifiers and GANs run (``None``: the best available).
        gan_config: extra :class:`ganaug.TrainConfig` fields for the GANs.
        model_kwargs: extra ``timm.create_model`` arguments of the classifier.
        progress: show progress bars.

    Returns:
        The ``results.json`` document; its ``verdict`` holds one
        :func:`ganaug.evaluation.verdict.regime_verdict` per regime (each GAN arm against the
        best non-GAN arm of the regime, and the one-line verdict).

    Raises:
        GanaugConfigError: invalid settings (see :class:`ExperimentSettings`).
        GanaugDataError: a leaking ``generator``, or test data with other classes.
    """

    settings = ExperimentSettings(
        data=data, test=test, regimes=per_class, arms=arms, seeds=seeds, first_seed=first_seed,
        imbalance=imbalance, backbone=backbone, stem=stem, model_kwargs=model_kwargs,
        classifier_steps=classifier_steps, batch_size=batch_size, gan_steps=gan_steps,
        gan_config=gan_config, generator=generator, image_size=image_size,
        synthetic_ratio=synthetic_ratio, replace_p=replace_p, min_confidence=min_confidence,
        kd_temperature=kd_temperature, kd_alpha=kd_alpha, teacher_filter=teacher_filter,
        synthetic_loss_weight=synthetic_loss_weight, teacher_backbone=teacher_backbone,
        device=device, progress=progress)
    for spec in (settings.data, settings.test):  # its GAN runs' sample grids would be classes
        check_output_outside(out, spec)
    out = experiment_folder(out)
    given = None
    if settings.generator is not None:
        given = load(settings.generator, device=settings.device or "cpu")
        settings.image_size = settings.image_size or given.image_size
        settings.channels = given.channels
    test_data = load_data(test or data, split=None if test else "test",
                          size=settings.image_size, channels=settings.channels)
    pool = check_disjoint(data, test, test_data, image_size=settings.image_size,
                          channels=settings.channels)
    check_regimes(pool, settings.regimes, settings.imbalance)
    if given is None:
        check_gan_size(settings.gan_arms, settings.gan_config, test_data.image_size,
                       test_data.channels, device=settings.device, width=test_data.images.shape[-1])
    started = time.perf_counter()
    cache = CellCache(out / "cells", settings.cell_key, test=test_data, generator=given)
    cells: list[dict[str, Any]] = []
    samples: dict[str, Path | None] = {}
    bar = progress_bar(total=len(settings.regimes) * settings.seeds * len(settings.arms),
                       desc="experiment", unit="cell", disable=not progress)

    def done(cell: dict[str, Any]) -> None:
        cells.append(cell)
        bar.update(1)

    for regime in settings.regimes:
        for seed in range(settings.first_seed, settings.first_seed + settings.seeds):
            subset = load_regime(data, regime, seed=seed, test=test,
                                 image_size=settings.image_size, channels=settings.channels,
                                 imbalance=imbalance)
            # names and order, not the count alone: a label must name one class in both
            check_same_classes("the training data", subset.classes, "the test data",
                               test_data.classes)
            gen = _run_arms(settings, cache, regime, seed, subset, test_data, given,
                            gan_folder(out, regime, seed, settings.gan_config), done)
            if settings.gan_arms and seed == 0 and regime not in samples:
                samples[regime] = _sample_grid(out, regime, gen or given)
    bar.close()
    # What the GAN arms' classifiers received (seed 0, after any teacher filter), and what it dropped.
    for grid in sorted(out.glob("received-*.png")) + sorted(out.glob("dropped-*.png")):
        samples[grid.stem] = grid
    doc = {
        "settings": {**settings.cell_key(), "regimes": settings.regimes, "arms": settings.arms,
                     "seeds": settings.seeds, "first_seed": settings.first_seed,
                     "baseline": settings.baseline, "test_spec": test_data.spec,
                     "n_test": len(test_data), "classes": list(test_data.classes)},
        "environment": environment(settings.device),
        "wall_s": round(time.perf_counter() - started, 1),
        "summary": summarize(cells, settings.regimes, settings.arms, settings.baseline),
        "verdict": verdicts(cells, settings.regimes, settings.arms),
        "cells": cells,
    }
    write_outputs(out, doc, samples)
    return doc


def _sample_grid(out: Path, regime: str, gen) -> Path | None:
    """A grid of generated images (one row per class) for a regime, when a generator exists."""
    if gen is None:
        return None
    return save_generator_grid(gen, out / f"samples-{regime}.png", per_class=8, seed=0,
                               title=f"generator of regime {regime}, seed 0")
