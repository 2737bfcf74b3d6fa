"""A teacher classifier that relabels and filters synthetic samples, and a weighted loss.

The recipes that turn an imperfect generator into a gain relabel its samples with a classifier
trained on the real data and drop the samples it disagrees with most (cGAN-KD,
https://arxiv.org/abs/2104.03164: drop the fakes in the teacher's top-10 % loss, relabel, distil;
DM-KD, https://arxiv.org/abs/2305.12954), and weigh the synthetic loss down (EC-GAN x 0.1).
:class:`Teacher` turns a classifier into soft targets and a keep-mask for generated images;
:func:`weighted_loss` is the cross-entropy with synthetic rows weighted.
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

__all__ = ["TEACHER_INPUTS", "TEACHER_KWARGS", "Teacher", "input_channels", "make_teacher",
           "parse_stats", "teacher_from_kwargs", "weighted_loss"]

#: What a teacher takes: uint8 [0, 255], float [0, 1], or float normalised with mean/std.
TEACHER_INPUTS = ("uint8", "unit", "normalized")
#: ``ganaug.evaluation.create_classifier`` models take [-1, 1] (mean = std = 0.5) at their size.
GANAUG_STATS = (0.5, 0.5)


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
    if len(m) != len(s) or not len(m) or not bool(torch.isfinite(m).all() & torch.isfinite(s).all()):
        raise GanaugConfigError(f"{what} need the same number (>= 1) of finite values, "
                                f"got {m.tolist()} and {s.tolist()}.")
    if bool((s <= 0).any()):
        raise GanaugConfigError(f"std must be > 0, got {s.tolist()}.")
    if float(m.abs().max()) > 1 or float(s.max()) > 1:  # 0-255 scale (timm's PrefetchLoader)
        m, s = m / 255, s / 255
    return m, s


class Teacher:
    """A classifier that gives generated images soft targets and says which to keep.

    Args:
        model: an ``nn.Module`` (or callable) mapping ``(N, C, H, W)`` images to ``(N, K)``
            logits over the same K classes as the labels. It runs in ``eval()`` mode (each
            module's mode is restored after the call), under ``no_grad`` on its own device,
            with float inputs in its parameters' dtype (a float64 or half teacher works). Grey
            images for a teacher whose first ``nn.Conv2d`` takes 3 channels are repeated to RGB
            (torchvision's ``Grayscale(num_output_channels=3)``); RGB images for a 1-channel one
            become their luma. A ganaug classifier file is loaded with
            ``ganaug.evaluation.load_classifier(path)[0]`` (ganaug.augment sits below
            ganaug.evaluation and does not import it).
        num_classes: K, the label count; a teacher returning another count is refused.
        input: the teacher's input convention: ``"uint8"`` (uint8 [0, 255]), ``"unit"``
            (float32 [0, 1]) or ``"normalized"`` (float32 ``(x - mean) / std``). Required,
            except for a model built by ``ganaug.evaluation.create_classifier`` (it records
            its input: [-1, 1], i.e. mean = std = 0.5, at its ``image_size`` and channels, and
            images are fitted to those; another stated input is refused).
        mean, std: the teacher's Normalize statistics (``input="normalized"``). Without them:
            ``default_stats`` (BatchMixer passes the batch's own mean/std), else the model's
            timm ``pretrained_cfg["mean"/"std"]``; else refused.
        temperature: softmax temperature T > 0 of the teacher's distribution.
        weight: alpha in [0, 1]: target = (1 - alpha) * onehot(intended) + alpha *
            softmax(logits / T). 1 relabels by the teacher (cGAN-KD), 0 keeps the hard label.
        min_confidence: keep only samples whose teacher probability (at T = 1) of the
            intended class is >= this (None: no confidence filter).
        drop_top: q in [0, 1): drop the ``floor(q * n + 0.5)`` samples of highest teacher
            cross-entropy on the intended class (at T = 1) among each ``n`` candidates.
        default_stats: ``(mean, std)`` used by ``input="normalized"`` when none are given.
    """

    def __init__(self, model: Any, *, num_classes: int, input: str | None = None,
                 mean=None, std=None, temperature: float = 1.0, weight: float = 1.0,
                 min_confidence: float | None = None, drop_top: float = 0.0,
                 default_stats: tuple | None = None) -> None:
        if isinstance(model, (str, os.PathLike)):
            raise GanaugConfigError(
                f"teacher={str(model)!r} is a path; pass the classifier itself. Load a ganaug "
                "classifier file with: from ganaug.evaluation import load_classifier; "
                "teacher = load_classifier(path)[0].")
        if not callable(model):
            raise GanaugConfigError(f"teacher must be an nn.Module mapping images to logits, got "
                                    f"{type(model).__name__}.")
        self.model = model
        self.num_classes = check_int("num_classes", num_classes)
        self.temperature = check_float("temperature", temperature, minimum=0.0, open_min=True)
        self.weight = check_probability("teacher_weight", weight)
        self.min_confidence = (None if min_confidence is None
                               else check_probability("min_confidence", min_confidence))
        self.drop_top = check_float("drop_top", drop_top, minimum=0.0, maximum=1.0)
        if self.drop_top >= 1.0:
            raise GanaugConfigError(f"drop_top must be in [0, 1) (the share of candidates to "
                                    f"drop), got {drop_top!r}; 0.1 drops the top 10 %.")
        config = getattr(model, "ganaug_config", None)
        self.fit = None
        if isinstance(config, dict):  # a ganaug classifier: its own input, whatever is stated
            self.fit = (int(config["in_chans"]), int(config["image_size"]))
            self._check_recorded(input, mean, std)
            input, mean, std = "normalized", *GANAUG_STATS
        #: The channels the teacher takes, where it says (None: unknown, images pass as drawn).
        self.channels = self.fit[0] if self.fit else input_channels(model)
        self._ran = False  # a first call that fails is reported with the images it got
        if input not in TEACHER_INPUTS:
            raise GanaugConfigError(
                f"teacher_input={input!r}: say what the teacher takes, one of "
                f"{', '.join(map(repr, TEACHER_INPUTS))} ('normalized' with teacher_mean/"
                "teacher_std). Only a ganaug.evaluation classifier records its own input."
                + did_you_mean(str(input), TEACHER_INPUTS))
        self.input = input
        self.mean, self.std = parse_stats(mean, std, what="teacher_mean= and teacher_std=")
        if input != "normalized" and self.mean is not None:
            raise GanaugConfigError(f"teacher_mean/teacher_std are for teacher_input="
                                    f"'normalized', not {input!r}.")
        if input == "normalized" and self.mean is None:
            cfg = getattr(model, "pretrained_cfg", None) or {}
            stats = default_stats if default_stats and default_stats[0] is not None else (
                (cfg.get("mean"), cfg.get("std")) if isinstance(cfg, dict) else (None, None))
            self.mean, self.std = parse_stats(*stats, what="teacher_mean= and teacher_std=")
            if self.mean is None:
                raise GanaugConfigError(
                    "teacher_input='normalized' needs the teacher's statistics: pass "
                    "teacher_mean= and teacher_std= (e.g. (0.5,)*3 and (0.5,)*3).")

    def _check_recorded(self, input: str | None, mean, std) -> None:
        """Refuse a stated input other than a ganaug classifier's recorded [-1, 1]."""
        m, s = parse_stats(mean, std, what="teacher_mean= and teacher_std=")
        if input in (None, "normalized") and (m is None or bool(((m == 0.5) & (s == 0.5)).all())):
            return
        c, size = self.fit
        raise GanaugConfigError(
            f"teacher_input={input!r} (mean={mean!r}, std={std!r}), but a ganaug.evaluation "
            f"classifier records its input: [-1, 1] (teacher_input='normalized', mean = std = "
            f"0.5) at {size}x{size}, {c} channel(s); drop teacher_input=, teacher_mean= and "
            "teacher_std=, and it gets what ganaug.evaluation feeds it.")

    # -- running ----------------------------------------------------------------------------
    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        """``(N, C, H, W)`` uint8 [0, 255] or float [0, 1] -> the teacher's input (same device)."""
        bad = outside_unit_range(images, RANGE_SLACK) if images.is_floating_point() else None
        if bad is not None:  # else read as [0, 1] and converted a second time
            raise GanaugDataError(
                f"The teacher takes uint8 [0, 255] or float [0, 1] images, got floats spanning "
                f"[{bad[0]:.3g}, {bad[1]:.3g}] (normalised, or 0-255 floats); pass the images "
                "before Normalize, or x / 255. teacher_input= says what the teacher itself takes.")
        if self.fit is not None:  # a ganaug classifier: float [0, 1] at its size and channels
            images = fit_images(to_float01(images), *self.fit)
        elif self.channels is not None and images.shape[-3] != self.channels:
            images = self._convert_channels(images)
        if self.input == "uint8":
            if images.dtype == torch.uint8:
                return images
            return images.float().mul(255).round().clamp(0, 255).to(torch.uint8)
        unit = to_float01(images)
        if self.input == "unit":
            return unit
        c, n = unit.shape[-3], len(self.mean)
        # 3 values on grey for a teacher of unknown channels: Normalize of the repeated grey
        if n not in (1, c) and not (c == 1 and n == 3 and self.channels is None):
            count = "1 value" if c == 1 else f"1 or {c} values"
            raise GanaugConfigError(
                f"teacher_mean/teacher_std have {n} values but the teacher gets {c}-channel "
                f"images; pass teacher_mean=/teacher_std= with {count} (the teacher's "
                "Normalize; a 1-channel timm model keeps ImageNet's 3-value pretrained_cfg).")
        return normalize(unit, self.mean.to(unit.device), self.std.to(unit.device))

    def _convert_channels(self, images: torch.Tensor) -> torch.Tensor:
        """Grey -> RGB by repeating (torchvision's ``Grayscale(num_output_channels=3)``), RGB ->
        grey by luma (``Grayscale()``); other channel counts are refused."""
        c = images.shape[-3]
        if {c, self.channels} != {1, 3}:
            raise GanaugConfigError(
                f"The generator draws {c}-channel images but the teacher takes {self.channels} "
                "channels (its first Conv2d); only grey <-> RGB (1 <-> 3) is converted. Use a "
                f"teacher over {c}-channel images, or put the conversion in front of it: "
                "teacher=torch.nn.Sequential(convert, teacher).")
        return fit_images(images, self.channels)

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        """The teacher's ``(N, K)`` float32 logits of uint8 or [0, 1] images, on their device."""
        if not isinstance(images, torch.Tensor) or images.ndim != 4 or not (
                images.dtype == torch.uint8 or images.is_floating_point()):
            got = (f"{tuple(images.shape)} {images.dtype}" if isinstance(images, torch.Tensor)
                   else type(images).__name__)
            raise GanaugDataError(f"The teacher takes a (N, C, H, W) uint8 or float image batch, "
                                  f"got {got}; use torch.as_tensor(x), x[None] for one image.")
        model = self.model
        device, dtype, modes = images.device, None, []
        if isinstance(model, torch.nn.Module):
            param = next(iter(model.parameters()), None)
            device = param.device if param is not None else device
            floats = (p.dtype for p in model.parameters() if p.is_floating_point())
            dtype = next(floats, None)
            # eval: no dropout / batch statistics, so the same image gets the same target; each
            # module's own mode is restored after, as the teacher may be in training too
            modes = [(m, m.training) for m in model.modules()]
            model.eval()
        try:
            with torch.no_grad():
                inputs = self.prepare(images.to(device))
                if dtype is not None and inputs.is_floating_point():  # a float64/half teacher
                    inputs = inputs.to(dtype)
                out = self._run(model, inputs)
        finally:
            for module, training in modes:
                module.training = training
        if not isinstance(out, torch.Tensor) or out.ndim != 2 or out.shape[0] != len(images):
            got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            fix = ("; wrap it in an nn.Module whose forward returns only the logits (out[0] of "
                   "a tuple, out['logits'] or out.logits of a dict or model output)"
                   if not isinstance(out, torch.Tensor) else "")
            raise GanaugConfigError(f"teacher must map (N, C, H, W) images to (N, K) logits; for "
                                    f"N={len(images)} it returned {got}{fix}.")
        if not bool(torch.isfinite(out).all()):
            raise GanaugDataError("The teacher returned NaN or infinite logits; its soft targets "
                                  "would poison the loss. Check its weights and teacher_input.")
        if out.shape[1] != self.num_classes:
            raise GanaugConfigError(
                f"The teacher returns {out.shape[1]} logits but the labels have "
                f"{self.num_classes} classes; use a teacher trained on the same classes (in "
                "the same order as the labels).")
        return out.float().to(images.device)

    def _run(self, model: Any, inputs: torch.Tensor) -> Any:
        """``model(inputs)``; a first call that fails (e.g. an RGB-only teacher given grey
        images, whose channels could not be read off the model) is refused with its input."""
        try:
            out = model(inputs)
        except torch.OutOfMemoryError:
            raise
        except RuntimeError as exc:
            if self._ran:
                raise
            c = inputs.shape[1] if inputs.ndim == 4 else "?"
            fix = ("; a grey generator and an RGB teacher: teacher=torch.nn.Sequential("
                   "torchvision.transforms.v2.Grayscale(num_output_channels=3), teacher)"
                   if c == 1 else "")
            raise GanaugConfigError(
                f"The teacher failed on its first batch of {tuple(inputs.shape)} {inputs.dtype} "
                f"images ({c}-channel, teacher_input={self.input!r}): {exc}. It must take the "
                f"generator's images in that form; give it what it takes{fix}.") from exc
        self._ran = True
        return out

    def targets(self, logits: torch.Tensor, intended: torch.Tensor) -> torch.Tensor:
        """``(N, K)`` float32 soft targets: the intended one-hot blended with the teacher's."""
        return self._targets(logits, self._intended(intended, len(logits), logits.device))

    def _targets(self, logits: torch.Tensor, intended: torch.Tensor) -> torch.Tensor:
        onehot = F.one_hot(intended, self.num_classes).float()
        # Shift by the row maximum before dividing: logits / T overflows to inf for a tiny T or
        # huge logits, and softmax(inf, inf) is NaN; shifted values are <= 0, so at worst -inf.
        shifted = logits.double() - logits.double().amax(dim=1, keepdim=True)
        soft = (shifted / self.temperature).softmax(dim=1).float()
        return (1 - self.weight) * onehot + self.weight * soft

    def keep(self, logits: torch.Tensor, intended: torch.Tensor) -> torch.Tensor:
        """``(N,)`` bool: the candidates that pass ``min_confidence`` and ``drop_top``."""
        return self._keep(logits, self._intended(intended, len(logits), logits.device))

    def _keep(self, logits: torch.Tensor, intended: torch.Tensor) -> torch.Tensor:
        logp = logits.log_softmax(dim=1).gather(1, intended.view(-1, 1)).squeeze(1)
        keep = torch.ones(len(logits), dtype=torch.bool, device=logits.device)
        if self.min_confidence is not None:
            keep &= logp.exp() >= self.min_confidence
        n_drop = math.floor(self.drop_top * len(logits) + 0.5)
        if n_drop:  # highest loss = lowest log-probability; ties: the earlier candidate goes
            order = torch.sort(logp, stable=True).indices
            keep[order[:n_drop]] = False
        return keep

    def __call__(self, images: torch.Tensor,
                 intended: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(targets (N, K) float32, keep (N,) bool)`` of generated ``images`` of ``intended``."""
        intended = self._intended(intended, len(images), images.device)  # before the teacher runs
        logits = self.logits(images)
        return self._targets(logits, intended), self._keep(logits, intended)

    def _intended(self, intended: Any, n: int, device: torch.device) -> torch.Tensor:
        """``intended`` as ``(n,)`` int64 on ``device``; refuses what would be broadcast over
        the rows, truncated (floats) or fail in ``one_hot`` (labels outside ``0..K-1``)."""
        y = torch.as_tensor(intended)
        if y.ndim != 1 or len(y) != n:
            got = (f"got {len(y)} label(s) for {n} images" if y.ndim == 1
                   else f"got {tuple(y.shape)}")
        elif y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
            got = f"got {y.dtype}"
        elif n and not (int(y.min()) >= 0 and int(y.max()) < self.num_classes):
            got = f"got {int(y.min())}..{int(y.max())}"
        else:
            return y.to(device, torch.int64)
        raise GanaugDataError(f"The intended labels must be (N,) integers in "
                              f"0..{self.num_classes - 1}, one per image; {got}. Pass the "
                              "generated images' labels as a (N,) int tensor.")


def input_channels(model: Any) -> int | None:
    """The channels ``model`` takes, read off its first ``nn.Conv2d`` (the stem of a
    torchvision or timm CNN, a ViT's patch embedding); ``None`` when it has none (a plain
    callable) or it is still lazy."""
    if not isinstance(model, torch.nn.Module):
        return None
    stem = next((m for m in model.modules() if isinstance(m, torch.nn.Conv2d)), None)
    channels = getattr(stem, "in_channels", 0)
    return int(channels) if isinstance(channels, int) and channels > 0 else None


def make_teacher(teacher: Any, *, num_classes: int, **settings: Any) -> Teacher | None:
    """A :class:`Teacher` from the ``teacher=`` argument of the augmenters (None: no teacher).

    ``settings``: ``temperature``, ``weight``, ``input``, ``mean``, ``std``,
    ``min_confidence``, ``drop_top``, ``default_stats``. A ready :class:`Teacher` is used as
    it is (its own settings; its class count must be ``num_classes``).
    """
    defaults = {"temperature": 1.0, "weight": 1.0, "input": None, "mean": None, "std": None,
                "min_confidence": None, "drop_top": 0.0}
    given = [k for k, v in defaults.items() if k in settings and _differs(settings[k], v)]
    names = ", ".join({v: k for k, v in TEACHER_KWARGS.items()}[k] + "=" for k in given)
    if teacher is None:
        if given:
            raise GanaugConfigError(
                f"{names} configure a teacher, but teacher=None; pass teacher= (a classifier "
                "over the labels' classes), or drop them.")
        return None
    if isinstance(teacher, Teacher):
        if given:  # else the Teacher's own values were used and these silently dropped
            raise GanaugConfigError(
                f"{names} would be ignored: a ready Teacher uses its own settings; pass them to "
                "Teacher(...) itself, or pass the classifier as teacher= with them.")
        if teacher.num_classes != num_classes:
            raise GanaugConfigError(f"The Teacher was made for {teacher.num_classes} classes but "
                                    f"the labels have {num_classes}.")
        return teacher
    return Teacher(teacher, num_classes=num_classes, **settings)


def _differs(value: Any, default: Any) -> bool:
    """``value != default`` for settings; a numpy/tensor array (whose ``!=`` is an array, of
    ambiguous truth) differs from a number or None."""
    if default is None:
        return value is not None
    try:
        return bool(value != default)
    except (ValueError, RuntimeError, TypeError):
        return True


#: The augmenters' keyword arguments that configure a teacher -> :class:`Teacher`'s.
TEACHER_KWARGS = {"temperature": "temperature", "teacher_weight": "weight",
                  "teacher_input": "input", "teacher_mean": "mean", "teacher_std": "std",
                  "min_confidence": "min_confidence", "drop_top": "drop_top"}


def teacher_from_kwargs(teacher: Any, kwargs: dict, *, num_classes: int,
                        what: str) -> Teacher | None:
    """:func:`make_teacher` from ``teacher_weight=``-style keyword arguments (others refused)."""
    unknown = sorted(set(kwargs) - set(TEACHER_KWARGS))
    if unknown:
        raise GanaugConfigError(f"{what} got unexpected argument(s) {', '.join(unknown)}; its "
                                f"teacher settings are {', '.join(TEACHER_KWARGS)}.")
    return make_teacher(teacher, num_classes=num_classes,
                        **{TEACHER_KWARGS[k]: v for k, v in kwargs.items()})


def weighted_loss(logits: torch.Tensor, targets: torch.Tensor,
                  synthetic_mask: torch.Tensor | None = None, *,
                  synthetic_weight: float = 0.1) -> torch.Tensor:
    """Mean cross-entropy over a batch, synthetic rows weighted by ``synthetic_weight``.

    ``loss = sum_i w_i * CE_i / sum_i w_i`` with ``w_i = synthetic_weight`` for synthetic rows
    and 1 for real ones (EC-GAN weighs its synthetic loss x 0.1). Without a mask (or with no
    synthetic row) this is the plain mean cross-entropy.

    Args:
        logits: ``(B, K)`` the classifier's outputs.
        targets: ``(B,)`` int class indices or ``(B, K)`` float soft targets.
        synthetic_mask: ``(B,)`` bool, True for synthetic rows (``BatchMixer.last_synthetic_mask``).
        synthetic_weight: weight >= 0 of each synthetic row.

    Returns:
        A scalar tensor (differentiable in ``logits``).
    """
    weight = check_float("synthetic_weight", synthetic_weight, minimum=0.0)
    if not isinstance(logits, torch.Tensor) or not isinstance(targets, torch.Tensor):
        raise GanaugDataError(f"weighted_loss takes tensors, got {type(logits).__name__} and "
                              f"{type(targets).__name__}; use torch.as_tensor(targets).")
    if logits.ndim != 2 or targets.shape[:1] != logits.shape[:1]:
        raise GanaugDataError(f"weighted_loss takes (B, K) logits and (B,) or (B, K) targets, got "
                              f"{tuple(logits.shape)} and {tuple(targets.shape)}.")
    if not logits.is_floating_point():
        raise GanaugDataError(f"weighted_loss takes float logits (the classifier's outputs), "
                              f"got {logits.dtype}; cast them with logits.float().")
    if targets.ndim == 2:
        if targets.shape != logits.shape:
            raise GanaugDataError(f"Soft targets {tuple(targets.shape)} do not match the logits "
                                  f"{tuple(logits.shape)}.")
        check_soft_targets(targets)
        per_row = -(targets.to(logits.dtype) * logits.log_softmax(dim=1)).sum(dim=1)
    else:
        if targets.is_floating_point() or targets.dtype == torch.bool or (targets.numel() and not (
                int(targets.min()) >= 0 and int(targets.max()) < logits.shape[1])):
            span = (f"{targets.min().item()}..{targets.max().item()}" if targets.numel()
                    else "(empty)")
            raise GanaugDataError(f"Class-index targets must be integers in 0..{logits.shape[1] - 1}"
                                  f", got {targets.dtype} {span}.")
        per_row = F.cross_entropy(logits, targets.long(), reduction="none")
    if not len(per_row):
        raise GanaugDataError("weighted_loss got an empty batch (B=0): its mean loss is 0/0 "
                              "(NaN). Skip empty batches, or use drop_last=True.")
    if synthetic_mask is None:
        return per_row.mean()
    mask = torch.as_tensor(synthetic_mask, device=logits.device)
    if mask.ndim != 1 or (mask.numel() and mask.dtype != torch.bool
                          and not bool(((mask == 0) | (mask == 1)).all())):
        raise GanaugDataError(f"synthetic_mask must be (B,) bool (or 0/1), True for synthetic "
                              f"rows, got {mask.dtype} {tuple(mask.shape)}.")
    mask = mask.bool()
    if mask.shape[0] != logits.shape[0]:
        hint = (" (a BatchMixer's last_synthetic_mask before it mixed a batch in this process: "
                "with collate_fn=mixer.collate in DataLoader workers the mask stays in the "
                "workers; use collate_fn=mixer.collate_with_mask and x, y, mask = batch)"
                if mask.shape[0] == 0 else "")
        raise GanaugDataError(f"synthetic_mask has {mask.shape[0]} rows for a batch of "
                              f"{logits.shape[0]}{hint}.")
    w = torch.where(mask, torch.full_like(per_row, weight), torch.ones_like(per_row))
    if float(w.sum()) == 0:
        raise GanaugDataError("Every row is synthetic and synthetic_weight=0: the loss would be "
                              "0/0. Use synthetic_weight > 0.")
    return (w * per_row).sum() / w.sum()
