"""ganaug.evaluation.experiment: settings, regimes x seeds x arms, cached cells, leakage refusal."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from ganaug.errors import GanaugConfigError, GanaugDataError
from ganaug.evaluation.experiment import (
    ExperimentSettings,
    check_no_leakage,
    parse_regimes,
    run_experiment,
)

TINY = {"per_class": "10", "arms": "real,real+aug,real+gan,gan", "backbone": "resnet10t",
        "stem": "cifar-3x3-pool", "seeds": 2, "gan_steps": 2, "classifier_steps": 3,
        "image_size": 16, "batch_size": 32,
        "model_kwargs": {"channels": (8, 16, 32, 64), "stem_width": 8}, "progress": False}
# TINY for a run with --generator: no GAN is trained, so no gan_steps
GIVEN_GENERATOR = {k: v for k, v in TINY.items() if k != "gan_steps"}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("exp")
    return out, run_experiment("digits", out=out, **TINY)


# -- settings --------------------------------------------------------------------------------------
def test_parse_regimes():
    assert parse_regimes("10, 50,all") == ["10", "50", "all"]
    assert parse_regimes([10, "all"]) == ["10", "all"]
    with pytest.raises(GanaugConfigError, match=r"per_class must be positive integers or 'all'"):
        parse_regimes("10,half")
    with pytest.raises(GanaugConfigError, match=r"per_class names no regime"):
        parse_regimes(" , ")


@pytest.mark.parametrize("given, named", [("10,10", "10"), ("10,010", "10"),
                                          ("all,50,ALL", "all"), ([5, "05"], "5")])
def test_parse_regimes_refuses_a_regime_named_twice(given, named):
    """--per-class 10,10 ran and reported the same regime twice; 010 was a second regime "010"."""
    with pytest.raises(GanaugConfigError, match=f"names {named} twice"):
        parse_regimes(given)


def test_parse_regimes_normalises_spelling():
    assert parse_regimes("010,All") == ["10", "all"]


def test_settings_are_normalised_with_their_defaults():
    s = ExperimentSettings(data="digits", regimes="10,all", generator=None, device="cpu")
    assert s.regimes == ["10", "all"]
    assert s.arms == ["real", "real+aug", "real+gan", "real+aug+gan", "gan"]
    assert (s.classifier_steps, s.synthetic_ratio, s.model_kwargs) == (500, 1.0, {})
    assert s.device == torch.device("cpu") and s.baseline == "real+aug"
    tail = ExperimentSettings(data="digits", arms="gan,real", imbalance=10.0, seeds=2,
                              classifier_steps=7, batch_size=16, model_kwargs={"a": 1},
                              generator=Path("g.safetensors"))
    assert tail.arms == ["gan", "real", "real+weighted", "real+oversample", "real+weighted+gan",
                         "real+oversample+gan"]
    assert tail.baseline == "gan" and tail.generator == "g.safetensors"
    recipe = tail.recipe("standard")
    assert (recipe.steps, recipe.batch_size, recipe.augment, recipe.model_kwargs) == (
        7, 16, "standard", {"a": 1})
    assert list(tail.cell_key()) == ["data", "test", "imbalance", "backbone", "stem",
                                     "classifier_steps", "batch_size", "gan_steps", "generator",
                                     "image_size", "synthetic_ratio", "replace_p",
                                     "min_confidence", "model_kwargs", "kd_temperature",
                                     "kd_alpha", "teacher_filter", "synthetic_loss_weight",
                                     "teacher_backbone", "gan_config"]
    # A real-only arm's cell does not depend on the GAN, distillation or teacher settings.
    assert list(tail.cell_key("real")) == ["data", "test", "imbalance", "backbone", "stem",
                                           "classifier_steps", "batch_size", "image_size",
                                           "model_kwargs"]
    assert "kd_alpha" not in tail.cell_key("real+aug+gan")
    assert "kd_alpha" in tail.cell_key("real+aug+kd")
    assert "teacher_backbone" in tail.cell_key("real+aug+kd")
    assert (tail.synthetic_loss_weight, tail.teacher_backbone) == (1.0, None)
    assert (tail.kd_temperature, tail.kd_alpha) == (4.0, 0.5)


def test_an_int_per_class_is_one_regime():
    assert ExperimentSettings(data="digits", regimes=10, device="cpu").regimes == ["10"]


@pytest.mark.parametrize("per_class, imbalance, message", [
    ("5,1000", None, r"per_class=1000 needs 1000 images"),
    ("all,5", 50.0, r"imbalance=50 needs at least 50 images of the head class"),
])
def test_every_regime_is_checked_before_the_first_trains(tmp_path, monkeypatch, per_class,
                                                         imbalance, message):
    # `--per-class 5,1000` trained every arm of regime 5 (hours, with GANs), then refused 1000.
    from ganaug.evaluation.recipe import ClassifierRecipe

    def no_training(*args, **kwargs):
        raise AssertionError("a classifier trained before every regime was checked")

    monkeypatch.setattr(ClassifierRecipe, "train", no_training)
    with pytest.raises(GanaugDataError, match=message):
        run_experiment("digits", out=tmp_path, **{**TINY, "per_class": per_class, "arms": "real"},
                       imbalance=imbalance)


@pytest.mark.parametrize("field, value, message", [
    ("seeds", 0, r"seeds must be an integer from 1 to \d+, got 0"),
    ("seeds", True, r"seeds must be an integer from 1 to \d+, got True"),
    ("replace_p", 1.5, r"replace_p must be a finite number in \(0, 1\], got 1.5.*replace_p=0.5"),
    ("replace_p", 0.0, r"replace_p must be a finite number in \(0, 1\], got 0.0"),
    ("synthetic_ratio", -1.0, r"synthetic_ratio must be a finite number in \(0, inf\), got -1"),
    ("min_confidence", 2.0, r"min_confidence must be a finite number in \[0, 1\], got 2.0"),
    ("batch_size", 1, r"batch_size must be an integer >= 2, got 1"),
    ("kd_temperature", 0.0, (r"kd_temperature must be a finite number in \(0, inf\), got 0.0"
                            r".*kd_temperature=4")),
    ("kd_alpha", 1.5, r"kd_alpha must be a finite number in \[0, 1\], got 1.5.*kd_alpha=0.5"),
    ("teacher_filter", 1.5, (r"teacher_filter must be a finite number in \[0, 1\), got 1.5"
                            r".*teacher_filter=0.2")),
    ("teacher_filter", 1.0, r"teacher_filter must be a finite number in \[0, 1\), got 1.0"),
    ("arms", "real,gann", r"Unknown arm 'gann'.*Did you mean 'gan'"),
    ("arms", " , ,", r"--arms names no arm \(got ' , ,'\); give one or more of real, "),
    ("arms", [], r"--arms names no arm"),
    ("backbone", "resnet1B", r"Unknown timm model 'resnet1B'.*Did you mean 'resnet18'"),
    # the API's hostile types: each used to pass the settings and fail later, or with a TypeError
    ("imbalance", True, r"imbalance must be a finite number in \[1, inf\), got True"),
    ("imbalance", "ten", r"imbalance must be a finite number in \[1, inf\), got the str 'ten': pass the number itself"),
    ("backbone", None, r"backbone must be a timm model name \(a string\), got None"),
    ("teacher_backbone", 5, r"teacher_backbone must be a timm model name \(a string\), got 5"),
    ("stem", "bogus", r"stem must be one of .*, got 'bogus'"),
    ("model_kwargs", [1, 2], r"model_kwargs must be a mapping of timm.create_model arguments"),
    ("gan_steps", 0, r"gan_steps must be an integer >= 1, got 0"),
    ("gan_steps", True, r"gan_steps must be an integer >= 1, got True"),
    ("image_size", True, r"image_size must be an integer >= 1, got True"),
    ("arms", 5, r"--arms takes arm names, comma-separated, or a list of them; got 5"),
    ("regimes", 2.5, r"per_class must be positive integers or 'all'.*got 2.5"),
    ("teacher_backbone", "resnet1B", r"Unknown timm model 'resnet1B'"),
    ("regimes", "0", r"per_class must be positive integers or 'all'"),
    ("device", "cuda:99", r"device 'cuda:99'"),
    # classifier_steps 0 (or False) silently became the default 500
    ("classifier_steps", 0, r"classifier_steps must be an integer >= 1, got 0"),
    ("classifier_steps", False, r"classifier_steps must be an integer >= 1, got False"),
    # more seeds than there are: the error blamed first_seed ("from 0 to -2**63, got 0")
    ("seeds", 2**64, (r"seeds must be an integer from 1 to 9223372036854775808, got "
                      r"18446744073709551616.*seeds=3")),
])
def test_settings_refuse_bad_values(field, value, message):
    with pytest.raises(GanaugConfigError, match=message):
        ExperimentSettings(data="digits", **{field: value})


def test_a_settings_refusal_names_the_argument_in_python_and_the_flag_on_the_cli(tmp_path,
                                                                                capsys):
    from ganaug.cli import main

    with pytest.raises(GanaugConfigError, match=r"teacher_filter= drops .*, but replace_p= "):
        ExperimentSettings(data="digits", teacher_filter=0.2, replace_p=0.5)
    with pytest.raises(GanaugConfigError, match=r"got 1\.5\. Use e\.g\. kd_alpha=0\.5\.$"):
        ExperimentSettings(data="digits", kd_alpha=1.5)
    out = str(tmp_path / "exp")
    assert main(["experiment", "--data", "digits", "--out", out, "--teacher-filter", "0.2",
                 "--replace-p", "0.5"]) == 2
    assert "--teacher-filter drops appended synthetic images, but --replace-p draws" in (
        capsys.readouterr().err)
    assert main(["experiment", "--data", "digits", "--out", out, "--kd-alpha", "1.5"]) == 2
    assert capsys.readouterr().err.rstrip().endswith("got 1.5. Use e.g. --kd-alpha 0.5.")


@pytest.mark.parametrize("given", [{"gan_steps": 500}, {"gan_config": {"lr_d": 1e-4}}])
def test_gan_settings_with_a_given_generator_are_refused(given):
    """With --generator no GAN is trained: --gan-steps and --gan-config would silently do
    nothing (and still split the cell cache)."""
    with pytest.raises(GanaugConfigError, match=r"generator=.* no GAN is trained.*leave out"):
        ExperimentSettings(data="digits", generator="g.safetensors", **given)


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
    # the verdict: real+gan and gan against the better of real and real+aug, paired by seed
    (verdict,) = saved["verdict"]
    best = max(("real", "real+aug"), key=lambda a: rows[a]["accuracy"]["mean"])
    assert verdict["best_control"] == best and set(verdict["comparisons"]) == {"real+gan", "gan"}
    acc = {(c["arm"], c["seed"]): c["accuracy"] for c in saved["cells"]}
    assert verdict["comparisons"]["gan"]["mean"] == pytest.approx(
        sum(acc["gan", s] - acc[best, s] for s in (0, 1)) / 2)
    assert report.splitlines()[4] == f"- {verdict['line']}"


def test_rerun_uses_cached_cells(tiny_run, monkeypatch):
    import ganaug.evaluation.recipe
    import ganaug.training

    out, doc = tiny_run

    def boom(*args, **kwargs):
        raise AssertionError("retrained a cached cell")

    monkeypatch.setattr(ganaug.evaluation.recipe, "train_classifier", boom)
    monkeypatch.setattr(ganaug.training.Trainer, "fit", boom)
    again = run_experiment("digits", out=out, **TINY)
    assert [c["accuracy"] for c in again["cells"]] == [c["accuracy"] for c in doc["cells"]]


def test_cells_from_before_a_setting_existed_are_reused_while_it_is_unset(tiny_run,
                                                                         monkeypatch):
    """A setting added later (gan_config) with None, its 'as before' value, must not throw away
    hours of cells written before it existed; set to anything else, it retrains them."""
    import ganaug.evaluation.recipe

    out, doc = tiny_run
    for path in (out / "cells").glob("*.json"):
        cell = json.loads(path.read_text())
        cell["settings"].pop("gan_config", None)
        path.write_text(json.dumps(cell))
    calls = []
    real_train = ganaug.evaluation.recipe.train_classifier
    monkeypatch.setattr(ganaug.evaluation.recipe, "train_classifier",
                        lambda *a, **k: calls.append(1) or real_train(*a, **k))
    again = run_experiment("digits", out=out, **TINY)
    assert calls == [] and [c["accuracy"] for c in again["cells"]] == [
        c["accuracy"] for c in doc["cells"]]
    run_experiment("digits", out=out, gan_config={"lr_d": 1e-4}, **{**TINY, "arms": "real+gan",
                                                                    "seeds": 1})
    assert calls == [1]


def test_changed_settings_retrain_cells(tiny_run, monkeypatch):
    import ganaug.evaluation.recipe

    out, _ = tiny_run
    calls = []
    monkeypatch.setattr(ganaug.evaluation.recipe, "train_classifier",
                        lambda *a, **k: calls.append(1) or a[0])
    run_experiment("digits", out=out, **{**TINY, "classifier_steps": 4, "arms": "real",
                                         "seeds": 1})
    assert calls == [1]


def test_first_seed_runs_only_later_seeds_and_their_cells_join_a_full_run(tiny_run, tmp_path,
                                                                          monkeypatch):
    """Seeds can be split across processes sharing ``out``; a full rerun then reuses every cell."""
    import ganaug.evaluation.recipe
    import ganaug.training

    _, doc = tiny_run
    early = run_experiment("digits", out=tmp_path / "a", **{**TINY, "seeds": 1})
    late = run_experiment("digits", out=tmp_path / "b", first_seed=1, **{**TINY, "seeds": 1})
    assert {c["seed"] for c in late["cells"]} == {1}
    assert (early["settings"]["first_seed"], late["settings"]["first_seed"]) == (0, 1)
    assert [c["accuracy"] for c in early["cells"] + late["cells"]] == [
        c["accuracy"] for c in doc["cells"]]

    def boom(*args, **kwargs):
        raise AssertionError("retrained a cached cell")

    monkeypatch.setattr(ganaug.evaluation.recipe, "train_classifier", boom)
    monkeypatch.setattr(ganaug.training.Trainer, "fit", boom)
    for cell in (tmp_path / "a" / "cells").glob("*.json"):  # as if both shared one --out
        (tmp_path / "b" / "cells" / cell.name).write_bytes(cell.read_bytes())
    full = run_experiment("digits", out=tmp_path / "b", **TINY)
    assert [c["accuracy"] for c in full["cells"]] == [c["accuracy"] for c in doc["cells"]]


def test_first_seed_is_checked():
    with pytest.raises(GanaugConfigError, match=r"first_seed"):
        ExperimentSettings(data="digits", first_seed=-1)
    # every seed it runs must be one `ganaug train --seed` takes (below 2**63)
    assert ExperimentSettings(data="digits", seeds=3, first_seed=2**63 - 3).first_seed == 2**63 - 3
    with pytest.raises(GanaugConfigError, match=r"first_seed must be an integer from 0 to "
                                                r"9223372036854775805"):
        ExperimentSettings(data="digits", seeds=3, first_seed=2**63 - 2)


def test_gan_config_is_checked_before_any_compute():
    with pytest.raises(GanaugConfigError, match=r"Unknown key 'lr_gen' in gan_config.*lr_g"):
        ExperimentSettings(data="digits", gan_config={"lr_gen": 1e-4})
    with pytest.raises(GanaugConfigError, match=r"lr_d"):
        ExperimentSettings(data="digits", gan_config={"lr_d": -1.0})
    # normalised as `ganaug train` normalises them: the same settings, the same key and folder
    given = ExperimentSettings(data="digits", gan_config={"lr_d": "1e-4", "betas": [0, 0.99]})
    assert given.gan_config == {"lr_d": 1e-4, "betas": (0.0, 0.99)}
    assert given.cell_key("real+gan") == ExperimentSettings(
        data="digits", gan_config={"betas": (0.0, 0.99), "lr_d": 0.0001}).cell_key("real+gan")
    for key in ("steps", "seed", "out", "data"):
        with pytest.raises(GanaugConfigError, match=rf"gan_config sets {key!r}.*experiment"):
            ExperimentSettings(data="digits", gan_config={key: 1})


def test_gan_config_keys_the_gan_cells_and_folders(tmp_path, monkeypatch):
    """Other GAN settings must not reuse the GAN arms' cells or a GAN trained with others."""
    import ganaug.evaluation.recipe

    plain = ExperimentSettings(data="digits", arms="real,real+gan")
    tuned = ExperimentSettings(data="digits", arms="real,real+gan", gan_config={"lr_d": 1e-4})
    assert plain.cell_key("real") == tuned.cell_key("real")
    assert plain.cell_key("real+gan") != tuned.cell_key("real+gan")
    assert tuned.cell_key("real+gan")["gan_config"] == {"lr_d": 1e-4}

    one = {**TINY, "seeds": 1, "arms": "real,real+gan"}
    out = tmp_path
    run_experiment("digits", out=out, **one)
    trained = []
    real_train = ganaug.evaluation.recipe.train_classifier
    monkeypatch.setattr(ganaug.evaluation.recipe, "train_classifier",
                        lambda *a, **k: trained.append(1) or real_train(*a, **k))
    before = {p: p.stat().st_mtime_ns for p in (out / "gans").rglob("*") if p.is_file()}
    again = run_experiment("digits", out=out, gan_config={"lr_d": 1e-4}, **one)
    # the real arm's cell is reused, the GAN arm's is not, and the first GAN is left as it was
    assert [c["arm"] for c in again["cells"]] == ["real", "real+gan"] and len(trained) == 1
    assert {p: p.stat().st_mtime_ns for p in before} == before
    tuned_runs = [p for p in (out / "gans").iterdir() if p.name.startswith("10-s0-")]
    assert len(tuned_runs) == 1 and (tuned_runs[0] / "generator.safetensors").is_file()


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
                       **{**GIVEN_GENERATOR, "arms": "real+gan", "seeds": 1})


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
    with pytest.raises(GanaugConfigError, match=r"replace_p must be a finite number in \(0, 1\]"):
        run_experiment("digits", out=tmp_path, **{**TINY, "replace_p": 1.5})
    with pytest.raises(GanaugConfigError, match=r"seeds must be an integer from 1 to \d+, got 0"):
        run_experiment("digits", out=tmp_path, **{**TINY, "seeds": 0})
    assert not (tmp_path / "cells").exists()


