"""How good is a generator, and does it help a classifier?

Pure feature distances (:mod:`~ganaug.evaluation.distances`), the one classifier recipe
(:mod:`~ganaug.evaluation.classifier`, :mod:`~ganaug.evaluation.recipe`), feature extractors
(:mod:`~ganaug.evaluation.features`), the generator metrics
(:mod:`~ganaug.evaluation.generator_metrics`), and the experiment: its arms
(:mod:`~ganaug.evaluation.arms`), runner (:mod:`~ganaug.evaluation.experiment`), statistics
(:mod:`~ganaug.evaluation.stats`) and report (:mod:`~ganaug.evaluation.report`).
"""

from ganaug.evaluation.arms import ARMS, DEFAULT_ARMS, Arm
from ganaug.evaluation.classifier import (
    STEMS,
    create_classifier,
    evaluate_classifier,
    extract_features,
    load_classifier,
    predict_logits,
    save_classifier,
)
from ganaug.evaluation.distances import (
    density_coverage,
    frechet_distance,
    frechet_distance_per_class,
    precision_recall,
)
from ganaug.evaluation.experiment import ExperimentSettings, check_no_leakage, run_experiment
from ganaug.evaluation.features import (
    DEFAULT_BACKBONE,
    DEFAULT_CLASSIFIER_STEPS,
    DEFAULT_MODEL_KWARGS,
    DEFAULT_STEM,
    FeatureExtractor,
    evaluation_recipe,
    timm_feature_extractor,
    train_real_classifier,
)
from ganaug.evaluation.generator_metrics import (
    classification_accuracy_score,
    evaluate_generator,
    format_metrics,
)
from ganaug.evaluation.recipe import (
    ClassifierRecipe,
    flip_suits,
    random_crop_flip,
    train_classifier,
)
from ganaug.evaluation.report import finite_json, format_table, summarize
from ganaug.evaluation.stats import paired_comparison, t_interval

__all__ = [
    "ARMS",
    "DEFAULT_ARMS",
    "DEFAULT_BACKBONE",
    "DEFAULT_CLASSIFIER_STEPS",
    "DEFAULT_MODEL_KWARGS",
    "DEFAULT_STEM",
    "STEMS",
    "Arm",
    "ClassifierRecipe",
    "ExperimentSettings",
    "FeatureExtractor",
    "check_no_leakage",
    "classification_accuracy_score",
    "create_classifier",
    "density_coverage",
    "evaluate_classifier",
    "evaluate_generator",
    "evaluation_recipe",
    "extract_features",
    "finite_json",
    "flip_suits",
    "format_metrics",
    "format_table",
    "frechet_distance",
    "frechet_distance_per_class",
    "load_classifier",
    "paired_comparison",
    "precision_recall",
    "predict_logits",
    "random_crop_flip",
    "run_experiment",
    "save_classifier",
    "summarize",
    "t_interval",
    "timm_feature_extractor",
    "train_classifier",
    "train_real_classifier",
]
