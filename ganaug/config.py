"""Training configuration: the :class:`TrainConfig` dataclass, its presets and YAML in/out.

Precedence: dataclass defaults < YAML file < CLI flags (``train_config_from_sources``). Fields
left ``None`` are filled by a *preset* chosen from the data and the device
(:func:`resolve_config`), anchored on StudioGAN / BigGAN-CIFAR (Brock et al. 2019,
https://arxiv.org/abs/1809.11096) and DiffAugment (Zhao et al. 2020,
https://arxiv.org/abs/2006.10738). The resolved config is written to the run as ``config.yaml``.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from ganaug import losses
from ganaug._checks import MAX_SEED, check_arch_kwargs, number_text
from ganaug._files import atomic_write_text
from ganaug._yaml import yaml_problem
from ganaug.diffaug import parse_policy
from ganaug.errors import GanaugConfigError, did_you_mean
from ganaug.models import list_archs

#: The loss names ``loss=`` accepts: the keys of :data:`ganaug.losses.LOSSES`.
LOSSES = tuple(losses.LOSSES)
#: Fields that define the network shapes; a resume must keep them (num_classes comes from data).
ARCH_FIELDS = ("arch", "arch_kwargs", "image_size", "channels", "z_dim")
#: Below this many training images the preset turns DiffAugment on. DiffAugment's largest gains
#: are on CIFAR-10 at 10-20 % (5k-10k images); at 100 % (50k) the gain is small, so the preset
#: stays conservative and leaves larger sets unaugmented (pass --diffaug to force it).
SMALL_DATA_IMAGES = 20_000
#: Most discriminator steps per generator step (WGAN-GP uses 5): one generator step runs them
#: all, so 10**30 never finished its first step, and beyond ~100 the generator barely trains.
MAX_D_STEPS = 100
#: Values of fields that do not depend on the data or the device. They are applied by
#: :func:`resolve_config`, not as dataclass defaults, so ``None`` always means "not given" and a
#: resume can tell a flag from a default. None of them depends on ``steps``: one 40-step run and
#: a 20-step run resumed to 40 must resolve to the same config.
FIXED_DEFAULTS: dict[str, Any] = {
    "steps": 2000,
    "r1_gamma": 0.0,
    "lecam_weight": 0.0,
    "cr_weight": 0.0,  # bCR costs a second D forward/backward per D step; opt in
    "ada": False,
    "ada_target": 0.6,  # StyleGAN2-ADA's target for E[sign(D(real))]
    "ema_start": 0,  # the EMA warm-up already discounts the first, noisy weights
    "seed": 0,
    "compile": False,  # compiling costs minutes up front; opt in
    "sample_every": 250,
    "ckpt_every": 500,
    "log_every": 10,  # each log forces a host sync; 10 keeps CPU runs talkative
    "resume": False,
    "num_workers": 0,  # batches are slices of an in-memory uint8 tensor: workers rarely help
}
_DEVICE_RE = re.compile(r"^(cpu|mps|cuda(:\d+)?)$")


@dataclass
class TrainConfig:
    """Everything a training run needs. ``None`` means "not given": :func:`resolve_config`
    fills it from ``FIXED_DEFAULTS`` or from the preset for the data and device.

    Attributes:
        data: dataset spec (``mnist5k``, ``digits``, ``folder:PATH``, ``npz:PATH``, ...).
        image_size, channels, per_class, imbalance: passed to ``ganaug.data.load_data``.
        arch: ``dcgan`` | ``resnet`` (preset: dcgan on CPU or for grey/small images).
        steps: total generator steps of the run (a resume continues up to this total).
        batch_size: real images per discriminator step per process.
        d_steps: discriminator steps per generator step.
        lr_g, lr_d, betas: Adam settings.
        loss: ``hinge`` | ``ns`` (non-saturating) | ``wgan-gp``.
        r1_gamma: weight gamma of the R1 penalty ``gamma/2 E||grad D(x)||^2`` (0 = off).
        lecam_weight: weight of the LeCam regulariser (0 = off).
        cr_weight: weight lambda of balanced consistency regularisation, the same for real and
            fake (0 = off; Zhao et al. use 10).
        diffaug: DiffAugment policy, e.g. ``"translation,cutout"``; ``"none"`` disables it.
        ada: adapt the augmentation probability to D's overfitting (needs a policy).
        ada_target: the target of E[sign(D(real))] for ADA.
        ema_decay: decay of the generator EMA (with a warm-up, see docs/training.md).
        ema_start: the EMA copies the weights until this step.
        z_dim: noise size.
        arch_kwargs: extra constructor arguments of the arch (``width`` ...).
        seed: seed of weights, noise, augmentation and data order.
        device: ``cpu`` | ``cuda`` | ``cuda:N`` | ``mps`` (None: best available).
        amp: bf16/fp16 autocast (CUDA; bf16 on a CPU with native bf16). channels_last, compile: speed options.
        sample_every, ckpt_every, log_every: intervals in generator steps.
        out: run folder (None: ``runs/<data name>``).
        resume: continue the run in ``out`` from ``checkpoints/last.pt``.
        num_workers: DataLoader workers slicing batches (0: slice in the main process).
    """

    data: str = "mnist5k"
    image_size: int | None = None
    channels: int | None = None
    per_class: int | None = None
    imbalance: float | None = None
    arch: str | None = None
    steps: int | None = None
    batch_size: int | None = None
    d_steps: int | None = None
    lr_g: float | None = None
    lr_d: float | None = None
    betas: tuple[float, float] | None = None
    loss: str | None = None
    r1_gamma: float | None = None
    lecam_weight: float | None = None
    cr_weight: float | None = None
    diffaug: str | None = None
    ada: bool | None = None
    ada_target: float | None = None
    ema_decay: float | None = None
    ema_start: int | None = None
    z_dim: int | None = None
    arch_kwargs: dict[str, Any] | None = None
    seed: int | None = None
    device: str | None = None
    amp: bool | None = None
    channels_last: bool | None = None
    compile: bool | None = None
    sample_every: int | None = None
    ckpt_every: int | None = None
    log_every: int | None = None
    out: str | None = None
    resume: bool | None = None
    num_workers: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.data, str) or not self.data.strip():
            _bad("data", self.data, "a dataset spec such as mnist5k, digits, folder:PATH, npz:PATH")
        for name in ("image_size", "channels", "per_class", "batch_size", "z_dim",
                     "steps", "sample_every", "ckpt_every", "log_every"):
            self._int(name, minimum=1)
        self._int("d_steps", minimum=1, maximum=MAX_D_STEPS, hint=" A generator step runs all "
                  "of them first (a huge count never ends it); WGAN-GP uses 5, others 1-4.")
        for name in ("ema_start", "num_workers"):
            self._int(name, minimum=0)
        self._int("seed", minimum=0, maximum=MAX_SEED)  # as `--seed` and torch take it
        if self.channels is not None and self.channels not in (1, 3):
            _bad("channels", self.channels, "1 (grey) or 3 (RGB)")
        for name in ("lr_g", "lr_d"):
            self._float(name, lambda v: v > 0, "a float > 0, e.g. 2e-4")
        self._float("imbalance", lambda v: v >= 1, "a ratio >= 1")
        self._float("r1_gamma", lambda v: v >= 0, "a float >= 0 (0 = off)")
        self._float("lecam_weight", lambda v: v >= 0, "a float >= 0 (0 = off)")
        self._float("cr_weight", lambda v: v >= 0, "a float >= 0 (0 = off; 10 in the bCR paper)")
        self._float("ada_target", lambda v: 0 < v < 1, "a float in (0, 1), e.g. 0.6")
        self._float("ema_decay", lambda v: 0 <= v < 1, "a float in [0, 1), e.g. 0.999")
        for name in ("ada", "amp", "channels_last", "compile", "resume"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, bool):
                _bad(name, value, "True or False")
        self._check_choices()

    # -- checks ---------------------------------------------------------------------------
    def _int(self, name: str, minimum: int, maximum: int | None = None, hint: str = "") -> None:
        value = getattr(self, name)
        if value is None:
            return
        accepted = (f"an integer >= {minimum}" if maximum is None
                    else f"an integer from {minimum} to {maximum}")
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            _bad(name, value, accepted)
        # Exact: an int or an integer string stays as it is (a float holds only 53 bits).
        if isinstance(value, float):
            as_int = int(value) if value.is_integer() else None
        else:
            try:
                as_int = number_text(value, int) if isinstance(value, str) else int(value)
            except ValueError:
                as_int = None
        if as_int is None or as_int < minimum or (maximum is not None and as_int > maximum):
            _bad(name, value, accepted, hint)
        setattr(self, name, as_int)

    def _float(self, name: str, ok, accepted: str) -> None:
        value = getattr(self, name)
        if value is None:
            return
        try:
            # PyYAML reads 2e-4 (no dot) as a string, so accept numeric strings.
            as_float = (math.nan if isinstance(value, bool) else number_text(value)
                        if isinstance(value, str) else float(value))
        except (TypeError, ValueError):
            as_float = math.nan
        if not math.isfinite(as_float) or not ok(as_float):
            _bad(name, value, accepted)
        setattr(self, name, as_float)

    def _check_choices(self) -> None:
        if self.loss is not None and self.loss not in LOSSES:
            _bad("loss", self.loss, "one of " + ", ".join(LOSSES), did_you_mean(self.loss, LOSSES))
        if self.arch is not None and self.arch not in list_archs():
            _bad("arch", self.arch, "one of " + ", ".join(list_archs()),
                 did_you_mean(self.arch, list_archs()))
        if self.betas is not None:
            try:
                betas = tuple(float(b) for b in self.betas)
            except (TypeError, ValueError):
                betas = ()
            if len(betas) != 2 or not all(0 <= b < 1 for b in betas):
                _bad("betas", self.betas, "two floats in [0, 1), e.g. [0.0, 0.999]")
            self.betas = betas
        if self.arch_kwargs is not None:
            self.arch_kwargs = check_arch_kwargs(self.arch_kwargs)
        if self.diffaug is not None:
            self.diffaug = normalize_policy(self.diffaug)
        if self.ada and self.diffaug == "none":
            raise GanaugConfigError(
                "ada=True adapts the probability of DiffAugment, but diffaug is 'none'. Give a "
                "policy (e.g. diffaug='translation,cutout') or drop ada=True.")
        if self.device is not None and not _DEVICE_RE.match(str(self.device)):
            _bad("device", self.device, "cpu, cuda, cuda:N or mps")
        self.out = os.fspath(self.out) if isinstance(self.out, os.PathLike) else self.out
        if self.out is not None and (not isinstance(self.out, str) or not self.out.strip()
                                     or "\0" in self.out):  # '' fell back to runs/<data>
            _bad("out", self.out, "a folder path such as runs/pets (leave it out for runs/<data>)")

    # -- YAML -----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain types only (tuples become lists), ready for YAML or JSON."""
        out = asdict(self)
        if out["betas"] is not None:
            out["betas"] = list(out["betas"])
        return out

    def to_yaml(self, path: str | Path | None = None) -> str:
        """The YAML text of this config; also written (atomically) to ``path`` when given."""
        import yaml

        text = yaml.safe_dump(self.to_dict(), sort_keys=False)
        if path is not None:
            atomic_write_text(path, text)
        return text

    @classmethod
    def from_yaml(cls, path: str | Path) -> TrainConfig:
        """Read a config written by :meth:`to_yaml` (or by hand); unknown keys are an error."""
        return cls(**read_yaml(path))


