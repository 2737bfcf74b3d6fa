"""ganaug.evaluation.verdict: each GAN arm against the best control, and the one-line verdict."""

from __future__ import annotations

import pytest

from ganaug.evaluation.report import summarize, write_outputs
from ganaug.evaluation.verdict import NO_WIN, format_verdict, regime_verdict, verdicts

ARMS = ["real", "real+aug", "real+weighted", "real+gan", "real+aug+gan"]


def _cells(table, regime="10"):
    """``{arm: [acc per seed]}`` -> experiment cells."""
    return [{"regime": regime, "seed": s, "arm": arm, "accuracy": acc,
             "balanced_accuracy": acc - 0.01, "per_class_accuracy": [acc, acc], "wall_s": 1.0,
             "n_real": 20, "train_data": "x"}
            for arm, accs in table.items() for s, acc in enumerate(accs)]


# real+weighted (mean 0.82) is the best control, not real+aug (0.78): the GAN must beat it.
CONTROLS = {"real": [0.70, 0.72, 0.71], "real+aug": [0.78, 0.77, 0.79],
            "real+weighted": [0.80, 0.83, 0.83]}


def test_a_gan_arm_that_wins_significantly_is_named_with_its_interval_and_p():
    # differences vs real+weighted: 0.05, 0.04, 0.06 -> mean 0.05, t = 8.66, p = 0.0131
    cells = _cells({**CONTROLS, "real+gan": [0.70, 0.70, 0.70],
                    "real+aug+gan": [0.85, 0.87, 0.89]})
    v = regime_verdict(cells, "10", ARMS)
    assert (v["best_control"], v["winner"], v["status"], v["seeds"]) == (
        "real+weighted", "real+aug+gan", "win", 3)
    c = v["comparisons"]["real+aug+gan"]
    assert c["mean"] == pytest.approx(0.05) and c["p"] == pytest.approx(0.0131, abs=1e-4)
    assert c["low"] == pytest.approx(0.05 - 4.302653 * 0.01 / 3 ** 0.5, abs=1e-6)
    assert v["comparisons"]["real+gan"]["mean"] == pytest.approx(-0.12)
    assert v["line"] == (f"regime 10: real+aug+gan beats the best control real+weighted by "
                         f"+0.0500 [{c['low']:+.4f}, {c['high']:+.4f}], p = 0.0131 (3 seeds)")


def test_a_gan_arm_that_beats_real_aug_but_loses_to_the_best_control_does_not_win():
    # real+aug+gan is +0.04 over real+aug every seed, but -0.0 to -0.02 under real+weighted
    cells = _cells({**CONTROLS, "real+gan": [0.60, 0.62, 0.61],
                    "real+aug+gan": [0.82, 0.81, 0.83]})
    v = regime_verdict(cells, "10", ARMS)
    assert v["winner"] is None and v["status"] == "no win"
    assert v["comparisons"]["real+aug+gan"]["mean"] == pytest.approx(0.0)
    assert v["line"].startswith(f"regime 10: {NO_WIN} (best control real+weighted 0.8200; "
                                "best GAN arm real+aug+gan +0.0000 [")


def test_a_losing_gan_arm_and_a_tie_are_no_win():
    lose = regime_verdict(_cells({**CONTROLS, "real+gan": [0.50, 0.52, 0.51]}), "10", ARMS)
    assert lose["status"] == "no win" and lose["comparisons"]["real+gan"]["mean"] < -0.3
    assert lose["comparisons"]["real+gan"]["p"] < 0.001
    # identical to the best control on every seed: no spread, no p, no win
    tie = regime_verdict(_cells({**CONTROLS, "real+gan": CONTROLS["real+weighted"]}), "10",
                         ARMS)
    assert tie["status"] == "no win" and tie["winner"] is None
    assert tie["comparisons"]["real+gan"]["p"] is None
    assert tie["line"].endswith("best GAN arm real+gan +0.0000 [+0.0000, +0.0000], p n/a)")


def test_a_positive_but_insignificant_gain_is_no_win():
    # differences 0.10, -0.05, 0.02: mean +0.0233, p = 0.66
    cells = _cells({**CONTROLS, "real+gan": [0.90, 0.78, 0.85]})
    v = regime_verdict(cells, "10", ARMS)
    assert v["comparisons"]["real+gan"]["mean"] == pytest.approx(0.07 / 3)
    assert v["status"] == "no win" and v["comparisons"]["real+gan"]["p"] > 0.05


def test_one_seed_is_untested_even_with_a_large_gain():
    cells = _cells({"real+aug": [0.70], "real+gan": [0.95]})
    v = regime_verdict(cells, "10", ["real+aug", "real+gan"])
    assert (v["status"], v["winner"], v["seeds"]) == ("untested", None, 1)
    assert v["comparisons"]["real+gan"]["tested"] is False
    assert v["line"] == ("regime 10: untested (1 seed): best GAN arm real+gan +0.2500 vs the "
                         "best control real+aug; run 3 or more seeds")