def test_a_gan_that_cannot_make_the_datas_size_is_refused_before_any_compute(tmp_path,
                                                                           monkeypatch):
    """digits are 8x8: the GAN arms failed only after the real arms of the first seed had
    trained; the size is known once the test split is loaded."""
    from ganaug.evaluation import experiment

    cells, real_cell = [], experiment._run_cell

    def spy(name, *args, **kwargs):
        cells.append(name)
        return real_cell(name, *args, **kwargs)

    monkeypatch.setattr(experiment, "_run_cell", spy)
    tiny = {**TINY, "image_size": None}
    with pytest.raises(GanaugConfigError, match=r"The GAN arms \(real\+gan\) need a generator "
                       r"of 8x8 images, but arch 'dcgan' makes sizes 16, 28, 32, 64.*image_size=16"):
        run_experiment("digits", out=tmp_path, **{**tiny, "arms": "real,real+gan"})
    with pytest.raises(GanaugConfigError, match=r"arch 'resnet' makes sizes"):
        run_experiment("digits", out=tmp_path, **{**tiny, "arms": "real,real+gan",
                                                  "gan_config": {"arch": "resnet"}})
    assert cells == []
    # without a GAN arm the size is the classifier's business only
    run_experiment("digits", out=tmp_path, **{**tiny, "arms": "real"})
    assert cells == ["real", "real"]  # two seeds


