"""The margins behind ``ganaug.evaluation.leakage.NEAR_RMS``: for each set, the training images'
own spacing, the distance from each real test image to its nearest training image (distinct
images), and from JPEG re-encodings of 200 training images to their nearest training image
(copies), all as ``near_copies`` measures them (luma, at most 32x32, RMS grey levels):

    OMP_NUM_THREADS=1 python benchmarks/near_copy_margins.py [CIFAR10_MINI_DIR]
"""

from __future__ import annotations

import io
import sys

import numpy as np
import torch
from PIL import Image

from ganaug.data import load_data
from ganaug.evaluation import leakage as lk


def jpeg(images: torch.Tensor, quality: int) -> torch.Tensor:
    out = []
    for x in images:
        arr = x.permute(1, 2, 0).numpy()
        buf = io.BytesIO()
        Image.fromarray(arr[..., 0] if arr.shape[2] == 1 else arr).save(buf, "JPEG",
                                                                          quality=quality)
        a = np.asarray(Image.open(io.BytesIO(buf.getvalue())))
        out.append(torch.from_numpy((a[..., None] if a.ndim == 2 else a).copy()).permute(2, 0, 1))
    return torch.stack(out)


def main() -> None:
    torch.set_num_threads(1)
    cifar = sys.argv[1] if len(sys.argv) > 1 else "../shared/data/cifar10-mini"
    sets = [(f"folder:{cifar}/train", f"folder:{cifar}/test"),
            ("mnist5k?split=train", "mnist5k?split=test"), ("digits?split=train", "digits?split=test")]
    for train_spec, test_spec in sets:
        train = load_data(train_spec)
        test = load_data(test_spec, size=train.image_size, channels=train.channels)
        sigs = lk._signatures(train.images)
        k = torch.randperm(len(train), generator=torch.Generator().manual_seed(0))[:200]
        spacing = float(lk._nearest_ms(sigs[k], sigs, exclude=k).median().sqrt())
        distinct = lk._nearest_ms(lk._signatures(test.images), sigs).sqrt()
        line = (f"{train_spec}: spacing {spacing:.2f}, tolerance "
                f"{max(min(lk.NEAR_RMS, lk.NEAR_SHARE * spacing), 0.5):.2f}; nearest distinct "
                f"test image {float(distinct.min()):.2f}")
        for q in (95, 75, 50):
            copies = lk._nearest_ms(lk._signatures(jpeg(train.images[:200], q)), sigs).sqrt()
            line += f"; JPEG q{q} copies up to {float(copies.max()):.2f}"
        print(line)


if __name__ == "__main__":
    main()
