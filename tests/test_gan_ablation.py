"""benchmarks/gan_ablation.sh: the calibration turns the budget into a step count per config, the
runs train exactly that many steps, a rerun continues, and the table reads the runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _ablation(out: Path) -> subprocess.CompletedProcess:
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "PYTHON": sys.executable,
           "ONLY": "ttur", "SEEDS": "0", "CAL_STEPS": "20"}
    return subprocess.run(["bash", "benchmarks/gan_ablation.sh", "mnist5k?split=train", "0.05",
                           str(out), "--n-per-class", "5", "--classifier-steps", "5"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=900,
                          check=False)


@pytest.mark.slow
def test_a_config_trains_its_calibrated_steps_and_a_rerun_continues(tmp_path):
    done = _ablation(tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    steps = int((tmp_path / "calibration" / "ttur.steps").read_text())
    assert steps >= 1 and "ttur: " in done.stdout
    assert f"trained {steps} steps" in done.stdout
    assert (tmp_path / "ttur-s0" / "trained").is_file()
    assert (tmp_path / "ttur-s0" / "metrics.json").is_file()
    assert "| ttur (1 seeds) |" in done.stdout
    # a rerun trains nothing again and prints the same table
    again = _ablation(tmp_path)
    assert again.returncode == 0 and "== ttur seed 0" not in again.stdout
    assert "calibrating" not in again.stdout and "| ttur (1 seeds) |" in again.stdout


def _finished_run(folder: Path, cas_ratio: float, steps: int) -> None:
    folder.mkdir(parents=True)
    metrics = {"cas_ratio": cas_ratio, "intra_fid": 1.0, "precision": 0.5, "recall": 0.5}
    (folder / "metrics.json").write_text(json.dumps(metrics))
    (folder / "metrics.jsonl").write_text(json.dumps({"step": steps}) + "\n")
    (folder / "trained").touch()


def test_the_table_counts_finished_runs_only_never_runs_moved_aside(tmp_path):
    # A run killed at 1,000 steps and moved aside (ttur-s0.stale-...) still held an evaluation
    # of its cut-short generator; the table took it for a fourth seed.
    (tmp_path / "calibration").mkdir()
    (tmp_path / "calibration" / "ttur.steps").write_text("100\n")
    _finished_run(tmp_path / "ttur-s0", 0.8, 100)
    _finished_run(tmp_path / "ttur-s0.stale-killed-at-1000-steps", 0.1, 10)
    done = _ablation(tmp_path)  # everything is finished: nothing trains, the table prints
    assert done.returncode == 0, done.stderr[-2000:]
    assert "| ttur (1 seeds) | 0.800 ± nan |" in done.stdout
    assert "| 100 | 1.00 |" in done.stdout
