"""benchmarks/gpu_experiments.sh: #15's long-tail table for a lent GPU runs end to end on the CPU
with --quick (so it cannot rot while no GPU is at hand) and refuses a full run without CUDA."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_experiments.sh"


def _run(*args: str, out: Path, timeout: int = 900) -> subprocess.CompletedProcess:
    env = {**os.environ, "OUT": str(out), "PYTHON": sys.executable}
    return subprocess.run(["bash", str(SCRIPT), *args], check=False, cwd=SCRIPT.parents[1],
                          env=env, capture_output=True, text=True, timeout=timeout)


def test_unknown_option_is_refused(tmp_path):
    done = _run("--fast", out=tmp_path)
    assert done.returncode == 2 and "unknown option --fast" in done.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU refusal")
def test_a_full_run_without_cuda_says_use_quick(tmp_path):
    done = _run(out=tmp_path)
    assert done.returncode == 2 and "no CUDA device here" in done.stderr
    assert not (tmp_path / "table.tgz").exists()


@pytest.mark.slow
def test_quick_run_brings_back_the_budget_lines_the_report_and_the_cells(tmp_path):
    done = _run("--quick", out=tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    budget = (tmp_path / "budget.txt").read_text().splitlines()
    assert sorted(line.split("\t")[0] for line in budget) == [
        f"all-10.0-{steps}-s{seed}" for steps in (4, 8) for seed in range(3)]
    report = (tmp_path / "report.md").read_text()
    assert "**Verdict**" in report and "3 seeds" in report and "real+weighted+gan+kd" in report
    with tarfile.open(tmp_path / "table.tgz") as tar:
        names = tar.getnames()
    cells = [n for n in names if n.startswith("table/cells/") and n.endswith(".json")]
    # five asked arms + the four long-tail arms, three seeds each; no model travels back
    assert len(cells) == 9 * 3
    assert not [n for n in names if n.endswith((".safetensors", ".pt"))]
