"""Cost and quality of the packaged configs on real images (docs/model.md's table).

Trains each packaged config (or takes a finished run), then scores it on the
real corpus that ``qp data corpus`` builds and on the dev icons: overall, per
source, and on the clean images and the degraded copies apart. The packaged
configs train on generated images only, so every real source is one the model
never saw: each per-source figure is a leave-one-source-out figure.

Cost is measured on 256 px corpus images in this process: prediction of one
image (features included), and the extra cost of one more setting of an image
for models that take params, next to the conversion it replaces (vtracer + resvg
+ SSIM) as a ratio, since this machine's speed varies from run to run.

    .venv/bin/python benchmarks/bench_quality.py --corpus data/corpus
    .venv/bin/python benchmarks/bench_quality.py --run default=runs/<a> --run random=runs/<b>
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
from _common import DEFAULT_DEV, ROOT, ensure_corpus, import_qpcore, percentile_ms, scores

import_qpcore()

from qpcore.config_io import load_run_config  # noqa: E402
from qpcore.data.manifest import read_manifest  # noqa: E402
from qpcore.data.protocol import label_pixels, load_image, random_params  # noqa: E402
from qpcore.feature_cache import model_features  # noqa: E402
from qpcore.predictor import Predictor, load_predictor  # noqa: E402
from qpcore.registry import default_registry  # noqa: E402
from qpcore.trainer import Trainer  # noqa: E402

#: The issue's goals, per track: (Pearson >=, Spearman >=, MAE <=).
GOALS = {"default": (0.97, 0.92, 0.010), "random": (0.95, 0.95, 0.025)}


def train(name: str, work: Path) -> Path:
    registry = default_registry()
    cfg = load_run_config(name, [f"output.dir={work}", f"output.name={name}"], registry)
    run_dir = work / name
    if (run_dir / "best.pt").exists():
        return run_dir
    Trainer(cfg, registry, run_dir, quiet=True).fit()
    return run_dir


def loso(name: str, manifest: Path, work: Path) -> dict[str, Any]:
    """Leave-one-source-out with real images in training: for each source family
    (a source and its degraded copies, which share groups), train the config on
    its own data plus every other family of the corpus, and score the held-out one.
    """
    registry = default_registry()
    cfg = load_run_config(name, [f"output.dir={work}"], registry)
    dataset = registry.get("dataset", cfg.data.name).factory(cfg.data.params)
    base = dataset.split(cfg.data.params)
    real = read_manifest(manifest).samples
    out = {}
    for held in sorted({family(s.source or "") for s in real}):
        rest = [s for s in real if family(s.source or "") != held]
        splits = {
            "train": [*base["train"], *rest],
            "val": base["val"],
            "test": [s for s in real if family(s.source or "") == held],
        }
        run_dir = work / f"loso-{name}-{held}"
        results = Trainer(cfg, registry, run_dir, quiet=True, splits=splits).fit()
        test = results.get("test", {})
        out[held] = {k: test.get(k) for k in ("pearson", "spearman", "mae", "rows")}
        print(f"{name} loso {held}: {out[held]}", file=sys.stderr)
    return out


def track_of(predictor: Predictor) -> str:
    return "random" if predictor.takes_params else "default"


def predictions(predictor: Predictor, manifest: Path) -> tuple[list[Any], np.ndarray]:
    """Every row's prediction, features computed once per image (and cached)."""
    import torch

    from qpcore.data.protocol import encode_params

    rows = read_manifest(manifest).samples
    features = model_features(
        predictor.model.backbones, [s.image for s in rows], num_workers=2, progress=True
    )[0]
    params = None
    if predictor.takes_params:
        params = torch.from_numpy(np.stack([encode_params(s.params) for s in rows]))
    with torch.no_grad():
        pred = predictor.model.predict_features(features, params).numpy()
    return rows, pred


def family(source: str) -> str:
    return source.split("+", 1)[0]


def breakdown(rows: list[Any], pred: np.ndarray) -> dict[str, Any]:
    target = np.array([s.ssim for s in rows])
    sources = np.array([s.source or "" for s in rows])
    degraded = np.array(["+" in s for s in sources])
    out: dict[str, Any] = {"all": {**scores(pred, target), "rows": len(rows)}}
    for name, mask in (("clean", ~degraded), ("degraded", degraded)):
        if mask.sum() > 2:
            out[name] = {**scores(pred[mask], target[mask]), "rows": int(mask.sum())}
    groups: dict[str, list[int]] = defaultdict(list)
    for i, source in enumerate(sources):
        groups[source].append(i)
        if "+" in source:
            groups[f"{family(source)}+any"].append(i)
    per = {}
    for source, index in sorted(groups.items()):
        idx = np.array(index)
        per[source] = {
            **scores(pred[idx], target[idx]),
            "rows": len(idx),
            "label_std": float(target[idx].std()),
            "bias": float((pred[idx] - target[idx]).mean()),
        }
    out["per_source"] = per
    return out


