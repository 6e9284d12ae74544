"""Which backbone? Each candidate trained on synthetic data, scored on real icons.

Every candidate is a full ``qp train`` run (Python API, same head, loss and
schedule) on the synthetic dataset the default run uses; its best weights are
scored on the synthetic val split and on the dev icons (real icons: evaluation
only, never trained or tuned on). The random-track candidates take the vtracer
params as a second input and are scored on each dev row's own params. The
HistGradientBoosting baseline (``bench_hgb_baseline.py``) runs on the same data
and is printed beside them.

No pretrained weights can be downloaded here, so the CNNs run with random,
frozen weights (``weights: none``); ``--imagenet`` adds ImageNet-weighted
variants for machines that have torchvision's files cached.

Run: ``.venv/bin/python benchmarks/bench_backbones.py [--only NAME...] [--json out.json]``
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from _common import DEFAULT_DEV, import_qpcore, scores

import_qpcore()

from qpcore.data.manifest import read_manifest  # noqa: E402
from qpcore.predictor import Predictor, load_predictor  # noqa: E402
from qpcore.registry import default_registry  # noqa: E402
from qpcore.trainer import Trainer  # noqa: E402
from qpcore.validate import resolve_config  # noqa: E402

HERE = Path(__file__).resolve().parent

DEFAULT_DATA = {"name": "synthetic", "count": 2000, "track": "default"}
RANDOM_DATA = {"name": "synthetic", "count": 1000, "track": "random", "per_image": 3}
STATS = {"name": "image_stats"}
ALL_LEVELS = {"name": "vectorizer", "precisions": [1, 2, 3, 4, 5, 6, 7, 8], "binary": True}

#: name -> (track, model section)
CANDIDATES: dict[str, tuple[str, dict[str, Any]]] = {
    "vectorizer+image_stats (default)": (
        "default",
        {"backbone": {"name": "vectorizer"}, "features": [STATS]},
    ),
    "vectorizer": ("default", {"backbone": {"name": "vectorizer"}}),
    "image_stats": ("default", {"backbone": STATS}),
    "resnet50 (random init, frozen)": (
        "default",
        {"backbone": {"name": "resnet50", "weights": "none"}},
    ),
    "resnet18 (random init, frozen)": (
        "default",
        {"backbone": {"name": "resnet18", "weights": "none"}},
    ),
    "mobilenet_v3_small (random init, frozen)": (
        "default",
        {"backbone": {"name": "mobilenet_v3_small", "weights": "none"}},
    ),
    "small_cnn (trained, 64 px)": (
        "default",
        {"backbone": {"name": "small_cnn", "input_size": 64}},
    ),
    "random: vectorizer[1-8]+image_stats+params": (
        "random",
        {"backbone": ALL_LEVELS, "features": [STATS], "head": {"params_input": True}},
    ),
    "random: image_stats+params": ("random", {"backbone": STATS, "head": {"params_input": True}}),
}


def config(track: str, model: dict[str, Any], out: Path, epochs: int) -> dict[str, Any]:
    head = {"hidden": [1024, 512, 256, 128], "dropout": 0.3, **model.get("head", {})}
    trainable = model["backbone"]["name"] == "small_cnn"
    return {
        "data": DEFAULT_DATA if track == "default" else RANDOM_DATA,
        "model": {**model, "head": head},
        "loss": {"name": "combined", "ranking_weight": 0.1, "correlation_weight": 0.1},
        "optimizer": {"name": "adam", "lr": 1e-3, "weight_decay": 1e-4},
        "scheduler": {"name": "reduce_on_plateau", "monitor": "val_loss", "patience": 8},
        "trainer": {
            "epochs": 15 if trainable else epochs,
            "batch_size": 32,
            "early_stopping": {"patience": 20},
            "checkpoint": {"every": 0},
        },
        "output": {"dir": str(out), "name": "run"},
    }


def dev_scores(predictor: Predictor, dev: Path, track: str) -> dict[str, float | None]:
    rows = read_manifest(dev / f"manifest-{track}.csv").samples
    params = [r.params for r in rows] if predictor.takes_params else None
    pred = predictor.predict([r.image for r in rows], params)
    return scores(pred, np.array([r.ssim for r in rows]))


def run(name: str, track: str, model: dict[str, Any], dev: Path, epochs: int) -> dict[str, Any]:
    registry = default_registry()
    with tempfile.TemporaryDirectory() as tmp:
        cfg = resolve_config(config(track, model, Path(tmp), epochs), registry)
        start = time.perf_counter()
        trainer = Trainer(cfg, registry, Path(tmp) / "run", quiet=True)
        results = trainer.fit()
        seconds = time.perf_counter() - start
        predictor = load_predictor(Path(tmp) / "run" / "best.pt")
        row = {
            "name": name,
            "track": track,
            "features": predictor.model.num_features,
            "train_s": round(seconds, 1),
            "epochs": results["epochs"],
            "synth_val": {k: results["val"][k] for k in ("pearson", "spearman", "mae")},
            "dev": dev_scores(predictor, dev, track),
        }
    return row


def baseline(dev: Path) -> list[dict[str, Any]]:
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        subprocess.run(
            [
                sys.executable,
                str(HERE / "bench_hgb_baseline.py"),
                "--dev",
                str(dev),
                "--importance",
                "0",
                "--json",
                out.name,
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        found = json.loads(Path(out.name).read_text())
    rows = []
    for track in ("default", "random"):
        if track not in found.get("tracks", {}):
            continue
        result = found["tracks"][track]
        rows.append(
            {
                "name": f"HGB baseline on image_stats{'+params' if track == 'random' else ''}",
                "track": track,
                "synth_val": result["synth_val"],
                "dev": result.get("dev"),
            }
        )
    return rows


def fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="Candidates whose name contains one of these.")
    parser.add_argument("--dev", type=Path, default=DEFAULT_DEV)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument("--json", type=Path, help="Write the rows as JSON.")
    args, _ = parser.parse_known_args()
    picked = {
        n: c for n, c in CANDIDATES.items() if not args.only or any(o in n for o in args.only)
    }
    rows = [] if args.no_baseline else baseline(args.dev)
    for name, (track, model) in picked.items():
        print(f"-- {name}", flush=True)
        rows.append(run(name, track, model, args.dev, args.epochs))
        if args.json:
            args.json.write_text(json.dumps(rows, indent=2) + "\n")
    print("| model | track | synth val Pearson | dev Pearson | dev Spearman | dev MAE | train s |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for r in rows:
        dev = r.get("dev") or {}
        print(
            f"| {r['name']} | {r['track']} | {fmt(r['synth_val']['pearson'])} | "
            f"{fmt(dev.get('pearson'))} | {fmt(dev.get('spearman'))} | {fmt(dev.get('mae'))} | "
            f"{r.get('train_s', '-')} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
