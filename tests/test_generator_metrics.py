"""ganaug.evaluation.generator_metrics: CAS, evaluate_generator and its table."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from ganaug.errors import GanaugDataError
from ganaug.evaluation.classifier import evaluate_classifier
from ganaug.evaluation.features import train_real_classifier
from ganaug.evaluation.generator_metrics import (
    classification_accuracy_score,
    evaluate_generator,
    format_metrics,
    per_class_rows,
    useful_accuracy,
    worst_classes,
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


# -- CAS and the whole evaluation ----------------------------------------------------------------
def test_cas_of_real_images_is_close_to_real_accuracy_and_noise_is_far_below(digits16):
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


def test_evaluate_refuses_test_images_that_are_training_images(digits16, monkeypatch):
    """evaluate_generator(gen, train, train) trained the feature classifier on its test images
    and scored a copying generator against its own training images."""
    import ganaug.evaluation.generator_metrics as gm

    train, test = digits16
    monkeypatch.setattr(gm, "train_real_classifier", lambda *a, **k: pytest.fail("trained"))
    gen = RealImagesGenerator(train)
    with pytest.raises(GanaugDataError, match=r"1,437 of the 1,437 test images are also "
                                              r"training images"):
        evaluate_generator(gen, train, train, classifier_steps=1, progress=False)
    mixed = train.subset(range(100))
    with pytest.raises(GanaugDataError, match=r"100 of the 460 test images"):
        evaluate_generator(gen, train, mixed.__class__(
            torch.cat([test.images, mixed.images]), torch.cat([test.labels, mixed.labels]),
            list(test.classes), test.source, ""), classifier_steps=1, progress=False)


@pytest.mark.parametrize("n", [0, -1, True, 2.5])
def test_evaluate_refuses_an_n_per_class_below_1_or_not_an_integer(digits16, n):
    # 0 used to mean "the default" silently.
    from ganaug.errors import GanaugConfigError

    train, test = digits16
    with pytest.raises(GanaugConfigError, match=r"n_per_class must be an integer >= 1"):
        evaluate_generator(RealImagesGenerator(train), train, test, n_per_class=n,
                           classifier_steps=1, progress=False)


def test_too_few_fakes_for_the_neighbourhoods_are_refused_before_any_compute(digits16,
                                                                             monkeypatch):
    # 3 classes x 1 fake is not more than k_pr=3: precision/recall failed after both
    # classifiers had trained, with a message that did not name --n-per-class.
    import ganaug.evaluation.generator_metrics as gm

    train, test = digits16

    def first_three(data):
        keep = data.labels < 3
        return type(data)(data.images[keep], data.labels[keep], data.classes[:3], "three", "")

    train, test = first_three(train), first_three(test)
    monkeypatch.setattr(gm, "train_real_classifier", lambda *a, **k: pytest.fail("computed"))
    with pytest.raises(GanaugDataError, match=r"3 generated images \(n_per_class=1 x 3 "
                                              r"classes\).*more than k_pr=3.*n_per_class=2 or more"):
        evaluate_generator(RealImagesGenerator(train), train, test, n_per_class=1,
                           classifier_steps=1, progress=False)


def test_evaluate_refuses_more_fakes_than_memory_before_any_compute(digits16, monkeypatch):
    # --n-per-class 1000000000 died in torch's allocator (a raw RuntimeError) after training
    # the real classifier; smaller huge values would swap for hours.
    import ganaug.evaluation.generator_metrics as gm
    from ganaug.errors import GanaugConfigError

    train, test = digits16
    monkeypatch.setattr("ganaug._imaging.available_memory", lambda: 10**9)
    monkeypatch.setattr(gm, "train_real_classifier", lambda *a, **k: pytest.fail("computed"))
    with pytest.raises(GanaugConfigError, match=r"n_per_class=1000000 .*10,000,000 generated "
                                                r"images.*1.0 GB.*fewer"):
        evaluate_generator(RealImagesGenerator(train), train, test, n_per_class=10**6,
                           classifier_steps=1, progress=False)


def test_format_metrics_shows_values_and_the_note():
    text = format_metrics({"fid": 12.5, "cas_ratio": None,
                           "how": {"feature_extractor": "x", "note": "NOT comparable"}})
    assert "12.5" in text and "n/a" in text and "NOT comparable" in text


# -- per class, worst classes, and the trust in the feature classifier --------------------------
class OneClassBroken(RealImagesGenerator):
    """Real images, except that class ``broken`` is drawn as images of class ``drawn_as``
    (a generator that mixes up a class)."""

    def __init__(self, data, broken: int, drawn_as: int):
        super().__init__(data)
        self.broken, self.drawn_as = broken, drawn_as

    def sample(self, *args, **kw):
        images, labels = super().sample(*args, **{**kw, "return_labels": True})
        images = images.clone()
        images[labels == self.broken] = images[labels == self.drawn_as]
        return (images, labels) if kw.get("return_labels") else images


def test_useful_accuracy_is_halfway_from_chance_to_perfect():
    assert useful_accuracy(10) == pytest.approx(0.55)
    assert useful_accuracy(2) == pytest.approx(0.75)
    assert useful_accuracy(100) == pytest.approx(0.505)


def test_per_class_rows_and_worst_classes_by_each_measure():
    result = {"cas_per_class": {"a": 0.5, "b": 0.9, "c": 0.2, "d": 0.0},
              "real_accuracy_per_class": [1.0, 0.9, 0.8, 0.0],
              "fake_accuracy_per_class": [0.7, 0.1, 0.9, float("nan")],
              "fid_per_class": {"a": 3.0, "b": 1.0, "c": 9.0, "d": 2.0}}
    rows = per_class_rows(result, ["a", "b", "c", "d"])
    assert [r["cas_ratio"] for r in rows] == [pytest.approx(0.5), pytest.approx(1.0),
                                              pytest.approx(0.25), None]  # d: real acc 0
    assert rows[2] == {"class": "c", "cas": 0.2, "real_accuracy": 0.8,
                       "cas_ratio": pytest.approx(0.25), "fake_accuracy": 0.9, "intra_fid": 9.0}
    assert worst_classes(rows) == {"cas_ratio": ["c"], "fake_accuracy": ["b"],
                                   "intra_fid": ["c"]}
    assert worst_classes(rows, k=2) == {"cas_ratio": ["c", "a"], "fake_accuracy": ["b", "a"],
                                        "intra_fid": ["c", "a"]}


def test_evaluate_names_the_class_drawn_badly_and_trusts_a_good_classifier(digits16):
    train, test = digits16
    result = evaluate_generator(OneClassBroken(train, broken=3, drawn_as=5), train, test, n_per_class=30,
                                classifier_steps=60, cache=False, progress=False, **TINY)
    assert result["feature_classifier"]["trusted"] and result["warnings"] == []
    assert result["real_accuracy"] >= 0.55
    rows = {r["class"]: r for r in result["per_class"]}
    assert [r["class"] for r in result["per_class"]] == train.classes
    assert rows["3"]["fake_accuracy"] < 0.2 < min(r["fake_accuracy"] for c, r in rows.items()
                                                  if c != "3")
    worst = result["worst_classes"]
    assert worst["fake_accuracy"][0] == "3" and worst["intra_fid"][0] == "3"
    assert worst["cas_ratio"][0] == "3"
    assert result["fake_accuracy"] == pytest.approx(
        np.mean(result["fake_accuracy_per_class"]))  # equal counts per class
    text = format_metrics(result)
    assert "WARNING" not in text and "untrustworthy" not in text
    assert re.search(r"^\s+3\s.*<- worst CAS, recog\., FID$", text, re.MULTILINE)
    assert re.search(r"^worst classes: lowest CAS ratio: 3\b.*fewest fakes recognised: 3\b.*"
                     r"highest intra-class FID: 3\b", text, re.MULTILINE)


def test_a_weak_feature_classifier_is_reported_loudly(digits16):
    train, test = digits16
    result = evaluate_generator(RealImagesGenerator(train), train, test, n_per_class=10,
                                classifier_steps=2, cache=False, progress=False, **TINY)
    clf = result["feature_classifier"]
    assert clf["test_accuracy"] == result["real_accuracy"] < 0.55
    assert (clf["chance"], clf["trusted_from"], clf["trusted"]) == (pytest.approx(0.1),
                                                                    pytest.approx(0.55), False)
    assert len(result["warnings"]) == 1
    assert re.match(r"WARNING: the feature classifier reaches only \d+\.\d% test accuracy "
                    r"\(chance 10\.0%, trusted from 55\.0%\): FID.*NOT trustworthy.*"
                    r"classifier_steps=1000", result["warnings"][0])
    text = format_metrics(result)
    assert text.startswith("WARNING") and text.rstrip().endswith("features='NAME:WEIGHTS'.")
    for label in ("precision (fakes that look real)", "CAS ratio (CAS / real accuracy)"):
        line = next(ln for ln in text.splitlines() if ln.startswith(label))
        assert line.endswith("(untrustworthy)"), line
    line = next(ln for ln in text.splitlines() if ln.startswith("CAS (test accuracy"))
    assert not line.endswith("(untrustworthy)")  # CAS itself does not use the classifier's view
