"""benchmarks/gan_ablation.sh: the calibration turns the budget into a step count per config, the
runs train exactly that many steps, a rerun continues, and the table reads the runs."""

from __future__ import annotations

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
