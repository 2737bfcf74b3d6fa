"""ganaug.evaluation.report: summaries over seeds, the markdown table, the CSV and strict JSON."""

from __future__ import annotations

import csv
import io
import json
import math
import random

import pytest

from ganaug.evaluation.report import finite_json, format_table, summarize, write_outputs


def _cell(regime, seed, arm, acc, per_class=(0.5, 1.0)):
    return {"regime": regime, "seed": seed, "arm": arm, "accuracy": acc,
            "balanced_accuracy": acc - 0.01, "per_class_accuracy": list(per_class),
            "wall_s": 1.25, "n_real": 20, "train_data": "20 real"}


CELLS = [_cell("10", 0, "real+aug", 0.80), _cell("10", 1, "real+aug", 0.75),
         _cell("10", 2, "real+aug", 0.80),
         _cell("10", 0, "gan", 0.90, (float("nan"), 1.0)), _cell("10", 1, "gan", 0.80),
         _cell("10", 2, "gan", 0.85)]


def test_finite_json_replaces_nan():
    assert finite_json({"a": [1.0, float("nan")], "b": float("inf")}) == {"a": [1.0, None],
                                                                         "b": None}
    assert finite_json({"t": (1, 2.5), "s": "nan"}) == {"t": [1, 2.5], "s": "nan"}


def test_summarize_pairs_each_arm_with_the_baseline_by_seed():
    rows = summarize(CELLS, ["10"], ["real+aug", "gan"], "real+aug")
    base, gan = rows
    assert (base["arm"], base["seeds"], base["wall_s"]) == ("real+aug", 3, 3.8)
    assert base["accuracy"]["mean"] == pytest.approx(2.35 / 3)
    assert "vs_baseline" not in base
    # differences 0.10, 0.05, 0.05 (see test_stats): mean 1/15, paired t = 4.0, p = 0.0572
    assert gan["vs_baseline"]["mean"] == pytest.approx(1 / 15)
    assert gan["vs_baseline"]["p"] == pytest.approx(0.0572, abs=1e-4)
    assert gan["per_class_accuracy"] == pytest.approx([0.5, 1.0])  # NaN seeds are skipped
    assert gan["balanced_accuracy"]["mean"] == pytest.approx(2.55 / 3 - 0.01)


def _doc():
    rows = summarize(CELLS, ["10"], ["real+aug", "gan"], "real+aug")
    settings = {"baseline": "real+aug", "regimes": ["10"], "arms": ["real+aug", "gan"],
                "classes": ["a", "b"], "imbalance": None, "data": "digits", "test_spec": "t",
                "n_test": 9, "seeds": 3, "backbone": "resnet10t", "stem": "auto",
                "classifier_steps": 5, "batch_size": 8, "gan_steps": None, "generator": None}
    return {"settings": settings, "environment": {"torch": "x", "gpu": None}, "wall_s": 2.0,
            "summary": rows, "cells": CELLS}


def test_format_table_rows():
    lines = format_table(_doc()).splitlines()
    assert lines[0] == ("| regime | arm | accuracy mean ± std [95% CI] | balanced acc. | "
                        "diff vs real+aug [95% CI] | p |")
    assert lines[2].startswith("| 10 | real+aug | 0.7833 ± 0.0289 [") and lines[2].endswith(
        "| 0.7733 | — | — |")
    assert lines[3].startswith("| 10 | gan | 0.8500 ± 0.0500 [") and lines[3].endswith("| 0.0572 |")


def test_write_outputs(tmp_path):
    doc = _doc()
    write_outputs(tmp_path, doc, {"10": None})
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["cells"][3]["per_class_accuracy"] == [None, 1.0]
    rows = list(csv.DictReader(io.StringIO((tmp_path / "results.csv").read_text())))
    assert [r["arm"] for r in rows] == ["real+aug"] * 3 + ["gan"] * 3
    assert json.loads(rows[3]["per_class_accuracy"])[1] == 1.0 and rows[0]["accuracy"] == "0.8"
    report = (tmp_path / "report.md").read_text()
    assert "| 10 | gan | 0.500 | 1.000 |" in report and "![accuracy](accuracy.png)" in report
    assert (tmp_path / "accuracy.png").stat().st_size > 1000
    assert math.isnan(doc["cells"][3]["per_class_accuracy"][0])  # the document is not changed


def test_a_single_seed_difference_is_marked_untested():
    cells = [_cell("10", 0, "real+aug", 0.80), _cell("10", 0, "gan", 0.86)]
    rows = summarize(cells, ["10"], ["real+aug", "gan"], "real+aug")
    assert rows[1]["vs_baseline"]["tested"] is False and rows[1]["vs_baseline"]["p"] is None
    doc = {**_doc(), "summary": rows, "cells": cells}
    doc["settings"] = {**doc["settings"], "seeds": 1}
    lines = format_table(doc).splitlines()
    assert lines[2] == "| 10 | real+aug | 0.8000 (1 seed) | 0.7900 | — | — |"
    assert lines[3] == ("| 10 | gan | 0.8600 (1 seed) | 0.8500 | +0.0600 untested (1 seed) | "
                        "untested |")
    assert lines[-1].startswith("untested: a difference from one seed has no spread")


