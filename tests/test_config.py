"""Tests of ganaug.config: precedence, validation, YAML round trip, presets, resume checks."""

from __future__ import annotations

from dataclasses import fields

import pytest

from ganaug.config import (
    FIXED_DEFAULTS,
    SMALL_DATA_IMAGES,
    TrainConfig,
    arch_differences,
    data_name,
    merge_saved,
    resolve_config,
    train_config_from_sources,
)
from ganaug.errors import GanaugConfigError


def write(path, text):
    path.write_text(text)
    return path


def test_precedence_defaults_then_yaml_then_overrides(tmp_path):
    yaml_file = write(tmp_path / "c.yaml", "steps: 300\nlr_g: 1e-4\nbatch_size: 32\n"
                                           "arch_kwargs: {width: 16}\n")
    cfg = train_config_from_sources(yaml_file, {"data": "digits", "steps": 50, "lr_d": None})
    assert cfg.steps == 50  # flag beats YAML
    assert cfg.lr_g == pytest.approx(1e-4)  # YAML (PyYAML reads 1e-4 as a string) beats default
    assert cfg.batch_size == 32 and cfg.arch_kwargs == {"width": 16}
    assert cfg.lr_d is None  # a flag left out (None) does not override
    resolved, _ = resolve_config(cfg, num_images=100, channels=1, image_size=16,
                                 device_type="cpu")
    assert resolved.lr_d == pytest.approx(8e-4)  # default via preset (grey dcgan: TTUR, 1 D step)
    assert resolved.seed == FIXED_DEFAULTS["seed"] and resolved.sample_every == 250


def test_no_yaml_gives_defaults():
    cfg = train_config_from_sources(None, {"data": "mnist5k"})
    assert cfg == TrainConfig(data="mnist5k")


def test_unknown_yaml_key_suggests_the_field(tmp_path):
    yaml_file = write(tmp_path / "c.yaml", "stpes: 10\n")
    with pytest.raises(GanaugConfigError, match=r"Unknown key 'stpes'.*Did you mean 'steps'"):
        train_config_from_sources(yaml_file, {})


def test_yaml_must_be_a_mapping_and_exist(tmp_path):
    with pytest.raises(GanaugConfigError, match=r"must hold a mapping.*list"):
        train_config_from_sources(write(tmp_path / "c.yaml", "- 1\n- 2\n"), {})
    with pytest.raises(GanaugConfigError, match=r"does not exist; check the path given as yaml_path="):
        train_config_from_sources(tmp_path / "missing.yaml", {})


def test_broken_yaml_names_the_line_in_one_line(tmp_path):
    broken = write(tmp_path / "c.yaml", "steps: 10\nbatch_size: [1\n")
    with pytest.raises(GanaugConfigError, match=r"not valid YAML at line 3, column 1: expected "
                                                r"',' or '\]'.*Fix that line") as err:
        train_config_from_sources(broken, {})
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("field, value, match", [
    ("steps", 0, r"steps must be an integer >= 1, got 0\."),
    ("steps", 2.5, r"steps must be .*, got 2.5"),
    ("batch_size", "many", r"batch_size must be .*, got 'many'"),
    ("channels", 2, r"channels must be 1 \(grey\) or 3 \(RGB\), got 2"),
    ("lr_g", -1.0, r"lr_g must be a float > 0.*, got -1.0"),
    ("lr_d", "fast", r"lr_d must be .*, got 'fast'"),
    ("ema_decay", 1.0, r"ema_decay must be a float in \[0, 1\).*, got 1.0"),
    ("ada_target", 0.0, r"ada_target must be .*, got 0.0"),
    ("r1_gamma", -0.1, r"r1_gamma must be .*, got -0.1"),
    ("cr_weight", -1.0, r"cr_weight must be a float >= 0 \(0 = off; 10 in.*, got -1.0"),
    ("cr_weight", "lots", r"cr_weight must be .*, got 'lots'"),
    ("loss", "hinje", r"loss must be one of hinge, ns, wgan-gp, got 'hinje'.*Did you mean 'hinge'"),
    ("arch", "dcgann", r"arch must be one of .*, got 'dcgann'.*Did you mean 'dcgan'"),
    ("betas", [0.5], r"betas must be two floats.*, got \[0.5\]"),
    ("betas", [0.5, 1.5], r"betas must be"),
    ("device", "gpu", r"device must be cpu, cuda, cuda:N or mps, got 'gpu'"),
    ("amp", "yes", r"amp must be True or False, got 'yes'"),
    ("arch_kwargs", [1], r"arch_kwargs must be .*, got \[1\]"),
    ("arch_kwargs", {"width": object}, r"arch_kwargs\['width'\] must be a number, True/False"),
    ("arch_kwargs", {3: 8}, r"arch_kwargs must be a mapping.*, got \{3: 8\}"),
    ("diffaug", "colour", r"Unknown DiffAugment policy 'colour'.*Did you mean 'color'"),
    ("data", "", r"data must be a dataset spec.*, got ''"),
    ("seed", -1, r"seed must be an integer from 0 to 9223372036854775807, got -1"),
])
def test_invalid_values_name_field_value_and_accepted(field, value, match):
    with pytest.raises(GanaugConfigError, match=match):
        TrainConfig(**{field: value})


