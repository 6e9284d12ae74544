"""``qp suggest`` on real images: does the suggested setting keep the bar, and
how much smaller is its SVG than vtracer's defaults'?

On the images of the project's real corpus (``qp data corpus``) whose default
conversion reaches ``--min-ssim`` (the corpus's default-track labels say which),
a random-track model with a size head (``qp train random``, trained on generated
images only) suggests the smallest setting; each suggestion is then converted for
real. Prints the share of suggestions that truly keep the bar (goal >= 90 %),
the median true SVG size relative to the defaults' (goal < 1), per source too,
and the time per image against one real conversion measured in the same run.

Usage: .venv/bin/python benchmarks/bench_suggest.py [--checkpoint runs/random/best.pt]
       [--corpus data/corpus] [--min-ssim 0.95] [--count 400] [--candidates 1000]

A missing checkpoint is trained first (``qp train random``, several minutes), a
missing corpus built (``qp data corpus``).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
from _common import ROOT, ensure_corpus, import_qpcore

import_qpcore()

from qpcore.data.manifest import read_manifest  # noqa: E402
from qpcore.data.protocol import DEFAULT_PARAMS, label_pixels, load_image  # noqa: E402
from qpcore.predictor import load_predictor  # noqa: E402
from qpcore.suggest import suggest  # noqa: E402

KEEP_GOAL = 0.90


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=ROOT / "runs" / "random" / "best.pt")
    parser.add_argument("--corpus", type=Path, default=ROOT / "data" / "corpus")
    parser.add_argument("--min-ssim", type=float, default=0.95)
    parser.add_argument("--count", type=int, default=400, help="Images, spread over sources.")
    parser.add_argument("--candidates", type=int, default=1000)
    parser.add_argument("--margin", type=float, help="Default: the model's val MAE.")
    args, _ = parser.parse_known_args()
    ensure_corpus(args.corpus)
    if not args.checkpoint.is_file():
        qp = Path(sys.executable).with_name("qp")
        out = args.checkpoint.parent
        sets = ["--set", f"output.dir={out.parent}", "--set", f"output.name={out.name}"]
        subprocess.run([str(qp), "train", "random", "-q", *sets], check=True)
    predictor = load_predictor(args.checkpoint)
    rows = read_manifest(args.corpus / "default" / "manifest.csv").samples
    eligible = [s for s in rows if s.ssim >= args.min_ssim and s.params == DEFAULT_PARAMS]
    rng = np.random.default_rng(0)
    picked = [eligible[i] for i in sorted(rng.permutation(len(eligible))[: args.count])]
    print(
        f"{len(picked)} of {len(eligible)} corpus images whose defaults keep SSIM >= "
        f"{args.min_ssim} ({len(rows)} images in all)",
        flush=True,
    )
    kept: dict[str, list[bool]] = defaultdict(list)
    ratio: dict[str, list[float]] = defaultdict(list)
    cleared = 0
    suggest_s: list[float] = []
    convert_s: list[float] = []
    for sample in picked:
        pixels = load_image(sample.image)
        start = time.perf_counter()
        (found,) = suggest(
            predictor, [pixels], args.min_ssim, "smallest", args.candidates, args.margin
        )
        suggest_s.append(time.perf_counter() - start)
        start = time.perf_counter()
        default = label_pixels(pixels, DEFAULT_PARAMS)
        convert_s.append(time.perf_counter() - start)
        truth = label_pixels(pixels, found.params)
        cleared += found.cleared
        for key in ("all", sample.source):
            kept[key].append(truth.ssim >= args.min_ssim)
            ratio[key].append(truth.svg_bytes / max(default.svg_bytes, 1))
    print(f"suggestions that clear the bar by the model's own account: {cleared}/{len(picked)}")
    print("| source | images | truly keep the bar | median size vs defaults |")
    print("|---|---:|---:|---:|")
    for key in ["all", *sorted(k for k in kept if k != "all")]:
        share = float(np.mean(kept[key]))
        print(f"| {key} | {len(kept[key])} | {share:.1%} | {float(np.median(ratio[key])):.3f} |")
    per_image = float(np.median(suggest_s)) * 1e3
    conversion = float(np.median(convert_s)) * 1e3
    print(
        f"time per image: suggest {per_image:.1f} ms ({args.candidates} candidates), one "
        f"real conversion {conversion:.1f} ms; ratio {per_image / conversion:.2f}"
    )
    share = float(np.mean(kept["all"]))
    smaller = float(np.median(ratio["all"]))
    print(
        f"goal: keep >= {KEEP_GOAL:.0%}: {'met' if share >= KEEP_GOAL else 'missed'}; "
        f"median size < 1: {'met' if smaller < 1 else 'missed'}"
    )
    return 0 if share >= KEEP_GOAL and smaller < 1 else 1


if __name__ == "__main__":
    sys.exit(main())
