"""What several benchmarks share: imports from a checkout, the dev set, scores."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import numpy as np

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
    """Pearson, Spearman and MAE, as the trainer computes them."""
    from qpcore.evaluation import regression_metrics

    found = regression_metrics(pred, target)
    return {k: found[k] for k in ("pearson", "spearman", "mae")}


def percentile_ms(seconds: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(seconds) * 1000, q))


def ensure_corpus(corpus: Path) -> None:
    """Build the real corpus (``qp data corpus``) unless it is there already."""
    if (corpus / "default" / "manifest.csv").exists() and (
        corpus / "random" / "manifest.csv"
    ).exists():
        return
    qp = Path(sys.executable).with_name("qp")
    subprocess.run([str(qp), "data", "corpus", "--out", str(corpus)], check=True)
