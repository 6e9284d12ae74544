"""The benchmarks run: their smoke modes, so a refactor cannot silently break them."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def test_the_gpu_benchmark_runs_its_tiny_size_on_cpu() -> None:
    result = subprocess.run(
        [sys.executable, str(BENCH / "bench_gpu.py"), "--tiny"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    for measure in (
        "inference, bare network",
        "features into the cache",
        "fine-tuning, end to end",
    ):
        line = next(x for x in result.stdout.splitlines() if x.startswith(measure))
        assert float(line[len(measure) :].split()[0]) > 0
    assert re.search(r"data \d+%, forward \d+%, backward \d+%, step \d+%", result.stdout)
