"""GeneratorSource (lazy, pickles as a path) and SampleBank (batched refills, per-process seeds)."""

from __future__ import annotations

import pickle

import pytest
import torch

from ganaug._seeding import WorkerStream, derive_seed, worker_stream_seed
from ganaug.augment import GeneratorSource, SampleBank, SyntheticDataset
from ganaug.errors import GanaugConfigError, GanaugModelError


def _weights_bytes(generator) -> int:
    return sum(t.numel() * 4 for t in generator.state_dict().values())


# -- GeneratorSource -------------------------------------------------------------------------
def test_source_path_reads_classes_from_the_header_and_loads_lazily(tiny_model_path,
                                                                      tiny_generator):
    source = GeneratorSource(tiny_model_path)
    assert source.path == str(tiny_model_path) and not source.loaded
    assert source.classes == ["a", "b", "c"] and source.num_classes == 3
    assert not source.loaded  # the class names came from the header
    assert source.class_index("c") == 2
    gen = source.generator
    assert source.loaded and gen.device == torch.device("cpu")
    torch.testing.assert_close(gen.net.state_dict(), tiny_generator.net.state_dict())
    assert source.generator is gen  # loaded once per process


def test_source_pickles_as_the_path(tiny_model_path, tiny_generator):
    source = GeneratorSource(tiny_model_path)
    source.generator  # noqa: B018 - load it in this process
    blob = pickle.dumps(source)
    assert len(blob) < _weights_bytes(tiny_generator) / 4
    restored = pickle.loads(blob)
    assert restored.path == source.path and not restored.loaded
    assert restored.classes == ["a", "b", "c"] and restored.generator.num_classes == 3


def test_source_keeps_a_generator_and_copies_it_only_to_another_device(tiny_generator):
    assert GeneratorSource(tiny_generator).generator is tiny_generator
    assert GeneratorSource(tiny_generator, device="cpu").generator is tiny_generator
    wrapped = GeneratorSource(tiny_generator.net)  # a bare registered network
    assert wrapped.generator.net is tiny_generator.net and wrapped.classes == ["0", "1", "2"]
    assert GeneratorSource(GeneratorSource(tiny_generator)).generator is tiny_generator
    if torch.cuda.is_available():
        moved = GeneratorSource(tiny_generator, device="cuda").generator
        assert moved.device.type == "cuda" and tiny_generator.device.type == "cpu"


def test_source_errors(tmp_path):
    with pytest.raises(GanaugConfigError, match=r"Expected a ganaug.Generator or a model file "
                                                r"path, got int"):
        GeneratorSource(3)
    with pytest.raises(GanaugModelError, match="missing.safetensors"):
        GeneratorSource(tmp_path / "missing.safetensors")


# -- per-process streams ---------------------------------------------------------------------
def test_worker_stream_is_due_once_per_process_and_after_reset():
    stream = WorkerStream()
    assert stream.due()
    stream.claim()
    assert not stream.due()
    clone = pickle.loads(pickle.dumps(stream))
    assert not clone.due()  # same process: still owned
    stream.reset()
    assert stream.due()


def test_worker_stream_seed_in_the_main_process():
    assert worker_stream_seed(5) == derive_seed(5) != worker_stream_seed(6)
    torch.manual_seed(0)
    a = worker_stream_seed(None)
    torch.manual_seed(0)
    assert worker_stream_seed(None) == a


# -- SampleBank ------------------------------------------------------------------------------
def test_bank_refills_in_one_call_per_bank(tiny_generator, monkeypatch):
    calls = []
    original = tiny_generator.sample
    monkeypatch.setattr(tiny_generator, "sample", lambda *a, **k: calls.append(a) or original(*a, **k))
    bank = SampleBank(tiny_generator, bank_size=4, seed=0)
    images = [bank.draw(1) for _ in range(9)]
    assert len(calls) == 3 and all(list(a[0]) == [1] * 4 for a in calls)
    assert images[0].shape == (3, 16, 16) and images[0].dtype == torch.uint8
    assert len({img.numpy().tobytes() for img in images}) == 9


def test_bank_draws_the_seeded_refill_in_order(tiny_generator):
    bank = SampleBank(tiny_generator, bank_size=3, seed=7)
    drawn = torch.stack([bank.draw("c") for _ in range(3)])
    expected = tiny_generator.sample([2] * 3, seed=derive_seed(derive_seed(7), 2, 0))
    torch.testing.assert_close(drawn, expected)


def test_bank_seed_reproduces_and_differs(tiny_generator):
    a = [SampleBank(tiny_generator, bank_size=3, seed=7).draw("c") for _ in range(2)]
    b = SampleBank(tiny_generator, bank_size=3, seed=8).draw("c")
    torch.testing.assert_close(a[0], a[1])
    assert not torch.equal(a[0], b)


def test_bank_with_path_pickles_without_weights(tiny_model_path, tiny_generator):
    bank = SampleBank(tiny_model_path, bank_size=2, seed=1)
    expected = SampleBank(tiny_generator, bank_size=2, seed=1).draw(0)
    torch.testing.assert_close(bank.draw(0), expected)  # loads lazily
    assert len(pickle.dumps(bank)) < _weights_bytes(tiny_generator) / 4
    restored = pickle.loads(pickle.dumps(bank))
    assert not restored.source.loaded and restored.draw(2).shape == (3, 16, 16)


