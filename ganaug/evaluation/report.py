"""The experiment's outputs: per-arm summaries over seeds, the markdown table and report, the CSV,
the accuracy plot, and strict JSON.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ganaug._files import atomic_write_text
from ganaug.evaluation.arms import ARMS
from ganaug.evaluation.stats import paired_comparison, t_interval
from ganaug.plots import pyplot, save_class_grid, save_figure

__all__ = [
    "accuracy_figure",
    "finite_json",
    "format_table",
    "save_accuracy_plot",
    "save_received",
    "summarize",
    "write_outputs",
]


def finite_json(value: Any) -> Any:
    """``value`` with NaN/inf floats replaced by None, so ``json.dumps`` writes strict JSON."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_json(v) for v in value]
    return value


def summarize(cells: list[dict[str, Any]], regimes: Sequence[str], arms: Sequence[str],
              baseline: str) -> list[dict[str, Any]]:
    """One row per (regime, arm): accuracy and balanced accuracy over seeds, per-class means,
    and the paired difference against ``baseline``."""
    rows = []
    for regime in regimes:
        base = {c["seed"]: c for c in cells if c["regime"] == regime and c["arm"] == baseline}
        for arm in arms:
            mine = sorted((c for c in cells if c["regime"] == regime and c["arm"] == arm),
                          key=lambda c: c["seed"])
            if not mine:
                continue
            acc = [c["accuracy"] for c in mine]
            row = {"regime": regime, "arm": arm, "seeds": len(mine),
                   "accuracy": t_interval(acc),
                   "balanced_accuracy": t_interval([c["balanced_accuracy"] for c in mine]),
                   "per_class_accuracy": np.nanmean(
                       [c["per_class_accuracy"] for c in mine], axis=0).tolist(),
                   "wall_s": round(sum(c["wall_s"] for c in mine), 1)}
            paired = [(c["accuracy"], base[c["seed"]]["accuracy"]) for c in mine
                      if c["seed"] in base]
            if arm != baseline and paired:
                row["vs_baseline"] = paired_comparison([a for a, _ in paired],
                                                       [b for _, b in paired])
            rows.append(row)
    return rows


#: Printed under a table with a single-seed difference.
UNTESTED_NOTE = ("untested: a difference from one seed has no spread, interval or p-value and "
                 "may be noise; run 3 or more seeds before acting on it.")


def _fmt_ci(stat: dict[str, Any]) -> str:
    if stat.get("std") is None:
        return f"{stat['mean']:.4f}" + (" (1 seed)" if stat.get("n") == 1 else "")
    ci = "" if stat["low"] is None else f" [{stat['low']:.4f}, {stat['high']:.4f}]"
    return f"{stat['mean']:.4f} ± {stat['std']:.4f}{ci}"


def format_table(doc: dict[str, Any]) -> str:
    """The summary as a markdown table (also printed by the CLI)."""
    base = doc["settings"]["baseline"]
    lines = [("| regime | arm | accuracy mean ± std [95% CI] | balanced acc. | "
             f"diff vs {base} [95% CI] | p |"), "|---|---|---|---|---|---|"]
    untested = False
    for row in doc["summary"]:
        vs = row.get("vs_baseline")
        diff = _fmt_ci(vs) if vs else "—"
        p = f"{vs['p']:.3g}" if vs and vs.get("p") is not None else "—"
        if vs and vs.get("n", 0) < 2:
            diff, p, untested = f"{vs['mean']:+.4f} untested (1 seed)", "untested", True
        lines.append(f"| {row['regime']} | {row['arm']} | {_fmt_ci(row['accuracy'])} | "
                     f"{row['balanced_accuracy']['mean']:.4f} | {diff} | {p} |")
    if untested:
        lines += ["", UNTESTED_NOTE]
    return "\n".join(lines)


def _control_table(doc: dict[str, Any]) -> str:
    """Each GAN arm's paired difference against the best control of its regime."""
    rows = [(v, arm, c) for v in doc.get("verdict") or [] for arm, c in v["comparisons"].items()]
    if not rows:
        return ""
    lines = ["## Against the best control", "",
             "| regime | GAN arm | best control | diff [95% CI] | p |", "|---|---|---|---|---|"]
    for v, arm, c in rows:
        if not c["tested"]:
            diff, p = f"{c['mean']:+.4f} untested (1 seed)", "untested"
        else:
            diff = _fmt_ci(c)
            p = "—" if c["p"] is None else f"{c['p']:.3g}"
        control = c.get("control", v["best_control"])  # of tied best controls, the hardest
        lines.append(f"| {v['regime']} | {arm} | {control} | {diff} | {p} |")
    return "\n".join(lines) + "\n\n"


