"""The teachers of one regime and seed of an experiment.

A ``+kd`` arm learns from, and a GAN arm under ``teacher_filter`` is filtered by, the seed's
classifier of its :attr:`~ganaug.evaluation.arms.Arm.teacher` arm (``real+aug``, or the
long-tail arm it extends), kept beside that arm's cell; or, with ``teacher_backbone``, one
classifier of that backbone trained on the real subset for every arm.
"""

from __future__ import annotations

from pathlib import Path

from ganaug.errors import GanaugDataError
from ganaug.evaluation.arms import ARMS
from ganaug.evaluation.classifier import load_classifier, save_classifier
from ganaug.evaluation.regime import settings_digest

__all__ = ["SeedTeachers"]


class SeedTeachers:
    """Finds, loads, trains and keeps the teachers of one regime and seed (each loaded once)."""

    def __init__(self, settings, cache, regime: str, seed: int, subset):
        self.settings, self.cache, self.regime, self.seed = settings, cache, regime, seed
        self.subset = subset
        # The arms whose classifiers teach others, kept in a file (none with teacher_backbone).
        self.kept = set() if settings.teacher_backbone is not None else {
            ARMS[a].teacher for a in settings.arms if settings.needs_teacher(a)}
        self.models: dict = {}

    def name(self, arm: str) -> str:
        """Who teaches ``arm``: the ``teacher_backbone``, or the arm whose classifier does."""
        return self.settings.teacher_backbone or ARMS[arm].teacher

    def path(self, teacher: str) -> Path:
        """Where a teacher is kept: its arm's classifier beside the cell, or a
        ``teacher_backbone`` classifier named by a hash of everything that shaped it."""
        s = self.settings
        if s.teacher_backbone is None:
            return self.cache.real_model(self.regime, self.seed, teacher)
        shape = {k: getattr(s, k) for k in ("data", "test", "imbalance", "stem", "image_size",
                                            "classifier_steps", "batch_size", "teacher_backbone")}
        return self.cache.real_model(self.regime, self.seed, f"teacher-{settings_digest(shape)}")

    def missing(self, arm: str) -> bool:
        """Whether ``arm`` teaches others but its cached cell was kept without its classifier
        (by a run without the arms it teaches): then it is trained again."""
        return arm in self.kept and not self.path(arm).is_file()

    def of(self, arm: str):
        """The teacher of ``arm`` (None if it needs none), from its file or, for a
        ``teacher_backbone``, trained on the real subset and saved the first time."""
        if not self.settings.needs_teacher(arm):
            return None
        who = self.name(arm)
        if who not in self.models:
            self.models[who] = self._load(who)
        return self.models[who]

    def keep(self, arm: str, model) -> None:
        """Saves ``arm``'s freshly trained classifier if it teaches others."""
        if arm in self.kept:
            save_classifier(model, self.path(arm))
            self.models[arm] = model.to(self.settings.device)

    def _load(self, who: str):
        s, path = self.settings, self.path(who)
        if path.is_file():
            return load_classifier(path)[0].to(s.device)
        if s.teacher_backbone is None:
            raise GanaugDataError(f"The {who} classifier that teaches the +kd arms is missing "
                                  f"({path}); delete {path.parent} to recompute.")
        model = s.teacher_recipe().train(self.subset, seed=self.seed, device=s.device,
                                         progress=s.progress, desc=f"teacher {s.teacher_backbone}")
        save_classifier(model, path)
        return model.to(s.device)