def test_bank_reuse_serves_each_image_exactly_reuse_times(tiny_generator, monkeypatch):
    calls = []
    original = tiny_generator.sample
    monkeypatch.setattr(tiny_generator, "sample", lambda *a, **k: calls.append(1) or original(*a, **k))
    bank = SampleBank(tiny_generator, bank_size=4, seed=0, reuse=3)
    served = [bank.draw(0).numpy().tobytes() for _ in range(12)]
    assert len(calls) == 1 and len(set(served)) == 4
    assert sorted(served.count(img) for img in set(served)) == [3, 3, 3, 3]
    assert served[:4] != served[4:8] or served[4:8] != served[8:]  # shuffled per pass
    bank.draw(0)
    assert len(calls) == 2


@pytest.mark.parametrize("kwargs,match", [
    ({"bank_size": 0}, r"bank_size must be an integer >= 1, got 0"),
    ({"reuse": 1.5}, r"reuse must be an integer >= 1, got 1.5"),
    ({"truncation": 1.5}, r"truncation must be a finite number in \(0, 1\], got 1.5"),
    ({"seed": -1}, r"seed must be an integer from 0"),
])
def test_bank_config_errors(tiny_generator, kwargs, match):
    with pytest.raises(GanaugConfigError, match=match):
        SampleBank(tiny_generator, **kwargs)


def test_refills_run_channels_last_without_touching_the_callers_model(tiny_generator,
                                                                       tiny_model_path):
    bank = SampleBank(tiny_generator, bank_size=8, seed=5)
    drawn = torch.stack([bank.draw(1) for _ in range(8)])
    expected = tiny_generator.sample([1] * 8, seed=derive_seed(bank._seed, 1, 0), batch_size=8)
    assert torch.equal(drawn, expected) and drawn.is_contiguous()
    conv = next(m for m in bank.sampler.net.modules()  # an upsampling one: the projection
                if isinstance(m, torch.nn.ConvTranspose2d) and m.stride == (2, 2))  # stays
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert bank.sampler is not tiny_generator
    assert all(p.is_contiguous() for p in tiny_generator.parameters())  # the caller's: as is
    assert pickle.loads(pickle.dumps(bank))._sampler is None
    from_file = SampleBank(tiny_model_path, bank_size=4, seed=0)
    from_file.draw(0)
    assert from_file.sampler is from_file.generator  # loaded by the bank: converted in place


@pytest.mark.parametrize("make", [
    lambda g: SampleBank(g, device="bogus"), lambda g: GeneratorSource(g, device="gpu0"),
    lambda g: SyntheticDataset(g, 2, device="bogus")])
def test_an_unknown_device_is_refused_up_front(const_generator, make):
    # torch.device("bogus") raised a RuntimeError listing torch's device types
    with pytest.raises(GanaugConfigError, match=r"Unknown device .*Use cpu, cuda, cuda:N, mps"):
        make(const_generator)


def test_a_bank_larger_than_memory_is_refused_when_made(tiny_generator, model_path, monkeypatch):
    # GANAugment(bank_size=10**12) made a bank, then its first refill died in torch's allocator
    # (a raw RuntimeError inside a DataLoader worker); a model path is measured from its header
    from ganaug import GANAugment

    monkeypatch.setattr("ganaug._imaging.available_memory", lambda: 10**6)
    for source in (tiny_generator, model_path):
        with pytest.raises(GanaugConfigError, match=r"bank_size=1,000,000,000,000: "
                                                    r"3,000,000,000,000 generated images of "
                                                    r"3x16x16 .*1\.0 MB is available\. Use "
                                                    r"bank_size <= 207\."):
            SampleBank(source, bank_size=10**12)
    with pytest.raises(GanaugConfigError, match=r"Use bank_size <= 207\."):
        GANAugment(model_path, bank_size=208)
    assert GeneratorSource(model_path).shape == (3, 16, 16)
    assert SampleBank(model_path, bank_size=207).bank_size == 207


def test_a_synthetic_chunk_larger_than_memory_is_refused_when_made(tiny_generator, monkeypatch):
    monkeypatch.setattr("ganaug._imaging.available_memory", lambda: 10**6)
    monkeypatch.setattr(SyntheticDataset, "chunk_size", 10**12)
    with pytest.raises(GanaugConfigError, match=r"chunk_size=1,000,000,000,000: 1,000,000,000,000 "
                                                r"generated images.*Use chunk_size <= 621\."):
        SyntheticDataset(tiny_generator, 10**12)
    # a chunk is never longer than a class: a huge chunk_size of a small dataset is fine
    small = SyntheticDataset(tiny_generator, 4)
    assert len(small) == 12 and small.image(11).shape == (3, 16, 16)


@pytest.mark.parametrize("reuse", [1, 3])
def test_a_used_bank_pickles_without_its_buffers_and_copies_continue_alike(tiny_model_path,
                                                                          reuse):
    # used in the main process (e.g. to look at a few samples), the bank pickled every class's
    # bank_size images into each spawn worker (ImageNet 224x224: 9.6 MB a class at bank_size 64)
    fresh = SampleBank(tiny_model_path, bank_size=64, seed=3, reuse=reuse)
    empty = len(pickle.dumps(fresh))
    for label in range(3):
        fresh.draw(label)
    assert len(pickle.dumps(fresh)) < empty + 1024  # 3 x 64 images are 147,456 bytes
    twin = pickle.loads(pickle.dumps(fresh))  # the same process: the stream goes on
    served = [[bank.draw(label) for label in (0, 2, 0) * 40] for bank in (fresh, twin)]
    torch.testing.assert_close(served[0], served[1])
