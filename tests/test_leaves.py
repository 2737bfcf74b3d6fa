"""The private leaf modules: argument checks, seeding, devices and image kernels."""

import numpy as np
import pytest
import torch

from ganaug import GanaugConfigError, GanaugDataError
from ganaug._checks import check_float, check_int, check_probability, check_seed, check_truncation
from ganaug._devices import resolve_device
from ganaug._imaging import fit_images, normalize, to_float01
from ganaug._seeding import derive_seed, image_seed


def test_check_int_accepts_numpy_and_refuses_bools_and_range():
    assert check_int("n", np.int64(4)) == 4
    with pytest.raises(GanaugConfigError, match=r"n must be an integer >= 1, got True"):
        check_int("n", True)
    with pytest.raises(GanaugConfigError, match=r"from 0 to 5, got 6"):
        check_int("k", 6, minimum=0, maximum=5)


def test_check_float_and_probability_and_truncation():
    assert check_float("x", np.float32(0.5)) == 0.5
    assert check_probability("p", 1) == 1.0
    with pytest.raises(GanaugConfigError, match=r"p must be a finite number in \[0, 1\]"):
        check_probability("p", 1.5)
    with pytest.raises(GanaugConfigError, match="finite"):
        check_float("x", float("nan"))
    assert check_truncation(1.0) == 1.0
    for bad in (0, 1.5, -0.1, True, "x"):
        with pytest.raises(GanaugConfigError, match=r"truncation must be a finite number in \(0, 1\]"):
            check_truncation(bad)


@pytest.mark.parametrize("text", ["0.5", "1_000", "\u0661", b"1", "nan"])
def test_check_float_refuses_numbers_as_text(text):
    # fraction="0.5", p="0.5" were accepted: in the API a string for a number is a type error
    from ganaug.errors import GanaugTypeError

    with pytest.raises(GanaugTypeError, match=rf"p must be a finite number in \[0, 1\], got the "
                                              rf"{type(text).__name__} .*not its text"):
        check_probability("p", text)
    with pytest.raises(GanaugDataError, match="not its text"):  # the caller's error class
        check_float("x", text, error=GanaugDataError)
    for check_text in (check_int, check_seed):  # integer checks never took text
        with pytest.raises(GanaugConfigError, match="must be an integer"):
            check_text("n", text)


def test_check_seed():
    assert check_seed("seed", None, allow_none=True) is None
    with pytest.raises(GanaugConfigError, match="seed must be an integer from 0"):
        check_seed("seed", -1)


def test_seeds_are_stable_and_distinct():
    assert derive_seed(1, 2) == derive_seed(1, 2) != derive_seed(2, 1)
    assert 0 <= derive_seed(5) < 2**63
    # image_seed fixes the bytes of exported images: its layout must never change.
    assert image_seed(0, 0, 0) == int(np.random.SeedSequence([0, 0, 0]).generate_state(1, np.uint64)[0])


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(None) == resolve_device("auto")
    with pytest.raises(GanaugConfigError, match="Unknown device 'gpu0'"):
        resolve_device("gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(GanaugConfigError, match="no CUDA GPU"):
            resolve_device("cuda")


def test_fit_images_channels_and_size():
    x = torch.arange(2 * 3 * 4 * 4, dtype=torch.uint8).reshape(2, 3, 4, 4)
    assert fit_images(x) is x
    grey = fit_images(x, channels=1)
    assert grey.shape == (2, 1, 4, 4) and grey.dtype == torch.uint8
    rgb = fit_images(grey[0], channels=3, size=(8, 6))
    assert rgb.shape == (3, 8, 6)
    torch.testing.assert_close(rgb[0], rgb[2])
    with pytest.raises(GanaugDataError, match="Cannot convert 2-channel"):
        fit_images(torch.zeros(2, 4, 4), channels=3)


def test_to_float01_and_normalize():
    x = torch.full((1, 3, 2, 2), 255, dtype=torch.uint8)
    torch.testing.assert_close(to_float01(x), torch.ones(1, 3, 2, 2))
    out = normalize(torch.ones(3, 2, 2), [0.5, 0.5, 0.0], [0.5, 0.25, 1.0])
    torch.testing.assert_close(out[:, 0, 0], torch.tensor([1.0, 2.0, 1.0]))


def test_memory_figures_come_from_psutil():
    import psutil

    from ganaug._imaging import available_memory
    from ganaug._timing import rss_mb

    rss = psutil.Process().memory_info().rss / 2**20
    assert rss_mb() == pytest.approx(rss, rel=0.2)
    assert 0 < available_memory() <= psutil.virtual_memory().total
