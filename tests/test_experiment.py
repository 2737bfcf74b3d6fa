"""ganaug.experiment: regimes x seeds x arms, cached cells, leakage refusal, statistics."""

from __future__ import annotations

import csv
import json
import math

import pytest

from ganaug.errors import GanaugConfigError, GanaugDataError
from ganaug.experiment import (
    check_no_leakage,
    paired_comparison,
    parse_arms,
    parse_regimes,
    run_experiment,
    t_interval,
)

TINY = {"per_class": "10", "arms": "real,real+aug,real+gan,gan", "backbone": "resnet10t",
            "stem": "cifar-3x3-pool", "seeds": 2, "gan_steps": 2, "classifier_steps": 3,
            "image_size": 16,
            "batch_size": 32, "model_kwargs": {"channels": (8, 16, 32, 64), "stem_width": 8},
            "progress": False}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("exp")
    return out, run_experiment("digits", out=out, **TINY)


# -- statistics against scipy on known numbers -----------------------------------------------------
def test_t_interval_known_numbers():
    from scipy import stats

    got = t_interval([1.0, 2.0, 3.0, 4.0])
    std = math.sqrt(5 / 3)
    half = stats.t.ppf(0.975, 3) * std / 2  # 3.1824 * 1.2910 / sqrt(4)
    assert got["mean"] == pytest.approx(2.5) and got["std"] == pytest.approx(std)
    assert got["low"] == pytest.approx(2.5 - half) and got["high"] == pytest.approx(2.5 + half)
    assert got["low"] == pytest.approx(0.4457, abs=1e-4)


def test_t_interval_of_one_value_has_no_interval():
    assert t_interval([0.7]) == {"mean": 0.7, "std": None, "low": None, "high": None, "n": 1}


def test_paired_comparison_known_numbers():
    from scipy import stats

    got = paired_comparison([0.90, 0.80, 0.85], [0.80, 0.75, 0.80])
    # differences 0.10, 0.05, 0.05: mean 1/15, sd 0.02887, t = 4.0 with 2 degrees of freedom
    assert got["mean"] == pytest.approx(1 / 15)
    assert got["p"] == pytest.approx(2 * stats.t.sf(4.0, 2), rel=1e-6)
    assert got["p"] == pytest.approx(0.0572, abs=1e-4)
    assert got["low"] < got["mean"] < got["high"]


def test_paired_comparison_needs_matching_lengths():
    with pytest.raises(GanaugDataError, match=r"one value per seed on both sides; got 2 and 3"):
        paired_comparison([1, 2], [1, 2, 3])
    assert paired_comparison([0.5, 0.6], [0.5, 0.6])["p"] is None


# -- settings --------------------------------------------------------------------------------------
def test_parse_regimes_and_arms():
    assert parse_regimes("10, 50,all") == ["10", "50", "all"]
    assert parse_arms("real,gan", None) == ["real", "gan"]
    assert parse_arms("real", 10.0) == ["real", "real+weighted", "real+oversample"]
    with pytest.raises(GanaugConfigError, match=r"--per-class takes positive integers or 'all'"):
        parse_regimes("10,half")
    with pytest.raises(GanaugConfigError,
                       match=r"Unknown arm 'real\+gann'.*Did you mean 'real\+gan'"):
        parse_arms("real,real+gann", None)


# -- the run ---------------------------------------------------------------------------------------
def test_report_files_hold_real_numbers(tiny_run):
    out, _doc = tiny_run
    for name in ("results.json", "results.csv", "report.md", "accuracy.png", "samples-10.png"):
        assert (out / name).is_file(), name
    saved = json.loads((out / "results.json").read_text())
    assert len(saved["cells"]) == 1 * 2 * 4
    assert {c["arm"] for c in saved["cells"]} == {"real", "real+aug", "real+gan", "gan"}
    for cell in saved["cells"]:
        assert 0.0 <= cell["accuracy"] <= 1.0 and len(cell["per_class_accuracy"]) == 10
        assert cell["n_real"] == 100
    rows = {r["arm"]: r for r in saved["summary"]}
    real = [c["accuracy"] for c in saved["cells"] if c["arm"] == "real"]
    assert rows["real"]["accuracy"]["mean"] == pytest.approx(sum(real) / 2)
    assert "vs_baseline" in rows["gan"] and "vs_baseline" not in rows["real+aug"]
    assert saved["environment"]["cpu_count"] >= 1 and saved["environment"]["torch"]
    with open(out / "results.csv") as f:
        assert len(list(csv.DictReader(f))) == 8
    report = (out / "report.md").read_text()
    assert "diff vs real+aug" in report and "| 10 | real+gan |" in report
    gan_cell = next(c for c in saved["cells"] if c["arm"] == "real+gan")
    assert gan_cell["train_data"] == "100 real + 100 synthetic"


def test_rerun_uses_cached_cells(tiny_run, monkeypatch):
    import ganaug.classifier
    import ganaug.training

    out, doc = tiny_run

    def boom(*args, **kwargs):
        raise AssertionError("retrained a cached cell")

    monkeypatch.setattr(ganaug.classifier, "train_classifier", boom)
    monkeypatch.setattr(ganaug.training.Trainer, "fit", boom)
    again = run_experiment("digits", out=out, **TINY)
    assert [c["accuracy"] for c in again["cells"]] == [c["accuracy"] for c in doc["cells"]]