def test_arch_kwargs_are_plain_values_ready_for_yaml(tmp_path):
    """NumPy scalars in arch_kwargs become Python numbers (they used to fail when the run's
    config.yaml was written, with yaml's RepresenterError)."""
    import numpy as np

    cfg = TrainConfig(arch_kwargs={"width": np.int64(8), "spectral_norm": np.bool_(True),
                                   "embed_dim": np.int32(4)})
    assert cfg.arch_kwargs == {"width": 8, "spectral_norm": True, "embed_dim": 4}
    assert [type(v) for v in cfg.arch_kwargs.values()] == [int, bool, int]
    cfg.to_yaml(tmp_path / "c.yaml")
    assert TrainConfig.from_yaml(tmp_path / "c.yaml").arch_kwargs == cfg.arch_kwargs


def test_large_integers_are_kept_exactly():
    """A seed the CLI accepts (below 2**63) must not be refused for not surviving a float."""
    assert TrainConfig(seed=2**63 - 1).seed == 2**63 - 1
    assert TrainConfig(seed=str(2**53 + 1)).seed == 2**53 + 1
    assert TrainConfig(steps=2**53 + 1).steps == 2**53 + 1
    assert TrainConfig(steps=40.0).steps == 40
    with pytest.raises(GanaugConfigError, match=r"seed must be an integer from 0 to "
                                                r"9223372036854775807, got 9223372036854775808"):
        TrainConfig(seed=2**63)
    for bad in (40.5, float("inf"), float("nan")):
        with pytest.raises(GanaugConfigError, match=r"steps must be an integer"):
            TrainConfig(steps=bad)


@pytest.mark.parametrize("field,text", [("steps", "1_000"), ("steps", "\u0661\u0660"),
                                        ("steps", " 40"), ("seed", "4.0"), ("lr_g", "1_0e-4"),
                                        ("lr_g", "\u0662e-4"), ("lr_d", " 2e-4"), ("lr_g", "nan")])
def test_numbers_as_text_are_only_plain_ascii_numbers(field, text):
    # PyYAML leaves 2e-4 a string, so TrainConfig takes numbers as text; int() and float()
    # also took underscores, Unicode digits and blanks, which no config file means
    with pytest.raises(GanaugConfigError, match=rf"{field} must be .*, got {text!r}"):
        TrainConfig(**{field: text})
    assert (TrainConfig(lr_g="2e-4").lr_g, TrainConfig(steps="40").steps) == (2e-4, 40)
    assert (TrainConfig(lr_g=".5").lr_g, TrainConfig(seed="+3").seed) == (0.5, 3)


def test_ada_needs_a_policy():
    with pytest.raises(GanaugConfigError, match=r"ada=True .* diffaug is 'none'.*diffaug="):
        TrainConfig(ada=True, diffaug="none")


def test_a_policy_of_only_commas_is_none_so_ada_is_refused():
    # ",," used to become diffaug='' and slip past the "ada needs a policy" check.
    assert TrainConfig(diffaug=" , ,").diffaug == "none"
    with pytest.raises(GanaugConfigError, match=r"ada=True .* diffaug is 'none'"):
        TrainConfig(ada=True, diffaug=",,")


