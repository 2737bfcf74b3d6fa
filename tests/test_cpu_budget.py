"""benchmarks/cpu_budget.py: a command is interrupted once it (and its children) used the CPU
budget, not after a span of wall time, so an ablation's runs get equal compute on a busy machine."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "cpu_budget.py"
pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")

# Busy-loops until Ctrl-C, then prints how much CPU it used and exits 130 like the trainer.
SPIN = """
import signal, sys, time
try:
    while True:
        pass
except KeyboardInterrupt:
    print(f"{time.process_time():.2f}")
    sys.exit(130)
"""
# Sleeps (no CPU) for 1.5 s and exits 0: a wall-time budget of 0.5 s would cut it short.
SLEEP = "import time; time.sleep(1.5); print('done')"
# Starts a busy child and waits: the child's CPU counts towards the budget, and Ctrl-C reaches
# the child too (the whole process group, as in a terminal).
PARENT = f"""
import subprocess, sys
child = subprocess.Popen([sys.executable, "-c", {SPIN!r}])
try:
    child.wait()
except KeyboardInterrupt:
    pass
sys.exit(child.wait())
"""


def _budget(minutes: str, code: str, *flags: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), minutes, *flags, "--", sys.executable, "-c",
                           code], capture_output=True, text=True, timeout=timeout, check=False)


def test_a_busy_command_is_interrupted_after_its_cpu_budget():
    done = _budget("0.02", SPIN)  # 1.2 CPU-seconds
    assert done.returncode == 130
    assert 1.2 <= float(done.stdout) < 5.0
    assert "interrupted; exit 130" in done.stderr


def test_sleeping_uses_no_budget():
    start = time.monotonic()
    done = _budget("0.01", SLEEP)  # 0.6 CPU-seconds: the sleeper uses far less
    assert done.returncode == 0 and done.stdout.strip() == "done"
    assert time.monotonic() - start >= 1.5
    assert "interrupted" not in done.stderr


def test_children_count_towards_the_budget():
    done = _budget("0.02", PARENT)
    assert done.returncode == 130
    assert 0.9 <= float(done.stdout) < 5.0  # the parent's own start-up took part of the 1.2 s


def test_a_missing_command_is_refused():
    done = subprocess.run([sys.executable, str(SCRIPT), "1"], capture_output=True, text=True,
                          check=False)
    assert done.returncode == 2
    assert "give MINUTES > 0 and a command after --" in done.stderr


def test_done_is_written_only_when_the_budget_was_spent_or_the_command_finished(tmp_path):
    spent, finished, killed = (tmp_path / n for n in ("spent", "finished", "killed"))
    assert _budget("0.01", SPIN, "--done", str(spent)).returncode == 130
    assert _budget("1", SLEEP, "--done", str(finished)).returncode == 0
    # stopped from outside before its budget (here: it interrupts itself)
    stop = "import os, signal; os.kill(os.getpid(), signal.SIGINT)"
    assert _budget("1", stop, "--done", str(killed)).returncode != 0
    assert spent.is_file() and finished.is_file() and not killed.exists()
