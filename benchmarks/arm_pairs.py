"""Paired difference of any two arms of a finished ``ganaug experiment``, overall and per class.

The report pairs every arm with ``real+aug`` and every GAN arm with the best control; this
pairs any two, e.g. the recipe against distillation alone (what the synthetic images add):

    .venv/bin/python benchmarks/arm_pairs.py runs/results/recipe_cifar_lt10 \
        real+aug+gan+kd real+aug+kd
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from ganaug.evaluation.stats import paired_comparison


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", help="the experiment's --out folder (its results.json)")
    p.add_argument("arm")
    p.add_argument("baseline")
    args = p.parse_args()
    doc = json.loads((Path(args.out) / "results.json").read_text())
    classes = doc["settings"].get("classes")
    for regime in dict.fromkeys(c["regime"] for c in doc["cells"]):
        cells = {(c["arm"], c["seed"]): c for c in doc["cells"] if c["regime"] == regime}
        seeds = sorted(s for a, s in cells if a == args.arm and (args.baseline, s) in cells)
        if not seeds:
            print(f"regime {regime}: no seed has both {args.arm} and {args.baseline}")
            continue
        arm = [cells[args.arm, s] for s in seeds]
        base = [cells[args.baseline, s] for s in seeds]
        cmp = paired_comparison([c["accuracy"] for c in arm], [c["accuracy"] for c in base])
        per_seed = ", ".join(f"{100 * (a['accuracy'] - b['accuracy']):+.2f}"
                             for a, b in zip(arm, base, strict=True))
        p_text = "untested" if cmp["p"] is None else f"p = {cmp['p']:.3f}"
        print(f"regime {regime}: {args.arm} - {args.baseline} over seeds {seeds}: "
              f"{100 * cmp['mean']:+.2f} points [{100 * cmp['low']:+.1f}, "
              f"{100 * cmp['high']:+.1f}], {p_text} (per seed {per_seed})")
        diff = np.mean([np.subtract(a["per_class_accuracy"], b["per_class_accuracy"])
                        for a, b in zip(arm, base, strict=True)], axis=0)
        names = classes or [str(k) for k in range(len(diff))]
        print("  per class, mean over seeds: " + ", ".join(
            f"{n} {100 * d:+.1f}" for n, d in zip(names, diff, strict=True)))


if __name__ == "__main__":
    main()