def _bad(name: str, value: Any, accepted: str, hint: str = "") -> None:
    raise GanaugConfigError(f"{name} must be {accepted}, got {value!r}.{hint}")


def normalize_policy(policy: Any) -> str:
    """``"Translation, cutout"`` -> ``"translation,cutout"``; empty, none, off -> ``"none"``.

    Raises:
        GanaugConfigError: an unknown op (checked by ``ganaug.diffaug.parse_policy``).
    """
    if policy is None or policy is False:
        return "none"
    if not isinstance(policy, str):
        _bad("diffaug", policy, "a comma-separated policy such as translation,cutout, or none")
    text = policy.strip().lower().replace(" ", "")
    if text in ("", "none", "off", "false"):
        return "none"
    return ",".join(parse_policy(text)) or "none"  # ",," names no op


def field_names() -> list[str]:
    """The names of every :class:`TrainConfig` field, in order."""
    return [f.name for f in fields(TrainConfig)]


def read_yaml(path: str | Path, flag: str = "path") -> dict[str, Any]:
    """The mapping of a TrainConfig YAML file (the argument ``flag``), unknown keys refused.

    Raises:
        GanaugConfigError: missing file, not a mapping, or an unknown key.
    """
    import yaml

    from ganaug._yaml import safe_load

    path = Path(path)
    if not path.is_file():  # False for a FIFO or device too: never open one (it would block)
        what = "is not a regular file" if path.exists() else "does not exist"
        raise GanaugConfigError(f"Config file {str(path)!r} {what}; check the path given as "
                                f"{flag}=.")
    try:
        doc = safe_load(path.read_bytes()) or {}  # bytes: a UTF-16 BOM is read
    except yaml.YAMLError as err:
        where, problem = yaml_problem(err)
        raise GanaugConfigError(
            f"Config file {str(path)!r} is not valid YAML{where}: {problem}. Fix that line; "
            "the file holds TrainConfig fields such as 'steps: 2000'.") from None
    if not isinstance(doc, dict):
        raise GanaugConfigError(
            f"Config file {str(path)!r} must hold a mapping of TrainConfig fields, got "
            f"{type(doc).__name__}.")
    check_keys(doc, f"config file {str(path)!r}")
    return doc