def _table_text(value: Any) -> str:
    """``value`` as the text of one markdown table cell: ``|`` escaped, line breaks as spaces."""
    return " ".join(str(value).split()).replace("|", r"\|")


def _code(value: Any) -> str:
    """``value`` as one markdown code span (CommonMark): fenced by more backticks than it holds
    in a row, padded where it starts or ends with one; line breaks as spaces."""
    text = " ".join(str(value).splitlines())
    fence = "`" * (max((len(r) for r in re.findall("`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _report(doc: dict[str, Any], samples: dict[str, Path | None]) -> str:
    st, env = doc["settings"], doc["environment"]
    classes = st["classes"]
    out = io.StringIO()
    out.write("# ganaug experiment\n\n")
    if doc.get("verdict"):
        out.write("**Verdict** (each GAN arm against the best non-GAN arm of its regime, "
                  "paired over seeds, win = gain with p < 0.05):\n\n")
        out.write("".join(f"- {v['line']}\n" for v in doc["verdict"]) + "\n")
    tail = "" if st["imbalance"] is None else f", long tail ratio {st['imbalance']}"
    first = f" (from seed {st['first_seed']})" if st.get("first_seed") else ""
    out.write(f"Data {_code(st['data'])}, test {_code(st['test_spec'])} ({st['n_test']} images); regimes "
              f"{', '.join(st['regimes'])} images per class{tail}; {st['seeds']} seeds{first}; "
              f"classifier `{st['backbone']}` (stem {st['stem']}), "
              f"{st['classifier_steps']} steps x {st['batch_size']} images for every arm; GAN "
              f"steps {st['gan_steps'] or 'preset'}"
              f"{'; generator ' + _code(st['generator']) if st['generator'] else ''}.\n\n")
    out.write("Accuracy on the untouched test split: mean ± sample std over seeds, 95% Student-t "
              f"interval; paired difference against `{st['baseline']}` (same seed = same real "
              "subset) with its 95% interval and the two-sided paired t-test p-value.\n\n")
    out.write(format_table(doc) + "\n\n")
    out.write(_control_table(doc))
    out.write("## Per-class accuracy (mean over seeds)\n\n")
    out.write("| regime | arm | " + " | ".join(map(_table_text, classes)) + " |\n")
    out.write("|---|---|" + "---|" * len(classes) + "\n")
    for row in doc["summary"]:
        vals = " | ".join("—" if math.isnan(v) else f"{v:.3f}" for v in row["per_class_accuracy"])
        out.write(f"| {row['regime']} | {row['arm']} | {vals} |\n")
    out.write("\n## Pictures\n\n![accuracy](accuracy.png)\n\n")
    for regime, path in samples.items():
        if path is not None:
            out.write(f"![samples {regime}]({Path(path).name})\n\n")
    out.write(f"## Environment\n\nwall time {doc['wall_s']} s (cells computed in this run or "
              "cached); ")
    out.write(", ".join(f"{k} {v}" for k, v in env.items() if v is not None) + ".\n")
    return out.getvalue()


def _csv(doc: dict[str, Any]) -> str:
    buf = io.StringIO()
    fields = ["regime", "seed", "arm", "accuracy", "balanced_accuracy", "n_real", "train_data",
              "wall_s", "per_class_accuracy"]
    writer = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore")
    writer.writeheader()
    for cell in doc["cells"]:
        writer.writerow({**cell, "per_class_accuracy": json.dumps(cell["per_class_accuracy"])})
    return buf.getvalue()


def save_accuracy_plot(doc: dict[str, Any], path: str | os.PathLike) -> Path:
    """Save :func:`accuracy_figure` of ``doc`` as a PNG at ``path``."""
    return save_figure(accuracy_figure(doc), path, dpi=120)


def accuracy_figure(doc: dict[str, Any]):
    """Test accuracy of each arm, one panel per regime with the arms along the x axis: the mean
    over seeds with its 95% t-interval as an error bar, GAN arms in orange, controls in blue, and
    a dashed line at the best control's mean (see :mod:`ganaug.evaluation.verdict`)."""
    plt = pyplot()
    regimes = doc["settings"]["regimes"]
    arms = doc["settings"]["arms"]
    best = {v["regime"]: v for v in doc.get("verdict") or []}
    width = max(4.5, 0.7 * len(arms) + 1.5)
    fig, axes = plt.subplots(1, len(regimes), figsize=(min(18.0, width * len(regimes)), 4.2),
                             sharey=True, squeeze=False)
    ylims: list[tuple[float, float]] = []
    for ax, regime in zip(axes[0], regimes, strict=True):
        rows = {r["arm"]: r for r in doc["summary"] if r["regime"] == regime}
        shown = [a for a in arms if a in rows]
        xs = np.arange(len(shown))
        spans: list[float] = []
        for x, arm in zip(xs, shown, strict=True):
            acc = rows[arm]["accuracy"]
            err = None
            if acc["low"] is not None:
                err = [[acc["mean"] - acc["low"]], [acc["high"] - acc["mean"]]]
            gan = arm in ARMS and ARMS[arm].uses_gan
            ax.errorbar([x], [acc["mean"]], yerr=err, fmt="o", capsize=5, markersize=7,
                        elinewidth=1.5, color="tab:orange" if gan else "tab:blue")
            ax.annotate(f"{acc['mean']:.3f}", (x, acc["mean"]), xytext=(7, 0),
                        textcoords="offset points", va="center", fontsize=7)
            spans += [acc["mean"] if acc["low"] is None else acc["low"],
                      acc["mean"] if acc["high"] is None else acc["high"]]
        verdict = best.get(regime)
        title = f"{regime} per class" + (
            "" if doc["settings"].get("imbalance") is None else " (long tail)")
        if verdict and verdict.get("control_mean") is not None:
            ax.axhline(verdict["control_mean"], color="tab:blue", linestyle="--", linewidth=1,
                       alpha=0.7)
            # Named in the title: a legend below the axes would cover long tick labels.
            title += f"\ndashed: best control ({verdict['best_control']})"
        ax.set_xticks(xs, shown, rotation=30, ha="right", fontsize=8)
        ax.set_xlim(-0.6, len(shown) - 0.4)
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3, axis="y")
        # Accuracy lives in [0, 1]; a t-interval from few seeds can reach past it (cut off here).
        if spans:
            low, high = max(0.0, min(spans) - 0.05), min(1.02, max(spans) + 0.05)
            ylims.append((low, high))
    if ylims:
        axes[0][0].set_ylim(min(lo for lo, _ in ylims), max(hi for _, hi in ylims))
    axes[0][0].set_ylabel("test accuracy (mean, 95% t-interval)")
    seeds = doc["settings"].get("seeds")
    fig.suptitle(f"test accuracy by arm, {seeds} seed(s)\norange: GAN arms, blue: controls",
                 fontsize=9)
    fig.tight_layout()
    return fig


def write_outputs(out: Path, doc: dict[str, Any], samples: dict[str, Path | None]) -> None:
    """Write ``results.json``, ``results.csv``, ``accuracy.png`` and ``report.md`` into ``out``.

    Args:
        out: the experiment folder.
        doc: the ``results.json`` document of :func:`ganaug.evaluation.run_experiment`.
        samples: regime -> its sample grid (or None), shown in the report.
    """
    atomic_write_text(out / "results.json", json.dumps(finite_json(doc), indent=1) + "\n")
    atomic_write_text(out / "results.csv", _csv(doc))
    save_accuracy_plot(doc, out / "accuracy.png")
    atomic_write_text(out / "report.md", _report(doc, samples))


def save_received(grids: Path, name: str, regime: str, classes, images, labels,
                   keep: torch.Tensor, first: int) -> None:
    """Grids of the synthetic rows (``first:``) an arm's classifier received (``keep``) and of
    those its teacher filter dropped: ``received-<regime>-<arm>.png``, ``dropped-<...>.png``."""
    tag = f"{regime}-{name.replace('+', '_')}"
    received = keep.clone()
    received[:first] = False
    save_class_grid(images[received], labels[received], classes, grids / f"received-{tag}.png",
                    title=f"{name}, regime {regime}, seed 0: synthetic images received")
    if not keep.all():
        save_class_grid(images[~keep], labels[~keep], classes, grids / f"dropped-{tag}.png",
                        title=f"{name}, regime {regime}, seed 0: dropped by the teacher filter")
