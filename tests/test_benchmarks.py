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


def test_the_trainer_overhead_benchmark_runs_its_tiny_size() -> None:
    # It wraps private trainer methods (_epoch, _run_split, _save, ...): a
    # refactor that renames one must fail here, not in the next benchmark run.
    result = subprocess.run(
        [sys.executable, str(BENCH / "bench_trainer_overhead.py"), "--tiny"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    for measure in ("trainer epoch, median:", "bare epoch, median:"):
        line = next(x for x in result.stdout.splitlines() if x.strip().startswith(measure))
        assert float(line.split(":")[1].split()[0]) > 0
    assert re.search(r"ratio: [\d.]+x", result.stdout)
    found = re.search(r"epoch-1 val loss, trainer - bare: max \|diff\| (\S+)", result.stdout)
    assert found and float(found.group(1)) < 1e-6  # the same loop, so the same numbers
    for part in ("save last.pt", "_serving_state", "gc.collect()", "qp_on_batch_end hooks"):
        assert part in result.stdout
