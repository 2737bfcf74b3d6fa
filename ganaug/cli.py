"""The ``ganaug`` command: parse arguments, call the library, print the result.

No logic lives here. Every :class:`ganaug.GanaugError` is printed as one paragraph (no
traceback), its Python argument names turned into flags (:func:`ganaug.cli_args.to_flags`),
and exits with status 2; Ctrl-C exits with 130.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ganaug import __version__
from ganaug.cli_args import (
    add_threads,
    command_parser,
    finite_float,
    int_at_least,
    positive_int,
    seed,
    set_threads,
    thread_count,
    to_flags,
)
from ganaug.cli_experiment import add_experiment_parser, parse_model_kwargs  # noqa: F401
from ganaug.errors import GanaugError


def _add_data_options(p: argparse.ArgumentParser, *, spec_flag: bool) -> None:
    """Options shared by every command that reads a dataset spec."""
    if spec_flag:
        p.add_argument("--data", required=True, metavar="SPEC",
                       help="dataset spec: mnist5k | digits | folder:PATH | npz:PATH | "
                            "torchvision:NAME[:ROOT]")
    p.add_argument("--size", type=positive_int, default=None, dest="image_size",
                   help="resize images to SIZE x SIZE")
    p.add_argument("--channels", type=int, choices=(1, 3), default=None,
                   help="convert to 1 (grey) or 3 (RGB) channels")
    p.add_argument("--per-class", type=positive_int, default=None, dest="per_class",
                   help="keep a seeded N images per class (low-data regimes)")
    p.add_argument("--imbalance", type=finite_float, default=None,
                   help="seeded long-tail subset with max/min class ratio R")


# -- ganaug data info ---------------------------------------------------------------------------
def _cmd_data_info(args: argparse.Namespace) -> int:
    from ganaug._specs import check_output_outside
    from ganaug.data import describe, load_data
    from ganaug.plots import figure_format

    if args.grid:
        figure_format(args.grid)  # a name that is no picture is refused before the data loads
        check_output_outside(args.grid, args.spec, "grid", file=True)
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
                 if k not in ("command", "func", "config", "threads", "split") and v is not None}
    overrides["data"] = spec_with_split(args.data, args.split)  # the train split by default
    print(f"data: {overrides['data']} ({split_note(overrides['data'])})", file=sys.stderr)
    cfg = train_config_from_sources(args.config, overrides)
    try:
        result = Trainer(cfg).fit()
    except KeyboardInterrupt as err:
        # The trainer wrote a checkpoint and printed how to resume; exit like Ctrl-C does.
        print(f"ganaug: {to_flags(str(err)) or 'interrupted'}", file=sys.stderr)
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


def _class_list(text: str | None) -> list[str] | None:
    """``--classes a,b`` as names; ``""`` is one empty name (refused), not "every class"."""
    return None if text is None else [c.strip() for c in text.split(",")]


def _cmd_sample(args: argparse.Namespace) -> int:
    from ganaug._specs import check_output_outside
    from ganaug.io import load
    from ganaug.plots import save_generator_grid

    gen = load(args.file, device=args.device or "auto")
    # a grid in a class folder of the model's training data is one more image of that class
    check_output_outside(args.out, gen.training_data, file=True)
    classes = _class_list(args.classes)
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
    classes = _class_list(args.classes)
    out = export_image_folder(gen, args.out, n_per_class=args.n_per_class, seed=args.seed,
                              fmt=args.format, classes=classes, truncation=args.truncation,
                              batch_size=args.batch)
    print(out)
    return 0


# -- ganaug evaluate / experiment / demo / bench -------------------------------------------------
def _cmd_evaluate(args: argparse.Namespace) -> int:
    """``ganaug evaluate FILE --data SPEC [--test SPEC] [--n-per-class N] [--out JSON]``."""
    import json

    from ganaug._files import atomic_write_text, check_json_file
    from ganaug.data import load_data
    from ganaug.errors import GanaugDataError
    from ganaug.evaluation import evaluate_generator, finite_json, format_metrics
    from ganaug.io import load

    if args.split in ("test", "all") and not args.test:
        raise GanaugDataError(f"--split {args.split} leaves no held-out test images in --data; "
                              f"use --split train, or pass --test SPEC.")
    if args.out:
        check_json_file(args.out)  # before minutes of compute, not when writing the result
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
    warnings = [to_flags(w) for w in result.get("warnings") or []]  # the CLI's words
    print(format_metrics({**result, "warnings": warnings}))
    if args.out:
        path = atomic_write_text(args.out, json.dumps(finite_json(result), indent=2) + "\n")
        print(f"wrote {path}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from ganaug.demo import demo

    demo(out=args.out, quick=args.quick)
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from ganaug.bench import run_bench

    run_bench(args.what, file=args.file, data=args.data, arch=args.arch,
              image_size=args.image_size, batch_size=args.batch_size, width=args.width,
              device=args.device, threads=args.threads, quick=args.quick, json_path=args.json,
              amp=args.amp, channels_last=args.channels_last, compile=args.compile,
              cr_weight=args.cr_weight)
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
    p = command_parser(data_sub, "info", "counts per class, image shape, value range, a grid",
                       key="data info")
    p.add_argument("spec", help="mnist5k | digits | folder:PATH | npz:PATH | torchvision:NAME")
    _add_data_options(p, spec_flag=False)
    p.add_argument("--split", default=None, choices=("train", "test", "all"),
                   help="default: the source's own train split, else every image")
    p.add_argument("--seed", type=seed, default=0, help="seed of --per-class/--imbalance subsets "
                   "and of the grid's pick (default 0)")
    p.add_argument("--download", action="store_true",
                   help="torchvision:NAME only: download when missing (needs internet)")
    p.add_argument("--grid", default=None, metavar="IMAGE",
                   help="write a grid, one row per class (.png, .jpg, .webp, .pdf, ...)")
    p.add_argument("--per-row", type=positive_int, default=8, dest="per_row",
                   help="images per class row of --grid (default 8)")
    add_threads(p)
    p.set_defaults(func=_cmd_data_info)

    # train
    p = command_parser(sub, "train", "train a class-conditional GAN")
    _add_data_options(p, spec_flag=True)
    p.add_argument("--arch", default=None, help="dcgan | resnet (default: preset for the size)")
    p.add_argument("--steps", type=positive_int, default=None,
                   help="total generator steps of the run")
    p.add_argument("--batch", type=positive_int, default=None, dest="batch_size",
                   help="real images per D step (default: preset for the data size)")
    p.add_argument("--seed", type=seed, default=None, help="run seed (default 0)")
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
    p.add_argument("--cr-weight", type=finite_float, default=None, dest="cr_weight",
                   help="balanced consistency regularisation weight (0 = off; paper: 10)")
    p.add_argument("--d-steps", type=positive_int, default=None, dest="d_steps",
                   help="discriminator steps per generator step")
    p.add_argument("--lr-g", type=finite_float, default=None, dest="lr_g",
                   help="generator learning rate (Adam)")
    p.add_argument("--lr-d", type=finite_float, default=None, dest="lr_d",
                   help="discriminator learning rate (Adam)")
    p.add_argument("--ema-decay", type=finite_float, default=None, dest="ema_decay",
                   help="decay of the generator's EMA copy (the saved model), in [0, 1)")
    p.add_argument("--z-dim", type=positive_int, default=None, dest="z_dim",
                   help="noise dimension of the generator")
    p.add_argument("--amp", action=argparse.BooleanOptionalAction, default=None,
                   help="bf16/fp16 autocast (CUDA, and bf16 on a CPU with AVX512-BF16/AMX; off by default)")
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                   help="torch.compile the networks")
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None,
                   dest="channels_last", help="channels_last memory format (faster on GPUs)")
    p.add_argument("--sample-every", type=positive_int, default=None, dest="sample_every",
                   help="steps between sample grids in OUT/samples/")
    p.add_argument("--ckpt-every", type=positive_int, default=None, dest="ckpt_every",
                   help="steps between checkpoints (checkpoints/last.pt, generator.safetensors)")
    p.add_argument("--workers", type=int_at_least(0), default=None, dest="num_workers",
                   help="DataLoader worker processes for the real images")
    add_threads(p)
    p.add_argument("--split", default=None, choices=("train", "test", "all"),
                   help="which split of --data to train on (default: the spec's ?split=, else "
                        "train: the source's own, or the holdout that evaluate tests on)")
    p.set_defaults(func=_cmd_train)

    # info
    p = command_parser(sub, "info", "what a model file holds (checked as ganaug.load checks it)")
    p.add_argument("file", help="a .safetensors model file")
    p.set_defaults(func=_cmd_info)

    # sample
    p = command_parser(sub, "sample", "a grid of generated images, one row per class")
    p.add_argument("file", help="a .safetensors model file")
    p.add_argument("--n-per-class", type=positive_int, default=8, dest="n_per_class",
                   help="images per class (default 8)")
    p.add_argument("--classes", default=None, help="comma-separated class names (default all)")
    p.add_argument("--truncation", type=finite_float, default=1.0,
                   help="in (0, 1]: < 1 draws fewer, more typical images (default 1: off)")
    p.add_argument("--seed", type=seed, default=0, help="noise seed (default 0)")
    p.add_argument("--device", default=None,
                   help="cpu | cuda | cuda:N | mps (default: cuda if available, else cpu)")
    p.add_argument("--out", required=True, metavar="IMAGE",
                   help="the grid image to write (.png, .jpg, .webp, .pdf, ...)")
    add_threads(p)
    p.set_defaults(func=_cmd_sample)

    # export
    p = command_parser(sub, "export", "write synthetic images as an ImageFolder")
    p.add_argument("file", help="a .safetensors model file")
    p.add_argument("--n-per-class", type=positive_int, required=True, dest="n_per_class",
                   help="images per class")
    p.add_argument("--out", required=True, metavar="DIR",
                   help="a new or empty folder, or an earlier export with the same arguments")
    p.add_argument("--format", default="png", choices=("png", "jpg"),
                   help="png (lossless, default) or jpg (quality 95)")
    p.add_argument("--classes", default=None, help="comma-separated class names (default all)")
    p.add_argument("--truncation", type=finite_float, default=1.0,
                   help="in (0, 1]: < 1 draws fewer, more typical images (default 1: off)")
    p.add_argument("--seed", type=seed, default=0, help="export seed (default 0)")
    p.add_argument("--batch", type=positive_int, default=256, help="images per forward pass")
    p.add_argument("--device", default=None,
                   help="cpu | cuda | cuda:N | mps (default: cuda if available, else cpu)")
    add_threads(p)
    p.set_defaults(func=_cmd_export)

    # evaluate
    p = command_parser(sub, "evaluate", "FID-style distances, precision/recall, CAS")
    p.add_argument("file", help="a .safetensors model file")
    p.add_argument("--data", required=True, metavar="SPEC",
                   help="the real data (its train split; its test split unless --test)")
    p.add_argument("--test", default=None, metavar="SPEC", help="real test data spec")
    p.add_argument("--split", default=None, choices=("train", "test", "all"),
                   help="split of --data the generator is compared with (default train; "
                        "test/all need --test)")
    p.add_argument("--n-per-class", type=positive_int, default=None, dest="n_per_class",
                   help="synthetic images per class (default: as many as real)")
    p.add_argument("--out", default=None, metavar="JSON", help="also write the results here")
    p.add_argument("--seed", type=seed, default=0, help="seed (default 0)")
    p.add_argument("--device", default=None, help="cpu | cuda | cuda:N | mps (default: cpu)")
    p.add_argument("--features", default=None,
                   help="feature extractor: default trains a small timm classifier offline; "
                        "or timm-model-name:WEIGHTS_FILE")
    p.add_argument("--classifier-steps", type=positive_int, default=None,
                   dest="classifier_steps", help="training steps of the feature classifier")
    add_threads(p)
    p.set_defaults(func=_cmd_evaluate)

    # experiment
    add_experiment_parser(sub)

    # demo
    p = command_parser(sub, "demo", "the whole pipeline on the built-in mnist5k")
    p.add_argument("--out", default="runs/demo", help="output folder (default runs/demo)")
    p.add_argument("--quick", action="store_true", help="tiny budgets (seconds, for tests)")
    add_threads(p)
    p.set_defaults(func=_cmd_demo)

    # bench
    p = command_parser(sub, "bench", "throughput benchmarks")
    p.add_argument("what", choices=("train", "sample", "loader"), help="what to time")
    p.add_argument("file", nargs="?", default=None,
                   help="model file (sample, loader; default: an untrained dcgan)")
    p.add_argument("--arch", default="dcgan", help="train, sample without FILE: dcgan | resnet")
    p.add_argument("--size", type=positive_int, default=32, dest="image_size",
                   help="image size (default 32)")
    p.add_argument("--batch", type=positive_int, default=None, dest="batch_size",
                   help="train: 64, loader: 128")
    p.add_argument("--width", type=positive_int, default=None,
                   help="train: network width (default: the preset's; 32 for resnet --quick on CPU)")
    p.add_argument("--device", default=None, help="train, sample (loader runs on the CPU)")
    p.add_argument("--data", default=None, metavar="SPEC",
                   help="loader: dataset spec (default: digits at 32 px RGB), e.g. "
                        "folder:../shared/data/cifar10-mini/train")
    p.add_argument("--threads", type=thread_count(None), default=None,  # 0: run_bench says
                   help="torch CPU threads (default: torch's; 1 on a shared machine)")
    p.add_argument("--quick", action="store_true", help="short runs (seconds)")
    p.add_argument("--json", default=None, metavar="FILE", help="also write the figures here")
    p.add_argument("--amp", action="store_true", help="train: autocast on CUDA or a native-bf16 CPU (both sides)")
    p.add_argument("--channels-last", action="store_true", dest="channels_last",
                   help="train: NHWC networks (both sides)")
    p.add_argument("--compile", action="store_true", help="train: torch.compile ganaug's side")
    p.add_argument("--cr-weight", type=finite_float, default=0.0, dest="cr_weight",
                   help="train: bCR weight on ganaug's side (the ratio shows its cost)")
    p.set_defaults(func=_cmd_bench)
    return parser


def _command_parser(parser: argparse.ArgumentParser,
                    args: argparse.Namespace) -> argparse.ArgumentParser:
    """The (sub)parser of the command ``args`` ran, e.g. the one of ``data info``."""
    for dest in ("command", "data_command"):
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs or getattr(args, dest, None) is None:
            break
        parser = subs[0].choices[getattr(args, dest)]
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``ganaug`` and ``python -m ganaug``; returns the exit status."""
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # exits 2 with the command's own usage (``ganaug train --bogus``)
        _command_parser(parser, args).error(f"unrecognized arguments: {' '.join(unknown)}")
    for stream in (sys.stdout, sys.stderr):
        # A folder name that is not UTF-8 ("caf\xe9") is read as "caf\udce9": printing it to a
        # strict UTF-8 stream (macOS, Windows, a UTF-8 locale) raised UnicodeEncodeError.
        if getattr(stream, "errors", None) == "strict" and hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    try:
        set_threads(getattr(args, "threads", None))
        return int(args.func(args) or 0)
    except GanaugError as err:
        print(f"ganaug: error: {to_flags(str(err))}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # `ganaug ... | head` closed the pipe: not an error of ours, and no traceback. Before
        # OSError, of which it is one.
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as err:  # a disk or permission problem not caught at its source
        from ganaug._files import os_problem

        print(f"ganaug: error: {os_problem(err)}.", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ganaug: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
