"""`ganaug evaluate / experiment` on the command line, and --model-kwargs parsing."""

from __future__ import annotations

import json
import re

import pytest
import torch

from ganaug.cli import main, parse_model_kwargs
from ganaug.errors import GanaugConfigError


@pytest.fixture(autouse=True)
def cache_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("GANAUG_CACHE_DIR", str(tmp_path / "cache"))


# -- ganaug evaluate ------------------------------------------------------------------------------
def _digits_generator_file(tmp_path, num_classes=10):
    from ganaug.generator import Generator
    from ganaug.io import save
    from ganaug.models import build_generator

    torch.manual_seed(0)
    net = build_generator("dcgan", num_classes=num_classes, channels=1, image_size=16, z_dim=16,
                          width=8)
    gen = Generator(net, classes=[str(i) for i in range(num_classes)], arch="dcgan")
    return save(gen, tmp_path / "g.safetensors")


def test_evaluate_cli_writes_the_json(tmp_path, capsys):
    path = _digits_generator_file(tmp_path)
    out = tmp_path / "metrics.json"
    code = main(["evaluate", str(path), "--data", "digits", "--n-per-class", "8",
                 "--classifier-steps", "2", "--out", str(out)])
    assert code == 0
    doc = json.loads(out.read_text())
    for key in ("fid", "fid_per_class", "intra_fid", "precision", "recall", "density",
                "coverage", "cas", "cas_ratio", "real_accuracy", "how"):
        assert key in doc
    assert doc["how"]["n_fake"] == 80 and doc["how"]["generator_file"] == str(path)
    assert doc["how"]["train_spec"].startswith("digits?split=train")
    printed = capsys.readouterr().out
    assert "CAS ratio" in printed and "NOT comparable" in printed and str(out) in printed
    # Per class, worst classes, and the weak (2-step) feature classifier said loudly.
    assert [row["class"] for row in doc["per_class"]] == [str(i) for i in range(10)]
    assert set(doc["worst_classes"]) == {"cas_ratio", "fake_accuracy", "intra_fid"}
    assert len(doc["worst_classes"]["intra_fid"]) == 3
    assert re.search(r"^worst classes: .*highest intra-class FID: (\d, ){2}\d$", printed,
                     re.MULTILINE)
    assert doc["feature_classifier"]["trusted"] is False and doc["warnings"]
    assert printed.startswith("generator:") and "\nWARNING: the feature classifier" in printed


def test_evaluate_refuses_a_foreign_features_file_before_any_compute(tmp_path, capsys):
    """`--features resnet10t:g.safetensors` (the generator, not feature weights) was read only
    after the feature classifier was trained; a damaged file then ended in a raw traceback."""
    path = _digits_generator_file(tmp_path)
    (tmp_path / "empty.safetensors").write_bytes(b"")
    for weights, message in [(path, r"is a ganaug generator model file"),
                             (tmp_path / "empty.safetensors", r"cannot be read as safetensors")]:
        code = main(["evaluate", str(path), "--data", "digits", "--classifier-steps", "2",
                     "--features", f"resnet10t:{weights}"])
        err = capsys.readouterr().err
        assert code == 2 and "Traceback" not in err
        assert re.search(r"^ganaug: error: .*" + message + r".*Give the weights of timm "
                         r"'resnet10t'", err, re.MULTILINE)
    assert not (tmp_path / "cache").exists()  # no feature classifier was trained first


@pytest.mark.parametrize("out, message", [
    ("{tmp}", r"Cannot write .*: it is a folder\. Pass a file path"),
    ("{tmp}/g.safetensors/metrics.json",
     r"Cannot write .*metrics\.json: a file is in the way \(.*g\.safetensors\)"),
])
def test_evaluate_cli_refuses_an_out_it_cannot_write_before_any_compute(
        out, message, tmp_path, capsys, monkeypatch):
    """`--out DIR` (or a path under a file) computed every metric, then failed writing them."""
    import ganaug.evaluation

    path = _digits_generator_file(tmp_path)
    monkeypatch.setattr(ganaug.evaluation, "evaluate_generator",
                        lambda *a, **k: pytest.fail("computed before refusing --out"))
    code = main(["evaluate", str(path), "--data", "digits", "--out", out.format(tmp=tmp_path)])
    assert code == 2
    assert re.search(message, capsys.readouterr().err)
    assert path.read_bytes()[:8] and path.is_file()  # the model file is untouched


