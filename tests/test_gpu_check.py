"""benchmarks/gpu_check.sh: the one-GPU check runs end to end on the CPU with --quick, so it
cannot rot while no GPU is at hand, and refuses a non-quick run without CUDA."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.sh"


def _run(*args: str, out: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "OUT": str(out), "PYTHON": sys.executable, "OMP_NUM_THREADS": "1"}
    return subprocess.run(["bash", str(SCRIPT), *args], check=False, cwd=SCRIPT.parents[1], env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_unknown_option_is_refused(tmp_path):
    done = _run("--fast", out=tmp_path)
    assert done.returncode == 2
    assert "unknown option --fast (use --quick or a data folder)" in done.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU refusal")
def test_a_full_check_without_cuda_says_use_quick(tmp_path):
    done = _run(out=tmp_path)
    assert done.returncode == 2
    assert "no CUDA device here; run 'benchmarks/gpu_check.sh --quick'" in done.stderr
    assert not (tmp_path / "gpu_check.json").exists()


@pytest.mark.slow
def test_quick_check_writes_its_json_under_out(tmp_path):
    done = _run("--quick", str(tmp_path / "no-such-cifar"), out=tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    doc = json.loads((tmp_path / "gpu_check.json").read_text())
    assert doc["quick"] is True and doc["device"] == "cpu" and doc["failures"] == []
    # fp32 and the CUDA default (channels_last, AMP off); AMP + channels_last runs on CUDA only.
    assert set(doc["train"]) == {"dcgan-fp32", "dcgan-cl", "resnet-cl"}
    for name, row in doc["train"].items():
        assert row["ms_per_step"] > 0 and row["ratio_vs_plain_pytorch"] > 0, name
        assert row["amp"] is False  # AMP is CUDA-only: what ran, not what was asked
    assert doc["train"]["dcgan-cl"]["channels_last"] is True
    assert set(doc["sample_images_per_s"]["dcgan"]) == {"1", "16", "256", "1024"}
    cifar = doc["cifar_run"]
    assert cifar["data"].startswith("digits?size=32&channels=3")  # the fallback
    assert 0.0 <= cifar["cas"] <= 1.0 and cifar["feature_classifier_trusted"] is False
    assert Path(cifar["run"], "generator.safetensors").is_file()
    assert (tmp_path / "parts" / "cifar-evaluate.json").is_file()