@pytest.mark.parametrize("out", ["", "   ", True, 5, "runs/a\x00b", ["runs/a"]])
def test_out_must_name_a_folder(out):
    # --out '' silently trained into runs/<data>; True or 5 failed later with a TypeError.
    with pytest.raises(GanaugConfigError, match=r"out must be a folder path.*, got "):
        TrainConfig(out=out)


def test_out_accepts_a_path_object_as_text(tmp_path):
    assert TrainConfig(out=tmp_path / "run").out == str(tmp_path / "run")


def test_values_are_normalised():
    cfg = TrainConfig(steps="40", lr_g="2e-4", betas=[0, 0.9], diffaug=" Translation, cutout ")
    assert cfg.steps == 40 and isinstance(cfg.steps, int)
    assert cfg.lr_g == pytest.approx(2e-4) and cfg.betas == (0.0, 0.9)
    assert cfg.diffaug == "translation,cutout"
    assert TrainConfig(diffaug="off").diffaug == "none"


def test_yaml_round_trip(tmp_path):
    cfg = TrainConfig(data="digits", steps=12, betas=(0.0, 0.99), arch_kwargs={"width": 8},
                      diffaug="cutout", ada=True, lr_g=3e-4)
    cfg.to_yaml(tmp_path / "config.yaml")
    assert TrainConfig.from_yaml(tmp_path / "config.yaml") == cfg


def test_cli_train_dests_are_config_fields():
    from ganaug.cli import build_parser

    parser = build_parser()
    args = parser.parse_args(["train", "--data", "digits", "--batch", "8", "--size", "16",
                              "--lr-g", "1e-3", "--no-amp", "--workers", "1",
                              "--cr-weight", "10"])
    names = {f.name for f in fields(TrainConfig)}
    given = {k for k in vars(args) if k not in ("command", "func", "config", "threads", "split")}
    assert given <= names
    overrides = {k: v for k, v in vars(args).items()
                 if k not in ("command", "func", "config", "threads", "split") and v is not None}
    cfg = train_config_from_sources(None, overrides)
    assert (cfg.batch_size, cfg.image_size, cfg.lr_g, cfg.amp, cfg.num_workers,
            cfg.cr_weight) == (8, 16, 1e-3, False, 1, 10.0)


# -- presets ----------------------------------------------------------------------------------
def test_small_grey_cpu_preset():
    cfg, desc = resolve_config(TrainConfig(data="mnist5k"), num_images=5000, channels=1,
                               image_size=28, device_type="cpu")
    assert (cfg.arch, cfg.loss, cfg.d_steps, cfg.betas) == ("dcgan", "hinge", 1, (0.5, 0.999))
    assert cfg.arch_kwargs == {"width": 32} and cfg.ema_decay == 0.999
    assert cfg.diffaug == "translation,cutout" and cfg.amp is False
    assert cfg.cr_weight == 0.0  # bCR is opt-in
    assert cfg.channels_last is True  # measured faster on the CPU too (docs/performance.md)
    assert cfg.out.endswith("mnist5k") and cfg.image_size == 28 and cfg.channels == 1
    assert desc.startswith("preset: small-data 28x28 grey") and "translation,cutout" in desc
    unset = [f.name for f in fields(TrainConfig) if getattr(cfg, f.name) is None]
    assert unset == ["per_class", "imbalance", "device"]  # None is their meaning: all / auto


def test_cuda_rgb_preset_is_biggan_like():
    cfg, desc = resolve_config(TrainConfig(data="folder:/x/pets/"), num_images=SMALL_DATA_IMAGES,
                               channels=3, image_size=32, device_type="cuda")
    assert (cfg.arch, cfg.d_steps, cfg.betas, cfg.lr_g, cfg.lr_d) == (
        "resnet", 4, (0.0, 0.999), 2e-4, 2e-4)
    assert cfg.ema_decay == 0.9999 and cfg.channels_last
    assert cfg.diffaug == "none" and cfg.arch_kwargs == {}  # large data: no augmentation
    assert "standard" in desc and cfg.out.endswith("pets")
    assert "-> resnet (width default)," in desc


