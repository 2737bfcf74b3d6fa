"""Generator.sample: determinism, batching, truncation, outputs, label handling and errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ganaug.errors import GanaugConfigError
from ganaug.generator import Generator, to_uint8, truncated_normal


@pytest.fixture
def busy_generator(tiny_generator) -> Generator:
    """``tiny_generator`` with BN statistics that make its images vary visibly with z."""
    with torch.no_grad():
        for m in tiny_generator.net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_var.fill_(1e-3)  # amplify: untrained DCGAN outputs are near grey
    return tiny_generator


def test_same_seed_same_bytes_any_batch_size(tiny_generator):
    a = tiny_generator.sample(n_per_class=5, seed=7)
    b = tiny_generator.sample(n_per_class=5, seed=7, batch_size=1)
    c = tiny_generator.sample(n_per_class=5, seed=7, batch_size=4)
    assert a.shape == (15, 3, 16, 16) and a.dtype == torch.uint8
    assert a.numpy().tobytes() == b.numpy().tobytes() == c.numpy().tobytes()


def test_different_seeds_differ(busy_generator):
    a = busy_generator.sample(n_per_class=4, seed=0)
    b = busy_generator.sample(n_per_class=4, seed=1)
    assert not torch.equal(a, b)


def test_seed_none_uses_global_rng(busy_generator):
    torch.manual_seed(5)
    a = busy_generator.sample(n_per_class=2)
    torch.manual_seed(5)
    b = busy_generator.sample(n_per_class=2)
    c = busy_generator.sample(n_per_class=2)
    assert torch.equal(a, b)
    assert not torch.equal(b, c)


def test_labels_ints_names_tensor_numpy_agree(tiny_generator):
    ref, labels = tiny_generator.sample([2, 0, 1, 1], seed=3, return_labels=True)
    assert labels.tolist() == [2, 0, 1, 1] and labels.dtype == torch.int64
    for form in (["c", "a", "b", "b"], torch.tensor([2, 0, 1, 1]), np.array([2, 0, 1, 1]),
                 ["c", 0, "b", 1]):
        assert torch.equal(tiny_generator.sample(form, seed=3), ref)
    single = tiny_generator.sample("b", seed=9)
    assert single.shape == (1, 3, 16, 16)


def test_n_per_class_is_class_major(tiny_generator):
    _, labels = tiny_generator.sample(n_per_class=3, seed=0, return_labels=True)
    assert labels.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    _, labels = tiny_generator.sample(["c", "a"], n_per_class=2, seed=0, return_labels=True)
    assert labels.tolist() == [2, 2, 0, 0]


def test_outputs_float_and_pil_match_uint8(tiny_generator):
    u8 = tiny_generator.sample([0, 1], seed=2)
    fl = tiny_generator.sample([0, 1], seed=2, output="float")
    assert fl.dtype == torch.float32 and fl.min() >= 0 and fl.max() <= 1
    assert torch.equal((fl * 255).round().to(torch.uint8), u8)
    pil, labels = tiny_generator.sample([0, 1], seed=2, output="pil", return_labels=True)
    assert [im.size for im in pil] == [(16, 16), (16, 16)] and pil[0].mode == "RGB"
    assert np.array_equal(np.asarray(pil[1]), u8[1].permute(1, 2, 0).numpy())
    assert labels.tolist() == [0, 1]


def test_to_uint8_formula():
    x = torch.tensor([-1.0, -0.5, 0.0, 0.999, 1.0, 1.5, -3.0])
    assert to_uint8(x).tolist() == [0, 64, 128, 255, 255, 255, 0]


def test_empty_request(tiny_generator):
    out = tiny_generator.sample([], seed=0)
    assert out.shape == (0, 3, 16, 16) and out.dtype == torch.uint8


def test_training_mode_restored(tiny_generator):
    tiny_generator.train()
    tiny_generator.sample([0], seed=0)
    assert tiny_generator.training and tiny_generator.net.training


def test_truncation_changes_images_and_reduces_variance(busy_generator):
    full = busy_generator.sample(n_per_class=32, seed=0, output="float")
    trunc = busy_generator.sample(n_per_class=32, seed=0, truncation=0.3, output="float")
    assert not torch.equal(full, trunc)
    # variance across samples of the same class, averaged over pixels and classes
    var_full = full.view(3, 32, -1).var(dim=1).mean()
    var_trunc = trunc.view(3, 32, -1).var(dim=1).mean()
    assert var_trunc < 0.8 * var_full
    again = busy_generator.sample(n_per_class=32, seed=0, truncation=0.3, output="float")
    assert torch.equal(trunc, again)


def test_truncated_noise_distribution():
    gen = torch.Generator().manual_seed(0)
    z = truncated_normal(4000, 16, gen, truncation=0.5)
    assert z.abs().max() <= 0.5
    # variance of N(0, 1) truncated to [-t, t]: 1 - 2 t phi(t) / (2 Phi(t) - 1)
    t = torch.tensor(0.5, dtype=torch.float64)
    phi = torch.exp(-t**2 / 2) / np.sqrt(2 * np.pi)
    expected = 1 - 2 * t * phi / (2 * torch.special.ndtr(t) - 1)
    assert z.double().var().item() == pytest.approx(expected.item(), rel=0.03)
    # components already inside [-t, t] keep their value
    plain = torch.randn(4000, 16, generator=torch.Generator().manual_seed(0))
    inside = plain.abs() <= 0.5
    assert torch.equal(z[inside], plain[inside])


def test_tiny_truncation_does_not_hang():
    z = truncated_normal(256, 128, torch.Generator().manual_seed(0), truncation=1e-6)
    assert z.abs().max() <= 1e-6


@pytest.mark.parametrize("t", [0, -0.5, 1.5, float("nan"), "x", True])
def test_bad_truncation(tiny_generator, t):
    with pytest.raises(GanaugConfigError, match=r"truncation must be a finite number in \(0, 1\]"):
        tiny_generator.sample([0], seed=0, truncation=t)


def test_unknown_class_name_did_you_mean(tiny_generator):
    gen = Generator(tiny_generator.net, classes=["cat", "dog", "horse"])
    with pytest.raises(GanaugConfigError, match=r"Unknown class 'hrose'.*cat, dog, horse\. "
                                                r"Did you mean 'horse'\?"):
        gen.sample(["cat", "hrose"], seed=0)


@pytest.mark.parametrize("label", [3, -1])
def test_label_out_of_range(tiny_generator, label):
    with pytest.raises(GanaugConfigError, match=rf"Label {label} is out of range.*labels 0\.\.2"):
        tiny_generator.sample([0, label], seed=0)
    with pytest.raises(GanaugConfigError, match="out of range"):
        tiny_generator.sample(torch.tensor([label]), seed=0)


def test_float_labels_refused(tiny_generator):
    with pytest.raises(GanaugConfigError, match=r"1-D integer tensor, got \(2,\) torch.float32"):
        tiny_generator.sample(torch.tensor([0.0, 1.0]), seed=0)
    with pytest.raises(GanaugConfigError, match=r"1-D integer tensor, got \(1, 2\)"):
        tiny_generator.sample(torch.tensor([[0, 1]]), seed=0)
    with pytest.raises(GanaugConfigError, match=r"must be an int or a class name, got 1\.0"):
        tiny_generator.sample([1.0], seed=0)
    with pytest.raises(GanaugConfigError, match="must be an int or a class name, got True"):
        tiny_generator.sample([True], seed=0)


def test_other_argument_errors(tiny_generator):
    with pytest.raises(GanaugConfigError, match="Pass labels=... or n_per_class=..."):
        tiny_generator.sample(seed=0)
    with pytest.raises(GanaugConfigError, match="n_per_class must be an integer >= 1, got 0"):
        tiny_generator.sample(n_per_class=0)
    with pytest.raises(GanaugConfigError, match=r"output must be one of .*, got 'unit8'.*Did you mean 'uint8'"):
        tiny_generator.sample([0], output="unit8")
    with pytest.raises(GanaugConfigError, match="batch_size must be an integer >= 1, got 0"):
        tiny_generator.sample([0], batch_size=0)
    with pytest.raises(GanaugConfigError, match=r"z must be \(N, 16\)"):
        tiny_generator.generate(torch.zeros(2, 8), torch.tensor([0, 1]))


def test_class_count_mismatch(tiny_net):
    with pytest.raises(GanaugConfigError, match="2 class names given for a generator of 3"):
        Generator(tiny_net, classes=["a", "b"])


def test_generate_matches_sample(tiny_generator):
    z = tiny_generator.noise(6, seed=4, truncation=0.8)
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    assert torch.equal(tiny_generator.generate(z, labels, batch_size=4),
                       tiny_generator.sample(labels, seed=4, truncation=0.8))


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_sampling_deterministic(tiny_generator):
    a = tiny_generator.sample(n_per_class=4, seed=0, device="cuda")
    b = tiny_generator.sample(n_per_class=4, seed=0, device="cuda", batch_size=3)
    assert a.device.type == "cuda" and torch.equal(a, b)
    cpu = tiny_generator.sample(n_per_class=4, seed=0, device="cpu")
    assert (a.cpu().int() - cpu.int()).abs().max() <= 1
    assert tiny_generator.device.type == "cpu"  # it ran a copy; the generator did not move


# -- sampling on another device never moves the generator -------------------------------------
def _params(gen):
    return [(p, p.data_ptr(), p.device) for p in gen.parameters()]


def test_sampling_on_another_device_leaves_the_generator_where_it_is(tiny_generator):
    before = _params(tiny_generator)
    on_cpu = tiny_generator.sample(n_per_class=2, seed=3)
    meta = tiny_generator.sample(n_per_class=2, seed=3, device="meta")
    assert meta.is_meta and meta.shape == on_cpu.shape and meta.dtype == torch.uint8
    after = _params(tiny_generator)
    assert all(a[0] is b[0] and a[1:] == b[1:] for a, b in zip(before, after, strict=True))
    assert tiny_generator.device == torch.device("cpu")
    assert torch.equal(tiny_generator.sample(n_per_class=2, seed=3, device="cpu"), on_cpu)
    images, labels = tiny_generator.sample([0, 2], seed=1, device="meta", return_labels=True)
    assert images.is_meta and labels.is_meta


def test_the_device_copy_is_reused_until_the_weights_change(tiny_generator):
    def copy_used():
        return tiny_generator._device_copy[2]

    tiny_generator.sample([0], seed=0, device="meta")
    first = copy_used()
    assert first is not tiny_generator.net and next(first.parameters()).is_meta
    tiny_generator.sample([1], seed=0, device="meta")
    assert copy_used() is first  # the second call reuses the copy
    with torch.no_grad():  # an EMA or optimiser step changes the weights in place
        next(tiny_generator.parameters()).add_(1.0)
    tiny_generator.sample([0], seed=0, device="meta")
    assert copy_used() is not first
    second = copy_used()
    tiny_generator.sample([0], seed=0)  # on its own device: the network itself runs
    assert copy_used() is second
    tiny_generator.to("cpu")
    assert tiny_generator._device_copy is None


def test_device_copy_is_not_pickled(tiny_generator):
    import pickle

    tiny_generator.sample([0], seed=0, device="meta")
    assert tiny_generator._device_copy is not None
    clone = pickle.loads(pickle.dumps(tiny_generator))
    assert clone._device_copy is None
    assert torch.equal(clone.sample([0, 1], seed=5), tiny_generator.sample([0, 1], seed=5))


def test_sampling_device_auto_and_bad_devices(tiny_generator):
    from ganaug._devices import best_device

    auto = tiny_generator.sample([0], seed=0, device="auto")
    assert auto.device == best_device()
    with pytest.raises(GanaugConfigError, match="Unknown device 'gpu0'"):
        tiny_generator.sample([0], seed=0, device="gpu0")


def test_check_truncation_is_the_shared_rule():
    from ganaug import _checks, generator

    assert generator.check_truncation is _checks.check_truncation


@pytest.mark.parametrize("n,match", [(-1, r"n must be an integer >= 0, got -1"),
                                     (2.5, r"n must be an integer >= 0, got 2\.5"),
                                     (True, r"n must be an integer >= 0, got True")])
def test_noise_refuses_a_bad_count(tiny_generator, n, match):
    # torch raised "negative dimension" or a randn() argument TypeError
    with pytest.raises(GanaugConfigError, match=match):
        tiny_generator.noise(n, seed=0)


@pytest.mark.parametrize("labels,match", [
    (torch.tensor([0, 5]), r"labels must be class indices in 0\.\.2, got 0\.\.5"),  # IndexError
    (torch.tensor([-1, 0]), r"labels must be class indices in 0\.\.2, got -1\.\.0"),
    (torch.tensor([0.0, 1.0]), r"labels must be a 1-D integer tensor of class indices, got \(2,\) torch\.float32"),
    ([0, 1], r"labels must be a 1-D integer tensor of class indices, got list"),  # AttributeError
    (torch.tensor([True, False]), r"labels must be a 1-D integer tensor of class indices, got \(2,\) torch\.bool"),
])
def test_generate_refuses_labels_out_of_range_or_not_integers(tiny_generator, labels, match):
    with pytest.raises(GanaugConfigError, match=match):
        tiny_generator.generate(torch.zeros(2, 16), labels)


def test_class_index_of_a_float_tensor_is_refused(tiny_generator):
    # a TypeError from torch: "only integer tensors of a single element can be converted"
    with pytest.raises(GanaugConfigError, match=r"A label must be an int or a class name"):
        tiny_generator.class_index(torch.tensor(1.0))
    assert tiny_generator.class_index(torch.tensor(2)) == 2


# -- requests larger than memory are refused before anything is allocated ---------------------
@pytest.fixture
def one_mb_free(monkeypatch):
    """Pretend 1 MB of memory is available (the shared estimate of ganaug._imaging)."""
    monkeypatch.setattr("ganaug._imaging.available_memory", lambda: 10**6)


@pytest.mark.parametrize("call,match", [
    # raw allocator RuntimeErrors ("you tried to allocate 24000000000000 bytes") before
    (lambda g: g.sample(n_per_class=10**12), (r"n_per_class=1,000,000,000,000 x 3 class\(es\): "
     r"3,000,000,000,000 generated images of 3x16x16 \(uint8\) need about 4\.8 PB of memory, "
     r"but 1\.0 MB is available\. Use n_per_class <= 207,")),
    (lambda g: g.sample(n_per_class=1000, output="float"), r"float.*Use n_per_class <= 53,"),
    (lambda g: g.sample([0] * 1000), r"1,000 generated images .*Draw at most 621 images"),
    (lambda g: g.resolve_labels(n_per_class=10**12), (r"3,000,000,000,000 labels: 24\.0 TB.*"
                                                     r"Use n_per_class <= 41,666\.")),
    (lambda g: g.noise(10**12), (r"noise\(n=1,000,000,000,000\) needs about 64\.0 TB.*"
                                r"Use n <= 15,625, in parts")),
    (lambda g: g.generate(torch.zeros(1, 16).expand(10**12, 16),
                          torch.zeros(1, dtype=torch.long).expand(10**12)),
     r"1,000,000,000,000 generated images .*Draw at most 621 images per call"),
])
def test_more_images_than_memory_holds_are_refused_up_front(tiny_generator, one_mb_free, call,
                                                             match):
    with pytest.raises(GanaugConfigError, match=match):
        call(tiny_generator)


def test_what_fits_is_still_drawn(tiny_generator, one_mb_free):
    assert tiny_generator.sample(n_per_class=200, seed=0).shape == (600, 3, 16, 16)


def test_a_forward_pass_out_of_memory_names_batch_size(tiny_generator, monkeypatch):
    def oom(*args):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:127] DefaultCPUAllocator: can't "
                           "allocate memory: you tried to allocate 10 bytes")
    monkeypatch.setattr(tiny_generator.net, "forward", oom)
    with pytest.raises(GanaugConfigError, match=r"One forward pass of 8 images \(batch_size=8\) "
                                                r"ran out of memory on cpu\. Use a smaller "
                                                r"batch_size, e\.g\. 2"):
        tiny_generator.sample([0] * 8, batch_size=8)
    monkeypatch.setattr(tiny_generator.net, "forward", lambda *a: 1 / 0)
    with pytest.raises(ZeroDivisionError):  # other errors are not disguised
        tiny_generator.sample([0])


# -- labels must be ordered ---------------------------------------------------------------------
@pytest.mark.parametrize("labels,kind", [({1, 2}, r"a set \(unordered\)"),
                                         (frozenset({0}), r"a set \(unordered\)"),
                                         ({"a": 1}, r"a mapping \(only its keys"),
                                         (b"\x00\x01", "bytes"), (2.0, "a float, not a sequence")])
def test_unordered_or_mapping_labels_are_refused(tiny_generator, labels, kind):
    # a set drew its classes in hash order; a dict silently used its keys; bytes their values
    from ganaug.errors import GanaugTypeError

    for call in (tiny_generator.sample, tiny_generator.resolve_labels):
        with pytest.raises(GanaugTypeError, match=r"labels must be an ordered sequence of "
                                                  rf"labels .*got {kind}"):
            call(labels)
    with pytest.raises(TypeError):
        tiny_generator.sample(labels, n_per_class=2)


def test_a_one_pass_iterator_of_labels_is_drawn_once(tiny_generator):
    images, labels = tiny_generator.sample(iter([2, 0]), seed=0, return_labels=True)
    assert labels.tolist() == [2, 0] and len(images) == 2
    torch.testing.assert_close(images, tiny_generator.sample([2, 0], seed=0))
