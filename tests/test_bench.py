"""Tests of ganaug.bench: the three bench commands print parseable figures and write JSON.

Settings are tiny (16 px, batch 8, one thread); figures are checked for form and sign, never for
speed.
"""

from __future__ import annotations

import json
import re

import pytest
import torch

from ganaug import bench
from ganaug.cli import main
from ganaug.errors import GanaugConfigError

FLOAT = r"(\d+(?:\.\d+)?)"


def _table_numbers(text: str, first_cell: str) -> list[float]:
    """The numbers of the table row that starts with ``first_cell``."""
    for line in text.splitlines():
        cells = line.split()
        if cells and cells[0] == first_cell:
            return [float(c) for c in cells[1:]]
    raise AssertionError(f"no row {first_cell!r} in:\n{text}")


def test_bench_train_cli_prints_ratio_table_and_json(tmp_path, capsys):
    out = tmp_path / "train.json"
    rc = main(["bench", "train", "--quick", "--size", "16", "--batch", "8", "--threads", "1",
               "--json", str(out)])
    text = capsys.readouterr().out
    assert rc == 0
    match = re.search(r"^ratio ganaug/reference: (\d+\.\d\d)$", text, re.MULTILINE)
    assert match and float(match.group(1)) > 0
    result = json.loads(out.read_text())
    for side in ("ganaug", "reference"):
        images_per_s, ms_per_step, peak_mb = _table_numbers(text, side)
        assert images_per_s > 0 and ms_per_step > 0 and peak_mb > 0
        # images/s and ms/step describe the same median: batch 8 x d_steps real images a step.
        expected = 8 * result["d_steps"] * 1000 / ms_per_step
        assert images_per_s == pytest.approx(expected, rel=0.01)
    assert {"ratio", "rows", "device", "batch_size", "d_steps", "image_size"} <= set(result)
    assert (result["batch_size"], result["image_size"], result["device"]) == (8, 16, "cpu")
    assert [r["side"] for r in result["rows"]] == ["ganaug", "reference"]
    assert result["ratio"] == pytest.approx(float(match.group(1)), abs=0.005)
    assert len(result["seconds_per_round"]["ganaug"]) == result["rounds"] == 3


@pytest.mark.parametrize("arch", ["dcgan", "resnet"])
def test_bench_train_python_api_one_side_and_archs(arch):
    result = bench.bench_train(arch=arch, image_size=16, batch_size=4, width=8, device="cpu",
                               sides=("ganaug",), steps=1, rounds=1)
    assert result["ratio"] is None
    assert [r["side"] for r in result["rows"]] == ["ganaug"]
    assert result["rows"][0]["images_per_s"] > 0
    assert result["d_steps"] == (4 if arch == "resnet" else 2)  # the preset's, on both sides


