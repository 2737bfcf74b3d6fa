"""ganaug.demo: the whole pipeline with seconds-long budgets."""

from __future__ import annotations

import pytest


@pytest.mark.slow
def test_quick_demo_writes_every_output(tmp_path, monkeypatch, capsys):
    from ganaug.demo import demo

    monkeypatch.setenv("GANAUG_CACHE_DIR", str(tmp_path / "cache"))
    result = demo(out=str(tmp_path / "demo"), quick=True)
    for name in ("gan/generator.safetensors", "samples.png", "metrics.json",
                 "experiment/report.md", "experiment/accuracy.png"):
        assert (tmp_path / "demo" / name).is_file(), name
    assert 0.0 <= result["metrics"]["cas"] <= 1.0
    settings = result["experiment"]["settings"]  # the recommended recipe and its controls
    # (the teacher, real+aug, is trained first)
    assert settings["arms"] == ["real+aug", "real", "real+aug+kd", "real+aug+gan+kd"]
    assert (settings["teacher_filter"], settings["synthetic_loss_weight"]) == (0.1, 0.3)
    (verdict,) = result["experiment"]["verdict"]
    last = capsys.readouterr().out.rstrip().splitlines()[-1]
    assert last == f"verdict: {verdict['line']}" and last.startswith("verdict: regime all: ")
