"""Has the classifier budget converged? Train ``real+aug`` at S and 2S steps, compare.

``ganaug experiment`` trains every arm for the same number of optimiser steps. A budget is fair
only when the baseline (``real+aug``: random crop + flip where it suits) has converged: doubling
its steps should move its accuracy by less than a point. This script trains that baseline with
the experiment's own recipe and data regime, for each seed and each budget, and prints the mean
accuracy per budget and the paired difference (2S - S) with its 95 % t-interval.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/budget_check.py --data mnist5k \
        --per-class 10 --steps 300,600 --seeds 3 --threads 1 --out runs/results/budget_mnist10

Each finished run is kept in ``OUT/budget.json``, so a rerun continues where it stopped.
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path

import torch
import yaml

from ganaug.data import load_data
from ganaug.evaluation import ExperimentSettings, evaluate_classifier
from ganaug.evaluation.regime import load_regime
from ganaug.evaluation.stats import paired_comparison


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True)
    p.add_argument("--test", default=None)
    p.add_argument("--per-class", default="all")
    p.add_argument("--imbalance", type=float, default=None)
    p.add_argument("--steps", default="300,600", help="comma-separated budgets")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--first-seed", type=int, default=0, dest="first_seed",
                   help="run seeds FIRST..FIRST+SEEDS-1 (to split seeds across processes)")
    p.add_argument("--backbone", default="resnet10t")
    p.add_argument("--stem", default="cifar-3x3-pool")
    p.add_argument("--model-kwargs", default="{channels: [32, 64, 128, 256], stem_width: 16}")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu", help="cpu | cuda (default cpu)")
    p.add_argument("--out", required=True)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    store = out / "budget.json"
    done = json.loads(store.read_text()) if store.is_file() else {}
    budgets = [int(s) for s in args.steps.split(",")]
    test = load_data(args.test or args.data, split=None if args.test else "test")
    accs: dict[int, list[float]] = {s: [] for s in budgets}
    for steps in budgets:
        settings = ExperimentSettings(
            data=args.data, test=args.test, arms="real+aug", backbone=args.backbone,
            stem=args.stem, model_kwargs=yaml.safe_load(args.model_kwargs),
            classifier_steps=steps, batch_size=args.batch, device=args.device, progress=False)
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            key = f"{args.per_class}-{args.imbalance}-{steps}-s{seed}"
            if key not in done:
                subset = load_regime(args.data, args.per_class, seed=seed, test=args.test,
                                     image_size=None, channels=None, imbalance=args.imbalance)
                start = time.perf_counter()
                model = settings.recipe("standard").train(subset, seed=seed, device=args.device,
                                                          progress=False)
                acc = evaluate_classifier(model, test.images, test.labels,
                                          device=args.device)["accuracy"]
                done[key] = {"accuracy": acc, "wall_s": round(time.perf_counter() - start, 1),
                             "n_real": len(subset)}
                store.write_text(json.dumps(done, indent=1) + "\n")
                print(f"steps {steps} seed {seed}: {acc:.4f} ({done[key]['wall_s']} s, "
                      f"{len(subset)} images)", flush=True)
            accs[steps].append(done[key]["accuracy"])
    print(f"\n{args.data} per-class {args.per_class} imbalance {args.imbalance}, real+aug:")
    for steps in budgets:
        a = torch.tensor(accs[steps])
        print(f"  {steps:>6} steps: {a.mean():.4f} ± {a.std():.4f}  "
              f"{[round(x, 4) for x in accs[steps]]}")
    for lo, hi in itertools.pairwise(budgets):
        d = paired_comparison(accs[hi], accs[lo])
        interval = "" if d["low"] is None else f" [{d['low']:+.4f}, {d['high']:+.4f}]"
        p = "" if d["p"] is None else f", p = {d['p']:.3g}"
        verdict = "converged" if abs(d["mean"]) < 0.01 else "NOT converged"
        print(f"  {hi} - {lo} steps: {d['mean']:+.4f}{interval}{p}  ({verdict}: doubling "
              "must move real+aug by < 1 point)")


if __name__ == "__main__":
    main()
