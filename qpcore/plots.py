"""Report figures as PNG bytes.

Drawn with matplotlib's object API on an Agg canvas, never ``pyplot``: no global
figure state to leak between calls, no window, and safe in a worker thread.
Axes limits follow the data rather than a fixed [0, 1], because default-track
labels crowd near 1 and a full-range plot would show one blob.
"""

from __future__ import annotations

import io
import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

#: Dots per inch of every figure: sharp on screen and on paper, small in base64.
DPI = 110


def to_png(fig: Figure) -> bytes:
    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    return buffer.getvalue()


def _span(*arrays: np.ndarray) -> tuple[float, float]:
    """Common axis range of SSIM-like arrays: the data's, padded, inside [0, 1.02]."""
    values = np.concatenate([np.asarray(a, float).ravel() for a in arrays])
    if not len(values):
        return 0.0, 1.0
    lo, hi = float(values.min()), float(values.max())
    pad = max(0.02, 0.05 * (hi - lo))
    return max(0.0, lo - pad), min(1.02, hi + pad)


def scatter(pred: np.ndarray, target: np.ndarray) -> bytes:
    """Predicted against true SSIM with the identity line; dense data as a hexbin."""
    fig = Figure(figsize=(5.6, 5.0))
    ax = fig.add_subplot()
    lo, hi = _span(pred, target)
    if len(pred) > 3000:
        art = ax.hexbin(target, pred, gridsize=60, bins="log", mincnt=1, extent=(lo, hi, lo, hi))
        fig.colorbar(art, ax=ax, label="rows")
    else:
        ax.scatter(target, pred, s=12, alpha=0.55, edgecolors="none")
    ax.plot([lo, hi], [lo, hi], "r--", lw=1.2, label="prediction = truth")
    ax.set(xlim=(lo, hi), ylim=(lo, hi), xlabel="true SSIM", ylabel="predicted SSIM")
    ax.set_aspect("equal")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left")
    return to_png(fig)


def error_histogram(errors: np.ndarray) -> bytes:
    fig = Figure(figsize=(6.0, 3.6))
    ax = fig.add_subplot()
    bins = int(np.clip(np.sqrt(len(errors)) * 2, 10, 60))
    ax.hist(errors, bins=bins, alpha=0.8)
    ax.axvline(0, color="r", ls="--", lw=1.2, label="no error")
    if len(errors):
        ax.axvline(float(np.mean(errors)), color="k", lw=1, label="mean error (bias)")
    ax.set(xlabel="predicted - true SSIM", ylabel="rows")
    ax.grid(alpha=0.3)
    ax.legend()
    return to_png(fig)


def band_panels(
    pred: np.ndarray, target: np.ndarray, edges: Sequence[float], names: Sequence[str]
) -> bytes:
    """One scatter per band of the true SSIM, each on its own scale."""
    fig = Figure(figsize=(4.0 * len(names), 3.8))
    band = np.searchsorted(edges, target, side="right")
    bounds = [0.0, *edges, 1.0]
    for index, (name, (lo, hi)) in enumerate(zip(names, itertools.pairwise(bounds), strict=True)):
        ax = fig.add_subplot(1, len(names), index + 1)
        mask = band == index
        ax.set_title(f"{name} ({lo:g} to {hi:g}): {int(mask.sum())} rows", fontsize=10)
        ax.set(xlabel="true SSIM", ylabel="predicted SSIM" if index == 0 else None)
        ax.grid(alpha=0.3)
        if not mask.any():
            ax.text(0.5, 0.5, "no rows", ha="center", va="center", transform=ax.transAxes)
            continue
        a, b = _span(pred[mask], target[mask])
        ax.scatter(target[mask], pred[mask], s=10, alpha=0.55, edgecolors="none")
        ax.plot([a, b], [a, b], "r--", lw=1)
        ax.set(xlim=(a, b), ylim=(a, b))
    fig.tight_layout()
    return to_png(fig)


def reliability(levels: np.ndarray, curves: Mapping[str, np.ndarray], rows: int) -> bytes:
    """Empirical against nominal coverage: a calibrated method follows the diagonal."""
    fig = Figure(figsize=(5.2, 4.6))
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], "k--", lw=1, label="perfect calibration")
    for label, coverage in curves.items():
        ax.plot(levels, coverage, marker="o", ms=3, label=label)
    band = 1.96 * np.sqrt(levels * (1 - levels) / max(rows, 1))
    ax.fill_between(levels, levels - band, levels + band, color="grey", alpha=0.2)
    ax.set(
        xlim=(0, 1),
        ylim=(0, 1),
        xlabel="nominal coverage",
        ylabel="empirical coverage",
        title=f"{rows} test rows; grey: 95 % sampling band",
    )
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left")
    return to_png(fig)


#: One line of a panel: its label, x values and y values.
Line = tuple[str, Sequence[float], Sequence[float]]


def panels(
    charts: Sequence[tuple[str, str, Sequence[Line]]], columns: int = 2, log: Sequence[str] = ()
) -> bytes:
    """Line charts side by side: each chart is (title, x label, lines); charts
    whose title is in ``log`` use a log y-axis."""
    columns = max(1, min(columns, len(charts)))
    rows = max(1, -(-len(charts) // columns))
    fig = Figure(figsize=(4.6 * columns, 3.3 * rows))
    for index, (title, xlabel, lines) in enumerate(charts):
        ax = fig.add_subplot(rows, columns, index + 1)
        for label, xs, ys in lines:
            ax.plot(xs, ys, label=label)
        positive = all(y > 0 for _, _, ys in lines for y in ys if np.isfinite(y))
        if title in log and positive:
            ax.set_yscale("log")
        ax.set(title=title, xlabel=xlabel)
        ax.grid(alpha=0.3)
        if len(lines) > 1:
            ax.legend(fontsize=8)
    fig.tight_layout()
    return to_png(fig)


def training_curves(history: Sequence[Mapping[str, Any]]) -> bytes:
    """Loss, validation agreement, MAE and learning rate per epoch of a run's
    ``metrics.jsonl``; series a run did not record are left out."""
    epochs = [row.get("epoch") for row in history]

    def lines(keys: Sequence[str]) -> list[Line]:
        found = []
        for key in keys:
            values = [row.get(key) for row in history]
            if any(v is not None for v in values):
                found.append((key, epochs, [np.nan if v is None else float(v) for v in values]))
        return found

    charts = [
        ("loss", "epoch", lines(["train_loss", "val_loss"])),
        ("agreement", "epoch", lines(["val_pearson", "val_spearman", "train_pearson"])),
        ("MAE", "epoch", lines(["train_mae", "val_mae"])),
        ("learning rate", "epoch", lines(["lr"])),
    ]
    return panels([c for c in charts if c[2]], log=("learning rate",))