def test_an_out_that_is_a_file_or_holds_other_files_is_refused_before_any_compute(tmp_path):
    """--out run/generator.safetensors trained classifiers, then failed writing; a GAN run folder
    got an experiment's files mixed into it."""
    model = tmp_path / "g.safetensors"
    model.write_bytes(b"weights")
    with pytest.raises(GanaugConfigError, match=r"out='.*g.safetensors' is a file, not a folder"):
        run_experiment("digits", out=model, **TINY)
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("steps: 1\n")
    with pytest.raises(GanaugConfigError, match=r"holds other files \(config.yaml\) and no "
                                                r"experiment.*new or empty folder"):
        run_experiment("digits", out=run, **TINY)
    assert sorted(p.name for p in run.iterdir()) == ["config.yaml"]
    assert model.read_bytes() == b"weights"


@pytest.mark.parametrize("test_names", [["A", "B", "C"],          # renamed by case
                                        ["b", "a", "c"]])         # same names, another order
def test_a_test_set_with_other_class_names_is_refused_before_any_compute(test_names, tmp_path,
                                                                         monkeypatch):
    """Only the class *count* was compared: a --test folder whose classes are named otherwise
    (or an npz listing them in another order) scored each class against another's labels."""
    import numpy as np
    from PIL import Image

    from ganaug.evaluation import experiment

    def folder(root, names, shade):
        for k, name in enumerate(names):
            (root / name).mkdir(parents=True)
            for i in range(12):
                Image.fromarray(np.full((16, 16, 3), shade + 10 * k + i, np.uint8)).save(
                    root / name / f"{i}.png")
        return f"folder:{root}"

    train = folder(tmp_path / "train", ["a", "b", "c"], 0)
    test = (folder(tmp_path / "test", test_names, 100) if test_names[0] != "b" else None)
    if test is None:  # an npz keeps the order it lists: b, a, c
        images = np.stack([np.full((16, 16, 3), 100 + i, np.uint8) for i in range(36)])
        np.savez(tmp_path / "test.npz", x=images, y=np.repeat(np.arange(3), 12),
                 classes=np.array(test_names))
        test = f"npz:{tmp_path / 'test.npz'}"
    monkeypatch.setattr(experiment, "_run_arms", lambda *a, **k: pytest.fail("computed"))
    with pytest.raises(GanaugDataError, match=r"Class names differ between the training data "
                                              r"and the test data"):
        run_experiment(train, test=test, out=tmp_path / "exp", **{**TINY, "per_class": "all"})


