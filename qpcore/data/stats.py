"""Label distributions of a manifest: the numbers docs and users compare.

A dataset whose labels are all near 1 teaches a model nothing about the images a
vectorizer ruins, so the spread (10th to 90th percentile) is reported next to the
usual quantiles, overall and per source.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from qpcore.data.manifest import Sample

QUANTILES = (
    ("min", 0.0),
    ("p10", 0.1),
    ("q1", 0.25),
    ("median", 0.5),
    ("q3", 0.75),
    ("p90", 0.9),
    ("max", 1.0),
)


def describe(values: Sequence[float]) -> dict[str, float]:
    """Count, quantiles and the p10-p90 spread of ``values``."""
    array = np.asarray(values, dtype=np.float64)
    out = {"n": float(array.size)}
    out.update({name: float(np.quantile(array, q)) for name, q in QUANTILES})
    out["spread_p10_p90"] = out["p90"] - out["p10"]
    return out


def by_source(samples: Sequence[Sample]) -> dict[str, dict[str, float]]:
    """:func:`describe` per ``source`` (the part before ``:`` for generated ones)."""
    groups: dict[str, list[float]] = defaultdict(list)
    for sample in samples:
        groups[sample.source.split(":")[0] or "(none)"].append(sample.ssim)
    return {name: describe(values) for name, values in sorted(groups.items())}


def table(rows: dict[str, dict[str, float]]) -> str:
    """A Markdown table of :func:`describe` results, one row per name."""
    head = ["", "n", *[name for name, _ in QUANTILES], "p90-p10"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, d in rows.items():
        cells = [
            name,
            f"{int(d['n'])}",
            *[f"{d[q]:.3f}" for q, _ in QUANTILES],
            f"{d['spread_p10_p90']:.3f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def histogram(series: dict[str, Sequence[float]], path: Path, title: str) -> None:
    """Overlaid label histograms (density), one per named series, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    bins = np.linspace(0, 1, 41)
    for name, values in series.items():
        ax.hist(
            np.clip(values, 0, 1),
            bins=bins,
            density=True,
            histtype="step",
            linewidth=1.8,
            label=f"{name} (n={len(values)})",
        )
    ax.set_xlabel("SSIM kept through vtracer + resvg")
    ax.set_ylabel("density")
    ax.set_title(title)
    ax.legend(loc="upper left")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
