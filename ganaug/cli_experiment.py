"""``ganaug experiment``: check ``--generator`` before any compute, run, print the paths."""

from __future__ import annotations

import argparse
from pathlib import Path


def parse_mapping(text: str | None, flag: str, what: str, example: str) -> dict | None:
    """A YAML/JSON mapping given on the command line as ``flag`` -> dict (None when not given),
    with one clear error naming ``flag``, ``what`` it maps and an ``example`` otherwise."""
    if not text:
        return None
    import yaml

    from ganaug.config import yaml_problem
    from ganaug.errors import GanaugConfigError

    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as err:
        _, problem = yaml_problem(err)
        raise GanaugConfigError(f"{flag} is not valid YAML/JSON: {text!r} ({problem}). "
                                f"Example: {flag} '{example}'.") from None
    if not isinstance(value, dict):
        raise GanaugConfigError(f"{flag} must be a mapping of {what}, got {text!r}. "
                                f"Example: {flag} '{example}'.")
    return value


def parse_model_kwargs(text: str | None) -> dict | None:
    """``--model-kwargs`` (a YAML/JSON mapping) -> dict, with a clear error otherwise."""
    return parse_mapping(text, "--model-kwargs", "timm.create_model arguments",
                         "{channels: [32, 64, 128, 256]}")


def cmd_experiment(args: argparse.Namespace) -> int:
    """``ganaug experiment ...``: run, print the table and the paths."""
    from ganaug.evaluation import format_table, run_experiment
    from ganaug.evaluation.verdict import format_verdict

    if args.generator:
        check_experiment_generator(args)
    doc = run_experiment(
        args.data, out=args.out, test=args.test, per_class=args.per_class,
        imbalance=args.imbalance, arms=args.arms, backbone=args.backbone, seeds=args.seeds,
        first_seed=args.first_seed,
        stem=args.stem, batch_size=args.batch_size,
        model_kwargs=parse_model_kwargs(args.model_kwargs),
        gan_config=parse_mapping(args.gan_config, "--gan-config", "ganaug train settings",
                                 "{arch: dcgan, lr_d: 0.0004}"),
        gan_steps=args.gan_steps, classifier_steps=args.classifier_steps,
        generator=args.generator, image_size=args.image_size,
        synthetic_ratio=args.synthetic_ratio, replace_p=args.replace_p,
        min_confidence=args.min_confidence, kd_temperature=args.kd_temperature,
        kd_alpha=args.kd_alpha, teacher_filter=args.teacher_filter,
        synthetic_loss_weight=args.synthetic_loss_weight, teacher_backbone=args.teacher_backbone,
        device=args.device)
    print(format_table(doc))
    out = Path(args.out)
    print(f"\nreport: {out / 'report.md'}\nresults: {out / 'results.json'}, "
          f"{out / 'results.csv'}\nplot: {out / 'accuracy.png'}")
    print(f"\nverdict:\n{format_verdict(doc)}")
    return 0


def check_experiment_generator(args: argparse.Namespace) -> None:
    """Refuse ``--generator`` that is missing, does not load, or has other classes than
    ``--data``, before the experiment spends any compute.

    Raises:
        GanaugModelError: the file does not load (as :func:`ganaug.load`).
        GanaugDataError: its class names differ from the data's (each difference listed).
    """
    from ganaug.data import load_data
    from ganaug.errors import GanaugDataError
    from ganaug.io import load

    gen = load(args.generator, device="cpu")
    data = load_data(args.data, size=gen.image_size, channels=gen.channels)
    if list(gen.classes) != list(data.classes):
        missing = [c for c in data.classes if c not in gen.classes]
        extra = [c for c in gen.classes if c not in data.classes]
        detail = (f"the data has {missing or 'nothing'} that the generator lacks; the generator "
                  f"has {extra or 'nothing'} that the data lacks" if missing or extra
                  else f"the same names in another order (generator {gen.classes}, data "
                       f"{data.classes})")
        raise GanaugDataError(
            f"--generator {args.generator} was trained on other classes than --data "
            f"{args.data}: {detail}. Pass a generator trained on this data, or leave out "
            "--generator to train one per regime.")