def test_a_folder_whose_own_train_split_holds_its_test_images_is_refused(tmp_path,
                                                                          monkeypatch):
    """Without --test the data's own test split was taken as disjoint by construction, but a
    folder's train/ can hold copies of its test/ images (a test set copied in to train on more
    data): every accuracy was then partly a training accuracy."""
    import shutil

    import numpy as np
    from PIL import Image

    from ganaug.evaluation import experiment

    for split in ("train", "test"):
        for k, name in enumerate(["a", "b", "c"]):
            (tmp_path / "ds" / split / name).mkdir(parents=True)
            for i in range(10):
                shade = 100 * (split == "test") + 30 * k + i
                Image.fromarray(np.full((16, 16, 3), shade, np.uint8)).save(
                    tmp_path / "ds" / split / name / f"{i}.png")
    for name in ("a", "b", "c"):  # the test images, copied into train
        for i in range(10):
            shutil.copy(tmp_path / "ds" / "test" / name / f"{i}.png",
                        tmp_path / "ds" / "train" / name / f"copy{i}.png")
    monkeypatch.setattr(experiment, "_run_arms", lambda *a, **k: pytest.fail("computed"))
    with pytest.raises(GanaugDataError, match=r"30 of the 30 test images are also training "
                                              r"images"):
        run_experiment(f"folder:{tmp_path / 'ds'}", out=tmp_path / "exp",
                       **{**TINY, "per_class": "all"})


