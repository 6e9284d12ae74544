"""Labelling throughput, where its time goes, and the fast SSIM against scikit-image.

Runs ``qp data synth``'s pipeline (generate, vectorize, render, score) on 256x256
synthetic images with 1 and 2 worker processes and reports samples per second.
Target: at least 150 samples/s with 2 workers on a 2-core machine.

Usage: .venv/bin/python benchmarks/bench_labeling.py [--count 300] [--ssim-pairs 100]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from qpcore.data.jobs import synth_jobs
from qpcore.data.labeler import run_jobs
from qpcore.data.protocol import DEFAULT_PARAMS, composite_white, render, vectorize
from qpcore.data.ssim import reference_ssim, ssim
from qpcore.data.synth import generate

TARGET = 150.0


def throughput(count: int, workers: int, seed: int) -> tuple[float, dict[str, float]]:
    jobs = synth_jobs(count, "default", 1, seed, 256)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        summary = run_jobs(jobs, Path(tmp), {"bench": True}, workers=workers, progress=False)
        seconds = time.perf_counter() - start
    per_label = {k: v / max(summary.rows, 1) for k, v in summary.timings.items()}
    return summary.rows / seconds, per_label


def ssim_agreement(pairs: int, seed: int) -> tuple[float, float, float]:
    fast_s = ref_s = 0.0
    worst = 0.0
    for i in range(pairs):
        pixels = composite_white(generate(seed + 1, i, 256).image)
        rendered = render(vectorize(pixels, DEFAULT_PARAMS), 256, 256)
        t0 = time.perf_counter()
        fast = ssim(pixels, rendered)
        t1 = time.perf_counter()
        ref = reference_ssim(pixels, rendered)
        t2 = time.perf_counter()
        fast_s += t1 - t0
        ref_s += t2 - t1
        worst = max(worst, abs(fast - ref))
    return ref_s / fast_s, worst, fast_s / pairs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=300, help="images per measurement")
    parser.add_argument("--ssim-pairs", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    print(f"labelling {args.count} synthetic 256x256 images, default track")
    print(f"{'workers':>7}  {'samples/s':>9}  {'vectorize':>9}  {'render':>7}  {'ssim':>6}")
    rates = {}
    for workers in (1, 2):
        rate, per = throughput(args.count, workers, args.seed)
        rates[workers] = rate
        print(
            f"{workers:>7}  {rate:>9.1f}  {per.get('vectorize', 0) * 1e3:>7.1f}ms"
            f"  {per.get('render', 0) * 1e3:>5.1f}ms  {per.get('ssim', 0) * 1e3:>4.1f}ms"
        )
    ratio, worst, per_call = ssim_agreement(args.ssim_pairs, args.seed)
    print(
        f"\nfast SSIM vs scikit-image on {args.ssim_pairs} (original, rendered) pairs: "
        f"{ratio:.1f}x faster ({per_call * 1e3:.2f} ms per 256x256 pair), "
        f"max |difference| {worst:.1e} (limit 1e-4)"
    )
    ok = rates[2] >= TARGET and worst <= 1e-4
    print(
        f"target >= {TARGET:.0f} samples/s with 2 workers: "
        f"{'met' if rates[2] >= TARGET else 'MISSED'} ({rates[2]:.1f})"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    np.seterr(all="ignore")
    sys.exit(main())
