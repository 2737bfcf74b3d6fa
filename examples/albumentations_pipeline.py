"""ganaug.albumentations.GANAugment in an albumentations pipeline, with DataLoader workers.

The label travels as a keyword target: ``aug(image=img, label=y)``. The transform is saved and
loaded as JSON (it stores the model path, not the weights). Runs offline in seconds on the
sklearn digits (16x16 grey):

    python examples/albumentations_pipeline.py [--model generator.safetensors]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import albumentations as A
import numpy as np
import torch
from _tiny_model import model_path
from albumentations.pytorch import ToTensorV2

import ganaug
import ganaug.albumentations as GA  # import before A.load: it registers the class


class AlbuDataset(torch.utils.data.Dataset):
    """(H, W, C) uint8 arrays + int labels through an albumentations pipeline."""

    def __init__(self, images: np.ndarray, labels: list[int], aug: A.Compose):
        self.images, self.labels, self.aug = images, labels, aug

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        out = self.aug(image=self.images[i], label=self.labels[i])
        return out["image"], out["label"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="generator .safetensors (default: tiny untrained)")
    args = parser.parse_args()

    data = ganaug.load_data("digits", size=16)
    path = model_path(args.model, data.classes, channels=1, size=16)
    aug = A.Compose([
        # first (before A.Normalize); classes= (the dataset's names in label order) maps each
        # int label to the generator's class of the same name; without it an int is refused
        GA.GANAugment(path, p=0.5, classes=list(data.classes)),
        A.Affine(translate_px=(-2, 2), p=0.5),
        A.Normalize(mean=0.5, std=0.5),
        ToTensorV2(),
    ], seed=0)
    saved = Path(tempfile.mkdtemp()) / "aug.json"
    A.save(aug, str(saved))
    aug = A.load(str(saved))  # same pipeline, model path included
    print(f"pipeline saved to and loaded from {saved}")

    images = data.images.permute(0, 2, 3, 1).numpy()  # (N, H, W, 1) uint8
    ds = AlbuDataset(images, data.labels.tolist(), aug)
    loader = torch.utils.data.DataLoader(ds, batch_size=64, shuffle=True, num_workers=2,
                                         generator=torch.Generator().manual_seed(0))
    for step, (x, y) in enumerate(loader):
        if step == 3:
            break
        print(f"batch {step}: x {tuple(x.shape)} {x.dtype} range [{x.min():.2f}, {x.max():.2f}], "
              f"y {y[:8].tolist()}...")


if __name__ == "__main__":
    main()
