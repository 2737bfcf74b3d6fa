"""Training throughput of the registered archs: real images per second through the trainer.

Usage: python benchmarks/train_speed.py [--archs dcgan,resnet] [--size 32] [--batch 64]
       [--steps 6] [--device cpu] [--d-steps 1] [--diffaug none]

Times complete generator steps (``d_steps`` D steps + one G step + the EMA update) of
``ganaug.Trainer`` on random data with the archs' default widths, after 2 warm-up steps.
images/s = batch * d_steps / seconds per generator step (the real images D sees).
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch

from ganaug import Trainer
from ganaug.config import TrainConfig
from ganaug.data import LabeledImages

WARMUP = 2


def measure(arch: str, size: int, batch: int, steps: int, device: str | None, d_steps: int,
            diffaug: str) -> dict:
    gen = torch.Generator().manual_seed(0)
    n = batch * 4
    data = LabeledImages(torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=gen),
                         torch.arange(n) % 10, [str(k) for k in range(10)], "random", "random")
    times: list[float] = []
    with tempfile.TemporaryDirectory() as out:
        cfg = TrainConfig(data="random", arch=arch, arch_kwargs={}, batch_size=batch,
                          steps=WARMUP + steps, d_steps=d_steps, device=device, diffaug=diffaug,
                          out=f"{out}/run", sample_every=10**6, ckpt_every=10**6,
                          log_every=10**6)

        def clock(trainer, step):
            if trainer.device.type == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter())

        trainer = Trainer(cfg, data=data, hooks=[clock])
        trainer.fit()
    per_step = (times[-1] - times[WARMUP - 1]) / steps
    from ganaug.models.layers import count_parameters

    return {"arch": arch, "size": size, "batch": batch, "d_steps": d_steps,
            "device": str(trainer.device), "amp": trainer.cfg.amp,
            "params_g": count_parameters(trainer.gan.G),
            "params_d": count_parameters(trainer.gan.D),
            "s_per_step": per_step, "images_per_s": batch * d_steps / per_step}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--archs", default="dcgan,resnet")
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--device", default=None)
    p.add_argument("--d-steps", type=int, default=1)
    p.add_argument("--diffaug", default="none")
    args = p.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads")
    for arch in args.archs.split(","):
        r = measure(arch, args.size, args.batch, args.steps, args.device, args.d_steps,
                    args.diffaug)
        print(f"{r['arch']:>7} {r['size']}x{r['size']} batch {r['batch']} d_steps {r['d_steps']} "
              f"on {r['device']} (amp {r['amp']}): G {r['params_g']:,} / D {r['params_d']:,} "
              f"params, {r['s_per_step']:.3f} s/step, {r['images_per_s']:.0f} images/s",
              flush=True)


if __name__ == "__main__":
    main()
