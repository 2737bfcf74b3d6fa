"""ganaug's recommended recipe in a plain torchvision/timm training loop.

A teacher (a classifier trained on the real data) filters the generated images (the hardest
10 % dropped), relabels every row with ``0.5 * label + 0.5 * softmax(teacher / 4)``, and the
synthetic rows' loss is weighted x 0.3: the defaults of ``ganaug.Teacher`` and
``ganaug.Distiller``, the object ``ganaug experiment``'s ``+kd`` arms train through. The batch
stays in [0, 1] through the mixer and the distiller (the teacher takes uint8 or [0, 1] images)
and is normalised for the student only. Runs offline in well under a minute on one CPU thread:

    python examples/recipe_loop.py [--data DIR] [--model generator.safetensors]
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import timm
import torch
from _tiny_model import CIFAR_MINI, model_path
from torchvision.datasets import ImageFolder
from torchvision.transforms import v2

import ganaug

MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
TO_UNIT = [v2.ToImage(), v2.ToDtype(torch.float32, scale=True)]  # [0, 1] floats, no Normalize


class ColourClasses(torch.utils.data.Dataset):
    """Without cifar10-mini: 2,000 in-memory 32x32 images whose tint tells their class."""

    classes = [f"tint{k}" for k in range(10)]  # noqa: RUF012

    def __init__(self, transform):
        g = torch.Generator().manual_seed(0)
        self.targets = torch.arange(2000) % 10
        tint = torch.rand(10, 3, 1, 1, generator=g)
        noise = torch.rand(2000, 3, 32, 32, generator=g)
        self.images = ((0.5 * noise + 0.5 * tint[self.targets]) * 255).to(torch.uint8)
        self.transform = transform

    def __len__(self):
        return len(self.targets)

    def __getitem__(self, i):
        return self.transform(self.images[i]), int(self.targets[i])


def small_resnet(num_classes: int) -> torch.nn.Module:
    return timm.create_model("resnet10t", num_classes=num_classes, channels=[16, 32, 64, 128],
                             stem_width=8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(CIFAR_MINI), help="an ImageFolder root")
    parser.add_argument("--model", help="generator .safetensors (default: tiny untrained)")
    parser.add_argument("--teacher-steps", type=int, default=100)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    torch.manual_seed(0)

    tf = v2.Compose([v2.RandomCrop(32, padding=4), v2.RandomHorizontalFlip(), *TO_UNIT])
    train_set = (ImageFolder(args.data, transform=tf) if Path(args.data).is_dir()
                 else ColourClasses(tf))
    loader = torch.utils.data.DataLoader(train_set, batch_size=64, shuffle=True, drop_last=True)
    gen = ganaug.load(model_path(args.model, train_set.classes, channels=3, size=32))
    normalize = v2.Normalize(MEAN, STD)  # the student's (and the teacher's) input

    # The teacher: in practice your classifier trained on the real data. A few steps here, so
    # it is clearly better than chance (the mixer refuses one that is not).
    model = small_resnet(len(train_set.classes))
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    epochs = itertools.chain.from_iterable(itertools.repeat(loader))
    for x, y in itertools.islice(epochs, args.teacher_steps):
        loss = torch.nn.functional.cross_entropy(model(normalize(x)), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    # The recipe: T 4, label_weight 0.5, drop_hardest 0.1 (Teacher); synthetic x 0.3 (Distiller)
    teacher = ganaug.Teacher(model, expects="normalized", mean=MEAN, std=STD)
    mixer = ganaug.BatchMixer(gen, 0.25, classes=train_set.classes, teacher=teacher, seed=0)
    distiller = ganaug.Distiller(teacher)
    student = small_resnet(len(train_set.classes))
    opt = torch.optim.AdamW(student.parameters(), lr=3e-3)
    for step, (x, y) in zip(range(args.steps), loader):
        x, y = mixer(x, y)  # a quarter generated (the teacher's hardest 10 % left real)
        targets, weights = distiller(x, y, mixer.last_synthetic_mask)
        loss = distiller.loss(student(normalize(x)), targets, weights)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % 5 == 0:
            print(f"step {step}: loss {loss.item():.3f}, "
                  f"{int(mixer.last_synthetic_mask.sum())} synthetic of {len(x)}")
    report = mixer.teacher_report
    print(f"teacher: {report['real_agreement']:.2f} agreement on {report['real_rows']} real "
          f"rows; acceptance {({k: round(v, 2) for k, v in report['acceptance'].items()})}")


if __name__ == "__main__":
    main()