def test_preset_line_shows_every_architecture_argument():
    # A narrower D or class-conditional BatchNorm changes the networks: the line the run prints
    # (and its run folder keeps) must say so, not only the width.
    _, desc = resolve_config(
        TrainConfig(data="mnist5k", arch_kwargs={"width": 32, "d_width": 16, "cbn": True}),
        num_images=5000, channels=1, image_size=28, device_type="cpu")
    assert "-> dcgan (width 32, d_width 16, cbn true)," in desc


def test_amp_is_opt_in_on_cuda():
    """bf16 autocast made a batch-64 step 1.5-1.7x slower than fp32 on an H200 (dcgan and resnet,
    ganaug and the plain PyTorch loop alike; docs/performance.md): the preset leaves it off."""
    def amp(**kw):
        cfg, desc = resolve_config(TrainConfig(**kw), num_images=SMALL_DATA_IMAGES, channels=3,
                                   image_size=32, device_type="cuda")
        return cfg.amp, "AMP" in desc
    assert amp() == (False, False)
    assert amp(amp=True) == (True, True)


def test_small_rgb_gets_color_and_wgan_gp_gets_its_optimiser():
    cfg, _ = resolve_config(TrainConfig(loss="wgan-gp"), num_images=500, channels=3,
                            image_size=32, device_type="cpu")
    assert cfg.diffaug == "color,translation,cutout"
    assert (cfg.lr_g, cfg.betas, cfg.d_steps) == (1e-4, (0.0, 0.9), 5)


def test_explicit_values_beat_the_preset_and_steps_change_nothing_else():
    user = TrainConfig(arch="resnet", lr_g=1e-3, diffaug="none", ema_decay=0.5, amp=False)
    cfg, _ = resolve_config(user, num_images=10, channels=3, image_size=32, device_type="cuda")
    assert (cfg.arch, cfg.lr_g, cfg.diffaug, cfg.ema_decay, cfg.amp) == (
        "resnet", 1e-3, "none", 0.5, False)
    short, _ = resolve_config(TrainConfig(steps=6), num_images=10, channels=1, image_size=16,
                              device_type="cpu")
    long, _ = resolve_config(TrainConfig(steps=6000), num_images=10, channels=1, image_size=16,
                             device_type="cpu")
    assert {k: v for k, v in short.to_dict().items() if k != "steps"} == \
        {k: v for k, v in long.to_dict().items() if k != "steps"}


def test_arch_differences_and_merge_saved():
    saved, _ = resolve_config(TrainConfig(data="digits", seed=4), num_images=10, channels=1,
                              image_size=16, device_type="cpu")
    now = merge_saved(TrainConfig(data="digits", steps=99, z_dim=64), saved.to_dict())
    assert now.seed == 4 and now.steps == 99 and now.arch == "dcgan"
    assert arch_differences(saved.to_dict(), now) == [
        "z_dim: 128 (checkpoint) -> 64 (now)"]


@pytest.mark.parametrize("spec, name", [
    ("mnist5k", "mnist5k"), ("folder:./pets/", "pets"), ("npz:/a/b/tiny.npz", "tiny"),
    ("digits?size=16", "digits"), ("torchvision:cifar10", "cifar10"),
])
def test_data_name(spec, name):
    assert data_name(spec) == name


def test_config_fifo_is_refused_without_blocking(tmp_path):
    import os

    from ganaug.config import read_yaml

    fifo = tmp_path / "cfg.yaml"
    os.mkfifo(fifo)
    with pytest.raises(GanaugConfigError, match="is not a regular file"):
        read_yaml(fifo)


def test_dcgan_preset_gives_d_the_faster_learning_rate():
    """TTUR: lr_d 4e-4 against lr_g 2e-4 beat equal rates on 10 CPU-minutes of mnist5k, 3 seeds
    (recall 0.31 ± 0.04 vs 0.21 ± 0.01, intra-class FID 3.85 vs 4.48); on grey images one D step
    at 8e-4 then beat two at 4e-4 (recall 0.546 vs 0.489 on every seed; docs/results.md)."""
    for channels, lr_d, d_steps, shown in ((1, 8e-4, 1, "Adam 0.0002/0.0008"),
                                           (3, 4e-4, 2, "Adam 0.0002/0.0004")):
        cfg, desc = resolve_config(TrainConfig(), num_images=4000, channels=channels,
                                   image_size=28, device_type="cpu")
        assert (cfg.arch, cfg.lr_g, cfg.lr_d, cfg.d_steps) == ("dcgan", 2e-4, lr_d, d_steps)
        assert shown in desc and f"{d_steps} D step(s)" in desc
    mine, _ = resolve_config(TrainConfig(lr_d=1e-4), num_images=4000, channels=1, image_size=28,
                             device_type="cpu")
    assert mine.lr_d == 1e-4  # a user's rate is kept


