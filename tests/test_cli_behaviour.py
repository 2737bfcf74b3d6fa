"""The CLI behaves like a good one: usage per command, help and examples, --threads, clean
errors for hostile arguments (issue 14 point 6, issue 12 point 7)."""

from __future__ import annotations

import argparse

import pytest
import torch

from ganaug.cli import build_parser, main

COMPUTING = [["train", "--data", "digits"], ["sample", "F", "--out", "x.png"],
             ["export", "F", "--out", "d", "--n-per-class", "1"],
             ["evaluate", "F", "--data", "digits"], ["experiment", "--data", "d", "--out", "o"],
             ["demo"], ["bench", "train"], ["data", "info", "digits"]]


def _subparsers(parser: argparse.ArgumentParser, prefix=()):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _subparsers(sub, (*prefix, name))
            return
    yield " ".join(prefix), parser


COMMANDS = dict(_subparsers(build_parser()))


def test_every_command_is_seen():
    assert set(COMMANDS) == {"data info", "train", "info", "sample", "export", "evaluate",
                             "experiment", "demo", "bench"}


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_flag_has_help_and_every_command_an_example(name):
    parser = COMMANDS[name]
    missing = [a.option_strings or a.dest for a in parser._actions if not a.help]
    assert missing == []
    assert parser.epilog.startswith("example:\n  ganaug " + name.split()[0])


@pytest.mark.parametrize("argv", COMPUTING, ids=lambda a: " ".join(a[:2]))
def test_threads_on_every_computing_command(argv):
    args = build_parser().parse_args([*argv, "--threads", "2"])
    assert args.threads == 2


def test_threads_are_set_before_the_work(monkeypatch):
    seen = {}

    def fake_data_info(args):
        seen["threads"] = torch.get_num_threads()
        return 0

    monkeypatch.setattr("ganaug.cli._cmd_data_info", fake_data_info)
    before = torch.get_num_threads()
    try:
        assert main(["data", "info", "digits", "--threads", "1"]) == 0
        assert seen["threads"] == 1
    finally:
        torch.set_num_threads(before)
    assert not any(a.dest == "threads" for a in COMMANDS["info"]._actions)  # reads a header


@pytest.mark.parametrize("argv", COMPUTING, ids=lambda a: " ".join(a[:2]))
def test_threads_have_an_upper_bound_on_every_computing_command(argv, capsys):
    # --threads 10**30 was a raw ValueError ("Overflow when unpacking long long") from
    # torch.set_num_threads; --threads 100000 asked OpenMP for 100,000 threads
    from ganaug._checks import most_threads

    for text in (str(10**30), str(most_threads() + 1)):
        with pytest.raises(SystemExit) as exit_info:
            build_parser().parse_args([*argv, "--threads", text])
        assert exit_info.value.code == 2
        assert f"must be at most {most_threads()} (4 per CPU" in capsys.readouterr().err
    assert build_parser().parse_args([*argv, "--threads", str(most_threads())]).threads == \
        most_threads()


