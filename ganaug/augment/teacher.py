"""A teacher classifier: soft targets and a filter for generated images, checked on real ones.

The recipes that turn an imperfect generator into a gain relabel its samples with a classifier
trained on the real data and drop the samples it disagrees with most (cGAN-KD,
https://arxiv.org/abs/2104.03164: drop the fakes in the teacher's top-10 % loss, relabel, distil;
Hinton et al. 2015, https://arxiv.org/abs/1503.02531, for soft targets at a temperature).
:class:`Teacher` holds the classifier, how to feed it, and those settings; its defaults are the
recipe ``ganaug experiment`` recommends (T 4, hard-label weight 0.5, the hardest 10 % dropped).
:class:`ganaug.Distiller` (:mod:`ganaug.augment.recipe`) puts it in a training loop.
"""

from __future__ import annotations

import math
import os
from typing import Any

import torch
import torch.nn.functional as F

from ganaug._checks import check_float, check_int, check_probability
from ganaug._imaging import fit_images, normalize, to_float01
from ganaug.augment.batch import RANGE_SLACK, check_soft_targets
from ganaug.augment.functional import outside_unit_range
from ganaug.errors import GanaugConfigError, GanaugDataError, did_you_mean

__all__ = ["DROP_HARDEST", "LABEL_WEIGHT", "TEACHER_INPUTS", "TEMPERATURE", "Teacher",
           "input_channels", "parse_stats"]

#: What a teacher takes: uint8 [0, 255], float [0, 1], or float normalised with mean/std.
TEACHER_INPUTS = ("uint8", "unit", "normalized")
#: ``ganaug.evaluation.create_classifier`` models take [-1, 1] (mean = std = 0.5) at their size.
GANAUG_STATS = (0.5, 0.5)
#: The recommended recipe (``ganaug experiment``'s ``real+aug+gan+kd``, docs/results.md).
TEMPERATURE = 4.0
LABEL_WEIGHT = 0.5
DROP_HARDEST = 0.1
#: Real rows a teacher is checked on before its agreement with their labels is judged.
CHECK_ROWS = 512


def parse_stats(mean, std, *, what: str = "mean= and std=") -> tuple[torch.Tensor | None,
                                                                    torch.Tensor | None]:
    """Normalize statistics as float32 CPU vectors on the [0, 1] scale (0-255 values / 255)."""
    if (mean is None) != (std is None):
        raise GanaugConfigError(f"Pass both {what} (the pipeline's Normalize), or neither.")
    if mean is None:
        return None, None
    try:
        m, s = (torch.as_tensor(v).detach().to("cpu", torch.float32).reshape(-1)
                for v in (mean, std))
    except (TypeError, ValueError, RuntimeError) as exc:
        raise GanaugConfigError(f"{what} must be numbers or sequences of numbers, got "
                                f"{mean!r} and {std!r} ({exc}).") from None
    finite = bool(torch.isfinite(m).all() & torch.isfinite(s).all())
    if len(m) != len(s) or not len(m) or not finite:
        raise GanaugConfigError(f"{what} need the same number (>= 1) of finite values, "
                                f"got {m.tolist()} and {s.tolist()}.")
    if bool((s <= 0).any()):
        raise GanaugConfigError(f"std must be > 0, got {s.tolist()}.")
    if float(m.abs().max()) > 1 or float(s.max()) > 1:  # 0-255 scale (timm's PrefetchLoader)
        m, s = m / 255, s / 255
    return m, s


def agreement_floor(num_classes: int) -> float:
    """The agreement with real labels a teacher must reach: clearly above chance (1/K).

    ``min(2/K, 1/K + (1 - 1/K)/9)``: 0.2 for 10 classes (a weak but honest teacher reaches
    0.25-0.3; one fed the wrong input convention 0.16), 0.56 for 2 classes, 0.02 for 100.
    """
    chance = 1.0 / num_classes
    return min(2 * chance, chance + (1 - chance) / 9)


