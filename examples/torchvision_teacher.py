"""Teacher-guided synthetic data in a torchvision loop: soft targets, a filter, a loss weight.

A classifier trained on the real ImageFolder (the teacher) relabels the generated images with
soft targets and drops the 10 % it disagrees with most (cGAN-KD); ``MixedDataset(...,
return_mask=True)`` yields ``(image, target, is_synthetic)``, so a batch carries the mask and
``ganaug.augment.weighted_loss`` weighs the synthetic rows x 0.1. Every target is a float
``(K,)`` row: soft for synthetic items, one-hot for real ones. Runs offline in seconds:

    python examples/torchvision_teacher.py [--data DIR] [--model generator.safetensors]
"""

from __future__ import annotations

import argparse

import timm
import torch
from _tiny_model import CIFAR_MINI, model_path
from torchvision.datasets import ImageFolder
from torchvision.transforms import v2

import ganaug
from ganaug.augment import weighted_loss

MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(CIFAR_MINI), help="an ImageFolder root")
    parser.add_argument("--model", help="generator .safetensors (default: tiny untrained)")
    parser.add_argument("--teacher-steps", type=int, default=10)
    parser.add_argument("--steps", type=int, default=5)
    args = parser.parse_args()
    torch.manual_seed(0)

    real = ImageFolder(args.data)  # (PIL RGB, int); no transform of its own
    path = model_path(args.model, real.classes, channels=3, size=32)
    train_tf = v2.Compose([v2.RandomCrop(32, padding=4), v2.RandomHorizontalFlip(), v2.ToImage(),
                           v2.ToDtype(torch.float32, scale=True), v2.Normalize(MEAN, STD)])

    # The teacher: in practice your classifier trained on the real data (a ganaug classifier
    # file: ganaug.evaluation.load_classifier(path)[0], which needs no teacher_input=).
    teacher = timm.create_model("resnet10t", num_classes=len(real.classes))
    real_loader = torch.utils.data.DataLoader(ganaug.with_labels(real, train_tf), batch_size=64,
                                              shuffle=True)
    opt = torch.optim.AdamW(teacher.parameters(), lr=1e-3)
    for _, (x, y) in zip(range(args.teacher_steps), real_loader):
        loss = torch.nn.functional.cross_entropy(teacher(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    # The teacher sees the generated images as the pipeline feeds it: normalised, stated here.
    mixed = ganaug.MixedDataset(real, path, ratio=0.5, transform=train_tf, return_mask=True,
                                teacher=teacher, teacher_input="normalized", teacher_mean=MEAN,
                                teacher_std=STD, drop_top=0.1)
    mixed.synthetic.generate()  # before the workers start: generated (and relabelled) once
    loader = torch.utils.data.DataLoader(mixed, batch_size=128, shuffle=True, num_workers=2,
                                         generator=torch.Generator().manual_seed(0))
    student = timm.create_model("resnet10t", num_classes=len(real.classes))
    opt = torch.optim.AdamW(student.parameters(), lr=1e-3)
    for step, (x, y, synthetic) in zip(range(args.steps), loader):
        loss = weighted_loss(student(x), y, synthetic, synthetic_weight=0.1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        print(f"step {step}: loss {loss.item():.3f}, y {tuple(y.shape)} {y.dtype}, "
              f"{int(synthetic.sum())} synthetic of {len(x)}")
    print(f"{len(mixed)} items ({mixed.class_counts('synthetic')['cat']} synthetic cats); "
          f"teacher acceptance {mixed.synthetic.acceptance['cat']:.2f}")


if __name__ == "__main__":
    main()
