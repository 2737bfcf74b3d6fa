"""Progress bars: tqdm on a terminal, one plain line per interval in a log (issue 14 point 6)."""

from __future__ import annotations

import io

from ganaug.progress import LineProgress, progress_bar


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_not_a_terminal_gives_plain_lines_not_a_flood(monkeypatch):
    log = io.StringIO()
    monkeypatch.setenv("GANAUG_PROGRESS_INTERVAL", "3600")
    with progress_bar(1000, desc="train", unit="step", file=log) as bar:
        assert isinstance(bar, LineProgress)
        for _ in range(1000):
            bar.update(1)
            bar.set_postfix(loss_d="0.5", refresh=False)
    lines = log.getvalue().splitlines()
    assert len(lines) == 1 and "\r" not in log.getvalue()
    assert lines[0].startswith("train: 1000/1000 step (") and lines[0].endswith("loss_d=0.5")


def test_interval_zero_prints_each_update_and_disable_prints_nothing():
    log = io.StringIO()
    bar = LineProgress(3, desc="export", unit="img", file=log, interval=0)
    bar.update(2)
    bar.close()
    bar.close()
    assert [x.split(" (")[0] for x in log.getvalue().splitlines()] == ["export: 2/3 img"] * 2
    quiet = io.StringIO()
    with LineProgress(3, file=quiet, interval=0, disable=True) as bar:
        bar.update(3)
    assert quiet.getvalue() == ""


def test_terminal_gets_tqdm():
    from tqdm.auto import tqdm

    bar = progress_bar(5, file=Tty())
    assert isinstance(bar, tqdm)
    bar.close()
