"""Seconds for 300 shuffled reads of a ``SyntheticDataset`` (one thread, default cache).

Usage (from the repository root): ``python benchmarks/synthetic_shuffle.py``. A width-32 dcgan
(untrained: the cost is the same), 10 classes x 500 images at 32 px, the first 300 indices of
a seeded permutation. Uses only the public API, so it runs on any ganaug version.
"""

from __future__ import annotations

import time

import torch

from ganaug import Generator, SyntheticDataset, build_generator


def main() -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    net = build_generator("dcgan", num_classes=10, channels=3, image_size=32, z_dim=64, width=32)
    gen = Generator(net, classes=[f"c{i}" for i in range(10)], arch="dcgan")
    data = SyntheticDataset(gen, n_per_class=500, seed=0)
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(0))[:300].tolist()
    start = time.perf_counter()
    for i in order:
        data[i]
    seconds = time.perf_counter() - start
    print(f"300 shuffled reads of {len(data)} images: {seconds:.2f} s "
          f"({1000 * seconds / 300:.1f} ms per read)")


if __name__ == "__main__":
    main()
