"""ganaug.BatchMixer after timm's prefetcher (create_loader(use_prefetcher=True)).

The prefetcher normalises on the device with its own mean/std (kept on the 0-255 scale);
``BatchMixer.for_loader`` takes them, and the class names of timm's folder reader (which sorts
``c1, c2, ..., c10`` naturally, unlike the generator's plain ``c1, c10, c2, ...``), so every
synthetic sample is of its label's class. Runs offline in seconds on the sklearn digits, written
to a temporary folder with classes named c1..c10:

    python examples/timm_prefetcher.py [--model generator.safetensors]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch
from _tiny_model import model_path
from timm.data import create_dataset, create_loader

import ganaug


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="generator .safetensors, classes c1..c10 (default: tiny)")
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")

    data = ganaug.load_data("digits", size=16)
    root = Path(tempfile.mkdtemp(prefix="ganaug-timm-"))
    names = [f"c{int(c) + 1}" for c in data.classes]  # c1..c10
    real = data.to_dataset()
    for i in range(0, len(real), 5):
        img, label = real[i]
        (root / names[label]).mkdir(exist_ok=True)
        img.convert("RGB").save(root / names[label] / f"{i}.png")
    path = model_path(args.model, sorted(names), channels=3, size=16)  # plain sort, as ganaug

    dataset = create_dataset("", root=str(root))  # timm's reader: c1, c2, ..., c10
    loader = create_loader(dataset, input_size=(3, 16, 16), batch_size=32, is_training=True,
                           use_prefetcher=True, device=device, scale=(0.8, 1.0))
    mixer = ganaug.BatchMixer.for_loader(ganaug.load(path, device=device), loader, 0.25, seed=0)
    print("timm's labels:", dataset.reader.class_to_idx)
    for step, (x, y) in enumerate(loader):  # normalised floats on the device
        x, y = mixer(x, y)
        print(f"batch {step}: x {tuple(x.shape)} in [{float(x.min()):.2f}, {float(x.max()):.2f}], "
              f"replaced {len(mixer.last_indices)}")
        if step == 2:
            break


if __name__ == "__main__":
    main()
