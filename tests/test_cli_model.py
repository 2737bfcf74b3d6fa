"""`ganaug info/sample/export` on a saved tiny model, and bad model files at the command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from ganaug.cli import main
from ganaug.io import build_document, cpu_state_dict, save


def test_info(model_file, tiny_net, capsys):
    assert main(["info", str(model_file)]) == 0
    out = capsys.readouterr().out
    assert "dcgan" in out and "3: a, b, c" in out and "training.steps" in out
    assert f"{sum(p.numel() for p in tiny_net.parameters()):,}" in out


def test_sample_grid(model_file, tmp_path, capsys):
    out = tmp_path / "grid.png"
    args = ["sample", str(model_file), "--n-per-class", "4", "--classes", "c, a",
            "--truncation", "0.7", "--seed", "0", "--out", str(out)]
    assert main(args) == 0
    assert "8 images, 2 classes" in capsys.readouterr().out
    with Image.open(out) as im:
        assert im.format == "PNG" and im.size[0] > im.size[1] > 0
    first = out.read_bytes()
    assert main(args) == 0
    assert out.read_bytes() == first  # same seed, same grid
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def _model_of_folder(tiny_generator, tmp_path) -> tuple[Path, Path]:
    """A model file whose training data is the image folder ``tmp_path/data`` (classes a, b)."""
    data = tmp_path / "data"
    for name in ("a", "b"):
        (data / name).mkdir(parents=True)
        Image.new("L", (8, 8)).save(data / name / "0.png")
    model = save(tiny_generator, tmp_path / "m.safetensors",
                 metadata={"training": {"data": f"folder:{data}?split=train"}})
    return model, data


def test_sample_and_export_refuse_to_write_into_the_models_training_data(tiny_generator,
                                                                        tmp_path, capsys):
    # A grid in a class folder was one more image of that class at the next training, an
    # export into the data folder a set of new classes of fakes beside the real ones.
    model, data = _model_of_folder(tiny_generator, tmp_path)
    before = sorted(p.relative_to(data) for p in data.rglob("*"))
    assert main(["sample", str(model), "--out", str(data / "a" / "grid.png")]) == 2
    assert "inside" in capsys.readouterr().err
    assert main(["export", str(model), "--n-per-class", "1", "--out", str(data / "fakes")]) == 2
    assert "inside" in capsys.readouterr().err
    assert sorted(p.relative_to(data) for p in data.rglob("*")) == before
    assert main(["sample", str(model), "--out", str(data / "grid.png")]) == 0  # beside: fine
    assert main(["export", str(model), "--n-per-class", "1", "--out",
                 str(tmp_path / "fakes")]) == 0


@pytest.mark.parametrize("name, fmt", [("grid.jpg", "JPEG"), ("grid.JPEG", "JPEG"),
                                       ("grid.webp", "WEBP"), ("grid.png", "PNG")])
def test_sample_writes_the_format_its_name_says(name, fmt, model_file, tmp_path):
    """--out g.jpg used to hold PNG bytes: a file whose name lies about its format."""
    out = tmp_path / name
    assert main(["sample", str(model_file), "--n-per-class", "2", "--out", str(out)]) == 0
    with Image.open(out) as im:
        assert im.format == fmt


@pytest.mark.parametrize("name", ["grid.txt", "grid", "grid.safetensors"])
def test_sample_refuses_a_name_that_is_not_an_image_before_drawing(name, model_file, tmp_path,
                                                                   capsys, monkeypatch):
    from ganaug.generator import Generator

    def no_sampling(*args, **kwargs):
        raise AssertionError("sampled before the name check")

    monkeypatch.setattr(Generator, "sample", no_sampling)
    out = tmp_path / name
    assert main(["sample", str(model_file), "--n-per-class", "2", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert name in err and ".png" in err and ".jpg" in err and "Traceback" not in err
    assert not out.exists()


@pytest.mark.parametrize("n", ["100000000", "20000"])
def test_sample_refuses_a_grid_too_large_to_view_before_drawing_it(n, model_file, tmp_path,
                                                                    capsys, monkeypatch):
    """A huge --n-per-class was drawn at once (an out-of-memory traceback) or written as a PNG
    hundreds of thousands of pixels wide that image viewers refuse to open."""
    from ganaug.generator import Generator

    def no_sampling(*args, **kwargs):
        raise AssertionError("sampled before the size check")

    monkeypatch.setattr(Generator, "sample", no_sampling)
    out = tmp_path / "grid.png"
    assert main(["sample", str(model_file), "--n-per-class", n, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"3 classes x {int(n):,} images" in err and "pixels" in err
    assert "fewer images per class" in err and "ganaug export" in err and "Traceback" not in err
    assert not out.exists()


def test_export(model_file, tmp_path, capsys):
    out = tmp_path / "synth"
    args = ["export", str(model_file), "--n-per-class", "3", "--out", str(out), "--batch", "2"]
    assert main(args) == 0
    assert "9 images in 3 classes (9 written, 0 already there)" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == ["a", "b", "c", "export.json",
                                                    "manifest.csv"]
    assert main(args) == 0
    assert "(0 written, 9 already there)" in capsys.readouterr().out
    assert main(["export", str(model_file), "--n-per-class", "4", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "n_per_class: 3 there, 4 now" in err and "Traceback" not in err


def test_export_jpg_subset(model_file, tmp_path):
    out = tmp_path / "synth"
    assert main(["export", str(model_file), "--n-per-class", "2", "--out", str(out),
                 "--format", "jpg", "--classes", "b", "--seed", "4"]) == 0
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.jpg")) == [
        "b/000000.jpg", "b/000001.jpg"]
    arr = np.asarray(Image.open(out / "b" / "000000.jpg"))
    assert arr.shape == (16, 16, 3)


def _bad_files(tmp_path: Path, tiny_generator) -> dict[str, tuple[Path, str]]:
    """name -> (path, a phrase its error message must contain)."""
    good = save(tiny_generator, tmp_path / "good.safetensors")
    data = good.read_bytes()
    cases: dict[str, tuple[Path, str]] = {}
    (tmp_path / "cut.safetensors").write_bytes(data[:-10])
    cases["truncated"] = (tmp_path / "cut.safetensors", "truncated or corrupt")
    Image.new("RGB", (2, 2)).save(tmp_path / "pic.png")
    cases["png"] = (tmp_path / "pic.png", "looks like a PNG")
    torch.save({"w": torch.zeros(2)}, tmp_path / "ckpt.pt")
    cases["torch.save"] = (tmp_path / "ckpt.pt", "zip archive")
    save_file(cpu_state_dict(tiny_generator.net), str(tmp_path / "plain.safetensors"))
    cases["plain"] = (tmp_path / "plain.safetensors", "not a ganaug model")
    doc = build_document(tiny_generator)
    doc["format"] = 99
    save_file(cpu_state_dict(tiny_generator.net), str(tmp_path / "new.safetensors"),
              metadata={"ganaug": json.dumps(doc)})
    cases["newer"] = (tmp_path / "new.safetensors", "Upgrade ganaug")
    doc = build_document(tiny_generator)
    doc["arch"] = "nope"
    save_file(cpu_state_dict(tiny_generator.net), str(tmp_path / "arch.safetensors"),
              metadata={"ganaug": json.dumps(doc)})
    cases["arch"] = (tmp_path / "arch.safetensors", "needs arch 'nope'")
    cases["missing"] = (tmp_path / "missing.safetensors", "No model file")
    cases["directory"] = (tmp_path, "is a directory")
    return cases


@pytest.mark.parametrize("command", ["info", "sample", "export"])
def test_bad_files_exit_2_with_one_paragraph(command, tiny_generator, tmp_path, capsys):
    for name, (path, phrase) in _bad_files(tmp_path, tiny_generator).items():
        extra = {"info": [], "sample": ["--out", str(tmp_path / "g.png")],
                 "export": ["--n-per-class", "1", "--out", str(tmp_path / "x")]}[command]
        assert main([command, str(path), *extra]) == 2, name
        captured = capsys.readouterr()
        err = captured.err.strip()
        assert err.startswith("ganaug: error: ") and phrase in err, (name, err)
        assert "\n" not in err and "Traceback" not in err, (name, err)
        assert captured.out == ""
    assert not (tmp_path / "g.png").exists() and not (tmp_path / "x").exists()


def test_subprocess_bad_file_no_traceback(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00" * 3)
    env = {**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1"}
    proc = subprocess.run([sys.executable, "-m", "ganaug", "info", str(bad)], check=False,
                          capture_output=True, text=True, env=env,
                          cwd=Path(__file__).resolve().parents[1], timeout=120)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.startswith("ganaug: error: ") and "bad.safetensors" in proc.stderr
    assert "header too small" in proc.stderr
    assert "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
@pytest.mark.parametrize("command", ["sample", "export"])
def test_device_cuda_without_a_gpu_is_a_clean_error(model_file, tmp_path, capsys, command):
    out = tmp_path / ("grid.png" if command == "sample" else "synth")
    assert main([command, str(model_file), "--n-per-class", "1", "--out", str(out),
                 "--device", "cuda"]) == 2
    err = capsys.readouterr().err
    assert "asked for CUDA, but torch sees no CUDA GPU here" in err
    assert "Traceback" not in err and not out.exists()


@pytest.mark.parametrize("command", ["sample", "export"])
@pytest.mark.parametrize("classes", ["", " ", ","])
def test_empty_classes_flag_is_refused_not_read_as_all(model_file, tmp_path, capsys, command,
                                                       classes):
    out = str(tmp_path / ("s.png" if command == "sample" else "out"))
    extra = ["--n-per-class", "1"] if command == "export" else []
    # --classes "" used to draw every class, as if the flag were not given
    assert main([command, str(model_file), "--classes", classes, "--out", out, *extra]) == 2
    assert "Unknown class ''" in capsys.readouterr().err
    assert not Path(out).exists()
