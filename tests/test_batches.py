"""Tests of ganaug.training.batches: the sharded batch order, the real-batch source (in process
and through DataLoader workers) and the data checks."""

from __future__ import annotations

import pytest
import torch

from ganaug.config import TrainConfig, resolve_config
from ganaug.data import LabeledImages
from ganaug.errors import GanaugDataError
from ganaug.training import BatchOrder, RealBatchSource
from ganaug.training.batches import check_data
from ganaug.training.distributed import DistInfo


def ramp_data(n: int = 20) -> LabeledImages:
    """Image ``k`` is filled with the value ``10 * k`` (uint8), label ``k % 2``."""
    images = (torch.arange(n, dtype=torch.uint8) * 10).view(n, 1, 1, 1).expand(n, 1, 16, 16)
    return LabeledImages(images.contiguous(), torch.arange(n) % 2, ["even", "odd"], "ramp")


def cfg_for(data: LabeledImages, **kw) -> TrainConfig:
    base = {"data": "ramp", "batch_size": 4, "d_steps": 2, "seed": 5, "channels_last": False}
    base.update(kw)
    cfg, _ = resolve_config(TrainConfig(**base), num_images=len(data), channels=1,
                            image_size=16, device_type="cpu")
    return cfg


def test_batch_order_covers_each_image_once_per_epoch_and_reshuffles():
    order = BatchOrder(n=20, batch_size=4, seed=5)
    epoch0 = torch.cat([order.indices(i) for i in range(5)])
    epoch1 = torch.cat([order.indices(i) for i in range(5, 10)])
    assert sorted(epoch0.tolist()) == list(range(20))
    assert sorted(epoch1.tolist()) == list(range(20))
    assert not torch.equal(epoch0, epoch1)
    # a pure function of the batch counter: asking again (out of order) gives the same batch
    assert torch.equal(BatchOrder(20, 4, 5).indices(7), order.indices(7))


def test_batch_order_shards_are_disjoint_across_ranks():
    shards = [torch.cat([BatchOrder(21, 5, 0, rank=r, world=2).indices(i) for i in range(2)])
              for r in range(2)]
    assert set(shards[0].tolist()).isdisjoint(shards[1].tolist())
    assert len(shards[0]) == len(shards[1]) == 10


def test_source_scales_to_minus_one_one_and_follows_the_order():
    data = ramp_data()
    source = RealBatchSource(data, cfg_for(data), torch.device("cpu"))
    real, labels = source.batch(3)
    idx = BatchOrder(20, 4, 5).indices(3)
    assert real.dtype == torch.float32 and real.shape == (4, 1, 16, 16)
    torch.testing.assert_close(real[:, 0, 0, 0], idx.float() * 10 / 127.5 - 1.0)
    assert torch.equal(labels, idx % 2)


def test_for_step_gives_the_d_steps_batches_of_that_step():
    data = ramp_data()
    source = RealBatchSource(data, cfg_for(data), torch.device("cpu"))
    got = source.for_step(3)  # generator step 3 uses real batches 6 and 7
    assert len(got) == 2
    for (real, _), i in zip(got, (6, 7)):
        assert torch.equal(real, source.batch(i)[0])


def test_channels_last_batches():
    data = ramp_data()
    source = RealBatchSource(data, cfg_for(data, channels_last=True), torch.device("cpu"))
    assert source.batch(0)[0].is_contiguous(memory_format=torch.channels_last)


def test_worker_batches_equal_in_process_batches_even_after_a_jump():
    data = ramp_data()
    plain = RealBatchSource(data, cfg_for(data), torch.device("cpu"))
    workers = RealBatchSource(data, cfg_for(data, num_workers=1), torch.device("cpu"))
    for i in (0, 1, 2, 7, 8):  # 7: out of sequence, so the worker iterator restarts there
        assert torch.equal(workers.batch(i)[0], plain.batch(i)[0])
        assert torch.equal(workers.batch(i + 100)[1], plain.batch(i + 100)[1])


def test_check_data_needs_one_batch_per_process():
    data = ramp_data(10)
    check_data(data, 4, DistInfo())
    with pytest.raises(GanaugDataError, match=r"10 images, 5 per process \(2 processes\).*"
                                              r"batch of 8.*batch_size=2"):
        check_data(data, 8, DistInfo(rank=0, world=2))


def test_check_data_says_the_count_once_without_processes():
    with pytest.raises(GanaugDataError, match=r"The dataset has 10 images — fewer than one "
                                              r"batch of 16"):
        check_data(ramp_data(10), 16, DistInfo())


def test_absurd_worker_counts_are_refused_before_any_process_starts(monkeypatch):
    import os

    from ganaug.errors import GanaugConfigError

    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    data = ramp_data(20)
    RealBatchSource(data, cfg_for(data, num_workers=8), torch.device("cpu"))  # 4x the CPUs
    with pytest.raises(GanaugConfigError, match=r"num_workers=1000000 .*worker processes.*"
                                                r"2 CPUs.*num_workers=0"):
        RealBatchSource(data, cfg_for(data, num_workers=10**6), torch.device("cpu"))


def test_check_data_refuses_labels_outside_the_classes():
    data = ramp_data(10)
    data.labels = data.labels.clone()
    data.labels[3] = -1
    with pytest.raises(GanaugDataError, match=r"Labels range over \[-1, 1\].*2 classes.*\[0, 1\]"):
        check_data(data, 4, DistInfo())
