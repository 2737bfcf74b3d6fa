"""fp32 against bf16 autocast for one dcgan G+D step on the CPU, alternated in one process.

A batch-64 hinge step (one D update on real and fake, one G update; Adam; channels_last; no
DiffAugment or EMA) at the given size, channels and width, 6 rounds of 5 steps per side after
3 warm-up steps, the order flipped every round. Prints the median ms per step of each side and
the speed-up. Autocast is faster only where the CPU computes bf16 natively (AVX512-BF16, AMX):

    OMP_NUM_THREADS=1 python benchmarks/cpu_bf16.py 28 1 32     # size, channels, width
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from ganaug.models import build_discriminator, build_generator, to_channels_last
from ganaug.training.step import cpu_has_native_bf16


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("size", type=int)
    p.add_argument("channels", type=int)
    p.add_argument("width", type=int)
    p.add_argument("--rounds", type=int, default=6)
    args = p.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    shape = {"num_classes": 10, "channels": args.channels, "image_size": args.size}
    g = to_channels_last(build_generator("dcgan", z_dim=128, width=args.width, **shape))
    d = to_channels_last(build_discriminator("dcgan", width=args.width, **shape))
    opt_g = torch.optim.Adam(g.parameters(), 2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(d.parameters(), 8e-4, betas=(0.5, 0.999))
    real = torch.rand(64, args.channels, args.size, args.size) * 2 - 1
    y = torch.arange(64) % 10

    def step(bf16: bool) -> None:
        z = torch.randn(64, 128)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            fake = g(z, y).detach()
            out = d(torch.cat([real, fake]), torch.cat([y, y])).float()
            loss_d = F.relu(1 - out[:64]).mean() + F.relu(1 + out[64:]).mean()
        opt_d.zero_grad()
        loss_d.backward()
        opt_d.step()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss_g = -d(g(z, y), y).float().mean()
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()

    for bf16 in (False, True):
        for _ in range(3):
            step(bf16)
    times: dict[bool, list[float]] = {False: [], True: []}
    for r in range(args.rounds):
        for bf16 in ((False, True) if r % 2 == 0 else (True, False)):
            start = time.perf_counter()
            for _ in range(5):
                step(bf16)
            times[bf16].append((time.perf_counter() - start) / 5)
    fp32, bf16 = statistics.median(times[False]), statistics.median(times[True])
    print(f"{args.size}px, {args.channels} channel(s), width {args.width}, native bf16: "
          f"{cpu_has_native_bf16()}: fp32 {fp32 * 1e3:.1f} ms/step, bf16 {bf16 * 1e3:.1f} "
          f"ms/step, speed-up {fp32 / bf16:.2f}")


if __name__ == "__main__":
    main()
