"""What several benchmarks share: imports from a checkout, the dev set, scores."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import numpy as np
from scipy import stats

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DEV = ROOT.parent / "shared" / "data" / "dev-icons"


def import_qpcore() -> None:
    """Import qpcore and the plugins, also from a checkout before ``pip install -e .``."""
    try:
        importlib.import_module("qpcore")
        importlib.import_module("qp_backbones")
    except ModuleNotFoundError:
        sys.path[:0] = [str(ROOT), str(ROOT / "plugins")]


def scores(pred: np.ndarray, target: np.ndarray) -> dict[str, float | None]:
    """Pearson, Spearman and MAE (correlations ``None`` where undefined)."""
    pred, target = np.asarray(pred, float), np.asarray(target, float)
    out: dict[str, float | None] = {"mae": float(np.abs(pred - target).mean())}
    defined = len(pred) > 1 and np.ptp(pred) > 0 and np.ptp(target) > 0
    out["pearson"] = float(stats.pearsonr(pred, target)[0]) if defined else None
    out["spearman"] = float(stats.spearmanr(pred, target)[0]) if defined else None
    return out


def percentile_ms(seconds: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(seconds) * 1000, q))
