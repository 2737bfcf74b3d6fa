"""Progress bars that do not flood logs.

On a terminal, :func:`progress_bar` is a tqdm bar. When stderr is not a terminal (a log file, a
CI job, ``nohup``), a tqdm bar would write a carriage-return update many times a second into
one endless line, so it prints one plain line per interval instead (every
``GANAUG_PROGRESS_INTERVAL`` seconds, default 30) and one when it closes.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

DEFAULT_INTERVAL_S = 30.0


def _interval() -> float:
    try:
        return max(0.0, float(os.environ.get("GANAUG_PROGRESS_INTERVAL", DEFAULT_INTERVAL_S)))
    except ValueError:
        return DEFAULT_INTERVAL_S


class LineProgress:
    """The subset of tqdm's API ganaug uses, printing ``desc: n/total unit (rate) k=v``
    lines to ``file`` at most once per ``interval`` seconds, and once at :meth:`close`."""

    def __init__(self, total: int | None = None, *, desc: str = "", unit: str = "it",
                 initial: int = 0, disable: bool = False, file=None,
                 interval: float | None = None) -> None:
        self.total, self.desc, self.unit, self.n = total, desc, unit, initial
        self.disable, self.file = disable, file or sys.stderr
        self.interval = _interval() if interval is None else interval
        self.postfix: dict[str, Any] = {}
        self._start = self._last = time.monotonic()
        self._start_n, self._closed = initial, False

    def update(self, n: int = 1) -> None:
        self.n += n
        if time.monotonic() - self._last >= self.interval:
            self._print()

    def set_postfix(self, refresh: bool = True, **values: Any) -> None:
        self.postfix = values

    def _print(self) -> None:
        self._last = now = time.monotonic()
        if self.disable:
            return
        rate = (self.n - self._start_n) / max(now - self._start, 1e-9)
        total = f"/{self.total}" if self.total is not None else ""
        extra = "".join(f" {k}={v}" for k, v in self.postfix.items())
        print(f"{self.desc}: {self.n}{total} {self.unit} ({rate:.1f} {self.unit}/s, "
              f"{now - self._start:.0f} s){extra}", file=self.file, flush=True)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._print()

    def __enter__(self) -> LineProgress:  # noqa: PYI034 (typing.Self needs Python 3.11)
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def progress_bar(total: int | None = None, *, desc: str = "", unit: str = "it",
                 initial: int = 0, disable: bool = False, file=None, **tqdm_kwargs: Any):
    """A tqdm bar on a terminal, else a :class:`LineProgress` (one line per interval)."""
    file = file or sys.stderr
    isatty = getattr(file, "isatty", None)
    if isatty is not None and isatty():
        from tqdm.auto import tqdm

        return tqdm(total=total, desc=desc, unit=unit, initial=initial, disable=disable,
                    file=file, **tqdm_kwargs)
    return LineProgress(total, desc=desc, unit=unit, initial=initial, disable=disable, file=file)
