"""benchmarks/arm_pairs.py: the paired difference of any two arms of a finished experiment."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "arm_pairs.py"


def _cell(arm: str, seed: int, acc: float, per_class: list[float]) -> dict:
    return {"regime": "all", "arm": arm, "seed": seed, "accuracy": acc,
            "per_class_accuracy": per_class}


def test_arm_pairs_prints_the_paired_difference_and_the_per_class_one(tmp_path):
    cells = [_cell("a", 0, 0.60, [0.9, 0.3]), _cell("b", 0, 0.58, [0.9, 0.26]),
             _cell("a", 1, 0.55, [0.8, 0.3]), _cell("b", 1, 0.54, [0.8, 0.28]),
             _cell("a", 2, 0.57, [0.8, 0.34]), _cell("b", 2, 0.54, [0.8, 0.28]),
             _cell("b", 3, 0.50, [0.5, 0.5])]  # a seed without the arm is left out
    (tmp_path / "results.json").write_text(json.dumps(
        {"settings": {"classes": ["cat", "ship"]}, "cells": cells}))
    out = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path), "a", "b"], check=True,
                         capture_output=True, text=True).stdout
    assert "a - b over seeds [0, 1, 2]: +2.00 points" in out
    assert "(per seed +2.00, +1.00, +3.00)" in out and "p = 0.074" in out
    assert "per class, mean over seeds: cat +0.0, ship +4.0" in out
