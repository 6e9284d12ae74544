"""Labelling throughput against its floor, where the time goes, and Ray's overhead.

The floor is what vectorize + render alone cost on the same images: with N
workers, N / (their mean seconds per image). ``qp data label``'s pipeline
(decode, composite, PNG encode, vtracer, resvg, PNG decode, SSIM, copy, IPC,
manifest) is measured on the same files with the ``local`` executor at 1 and 2
workers, then with ``ray`` (a private local Ray). Target: local at >= 85 % of
the floor. The machine is shared: every figure is a ratio to the floor measured
in the same run.

Usage: .venv/bin/python benchmarks/bench_labeling.py [--count 300] [--no-ray] [--ssim-pairs 50]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import resvg_py
import vtracer

from qpcore.data.jobs import label_jobs
from qpcore.data.labeler import run_jobs
from qpcore.data.protocol import DEFAULT_PARAMS, composite_white, encode_png, render, vectorize
from qpcore.data.ssim import reference_ssim, ssim
from qpcore.data.synth import generate
from qpcore.executor import build_executor

TARGET = 0.85


def make_images(folder: Path, count: int, seed: int) -> list[np.ndarray]:
    pixels = []
    for i in range(count):
        image = generate(seed, i, 256).image
        image.save(folder / f"img_{i:05d}.png")
        pixels.append(composite_white(image))
    return pixels


def floor_seconds(pixels: list[np.ndarray]) -> float:
    """Mean seconds of vtracer + resvg alone per image (PNG bytes in, PNG bytes out)."""
    blobs = [encode_png(p) for p in pixels]
    start = time.perf_counter()
    for blob in blobs:
        svg = vtracer.convert_raw_image_to_svg(blob, img_format="png", **DEFAULT_PARAMS.as_dict())
        resvg_py.svg_to_bytes(svg_string=svg, width=256, height=256)
    return (time.perf_counter() - start) / len(blobs)


def steps(pixels: list[np.ndarray]) -> dict[str, float]:
    """Mean seconds per image of each step of one label, in one process."""
    spent = dict.fromkeys(("png encode", "vtracer", "resvg + decode", "ssim"), 0.0)
    for p in pixels:
        t0 = time.perf_counter()
        blob = encode_png(p)
        t1 = time.perf_counter()
        svg = vtracer.convert_raw_image_to_svg(blob, img_format="png", **DEFAULT_PARAMS.as_dict())
        t2 = time.perf_counter()
        rendered = render(svg, 256, 256)
        t3 = time.perf_counter()
        ssim(p, rendered)
        t4 = time.perf_counter()
        for key, value in zip(spent, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
            spent[key] += value
    return {k: v / len(pixels) for k, v in spent.items()}


def label_rate(inputs: Path, executor_name: str, workers: int) -> float:
    """Images per second of ``qp data label``'s pipeline into a fresh folder."""
    executor = build_executor(executor_name, workers=workers)
    jobs = label_jobs([str(inputs)], "default", 1, 0)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        summary = run_jobs(jobs, Path(tmp), {"bench": True}, progress=False, executor=executor)
        seconds = time.perf_counter() - start
    assert summary.errors == 0, "benchmark images failed to label"
    return summary.rows / seconds


def ssim_agreement(pixels: list[np.ndarray]) -> tuple[float, float]:
    fast_s = ref_s = worst = 0.0
    for p in pixels:
        rendered = render(vectorize(p, DEFAULT_PARAMS), 256, 256)
        t0 = time.perf_counter()
        fast = ssim(p, rendered)
        t1 = time.perf_counter()
        ref = reference_ssim(p, rendered)
        t2 = time.perf_counter()
        fast_s += t1 - t0
        ref_s += t2 - t1
        worst = max(worst, abs(fast - ref))
    return ref_s / fast_s, worst


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=300, help="images per measurement")
    parser.add_argument("--ssim-pairs", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-ray", action="store_true", help="skip the Ray measurements")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        inputs = Path(tmp)
        pixels = make_images(inputs, args.count, args.seed)
        print(f"{args.count} synthetic 256x256 PNGs, default track")
        floor = floor_seconds(pixels)
        print(f"\nfloor: vtracer + resvg alone, {floor * 1e3:.1f} ms per image")
        print("one label, step by step (ms per image, one process):")
        for name, seconds in steps(pixels[: min(100, len(pixels))]).items():
            print(f"  {name:<15} {seconds * 1e3:6.2f}")
        print(f"\n{'executor':<8} {'workers':>7} {'img/s':>7} {'floor':>7} {'of floor':>9}")
        rates: dict[tuple[str, int], float] = {}
        names = ["local"] + ([] if args.no_ray else ["ray"])
        for name in names:
            for workers in (1, 2):
                rate = label_rate(inputs, name, workers)
                rates[name, workers] = rate
                ideal = workers / floor
                print(f"{name:<8} {workers:>7} {rate:>7.1f} {ideal:>7.1f} {rate / ideal:>8.0%}")
        if not args.no_ray:
            overhead = 1 / rates["ray", 1] - 1 / rates["local", 1]
            scaling = rates["ray", 2] / (2 * rates["ray", 1])
            print(
                f"\nray: {overhead * 1e3:+.1f} ms per task against local (1 worker); "
                f"scaling 1 -> 2 workers {scaling:.0%} (local: "
                f"{rates['local', 2] / (2 * rates['local', 1]):.0%})"
            )
        ratio, worst = ssim_agreement(pixels[: args.ssim_pairs])
        print(
            f"\nfast SSIM vs scikit-image on {args.ssim_pairs} pairs: {ratio:.1f}x faster, "
            f"max |difference| {worst:.1e} (limit 1e-4)"
        )
    share = rates["local", 2] / (2 / floor)
    met = share >= TARGET and worst <= 1e-4
    print(f"target: local, 2 workers >= {TARGET:.0%} of the floor: {'met' if met else 'MISSED'}")
    return 0 if met else 1


if __name__ == "__main__":
    np.seterr(all="ignore")
    sys.exit(main())
