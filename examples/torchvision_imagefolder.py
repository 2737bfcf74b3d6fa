"""GANAugment in a torchvision v2 pipeline on an ImageFolder (CIFAR-style, 32x32).

ImageFolder calls ``transform(image)`` without the label, so the pipeline is attached with
``ganaug.with_labels``, which calls ``transform(image, label)``. Runs offline in seconds:

    python examples/torchvision_imagefolder.py [--data DIR] [--model generator.safetensors]
"""

from __future__ import annotations

import argparse
import time

import torch
from _tiny_model import CIFAR_MINI, model_path
from torchvision.datasets import ImageFolder
from torchvision.transforms import v2

import ganaug


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(CIFAR_MINI), help="an ImageFolder root")
    parser.add_argument("--model", help="generator .safetensors (default: tiny untrained)")
    parser.add_argument("--p", type=float, default=0.5)
    args = parser.parse_args()

    real = ImageFolder(args.data)  # (PIL RGB, int); no transform of its own
    path = model_path(args.model, real.classes, channels=3, size=32)
    train_tf = v2.Compose([
        ganaug.GANAugment(path, p=args.p, seed=0),  # first: it needs the raw PIL image + label
        v2.RandomCrop(32, padding=4),
        v2.RandomHorizontalFlip(),
        v2.ToImage(),
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    ])
    train_set = ganaug.with_labels(real, train_tf)
    loader = torch.utils.data.DataLoader(
        train_set, batch_size=128, shuffle=True, num_workers=2,
        generator=torch.Generator().manual_seed(0))  # the seed fixes the epoch, workers differ
    start = time.perf_counter()
    for step, (x, y) in enumerate(loader):
        if step == 3:
            break
        print(f"batch {step}: x {tuple(x.shape)} {x.dtype} mean {x.mean():+.3f}, "
              f"y {tuple(y.shape)} classes {sorted(set(y.tolist()))}")
    print(f"{len(train_set)} images, classes {train_set.classes}; 3 batches in "
          f"{time.perf_counter() - start:.1f}s")


if __name__ == "__main__":
    main()
