"""A timm-style training loop with ganaug.BatchMixer before timm's Mixup.

Per batch, as in timm's train.py: move to the device, ``x, y = mixer(x, y)`` (a quarter of the
batch becomes generated samples of the same classes, in one generator pass on the device),
then ``x, y = mixup_fn(x, y)``, then the loss with soft targets. ``mixer.enabled`` switches it
off like ``mixup_fn.mixup_enabled``. Runs offline in seconds on the sklearn digits (16x16):

    python examples/timm_batchmixer.py [--model generator.safetensors] [--steps 10]
"""

from __future__ import annotations

import argparse

import timm
import torch
from _tiny_model import model_path
from timm.data import Mixup
from timm.loss import SoftTargetCrossEntropy

import ganaug


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="generator .safetensors (default: tiny untrained)")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--mixer-off-step", type=int, default=8)
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(0)

    data = ganaug.load_data("digits", size=16)
    path = model_path(args.model, data.classes, channels=1, size=16)
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(data.images.float() / 255, data.labels),  # [0, 1] floats
        batch_size=64, shuffle=True, drop_last=True)  # timm's Mixup needs an even batch
    classifier = timm.create_model("resnet10t", num_classes=10, in_chans=1).to(device)
    opt = torch.optim.AdamW(classifier.parameters(), lr=1e-3)

    # Generator on the training device; synthetic images normalised like the batch.
    mixer = ganaug.BatchMixer(ganaug.load(path, device=device), fraction=0.25,
                              mean=[0.5], std=[0.5], num_classes=10, seed=0)
    mixup_fn = Mixup(mixup_alpha=0.2, cutmix_alpha=1.0, label_smoothing=0.1, num_classes=10)
    loss_fn = SoftTargetCrossEntropy()

    step = 0
    while step < args.steps:
        for x, y in loader:
            if step == args.steps:
                break
            if step == args.mixer_off_step:
                mixer.enabled = False  # like mixup_fn.mixup_enabled = False
            x, y = x.to(device), y.to(device)
            x = (x - 0.5) / 0.5  # the pipeline's Normalize
            x, y = mixer(x, y)  # before Mixup; returns new tensors
            x, y = mixup_fn(x, y)  # soft targets (B, 10)
            loss = loss_fn(classifier(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            print(f"step {step}: loss {loss.item():.3f}, replaced "
                  f"{len(mixer.last_indices)} of {len(x)}")
            step += 1


if __name__ == "__main__":
    main()
