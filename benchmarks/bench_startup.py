"""Start-up time of the ``qp`` command line, against a bare interpreter.

Each command runs several times in a fresh process; the median wall time is
printed, with the same for ``python -c pass`` measured in the same run (the
floor any command pays). Goals: ``--help`` and ``--version`` <= 0.3 s;
``qp plugins`` and ``qp config validate`` <= 1.5 s.

Usage: .venv/bin/python benchmarks/bench_startup.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _common import ROOT

QP = str(Path(sys.executable).with_name("qp"))
CASES = {
    "python -c pass": ([sys.executable, "-c", "pass"], None),
    "qp --help": ([QP, "--help"], 0.3),
    "qp --version": ([QP, "--version"], 0.3),
    "qp config show": ([QP, "config", "show"], 1.5),
    "qp config validate": (
        [QP, "config", "validate", str(ROOT / "qpcore" / "defaults" / "default.yaml")],
        1.5,
    ),
    "qp plugins": ([QP, "plugins"], 1.5),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args, _ = parser.parse_known_args()
    missed = []
    floor = None
    for name, (command, goal) in CASES.items():
        times = []
        for _ in range(args.rounds):
            start = time.perf_counter()
            subprocess.run(command, capture_output=True, check=True)
            times.append(time.perf_counter() - start)
        median = statistics.median(times)
        floor = floor or median
        verdict = (
            "" if goal is None else f" (goal <= {goal} s: {'met' if median <= goal else 'missed'})"
        )
        print(f"{name}: {median:.2f} s, {median / floor:.1f}x the bare interpreter{verdict}")
        if goal is not None and median > goal:
            missed.append(name)
    if missed:
        print(f"goals missed: {', '.join(missed)}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