@pytest.mark.parametrize("name", ["g.safetensors", "metrics.txt", "metrics"])
def test_evaluate_cli_refuses_an_out_that_is_no_json_file_name(name, tmp_path, capsys,
                                                               monkeypatch):
    """`--out g.safetensors` (the model file itself) computed every metric, then wrote the JSON
    over the model: the user's finished generator was lost."""
    import ganaug.evaluation

    path = _digits_generator_file(tmp_path)
    before = path.read_bytes()
    monkeypatch.setattr(ganaug.evaluation, "evaluate_generator",
                        lambda *a, **k: pytest.fail("computed before refusing --out"))
    code = main(["evaluate", str(path), "--data", "digits", "--out", str(tmp_path / name)])
    assert code == 2
    assert re.search(r"does not end in \.json.*Use e\.g\. \w+\.json", capsys.readouterr().err)
    assert path.read_bytes() == before


def test_evaluate_cli_reports_a_class_mismatch(tmp_path, capsys):
    path = _digits_generator_file(tmp_path, num_classes=3)
    assert main(["evaluate", str(path), "--data", "digits", "--classifier-steps", "1"]) == 2
    assert "Class-count mismatch: the generator has 3 classes" in capsys.readouterr().err


@pytest.mark.parametrize("flags", [
    ["--test", "digits"],                                   # --test naming --data: all of it
    ["--split", "all", "--test", "digits?split=test"],      # train on all, test on a part of it
])
def test_evaluate_cli_refuses_test_images_that_are_training_images(flags, tmp_path, capsys,
                                                                    monkeypatch):
    """The feature classifier trained on the test images, and a generator copying its training
    images got credit for it; `experiment` refused this (check_disjoint), `evaluate` did not."""
    import ganaug.evaluation.generator_metrics as gm

    path = _digits_generator_file(tmp_path)
    monkeypatch.setattr(gm, "train_real_classifier",
                        lambda *a, **k: pytest.fail("trained before refusing the overlap"))
    assert main(["evaluate", str(path), "--data", "digits", *flags]) == 2
    err = capsys.readouterr().err
    assert re.search(r"of the [\d,]+ test images are also training images", err), err
    assert "--test" in err


def test_evaluate_cli_refuses_a_generator_that_saw_the_test_images(tmp_path, capsys,
                                                                   monkeypatch):
    """A generator trained on every image of digits (split=all) was scored against digits'
    test split, which it had been trained on; its model file says so."""
    import ganaug.evaluation.generator_metrics as gm
    from ganaug.data import load_data
    from ganaug.io import load, save

    gen = load(_digits_generator_file(tmp_path))
    seen = load_data("digits", size=16)
    path = save(gen, tmp_path / "all.safetensors", metadata={"training": {
        "data": "digits", "data_fingerprint": seen.fingerprint(), "steps": 1}})
    monkeypatch.setattr(gm, "train_real_classifier",
                        lambda *a, **k: pytest.fail("trained before refusing the generator"))
    assert main(["evaluate", str(path), "--data", "digits"]) == 2
    err = capsys.readouterr().err
    assert re.search(r"generator was trained on digits, which holds 360 of the 360 test images",
                     err), err
    # one trained on the train split alone passes the check (and reaches the compute)
    train = load_data("digits", split="train", size=16)
    path = save(gen, tmp_path / "train.safetensors", metadata={"training": {
        "data": "digits?split=train", "data_fingerprint": train.fingerprint(), "steps": 1}})
    with pytest.raises(pytest.fail.Exception, match="trained before"):
        main(["evaluate", str(path), "--data", "digits"])