def test_d_steps_has_an_upper_bound_that_says_why():
    # d_steps: 10**30 was accepted, and the first generator step never ended
    from ganaug.config import MAX_D_STEPS

    for bad in (10**30, MAX_D_STEPS + 1, "1000"):
        with pytest.raises(GanaugConfigError, match=rf"d_steps must be an integer from 1 to "
                                                    rf"{MAX_D_STEPS}, got {bad!r}\. A generator step "
                                                    r"runs all of them first.*WGAN-GP uses 5"):
            TrainConfig(d_steps=bad)
    assert TrainConfig(d_steps=MAX_D_STEPS).d_steps == MAX_D_STEPS == 100


# -- hostile YAML: duplicate keys, alias bombs, deep nesting, other encodings --------------------
def test_a_key_given_twice_is_refused_naming_the_key_and_its_lines(tmp_path):
    # PyYAML keeps the last one silently: `steps: 3` appended under `steps: 5000` won
    for text, key in [("steps: 5000\nbatch_size: 8\nsteps: 3\n", "steps"),
                      ("arch_kwargs:\n  width: 8\n  width: 64\n", "width")]:
        with pytest.raises(GanaugConfigError, match=rf"gives '{key}' twice \(lines \d and \d\)"
                                                    r".*Keep one"):
            train_config_from_sources(write(tmp_path / "c.yaml", text), {"data": "digits"})
    # a merge key (`<<: *base`) is not a duplicate: the explicit key overrides, as YAML says
    merged = write(tmp_path / "m.yaml", "arch_kwargs:\n  <<: &b {width: 8}\n  width: 16\n")
    assert train_config_from_sources(merged, {"data": "digits"}).arch_kwargs == {"width": 16}


def test_a_yaml_alias_bomb_is_refused_before_it_expands(tmp_path):
    # 8 lines: each level repeats the one before 10 times, 10**7 values once expanded (one line
    # more is 10**8); reading it, then asdict/plain_value copying it, took gigabytes
    levels = ["  a0: &a0 [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]"] + [
        f"  a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 7)]
    bomb = write(tmp_path / "c.yaml", "arch_kwargs:\n" + "\n".join(levels) + "\n")
    with pytest.raises(GanaugConfigError, match=r"expand to more than [\d,]+ values.*aliases"):
        train_config_from_sources(bomb, {"data": "digits"})
    from ganaug.cli_experiment import parse_model_kwargs

    inline = "{" + ", ".join(line.strip() for line in levels) + "}"
    with pytest.raises(GanaugConfigError, match=r"--model-kwargs.*expand to more than"):
        parse_model_kwargs(inline)


def test_yaml_nested_too_deeply_is_a_clean_error(tmp_path):
    deep = write(tmp_path / "c.yaml", "arch_kwargs: {w: " + "[" * 20000 + "]" * 20000 + "}\n")
    with pytest.raises(GanaugConfigError, match=r"nested too deeply"):
        train_config_from_sources(deep, {"data": "digits"})


def test_a_config_in_utf16_is_read_and_bytes_that_are_no_text_are_refused(tmp_path):
    utf16 = tmp_path / "c.yaml"
    utf16.write_bytes("steps: 7\n".encode("utf-16"))  # Windows editors write UTF-16 with a BOM
    assert train_config_from_sources(utf16, {"data": "digits"}).steps == 7
    binary = tmp_path / "b.yaml"
    binary.write_bytes(b"steps: 7\n\xff\xfe\xfd\n")  # a UnicodeDecodeError traceback
    with pytest.raises(GanaugConfigError, match=r"is not valid YAML.*UTF-8"):
        train_config_from_sources(binary, {"data": "digits"})
