"""Tests of ganaug.training.distributed: one process is a no-op; two CPU processes with gloo
through torchrun train, rank 0 writes, the file loads."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch

from ganaug.errors import GanaugConfigError
from ganaug.training import distributed
from ganaug.training.distributed import DistInfo


def test_one_process_setup_and_collectives_are_no_ops(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    info, device = distributed.setup("cpu")
    assert info == DistInfo() and not info.enabled and info.is_main
    assert device == torch.device("cpu")
    t = torch.tensor([3.0])
    assert distributed.all_reduce_(info, t, "max") is t and t.item() == 3.0
    assert distributed.gather_objects(info, {"a": 1}) == [{"a": 1}]
    assert distributed.broadcast_float(info, 0.25, device) == 0.25
    net = torch.nn.Linear(2, 2)
    assert distributed.wrap_ddp(net, info, device) is net
    distributed.barrier(info)
    distributed.teardown(info)


def test_dist_info_rank_roles():
    assert DistInfo(rank=1, world=2).enabled and not DistInfo(rank=1, world=2).is_main


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_setup_refuses_a_device_that_is_not_there(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    with pytest.raises(GanaugConfigError, match=r"no CUDA GPU here"):
        distributed.setup("cuda")


@pytest.fixture
def tiny_npz(tmp_path) -> str:
    rng = np.random.default_rng(1)
    labels = np.arange(64) % 2
    x = rng.integers(0, 256, (64, 16, 16), dtype=np.uint8)
    path = tmp_path / "tiny.npz"
    np.savez(path, x=x, y=labels.astype(np.int64))
    return f"npz:{path}"


def test_two_process_gloo_run(tiny_npz, tmp_path):
    from ganaug.io import load

    out = tmp_path / "run"
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("arch_kwargs: {width: 8, embed_dim: 8}\nz_dim: 16\nlog_every: 1\n"
                   "diffaug: translation,cutout\n")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "ganaug", "train", "--data", tiny_npz, "--config", str(cfg), "--arch", "dcgan",
           "--steps", "3", "--batch", "8", "--device", "cpu", "--out", str(out),
           "--sample-every", "100", "--ckpt-every", "2"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "NO_ALBUMENTATIONS_UPDATE": "1",
           "MPLBACKEND": "Agg"}
    # Own session: on a timeout the whole group (torchrun and its workers) is killed.
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
        pytest.fail("torchrun did not finish in 120 s:\n" + stdout[-2000:] + stderr[-4000:])
    assert proc.returncode == 0, stdout[-2000:] + stderr[-4000:]
    # rank 0 alone prints the preset and writes the files
    assert stdout.count("preset: small-data 16x16 grey") == 1
    gen = load(out / "generator.safetensors")
    assert gen.num_classes == 2 and gen.image_size == 16 and gen.channels == 1
    images = gen.sample(n_per_class=2, seed=0)
    assert images.shape == (4, 1, 16, 16) and images.dtype == torch.uint8
    ckpt = torch.load(out / "checkpoints" / "last.pt", weights_only=True)
    assert ckpt["step"] == 3 and ckpt["world_size"] == 2 and len(ckpt["rng"]) == 2
    # each rank draws its own noise: the two saved CPU RNG states differ
    assert not torch.equal(ckpt["rng"][0]["torch"], ckpt["rng"][1]["torch"])
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3]
    assert (out / "samples" / "step_000003.png").is_file() and (out / "loss.png").is_file()


@pytest.mark.parametrize("env,match", [
    ({"WORLD_SIZE": "two"}, r"WORLD_SIZE='two' is not an integer >= 0"),  # a raw ValueError
    ({"WORLD_SIZE": "\u0662"}, r"WORLD_SIZE='\u0662' is not an integer"),
    ({"WORLD_SIZE": "2"}, (r"WORLD_SIZE=2 asks for 2 processes, but RANK, LOCAL_RANK, "
                          r"MASTER_ADDR, MASTER_PORT are not set.*torchrun")),
    ({"WORLD_SIZE": "2", "RANK": "2", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1",
      "MASTER_PORT": "29500"}, r"RANK=2 and LOCAL_RANK=0 do not fit WORLD_SIZE=2"),
    ({"WORLD_SIZE": "2", "RANK": "0", "LOCAL_RANK": "-1", "MASTER_ADDR": "127.0.0.1",
      "MASTER_PORT": "29500"}, r"LOCAL_RANK='-1' is not an integer >= 0"),
    ({"WORLD_SIZE": "2", "RANK": "0", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1",
      "MASTER_PORT": "x"}, r"MASTER_PORT='x' is not an integer"),
])
def test_inconsistent_torchrun_environment_is_refused_before_joining(monkeypatch, env, match):
    # WORLD_SIZE=2 alone used to wait in init_process_group or fail inside torch
    for name in distributed.TORCHRUN_ENV:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(GanaugConfigError, match=match):
        distributed.setup("cpu")
    assert not torch.distributed.is_initialized()
