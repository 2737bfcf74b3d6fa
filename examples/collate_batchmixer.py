"""ganaug.BatchMixer where torchvision puts CutMix/MixUp: in the DataLoader's collate_fn.

Each of the two workers collates its batch, then a ``v2.RandomChoice`` applies either the
BatchMixer (a quarter of the batch becomes generated samples of the same classes) or CutMix.
Every worker draws its own positions and noise; the seeded DataLoader makes the run
reproducible. Runs offline in seconds on the sklearn digits (16x16, grey):

    python examples/collate_batchmixer.py [--model generator.safetensors]
"""

from __future__ import annotations

import argparse

import torch
from _tiny_model import model_path
from torch.utils.data import DataLoader, default_collate
from torchvision.transforms import v2

import ganaug


class MixCollate:
    """collate_fn: default_collate, then one of the batch transforms (picklable, for spawn)."""

    def __init__(self, mixer: ganaug.BatchMixer, num_classes: int) -> None:
        self.num_classes = num_classes
        self.choice = v2.RandomChoice([mixer, v2.CutMix(num_classes=num_classes)])

    def __call__(self, samples):
        x, y = default_collate(samples)
        if y.ndim == 1:  # CutMix makes soft targets; keep one target format per batch
            y = torch.nn.functional.one_hot(y, self.num_classes).float()
        return self.choice(x, y)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="generator .safetensors (default: tiny untrained)")
    args = parser.parse_args()

    data = ganaug.load_data("digits", size=16)
    path = model_path(args.model, data.classes, channels=1, size=16)
    real = data.to_dataset(transform=v2.Compose([v2.ToImage(), v2.ToDtype(torch.float32, scale=True)]))
    # Batches are [0, 1] floats here (no Normalize); classes= (the dataset's names) maps each
    # label to the generator's class of the same name (required: never guessed by index).
    mixer = ganaug.BatchMixer(path, 0.25, classes=real.classes, seed=0)
    loader = DataLoader(real, batch_size=64, shuffle=True, num_workers=2,
                        collate_fn=MixCollate(mixer, num_classes=10),
                        generator=torch.Generator().manual_seed(0))
    for step, (x, y) in enumerate(loader):
        print(f"batch {step}: x {tuple(x.shape)} {x.dtype}, soft targets {tuple(y.shape)}, "
              f"row sums {float(y.sum(1).min()):.2f}..{float(y.sum(1).max()):.2f}")
        if step == 3:
            break


if __name__ == "__main__":
    main()
