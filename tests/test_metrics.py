"""ganaug.metrics: Fréchet distance, precision/recall, density/coverage, CAS, `ganaug evaluate`."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from ganaug.errors import GanaugConfigError, GanaugDataError, GanaugModelError
from ganaug.metrics import (
    classification_accuracy_score,
    density_coverage,
    evaluate_generator,
    finite_json,
    format_metrics,
    frechet_distance,
    frechet_distance_per_class,
    precision_recall,
    timm_feature_extractor,
    train_real_classifier,
)

TINY = {"backbone": "resnet10t", "stem": "cifar-3x3-pool", "batch_size": 64,
            "model_kwargs": {"channels": (8, 16, 32, 64), "stem_width": 8}}


@pytest.fixture(autouse=True)
def cache_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("GANAUG_CACHE_DIR", str(tmp_path / "cache"))


class RealImagesGenerator:
    """A stand-in with the Generator.sample() contract that returns real training images."""

    def __init__(self, data, noise: bool = False):
        self.data, self.noise = data, noise
        self.classes = list(data.classes)
        self.num_classes, self.image_size, self.channels = (data.num_classes, data.image_size,
                                                            data.channels)

    def sample(self, labels=None, *, n_per_class=None, seed=None, output="uint8", device=None,
               return_labels=False, **_):
        gen = torch.Generator().manual_seed(seed or 0)
        labels = torch.arange(self.num_classes).repeat_interleave(n_per_class)
        if self.noise:
            images = torch.randint(0, 256, (len(labels), self.channels, self.image_size,
                                            self.image_size), generator=gen, dtype=torch.uint8)
        else:
            picks = [torch.nonzero(self.data.labels == k).flatten()
                     for k in range(self.num_classes)]
            idx = torch.cat([p[torch.randint(len(p), (n_per_class,), generator=gen)]
                             for p in picks])
            images = self.data.images[idx]
        return (images, labels) if return_labels else images


# -- Fréchet distance ----------------------------------------------------------------------------
def test_fd_of_identical_sets_is_zero():
    x = torch.randn(400, 8, generator=torch.Generator().manual_seed(0))
    assert frechet_distance(x, x) == pytest.approx(0.0, abs=1e-6)


def test_fd_of_a_shifted_set_is_the_squared_shift():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(500, 6))
    shift = rng.normal(size=6)
    # Same covariance, so the trace term vanishes and only ||mu_a - mu_b||^2 is left.
    assert frechet_distance(a, a + shift) == pytest.approx(float(shift @ shift), rel=1e-6)


def test_fd_of_independent_gaussians_matches_the_formula():
    rng = np.random.default_rng(1)
    mu = np.array([1.0, -2.0, 0.5])
    a = rng.normal(size=(20000, 3))
    b = rng.normal(size=(20000, 3)) + mu
    # the sampling error of the mean difference is ~0.05 (2 |mu| sqrt(2/N)); 3 sigma
    assert frechet_distance(a, b) == pytest.approx(float(mu @ mu), abs=0.15)


def test_fd_of_a_scaled_set_is_the_covariance_trace():
    a = np.random.default_rng(2).normal(size=(300, 5))
    # cov(2a) = 4 S and sqrt(S 4S) = 2S, so the trace term is tr S + 4 tr S - 4 tr S = tr S;
    # the means are m and 2m, so the mean term is ||m||^2.
    m = a.mean(0)
    expected = np.trace(np.cov(a, rowvar=False)) + m @ m
    assert frechet_distance(a, 2 * a) == pytest.approx(expected, rel=1e-6)


def test_fd_with_singular_covariance_is_finite():
    rng = np.random.default_rng(3)
    value = frechet_distance(rng.normal(size=(5, 20)), rng.normal(size=(6, 20)) + 1.0)
    assert math.isfinite(value) and value > 0


def test_fd_errors():
    with pytest.raises(GanaugDataError, match=r"Feature sizes differ: 3 vs 4"):
        frechet_distance(np.zeros((5, 3)), np.zeros((5, 4)))
    with pytest.raises(GanaugDataError,
                       match=r"feats_a needs at least 2 feature vectors for a covariance; got 1"):
        frechet_distance(np.zeros((1, 3)), np.zeros((5, 3)))
    with pytest.raises(GanaugDataError, match=r"must be a 2-D \(N, D\) array"):
        frechet_distance(np.zeros(5), np.zeros((5, 3)))


def test_fd_per_class_names_classes_and_marks_missing_ones_nan():
    rng = np.random.default_rng(4)
    real = torch.tensor(rng.normal(size=(40, 3)))
    real_labels = torch.tensor([0] * 20 + [1] * 20)
    fake = real + torch.tensor([1.0, 0.0, 0.0])
    fake_labels = torch.tensor([0] * 20 + [2] * 20)
    out = frechet_distance_per_class(real, real_labels, fake, fake_labels, ["a", "b", "c"])
    assert list(out) == ["a", "b", "c"]
    assert out["a"] == pytest.approx(1.0, rel=1e-6)
    assert math.isnan(out["b"]) and math.isnan(out["c"])


# -- precision / recall / density / coverage -----------------------------------------------------
def test_identical_sets_have_full_precision_recall_and_coverage():
    x = torch.randn(300, 4, generator=torch.Generator().manual_seed(0))
    assert precision_recall(x, x, k=3) == {"precision": 1.0, "recall": 1.0}
    dc = density_coverage(x, x, k=5)
    assert dc["coverage"] == 1.0
    assert 0.8 < dc["density"] < 1.6


def test_same_distribution_has_density_near_one():
    gen = torch.Generator().manual_seed(1)
    real, fake = torch.randn(2000, 3, generator=gen), torch.randn(2000, 3, generator=gen)
    dc = density_coverage(real, fake, k=5)
    assert dc["density"] == pytest.approx(1.0, abs=0.15)
    assert dc["coverage"] > 0.9
    pr = precision_recall(real, fake, k=3)
    assert pr["precision"] > 0.9 and pr["recall"] > 0.9


def test_far_apart_sets_score_zero():
    x = torch.randn(100, 4, generator=torch.Generator().manual_seed(0))
    assert precision_recall(x, x + 100.0) == {"precision": 0.0, "recall": 0.0}
    dc = density_coverage(x, x + 100.0)
    assert dc == {"density": 0.0, "coverage": 0.0}


def test_precision_recall_match_a_brute_force_count():
    rng = np.random.default_rng(5)
    real, fake = rng.normal(size=(12, 2)), rng.normal(size=(9, 2)) + 0.7
    k = 2

    def radii(x):
        d = np.linalg.norm(x[:, None] - x[None], axis=-1)
        return np.sort(d, axis=1)[:, k]  # column 0 is the point itself

    def inside(points, centres, r):
        d = np.linalg.norm(points[:, None] - centres[None], axis=-1)
        return (d <= r[None]).any(1).mean()

    got = precision_recall(real, fake, k=k)
    assert got["precision"] == pytest.approx(inside(fake, real, radii(real)))
    assert got["recall"] == pytest.approx(inside(real, fake, radii(fake)))


def test_k_must_fit_the_sample_count():
    x = torch.zeros(3, 2)
    with pytest.raises(GanaugDataError, match=r"k=3 nearest neighbours need more than 3 real"):
        precision_recall(x, torch.zeros(10, 2), k=3)
    with pytest.raises(GanaugConfigError, match=r"k must be a positive integer; got 0"):
        density_coverage(torch.zeros(10, 2), x, k=0)


def test_finite_json_replaces_nan():
    assert finite_json({"a": [1.0, float("nan")], "b": float("inf")}) == {"a": [1.0, None],
                                                                         "b": None}


# -- CAS and the whole evaluation ----------------------------------------------------------------
def test_cas_of_real_images_is_close_to_real_accuracy_and_noise_is_far_below(digits16):
    from ganaug.classifier import evaluate_classifier

    train, test = digits16
    real_model, _, _ = train_real_classifier(train, steps=60, seed=0, cache=False,
                                             progress=False, **TINY)
    real_acc = evaluate_classifier(real_model, test.images, test.labels)["accuracy"]
    assert real_acc > 0.7
    good = classification_accuracy_score(RealImagesGenerator(train), test, n_per_class=140,
                                         real_accuracy=real_acc, steps=60, seed=0,
                                         progress=False, **TINY)
    bad = classification_accuracy_score(RealImagesGenerator(train, noise=True), test,
                                        n_per_class=140, real_accuracy=real_acc, steps=60, seed=0,
                                        progress=False, **TINY)
    assert 0.8 <= good["cas_ratio"] <= 1.25
    assert good["cas_ratio"] == pytest.approx(good["cas"] / real_acc)
    assert bad["cas"] < 0.3 < good["cas"]
    assert list(good["cas_per_class"]) == test.classes


def test_evaluate_generator_reports_every_metric_and_caches_the_classifier(digits16, tmp_path):
    train, test = digits16
    gen = RealImagesGenerator(train)
    first = evaluate_generator(gen, train, test, n_per_class=20, classifier_steps=5,
                               cache=tmp_path / "c", progress=False, **TINY)
    for key in ("fid", "fid_per_class", "intra_fid", "fid_real", "precision", "recall",
                "density", "coverage", "cas", "cas_ratio", "real_accuracy"):
        assert key in first
    assert set(first["fid_per_class"]) == set(train.classes)
    assert first["intra_fid"] == pytest.approx(np.mean(list(first["fid_per_class"].values())))
    assert 0.0 <= first["precision"] <= 1.0 and 0.0 <= first["coverage"] <= 1.0
    how = first["how"]
    assert how["n_fake"] == 200 and how["n_real_test"] == len(test)
    assert "NOT comparable" in how["note"] and not how["classifier_cached"]
    assert list((tmp_path / "c" / "features").glob("*.safetensors"))
    second = evaluate_generator(gen, train, test, n_per_class=20, classifier_steps=5,
                                cache=tmp_path / "c", progress=False, **TINY)
    assert second["how"]["classifier_cached"]
    assert second["real_accuracy"] == first["real_accuracy"]
    assert second["fid"] == pytest.approx(first["fid"])


def test_evaluate_refuses_a_generator_with_other_classes(digits16):
    train, test = digits16
    gen = RealImagesGenerator(train.subset(torch.nonzero(train.labels < 3).flatten()))
    gen.classes = gen.classes[:3]
    with pytest.raises(GanaugDataError, match=r"Class-count mismatch: the generator has 3 "
                                              r"classes, the training data has 10"):
        evaluate_generator(gen, train, test, classifier_steps=1, progress=False)


def test_evaluate_refuses_a_generator_of_another_size(digits16):
    from ganaug.data import load_data

    train, test = digits16
    gen = RealImagesGenerator(load_data("digits", split="train"))  # 8x8
    with pytest.raises(GanaugDataError, match=r"makes 1x8x8 images but the training data is "
                                              r"1x16x16.*size=8"):
        evaluate_generator(gen, train, test, classifier_steps=1, progress=False)


def test_timm_features_from_a_local_weights_file(tmp_path):
    import timm
    from safetensors.torch import save_file

    model = timm.create_model("resnet10t", pretrained=False)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()},
              str(tmp_path / "w.safetensors"))
    extractor = timm_feature_extractor(f"resnet10t:{tmp_path / 'w.safetensors'}")
    feats = extractor(torch.zeros(2, 1, 8, 8, dtype=torch.uint8))
    assert feats.shape == (2, model.num_features)
    assert "resnet10t" in extractor.name


def test_timm_features_errors(tmp_path):
    with pytest.raises(GanaugConfigError, match=r"--features must be NAME:WEIGHTS_FILE"):
        timm_feature_extractor("inception_v3")
    with pytest.raises(GanaugModelError, match=r"does not exist"):
        timm_feature_extractor(f"resnet10t:{tmp_path / 'missing.safetensors'}")
    from safetensors.torch import save_file

    save_file({"fc.weight": torch.zeros(2, 2)}, str(tmp_path / "bad.safetensors"))
    with pytest.raises(GanaugModelError, match=r"does not fit timm 'resnet10t'"):
        timm_feature_extractor(f"resnet10t:{tmp_path / 'bad.safetensors'}")


def test_format_metrics_shows_values_and_the_note():
    text = format_metrics({"fid": 12.5, "cas_ratio": None,
                           "how": {"feature_extractor": "x", "note": "NOT comparable"}})
    assert "12.5" in text and "n/a" in text and "NOT comparable" in text


# -- the command ---------------------------------------------------------------------------------
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
    from ganaug.cli import main

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


def test_evaluate_cli_reports_a_class_mismatch(tmp_path, capsys):
    from ganaug.cli import main

    path = _digits_generator_file(tmp_path, num_classes=3)
    assert main(["evaluate", str(path), "--data", "digits", "--classifier-steps", "1"]) == 2
    assert "Class-count mismatch: the generator has 3 classes" in capsys.readouterr().err
