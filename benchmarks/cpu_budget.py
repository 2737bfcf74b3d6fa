"""Run a command until it has used a budget of CPU time, then interrupt it (SIGINT, Ctrl-C).

Usage: python benchmarks/cpu_budget.py MINUTES [--done FILE] -- COMMAND [ARGS...]

`timeout -s INT 10m` budgets wall time, so a run that shares the machine with other jobs gets
fewer steps than a run on a quiet machine, and an ablation's rows are not comparable. This budgets
the CPU time of the command and of every process it started (user + system, read from /proc): a
one-thread run gets the same compute however busy the machine is. It prints the CPU and wall
seconds used and exits with the command's status (a ganaug trainer stopped by Ctrl-C saves its
generator and exits 130). `--done FILE` is written only when the command spent its budget or
finished by itself, never when something else stopped it: a run killed from outside is not
mistaken for a finished one. Linux only.
"""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")


def _stat(pid: str) -> tuple[int, float] | None:
    """(parent pid, CPU seconds used by the process itself) or None when it has gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()  # the name may hold spaces and brackets
    # After the name: state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
    # utime stime cutime cstime (proc(5)); cutime/cstime count children already waited for.
    return int(fields[1]), sum(int(f) for f in fields[11:15]) / TICKS


def tree_cpu_seconds(root: int) -> float:
    """CPU seconds used so far by `root` and all its living descendants."""
    stats = {pid: s for pid in os.listdir("/proc") if pid.isdigit() and (s := _stat(pid))}
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in stats.items():
        children.setdefault(ppid, []).append(int(pid))
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        if str(pid) in stats:
            total += stats[str(pid)][1]
            todo.extend(children.get(pid, ()))
    return total


def run(minutes: float, command: list[str], poll: float = 0.5, done: str | None = None) -> int:
    start = time.monotonic()
    # Its own process group, signalled as a whole: what Ctrl-C in a terminal does.
    proc = subprocess.Popen(command, process_group=0)
    budget, used, interrupted = minutes * 60.0, 0.0, False
    while proc.poll() is None:
        used = max(used, tree_cpu_seconds(proc.pid))
        if used >= budget and not interrupted:
            os.killpg(proc.pid, signal.SIGINT)
            interrupted = True
        time.sleep(poll)
    wall = time.monotonic() - start
    if done and (interrupted or proc.returncode == 0):
        Path(done).write_text(f"{used:.0f} CPU-s\n")
    print(f"cpu_budget: {used:.0f} CPU-s of {budget:.0f} in {wall:.0f} s wall"
          f"{', interrupted' if interrupted else ''}; exit {proc.returncode}", file=sys.stderr)
    return proc.returncode


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    split = argv.index("--") if "--" in argv else len(argv)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     usage="%(prog)s MINUTES [--done FILE] -- COMMAND [ARGS...]")
    parser.add_argument("minutes", type=float, help="CPU minutes (a fraction is fine)")
    parser.add_argument("--done", metavar="FILE", help="written once the budget is spent or the "
                        "command finished by itself")
    args = parser.parse_args(argv[:split])
    command = argv[split + 1:]
    if not command or args.minutes <= 0:
        parser.error("give MINUTES > 0 and a command after --")
    return run(args.minutes, command, done=args.done)


if __name__ == "__main__":
    sys.exit(main())
