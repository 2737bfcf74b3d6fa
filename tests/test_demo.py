"""ganaug.demo: the whole pipeline with seconds-long budgets."""

from __future__ import annotations

import pytest


@pytest.mark.slow
def test_quick_demo_writes_every_output(tmp_path, monkeypatch, capsys):
    from ganaug.demo import demo

    monkeypatch.setenv("GANAUG_CACHE_DIR", str(tmp_path / "cache"))
    result = demo(out=str(tmp_path / "demo"), quick=True)
    for name in ("gan/generator.safetensors", "samples.png", "metrics.json",
                 "experiment/report.md", "experiment/accuracy.png"):
        assert (tmp_path / "demo" / name).is_file(), name
    assert 0.0 <= result["metrics"]["cas"] <= 1.0
    settings = result["experiment"]["settings"]  # the recommended recipe and its controls
    # (the teacher, real+aug, is trained first)
    assert settings["arms"] == ["real+aug", "real", "real+aug+kd", "real+aug+gan+kd"]
    assert (settings["teacher_filter"], settings["synthetic_loss_weight"]) == (0.1, 0.3)
    (verdict,) = result["experiment"]["verdict"]
    last = capsys.readouterr().out.rstrip().splitlines()[-1]
    assert last == f"verdict: {verdict['line']}" and last.startswith("verdict: regime all: ")


def test_demo_refuses_an_out_folder_holding_other_files_before_writing(tmp_path, monkeypatch):
    # `ganaug demo --out ~/pictures` replaced the user's data.png, samples.png and metrics.json
    import ganaug.demo
    from ganaug.demo import demo
    from ganaug.errors import GanaugConfigError

    mine = tmp_path / "pictures"
    mine.mkdir()
    (mine / "data.png").write_bytes(b"my picture")
    with pytest.raises(GanaugConfigError, match=r"pictures exists and is not an empty folder or "
                                                r"a ganaug demo \(no demo\.json\)"):
        demo(out=str(mine), quick=True)
    assert [p.name for p in mine.iterdir()] == ["data.png"]
    assert (mine / "data.png").read_bytes() == b"my picture"

    class Reached(Exception):
        pass

    def stop(*args, **kwargs):
        raise Reached

    monkeypatch.setattr(ganaug.demo, "load_data", stop)
    for _ in range(2):  # a new folder is claimed, and a demo folder is reused
        with pytest.raises(Reached):
            demo(out=str(tmp_path / "demo"), quick=True)
    with pytest.raises(GanaugConfigError, match=r"already holds a ganaug demo made with other "
                                                r"arguments \(data: 'digits' there, 'mnist5k'"):
        demo(out=str(tmp_path / "demo"), quick=False)


def test_a_demo_folder_made_before_demo_json_is_still_a_demo_folder(tmp_path, monkeypatch):
    """`make demo` after an upgrade: runs/demo was made before the demo recorded demo.json.
    It holds only the demo's outputs, with its GAN run on the demo's data: adopted, not refused
    (the README's first command failed). A folder with anything else stays refused."""
    from ganaug.demo import adopt_old_demo

    old = tmp_path / "demo"
    (old / "gan").mkdir(parents=True)
    (old / "gan" / "config.yaml").write_text("data: digits?split=train\nsteps: 4\n")
    for name in ("data.png", "samples.png", "metrics.json"):
        (old / name).write_bytes(b"x")
    (old / "experiment").mkdir()
    import ganaug.demo
    from ganaug.demo import demo

    class Reached(Exception):
        pass

    def stop(*args, **kwargs):
        raise Reached

    monkeypatch.setattr(ganaug.demo, "load_data", stop)
    with pytest.raises(Reached):  # demo() adopts it and goes on, past guard_folder
        demo(out=str(old), quick=True)
    assert (old / "demo.json").is_file()

    other = tmp_path / "other"
    (other / "gan").mkdir(parents=True)
    (other / "gan" / "config.yaml").write_text("data: mnist5k?split=train\n")
    adopt_old_demo(other, "digits")  # the other budget's demo: left to guard_folder's refusal
    mine = tmp_path / "mine"
    (mine / "gan").mkdir(parents=True)
    (mine / "gan" / "config.yaml").write_text("data: digits?split=train\n")
    (mine / "notes.txt").write_text("mine")
    adopt_old_demo(mine, "digits")
    assert not (other / "demo.json").exists() and not (mine / "demo.json").exists()
