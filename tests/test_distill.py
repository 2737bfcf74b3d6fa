"""ganaug.evaluation.distill: the +kd arms' mixer, and the arms in a tiny experiment."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from ganaug.errors import GanaugConfigError
from ganaug.evaluation import create_classifier
from ganaug.evaluation.distill import DistillMixer


@pytest.fixture
def teacher():
    return create_classifier("resnet10t", num_classes=3, in_chans=3, image_size=16, seed=0,
                             channels=(8, 8, 8, 8), stem_width=8).eval()


def test_targets_blend_the_labels_with_the_teachers_softened_distribution(teacher):
    from ganaug.evaluation.classifier import to_input

    images = torch.randint(0, 256, (4, 3, 16, 16), dtype=torch.uint8)
    labels = torch.tensor([0, 1, 2, 0])
    with torch.inference_mode():
        logits = teacher(to_input(teacher, images)).float()
    mixer = DistillMixer(teacher, temperature=4.0, alpha=0.25)
    out_images, targets = mixer(images, labels)
    assert out_images is images and targets.shape == (4, 3)
    expect = 0.25 * nn.functional.one_hot(labels, 3) + 0.75 * torch.softmax(logits / 4.0, 1)
    torch.testing.assert_close(targets, expect)
    torch.testing.assert_close(targets.sum(1), torch.ones(4))
    # the same images as float [0, 1] (what a BatchMixer may return): the same teacher targets
    _, again = DistillMixer(teacher, alpha=0.0, temperature=4.0)(images / 255.0, labels)
    torch.testing.assert_close(again, torch.softmax(logits / 4.0, 1), atol=1e-4, rtol=1e-4)
    # alpha=1 keeps the labels; soft input labels are blended as they are
    _, hard = DistillMixer(teacher, alpha=1.0)(images, labels)
    torch.testing.assert_close(hard, nn.functional.one_hot(labels, 3).float())
    soft = torch.full((4, 3), 1 / 3)
    _, blended = DistillMixer(teacher, alpha=0.5, temperature=1.0)(images, soft)
    torch.testing.assert_close(blended, 0.5 * soft + 0.5 * torch.softmax(logits, 1))


def test_a_preceding_mixer_runs_first(teacher):
    images = torch.zeros(2, 3, 16, 16, dtype=torch.uint8)
    seen = []

    def first(x, y):
        seen.append(y.tolist())
        return x + 1, torch.tensor([2, 2])

    _, targets = DistillMixer(teacher, alpha=1.0, then=first)(images, torch.tensor([0, 1]))
    assert seen == [[0, 1]] and targets.argmax(1).tolist() == [2, 2]


@pytest.mark.parametrize("kwargs, message", [
    ({"temperature": 0.0}, r"kd_temperature must be a finite number in \(0, inf\), got 0.0"),
    ({"alpha": -0.1}, r"kd_alpha must be a finite number in \[0, 1\], got -0.1"),
])
def test_bad_knobs_are_refused(teacher, kwargs, message):
    with pytest.raises(GanaugConfigError, match=message):
        DistillMixer(teacher, **kwargs)


TINY_KD = {"per_class": "10", "backbone": "resnet10t", "stem": "cifar-3x3-pool", "seeds": 1,
           "gan_steps": 2, "classifier_steps": 2, "image_size": 16, "batch_size": 16,
           "model_kwargs": {"channels": (8, 8, 8, 8), "stem_width": 8}, "progress": False}


@pytest.fixture
def teachers(monkeypatch):
    """``(arm, teacher)`` of every cell the experiment computes, in order."""
    from ganaug.evaluation import experiment

    seen = []
    real_cell = experiment._run_cell

    def spy(name, *args, teacher=None, **kwargs):
        seen.append((name, teacher))
        return real_cell(name, *args, teacher=teacher, **kwargs)

    monkeypatch.setattr(experiment, "_run_cell", spy)
    return seen


def test_kd_arms_learn_from_the_same_seeds_real_aug_classifier(tmp_path, teachers):
    from ganaug.evaluation.experiment import run_experiment

    tiny = TINY_KD
    doc = run_experiment("digits", out=tmp_path, arms="real+aug+gan+kd,real+aug+kd",
                         kd_temperature=2.0, **tiny)
    assert doc["settings"]["arms"] == ["real+aug", "real+aug+gan+kd", "real+aug+kd"]
    assert teachers[0] == ("real+aug", None)
    assert teachers[1][1] is teachers[2][1] and teachers[1][1] is not None
    notes = {c["arm"]: c["train_data"] for c in doc["cells"]}
    assert notes["real+aug+kd"] == "100 real, distilled from real+aug (T=2, alpha=0.5)"
    assert notes["real+aug+gan+kd"] == ("100 real + 100 synthetic, distilled from real+aug "
                                        "(T=2, alpha=0.5)")
    assert (tmp_path / "cells" / "10-s0-real_aug.safetensors").is_file()
    # real+aug+kd is a control: the GAN+kd arm is judged against the better of the two
    (verdict,) = doc["verdict"]
    assert verdict["best_control"] in ("real+aug", "real+aug+kd")
    assert set(verdict["comparisons"]) == {"real+aug+gan+kd"}
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["settings"]["kd_temperature"] == 2.0
    # a rerun reuses every cell; the teacher is loaded from its file only if a +kd cell is missing
    (tmp_path / "cells" / "10-s0-real_aug_kd.json").unlink()
    teachers.clear()
    run_experiment("digits", out=tmp_path, arms="real+aug+gan+kd,real+aug+kd",
                   kd_temperature=2.0, **tiny)
    assert [n for n, _ in teachers] == ["real+aug+kd"] and teachers[0][1] is not None


class _Fixed(nn.Module):
    """A 'teacher' whose logits are given per image (by the image's first pixel)."""

    def __init__(self, table):
        super().__init__()
        self.table = torch.tensor(table, dtype=torch.float32)
        self.w = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        return self.table[((x[:, 0, 0, 0] + 1) * 127.5).round().long()]


def test_drop_hardest_drops_the_synthetic_rows_the_teacher_disagrees_with(monkeypatch):
    from ganaug.evaluation import distill

    monkeypatch.setattr(distill, "to_input", lambda model, x: x.float() / 127.5 - 1)
    table = [[0.0, 0.0]] * 256
    table[1], table[2], table[3], table[4] = [5.0, 0.0], [0.0, 5.0], [5.0, 0.0], [2.0, 0.0]
    images = torch.zeros(6, 1, 2, 2, dtype=torch.uint8)
    images[:, 0, 0, 0] = torch.tensor([1, 1, 2, 3, 4, 1])  # rows 0-1 real, 2-5 synthetic
    labels = torch.tensor([1, 1, 0, 0, 1, 0])
    # synthetic losses: row 2 5.0 (the teacher says 1), row 4 2.1 (it leans to 0), rows 3, 5 ~0
    kept, kept_labels, dropped = distill.drop_hardest(_Fixed(table), images, labels, start=2,
                                                      fraction=0.5)
    assert dropped == 2 and kept_labels.tolist() == [1, 1, 0, 0]
    assert kept[:, 0, 0, 0].tolist() == [1, 1, 3, 1]  # real rows kept even with high loss
    same = distill.drop_hardest(_Fixed(table), images, labels, start=2, fraction=0.2)
    assert same[2] == 0 and same[0] is images
    with pytest.raises(GanaugConfigError, match=r"teacher_filter must be a finite number"):
        distill.drop_hardest(_Fixed(table), images, labels, start=2, fraction=-1)


def test_teacher_filter_runs_the_teacher_first_and_drops_synthetic_images(tmp_path):
    from ganaug.evaluation.experiment import ExperimentSettings, run_experiment

    with pytest.raises(GanaugConfigError, match=r"teacher_filter= drops appended synthetic"):
        ExperimentSettings(data="digits", teacher_filter=0.1, replace_p=0.5)
    assert ExperimentSettings(data="digits", arms="real+gan,real", teacher_filter=0.1,
                              device="cpu").arms == ["real+aug", "real+gan", "real"]
    doc = run_experiment("digits", out=tmp_path, per_class="10", arms="real+aug+gan,gan",
                         teacher_filter=0.25, backbone="resnet10t", stem="cifar-3x3-pool",
                         seeds=1, gan_steps=2, classifier_steps=2, image_size=16, batch_size=16,
                         model_kwargs={"channels": (8, 8, 8, 8), "stem_width": 8},
                         progress=False)
    notes = {c["arm"]: c["train_data"] for c in doc["cells"]}
    assert notes == {"real+aug": "100 real",
                     "real+aug+gan": "100 real + 100 synthetic, 25 synthetic dropped by the "
                                     "real+aug teacher's loss",
                     "gan": "100 synthetic (10 per class), 25 synthetic dropped by the real+aug "
                            "teacher's loss"}
    assert doc["settings"]["teacher_filter"] == 0.25
    # the grids of what seed 0's classifiers received, and of what the filter dropped
    for arm in ("real_aug_gan", "gan"):
        assert (tmp_path / f"received-10-{arm}.png").is_file()
        assert (tmp_path / f"dropped-10-{arm}.png").is_file()
    report = (tmp_path / "report.md").read_text()
    assert "(received-10-real_aug_gan.png)" in report and "(dropped-10-gan.png)" in report


def test_received_grid_shows_the_kept_synthetic_rows_only(tmp_path, monkeypatch):
    from ganaug.evaluation import experiment, report

    saved = {}
    monkeypatch.setattr(report, "save_class_grid",
                        lambda images, labels, classes, path, **kw: saved.update(
                            {path.name: labels.tolist()}))

    images = torch.zeros(6, 1, 2, 2, dtype=torch.uint8)
    labels = torch.tensor([0, 1, 0, 1, 1, 0])  # rows 0-1 real, 2-5 synthetic
    keep = torch.tensor([True, True, True, False, False, True])  # the filter dropped rows 3, 4
    report.save_received(tmp_path, "real+aug+gan", "10", ("a", "b"), images, labels, keep, 2)
    assert saved == {"received-10-real_aug_gan.png": [0, 0], "dropped-10-real_aug_gan.png": [1, 1]}
    saved.clear()
    report.save_received(tmp_path, "real+aug+gan", "10", ("a", "b"), images, labels,
                         torch.ones(6, dtype=torch.bool), 2)
    assert saved == {"received-10-real_aug_gan.png": [0, 1, 1, 0]}  # nothing dropped: no grid
    # in a run, only seed 0 writes these grids (two seeds here: still one received, one dropped)
    calls = []
    monkeypatch.setattr(report, "save_class_grid",
                        lambda images, labels, classes, path, **kw: calls.append(path.name))
    experiment.run_experiment("digits", out=tmp_path / "run", arms="real+aug+gan",
                              teacher_filter=0.25, **{**TINY_KD, "seeds": 2})
    assert sorted(calls) == ["dropped-10-real_aug_gan.png", "received-10-real_aug_gan.png"]


def test_teacher_backbone_trains_its_own_teacher_once_and_reuses_the_cells_it_cannot_touch(
        tmp_path, teachers):
    from ganaug.evaluation.experiment import ExperimentSettings, run_experiment

    tiny = TINY_KD
    doc = run_experiment("digits", out=tmp_path, arms="real+aug+kd,real+aug+gan+kd",
                         teacher_backbone="resnet14t", **tiny)
    assert len({id(t) for n, t in teachers if n.endswith("kd")}) == 1  # one teacher for both
    taught = next(t for n, t in teachers if n == "real+aug+kd")
    assert taught.ganaug_config["name"] == "resnet14t"  # not the student's resnet10t
    files = sorted(p.name for p in (tmp_path / "cells").glob("*-teacher-*.safetensors"))
    assert len(files) == 1 and not (tmp_path / "cells" / "10-s0-real_aug.safetensors").exists()
    notes = {c["arm"]: c["train_data"] for c in doc["cells"]}
    assert notes["real+aug+kd"] == "100 real, distilled from resnet14t (T=4, alpha=0.5)"
    assert doc["settings"]["teacher_backbone"] == "resnet14t"
    # another synthetic loss weight: only the GAN arm is retrained, with the saved teacher
    teachers.clear()
    again = run_experiment("digits", out=tmp_path, arms="real+aug+kd,real+aug+gan+kd",
                           teacher_backbone="resnet14t", synthetic_loss_weight=0.25, **tiny)
    assert [n for n, _ in teachers] == ["real+aug+gan+kd"]
    notes = {c["arm"]: c["train_data"] for c in again["cells"]}
    assert notes["real+aug+gan+kd"].endswith(", synthetic loss x0.25")
    with pytest.raises(GanaugConfigError, match=r"teacher_backbone must be a timm model name"):
        ExperimentSettings(data="digits", teacher_backbone=" ")


def test_the_recipe_combined_with_class_weighting(tmp_path, monkeypatch, teachers):
    """real+weighted+gan+kd: the recipe (teacher-filtered synthetic images, distilled) with the
    long tail's best fix, a class-weighted loss; real+weighted+kd is its control without the GAN.
    Both learn from the seed's real+weighted classifier: a real+aug teacher, biased towards the
    head classes, would pull the student back from what its weighting does (and its filter would
    drop the rare classes' images first). Each arm's teacher is its real-only counterpart."""
    from ganaug.evaluation import experiment
    from ganaug.evaluation.distill import DistillMixer
    from ganaug.evaluation.recipe import ClassifierRecipe

    trained, models = {}, {}
    real_train = ClassifierRecipe.train

    def spy(self, data, *args, desc=None, **kwargs):
        trained[desc] = (kwargs.get("class_weights"), type(kwargs.get("mixer")).__name__,
                         len(data[1]))
        models[desc] = real_train(self, data, *args, desc=desc, **kwargs)
        return models[desc]

    monkeypatch.setattr(ClassifierRecipe, "train", spy)
    doc = experiment.run_experiment("digits", out=tmp_path, imbalance=5.0,
                                    arms="real+weighted+kd,real+weighted+gan+kd",
                                    teacher_filter=0.1, **TINY_KD)
    assert trained["real+weighted+gan+kd"][:2] == ("balanced", DistillMixer.__name__)
    assert trained["real+weighted+kd"][:2] == ("balanced", DistillMixer.__name__)
    assert trained["real+weighted"][:2] == ("balanced", "NoneType")
    # the synthetic images are there, less the tenth the teacher disagrees with most
    assert trained["real+weighted+gan+kd"][2] > trained["real+weighted+kd"][2]
    taught = dict(teachers)
    assert taught["real+weighted+kd"] is models["real+weighted"]
    assert taught["real+weighted+gan+kd"] is models["real+weighted"]
    assert taught["real+weighted+gan"] is models["real+weighted"]  # its filter, too
    assert taught["real+oversample+gan"] is models["real+oversample"]
    notes = {c["arm"]: c["train_data"] for c in doc["cells"]}
    assert "dropped by the real+weighted teacher" in notes["real+weighted+gan+kd"]
    assert notes["real+weighted+kd"].endswith("distilled from real+weighted (T=4, alpha=0.5)")
    assert "dropped by the real+oversample teacher" in notes["real+oversample+gan"]
    (verdict,) = doc["verdict"]
    assert "real+weighted+kd" not in verdict["comparisons"]  # a control, not a GAN arm
    assert "real+weighted+gan+kd" in verdict["comparisons"]
    # cells distilled from another teacher are not reused; the others are, teachers from files
    cells = tmp_path / "cells"
    for arm in ("real+weighted+kd", "real+weighted+gan+kd"):
        path = next(cells.glob(f"*-s0-{arm.replace('+', '_')}.json"))
        cell = json.loads(path.read_text())
        assert cell["settings"]["teacher_arm"] == "real+weighted"
        del cell["settings"]["teacher_arm"]  # as written before the weighted teacher
        path.write_text(json.dumps(cell))
    teachers.clear()
    experiment.run_experiment("digits", out=tmp_path, imbalance=5.0,
                              arms="real+weighted+kd,real+weighted+gan+kd",
                              teacher_filter=0.1, **TINY_KD)
    assert sorted(n for n, _ in teachers) == ["real+weighted+gan+kd", "real+weighted+kd"]
    assert all(t is not None for _, t in teachers)
