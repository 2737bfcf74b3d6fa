"""Timing and memory helpers of the benchmarks: synchronised wall clocks, alternated rounds, RSS.

Private to :mod:`ganaug.bench` and the scripts in ``benchmarks/``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from ganaug._files import atomic_write_text


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def rss_mb() -> float:
    """Current resident set size of this process in MiB."""
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def peak_memory_mb(device: torch.device) -> float | None:
    """Peak CUDA memory allocated on ``device``, or the process's peak RSS on the CPU (MiB)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    try:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    except ImportError:  # pragma: no cover - not on Linux
        return None


def time_calls(fn: Callable[[], Any], *, repeats: int, device: torch.device) -> list[float]:
    """Seconds per call of ``fn`` over ``repeats`` calls (synchronising CUDA around each)."""
    times = []
    for _ in range(repeats):
        sync(device)
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t0)
    return times


def alternate(sides: dict[str, Callable[[], Any]], *, steps: int, rounds: int, warmup: int,
              device: torch.device) -> dict[str, Any]:
    """Time each side's ``steps`` calls per round, alternating sides, after ``warmup`` rounds.

    The order of the sides flips every round, so a drift in machine load (a shared CPU) hits
    both sides alike. On CUDA each side's peak memory is taken over its own rounds.

    Returns:
        ``{"seconds": {side: [s per round]}, "peak_memory_mb": {side: MiB or None}}``.
    """
    names = list(sides)
    for _ in range(warmup):
        for name in names:
            for _ in range(steps):
                sides[name]()
    seconds: dict[str, list[float]] = {n: [] for n in names}
    peaks: dict[str, float | None] = {n: None for n in names}
    for r in range(rounds):
        for name in (names if r % 2 == 0 else names[::-1]):
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            sync(device)
            t0 = time.perf_counter()
            for _ in range(steps):
                sides[name]()
            sync(device)
            seconds[name].append(time.perf_counter() - t0)
            if device.type == "cuda":
                peaks[name] = max(peaks[name] or 0.0, peak_memory_mb(device))
    if device.type != "cuda":  # one process: the peak RSS is shared by both sides
        peaks = {n: peak_memory_mb(device) for n in names}
    return {"seconds": seconds, "peak_memory_mb": peaks}


# -- bench train ---------------------------------------------------------------------------------


def format_table(rows: list[dict], columns: list[tuple[str, str, str]]) -> str:
    """A plain-text table: ``columns`` are (key, header, format spec); right-aligned."""
    def cell(value: Any, spec: str) -> str:
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        return format(value, spec) if number else str(value)

    body = [[cell(row.get(key), spec) for key, _, spec in columns] for row in rows]
    widths = [max([12, len(h)] + [len(r[i]) for r in body]) for i, (_, h, _) in enumerate(columns)]
    header = "  ".join(f"{h:>{w}}" for (_, h, _), w in zip(columns, widths))
    lines = [header, "-" * len(header)]
    lines += ["  ".join(f"{c:>{w}}" for c, w in zip(r, widths)) for r in body]
    return "\n".join(lines)


def write_json(path: str | Path | None, result: dict) -> None:
    """Write ``result`` as JSON to ``path`` (atomically) when a path is given, and say so."""
    if path:
        atomic_write_text(path, json.dumps(result, indent=2))
        print(f"wrote {path}")
