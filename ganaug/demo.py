"""``ganaug demo``: the whole pipeline on the built-in mnist5k, from data to a verdict.

Data, a class-conditional GAN, its samples, the generator metrics against the held-out test split,
and a small experiment with that generator, each step printed as it goes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ganaug._files import atomic_write_text, guard_folder
from ganaug.data import load_data, save_data_grid
from ganaug.evaluation import (
    DEFAULT_BACKBONE,
    DEFAULT_MODEL_KWARGS,
    DEFAULT_STEM,
    evaluate_generator,
    finite_json,
    format_metrics,
    format_table,
    run_experiment,
)
from ganaug.evaluation.arms import RECOMMENDED_ARMS, RECOMMENDED_SETTINGS
from ganaug.evaluation.regime import train_gan
from ganaug.evaluation.verdict import format_verdict
from ganaug.io import load
from ganaug.plots import save_generator_grid

__all__ = ["DEMO_ARMS", "DEMO_BUDGETS", "adopt_old_demo", "demo"]

#: Budgets of ``ganaug demo``: the full one took 13 minutes on one CPU thread beside two other
#: jobs (docs/results.md, section 3); ``quick`` takes seconds (tests). 7,300 GAN steps of the grey
#: preset's one D step cost what 5,000 of its earlier two did (a step is 0.69x as dear).
DEMO_BUDGETS: dict[bool, dict[str, Any]] = {
    False: {"data": "mnist5k", "size": None, "gan_steps": 7300, "eval_per_class": 300,
            "eval_steps": 300, "classifier_steps": 250, "seeds": 2},
    True: {"data": "digits", "size": 16, "gan_steps": 4, "eval_per_class": 20,
           "eval_steps": 3, "classifier_steps": 3, "seeds": 2},
}
#: The recommended recipe's GAN arm and its controls (``ganaug.evaluation.arms``).
DEMO_ARMS = ",".join(RECOMMENDED_ARMS)


#: What a demo writes in its folder (a folder of these alone, from before demo.json, is one).
DEMO_OUTPUTS = frozenset({"data.png", "samples.png", "metrics.json", "gan", "experiment"})


def adopt_old_demo(out: Path, data: str) -> None:
    """Record ``demo.json`` in a folder that a demo made before it recorded one: it holds the
    demo's outputs alone, and its ``gan`` run trained on ``data``. Any other folder is left to
    the refusal of :func:`ganaug._files.guard_folder`."""
    import yaml

    if not out.is_dir() or (out / "demo.json").exists():
        return
    if not {p.name for p in out.iterdir()} <= DEMO_OUTPUTS:
        return
    try:
        config = yaml.safe_load((out / "gan" / "config.yaml").read_text())
    except (OSError, ValueError, yaml.YAMLError):
        return
    if isinstance(config, dict) and str(config.get("data", "")).partition("?")[0] == data:
        atomic_write_text(out / "demo.json", json.dumps({"demo": "ganaug demo", "data": data}))


def demo(out: str = "runs/demo", quick: bool = False) -> dict[str, Any]:
    """The whole pipeline on the built-in mnist5k: data, GAN, samples, evaluation, experiment.

    Trains a conditional GAN on the train split (resuming or reusing a run already in
    ``out/gan``), writes a sample grid, evaluates the generator (FID-style distances,
    precision/recall, CAS) against the held-out test split, and runs a small experiment with
    that generator (``per_class=all``: the generator saw exactly that split, so no leakage).
    ``out`` must be new, empty, or an earlier demo's folder (``out/demo.json``).
    ``quick=True`` uses seconds-long budgets on ``digits`` (for tests).

    Returns:
        ``{"generator", "samples", "metrics", "experiment"}``.
    """
    b = DEMO_BUDGETS[bool(quick)]
    out = Path(out)
    # data.png, samples.png and metrics.json would replace a user's files of those names
    adopt_old_demo(out, b["data"])
    guard_folder(out, {"demo": "ganaug demo", "data": b["data"]}, name="demo.json",
                 what="a ganaug demo", fix="Use another --out, or the --quick setting of the "
                                           "demo there.")
    train = load_data(b["data"], split="train", size=b["size"])
    test = load_data(b["data"], split="test", size=b["size"])
    print(f"[1/4] data: {train.source}: {len(train):,} training and {len(test):,} held-out test "
          f"images, {train.num_classes} classes, {train.channels}x{train.image_size}"
          f"x{train.image_size}")
    data_grid = save_data_grid(train, out / "data.png")

    print(f"[2/4] training a class-conditional GAN ({b['gan_steps']} steps)")
    gan_dir = out / "gan"
    model_file = train_gan(train, gan_dir, seed=0, steps=b["gan_steps"])
    gen = load(model_file)
    samples = save_generator_grid(gen, out / "samples.png", per_class=8, seed=0,
                                  title=f"{b['data']} generator, {b['gan_steps']} steps (seed 0)")

    print("[3/4] evaluating the generator against the held-out test split")
    metrics = evaluate_generator(gen, train, test, n_per_class=b["eval_per_class"],
                                 classifier_steps=b["eval_steps"], progress=not quick)
    atomic_write_text(out / "metrics.json", json.dumps(finite_json(metrics), indent=1) + "\n")
    print(format_metrics(metrics))

    print("[4/4] does it help a timm classifier? The recommended recipe (real+aug+gan+kd: "
          "teacher-relabelled, filtered, down-weighted GAN images) against its controls, same "
          f"step budget per arm, {b['seeds']} seeds")
    doc = run_experiment(b["data"], out=out / "experiment", per_class="all", arms=DEMO_ARMS,
                         backbone=DEFAULT_BACKBONE, stem=DEFAULT_STEM,
                         model_kwargs=dict(DEFAULT_MODEL_KWARGS), seeds=b["seeds"],
                         classifier_steps=b["classifier_steps"], generator=str(model_file),
                         image_size=b["size"], progress=not quick, **RECOMMENDED_SETTINGS)
    print(format_table(doc))
    exp = out / "experiment"
    print(f"\ngenerator: {model_file}\ndata grid: {data_grid}\nsamples:   {samples}\n"
          f"loss plot: {gan_dir / 'loss.png'}\nmetrics:   {out / 'metrics.json'}\n"
          f"report:    {exp / 'report.md'}\nplot:      {exp / 'accuracy.png'}")
    # The verdict comes last: it is what a user acts on.
    print(f"\nverdict: {format_verdict(doc)}")
    return {"generator": str(model_file), "samples": str(samples), "metrics": metrics,
            "experiment": doc}
