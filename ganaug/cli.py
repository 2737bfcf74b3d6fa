"""The ``ganaug`` command: parse arguments, call the library, print the result.

No logic lives here. Every :class:`ganaug.GanaugError` is printed as one paragraph (no
traceback) and exits with status 2; Ctrl-C exits with 130.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ganaug import __version__
from ganaug.errors import GanaugError


def _add_data_options(p: argparse.ArgumentParser, *, spec_flag: bool) -> None:
    """Options shared by every command that reads a dataset spec."""
    if spec_flag:
        p.add_argument("--data", required=True, metavar="SPEC",
                       help="dataset spec: mnist5k | digits | folder:PATH | npz:PATH | "
                            "torchvision:NAME[:ROOT]")
    p.add_argument("--size", type=int, default=None, dest="image_size",
                   help="resize images to SIZE x SIZE")
    p.add_argument("--channels", type=int, choices=(1, 3), default=None,
                   help="convert to 1 (grey) or 3 (RGB) channels")
    p.add_argument("--per-class", type=int, default=None, dest="per_class",
                   help="keep a seeded N images per class (low-data regimes)")
    p.add_argument("--imbalance", type=float, default=None,
                   help="seeded long-tail subset with max/min class ratio R")


# -- ganaug data info ---------------------------------------------------------------------------
def _cmd_data_info(args: argparse.Namespace) -> int:
    from ganaug.data import describe, load_data

    data = load_data(args.spec, size=args.image_size, channels=args.channels, split=args.split,
                     per_class=args.per_class, imbalance=args.imbalance, seed=args.seed,
                     download=args.download)
    print(describe(data))
    if args.grid:
        from ganaug.data import save_data_grid

        print(f"grid: {save_data_grid(data, args.grid, per_row=args.per_row, seed=args.seed)}")
    return 0


# -- ganaug train -------------------------------------------------------------------------------
def _cmd_train(args: argparse.Namespace) -> int:
    from ganaug.config import train_config_from_sources
    from ganaug.data import spec_with_split, split_note
    from ganaug.training import Trainer

    overrides = {k: v for k, v in vars(args).items()
                 if k not in ("command", "func", "config", "split") and v is not None}
    overrides["data"] = spec_with_split(args.data, args.split)  # the train split by default
    print(f"data: {overrides['data']} ({split_note(overrides['data'])})", file=sys.stderr)
    cfg = train_config_from_sources(args.config, overrides)
    try:
        result = Trainer(cfg).fit()
    except KeyboardInterrupt as err:
        # The trainer wrote a checkpoint and printed how to resume; exit like Ctrl-C does.
        print(f"ganaug: {err or 'interrupted'}", file=sys.stderr)
        return 130
    final = result.get("final") or {}
    losses = ", ".join(f"{k} {final[k]:.3f}" for k in ("loss_d", "loss_g") if final.get(k) is not None)
    print(f"trained {result['steps']} steps in {result['wall_time_s']:.0f} s"
          + (f" ({losses})" if losses else "")
          + f"\nrun folder: {result['out']}\nmodel file: {result['generator']}")
    return 0


# -- ganaug info / sample / export ----------------------------------------------------------------
def _cmd_info(args: argparse.Namespace) -> int:
    from ganaug.io import describe_model_file

    print(describe_model_file(args.file))
    return 0


def _cmd_sample(args: argparse.Namespace) -> int:
    from ganaug.io import load
    from ganaug.plots import save_generator_grid

    gen = load(args.file, device=args.device or "auto")
    classes = [c.strip() for c in args.classes.split(",")] if args.classes else None
    labels = gen.resolve_labels(classes, args.n_per_class)
    path = save_generator_grid(gen, args.out, per_class=args.n_per_class, seed=args.seed,
                               classes=classes, truncation=args.truncation,
                               title=f"{Path(args.file).name}  seed={args.seed}  "
                                     f"truncation={args.truncation}")
    print(f"wrote {path} ({len(labels)} images, {len(set(labels.tolist()))} classes)")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from ganaug.export import export_image_folder
    from ganaug.io import load

    gen = load(args.file, device=args.device or "auto")
    classes = [c.strip() for c in args.classes.split(",")] if args.classes else None
    out = export_image_folder(gen, args.out, n_per_class=args.n_per_class, seed=args.seed,
                              fmt=args.format, classes=classes, truncation=args.truncation,
                              batch_size=args.batch)
    print(out)
    return 0


# -- ganaug evaluate / experiment / demo / bench -------------------------------------------------
def _cmd_evaluate(args: argparse.Namespace) -> int:
    """``ganaug evaluate FILE --data SPEC [--test SPEC] [--n-per-class N] [--out JSON]``."""
    import json

    from ganaug._files import atomic_write_text
    from ganaug.data import load_data
    from ganaug.errors import GanaugDataError
    from ganaug.evaluation import evaluate_generator, finite_json, format_metrics
    from ganaug.io import load

    if args.split in ("test", "all") and not args.test:
        raise GanaugDataError(f"--split {args.split} leaves no held-out test images in --data; "
                              f"use --split train, or pass --test SPEC.")
    generator = load(args.file, device=args.device or "cpu")
    size, channels = generator.image_size, generator.channels
    if args.test:
        train = load_data(args.data, split=args.split, size=size, channels=channels)
        test = load_data(args.test, size=size, channels=channels)
    else:
        train = load_data(args.data, split="train", size=size, channels=channels)
        test = load_data(args.data, split="test", size=size, channels=channels)
    print(f"generator: {args.file} ({generator.num_classes} classes, {channels}x{size}x{size})")
    print(f"real train: {train.spec} ({len(train)} images); real test: {test.spec} "
          f"({len(test)} images)")
    result = evaluate_generator(generator, train, test, n_per_class=args.n_per_class,
                                features=args.features, classifier_steps=args.classifier_steps,
                                seed=args.seed, device=args.device)
    result["how"]["generator_file"] = str(args.file)
    print(format_metrics(result))
    if args.out:
        path = atomic_write_text(args.out, json.dumps(finite_json(result), indent=2) + "\n")
        print(f"wrote {path}")
    return 0


def parse_model_kwargs(text: str | None) -> dict | None:
    """``--model-kwargs`` (a YAML/JSON mapping) -> dict, with a clear error otherwise."""
    if not text:
        return None
    import yaml

    from ganaug.config import yaml_problem
    from ganaug.errors import GanaugConfigError

    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as err:
        _, problem = yaml_problem(err)
        raise GanaugConfigError(
            f"--model-kwargs is not valid YAML/JSON: {text!r} ({problem}). "
            "Example: --model-kwargs '{channels: [32, 64, 128, 256]}'.") from None
    if not isinstance(value, dict):
        raise GanaugConfigError(
            f"--model-kwargs must be a mapping of timm.create_model arguments, got {text!r}. "
            "Example: --model-kwargs '{drop_rate: 0.1}'.")
    return value


def _cmd_experiment(args: argparse.Namespace) -> int:
    """``ganaug experiment ...``: run, print the table and the paths."""
    from ganaug.evaluation import format_table, run_experiment

    doc = run_experiment(
        args.data, out=args.out, test=args.test, per_class=args.per_class,
        imbalance=args.imbalance, arms=args.arms, backbone=args.backbone, seeds=args.seeds,
        stem=args.stem, batch_size=args.batch_size,
        model_kwargs=parse_model_kwargs(args.model_kwargs),
        gan_steps=args.gan_steps, classifier_steps=args.classifier_steps,
        generator=args.generator, image_size=args.image_size,
        synthetic_ratio=args.synthetic_ratio, replace_p=args.replace_p,
        min_confidence=args.min_confidence, device=args.device)
    print(format_table(doc))
    out = Path(args.out)
    print(f"\nreport: {out / 'report.md'}\nresults: {out / 'results.json'}, "
          f"{out / 'results.csv'}\nplot: {out / 'accuracy.png'}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from ganaug.demo import demo

    demo(out=args.out, quick=args.quick)
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from ganaug.bench import run_bench

    run_bench(args.what, file=args.file, data=args.data, arch=args.arch,
              image_size=args.image_size, batch_size=args.batch_size, width=args.width,
              device=args.device, threads=args.threads, quick=args.quick, json_path=args.json)
    return 0


# -- parser -----------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ganaug",
        description="Train a class-conditional GAN on your images and use it as augmentation.",
    )
    parser.add_argument("--version", action="version", version=f"ganaug {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    # data
    p_data = sub.add_parser("data", help="inspect a dataset spec")
    data_sub = p_data.add_subparsers(dest="data_command", required=True, metavar="SUBCOMMAND")
    p = data_sub.add_parser("info", help="counts per class, image shape, value range, a grid")
    p.add_argument("spec", help="mnist5k | digits | folder:PATH | npz:PATH | torchvision:NAME")
    _add_data_options(p, spec_flag=False)
    p.add_argument("--split", default=None, choices=("train", "test", "all"),
                   help="default: the source's own train split, else every image")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--download", action="store_true",
                   help="torchvision:NAME only: download when missing (needs internet)")
    p.add_argument("--grid", default=None, metavar="PNG", help="write a grid, one row per class")
    p.add_argument("--per-row", type=int, default=8, dest="per_row")
    p.set_defaults(func=_cmd_data_info)

    # train
    p = sub.add_parser("train", help="train a class-conditional GAN")
    _add_data_options(p, spec_flag=True)
    p.add_argument("--arch", default=None, help="dcgan | resnet (default: preset for the size)")
    p.add_argument("--steps", type=int, default=None, help="total generator steps of the run")
    p.add_argument("--batch", type=int, default=None, dest="batch_size")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--device", default=None, help="cpu | cuda | cuda:N | mps (default: best)")
    p.add_argument("--out", default=None, help="run folder (default runs/<data>)")
    p.add_argument("--config", default=None, metavar="YAML", help="a TrainConfig YAML file")
    p.add_argument("--resume", action="store_true", default=None,
                   help="continue the run in --out from its last checkpoint")
    p.add_argument("--loss", default=None, help="hinge | ns | wgan-gp")
    p.add_argument("--diffaug", default=None, metavar="POLICY",
                   help="DiffAugment policy, e.g. translation,cutout; 'none' to disable")
    p.add_argument("--ada", action=argparse.BooleanOptionalAction, default=None,
                   help="adapt the DiffAugment probability to D's overfitting")
    p.add_argument("--d-steps", type=int, default=None, dest="d_steps")
    p.add_argument("--lr-g", type=float, default=None, dest="lr_g")
    p.add_argument("--lr-d", type=float, default=None, dest="lr_d")
    p.add_argument("--ema-decay", type=float, default=None, dest="ema_decay")
    p.add_argument("--z-dim", type=int, default=None, dest="z_dim")
    p.add_argument("--amp", action=argparse.BooleanOptionalAction, default=None,
                   help="bf16/fp16 autocast (CUDA)")
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                   help="torch.compile the networks")
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None,
                   dest="channels_last")
    p.add_argument("--sample-every", type=int, default=None, dest="sample_every")
    p.add_argument("--ckpt-every", type=int, default=None, dest="ckpt_every")
    p.add_argument("--workers", type=int, default=None, dest="num_workers")
    p.add_argument("--split", default=None, choices=("train", "test", "all"),
                   help="which split of --data to train on (default: the spec's ?split=, else "
                        "train: the source's own, or the holdout that evaluate tests on)")
    p.set_defaults(func=_cmd_train)

    # info
    p = sub.add_parser("info", help="what a model file holds")
    p.add_argument("file")
    p.set_defaults(func=_cmd_info)

    # sample
    p = sub.add_parser("sample", help="a grid of generated images, one row per class")
    p.add_argument("file")
    p.add_argument("--n-per-class", type=int, default=8, dest="n_per_class")
    p.add_argument("--classes", default=None, help="comma-separated class names (default all)")
    p.add_argument("--truncation", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None,
                   help="cpu | cuda | cuda:N | mps (default: cuda if available, else cpu)")
    p.add_argument("--out", required=True, metavar="PNG")
    p.set_defaults(func=_cmd_sample)

    # export
    p = sub.add_parser("export", help="write synthetic images as an ImageFolder")
    p.add_argument("file")
    p.add_argument("--n-per-class", type=int, required=True, dest="n_per_class")
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--format", default="png", choices=("png", "jpg"))
    p.add_argument("--classes", default=None, help="comma-separated class names (default all)")
    p.add_argument("--truncation", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch", type=int, default=256, help="images per forward pass")
    p.add_argument("--device", default=None,
                   help="cpu | cuda | cuda:N | mps (default: cuda if available, else cpu)")
    p.set_defaults(func=_cmd_export)

    # evaluate
    p = sub.add_parser("evaluate", help="FID-style distances, precision/recall, CAS")
    p.add_argument("file")
    p.add_argument("--data", required=True, metavar="SPEC")
    p.add_argument("--test", default=None, metavar="SPEC")
    p.add_argument("--split", default=None, choices=("train", "test", "all"),
                   help="split of --data the generator is compared with (default train; "
                        "test/all need --test)")
    p.add_argument("--n-per-class", type=int, default=None, dest="n_per_class")
    p.add_argument("--out", default=None, metavar="JSON")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None)
    p.add_argument("--features", default=None,
                   help="feature extractor: default trains a small timm classifier offline; "
                        "or timm-model-name:WEIGHTS_FILE")
    p.add_argument("--classifier-steps", type=int, default=None, dest="classifier_steps")
    p.set_defaults(func=_cmd_evaluate)

    # experiment
    p = sub.add_parser("experiment", help="does GAN augmentation help my classifier?")
    p.add_argument("--data", required=True, metavar="SPEC")
    p.add_argument("--test", default=None, metavar="SPEC")
    p.add_argument("--per-class", default="all", dest="per_class",
                   help="comma-separated regimes, e.g. 10,50,all")
    p.add_argument("--imbalance", type=float, default=None)
    p.add_argument("--arms", default=None,
                   help="comma-separated: real,real+aug,real+gan,real+aug+gan,gan")
    p.add_argument("--backbone", default="resnet18", help="any timm model name")
    p.add_argument("--stem", default="auto",
                   help="small-image stem of ResNet-like backbones: auto (3x3 stride 1, no "
                        "max-pool, up to 64 px) | cifar-3x3-pool (cheaper) | timm (unchanged)")
    p.add_argument("--model-kwargs", default=None, dest="model_kwargs", metavar="YAML",
                   help="extra timm.create_model arguments, e.g. '{channels: [32, 64, 128, 256]}'")
    p.add_argument("--batch", type=int, default=128, dest="batch_size",
                   help="classifier batch size")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--gan-steps", type=int, default=None, dest="gan_steps")
    p.add_argument("--classifier-steps", type=int, default=None, dest="classifier_steps")
    p.add_argument("--generator", default=None, metavar="FILE")
    p.add_argument("--size", type=int, default=None, dest="image_size")
    p.add_argument("--synthetic-ratio", type=float, default=None, dest="synthetic_ratio")
    p.add_argument("--replace-p", type=float, default=None, dest="replace_p")
    p.add_argument("--min-confidence", type=float, default=None, dest="min_confidence")
    p.add_argument("--device", default=None)
    p.add_argument("--out", required=True, metavar="DIR")
    p.set_defaults(func=_cmd_experiment)

    # demo
    p = sub.add_parser("demo", help="the whole pipeline on the built-in mnist5k")
    p.add_argument("--out", default="runs/demo")
    p.add_argument("--quick", action="store_true", help="tiny budgets (seconds, for tests)")
    p.set_defaults(func=_cmd_demo)

    # bench
    p = sub.add_parser("bench", help="throughput benchmarks")
    p.add_argument("what", choices=("train", "sample", "loader"))
    p.add_argument("file", nargs="?", default=None,
                   help="model file (sample, loader; default: an untrained dcgan)")
    p.add_argument("--arch", default="dcgan", help="train, sample without FILE: dcgan | resnet")
    p.add_argument("--size", type=int, default=32, dest="image_size")
    p.add_argument("--batch", type=int, default=None, dest="batch_size",
                   help="train: 64, loader: 128")
    p.add_argument("--width", type=int, default=None,
                   help="train: network width (default: the preset's; 32 for resnet --quick on CPU)")
    p.add_argument("--device", default=None, help="train, sample (loader runs on the CPU)")
    p.add_argument("--data", default=None, metavar="SPEC",
                   help="loader: dataset spec (default: digits at 32 px RGB), e.g. "
                        "folder:../shared/data/cifar10-mini/train")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default: torch's; 1 on a shared machine)")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--json", default=None, metavar="FILE")
    p.set_defaults(func=_cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``ganaug`` and ``python -m ganaug``; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except GanaugError as err:
        print(f"ganaug: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ganaug: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # `ganaug ... | head` closed the pipe: not an error of ours, and no traceback.
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