def test_a_test_set_that_shares_the_training_images_is_refused(tmp_path):
    """--test naming the training data itself would report training accuracy as test accuracy."""
    with pytest.raises(GanaugDataError, match=r"of the 1,797 test images are also training images"
                                              r".*disjoint"):
        run_experiment("digits", test="digits", out=tmp_path / "exp", **TINY)
    assert not (tmp_path / "exp" / "cells").exists()


@pytest.mark.parametrize("arms, expected", [("gan", ["real", "gan"]),
                                            ("gan,real", ["real", "gan"]),
                                            ("real+aug", ["real+aug"])])
def test_min_confidence_runs_the_real_arm_first(arms, expected):
    """The real arm's classifier filters the GAN arms: without it (or after them) they went
    unfiltered while their cells said min_confidence."""
    settings = ExperimentSettings(data="digits", arms=arms, min_confidence=0.0)
    assert settings.arms == expected


def test_min_confidence_filter_is_retrained_when_its_file_is_not_this_cells(tmp_path,
                                                                            monkeypatch):
    """A real cell reused with a classifier file left by other settings (or none) must not
    filter the GAN arms: the real arm is trained again, and its classifier filters them."""
    import ganaug.evaluation.recipe
    from ganaug.evaluation import experiment
    from ganaug.evaluation.classifier import save_classifier

    tiny = {**TINY, "arms": "real,gan", "seeds": 1, "min_confidence": 0.0}
    run_experiment("digits", out=tmp_path, **tiny)
    real_file = tmp_path / "cells" / "10-s0-real.safetensors"
    assert real_file.is_file()
    stale = ganaug.evaluation.classifier.load_classifier(real_file)[0]
    save_classifier(stale, real_file)  # as a run without min_confidence left it
    filters, trained = [], []
    real_data = experiment.arm_data
    monkeypatch.setattr(experiment, "arm_data",
                        lambda arm, *a, **k: filters.append(k["filter_model"]) or real_data(
                            arm, *a, **k))
    real_train = ganaug.evaluation.recipe.train_classifier
    monkeypatch.setattr(ganaug.evaluation.recipe, "train_classifier",
                        lambda *a, **k: trained.append(1) or real_train(*a, **k))
    run_experiment("digits", out=tmp_path, **{**tiny, "synthetic_ratio": 2.0})
    assert len(trained) == 2 and filters[0] is None and filters[1] is not None


def test_gan_arms_on_non_square_images_are_refused_before_any_compute(tmp_path):
    # 16x32 images: the size check read the height alone (16, which dcgan makes), so the real
    # arms trained and the first GAN arm failed with a raw torch shape error.
    x = np.random.default_rng(0).integers(0, 256, (40, 16, 32, 3), dtype=np.uint8)
    np.savez(tmp_path / "wide.npz", x=x, y=np.arange(40) % 2)
    with pytest.raises(GanaugDataError, match=r"32x16 \(width x height\), not square.*image_size="):
        run_experiment(f"npz:{tmp_path / 'wide.npz'}", out=tmp_path / "exp",
                       **{**TINY, "image_size": None, "per_class": "5", "arms": "real,real+gan"})
    assert not (tmp_path / "exp" / "cells").exists()