class Teacher:
    """A classifier that gives images soft targets and says which generated images to keep.

    Every augmenter takes one as ``teacher=``: :class:`ganaug.BatchMixer` and the datasets use
    it to filter generated candidates; :class:`ganaug.Distiller` blends its soft targets into
    every row's label in the training loop. Before it is trusted, its agreement with real
    labels is measured (:meth:`check`; a :class:`ganaug.BatchMixer` does so on the real rows
    it sees): a teacher fed the wrong input convention, with its output columns in another
    class order, or untrained is refused.

    Args:
        model: an ``nn.Module`` (or callable) mapping ``(N, C, H, W)`` images to ``(N, K)``
            logits over the dataset's classes, in the dataset's label order. It runs in
            ``eval()`` mode (each module's mode is restored after), under ``no_grad`` on its
            own device, with float inputs in its parameters' dtype. Grey images for a
            3-channel teacher are repeated to RGB; RGB images for a 1-channel one become luma.
        num_classes: K (default: the augmenter's class count; logits of another width are
            refused).
        expects: the input the model takes: ``"uint8"`` ([0, 255]), ``"unit"`` (float
            [0, 1]) or ``"normalized"`` (float ``(x - mean) / std``). Required, except for a
            ``ganaug.evaluation.create_classifier`` model, which records its own input.
        mean, std: the model's Normalize statistics (``expects="normalized"``); default its
            timm ``pretrained_cfg``. 0-255 values are divided by 255.
        temperature: T > 0 of the teacher's softmax in the soft targets.
        label_weight: weight in [0, 1] of the given hard label: target = ``label_weight *
            label + (1 - label_weight) * softmax(logits / T)`` (1: the label alone, 0: the
            teacher alone). ``ganaug experiment --kd-alpha`` is this weight.
        drop_hardest: q in [0, 1): of each ``n`` generated candidates, drop the
            ``floor(q * n + 0.5)`` of highest teacher cross-entropy on their intended class
            (cGAN-KD's filter). ``ganaug experiment --teacher-filter``.
        min_confidence: also drop candidates whose teacher probability (at T = 1) of their
            intended class is below this (None: no such filter).

    Attributes:
        real_agreement: share of real images whose label is the teacher's top class, over
            the rows :meth:`check` has seen (None before any).
    """

    def __init__(self, model: Any, *, num_classes: int | None = None,
                 expects: str | None = None, mean=None, std=None,
                 temperature: float = TEMPERATURE, label_weight: float = LABEL_WEIGHT,
                 drop_hardest: float = DROP_HARDEST,
                 min_confidence: float | None = None) -> None:
        """Wrap ``model``; the arguments are described in :class:`Teacher`."""
        if isinstance(model, Teacher):
            raise GanaugConfigError("model= is already a Teacher; pass it as teacher= directly.")
        if isinstance(model, (str, os.PathLike)):
            raise GanaugConfigError(
                f"model={str(model)!r} is a path; pass the classifier itself. Load a ganaug "
                "classifier file with ganaug.evaluation.load_classifier(path)[0].")
        if not callable(model):
            raise GanaugConfigError(f"model must be an nn.Module mapping images to logits, got "
                                    f"{type(model).__name__}.")
        self.model = model
        self.num_classes = None if num_classes is None else check_int("num_classes",
                                                                       num_classes)
        self.temperature = check_float("temperature", temperature, minimum=0.0, open_min=True)
        self.label_weight = check_probability("label_weight", label_weight)
        self.drop_hardest = check_float("drop_hardest", drop_hardest, minimum=0.0, maximum=1.0,
                                        open_max=True, hint="0.1 drops the hardest 10 %.")
        self.min_confidence = (None if min_confidence is None
                               else check_probability("min_confidence", min_confidence))
        self._setup_input(model, expects, mean, std)
        self._ran = False  # a first call that fails is reported with the images it got
        self._real = [0, 0]  # real rows checked, and those whose label is the top class
        #: Per intended class: candidates, those whose top class it is, those kept (rows).
        self._drawn = torch.zeros(3, 0, dtype=torch.int64)

    def _setup_input(self, model: Any, expects: str | None, mean, std) -> None:
        config = getattr(model, "ganaug_config", None)
        self.fit = None
        if isinstance(config, dict):  # a ganaug classifier: its own input, whatever is stated
            self.fit = (int(config["in_chans"]), int(config["image_size"]))
            self._check_recorded(expects, mean, std)
            expects, mean, std = "normalized", *GANAUG_STATS
        #: The channels the teacher takes, where it says (None: unknown, images pass as drawn).
        self.channels = self.fit[0] if self.fit else input_channels(model)
        if expects not in TEACHER_INPUTS:
            raise GanaugConfigError(
                f"expects={expects!r}: say what the model takes, one of "
                f"{', '.join(map(repr, TEACHER_INPUTS))} ('normalized' with mean= and std=). "
                "Only a ganaug.evaluation classifier records its own input."
                + did_you_mean(str(expects), TEACHER_INPUTS))
        self.expects = expects
        self.mean, self.std = parse_stats(mean, std)
        if expects != "normalized" and self.mean is not None:
            raise GanaugConfigError(f"mean= and std= are for expects='normalized', not "
                                    f"{expects!r}.")
        if expects == "normalized" and self.mean is None:
            cfg = getattr(model, "pretrained_cfg", None)
            cfg = cfg if isinstance(cfg, dict) else {}
            self.mean, self.std = parse_stats(cfg.get("mean"), cfg.get("std"))
            if self.mean is None:
                raise GanaugConfigError(
                    "expects='normalized' needs the model's statistics: pass mean= and std= "
                    "(its Normalize, e.g. (0.5,)*3 and (0.5,)*3).")

    def _check_recorded(self, expects: str | None, mean, std) -> None:
        """Refuse a stated input other than a ganaug classifier's recorded [-1, 1]."""
        m, s = parse_stats(mean, std)
        if expects in (None, "normalized") and (m is None or bool(((m == 0.5) & (s == 0.5)).all())):
            return
        c, size = self.fit
        raise GanaugConfigError(
            f"expects={expects!r} (mean={mean!r}, std={std!r}), but a ganaug.evaluation "
            f"classifier records its input: [-1, 1] at {size}x{size}, {c} channel(s); drop "
            "expects=, mean= and std=, and it gets what ganaug.evaluation feeds it.")

    def __repr__(self) -> str:
        name = type(self.model).__name__
        drop = f", drop_hardest={self.drop_hardest:g}"
        conf = "" if self.min_confidence is None else f", min_confidence={self.min_confidence:g}"
        return (f"Teacher({name}, expects={self.expects!r}, temperature={self.temperature:g}, "
                f"label_weight={self.label_weight:g}{drop}{conf})")

    # -- running ----------------------------------------------------------------------------
    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        """``(N, C, H, W)`` uint8 [0, 255] or float [0, 1] -> the model's input (same device)."""
        bad = outside_unit_range(images, RANGE_SLACK) if images.is_floating_point() else None
        if bad is not None:  # else read as [0, 1] and converted a second time
            raise GanaugDataError(
                f"The teacher takes uint8 [0, 255] or float [0, 1] images, got floats spanning "
                f"[{bad[0]:.3g}, {bad[1]:.3g}] (normalised, or 0-255 floats); pass the images "
                "before Normalize, or x / 255. expects= says what the model itself takes.")
        if self.fit is not None:  # a ganaug classifier: float [0, 1] at its size and channels
            images = fit_images(to_float01(images), *self.fit)
        elif self.channels is not None and images.shape[-3] != self.channels:
            images = self._convert_channels(images)
        if self.expects == "uint8":
            if images.dtype == torch.uint8:
                return images
            return images.float().mul(255).round().clamp(0, 255).to(torch.uint8)
        unit = to_float01(images)
        if self.expects == "unit":
            return unit
        c, n = unit.shape[-3], len(self.mean)
        # 3 values on grey for a teacher of unknown channels: Normalize of the repeated grey
        if n not in (1, c) and not (c == 1 and n == 3 and self.channels is None):
            count = "1 value" if c == 1 else f"1 or {c} values"
            raise GanaugConfigError(
                f"mean=/std= have {n} values but the teacher gets {c}-channel images; pass "
                f"{count} (the model's Normalize; a 1-channel timm model keeps ImageNet's "
                "3-value pretrained_cfg).")
        return normalize(unit, self.mean.to(unit.device), self.std.to(unit.device))

    def _convert_channels(self, images: torch.Tensor) -> torch.Tensor:
        """Grey -> RGB by repeating, RGB -> grey by luma; other channel counts are refused."""
        c = images.shape[-3]
        if {c, self.channels} != {1, 3}:
            raise GanaugConfigError(
                f"The images have {c} channels but the teacher takes {self.channels} (its "
                "first Conv2d); only grey <-> RGB (1 <-> 3) is converted. Put the conversion "
                "in front of it: Teacher(torch.nn.Sequential(convert, model), ...).")
        return fit_images(images, self.channels)

    def logits(self, images: torch.Tensor, *, batch_size: int = 256) -> torch.Tensor:
        """The model's ``(N, K)`` float32 logits of uint8 or [0, 1] images, on their device,
        computed ``batch_size`` images at a time."""
        if not isinstance(images, torch.Tensor) or images.ndim != 4 or not (
                images.dtype == torch.uint8 or images.is_floating_point()):
            got = (f"{tuple(images.shape)} {images.dtype}" if isinstance(images, torch.Tensor)
                   else type(images).__name__)
            raise GanaugDataError(f"The teacher takes a (N, C, H, W) uint8 or float image batch, "
                                  f"got {got}; use torch.as_tensor(x), x[None] for one image.")
        model, device, dtype, modes = self.model, images.device, None, []
        if isinstance(model, torch.nn.Module):
            param = next(iter(model.parameters()), None)
            device = param.device if param is not None else device
            floats = (p.dtype for p in model.parameters() if p.is_floating_point())
            dtype = next(floats, None)
            # eval: no dropout / batch statistics, so the same image gets the same target
            modes = [(m, m.training) for m in model.modules()]
            model.eval()
        try:
            with torch.no_grad():
                outs = []
                for start in range(0, len(images), batch_size):
                    inputs = self.prepare(images[start:start + batch_size].to(device))
                    if dtype is not None and inputs.is_floating_point():
                        inputs = inputs.to(dtype)
                    outs.append(self._checked(self._run(model, inputs), len(inputs)))
        finally:
            for module, training in modes:
                module.training = training
        if not outs:
            return torch.zeros(0, self.num_classes or 0, device=images.device)
        return torch.cat(outs).float().to(images.device)

    def _checked(self, out: Any, n: int) -> torch.Tensor:
        if not isinstance(out, torch.Tensor) or out.ndim != 2 or out.shape[0] != n:
            got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            fix = ("; wrap it in an nn.Module whose forward returns only the logits (out[0] of "
                   "a tuple, out['logits'] of a dict)" if not isinstance(out, torch.Tensor) else "")
            raise GanaugConfigError(f"The teacher must map (N, C, H, W) images to (N, K) logits; "
                                    f"for N={n} it returned {got}{fix}.")
        if not bool(torch.isfinite(out).all()):
            raise GanaugDataError("The teacher returned NaN or infinite logits; its soft targets "
                                  "would poison the loss. Check its weights and expects=.")
        if self.num_classes is not None and out.shape[1] != self.num_classes:
            raise GanaugConfigError(
                f"The teacher returns {out.shape[1]} logits but the labels have "
                f"{self.num_classes} classes; use a teacher trained on the same classes (in "
                "the same order as the labels).")
        return out

    def _run(self, model: Any, inputs: torch.Tensor) -> Any:
        """``model(inputs)``; a first call that fails is refused with its input."""
        try:
            out = model(inputs)
        except torch.OutOfMemoryError:
            raise
        except RuntimeError as exc:
            if self._ran:
                raise
            c = inputs.shape[1] if inputs.ndim == 4 else "?"
            fix = ("; a grey generator and an RGB teacher: Teacher(torch.nn.Sequential("
                   "torchvision.transforms.v2.Grayscale(num_output_channels=3), model), ...)"
                   if c == 1 else "")
            raise GanaugConfigError(
                f"The teacher failed on its first batch of {tuple(inputs.shape)} {inputs.dtype} "
                f"images ({c}-channel, expects={self.expects!r}): {exc}. It must take the "
                f"images in that form; give it what it takes{fix}.") from exc
        self._ran = True
        return out

    # -- targets and the filter ----------------------------------------------------------------
    def targets(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """``(N, K)`` float32: ``label_weight * label + (1 - label_weight) * softmax(logits/T)``.

        ``labels``: ``(N,)`` int class indices or ``(N, K)`` soft targets (timm's Mixup)."""
        k = logits.shape[1]
        if isinstance(labels, torch.Tensor) and labels.ndim == 2:
            if labels.shape != logits.shape:
                raise GanaugDataError(f"Soft labels {tuple(labels.shape)} do not match the "
                                      f"teacher's logits {tuple(logits.shape)}.")
            check_soft_targets(labels)
            given = labels.to(logits.device, torch.float32)
        else:
            given = F.one_hot(self._labels(labels, len(logits), k, logits.device), k).float()
        # Shift by the row maximum first: logits / T overflows for a tiny T or huge logits.
        shifted = logits.double() - logits.double().amax(dim=1, keepdim=True)
        soft = (shifted / self.temperature).softmax(dim=1).float()
        return self.label_weight * given + (1 - self.label_weight) * soft

    def keep(self, logits: torch.Tensor, intended: torch.Tensor) -> torch.Tensor:
        """``(N,)`` bool: the candidates that pass ``min_confidence`` and ``drop_hardest``.

        Also counts, per intended class, the candidates, those whose top class is the
        intended one, and those kept (:meth:`report`)."""
        intended = self._labels(intended, len(logits), logits.shape[1], logits.device)
        logp = logits.log_softmax(dim=1).gather(1, intended.view(-1, 1)).squeeze(1)
        keep = torch.ones(len(logits), dtype=torch.bool, device=logits.device)
        if self.min_confidence is not None:
            keep &= logp.exp() >= self.min_confidence
        n_drop = math.floor(self.drop_hardest * len(logits) + 0.5)
        if n_drop:  # highest loss = lowest log-probability; ties: the earlier candidate goes
            keep[torch.sort(logp, stable=True).indices[:n_drop]] = False
        k = logits.shape[1]
        agree = logits.argmax(1) == intended
        counts = torch.stack([torch.bincount(intended, weights, minlength=k).long().cpu()
                              for weights in (None, agree.double(), keep.double())])
        if self._drawn.shape[1] < k:
            self._drawn = torch.nn.functional.pad(self._drawn, (0, k - self._drawn.shape[1]))
        self._drawn[:, :k] += counts
        return keep

    def _labels(self, labels: Any, n: int, k: int, device: torch.device) -> torch.Tensor:
        """``labels`` as ``(n,)`` int64 in ``0..k-1`` on ``device``, or refused."""
        y = torch.as_tensor(labels)
        if y.ndim != 1 or len(y) != n:
            got = (f"got {len(y)} label(s) for {n} images" if y.ndim == 1
                   else f"got {tuple(y.shape)}")
        elif y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
            got = f"got {y.dtype}"
        elif n and not (int(y.min()) >= 0 and int(y.max()) < k):
            got = f"got {int(y.min())}..{int(y.max())}"
        else:
            return y.to(device, torch.int64)
        raise GanaugDataError(f"The labels must be (N,) integers in 0..{k - 1}, one per image; "
                              f"{got}. Pass them as a (N,) int tensor.")

    # -- the sanity check ----------------------------------------------------------------------
    def check(self, images: torch.Tensor, labels: torch.Tensor, *,
              min_rows: int = 1) -> float | None:
        """Measure the teacher on real labelled images; refuse one no better than chance.

        Adds these rows to :attr:`real_agreement`. Once at least ``min_rows`` (and in all
        :data:`CHECK_ROWS` or this call's rows) have been seen, an agreement below
        :func:`agreement_floor` is refused. Returns the agreement so far (None: no rows).

        Raises:
            GanaugConfigError: the agreement is not clearly above chance, with its likely
                causes (the wrong ``expects``/``mean``/``std``, output columns in another
                class order than the labels, an untrained model).
        """
        labels = torch.as_tensor(labels)
        if labels.ndim == 2:
            labels = labels.argmax(1)
        logits = self.logits(images)
        labels = self._labels(labels, len(logits), logits.shape[1], logits.device)
        self._real[0] += len(labels)
        self._real[1] += int((logits.argmax(1) == labels).sum())
        if not self._real[0]:
            return None
        agreement = self.real_agreement
        k, seen = logits.shape[1], self._real[0]
        if seen >= min(min_rows, CHECK_ROWS) and agreement < agreement_floor(k):
            raise GanaugConfigError(
                f"The teacher's top class is the real label on only {agreement:.1%} of {seen} "
                f"real images (chance: {1 / k:.1%}; it must reach {agreement_floor(k):.1%}), so "
                "its targets would mislabel the generated ones. Likely causes: expects=/mean=/"
                f"std= not what the model was trained on (now expects={self.expects!r}); its "
                "output columns in another class order than the labels (train it on the same "
                "dataset, or reorder them); an untrained or wrong model.")
        return agreement

    @property
    def real_rows(self) -> int:
        """How many real labelled images :meth:`check` has seen."""
        return self._real[0]

    @property
    def real_agreement(self) -> float | None:
        """Share of the checked real images whose label is the teacher's top class."""
        return self._real[1] / self._real[0] if self._real[0] else None

    def report(self, class_names: list[str] | None = None) -> dict[str, Any]:
        """What the teacher saw: ``real_agreement`` (and ``real_rows``), and per intended class
        of the generated candidates ``synthetic_agreement`` (top class = intended) and
        ``acceptance`` (share kept by the filter)."""
        def name(c: int) -> str | int:
            return class_names[c] if class_names is not None and c < len(class_names) else c

        drawn = [(c, *self._drawn[:, c].tolist()) for c in range(self._drawn.shape[1])]
        return {"real_agreement": self.real_agreement, "real_rows": self._real[0],
                "synthetic_agreement": {name(c): a / n for c, n, a, _ in drawn if n},
                "acceptance": {name(c): kept / n for c, n, _, kept in drawn if n}}


def input_channels(model: Any) -> int | None:
    """The channels ``model`` takes, read off its first ``nn.Conv2d`` (the stem of a
    torchvision or timm CNN, a ViT's patch embedding); ``None`` when it has none (a plain
    callable) or it is still lazy."""
    if not isinstance(model, torch.nn.Module):
        return None
    stem = next((m for m in model.modules() if isinstance(m, torch.nn.Conv2d)), None)
    channels = getattr(stem, "in_channels", 0)
    return int(channels) if isinstance(channels, int) and channels > 0 else None


def check_teacher(teacher: Any, num_classes: int, *, where: str) -> Teacher | None:
    """The ``teacher=`` argument of an augmenter: None or a :class:`Teacher` over
    ``num_classes`` classes; a bare model is refused with the one-line fix."""
    if teacher is None:
        return None
    if not isinstance(teacher, Teacher):
        raise GanaugConfigError(
            f"{where}(teacher=...) takes a ganaug.Teacher, got {type(teacher).__name__}; wrap "
            "the classifier: teacher=ganaug.Teacher(model, expects='normalized', mean=..., "
            "std=...) (or expects='uint8'/'unit': what the model takes).")
    if teacher.num_classes is None:
        teacher.num_classes = num_classes
    elif teacher.num_classes != num_classes:
        raise GanaugConfigError(f"The Teacher was made for {teacher.num_classes} classes but "
                                f"the labels have {num_classes}.")
    return teacher
