"""ganaug.evaluation.arms: the ARMS table, arm names, and each kind of arm's training data."""

from __future__ import annotations

import pytest
import torch

from ganaug.errors import GanaugConfigError, GanaugDataError
from ganaug.evaluation.arms import (
    ARMS,
    BASELINE,
    DEFAULT_ARMS,
    IMBALANCE_ARMS,
    KD_ARMS,
    Arm,
    arm_data,
    parse_arms,
)


def test_the_arms_table():
    assert list(ARMS) == ["real", "real+aug", "real+gan", "real+aug+gan", "gan", "real+weighted",
                          "real+oversample", "real+weighted+gan", "real+oversample+gan",
                          "real+aug+kd", "real+aug+gan+kd", "real+weighted+kd",
                          "real+weighted+gan+kd"]
    assert {n for n, a in ARMS.items() if a.uses_gan} == {
        "real+gan", "real+aug+gan", "gan", "real+weighted+gan", "real+oversample+gan",
        "real+aug+gan+kd", "real+weighted+gan+kd"}
    assert {n for n, a in ARMS.items() if a.augment == "standard"} == set(ARMS) - {
        "real", "real+gan", "gan"}
    # the GAN combined with the usual long-tail fixes: same loss/sampler, plus synthetic data
    assert ARMS["real+weighted+gan"] == Arm(data="real+synthetic", augment="standard",
                                            class_weights="balanced")
    assert ARMS["real+oversample+gan"] == Arm(data="real+synthetic", augment="standard",
                                              sampler="balanced")
    assert {n for n, a in ARMS.items() if a.distill} == set(KD_ARMS) == {
        "real+aug+kd", "real+aug+gan+kd", "real+weighted+kd", "real+weighted+gan+kd"}
    # the recipe combined with the long tail's best fix, and its control without the GAN
    assert ARMS["real+weighted+gan+kd"] == Arm(data="real+synthetic", augment="standard",
                                               class_weights="balanced", distill=True)
    assert ARMS["real+weighted+kd"] == Arm(augment="standard", class_weights="balanced",
                                           distill=True)
    assert ARMS["real+aug+gan+kd"].data == "real+synthetic" and ARMS["real+aug+kd"].data == "real"
    assert ARMS["real+weighted"] == Arm(augment="standard", class_weights="balanced")
    assert ARMS["real+oversample"] == Arm(augment="standard", sampler="balanced")
    assert ARMS["gan"].data == "synthetic" and ARMS["real+gan"].data == "real+synthetic"
    assert set(DEFAULT_ARMS) | set(IMBALANCE_ARMS) | set(KD_ARMS) == set(ARMS)
    assert BASELINE in DEFAULT_ARMS


def test_each_arm_learns_from_its_real_only_counterpart():
    """The teacher of a +kd arm (and the filter of a GAN arm): the seed's classifier trained on
    the real images the same way, without the GAN or distillation."""
    assert {n: a.teacher for n, a in ARMS.items() if a.teacher != "real+aug"} == {
        "real+weighted": "real+weighted", "real+weighted+gan": "real+weighted",
        "real+weighted+kd": "real+weighted", "real+weighted+gan+kd": "real+weighted",
        "real+oversample": "real+oversample", "real+oversample+gan": "real+oversample"}
    assert all(not ARMS[a.teacher].uses_gan and not ARMS[a.teacher].distill
               for a in ARMS.values())


def test_parse_arms():
    assert parse_arms(None, None) == list(DEFAULT_ARMS)
    assert parse_arms("real, gan,real", None) == ["real", "gan"]
    assert parse_arms(["gan"], None) == ["gan"]
    # --imbalance adds the long tail's controls; their GAN versions only when a GAN arm is asked
    # for (`--arms real --imbalance 10` trained two GANs nobody asked for, and the 8x8 refusal's
    # advice to leave the GAN arms out could not be followed)
    assert parse_arms("real", 10.0) == ["real", "real+weighted", "real+oversample"]
    assert parse_arms("real,real+aug+gan", 10.0) == [
        "real", "real+aug+gan", "real+weighted", "real+oversample", "real+weighted+gan",
        "real+oversample+gan"]
    assert parse_arms(None, 10.0) == list(DEFAULT_ARMS) + list(IMBALANCE_ARMS)
    assert parse_arms("real+oversample,real", 10.0)[:3] == ["real+oversample", "real",
                                                           "real+weighted"]
    # a distilled arm brings its teacher, and runs after it
    assert parse_arms("real+aug+kd", None) == ["real+aug", "real+aug+kd"]
    assert parse_arms("real+aug+gan+kd,real,real+aug", None) == ["real", "real+aug",
                                                                 "real+aug+gan+kd"]
    assert parse_arms("real+weighted+kd", None) == ["real+weighted", "real+weighted+kd"]
    with pytest.raises(GanaugConfigError,
                       match=r"Unknown arm 'real\+gann'. Available: real, .*Did you mean 'real\+gan'"):
        parse_arms("real,real+gann", None)


