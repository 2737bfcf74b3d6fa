"""The cost curve: training and sampling images/s and memory as batch and image size grow.

Every point runs in its own subprocess, so its peak memory is its own (CPU: peak RSS minus the
RSS before the networks were built; CUDA: peak allocated). Training is the Trainer's real step
(``ganaug.bench.bench_train`` with the ganaug side only, DiffAugment off, EMA on); sampling is
``Generator.generate`` with uint8 output (``ganaug.bench.bench_sample``, untrained generator at
the training width). Writes ``docs/img/perf_train.png``, ``docs/img/perf_sample.png`` and
``benchmarks/results/cost_curve.json`` and prints markdown tables.

    .venv/bin/python benchmarks/cost_curve.py --threads 1            # dcgan, the figures in the docs
    .venv/bin/python benchmarks/cost_curve.py --threads 1 --arch resnet --width 32 --batches 16,64
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def one_point(kind: str, arch: str, size: int, batch: int, width: int | None, device: str,
              threads: int | None, steps: int, rounds: int) -> dict:
    """Measure one point in this process (called in a fresh subprocess by :func:`run_point`)."""
    import torch

    from ganaug import bench

    if threads:
        torch.set_num_threads(threads)
    if kind == "train":
        r = bench.bench_train(arch=arch, image_size=size, batch_size=batch, width=width,
                              device=device, sides=("ganaug",), steps=steps, rounds=rounds)
        row = r["rows"][0]
        peak = row["peak_memory_mb"]
        return {"images_per_s": row["images_per_s"], "d_steps": r["d_steps"],
                "width": r["width"],
                "memory_mb": peak - r["rss_before_mb"] if device == "cpu" else peak}
    from ganaug.generator import Generator
    from ganaug.models import build_generator

    rss_before = bench.rss_mb()

    torch.manual_seed(0)
    kw = {"width": width} if width else {}
    net = build_generator(arch, num_classes=10, channels=3, image_size=size, **kw)
    gen = Generator(net, classes=[str(k) for k in range(10)], arch=arch)
    r = bench.bench_sample(gen, batch_sizes=(batch,), min_images=max(4 * batch, 256),
                           device=device)
    peak = r["peak_memory_mb"]
    return {"images_per_s": r["rows"][0]["images_per_s"],
            "memory_mb": peak - rss_before if device == "cpu" else peak}


def run_point(args: argparse.Namespace, kind: str, size: int, batch: int) -> dict:
    spec = json.dumps({"kind": kind, "arch": args.arch, "size": size, "batch": batch,
                       "width": args.width, "device": args.device, "threads": args.threads,
                       "steps": args.steps, "rounds": args.rounds})
    out = subprocess.run([sys.executable, __file__, "--point", spec], cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout
    result = json.loads(out.strip().splitlines()[-1])
    print(f"{kind:6} {args.arch} {size:3d}px batch {batch:4d}: {result['images_per_s']:9.1f} "
          f"images/s  {result['memory_mb']:8.1f} MiB", flush=True)
    return {"kind": kind, "arch": args.arch, "size": size, "batch": batch, **result}


def plot(points: list[dict], kind: str, path: Path, title: str) -> None:
    """Two panels: images/s and memory against batch size, one line per image size."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(8, 3.0), dpi=80)
    for size in sorted({p["size"] for p in points}):
        pts = sorted((p for p in points if p["kind"] == kind and p["size"] == size),
                     key=lambda p: p["batch"])
        if not pts:
            continue
        batches = [p["batch"] for p in pts]
        axes[0].plot(batches, [p["images_per_s"] for p in pts], marker="o", label=f"{size} px")
        axes[1].plot(batches, [p["memory_mb"] for p in pts], marker="o", label=f"{size} px")
    batches = sorted({p["batch"] for p in points})
    for ax, ylabel in zip(axes, ("images/s (log)", "memory (MiB)"), strict=True):
        ax.set_xscale("log", base=2)
        ax.set_xticks(batches, [str(b) for b in batches])
        ax.minorticks_off()
        ax.set_xlabel("batch size")
        ax.set_ylabel(ylabel)
        ax.grid(True, alpha=0.3)
    axes[0].set_yscale("log")
    axes[1].set_ylim(bottom=0)
    axes[1].legend(fontsize=8, loc="upper left")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def markdown(points: list[dict], kind: str) -> str:
    sizes = sorted({p["size"] for p in points if p["kind"] == kind})
    batches = sorted({p["batch"] for p in points if p["kind"] == kind})
    lines = ["| batch | " + " | ".join(f"{s} px images/s | {s} px MiB" for s in sizes) + " |",
             "|" + "---|" * (1 + 2 * len(sizes))]
    for b in batches:
        cells = []
        for s in sizes:
            p = next((p for p in points if (p["kind"], p["size"], p["batch"]) == (kind, s, b)),
                     None)
            cells += [f"{p['images_per_s']:.0f}", f"{p['memory_mb']:.0f}"] if p else ["", ""]
        lines.append(f"| {b} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="dcgan")
    parser.add_argument("--width", type=int, default=None,
                        help="network width (default: the CPU preset's, 32 for dcgan)")
    parser.add_argument("--sizes", default="16,32,64")
    parser.add_argument("--batches", default="16,64,256")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--steps", type=int, default=2, help="training steps per timed round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", default="docs/img",
                        help="folder of the PNGs; a relative path is taken from the repository root")
    parser.add_argument("--plot-only", action="store_true", dest="plot_only",
                        help="redraw the PNGs from benchmarks/results/cost_curve_ARCH.json")
    parser.add_argument("--point", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.point:
        spec = json.loads(args.point)
        print(json.dumps(one_point(**spec)))
        return
    if args.plot_only:  # redraw from the saved results (no measuring)
        saved = json.loads((ROOT / "benchmarks" / "results" /
                            f"cost_curve_{args.arch}.json").read_text())
        args = argparse.Namespace(**{**saved["settings"], "out": args.out})
        points = saved["points"]
    else:
        points = None
    if args.width is None and args.arch == "dcgan" and args.device == "cpu":
        args.width = 32  # the CPU preset's dcgan width, as in ganaug train
    sizes = [int(s) for s in args.sizes.split(",")]
    batches = [int(b) for b in args.batches.split(",")]
    results = ROOT / "benchmarks" / "results" / f"cost_curve_{args.arch}.json"
    if points is None:
        points = [run_point(args, kind, size, batch) for kind in ("train", "sample")
                  for size in sizes for batch in batches]
        results.parent.mkdir(parents=True, exist_ok=True)
        results.write_text(json.dumps({"settings": vars(args), "points": points}, indent=2))
    out = ROOT / args.out  # an absolute --out stays as given
    where = f"{args.device}, {args.threads or 'default'} thread(s)"
    plot(points, "train", out / f"perf_train_{args.arch}.png",
         f"training, {args.arch} width {args.width}, Trainer step ({where})")
    plot(points, "sample", out / f"perf_sample_{args.arch}.png",
         f"sampling, {args.arch} width {args.width}, uint8 output ({where})")
    print("\ntraining (real images seen by D per second; memory above the pre-model RSS)")
    print(markdown(points, "train"))
    print("\nsampling (generated uint8 images per second)")
    print(markdown(points, "sample"))
    print(f"\nwrote {results} and {out}/perf_*_{args.arch}.png")


if __name__ == "__main__":
    main()