def test_changed_settings_retrain_cells(tiny_run, monkeypatch):
    import ganaug.classifier

    out, _ = tiny_run
    calls = []
    monkeypatch.setattr(ganaug.classifier, "train_classifier",
                        lambda *a, **k: calls.append(1) or a[0])
    run_experiment("digits", out=out, **{**TINY, "classifier_steps": 4, "arms": "real",
                                         "seeds": 1})
    assert calls == [1]


# -- leakage ---------------------------------------------------------------------------------------
def _saved_generator(tmp_path, training):
    from ganaug.generator import Generator
    from ganaug.io import load, save
    from ganaug.models import build_generator

    net = build_generator("dcgan", num_classes=10, channels=1, image_size=16, z_dim=16, width=8)
    path = save(Generator(net, classes=[str(i) for i in range(10)], arch="dcgan"),
                tmp_path / "g.safetensors", metadata={"training": training})
    return path, load(path)


def test_generator_trained_on_the_full_train_split_is_refused_for_a_subset(tmp_path):
    from ganaug.data import load_data

    full = load_data("digits", split="train", size=16)
    path, _ = _saved_generator(tmp_path, {"data": full.spec,
                                          "data_fingerprint": full.fingerprint()})
    with pytest.raises(GanaugDataError, match=r"was trained on digits\?split=train.*not on this "
                                              r"regime's training subset.*test split"):
        run_experiment("digits", out=tmp_path / "exp", generator=path,
                       **{**TINY, "arms": "real+gan", "seeds": 1})


def test_generator_that_saw_the_test_split_is_refused(tmp_path):
    from ganaug.data import load_data

    everything = load_data("digits", size=16)
    subset = load_data("digits", split="train", size=16)
    test = load_data("digits", split="test", size=16)
    _, gen = _saved_generator(tmp_path, {"data": everything.spec,
                                         "data_fingerprint": everything.fingerprint()})
    with pytest.raises(GanaugDataError, match=r"from the test split digits\?split=test"):
        check_no_leakage(gen, subset, test)


def test_generator_of_exactly_the_subset_is_accepted_and_unknown_is_refused(tmp_path):
    from ganaug.data import load_data

    subset = load_data("digits", split="train", size=16)
    test = load_data("digits", split="test", size=16)
    _, gen = _saved_generator(tmp_path, {"data": subset.spec,
                                         "data_fingerprint": subset.fingerprint()})
    check_no_leakage(gen, subset, test)  # no error
    gen.metadata["training"] = {}
    with pytest.raises(GanaugDataError, match=r"records no training-data fingerprint"):
        check_no_leakage(gen, subset, test)


def test_bad_options_are_refused(tmp_path):
    with pytest.raises(GanaugConfigError, match=r"--replace-p must be in \(0, 1\]; got 1.5"):
        run_experiment("digits", out=tmp_path, **{**TINY, "replace_p": 1.5})
    with pytest.raises(GanaugConfigError, match=r"seeds must be a positive integer; got 0"):
        run_experiment("digits", out=tmp_path, **{**TINY, "seeds": 0})


# -- CLI and demo ---------------------------------------------------------------------------------
def test_experiment_cli_prints_the_table_and_paths(tmp_path, capsys):
    from ganaug.cli import main

    code = main(["experiment", "--data", "digits", "--per-class", "10", "--arms", "real",
                 "--backbone", "resnet10t", "--seeds", "1", "--classifier-steps", "2",
                 "--size", "16", "--out", str(tmp_path)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "| 10 | real |" in printed and str(tmp_path / "report.md") in printed
    assert json.loads((tmp_path / "results.json").read_text())["settings"]["arms"] == ["real"]


@pytest.mark.slow
def test_quick_demo_writes_every_output(tmp_path, monkeypatch):
    from ganaug.experiment import demo

    monkeypatch.setenv("GANAUG_CACHE_DIR", str(tmp_path / "cache"))
    result = demo(out=str(tmp_path / "demo"), quick=True)
    for name in ("gan/generator.safetensors", "samples.png", "metrics.json",
                 "experiment/report.md", "experiment/accuracy.png"):
        assert (tmp_path / "demo" / name).is_file(), name
    assert 0.0 <= result["metrics"]["cas"] <= 1.0


# -- --model-kwargs ---------------------------------------------------------------------------
def test_model_kwargs_parse_yaml_and_json():
    from ganaug.experiment import parse_model_kwargs

    assert parse_model_kwargs(None) is None
    assert parse_model_kwargs("{channels: [32, 64, 128, 256], stem_width: 16}") == {
        "channels": [32, 64, 128, 256], "stem_width": 16}
    assert parse_model_kwargs('{"drop_rate": 0.1}') == {"drop_rate": 0.1}


@pytest.mark.parametrize("text, message", [
    ("{channels: [32", (r"--model-kwargs is not valid YAML/JSON: '\{channels: \[32' \(expected "
                       r"',' or '\]', but got '<stream end>'\)\. Example")),
    ("[1, 2]", r"--model-kwargs must be a mapping.*got '\[1, 2\]'"),
])
def test_model_kwargs_errors(text, message):
    from ganaug.experiment import parse_model_kwargs

    with pytest.raises(GanaugConfigError, match=message):
        parse_model_kwargs(text)
