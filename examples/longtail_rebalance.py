"""Long-tail rebalancing: top rare classes up with synthetic images (ganaug.MixedDataset).

Loads a long-tailed digits subset (imbalance 10: the head class has 10x the tail class), then
compares four ways to append synthetic data (and one to swap it in per access). Runs offline in seconds:

    python examples/longtail_rebalance.py [--model generator.safetensors]
"""

from __future__ import annotations

import argparse

import torch
from _tiny_model import model_path
from torchvision.transforms import v2

import ganaug


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="generator .safetensors (default: tiny untrained)")
    args = parser.parse_args()

    data = ganaug.load_data("digits", size=16, imbalance=10, seed=0)
    real = data.to_dataset()  # (PIL L, int) with .targets and .classes
    path = model_path(args.model, data.classes, channels=1, size=16)
    gen = ganaug.load(path)
    print("real           ", dict(zip(data.classes, data.class_counts(), strict=True)))

    variants = {
        "match_max": {"balance": "match_max"},                # every class up to the head count
        "uniform 0.3": {"balance": "uniform", "ratio": 0.3},  # 30% extra, rarest classes first
        "append 0.5": {"ratio": 0.5},                         # 50% extra, same class mix
        "dict": {"balance": {"8": 60, "9": 60}},              # explicit totals for two classes
    }
    for name, kwargs in variants.items():
        mixed = ganaug.MixedDataset(gen, real, seed=0, **kwargs)
        print(f"{name:15s}", mixed.class_counts(), f"synthetic {int(mixed.synthetic_mask.sum())}")

    train_set = ganaug.MixedDataset(gen, real, balance="match_max", seed=0,
                                    transform=v2.Compose([v2.ToImage(),
                                                          v2.ToDtype(torch.float32, scale=True)]))
    train_set.synthetic.generate()  # generate every synthetic image once, before the workers
    loader = torch.utils.data.DataLoader(train_set, batch_size=128, shuffle=True, num_workers=2,
                                         generator=torch.Generator().manual_seed(0))
    x, y = next(iter(loader))
    print(f"batch: x {tuple(x.shape)} {x.dtype}, labels per class {torch.bincount(y, minlength=10).tolist()}")

    # DA-Fusion-style alternative: same length, each access swaps in a synthetic image of its
    # class w.p. 0.3 (GANAugment inside with_labels, which reads the dataset's class names)
    swap = ganaug.with_labels(real, ganaug.GANAugment(gen, p=0.3, seed=0))
    torch.manual_seed(0)  # GANAugment draws its coin flip from torch's RNG, like every v2 transform
    first = [swap[i][0] for i in range(20)]
    changed = sum(img.tobytes() != real[i][0].tobytes() for i, img in enumerate(first))
    print(f"replace per access: {changed} of 20 accesses were synthetic (p=0.3)")

if __name__ == "__main__":
    main()
