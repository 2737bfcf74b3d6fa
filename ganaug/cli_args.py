"""Argument types, shared flags and the examples shown by ``ganaug COMMAND --help``.

The types make argparse refuse a bad value with the command's own usage line (exit 2) before
any work starts; the library checks the same values again for Python callers.
"""

from __future__ import annotations

import argparse
import math
import os
import re

from ganaug._checks import MAX_SEED, most_threads

#: ``ganaug COMMAND --help`` ends with these (argparse epilog).
EXAMPLES = {
    "data info": "ganaug data info digits\n"
                 "  ganaug data info folder:~/pets --size 64 --grid pets.png --threads 1",
    "train": "ganaug train --data mnist5k --steps 2000 --out runs/mnist --threads 2\n"
             "  ganaug train --data folder:~/pets/train --size 64 --out runs/pets\n"
             "  ganaug train --data folder:~/pets/train --size 64 --out runs/pets --resume "
             "--steps 8000",
    "info": "ganaug info runs/mnist/generator.safetensors",
    "sample": "ganaug sample runs/mnist/generator.safetensors --out grid.png\n"
              "  ganaug sample runs/mnist/generator.safetensors --classes 3,7 --n-per-class 16 "
              "--truncation 0.7 --out threes_sevens.png",
    "export": "ganaug export runs/mnist/generator.safetensors --n-per-class 500 --out synth/\n"
              "  (an interrupted export resumes when run again with the same arguments)",
    "evaluate": "ganaug evaluate runs/mnist/generator.safetensors --data mnist5k --out eval.json",
    "experiment": "ganaug experiment --data mnist5k --per-class 10,50 --seeds 3 --out exp/\n"
                  "  ganaug experiment --data mnist5k --generator runs/mnist/generator.safetensors "
                  "--out exp/",
    "demo": "ganaug demo --quick --out runs/demo-quick",
    "bench": "ganaug bench train --quick --threads 1\n"
             "  ganaug bench sample runs/mnist/generator.safetensors\n"
             "  ganaug bench loader --data folder:data/cifar10-mini/train --threads 1",
}


#: The flag of each Python argument name a library message may mention as ``name=``: the
#: library speaks Python, and :func:`to_flags` turns its messages into the CLI's words.
FLAGS = {
    "ada": "--ada", "amp": "--amp", "arch": "--arch", "arms": "--arms", "backbone": "--backbone",
    "batch_size": "--batch", "channels": "--channels", "channels_last": "--channels-last",
    "ckpt_every": "--ckpt-every", "classes": "--classes", "classifier_steps": "--classifier-steps",
    "compile": "--compile", "cr_weight": "--cr-weight", "d_steps": "--d-steps", "data": "--data",
    "device": "--device", "diffaug": "--diffaug", "download": "--download",
    "ema_decay": "--ema-decay", "features": "--features", "first_seed": "--first-seed",
    "fmt": "--format", "gan_config": "--gan-config", "gan_steps": "--gan-steps",
    "generator": "--generator", "grid": "--grid", "image_size": "--size",
    "imbalance": "--imbalance", "kd_alpha": "--kd-alpha", "kd_temperature": "--kd-temperature",
    "loss": "--loss", "lr_d": "--lr-d", "lr_g": "--lr-g", "min_confidence": "--min-confidence",
    "model_kwargs": "--model-kwargs", "n_per_class": "--n-per-class", "num_workers": "--workers",
    "out": "--out", "per_class": "--per-class", "replace_p": "--replace-p", "resume": "--resume",
    "sample_every": "--sample-every", "seed": "--seed", "seeds": "--seeds", "size": "--size",
    "split": "--split", "stem": "--stem", "steps": "--steps",
    "synthetic_loss_weight": "--synthetic-loss-weight", "synthetic_ratio": "--synthetic-ratio",
    "teacher_backbone": "--teacher-backbone", "teacher_filter": "--teacher-filter",
    "test": "--test", "threads": "--threads", "truncation": "--truncation",
    "yaml_path": "--config", "z_dim": "--z-dim",
}
# ``name=`` and the value written after it: 'text', "text", [a, b], or a bare token (2e-4,
# folder:PATH, N); not ``cfg.steps=``, ``--x=`` nor ``a==b``.
_MENTION = re.compile(
    r"(?<![\w.\-\[\]'\"=])(" + "|".join(sorted(FLAGS, key=len, reverse=True)) + r")=(?!=)"
    r"('[^'\n]*'|\"[^\"\n]*\"|\[[^\]\n]*\]|[\w.:+-]*\w)?")