@pytest.mark.parametrize(("argv", "usage"), [
    (["train", "--data", "digits", "--bogus"], "usage: ganaug train"),
    (["data", "info", "digits", "--bogus"], "usage: ganaug data info"),
    (["sample", "m.safetensors", "--out", "x.png", "--nope", "1"], "usage: ganaug sample"),
])
def test_unknown_flag_prints_that_commands_usage(argv, usage, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(usage)
    assert f"{usage[7:]}: error: unrecognized arguments: {argv[-1] if argv[-1] != '1' else '--nope 1'}" in err


@pytest.mark.parametrize(("argv", "message"), [
    (["sample", "m", "--out", "x.png", "--seed", "-1"], "argument --seed: must be an integer >= 0, got -1"),
    (["sample", "m", "--out", "x.png", "--seed", str(2**70)], "argument --seed: must be below 2**63"),
    (["sample", "m", "--out", "x.png", "--n-per-class", "0"], "must be an integer >= 1, got 0"),
    (["data", "info", "digits", "--per-row", "0"], "argument --per-row: must be an integer >= 1"),
    (["data", "info", "digits", "--imbalance", "inf"], "argument --imbalance: must be a finite"),
    (["export", "m", "--out", "d", "--n-per-class", "x"], "expected an integer, got 'x'"),
    (["train", "--data", "digits", "--threads", "0"], "argument --threads: must be an integer >= 1"),
])
def test_hostile_numbers_are_refused_with_usage(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_out_that_is_a_file_or_folder_is_a_clean_error(model_file, tmp_path, capsys):
    a_file = tmp_path / "a_file"
    a_file.write_text("mine")
    assert main(["sample", str(model_file), "--out", str(a_file / "x.png")]) == 2
    assert "Cannot write" in capsys.readouterr().err
    assert main(["sample", str(model_file), "--out", str(tmp_path)]) == 2
    assert "it is a folder" in capsys.readouterr().err
    assert a_file.read_text() == "mine"


def test_experiment_checks_the_generator_before_any_compute(model_file, tmp_path, capsys,
                                                            monkeypatch):
    monkeypatch.setattr("ganaug.evaluation.run_experiment",
                        lambda *a, **k: pytest.fail("spent compute"))
    assert main(["experiment", "--data", "digits", "--out", str(tmp_path / "x"),
                 "--generator", str(tmp_path / "missing.safetensors")]) == 2
    assert "No model file at" in capsys.readouterr().err
    assert main(["experiment", "--data", "digits", "--out", str(tmp_path / "x"),
                 "--generator", str(model_file)]) == 2
    err = capsys.readouterr().err
    assert "was trained on other classes than --data digits" in err
    assert "the generator has ['a', 'b', 'c'] that the data lacks" in err


def test_experiment_arms_help_names_every_arm():
    from ganaug.evaluation.arms import ARMS

    arms = next(a for a in COMMANDS["experiment"]._actions if a.dest == "arms")
    listed = arms.help.split(": ", 1)[1].split(" (")[0].split(",")
    assert sorted(listed) == sorted(ARMS)


def test_ctrl_c_before_the_first_step_says_interrupted(monkeypatch, capsys, tmp_path):
    """A bare KeyboardInterrupt (Ctrl-C while the data loads) has no message: the CLI still
    says what happened instead of printing 'ganaug: ' and nothing else."""
    from ganaug.training import Trainer

    def interrupted(self):
        raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "fit", interrupted)
    assert main(["train", "--data", "digits", "--out", str(tmp_path / "run")]) == 130
    assert capsys.readouterr().err.splitlines()[-1] == "ganaug: interrupted"


def test_a_closed_pipe_ends_quietly(monkeypatch, capsys, tmp_path):
    """`ganaug data info digits | head -1`: the reader closes the pipe. BrokenPipeError is an
    OSError, and the OSError branch came first: 'ganaug: error: ...' and status 2."""
    from ganaug import cli

    def closed(threads):  # the first thing main runs inside its error handling
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(cli, "set_threads", closed)
    with open(tmp_path / "stdout", "w") as out:
        monkeypatch.setattr("sys.stdout", out)
        assert main(["data", "info", "digits"]) == 0
    assert "error" not in capsys.readouterr().err


# -- library messages speak Python, the CLI prints flags (cli_args.to_flags) ---------------------
@pytest.mark.parametrize("python, cli", [
    ("Pass resume=True to continue it, or choose another out= for a new run.",
     "Pass --resume to continue it, or choose another --out for a new run."),
    ("a lower learning rate (lr_g=/lr_d=, e.g. half of 0.0004), amp=False",
     "a lower learning rate (--lr-g/--lr-d, e.g. half of 0.0004), --no-amp"),
    ("Use e.g. size=32, or split='all'.", "Use e.g. --size 32, or --split all."),
    ("Use image_size=28, batch_size=24, num_workers=0, fmt='png'.",
     "Use --size 28, --batch 24, --workers 0, --format png."),
    ("classes=['a', 'b'] or classes=[...]; out='/tmp/x y' is a file, out='' too",
     "--classes a,b or --classes ...; --out '/tmp/x y' is a file, --out '' too"),
    ("policy (e.g. diffaug='translation,cutout'); lr_g=2e-4; data=folder:PATH.",
     "policy (e.g. --diffaug translation,cutout); --lr-g 2e-4; --data folder:PATH."),
    # kept: names outside the mapping, attributes, keys, comparisons, the template's subject
    ("cache='x' r1_gamma=1 cfg.steps=3 first_seed=2 steps==3 kd_alpha must be",
     "cache='x' r1_gamma=1 cfg.steps=3 --first-seed 2 steps==3 kd_alpha must be"),
])
def test_to_flags_turns_argument_mentions_into_flags(python, cli):
    from ganaug.cli_args import to_flags

    assert to_flags(python) == cli


def test_every_flag_to_flags_names_is_an_option_of_a_command():
    from ganaug.cli_args import FLAGS

    options = {s for parser in COMMANDS.values() for a in parser._actions
               for s in a.option_strings}
    assert sorted(set(FLAGS.values()) - options) == []
    assert "--no-amp" in options  # what amp=False becomes


def test_one_refusal_names_the_flag_on_the_cli_and_the_argument_in_python(tmp_path, capsys):
    from ganaug import TrainConfig, Trainer
    from ganaug.errors import GanaugTrainingError

    out = tmp_path / "empty"
    out.mkdir()
    with pytest.raises(GanaugTrainingError, match=r"Check out=, or drop resume=True") as err:
        Trainer(TrainConfig(data="digits", steps=1, out=str(out), resume=True)).fit()
    assert "--" not in str(err.value)
    assert main(["train", "--data", "digits", "--steps", "1", "--out", str(out),
                 "--resume"]) == 2
    printed = capsys.readouterr().err
    assert "Check --out, or drop --resume to start a new run." in printed
    assert "resume=True" not in printed and "out=" not in printed
