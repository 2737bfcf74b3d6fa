"""The experiment's verdict: does any GAN arm beat the best control of its regime?

The best control of a regime is its non-GAN arm with the highest mean test accuracy over seeds
(``real``, ``real+aug``, ``real+weighted``, ...). Every GAN arm is compared with it by the paired
difference over seeds (same seed = same real subset; 95% Student-t interval and the two-sided
paired t-test of :func:`ganaug.evaluation.stats.paired_comparison`). A GAN arm *wins* when its
mean difference is positive and ``p < 0.05``; with one seed nothing is tested.

Controls are ranked on the seeds they all share (when they share any), so a control is not made
best by a seed the others lack. Controls whose means tie (up to float rounding) are all best:
each GAN arm is judged against the one it beats least clearly (the highest p), named in its
comparison's ``control``.

Accuracy, not balanced accuracy, decides: the test split is the untouched, class-balanced one in
long-tail runs too (``--imbalance`` draws only the training subset), so the two agree up to
rounding there, and accuracy is the number the report's table leads with.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

from ganaug.evaluation.arms import ARMS
from ganaug.evaluation.stats import paired_comparison

# Means closer than this are a tie: float sums of the same accuracies in another order differ.
_TIE = 1e-9

__all__ = ["ALPHA", "METRIC", "NO_WIN", "format_verdict", "regime_verdict", "verdicts"]

#: The significance level of a win.
ALPHA = 0.05
#: The metric the verdict ranks and compares arms by.
METRIC = "accuracy"
#: The verdict of a regime where no GAN arm beats the best control.
NO_WIN = "no GAN arm beats the best control here"


def _gan_arms(arms: Iterable[str]) -> set[str]:
    return {a for a in arms if a in ARMS and ARMS[a].uses_gan}


def regime_verdict(cells: list[dict[str, Any]], regime: str, arms: Sequence[str],
                   gan_arms: Iterable[str] | None = None) -> dict[str, Any]:
    """The verdict of one regime from its finished cells.

    Args:
        cells: experiment cells (``regime``, ``seed``, ``arm``, ``accuracy``, ...).
        regime: the regime to judge.
        arms: the arms of the experiment, in report order.
        gan_arms: which of ``arms`` use the GAN (default: from :data:`ganaug.evaluation.ARMS`).

    Returns:
        ``{"regime", "metric", "best_control", "control_mean", "tied_controls", "seeds",
        "comparisons", "winner", "status", "line"}``: ``best_control`` is the first of the
        controls tied for the highest mean on the seeds the controls share (``tied_controls``,
        usually one), ``control_mean`` that mean; ``comparisons`` maps each GAN arm to its
        paired comparison against the tied control it beats least clearly (``control``,
        ``mean``, ``low``, ``high``, ``p``, ``tested``, ``n``); ``winner`` is the GAN arm with the largest significant gain or None; ``status``
        is ``"win"``, ``"no win"``, ``"untested"`` (one seed) or ``"not comparable"`` (no GAN
        arm or no control); ``line`` is the one-line verdict.
    """
    gan = set(_gan_arms(arms) if gan_arms is None else gan_arms)
    by_arm: dict[str, dict[int, float]] = {}
    for c in cells:
        if c["regime"] == regime and c["arm"] in arms:
            by_arm.setdefault(c["arm"], {})[c["seed"]] = c[METRIC]
    controls = [a for a in arms if a in by_arm and a not in gan]
    gans = [a for a in arms if a in by_arm and a in gan]
    out: dict[str, Any] = {"regime": regime, "metric": METRIC, "best_control": None,
                           "control_mean": None, "tied_controls": [], "seeds": 0, "comparisons": {},
                           "winner": None, "status": "not comparable"}
    if not controls or not gans:
        missing = "no non-GAN control arm" if not controls else "no GAN arm"
        out["line"] = f"regime {regime}: not comparable ({missing} in this run)"
        return out
    # Ranked on the seeds every control has, so an extra (easy) seed makes no control best.
    shared = set.intersection(*(set(by_arm[a]) for a in controls))
    means = {a: _mean([by_arm[a][s] for s in sorted(shared or by_arm[a])]) for a in controls}
    top_mean = max(means.values())
    tied = [a for a in controls if means[a] >= top_mean - _TIE]  # in report order
    best = tied[0]
    out.update(best_control=best, control_mean=means[best], tied_controls=tied)
    for arm in gans:
        options = []
        for control in tied:
            seeds = sorted(set(by_arm[arm]) & set(by_arm[control]))
            if seeds:
                c = paired_comparison([by_arm[arm][s] for s in seeds],
                                      [by_arm[control][s] for s in seeds])
                options.append({"control": control, **c})
        if options:  # the least clear win: the highest p (none is highest), then the least gain
            out["comparisons"][arm] = max(options, key=lambda c: (
                math.inf if c["p"] is None else c["p"], -c["mean"]))
    if not out["comparisons"]:
        out["line"] = (f"regime {regime}: not comparable (no seed has both a GAN arm and "
                       f"{' or '.join(tied)})")
        return out
    out["seeds"] = max(c["n"] for c in out["comparisons"].values())
    top = max(out["comparisons"], key=lambda a: out["comparisons"][a]["mean"])
    wins = [a for a, c in out["comparisons"].items()
            if c["tested"] and c["mean"] > 0 and c["p"] is not None and c["p"] < ALPHA]
    if wins:
        out["winner"] = max(wins, key=lambda a: out["comparisons"][a]["mean"])
        out["status"] = "win"
        c = out["comparisons"][out["winner"]]
        out["line"] = (f"regime {regime}: {out['winner']} beats the best control "
                       f"{_named(c['control'], tied)} by {_diff(c)} ({c['n']} seeds)")
    elif out["seeds"] < 2:
        out["status"] = "untested"
        c = out["comparisons"][top]
        out["line"] = (f"regime {regime}: untested (1 seed): best GAN arm {top} "
                       f"{c['mean']:+.4f} vs the best control {best}; run 3 or more seeds")
    else:
        out["status"] = "no win"
        c = out["comparisons"][top]
        out["line"] = (f"regime {regime}: {NO_WIN} (best control {_named(best, tied)} "
                       f"{out['control_mean']:.4f}; best GAN arm {top} {_diff(c)}"
                       f"{'' if c['control'] == best else ' vs ' + c['control']})")
    return out


def _mean(values: list[float]) -> float:
    return math.fsum(values) / len(values)


def _named(control: str, tied: list[str]) -> str:
    """``control``, and the controls tied with it."""
    others = [a for a in tied if a != control]
    return control + (f" (tied with {', '.join(others)})" if others else "")


def _diff(c: dict[str, Any]) -> str:
    ci = "" if c.get("low") is None else f" [{c['low']:+.4f}, {c['high']:+.4f}]"
    p = "p n/a" if c.get("p") is None else f"p = {c['p']:.3g}"
    return f"{c['mean']:+.4f}{ci}, {p}"


def verdicts(cells: list[dict[str, Any]], regimes: Sequence[str],
             arms: Sequence[str]) -> list[dict[str, Any]]:
    """:func:`regime_verdict` of every regime, in order."""
    return [regime_verdict(cells, r, arms) for r in regimes]


def format_verdict(doc: dict[str, Any]) -> str:
    """The verdict lines of a ``results.json`` document, one per regime."""
    return "\n".join(v["line"] for v in doc.get("verdict") or [])
