"""A timm-style training loop with ganaug.BatchMixer and timm's Mixup.

Per batch, as in timm's train.py: move to the device, ``x, y = mixer(x, y)`` (a quarter of the
batch becomes generated samples of the same classes, in one generator pass on the device),
then ``x, y = mixup_fn(x, y)``, then the loss with soft targets. ``mixer.enabled`` switches it
off like ``mixup_fn.mixup_enabled``.

Teacher-guided, the recipe ganaug recommends (``--teacher-steps``, default 60): a classifier
trained on the real data (here a few steps of the same network) wrapped as ``ganaug.Teacher``
drops the 10 % of generated candidates it disagrees with most, and ``ganaug.Distiller`` blends
its soft targets (T 4) half and half with every row's label and weighs the synthetic rows'
loss x 0.3. The mixer goes AFTER Mixup there, so its rows stay unmixed and
``mixer.last_synthetic_mask`` names them; the Distiller takes Mixup's ``(B, K)`` soft labels.
``--teacher-steps 0`` gives the plain mixer, before Mixup. The batch stays in [0, 1] (what the
teacher takes) and is normalised for the classifier only. Runs offline in seconds on the
sklearn digits (16x16):

    python examples/timm_batchmixer.py [--model generator.safetensors] [--steps 10]
"""

from __future__ import annotations

import argparse
import itertools

import timm
import torch
from _tiny_model import model_path
from timm.data import Mixup

import ganaug


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="generator .safetensors (default: tiny untrained)")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--mixer-off-step", type=int, default=8)
    parser.add_argument("--teacher-steps", type=int, default=60,
                        help="steps of real-data training of the teacher (0: no teacher)")
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(0)

    data = ganaug.load_data("digits", size=16)
    path = model_path(args.model, data.classes, channels=1, size=16)
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(data.images.float() / 255, data.labels),  # [0, 1] floats
        batch_size=64, shuffle=True, drop_last=True)  # timm's Mixup needs an even batch
    normalize = lambda x: (x - 0.5) / 0.5  # the pipeline's Normalize
    teacher = None
    if args.teacher_steps:  # in practice: your classifier trained on the real data. A ganaug
        # classifier file: ganaug.Teacher(ganaug.evaluation.load_classifier(path)[0]).
        model = timm.create_model("resnet10t", num_classes=10, in_chans=1,
                                  channels=[16, 32, 64, 128], stem_width=8).to(device)
        t_opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
        epochs = itertools.chain.from_iterable(itertools.repeat(loader))
        for x, y in itertools.islice(epochs, args.teacher_steps):
            loss = torch.nn.functional.cross_entropy(model(normalize(x.to(device))),
                                                     y.to(device))
            t_opt.zero_grad(set_to_none=True)
            loss.backward()
            t_opt.step()
        teacher = ganaug.Teacher(model, expects="normalized", mean=[0.5], std=[0.5])
        distiller = ganaug.Distiller(teacher)  # T 4, label weight 0.5, synthetic x 0.3
    classifier = timm.create_model("resnet10t", num_classes=10, in_chans=1).to(device)
    opt = torch.optim.AdamW(classifier.parameters(), lr=1e-3)

    # Generator on the training device; the batch is [0, 1] floats, so no mean=/std= here.
    mixer = ganaug.BatchMixer(ganaug.load(path, device=device), 0.25, classes=data.classes,
                              teacher=teacher, seed=0)
    mixup_fn = Mixup(mixup_alpha=0.2, cutmix_alpha=1.0, label_smoothing=0.1, num_classes=10)

    step = 0
    while step < args.steps:
        for x, y in loader:
            if step == args.steps:
                break
            if step == args.mixer_off_step:
                mixer.enabled = False  # like mixup_fn.mixup_enabled = False
            x, y = x.to(device), y.to(device)
            if teacher is None:
                x, y = mixer(x, y)  # before Mixup; returns new tensors
                x, y = mixup_fn(x, y)  # soft targets (B, 10)
                # synthetic_weight=1 is timm's SoftTargetCrossEntropy
                loss = ganaug.weighted_loss(classifier(normalize(x)), y,
                                            mixer.last_synthetic_mask, synthetic_weight=1.0)
            else:
                x, y = mixup_fn(x, y)  # int labels in, soft targets (B, 10) out
                x, y = mixer(x, y)  # after Mixup: the generated rows stay unmixed
                targets, weights = distiller(x, y, mixer.last_synthetic_mask)
                loss = distiller.loss(classifier(normalize(x)), targets, weights)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            print(f"step {step}: loss {loss.item():.3f}, replaced "
                  f"{int(mixer.last_synthetic_mask.sum())} of {len(x)}")
            step += 1


if __name__ == "__main__":
    main()
