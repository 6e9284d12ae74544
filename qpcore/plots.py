"""Report figures as PNG bytes.

Drawn with matplotlib's object API on an Agg canvas, never ``pyplot``: no global
figure state to leak between calls, no window, and safe in a worker thread.
Axes limits follow the data rather than a fixed [0, 1], because default-track
labels crowd near 1 and a full-range plot would show one blob.
"""

from __future__ import annotations

import io
import itertools
import re
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

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


#: ``<split>_loss_<key>``: a component a loss returned, logged per epoch by the trainer.
_COMPONENT = re.compile(r"^(train|val)_loss_(.+)$")
#: Component keys that are a term's weight or its learned log-variance, not a term.
WEIGHT_PREFIXES = ("weight_", "log_var_")


def loss_component_keys(history: Sequence[Mapping[str, Any]]) -> dict[str, list[str]]:
    """The components a run logged, as ``{"terms": [...], "weights": [...],
    "log_vars": [...]}`` (keys without the split prefix, sorted)."""
    found: set[str] = set()
    for row in history:
        for key in row:
            match = _COMPONENT.match(key)
            if match:
                found.add(match.group(2))
    weights = sorted(k for k in found if k.startswith("weight_"))
    log_vars = sorted(k for k in found if k.startswith("log_var_"))
    terms = sorted(k for k in found if not k.startswith(WEIGHT_PREFIXES))
    return {"terms": terms, "weights": weights, "log_vars": log_vars}


def loss_components(history: Sequence[Mapping[str, Any]]) -> bytes | None:
    """Each loss term per epoch (train and val), the weights as they move and,
    where every term has a weight, each term's share of the weighted total:
    the share says which term the optimiser is actually serving. ``None`` when
    the loss returned no components."""
    keys = loss_component_keys(history)
    if not keys["terms"] and not keys["weights"]:
        return None
    epochs = [row.get("epoch") for row in history]

    def series(key: str) -> list[float]:
        return [np.nan if row.get(key) is None else float(row[key]) for row in history]

    charts: list[tuple[str, str, Sequence[Line]]] = []
    for term in keys["terms"]:
        lines = [
            (split, epochs, series(f"{split}_loss_{term}"))
            for split in ("train", "val")
            if any(f"{split}_loss_{term}" in row for row in history)
        ]
        charts.append((f"term: {term}", "epoch", lines))
    for title, group in (("weights", keys["weights"]), ("log variance", keys["log_vars"])):
        if group:
            split = "train" if any(f"train_loss_{group[0]}" in r for r in history) else "val"
            charts.append(
                (title, "epoch", [(k, epochs, series(f"{split}_loss_{k}")) for k in group])
            )
    weighted = [t for t in keys["terms"] if f"weight_{t}" in keys["weights"]]
    if weighted:
        parts = np.array(
            [
                np.array(series(f"train_loss_{t}")) * np.array(series(f"train_loss_weight_{t}"))
                for t in weighted
            ]
        )
        total = np.nansum(parts, axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            shares = np.where(total > 0, parts / total, np.nan)
        charts.append(
            (
                "share of the weighted total (train)",
                "epoch",
                [(t, epochs, list(shares[i])) for i, t in enumerate(weighted)],
            )
        )
    terms = tuple(f"term: {t}" for t in keys["terms"])
    return panels(charts, columns=min(3, len(charts)), log=terms)


def _relative(values: Sequence[float]) -> list[float]:
    """A curve over its own best (lowest finite) value: losses on different
    scales become comparable in shape (1.0 is the run's best)."""
    finite = [v for v in values if np.isfinite(v)]
    best = min(finite) if finite else np.nan
    return [v / best if best and np.isfinite(best) and best > 0 else np.nan for v in values]


def study_curves(curves: Mapping[str, Sequence[Sequence[Mapping[str, Any]]]]) -> bytes:
    """A loss study's curves overlaid, one colour per loss: the mean over its
    seeds per epoch and the seeds' range shaded. Validation Pearson and MAE are
    comparable across losses; each loss's own val and train losses are shown
    relative to their best, since their scales are not."""
    charts = [
        ("val Pearson", "val_pearson", False),
        ("val MAE", "val_mae", False),
        ("val loss / its best", "val_loss", True),
        ("train loss / its best", "train_loss", True),
    ]
    fig = Figure(figsize=(9.6, 7.0))
    for index, (title, key, relative) in enumerate(charts):
        ax = fig.add_subplot(2, 2, index + 1)
        for colour, (loss, runs) in zip(itertools.cycle(_COLOURS), curves.items()):
            series = []
            for history in runs:
                values = [np.nan if r.get(key) is None else float(r[key]) for r in history]
                series.append(_relative(values) if relative else values)
            length = max((len(s) for s in series), default=0)
            if not length:
                continue
            grid = np.full((len(series), length), np.nan)
            for i, s in enumerate(series):
                grid[i, : len(s)] = s
            epochs = np.arange(1, length + 1)
            with np.errstate(all="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # epochs no seed reached
                mean = np.nanmean(grid, axis=0)
                low, high = np.nanmin(grid, axis=0), np.nanmax(grid, axis=0)
            ax.plot(epochs, mean, color=colour, label=loss, lw=1.4)
            if len(series) > 1:
                ax.fill_between(epochs, low, high, color=colour, alpha=0.15, lw=0)
        if relative:
            ax.set_yscale("log")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set(title=title, xlabel="epoch")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return to_png(fig)


#: Matplotlib's default cycle, named so a loss keeps its colour across a study's figures.
_COLOURS = ("C0", "C1", "C2", "C3", "C4", "C5", "C6", "C7", "C8", "C9")


def landscape_lines(landscapes: Mapping[str, Any]) -> bytes:
    """Loss landscapes of several losses on one scale: each loss over its value
    at the trained weights (losses differ in scale, their shapes do not), and
    the MAE, which means the same for every loss."""
    fig = Figure(figsize=(9.6, 3.6))
    relative, mae = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    for colour, (loss, land) in zip(itertools.cycle(_COLOURS), landscapes.items()):
        values = np.asarray(land.losses, dtype=float)
        centre = values[len(values) // 2]
        scaled = values / centre if np.isfinite(centre) and centre > 0 else values * np.nan
        relative.plot(land.alphas, scaled, color=colour, label=loss)
        mae.plot(land.alphas, np.asarray(land.mae, dtype=float), color=colour, label=loss)
    relative.set(title="loss / loss at the trained weights", xlabel="alpha", yscale="log")
    mae.set(title=f"MAE on the {next(iter(landscapes.values())).split} rows", xlabel="alpha")
    for ax in (relative, mae):
        ax.axvline(0, color="k", lw=0.8, ls=":")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return to_png(fig)
