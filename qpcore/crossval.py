"""K-fold cross-validation of a run config.

One split's score depends on which images landed in it; K folds give K scores,
and their spread says how much. Folds are group-aware and stratified by band
(:func:`qpcore.data.splits.fold_samples`). Fold ``i`` is the test part, fold
``i + 1`` validates (early stopping, best epoch) and the rest trains.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from qpcore.config import RunConfig
from qpcore.data.splits import fold_samples
from qpcore.errors import QPError
from qpcore.registry import Registry
from qpcore.trainer import Trainer
from qpcore.training_data import build_dataset

MEASURES = ("pearson", "spearman", "mae", "mse")


def summarise(values: list[float | None]) -> dict[str, Any]:
    """Mean and 95 % t-interval across folds (``None`` where undefined)."""
    found = np.array([v for v in values if v is not None], dtype=float)
    if len(found) == 0:
        return {"mean": None, "ci95": None, "folds": 0}
    mean = float(found.mean())
    if len(found) < 2:
        return {"mean": mean, "ci95": None, "folds": 1}
    half = float(stats.t.ppf(0.975, len(found) - 1) * found.std(ddof=1) / np.sqrt(len(found)))
    return {"mean": mean, "ci95": [mean - half, mean + half], "folds": len(found)}


def cross_validate(
    cfg: RunConfig, registry: Registry, folds: int, out: Path, quiet: bool = True
) -> dict[str, Any]:
    """Train one model per fold; returns per-fold test scores and their summary."""
    if folds < 3:
        raise QPError("cross-validation needs at least 3 folds (test, validation, training)")
    data = build_dataset(cfg)  # once: every fold trains on slices of it
    parts = fold_samples(data.samples, folds, cfg.data.params.split_seed)
    if any(not part for part in parts):
        raise QPError(f"{data.origin}: too few groups for {folds} folds")
    rows = []
    for i in range(folds):
        val_index = (i + 1) % folds
        splits = {
            "test": parts[i],
            "val": parts[val_index],
            "train": [s for k, p in enumerate(parts) if k not in (i, val_index) for s in p],
        }
        folder = out / f"fold-{i + 1}"
        trainer = Trainer(cfg, registry, folder, quiet=quiet, splits=splits, data=data)
        results = trainer.fit()
        scores = results.get("test", {})
        rows.append(
            {
                "fold": i + 1,
                "rows": len(parts[i]),
                "best_epoch": results["best_epoch"],
                **{m: scores.get(m) for m in MEASURES},
            }
        )
    report = {
        "folds": rows,
        "summary": {m: summarise([r[m] for r in rows]) for m in MEASURES},
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "cv.json").write_text(json.dumps(report, indent=2, allow_nan=False) + "\n")
    return report