def costs(predictor: Predictor, images: list[np.ndarray]) -> dict[str, float]:
    """ms per image (features included) and per extra setting, against conversion."""
    predictor.predict([images[0]])  # warm-up
    one = []
    for pixels in images:
        start = time.perf_counter()
        predictor.predict([pixels])
        one.append(time.perf_counter() - start)
    convert = []
    for pixels in images[:10]:
        start = time.perf_counter()
        label_pixels(pixels)
        convert.append(time.perf_counter() - start)
    out = {
        "predict_ms_p50": percentile_ms(one, 50),
        "predict_ms_p95": percentile_ms(one, 95),
        "convert_ms_p50": percentile_ms(convert, 50),
    }
    out["predict_vs_convert"] = out["convert_ms_p50"] / out["predict_ms_p50"]
    if predictor.takes_params:
        # Features once per image (as a pipeline choosing settings does), then the
        # head for 1 and for 101 settings: the difference is the cost of 100 more.
        rng = np.random.default_rng(0)
        settings = [random_params(rng) for _ in range(101)]
        extra = []
        for pixels in images:
            features = predictor.features([pixels])
            best = []
            for count in (1, 101):
                start = time.perf_counter()
                for _ in range(5):
                    predictor._head(features.expand(count, -1), settings[:count])
                best.append((time.perf_counter() - start) / 5)
            extra.append(max(best[1] - best[0], 0.0) / 100)
        out["extra_setting_ms_p50"] = percentile_ms(extra, 50)
    return out


def fmt(value: float | None, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def markdown(results: dict[str, Any]) -> str:
    lines = [
        "| model | track | ms / image (p50) | ms / extra setting | x faster than converting "
        "| set | Pearson | Spearman | MAE |",
        "|---|---|---:|---:|---:|---|---:|---:|---:|",
    ]
    for name, res in results.items():
        cost = res["cost"]
        for set_name, ev in res["eval"].items():
            for part in ("all", "clean", "degraded"):
                if part not in ev:
                    continue
                s = ev[part]
                lines.append(
                    f"| {name} | {res['track']} | {fmt(cost['predict_ms_p50'], 1)} | "
                    f"{fmt(cost.get('extra_setting_ms_p50'), 3)} | "
                    f"{fmt(cost['predict_vs_convert'], 1)} | {set_name} {part} ({s['rows']}) | "
                    f"{fmt(s['pearson'])} | {fmt(s['spearman'])} | {fmt(s['mae'], 4)} |"
                )
    lines += ["", "Per source (never seen in training: leave-one-source-out):", ""]
    lines += [
        "| model | set | source | rows | label std | Pearson | Spearman | MAE | bias |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, res in results.items():
        for set_name, ev in res["eval"].items():
            for source, s in ev["per_source"].items():
                lines.append(
                    f"| {name} | {set_name} | {source} | {s['rows']} | {s['label_std']:.3f} | "
                    f"{fmt(s['pearson'])} | {fmt(s['spearman'])} | {fmt(s['mae'], 4)} | "
                    f"{s['bias']:+.4f} |"
                )
    if any("loso" in res for res in results.values()):
        lines += ["", "Leave-one-source-out, the other sources' real images in training:", ""]
        lines += ["| model | held-out source | rows | Pearson | Spearman | MAE |"]
        lines += ["|---|---|---:|---:|---:|---:|"]
        for name, res in results.items():
            for held, s in res.get("loso", {}).items():
                lines.append(
                    f"| {name} | {held} | {s['rows']} | {fmt(s['pearson'])} | "
                    f"{fmt(s['spearman'])} | {fmt(s['mae'], 4)} |"
                )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=ROOT / "data" / "corpus")
    parser.add_argument("--dev", type=Path, default=DEFAULT_DEV)
    parser.add_argument("--configs", nargs="*", default=["default", "random"])
    parser.add_argument(
        "--run", action="append", default=[], help="NAME=RUN_DIR: score a finished run"
    )
    parser.add_argument("--work", type=Path, help="Where trained runs go (default: a temp dir).")
    parser.add_argument("--images", type=int, default=30, help="Images timed for the cost.")
    parser.add_argument("--json", type=Path, help="Write every number here.")
    parser.add_argument(
        "--loso",
        action="store_true",
        help="Also train with the corpus's other sources and score each held-out one.",
    )
    args = parser.parse_args()

    ensure_corpus(args.corpus)
    work = args.work or Path(tempfile.mkdtemp(prefix="qp-bench-quality-"))
    given = dict(item.split("=", 1) for item in args.run)
    names = list(dict.fromkeys([*args.configs, *given]))
    corpus_rows = read_manifest(args.corpus / "default" / "manifest.csv").samples
    step = max(1, len(corpus_rows) // args.images)
    timed = [load_image(s.image) for s in corpus_rows[::step][: args.images]]

    results: dict[str, Any] = {}
    for name in names:
        run = Path(given[name]) if name in given else train(name, work)
        predictor = load_predictor(run / "best.pt")
        track = track_of(predictor)
        sets = {"corpus": args.corpus / track / "manifest.csv"}
        dev = args.dev / f"manifest-{track}.csv"
        if dev.exists():
            sets["dev-icons"] = dev
        evals = {}
        for set_name, manifest in sets.items():
            rows, pred = predictions(predictor, manifest)
            evals[set_name] = breakdown(rows, pred)
        results[name] = {
            "run": str(run),
            "track": track,
            "goal": dict(zip(("pearson", "spearman", "mae"), GOALS[track], strict=True)),
            "cost": costs(predictor, timed),
            "eval": evals,
        }
        if args.loso:
            results[name]["loso"] = loso(name, sets["corpus"], work)
        print(f"{name}: done", file=sys.stderr)
    print(markdown(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