def test_report_md_of_one_seed_says_untested(tmp_path):
    cells = [_cell("10", 0, "real+aug", 0.80), _cell("10", 0, "gan", 0.86)]
    doc = {**_doc(), "summary": summarize(cells, ["10"], ["real+aug", "gan"], "real+aug"),
           "cells": cells}
    write_outputs(tmp_path, doc, {"10": None})
    report = (tmp_path / "report.md").read_text()
    assert "+0.0600 untested (1 seed) | untested |" in report
    assert "run 3 or more seeds" in report


def test_three_seed_differences_are_tested_and_carry_no_note():
    assert summarize(CELLS, ["10"], ["real+aug", "gan"], "real+aug")[1]["vs_baseline"]["tested"]
    assert "untested" not in format_table(_doc())


def test_accuracy_plot_of_one_regime_puts_the_arms_along_x_with_their_intervals():
    from matplotlib.collections import LineCollection

    from ganaug.evaluation.report import accuracy_figure
    from ganaug.evaluation.verdict import verdicts

    doc = {**_doc(), "verdict": verdicts(CELLS, ["10"], ["real+aug", "gan"])}
    fig = accuracy_figure(doc)
    (ax,) = fig.axes
    assert [t.get_text() for t in ax.get_xticklabels()] == ["real+aug", "gan"]
    bars = [c for c in ax.collections if isinstance(c, LineCollection)]
    spans = sorted(v for bar in bars for seg in bar.get_segments() for v in seg[:, 1])
    expect = sorted(r["accuracy"][k] for r in doc["summary"] for k in ("low", "high"))
    assert spans == pytest.approx(expect)
    # the dashed line at the best control (real+aug, mean 0.7833)
    assert ax.get_lines()[-1].get_ydata()[0] == pytest.approx(2.35 / 3)
    lo, hi = ax.get_ylim()
    assert lo >= 0.0 and hi <= 1.02


def test_accuracy_plot_text_does_not_overlap_with_long_arm_names():
    """The long-tail run's seven arms: no label, note or title may cover a tick label."""
    from ganaug.evaluation.report import accuracy_figure
    from ganaug.evaluation.verdict import verdicts

    arms = ["real+aug", "real+weighted", "real+oversample", "real+weighted+gan",
            "real+oversample+gan", "real+aug+kd", "real+aug+gan+kd"]
    rng = random.Random(0)
    cells = [_cell("all", s, arm, 0.90 + 0.01 * i + rng.uniform(0.0, 0.01))
             for i, arm in enumerate(arms) for s in range(3)]
    settings = {**_doc()["settings"], "regimes": ["all"], "arms": arms, "imbalance": 50.0}
    doc = {"settings": settings, "summary": summarize(cells, ["all"], arms, "real+aug"),
           "verdict": verdicts(cells, ["all"], arms), "cells": cells}
    fig = accuracy_figure(doc)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    (ax,) = fig.axes
    ticks = [t.get_window_extent(renderer) for t in ax.get_xticklabels()]
    others = [t for t in fig.findobj(lambda o: hasattr(o, "get_text") and o.get_text())
              if t not in ax.get_xticklabels()]
    assert any("best control (real+aug+kd)" in t.get_text() for t in others)
    for text in others:
        box = text.get_window_extent(renderer)
        assert not any(box.overlaps(tick) for tick in ticks), text.get_text()


def test_report_keeps_its_tables_whole_with_hostile_class_names_and_specs(tmp_path):
    # Folder names may hold |, backticks, even a newline: each split the per-class table (a `|`
    # made a third column, a newline ended the table), and a backtick in a spec broke its code span.
    doc = _doc()
    doc["settings"].update(classes=["cat|dog", "new\nline"], data="folder:/d/`x`",
                           test_spec="folder:/t|u", generator="/g/a`b.safetensors")
    write_outputs(tmp_path, doc, {})
    report = (tmp_path / "report.md").read_text()
    table = report[report.index("## Per-class"):report.index("## Pictures")].strip().splitlines()
    assert table[2] == r"| regime | arm | cat\|dog | new line |"
    assert table[3] == "|---|---|---|---|"
    assert [_columns(row) for row in table[2:]] == [4] * 4
    assert "Data `` folder:/d/`x` ``, test `folder:/t|u` (9 images)" in report
    assert "generator ``/g/a`b.safetensors``." in report


def _columns(row):
    """The cells of a markdown table row, as GitHub splits it (a `\\|` is no divider)."""
    return len(row.replace(r"\|", "").strip().strip("|").split("|"))
