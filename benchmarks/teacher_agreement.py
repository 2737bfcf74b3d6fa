"""How new are a generator's images to the teacher that relabels them?

For a generator and a ganaug classifier file (the teacher: in an experiment, the seed's
``cells/<regime>-s<seed>-real_aug.safetensors``), draw ``--n-per-class`` images per class and
print how often the teacher's top class is the class the generator was asked for, and its mean
top probability. Compare with the teacher's accuracy on real test images: synthetic images the
teacher finds easier than real ones add little it does not already know.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/teacher_agreement.py \
        runs/results/recipe_mnist10/gans/10-s0/generator.safetensors \
        runs/results/recipe_mnist10/cells/10-s0-real_aug.safetensors
"""

from __future__ import annotations

import argparse

import torch
from torch.utils.data import DataLoader

from ganaug.augment import SyntheticDataset
from ganaug.evaluation.classifier import load_classifier, predict_logits
from ganaug.evaluation.batches import collate_images
from ganaug.io import load


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("generator")
    p.add_argument("teacher")
    p.add_argument("--n-per-class", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    gen = load(args.generator)
    teacher = load_classifier(args.teacher)[0]
    synth = SyntheticDataset(gen, n_per_class=args.n_per_class, seed=args.seed).generate()
    batches = list(DataLoader(synth, batch_size=256, collate_fn=collate_images))
    images = torch.cat([x for x, _ in batches])
    labels = torch.cat([y for _, y in batches]).long()
    probs = predict_logits(teacher, images).softmax(1)
    agree = (probs.argmax(1) == labels).float()
    print(f"{len(labels)} synthetic images: the teacher agrees with the intended class on "
          f"{agree.mean():.3f}; mean top probability {probs.max(1).values.mean():.3f}")
    per_class = [f"{c} {agree[labels == k].mean():.2f}" for k, c in enumerate(gen.classes)]
    print("per class: " + ", ".join(per_class))


if __name__ == "__main__":
    main()
