"""GANAugment inside timm's ``create_loader`` (per-sample GAN augmentation, then timm's transform).

``timm.data.create_loader`` assigns ``dataset.transform`` with its own image-only transform.
``ganaug.with_labels(dataset, GANAugment(...))`` keeps the label-aware GAN step apart: timm's
transform lands in the wrapper's ``transform`` attribute and runs after it. Labels are matched
to the generator's classes by name through the timm reader's ``class_to_idx`` (timm sorts class
folders naturally: c1, c2, c10; ganaug and torchvision sort plainly: c1, c10, c2). Runs offline
in seconds on a made-up folder:

    python examples/timm_create_loader.py [--data DIR] [--model generator.safetensors]
        [--prefetcher] [--workers N]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import PIL.Image
import timm.data
import torch
from _tiny_model import model_path

import ganaug


def made_up_folder() -> str:
    """A tiny ImageFolder with classes c1, c2, c10 (6 random 32x32 images each)."""
    root = Path(tempfile.mkdtemp(prefix="ganaug-timm-"))
    rng = np.random.default_rng(0)
    for name in ("c1", "c2", "c10"):
        (root / name).mkdir()
        for i in range(6):
            pixels = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
            PIL.Image.fromarray(pixels).save(root / name / f"{i}.png")
    return str(root)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="an ImageFolder root (default: a made-up c1/c2/c10 one)")
    parser.add_argument("--model", help="generator .safetensors (default: tiny untrained)")
    parser.add_argument("--p", type=float, default=0.3)
    parser.add_argument("--prefetcher", action="store_true",
                        help="timm's prefetcher path (uint8 batches, normalised on the device)")
    parser.add_argument("--workers", type=int, default=0)
    args = parser.parse_args()

    root = args.data or made_up_folder()
    dataset = timm.data.create_dataset("", root=root)  # timm's folder reader (natural sort)
    names = sorted(dataset.reader.class_to_idx)  # the generator's order (plain sort)
    path = model_path(args.model, names, channels=3, size=32)
    train_set = ganaug.with_labels(dataset, ganaug.GANAugment(path, p=args.p, seed=0))
    loader = timm.data.create_loader(
        train_set, input_size=(3, 32, 32), batch_size=6, is_training=True,
        use_prefetcher=args.prefetcher, device=torch.device("cpu"), num_workers=args.workers,
        scale=(0.8, 1.0))  # timm sets train_set.transform; the GAN step runs before it
    print(f"timm labels: {dataset.reader.class_to_idx}; generator classes: {names}")
    print(f"GAN step: {train_set.label_transform!r}")
    print(f"then timm's transform: {type(train_set.transform).__name__}")
    for step, (x, y) in enumerate(loader):
        if step == 2:
            break
        print(f"batch {step}: x {tuple(x.shape)} {x.dtype}, y {y.tolist()}")


if __name__ == "__main__":
    main()
