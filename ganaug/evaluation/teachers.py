"""The teachers of one regime and seed of an experiment.

A ``+kd`` arm learns from, and a GAN arm under ``teacher_filter`` is filtered by, the seed's
classifier of its :attr:`~ganaug.evaluation.arms.Arm.teacher` arm (``real+aug``, or the
long-tail arm it extends), kept beside that arm's cell; or, with ``teacher_backbone``, one
classifier of that backbone trained on the real subset for every arm. Under ``min_confidence``
the ``real`` arm's classifier, kept the same way, filters the GAN arms' synthetic images.

Each kept classifier records the cell it belongs to (regime, seed, arm, settings and the
fingerprints of its images); a file that records another cell (left by a run with other
settings, or copied) is not used: its arm is trained again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ganaug.errors import GanaugDataError
from ganaug.evaluation.arms import ARMS
from ganaug.evaluation.cells import as_json
from ganaug.evaluation.classifier import load_classifier, save_classifier
from ganaug.evaluation.regime import settings_digest

__all__ = ["SeedTeachers"]


class SeedTeachers:
    """Finds, loads, trains and keeps the teachers of one regime and seed (each loaded once)."""

    def __init__(self, settings, cache, regime: str, seed: int, subset):
        self.settings, self.cache, self.regime, self.seed = settings, cache, regime, seed
        self.subset = subset
        # The arms whose classifiers teach or filter others, kept in a file.
        self.kept = set() if settings.teacher_backbone is not None else {
            ARMS[a].teacher for a in settings.arms if settings.needs_teacher(a)}
        if settings.min_confidence is not None and settings.gan_arms:
            self.kept.add("real")
        self.models: dict = {}

    def name(self, arm: str) -> str:
        """Who teaches ``arm``: the ``teacher_backbone``, or the arm whose classifier does."""
        return self.settings.teacher_backbone or ARMS[arm].teacher

    def path(self, teacher: str) -> Path:
        """Where a teacher is kept: its arm's classifier beside the cell, or a
        ``teacher_backbone`` classifier named by a hash of everything that shaped it."""
        if teacher in ARMS:
            return self.cache.real_model(self.regime, self.seed, teacher)
        return self.cache.real_model(self.regime, self.seed,
                                     f"teacher-{settings_digest(self._shape())}")

    def _shape(self) -> dict[str, Any]:
        s = self.settings
        return {k: getattr(s, k) for k in ("data", "test", "imbalance", "stem", "image_size",
                                           "classifier_steps", "batch_size", "teacher_backbone")}

    def _identity(self, teacher: str) -> dict[str, Any]:
        """What a kept classifier of ``teacher`` records, as JSON gives it back."""
        inputs = self.cache.inputs(teacher if teacher in ARMS else "real", self.subset)
        if teacher in ARMS:
            return {"regime": self.regime, "seed": self.seed, "arm": teacher,
                    "settings": self.cache.key(teacher), "inputs": inputs}
        return {"regime": self.regime, "seed": self.seed, "teacher": self._shape(),
                "inputs": inputs}

    def _kept_model(self, teacher: str):
        """The kept classifier of ``teacher`` if its file records this cell, else None."""
        path = self.path(teacher)
        if teacher not in self.models and path.is_file():
            model, meta = load_classifier(path)
            if meta.get("cell") == as_json(self._identity(teacher)):
                self.models[teacher] = model.to(self.settings.device)
        return self.models.get(teacher)

    def missing(self, arm: str) -> bool:
        """Whether ``arm`` teaches or filters others but its cached cell was kept without its
        classifier (by a run without the arms it teaches, or with other settings): then it is
        trained again."""
        return arm in self.kept and self._kept_model(arm) is None

    def of(self, arm: str):
        """The teacher of ``arm`` (None if it needs none), from its file or, for a
        ``teacher_backbone``, trained on the real subset and saved the first time."""
        if not self.settings.needs_teacher(arm):
            return None
        return self._load(self.name(arm))

    def real_filter(self):
        """The ``real`` arm's classifier that filters the GAN arms under ``min_confidence``."""
        return self._load("real")

    def keep(self, arm: str, model) -> None:
        """Saves ``arm``'s freshly trained classifier if it teaches or filters others."""
        if arm in self.kept:
            self._save(arm, model)

    def _save(self, who: str, model) -> None:
        save_classifier(model, self.path(who),
                        metadata={"cell": as_json(self._identity(who))})
        self.models[who] = model.to(self.settings.device)

    def _load(self, who: str):
        s = self.settings
        if self._kept_model(who) is not None:
            return self.models[who]
        if who in ARMS:
            path = self.path(who)
            raise GanaugDataError(f"The {who} classifier that teaches or filters other arms is "
                                  f"missing or belongs to another cell ({path}); delete "
                                  f"{path.parent} to recompute.")
        model = s.teacher_recipe().train(self.subset, seed=self.seed, device=s.device,
                                         progress=s.progress, desc=f"teacher {s.teacher_backbone}")
        self._save(who, model)
        return self.models[who]
