"""Test images that are copies of training images: exact, or re-encoded (near copies)."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from conftest import CIFAR_MINI
from PIL import Image

from ganaug.data import LabeledImages, load_data
from ganaug.errors import GanaugDataError
from ganaug.evaluation.leakage import check_unseen, near_copies, shared_images


def _jpeg(images: torch.Tensor, quality: int) -> torch.Tensor:
    out = []
    for x in images:
        buf = io.BytesIO()
        arr = x.permute(1, 2, 0).numpy()
        Image.fromarray(arr[..., 0] if arr.shape[2] == 1 else arr).save(buf, "JPEG",
                                                                          quality=quality)
        a = np.asarray(Image.open(io.BytesIO(buf.getvalue())))
        out.append(torch.from_numpy((a[..., None] if a.ndim == 2 else a).copy()).permute(2, 0, 1))
    return torch.stack(out)


def _set(images, spec=""):
    return LabeledImages(images, torch.zeros(len(images), dtype=torch.long), ["a"], "test", spec)


@pytest.fixture(scope="module")
def cifar_split():
    root = CIFAR_MINI
    if not root.is_dir():
        pytest.skip(f"{root} is not present")
    train = load_data(f"folder:{root}/train")
    test = load_data(f"folder:{root}/test", size=train.image_size, channels=train.channels)
    return train, test


@pytest.mark.parametrize("quality", [95, 90])
def test_re_encoded_copies_of_training_images_are_refused(cifar_split, quality):
    # A test folder of JPEG re-encodings of training images passed the pixel-for-pixel check:
    # every accuracy measured on it was a training accuracy.
    train, test = cifar_split
    copies = _jpeg(train.images[:200], quality)
    assert shared_images(train.images, copies) < 20  # the exact check misses most of them
    mixed = torch.cat([test.images[:800], copies])  # 20 % near copies
    near, checked = near_copies(train.images, mixed)
    assert checked == len(mixed) and near >= 190
    with pytest.raises(GanaugDataError, match=r"of the 1,000 test images are also training "
                                              r"images.*re-encoded"):
        check_unseen(train, _set(mixed, "folder:test"))


def test_distinct_real_images_are_not_near_copies(cifar_split):
    train, test = cifar_split
    assert near_copies(train.images, test.images) == (0, len(test))
    check_unseen(train, test)
    mnist_train, mnist_test = load_data("mnist5k?split=train"), load_data("mnist5k?split=test")
    assert near_copies(mnist_train.images, mnist_test.images)[0] == 0


def test_near_copies_scale_with_how_alike_the_training_images_are():
    # Images that all differ by little (flat shades 4 apart) are distinct, not copies: the
    # tolerance is a fraction of the pool's own nearest-neighbour distance.
    shades = torch.arange(0, 200, 4, dtype=torch.uint8)
    pool = shades.view(-1, 1, 1, 1).expand(-1, 3, 16, 16).contiguous()
    between = (shades[:-1] + 2).view(-1, 1, 1, 1).expand(-1, 3, 16, 16).contiguous()
    assert near_copies(pool, between)[0] == 0
    assert near_copies(pool, pool.clone())[0] == len(pool)


def test_near_copies_of_a_large_pool_check_a_seeded_sample():
    g = torch.Generator().manual_seed(0)
    pool = torch.randint(0, 256, (3000, 1, 28, 28), generator=g, dtype=torch.uint8)
    test = pool[:2000].clone()
    near, checked = near_copies(pool, test, budget=3000 * 784 * 500)
    assert checked == 500 and near == 500
    assert near_copies(pool, test, budget=3000 * 784 * 500) == (near, checked)


def test_large_images_are_compared_in_slices_of_bounded_memory():
    from ganaug.evaluation.leakage import _chunk, _signatures

    big = torch.zeros(1, 3, 224, 224, dtype=torch.uint8)
    assert _chunk(big) * 3 * 224 * 224 * 4 <= 2**27  # about 128 MB of floats per slice
    pool = torch.randint(0, 256, (300, 3, 224, 224), dtype=torch.uint8,
                         generator=torch.Generator().manual_seed(0))
    assert _signatures(pool).shape == (300, 32 * 32)
    assert near_copies(pool, pool[:5].clone()) == (5, 5)
