"""What each speed knob of the Trainer's step does here, measured by alternating A and B.

Each knob builds two prepared Trainers (or one Trainer and a patched copy) and times their real
``train_step`` alternately in one process (``ganaug.bench.alternate``), so machine load hits
both alike. Prints one row per knob: images/s of both and the ratio B/A (> 1: B is faster).

    .venv/bin/python benchmarks/knobs.py --threads 1 [--arch dcgan --size 32 --batch 64]

Figures in docs/performance.md came from this script on a shared 2-core CPU.
"""

from __future__ import annotations

import argparse
import statistics

import torch

from ganaug import bench
from ganaug.models import to_channels_last
from ganaug.training import step as step_module


def _foreach_ema(gan, decay: float) -> None:
    """The EMA update as two foreach calls instead of a Python loop over tensors."""
    with torch.no_grad():
        torch._foreach_lerp_(list(gan.G_ema.parameters()),
                             [p.detach() for p in gan.G.parameters()], 1.0 - decay)
        torch._foreach_copy_(list(gan.G_ema.buffers()), list(gan.G.buffers()))


def _step_with_foreach_ema(trainer):
    def step():
        # Swap the module's ema_update for this call only: the same step, another EMA.
        saved = step_module.ema_update
        step_module.ema_update = lambda ema, model, decay: _foreach_ema(trainer.gan, decay)
        try:
            trainer.train_step()
        finally:
            step_module.ema_update = saved
    return step


def _loop_adam(trainer) -> None:
    """Replace the GANStep's foreach Adam by PyTorch's default (per-tensor loop on the CPU)."""
    cfg, gan = trainer.cfg, trainer.gan
    gan.opt_g = torch.optim.Adam(gan.G.parameters(), lr=cfg.lr_g, betas=cfg.betas, foreach=False)
    gan.opt_d = torch.optim.Adam(gan.D.parameters(), lr=cfg.lr_d, betas=cfg.betas, foreach=False)


def _keep_d_grads(trainer) -> None:
    """Undo the G step's ``D.requires_grad_(False)`` (D's weight grads computed, then dropped)."""
    trainer.gan.D.requires_grad_ = lambda requires_grad=True: trainer.gan.D


def _old_nhwc_layout(trainer) -> None:
    """The NHWC layout before 2026-11-28: every conv weight channels_last, the 1x1 projection's
    too, and the DCGAN D's last LeakyReLU before its flatten (models.layers.to_channels_last)."""
    gan = trainer.gan
    gan.G.to(memory_format=torch.channels_last)
    layers = list(gan.D.net)
    if isinstance(layers[-2], torch.nn.Flatten):
        layers[-2], layers[-1] = layers[-1], layers[-2]
        gan.D.net = torch.nn.Sequential(*layers)


def knobs(args: argparse.Namespace) -> list[dict]:
    """One row per knob: A (the Trainer as it is) vs B (the knob flipped)."""
    common = {"arch": args.arch, "image_size": args.size, "batch_size": args.batch,
              "channels": args.channels, "device": args.device, "width": args.width}
    rows = []

    def trainer(**kw):
        return bench.make_trainer(**common, **kw)

    cases = {}
    a, b = trainer(), trainer(channels_last=True)
    cases["channels_last on (B) vs off (A)"] = (a.train_step, b.train_step, a)
    a, b = trainer(channels_last=True), trainer(channels_last=True)
    _old_nhwc_layout(b)
    cases["NHWC layout before 2026-11-28 (B) vs now (A)"] = (a.train_step, b.train_step, a)
    a, b = trainer(), trainer()
    _loop_adam(b)
    cases["Adam per-tensor loop (B) vs foreach (A)"] = (a.train_step, b.train_step, a)
    a, b = trainer(), trainer()
    _keep_d_grads(b)
    cases["D grads kept in G step (B) vs skipped (A)"] = (a.train_step, b.train_step, a)
    a, b = trainer(), trainer()
    cases["EMA by _foreach_lerp_ (B) vs Python loop (A)"] = (a.train_step,
                                                             _step_with_foreach_ema(b), a)
    gen_a = bench.default_generator(arch=args.arch, image_size=args.size,
                                   channels=args.channels)
    gen_b = bench.default_generator(arch=args.arch, image_size=args.size,
                                   channels=args.channels)
    gen_a.to(args.device)
    gen_b.to(args.device)
    to_channels_last(gen_b.net)  # what ganaug.load and SampleBank do on the CPU
    z, labels = gen_a.noise(args.batch, seed=0), torch.arange(args.batch) % 10

    def sampler(gen):
        return lambda: [gen.generate(z, labels, batch_size=args.batch) for _ in range(4)]
    # Sampling: 4 calls per "step"; images per step = 4 batches (not batch x d_steps).
    cases["sampling: to_channels_last G (B) vs not (A)"] = (sampler(gen_a), sampler(gen_b), None)
    for name, (fa, fb, ta) in cases.items():
        timing = bench.alternate({"A": fa, "B": fb}, steps=args.steps, rounds=args.rounds,
                                 warmup=1, device=torch.device(args.device))
        sa, sb = timing["seconds"]["A"], timing["seconds"]["B"]
        per_step = 4 * args.batch if ta is None else ta.cfg.batch_size * ta.cfg.d_steps
        images = per_step * args.steps
        rows.append({"knob": name, "A_images_per_s": images / statistics.median(sa),
                     "B_images_per_s": images / statistics.median(sb),
                     "B_over_A": statistics.median(x / y for x, y in zip(sa, sb))})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="dcgan")
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--channels", type=int, default=3)
    parser.add_argument("--width", type=int, default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=6)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = knobs(args)
    print(f"{args.arch} {args.size}px x {args.channels} batch {args.batch} on {args.device}, "
          f"{torch.get_num_threads()} thread(s), {args.rounds} rounds x {args.steps} steps")
    print(bench.format_table(rows, [("knob", "knob", ""), ("A_images_per_s", "A images/s", ".1f"),
                                    ("B_images_per_s", "B images/s", ".1f"),
                                    ("B_over_A", "B/A", ".2f")]))


if __name__ == "__main__":
    main()