def test_reference_loop_starts_from_the_trainers_weights_and_trains(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the bench writes no run folder, here or anywhere
    trainer = bench.make_trainer(image_size=16, batch_size=4, width=8, device="cpu")
    ref = bench.ReferenceLoop(trainer)
    for p_ref, p in zip(ref.G.parameters(), trainer.gan.G.parameters()):
        torch.testing.assert_close(p_ref, p)
    before = [p.detach().clone() for p in ref.G.parameters()]
    ref.step()
    assert ref.step_count == 1
    assert any(not torch.equal(b, p) for b, p in zip(before, ref.G.parameters()))
    # The EMA follows the Trainer's schedule: ema = lerp(initial, G, 1 - decay at step 1).
    from ganaug.training import ema_decay_at

    decay = ema_decay_at(1, trainer.cfg.ema_decay, trainer.cfg.ema_start)
    assert 0 < decay < 1
    for p_ema, b, p in zip(ref.G_ema.parameters(), before, ref.G.parameters()):
        torch.testing.assert_close(p_ema, b.lerp(p.detach(), 1 - decay))
    trainer.train_step()
    assert trainer.step == 1
    assert list(tmp_path.iterdir()) == []


def test_alternate_calls_each_side_warmup_plus_rounds_times_steps():
    calls = {"a": 0, "b": 0}
    sides = {k: (lambda k=k: calls.__setitem__(k, calls[k] + 1)) for k in calls}
    timing = bench.alternate(sides, steps=3, rounds=4, warmup=1, device=torch.device("cpu"))
    assert calls == {"a": 15, "b": 15}
    assert [len(v) for v in timing["seconds"].values()] == [4, 4]
    assert all(s >= 0 for v in timing["seconds"].values() for s in v)


def test_bench_sample_cli_with_a_model_file(tmp_path, capsys, tiny_generator):
    from ganaug.io import save

    model = save(tiny_generator, tmp_path / "g.safetensors")
    out = tmp_path / "sample.json"
    rc = main(["bench", "sample", str(model), "--quick", "--threads", "1", "--json", str(out)])
    text = capsys.readouterr().out
    assert rc == 0
    for batch in (1, 16, 256, 1024):
        images_per_s, ms_per_call = _table_numbers(text, str(batch))
        assert images_per_s > 0 and ms_per_call > 0
    latency = re.search(rf"latency at batch 1: {FLOAT} ms", text)
    assert latency and float(latency.group(1)) > 0
    result = json.loads(out.read_text())
    assert [r["batch"] for r in result["rows"]] == [1, 16, 256, 1024]
    assert result["latency_ms_batch1"] == result["rows"][0]["ms_per_call"]


def test_bench_sample_without_file_uses_an_untrained_generator(capsys):
    rc = main(["bench", "sample", "--quick", "--size", "16", "--threads", "1"])
    text = capsys.readouterr().out
    assert rc == 0 and "untrained dcgan 16px" in text
    assert _table_numbers(text, "1")[0] > 0


def test_bench_loader_cli_prints_both_pipelines_and_the_mixer(tmp_path, capsys):
    out = tmp_path / "loader.json"
    rc = main(["bench", "loader", "--quick", "--batch", "16", "--threads", "1", "--json",
               str(out), "--data", "digits?channels=3&size=32"])
    captured = capsys.readouterr()
    text = captured.out
    assert rc == 0, captured.err
    assert _table_numbers(text, "baseline")[0] > 0
    assert _table_numbers(text, "+GANAugment(p=0.5)")[0] > 0
    mixer = re.search(rf"{FLOAT} ms per call", text)
    assert mixer and float(mixer.group(1)) > 0
    result = json.loads(out.read_text())
    assert {"baseline_images_per_s", "ganaugment_images_per_s", "mixer_ms_per_batch",
            "slowdown"} <= set(result)
    assert result["batch"] == 16 and result["workers"] == 2
    assert result["data"] == "digits?channels=3&size=32"


def test_bench_rejects_zero_threads(capsys):
    assert main(["bench", "sample", "--threads", "0"]) == 2
    assert "--threads must be an integer >= 1, got 0. e.g. --threads 1." in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:  # a raw ValueError from torch
        main(["bench", "sample", "--threads", str(10**30)])
    assert exit_info.value.code == 2
    assert "argument --threads: must be at most" in capsys.readouterr().err


def test_run_bench_refuses_more_threads_than_the_cap():
    from ganaug._checks import most_threads
    from ganaug.bench import run_bench
    from ganaug.errors import GanaugConfigError

    with pytest.raises(GanaugConfigError, match=r"--threads must be an integer <= \d+, got \d+\. "
                                                r"\(4 per CPU\)"):
        run_bench("sample", threads=most_threads() + 1, quick=True)


def test_run_bench_takes_keywords_and_returns_the_result(tmp_path, capsys):
    out = tmp_path / "train.json"
    result = bench.run_bench("train", image_size=16, batch_size=4, width=8, device="cpu",
                             threads=1, quick=True, json_path=str(out))
    assert result["bench"] == "train" and result["batch_size"] == 4
    assert json.loads(out.read_text())["ratio"] == result["ratio"]
    assert f"wrote {out}" in capsys.readouterr().out


def test_format_table_right_aligns_and_widens_columns():
    text = bench.format_table([{"name": "a-very-long-name", "x": 1.5}, {"name": "b", "x": 20.0}],
                              [("name", "name", ""), ("x", "x", ".1f")])
    lines = text.splitlines()
    assert lines[2].split() == ["a-very-long-name", "1.5"]
    assert lines[3].split() == ["b", "20.0"]
    assert len({len(line) for line in lines}) == 1


@pytest.mark.slow
def test_loader_throughput_runs(cifar_mini):
    out = bench.loader_throughput(f"folder:{cifar_mini / 'train'}", batch=32, batches=3,
                                  warmup=1, mixer_repeats=2)
    assert out["baseline_images_per_s"] > 0 and out["ganaugment_images_per_s"] > 0
    assert out["slowdown"] == pytest.approx(
        1 - out["ganaugment_images_per_s"] / out["baseline_images_per_s"])
    assert out["mixer_ms_per_batch"] > 0


@pytest.mark.parametrize("native_bf16", [False, True])
def test_bench_train_cli_passes_speed_options_and_cr_weight(tmp_path, capsys, monkeypatch,
                                                            native_bf16):
    from ganaug.training import step

    monkeypatch.setattr(step, "cpu_has_native_bf16", lambda: native_bf16)
    out = tmp_path / "train.json"
    rc = main(["bench", "train", "--quick", "--size", "16", "--batch", "4", "--width", "8",
               "--threads", "1", "--amp", "--channels-last", "--cr-weight", "10", "--json",
               str(out)])
    text = capsys.readouterr().out
    assert rc == 0
    assert "channels_last, bCR 10 (ganaug side)" in text
    result = json.loads(out.read_text())
    # AMP runs on the CPU only where it computes bf16 natively (emulated bf16 is slower)
    assert (result["cr_weight"], result["channels_last"], result["amp"], result["compile"]) == (
        10.0, True, native_bf16, False)


@pytest.mark.parametrize("native_bf16", [False, True])
def test_reference_loop_autocasts_like_the_trainer(monkeypatch, native_bf16):
    from ganaug.training import step

    monkeypatch.setattr(step, "cpu_has_native_bf16", lambda: native_bf16)
    trainer = bench.make_trainer(image_size=16, batch_size=4, width=8, device="cpu", amp=True)
    ref = bench.ReferenceLoop(trainer)
    assert trainer.gan.autocast is native_bf16 and not ref.scaler.is_enabled()
    ref.step()
    assert ref.step_count == 1


@pytest.mark.parametrize("argv", [["train", "--batch", "0"], ["loader", "--batch", "-4"],
                                  ["train", "--width", "0"]])
def test_bench_flags_below_one_are_usage_errors(argv, capsys):
    # --batch 0 and --width 0 used to be taken as "not given": the preset ran, silently
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", *argv])
    assert exit_info.value.code == 2
    assert f"argument {argv[1]}: must be an integer >= 1, got {argv[2]}" in capsys.readouterr().err


@pytest.mark.parametrize("kwargs, match", [
    ({"batch_size": 0}, "batch_size must be an integer >= 1, got 0"),
    ({"width": 0}, "width must be an integer >= 1, got 0"),
    ({"width": True}, "width must be an integer >= 1"),
])
def test_run_bench_refuses_zero_batch_and_width_before_any_work(kwargs, match, monkeypatch):
    from ganaug import bench

    monkeypatch.setattr(bench, "bench_loader", lambda **kw: pytest.fail("ran"))
    monkeypatch.setattr(bench, "bench_train", lambda **kw: pytest.fail("ran"))
    for what in ("train", "loader"):
        with pytest.raises(GanaugConfigError, match=match):
            bench.run_bench(what, **kwargs)


def test_a_json_path_that_cannot_be_written_is_refused_before_the_benchmark(tmp_path,
                                                                             monkeypatch):
    """--json naming a folder, or a path under a file, failed only after the benchmark ran."""
    from ganaug import bench
    from ganaug.errors import GanaugConfigError

    def ran(**kwargs):
        raise AssertionError("the benchmark ran before --json was checked")

    monkeypatch.setattr(bench, "bench_train", ran)
    (tmp_path / "file").write_text("x")
    for bad in (tmp_path, tmp_path / "file" / "train.json"):
        with pytest.raises(GanaugConfigError, match=r"Cannot write"):
            bench.run_bench("train", quick=True, json_path=str(bad))


def test_bench_refuses_a_json_path_that_is_no_json_file_name(tmp_path, tiny_generator,
                                                             monkeypatch):
    """--json g.safetensors (the benchmarked model) wrote the figures over the model file."""
    from ganaug import bench
    from ganaug.errors import GanaugConfigError
    from ganaug.io import save

    model = save(tiny_generator, tmp_path / "g.safetensors")
    before = model.read_bytes()
    monkeypatch.setattr(bench, "bench_sample", lambda *a, **kw: pytest.fail("ran first"))
    with pytest.raises(GanaugConfigError, match=r"does not end in \.json"):
        bench.run_bench("sample", file=str(model), quick=True, json_path=str(model))
    assert model.read_bytes() == before
