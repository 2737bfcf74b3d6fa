"""``ganaug experiment``: its options, the checks of ``--generator`` before any compute, the run."""

from __future__ import annotations

import argparse
from pathlib import Path

from ganaug.cli_args import add_threads, command_parser, finite_float, positive_int, seed


def add_experiment_parser(sub) -> None:
    """The ``ganaug experiment`` subcommand and its options."""
    p = command_parser(sub, "experiment", "does GAN augmentation help my classifier?")
    p.add_argument("--data", required=True, metavar="SPEC", help="the real data spec")
    p.add_argument("--test", default=None, metavar="SPEC",
                   help="real test data (default: the test split of --data)")
    p.add_argument("--per-class", default="all", dest="per_class",
                   help="comma-separated regimes, e.g. 10,50,all")
    p.add_argument("--imbalance", type=finite_float, default=None,
                   help="seeded long-tail subsets with max/min class ratio R")
    p.add_argument("--arms", default=None,
                   help="comma-separated: real,real+aug,real+gan,real+aug+gan,gan,real+weighted,"
                        "real+oversample,real+weighted+gan,real+oversample+gan,real+aug+kd,"
                        "real+aug+gan+kd,real+weighted+kd,real+weighted+gan+kd (default: the "
                        "first five; --imbalance adds the "
                        "weighted and oversample arms, their +gan versions only when a GAN arm "
                        "runs)")
    p.add_argument("--backbone", default="resnet18", help="any timm model name")
    p.add_argument("--stem", default="auto",
                   help="small-image stem of ResNet-like backbones: auto (3x3 stride 1, no "
                        "max-pool, up to 64 px) | cifar-3x3-pool (cheaper) | timm (unchanged)")
    p.add_argument("--model-kwargs", default=None, dest="model_kwargs", metavar="YAML",
                   help="extra timm.create_model arguments, e.g. '{channels: [32, 64, 128, 256]}'")
    p.add_argument("--batch", type=positive_int, default=128, dest="batch_size",
                   help="classifier batch size")
    p.add_argument("--seeds", type=positive_int, default=3,
                   help="repetitions per regime and arm (>= 2 for a tested difference)")
    p.add_argument("--first-seed", type=seed, default=0, dest="first_seed",
                   help="run seeds FIRST..FIRST+SEEDS-1 (default 0): processes sharing --out "
                        "can split the seeds, and a run over all of them reuses their cells")
    p.add_argument("--gan-steps", type=positive_int, default=None, dest="gan_steps",
                   help="steps of each regime's GAN (default: the trainer's preset)")
    p.add_argument("--gan-config", default=None, dest="gan_config", metavar="YAML",
                   help="ganaug train settings of every GAN (config.yaml keys), e.g. "
                        "'{arch: dcgan, arch_kwargs: {width: 32}}', or a config.yaml path "
                        "(default: the preset)")
    p.add_argument("--classifier-steps", type=positive_int, default=None,
                   dest="classifier_steps", help="steps of each classifier")
    p.add_argument("--generator", default=None, metavar="FILE",
                   help="use this model file instead of training GANs (checked first)")
    p.add_argument("--size", type=positive_int, default=None, dest="image_size",
                   help="resize the data (default: the generator's size, else the data's)")
    p.add_argument("--synthetic-ratio", type=finite_float, default=None,
                   dest="synthetic_ratio", help="synthetic images per real image (gan arms)")
    p.add_argument("--replace-p", type=finite_float, default=None, dest="replace_p",
                   help="probability that GANAugment replaces a real image")
    p.add_argument("--min-confidence", type=finite_float, default=None,
                   dest="min_confidence", help="drop synthetic images a classifier doubts")
    p.add_argument("--kd-temperature", type=finite_float, default=4.0, dest="kd_temperature",
                   help="+kd arms: the teacher's softmax temperature, ganaug.Teacher(temperature=)"
                   " (default 4)")
    p.add_argument("--kd-alpha", type=finite_float, default=0.5, dest="kd_alpha",
                   help="+kd arms: weight of the hard labels against the teacher's, "
                   "ganaug.Teacher(label_weight=) (default 0.5)")
    p.add_argument("--teacher-filter", type=finite_float, default=None, dest="teacher_filter",
                   metavar="Q", help="drop the fraction Q of synthetic images that the seed's "
                   "teacher finds hardest (highest loss), ganaug.Teacher(drop_hardest=)")
    p.add_argument("--synthetic-loss-weight", type=finite_float, default=1.0, metavar="W",
                   dest="synthetic_loss_weight", help="weight of each synthetic image's loss in "
                   "the real+...+gan arms, ganaug.Distiller(synthetic_weight=) (default 1; the "
                   "recipe: 0.3)")
    p.add_argument("--teacher-backbone", default=None, metavar="NAME", dest="teacher_backbone",
                   help="teacher of the +kd arms and --teacher-filter: a timm backbone trained "
                   "on each seed's real images (default: the seed's classifier of the arm's real-only "
                   "counterpart: real+aug, or real+weighted / real+oversample)")
    p.add_argument("--device", default=None, help="cpu | cuda | cuda:N | mps")
    p.add_argument("--out", required=True, metavar="DIR",
                   help="folder of the report, results and cached runs")
    add_threads(p)
    p.set_defaults(func=cmd_experiment)


def parse_mapping(text: str | None, flag: str, what: str, example: str) -> dict | None:
    """A YAML/JSON mapping given on the command line as ``flag`` -> dict (None when not given),
    with one clear error naming ``flag``, ``what`` it maps and an ``example`` otherwise."""
    if not text:
        return None
    import yaml

    from ganaug._yaml import safe_load, yaml_problem
    from ganaug.errors import GanaugConfigError

    try:
        value = safe_load(text)
    except yaml.YAMLError as err:
        _, problem = yaml_problem(err)
        raise GanaugConfigError(f"{flag} is not valid YAML/JSON: {text!r} ({problem}). "
                                f"Example: {flag} '{example}'.") from None
    if not isinstance(value, dict):
        raise GanaugConfigError(f"{flag} must be a mapping of {what}, got {text!r}. "
                                f"Example: {flag} '{example}'.")
    return value


def parse_gan_config(text: str | None) -> dict | None:
    """``--gan-config``: a YAML/JSON mapping of ``ganaug train`` settings, or the path of a
    config.yaml holding one (what ``ganaug train --config`` takes)."""
    from ganaug.config import read_yaml

    if text and not text.lstrip().startswith(("{", "[")) and (
            Path(text).exists() or Path(text).suffix.lower() in (".yaml", ".yml", ".json")):
        return read_yaml(text, flag="gan_config")
    return parse_mapping(text, "--gan-config", "ganaug train settings (or a config.yaml path)",
                         "{arch: dcgan, lr_d: 0.0004}")


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
        gan_config=parse_gan_config(args.gan_config),
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
