"""A timm-style training loop with ganaug.BatchMixer before timm's Mixup.

Per batch, as in timm's train.py: move to the device, ``x, y = mixer(x, y)`` (a quarter of the
batch becomes generated samples of the same classes, in one generator pass on the device),
then ``x, y = mixup_fn(x, y)``, then the loss with soft targets. ``mixer.enabled`` switches it
off like ``mixup_fn.mixup_enabled``.

Teacher-guided (cGAN-KD style), the recipe ganaug recommends: a classifier trained on the real
data (here a few steps of the same network) relabels the generated samples with soft targets
and drops the 10 % it disagrees with most; the synthetic rows' loss is weighted x 0.1 with
``ganaug.augment.weighted_loss(logits, y, mixer.last_synthetic_mask)``. Its soft targets are
float ``(B, K)``, which timm's Mixup cannot take (it one-hot encodes int labels only), so this
mixer goes AFTER Mixup: the generated rows replace mixed ones and stay unmixed.
``--teacher-steps 0`` gives the plain mixer, before Mixup. Runs offline in seconds on the sklearn digits (16x16):

    python examples/timm_batchmixer.py [--model generator.safetensors] [--steps 10]
"""

from __future__ import annotations

import argparse

import timm
import torch
from _tiny_model import model_path
from timm.data import Mixup

import ganaug
from ganaug.augment import weighted_loss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="generator .safetensors (default: tiny untrained)")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--mixer-off-step", type=int, default=8)
    parser.add_argument("--teacher-steps", type=int, default=20,
                        help="steps of real-data training of the teacher (0: no teacher)")
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(0)

    data = ganaug.load_data("digits", size=16)
    path = model_path(args.model, data.classes, channels=1, size=16)
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(data.images.float() / 255, data.labels),  # [0, 1] floats
        batch_size=64, shuffle=True, drop_last=True)  # timm's Mixup needs an even batch
    teacher = None
    if args.teacher_steps:  # in practice: your classifier trained on the real data. A ganaug
        # classifier file: ganaug.evaluation.load_classifier(path)[0], without teacher_input=.
        teacher = timm.create_model("resnet10t", num_classes=10, in_chans=1).to(device)
        t_opt = torch.optim.AdamW(teacher.parameters(), lr=1e-3)
        for _, (x, y) in zip(range(args.teacher_steps), loader):
            loss = torch.nn.functional.cross_entropy(teacher((x.to(device) - 0.5) / 0.5),
                                                     y.to(device))
            t_opt.zero_grad(set_to_none=True)
            loss.backward()
            t_opt.step()
    classifier = timm.create_model("resnet10t", num_classes=10, in_chans=1).to(device)
    opt = torch.optim.AdamW(classifier.parameters(), lr=1e-3)

    # Generator on the training device; synthetic images normalised like the batch. The
    # teacher takes the batch's convention too: "normalized" with the mixer's mean/std.
    mixer = ganaug.BatchMixer(ganaug.load(path, device=device), fraction=0.25,
                              mean=[0.5], std=[0.5], num_classes=10, seed=0,
                              teacher=teacher, teacher_input="normalized", drop_top=0.1)
    mixup_fn = Mixup(mixup_alpha=0.2, cutmix_alpha=1.0, label_smoothing=0.1, num_classes=10)

    step = 0
    while step < args.steps:
        for x, y in loader:
            if step == args.steps:
                break
            if step == args.mixer_off_step:
                mixer.enabled = False  # like mixup_fn.mixup_enabled = False
            x, y = x.to(device), y.to(device)
            x = (x - 0.5) / 0.5  # the pipeline's Normalize
            if teacher is None:
                x, y = mixer(x, y)  # before Mixup; returns new tensors
                x, y = mixup_fn(x, y)  # soft targets (B, 10)
            else:
                x, y = mixup_fn(x, y)  # int labels in, soft targets (B, 10) out
                x, y = mixer(x, y)  # after Mixup: generated rows get the teacher's targets
            # Synthetic rows x 0.1 (without a teacher, after Mixup a row keeps the weight of
            # the row it started from); synthetic_weight=1 is timm's SoftTargetCrossEntropy.
            loss = weighted_loss(classifier(x), y, mixer.last_synthetic_mask,
                                 synthetic_weight=0.1)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            print(f"step {step}: loss {loss.item():.3f}, replaced "
                  f"{int(mixer.last_synthetic_mask.sum())} of {len(x)}")
            step += 1


if __name__ == "__main__":
    main()