def check_keys(doc: dict[str, Any], where: str) -> None:
    """Refuse a key of ``doc`` that is not a :class:`TrainConfig` field (``where`` names it)."""
    names = field_names()
    for key in doc:
        if key not in names:
            raise GanaugConfigError(
                f"Unknown key {key!r} in {where}. Known keys: {', '.join(names)}."
                + did_you_mean(key, names))


def train_config_from_sources(yaml_path: str | Path | None,
                              overrides: dict[str, Any]) -> TrainConfig:
    """Build a :class:`TrainConfig` from defaults < the YAML file < ``overrides`` (CLI flags).

    Args:
        yaml_path: a TrainConfig YAML file, or None.
        overrides: field -> value; ``None`` values are ignored (a flag that was not given).

    Raises:
        GanaugConfigError: unknown keys or invalid values (the message names the field).
    """
    values: dict[str, Any] = read_yaml(yaml_path, "yaml_path") if yaml_path else {}
    given = {k: v for k, v in overrides.items() if v is not None}
    check_keys(given, "the overrides")
    values.update(given)
    return TrainConfig(**values)


# -- presets ------------------------------------------------------------------------------------
def data_name(spec: str) -> str:
    """A short name for a data spec, used for the default run folder: ``folder:./pets`` -> pets."""
    base = spec.partition("?")[0].strip()
    kind, _, arg = base.partition(":")
    if not arg:
        return kind or "run"
    name = Path(arg.rstrip("/\\")).stem or kind
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def resolve_config(cfg: TrainConfig, *, num_images: int, channels: int, image_size: int,
                   device_type: str) -> tuple[TrainConfig, str]:
    """Fill every ``None`` field of ``cfg`` from the preset for this data and device.

    Presets (see docs/training.md):

    * ``small-data`` (fewer than ``SMALL_DATA_IMAGES`` images): DiffAugment
      ``translation,cutout`` (+ ``color`` for RGB); otherwise no augmentation.
    * arch: ``resnet`` (SNGAN/BigGAN-style) for RGB >= 32 px on CUDA, else ``dcgan``; on the
      CPU the dcgan width is halved to 32 so a few thousand steps take minutes.
    * hinge loss, Adam; resnet (BigGAN-CIFAR): lr 2e-4 for G and D, betas (0.0, 0.999), 4 D
      steps; dcgan: lr 2e-4 for G and, for D, 8e-4 with 1 D step on grey images and 4e-4
      with 2 D steps on RGB (TTUR), betas (0.5, 0.999) (measured: docs/results.md); wgan-gp: lr 1e-4, betas (0.0, 0.9), 5 D steps (Gulrajani
      et al. 2017).
    * EMA 0.9999 on CUDA (BigGAN), 0.999 elsewhere (short CPU runs); batch 64; z_dim 128;
      AMP off (opt-in: slower at batch 64 on an H200); channels_last on CUDA and the CPU.

    Returns:
        ``(resolved config, one-line description of the preset)``.
    """
    cuda = device_type == "cuda"
    small = num_images < SMALL_DATA_IMAGES
    kind = "RGB" if channels == 3 else "grey"
    arch = cfg.arch or ("resnet" if cuda and channels == 3 and image_size >= 32 else "dcgan")
    loss = cfg.loss or "hinge"
    if loss == "wgan-gp":
        lr_g, lr_d, betas, d_steps = 1e-4, 1e-4, (0.0, 0.9), 5
    elif arch == "resnet":
        lr_g, lr_d, betas, d_steps = 2e-4, 2e-4, (0.0, 0.999), 4
    elif channels == 1:
        # Grey dcgan: one D step at 4x G's rate beat the two-step TTUR below over 3 seeds on
        # 10 CPU-minutes of mnist5k: its cheaper step bought 1.46x the steps, and recall rose
        # on every seed (0.546 vs 0.489, paired p 0.002), intra-class FID fell (2.67 vs 2.85),
        # CAS ratio held (0.960 vs 0.957) (docs/results.md 1.1.3). On RGB it lost (cifar10-mini:
        # CAS ratio 0.80 vs 0.86, recall 0.42 vs 0.52; results 1.2.1), so RGB keeps the below.
        lr_g, lr_d, betas, d_steps = 2e-4, 8e-4, (0.5, 0.999), 1
    else:
        # DCGAN's betas; 2 D steps beat 1 on the same 10 CPU-minutes of mnist5k (CAS ratio
        # 0.936 vs 0.924, recall 0.48 vs 0.35, FID 0.77 vs 0.93), and a D learning twice as
        # fast (TTUR) beat equal rates over 3 seeds (recall 0.31 vs 0.21, intra-class FID
        # 3.85 vs 4.48, CAS ratio 0.904 vs 0.889 within the spread; docs/results.md).
        lr_g, lr_d, betas, d_steps = 2e-4, 4e-4, (0.5, 0.999), 2
    arch_kwargs = cfg.arch_kwargs
    if arch_kwargs is None:
        arch_kwargs = {"width": 32} if (arch == "dcgan" and not cuda) else {}
    policy = cfg.diffaug
    if policy is None:
        policy = ("color,translation,cutout" if channels == 3 else "translation,cutout") \
            if small else "none"
    fixed = {k: v for k, v in FIXED_DEFAULTS.items() if getattr(cfg, k) is None}
    resolved = replace(
        cfg, **fixed, image_size=image_size, channels=channels, arch=arch, loss=loss,
        batch_size=cfg.batch_size or 64, d_steps=cfg.d_steps or d_steps,
        lr_g=cfg.lr_g or lr_g, lr_d=cfg.lr_d or lr_d, betas=cfg.betas or betas,
        diffaug=normalize_policy(policy), arch_kwargs=dict(arch_kwargs),
        ema_decay=cfg.ema_decay if cfg.ema_decay is not None else (0.9999 if cuda else 0.999),
        z_dim=cfg.z_dim or 128,
        # Opt-in: bf16 autocast made a batch-64 step 1.5-1.7x slower on an H200 (performance.md).
        amp=bool(cfg.amp),
        # NHWC is faster on CUDA and on the CPU (oneDNN): 1.10-1.44x a step, docs/performance.md.
        channels_last=(cfg.channels_last if cfg.channels_last is not None
                       else device_type in ("cuda", "cpu")),
        out=cfg.out or str(Path("runs") / data_name(cfg.data)),
    )
    # Every architecture argument the run sets (a d_width or a cbn too, not only the width).
    arch_args = ", ".join(f"{k} {str(v).lower() if isinstance(v, bool) else v}"
                          for k, v in resolved.arch_kwargs.items()) or "width default"
    desc = (f"preset: {'small-data' if small else 'standard'} {image_size}x{image_size} {kind}, "
            f"{num_images:,} images, {device_type} -> {resolved.arch} ({arch_args}), "
            f"{resolved.loss}, Adam {resolved.lr_g:g}/{resolved.lr_d:g} "
            f"({resolved.betas[0]:g}, {resolved.betas[1]:g}), {resolved.d_steps} D step(s), "
            f"batch {resolved.batch_size}, EMA {resolved.ema_decay:g}, "
            f"DiffAugment {resolved.diffaug}{' + ADA' if resolved.ada else ''}"
            f"{', AMP' if resolved.amp else ''}")
    return resolved, desc


def arch_differences(saved: dict[str, Any], now: TrainConfig) -> list[str]:
    """Lines ``"field: saved -> now"`` for every architecture field that differs."""
    out = []
    current = now.to_dict()
    for name in ARCH_FIELDS:
        if saved.get(name) != current.get(name):
            out.append(f"{name}: {saved.get(name)!r} (checkpoint) -> {current.get(name)!r} (now)")
    return out


def merge_saved(cfg: TrainConfig, saved: dict[str, Any]) -> TrainConfig:
    """On resume: fields not set now (``None``) take the value of the run's saved config."""
    check_keys(saved, "the run's config.yaml")
    values = {}
    for f in fields(TrainConfig):
        value = getattr(cfg, f.name)
        if value is None and saved.get(f.name) is not None:
            value = saved[f.name]
        values[f.name] = value
    return TrainConfig(**values)


__all__ = [
    "ARCH_FIELDS",
    "LOSSES",
    "SMALL_DATA_IMAGES",
    "TrainConfig",
    "arch_differences",
    "check_keys",
    "data_name",
    "merge_saved",
    "normalize_policy",
    "read_yaml",
    "resolve_config",
    "train_config_from_sources",
]