def _flag(match: re.Match) -> str:
    flag, value = FLAGS[match[1]], match[2]
    if value is None or value == "True":
        return flag
    if value == "False":
        return "--no-" + flag[2:]
    if value[0] in "'\"" and value[1:-1] and not any(c.isspace() for c in value):
        value = value[1:-1]  # kept quoted where a shell needs the quotes
    elif value[0] == "[":
        value = ",".join(v.strip().strip("'\"") for v in value[1:-1].split(","))
    return f"{flag} {value}"


def to_flags(message: str) -> str:
    """A library message in the CLI's words: each ``name=value`` mention of an argument in
    :data:`FLAGS` becomes its flag (``resume=True`` -> ``--resume``, ``amp=False`` ->
    ``--no-amp``, ``size=32`` -> ``--size 32``, ``split='all'`` -> ``--split all``,
    ``out='a b'`` -> ``--out 'a b'``, ``lr_g=`` -> ``--lr-g``); everything else is kept."""
    return _MENTION.sub(_flag, message)


def command_parser(sub, name: str, help: str, *, key: str | None = None,
                   **kwargs) -> argparse.ArgumentParser:
    """``sub.add_parser(name)`` with the command's examples as its epilog."""
    return sub.add_parser(name, help=help, description=help[:1].upper() + help[1:] + ".",
                          epilog="example:\n  " + EXAMPLES[key or name],
                          formatter_class=argparse.RawDescriptionHelpFormatter, **kwargs)


def int_at_least(minimum: int):
    """An argparse type: an integer ``>= minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be an integer >= {minimum}, got {value}")
        return value

    parse.__name__ = f"integer >= {minimum}"
    return parse


positive_int = int_at_least(1)


def seed(text: str) -> int:
    """An argparse type: a seed, an integer in ``[0, 2**63)``."""
    value = int_at_least(0)(text)
    if value > MAX_SEED:
        raise argparse.ArgumentTypeError(f"must be below 2**63, got {value}")
    return value


def finite_float(text: str) -> float:
    """An argparse type: a finite float (``nan``/``inf`` refused)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def thread_count(minimum: int | None = 1):
    """An argparse type: torch CPU threads, an integer ``>= minimum`` (None: any, left to the
    command's own check) and at most :func:`ganaug._checks.most_threads`."""

    def parse(text: str) -> int:
        value = int_at_least(-math.inf if minimum is None else minimum)(text)
        if value > (most := most_threads()):
            raise argparse.ArgumentTypeError(
                f"must be at most {most} (4 per CPU, at least 8; this machine has "
                f"{os.cpu_count() or 1}), "
                f"got {text:.40}: each is an OS thread, and more than the CPUs only slow the "
                "work down")
        return value

    parse.__name__ = "thread count"
    return parse


def add_threads(p: argparse.ArgumentParser) -> None:
    """``--threads N``: torch CPU threads, set before the command's work starts."""
    p.add_argument("--threads", type=thread_count(), default=None, metavar="N",
                   help="torch CPU threads (default: torch's, one per core); use 1 or 2 on a "
                        "shared machine, where several processes on all cores run far slower")


def set_threads(n: int | None) -> None:
    """Apply ``--threads`` (None: leave torch's default; below 1: left to the command's own
    check, as ``bench`` does)."""
    if n is not None and n >= 1:
        import torch

        torch.set_num_threads(int(n))