# -- ganaug experiment ---------------------------------------------------------------------------
def test_experiment_cli_prints_the_table_and_paths(tmp_path, capsys):
    code = main(["experiment", "--data", "digits", "--per-class", "10", "--arms", "real",
                 "--backbone", "resnet10t", "--seeds", "1", "--first-seed", "2",
                 "--classifier-steps", "2", "--size", "16", "--out", str(tmp_path)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "| 10 | real |" in printed and str(tmp_path / "report.md") in printed
    assert [c.name for c in (tmp_path / "cells").glob("*.json")] == ["10-s2-real.json"]
    assert "1 seeds (from seed 2)" in (tmp_path / "report.md").read_text()
    # one arm, no GAN arm: the verdict (last line) says there is nothing to compare
    assert printed.rstrip().splitlines()[-1] == ("regime 10: not comparable (no GAN arm in this "
                                                 "run)")
    assert json.loads((tmp_path / "results.json").read_text())["settings"]["arms"] == ["real"]


def test_experiment_cli_reports_a_bad_model_kwargs(tmp_path, capsys):
    code = main(["experiment", "--data", "digits", "--arms", "real", "--model-kwargs", "[1]",
                 "--out", str(tmp_path)])
    assert code == 2
    assert "--model-kwargs must be a mapping" in capsys.readouterr().err


# -- --model-kwargs ---------------------------------------------------------------------------
def test_model_kwargs_parse_yaml_and_json():
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
    with pytest.raises(GanaugConfigError, match=message):
        parse_model_kwargs(text)


# -- ganaug demo ----------------------------------------------------------------------------------
def test_demo_command_passes_its_flags(monkeypatch, tmp_path):
    import ganaug.demo

    calls = []
    monkeypatch.setattr(ganaug.demo, "demo", lambda **kw: calls.append(kw))
    assert main(["demo", "--out", str(tmp_path), "--quick"]) == 0
    assert main(["demo"]) == 0
    assert calls == [{"out": str(tmp_path), "quick": True}, {"out": "runs/demo", "quick": False}]


def test_experiment_cli_passes_the_kd_knobs(tmp_path, capsys, monkeypatch):
    import ganaug.evaluation

    seen = {}
    monkeypatch.setattr(ganaug.evaluation, "run_experiment",
                        lambda *a, **k: seen.update(k) or {"summary": [], "verdict": [],
                                                           "settings": {"baseline": "real"}})
    assert main(["experiment", "--data", "digits", "--arms", "real+aug+kd", "--kd-temperature",
                 "2.5", "--kd-alpha", "0.1", "--out", str(tmp_path)]) == 0
    assert (seen["kd_temperature"], seen["kd_alpha"]) == (2.5, 0.1)
    monkeypatch.undo()
    capsys.readouterr()
    code = main(["experiment", "--data", "digits", "--arms", "real+aug+kd", "--kd-alpha", "2",
                 "--out", str(tmp_path)])
    assert code == 2
    assert "kd_alpha must be a finite number in [0, 1], got 2.0" in capsys.readouterr().err


# -- --gan-config -----------------------------------------------------------------------------
def test_experiment_cli_passes_gan_config(tmp_path, monkeypatch):
    """--gan-config sets the experiment's GANs (e.g. the CPU preset pinned on a GPU)."""
    import ganaug.evaluation

    seen = {}

    def spy(data, **kwargs):
        seen.update(kwargs)
        raise SystemExit(0)

    monkeypatch.setattr(ganaug.evaluation, "run_experiment", spy)
    with pytest.raises(SystemExit):
        main(["experiment", "--data", "digits", "--arms", "real+gan", "--out", str(tmp_path),
              "--gan-config", "{arch: dcgan, arch_kwargs: {width: 32}, ema_decay: 0.999}"])
    assert seen["gan_config"] == {"arch": "dcgan", "arch_kwargs": {"width": 32},
                                  "ema_decay": 0.999}


def test_experiment_cli_reads_gan_config_from_a_file(tmp_path, monkeypatch):
    """A config.yaml file (what `ganaug train --config` takes) works as --gan-config too; it
    used to be refused as 'a mapping ..., got PATH'."""
    import ganaug.evaluation

    seen = {}

    def spy(data, **kwargs):
        seen.update(kwargs)
        raise SystemExit(0)

    monkeypatch.setattr(ganaug.evaluation, "run_experiment", spy)
    config = tmp_path / "gan.yaml"
    config.write_text("arch: dcgan\nlr_d: 0.0004\n")
    with pytest.raises(SystemExit):
        main(["experiment", "--data", "digits", "--arms", "real+gan", "--out",
              str(tmp_path / "o"), "--gan-config", str(config)])
    assert seen["gan_config"] == {"arch": "dcgan", "lr_d": 0.0004}


@pytest.mark.parametrize("text, message", [
    ("[1]", r"--gan-config must be a mapping of ganaug train settings"),
    ("no/such/gan.yaml", (r"Config file 'no/such/gan.yaml' does not exist; check the path "
                          r"given as --gan-config\.")),
    ("{steps: 5}", r"gan_config sets 'steps', which the experiment sets itself"),
    ("{lr_dd: 1e-4}", r"lr_dd"),
])
def test_experiment_cli_refuses_a_bad_gan_config(text, message, tmp_path, capsys):
    code = main(["experiment", "--data", "digits", "--arms", "real+gan", "--out", str(tmp_path),
                 "--gan-config", text])
    assert code == 2
    err = capsys.readouterr().err
    assert re.search(message, err) and "Traceback" not in err
    assert not (tmp_path / "cells").exists()