@pytest.fixture
def subset():
    from ganaug.data import LabeledImages

    labels = torch.tensor([0, 0, 0, 0, 1, 1, 2])  # 4 / 2 / 1: a long tail
    images = torch.zeros(7, 3, 16, 16, dtype=torch.uint8)
    return LabeledImages(images, labels, ["a", "b", "c"], "hand-made", "hand")


def test_real_arms_train_on_the_subset_itself(subset, tiny_generator):
    (images, labels), mixer, note = arm_data(ARMS["real+aug"], subset, tiny_generator, seed=0)
    assert images is subset.images and labels is subset.labels
    assert mixer is None and note == "7 real"


def test_gan_arm_draws_as_many_synthetic_images_as_real_ones(subset, tiny_generator):
    (images, labels), mixer, note = arm_data(ARMS["gan"], subset, tiny_generator, seed=0)
    assert images.shape == (9, 3, 16, 16) and images.dtype == torch.uint8  # ceil(7 / 3) = 3 each
    assert labels.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert mixer is None and note == "9 synthetic (3 per class)"


def test_mixed_arm_appends_in_proportion_or_fills_the_tail(subset, tiny_generator):
    (images, labels), _, note = arm_data(ARMS["real+gan"], subset, tiny_generator, seed=0)
    assert note == "7 real + 7 synthetic"
    assert torch.bincount(labels).tolist() == [8, 4, 2]  # proportions kept
    torch.testing.assert_close(images[:7], subset.images)
    (_, labels), _, note = arm_data(ARMS["real+gan"], subset, tiny_generator, seed=0,
                                    synthetic_ratio=2.0, balanced=True)
    assert note == "7 real + 14 synthetic"
    assert torch.bincount(labels).tolist() == [7, 7, 7]  # the rarest classes filled first


def test_mixed_arm_with_replace_p_gives_a_batch_mixer(subset, tiny_generator):
    from ganaug.augment import BatchMixer

    (images, _), mixer, note = arm_data(ARMS["real+aug+gan"], subset, tiny_generator, seed=0,
                                        replace_p=0.25)
    assert images is subset.images and isinstance(mixer, BatchMixer)
    assert mixer.fraction == 0.25 and note == "7 real, 25% of each batch replaced"


def test_min_confidence_filters_the_synthetic_images(subset, tiny_generator):
    from ganaug.evaluation.classifier import create_classifier

    model = create_classifier("resnet10t", num_classes=3, in_chans=3, image_size=16, seed=0,
                              stem="cifar-3x3-pool", channels=(8, 16, 32, 64), stem_width=8)
    # an untrained model is never 99.9% sure: every synthetic image is refused, and the
    # SyntheticDataset says so
    with pytest.raises(GanaugDataError, match=r"Class 'a': only 0 of 60 generated samples "
                                              r"\(0\.0%\) pass the teacher's filter "
                                              r"\(min_confidence=0\.999, drop_hardest=0\.0\)"):
        arm_data(ARMS["gan"], subset, tiny_generator, seed=0, filter_model=model,
                 min_confidence=0.999)
    # without the model the images would go unfiltered while the cell says min_confidence
    with pytest.raises(GanaugConfigError, match=r"min_confidence=0.999 .*no filter_model"):
        arm_data(ARMS["gan"], subset, tiny_generator, seed=0, min_confidence=0.999)
    # a real-only arm has no synthetic images to filter
    (images, _), _, _ = arm_data(ARMS["real"], subset, tiny_generator, seed=0,
                                 min_confidence=0.999)
    assert len(images) == 7