def test_regimes_without_a_gan_arm_or_a_control_are_not_comparable():
    only_controls = regime_verdict(_cells(CONTROLS), "10", ARMS)
    assert only_controls["status"] == "not comparable"
    assert only_controls["line"] == "regime 10: not comparable (no GAN arm in this run)"
    only_gan = regime_verdict(_cells({"gan": [0.5, 0.6]}), "10", ["gan"])
    assert only_gan["line"] == "regime 10: not comparable (no non-GAN control arm in this run)"


def test_each_regime_is_judged_on_its_own_cells_and_the_verdict_heads_report_md(tmp_path):
    win = {**CONTROLS, "real+aug+gan": [0.85, 0.87, 0.89]}
    lose = {**CONTROLS, "real+aug+gan": [0.60, 0.61, 0.62]}
    cells = _cells(win, "10") + _cells(lose, "all")
    arms = ["real", "real+aug", "real+weighted", "real+aug+gan"]
    vs = verdicts(cells, ["10", "all"], arms)
    assert [v["status"] for v in vs] == ["win", "no win"]
    settings = {"baseline": "real+aug", "regimes": ["10", "all"], "arms": arms,
                "classes": ["a", "b"], "imbalance": None, "data": "digits", "test_spec": "t",
                "n_test": 9, "seeds": 3, "backbone": "resnet10t", "stem": "auto",
                "classifier_steps": 5, "batch_size": 8, "gan_steps": None, "generator": None}
    doc = {"settings": settings, "environment": {}, "wall_s": 1.0, "cells": cells,
           "summary": summarize(cells, ["10", "all"], arms, "real+aug"), "verdict": vs}
    assert format_verdict(doc).splitlines() == [vs[0]["line"], vs[1]["line"]]
    write_outputs(tmp_path, doc, {})
    lines = (tmp_path / "report.md").read_text().splitlines()
    assert lines[2].startswith("**Verdict**")
    assert lines[4:6] == [f"- {vs[0]['line']}", f"- {vs[1]['line']}"]
    report = "\n".join(lines)
    assert "| 10 | real+aug+gan | real+weighted | 0.0500 ± 0.0100 [" in report
    assert "| all | real+aug+gan | real+weighted | -0.2100 ± 0.0100 [" in report


def test_the_same_gain_on_every_seed_is_no_win():
    # +0.1 on both seeds (0.9 - 0.8 and 0.8 - 0.7 differ by float rounding): scipy's p was
    # 3.5e-16, and the verdict called a two-seed run a significant win.
    cells = _cells({"real+aug": [0.8, 0.7], "real+gan": [0.9, 0.8]})
    v = regime_verdict(cells, "10", ["real+aug", "real+gan"])
    assert v["status"] == "no win" and v["winner"] is None
    assert v["comparisons"]["real+gan"]["p"] is None
    assert v["line"] == (f"regime 10: {NO_WIN} (best control real+aug 0.7500; best GAN arm "
                         "real+gan +0.1000 [+0.1000, +0.1000], p n/a)")


def test_the_best_control_is_ranked_on_the_seeds_the_controls_share():
    # real+aug's mean (0.765) is lifted by an easy seed 0 that real+weighted (0.753) lacks; on
    # seeds 1-3, which every arm has, real+weighted is best by 0.05. The GAN arm was called a
    # win over real+aug there (+0.032, p = 0.019), though it loses to real+weighted every seed.
    cells = _cells({"real+aug": [0.95, 0.70, 0.71, 0.70],
                    "real+weighted": [-1, 0.75, 0.76, 0.75],
                    "real+gan": [-1, 0.73, 0.735, 0.74]})
    cells = [c for c in cells if c["accuracy"] >= 0]  # seed 0 only for real+aug
    v = regime_verdict(cells, "10", ["real+aug", "real+weighted", "real+gan"])
    assert v["best_control"] == "real+weighted"
    assert v["control_mean"] == pytest.approx(0.7533333)
    assert v["status"] == "no win" and v["comparisons"]["real+gan"]["mean"] < 0


def test_a_tie_for_best_control_needs_a_win_over_each():
    # real and real+aug tie at 0.80 (0.8000000000000002 and 0.7999999999999999 as float means,
    # so real was taken as best); real+gan beats real by 0.04-0.05 each seed (p = 0.005), the
    # equally good real+aug by 0.03, 0.08, 0.03 (p = 0.11): that is no win.
    cells = _cells({"real": [0.80, 0.79, 0.81], "real+aug": [0.82, 0.76, 0.82],
                    "real+gan": [0.85, 0.84, 0.85]})
    v = regime_verdict(cells, "10", ["real", "real+aug", "real+gan"])
    c = v["comparisons"]["real+gan"]
    assert v["status"] == "no win" and v["winner"] is None
    assert c["control"] == "real+aug" and c["p"] > 0.05
    assert (v["best_control"], v["tied_controls"]) == ("real", ["real", "real+aug"])
    assert v["line"] == (f"regime 10: {NO_WIN} (best control real (tied with real+aug) 0.8000; "
                         f"best GAN arm real+gan +0.0467 [{c['low']:+.4f}, {c['high']:+.4f}], "
                         f"p = 0.107 vs real+aug)")
