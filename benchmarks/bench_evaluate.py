"""How long ``qp evaluate`` takes on 1000 images with a frozen ``resnet50``.

A one-epoch run on the synthetic dataset (its features cached by training) gives
the checkpoint; the evaluation then runs on 1000 of its images three times:
with the cache as training left it (the usual case: evaluating on data the run
has seen or validated on), without and with the HTML report, then cold, in an
empty cache folder (backbone on every image).
Target (issue 5): under 30 s. Weights are random (same cost as ImageNet's,
which cannot be downloaded here).

Run: ``.venv/bin/python benchmarks/bench_evaluate.py [--images 1000]``
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile
import time
from pathlib import Path

from _common import import_qpcore

import_qpcore()

from qpcore.data.manifest import read_manifest  # noqa: E402
from qpcore.evaluation import evaluate  # noqa: E402
from qpcore.registry import default_registry  # noqa: E402
from qpcore.trainer import Trainer  # noqa: E402
from qpcore.validate import resolve_config  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1000)
    args, _ = parser.parse_known_args()
    registry = default_registry()
    with tempfile.TemporaryDirectory() as tmp:
        cfg = {
            "data": {"name": "synthetic", "count": max(args.images, 1000)},
            "model": {"backbone": {"name": "resnet50", "weights": "none"}},
            "trainer": {"epochs": 1, "batch_size": 32},
            "output": {"dir": tmp, "name": "run"},
        }
        trainer = Trainer(resolve_config(cfg, registry), registry, Path(tmp) / "run", quiet=True)
        trainer.fit()
        manifest = Path(trainer.data.origin)
        rows = read_manifest(manifest).samples[: args.images]
        subset = Path(tmp) / "subset.csv"
        with open(manifest, newline="") as handle:
            reader = csv.DictReader(handle)
            records = [r for _, r in zip(range(len(rows)), reader, strict=False)]
        with open(subset, "w", newline="") as handle:
            writer = csv.DictWriter(handle, list(records[0]))
            writer.writeheader()
            for record in records:
                record["image"] = str(manifest.parent / record["image"])
                writer.writerow(record)
        best = Path(tmp) / "run" / "best.pt"
        start = time.perf_counter()
        evaluate(best, subset, out=Path(tmp) / "eval", html=False)
        warm = time.perf_counter() - start
        start = time.perf_counter()
        evaluate(best, subset, out=Path(tmp) / "eval-html")
        with_html = time.perf_counter() - start
        size = (Path(tmp) / "eval-html" / "report.html").stat().st_size
        os.environ["QP_CACHE_DIR"] = str(Path(tmp) / "empty-cache")
        start = time.perf_counter()
        evaluate(best, subset)
        cold = time.perf_counter() - start
    print(
        f"evaluate {len(rows)} images, frozen resnet50: cached features {warm:.1f} s, "
        f"with the HTML report {with_html:.1f} s ({size / 1e6:.2f} MB), "
        f"cold cache {cold:.1f} s (target < 30 s)"
    )
    return 0 if with_html < 30 else 1


if __name__ == "__main__":
    sys.exit(main())
