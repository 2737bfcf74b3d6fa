"""Teacher-guided synthetic data in a torchvision loop: MixedDataset, a Teacher, the Distiller.

A classifier trained on the real ImageFolder, wrapped as ``ganaug.Teacher``, is checked on real
items (one no better than chance is refused), then filters the generated images of a
``MixedDataset`` (+50 %; the 10 % it disagrees with most are dropped and redrawn). Items keep
int labels; ``return_mask=True`` yields ``(image, label, is_synthetic)``, and
``ganaug.Distiller`` gives every row the teacher's soft targets (T 4, half the hard label) and
the synthetic rows a loss weight of 0.3. The images stay in [0, 1] (what the teacher takes);
the student gets them normalised. Runs offline in about half a minute:

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

MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(CIFAR_MINI), help="an ImageFolder root")
    parser.add_argument("--model", help="generator .safetensors (default: tiny untrained)")
    parser.add_argument("--teacher-steps", type=int, default=60)
    parser.add_argument("--steps", type=int, default=5)
    args = parser.parse_args()
    torch.manual_seed(0)

    real = ImageFolder(args.data)  # (PIL RGB, int); no transform of its own
    path = model_path(args.model, real.classes, channels=3, size=32)
    train_tf = v2.Compose([v2.RandomCrop(32, padding=4), v2.RandomHorizontalFlip(), v2.ToImage(),
                           v2.ToDtype(torch.float32, scale=True)])  # [0, 1]: no Normalize here
    normalize = v2.Normalize(MEAN, STD)  # in the loop, for the models only

    # The teacher: in practice your classifier trained on the real data (a ganaug classifier
    # file: ganaug.Teacher(ganaug.evaluation.load_classifier(path)[0]), which states its input).
    model = timm.create_model("resnet10t", num_classes=len(real.classes),
                              channels=[16, 32, 64, 128], stem_width=8)
    real_loader = torch.utils.data.DataLoader(ganaug.with_labels(real, train_tf), batch_size=64,
                                              shuffle=True)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _, (x, y) in zip(range(args.teacher_steps), real_loader):
        loss = torch.nn.functional.cross_entropy(model(normalize(x)), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    teacher = ganaug.Teacher(model, expects="normalized", mean=MEAN, std=STD)

    # Checks the teacher on 512 real items, then filters the generated candidates with it.
    mixed = ganaug.MixedDataset(path, real, ratio=0.5, transform=train_tf, return_mask=True,
                                teacher=teacher)
    mixed.synthetic.generate()  # before the workers start: generated (and filtered) once
    loader = torch.utils.data.DataLoader(mixed, batch_size=128, shuffle=True, num_workers=2,
                                         generator=torch.Generator().manual_seed(0))
    distiller = ganaug.Distiller(teacher)
    student = timm.create_model("resnet10t", num_classes=len(real.classes))
    opt = torch.optim.AdamW(student.parameters(), lr=1e-3)
    for step, (x, y, synthetic) in zip(range(args.steps), loader):
        targets, weights = distiller(x, y, synthetic)  # (B, K) soft targets, (B,) weights
        loss = distiller.loss(student(normalize(x)), targets, weights)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        print(f"step {step}: loss {loss.item():.3f}, y {tuple(y.shape)} {y.dtype}, "
              f"{int(synthetic.sum())} synthetic of {len(x)}")
    print(f"{len(mixed)} items ({mixed.class_counts('synthetic')['cat']} synthetic cats); "
          f"teacher agreement {teacher.real_agreement:.2f} on {teacher.real_rows} real items, "
          f"acceptance of cats {mixed.synthetic.acceptance['cat']:.2f}")

if __name__ == "__main__":
    main()
