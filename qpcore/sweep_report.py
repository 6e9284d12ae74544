"""The HTML page of a sweep (``DIR/report.html``): the best trial, each
parameter's importance, slice plots (objective against each parameter) and
contour plots (pairs of parameters), drawn with matplotlib's object API."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qpcore.sweep_params import ParamSpec, short_value, yaml_scalar

if TYPE_CHECKING:
    from qpcore.html import Section

#: The best trial's config, runnable with ``qp train``; the page points to it.
BEST_YAML = "best.yaml"


def write_html(out: Path, report: Mapping[str, Any], specs: Sequence[ParamSpec]) -> Path:
    """``report.html``: best trial, importances, slices, contours, every trial."""
    from qpcore.report import generated_at
    from qpcore.report import write_report as write_page

    counts = report["counts"]
    objective = report["objective"]
    facts = [
        ("sweep", str(out)),
        ("objective", f"{objective['metric']} ({objective['direction']})"),
        ("trials", ", ".join(f"{n} {_STATE_WORDS.get(s, s.lower())}" for s, n in counts.items())),
        ("generated", generated_at()),
    ]
    return write_page(out, "Sweep report", facts, _sections(report, specs))


_STATE_WORDS = {"COMPLETE": "complete", "PRUNED": "pruned", "FAIL": "failed"}


def _sections(report: Mapping[str, Any], specs: Sequence[ParamSpec]) -> list[Section]:
    from qpcore.html import Figure, Section, join, paragraph, table, tag

    metric, direction = report["objective"]["metric"], report["objective"]["direction"]
    best = report["best"]
    trials = report["trials"]
    sections = []
    if best is None:
        body = paragraph("No trial has completed yet.")
    else:
        body = join(
            [
                paragraph(
                    f"Trial {best['number']}: {metric} {best['value']:.6g} ({direction}), "
                    f"{best['epochs']} epochs, run folder {best['run_dir']}; its config is "
                    f"{BEST_YAML} (qp train {BEST_YAML})."
                ),
                table(
                    ["param", "value"],
                    [(k, short_value(v)) for k, v in best["params"].items()],
                    sortable=False,
                ),
            ]
        )
    sections.append(Section("Best trial", body))
    importance = report["importance"]
    values = importance["values"]
    figures = []
    if values:
        body = table(["param", "importance"], list(values.items()))
        figures.append(Figure("importance", "fANOVA importance", _importance_png(values)))
    else:
        body = paragraph(f"Not measured: {importance['note']}.")
    if values and importance["note"]:
        body = join([body, paragraph(importance["note"])])
    explain = paragraph(
        "fANOVA: the share of the objective's variance over the complete trials that "
        "each parameter explains (a random-forest fit; pruned and failed trials are not used)."
    )
    sections.append(Section("Parameter importance", join([explain, body]), figures))
    slices = [
        Figure(f"slice-{i}", f"{metric} against {s.path}", _slice_png(trials, s, metric, best))
        for i, s in enumerate(specs)
    ]
    sections.append(
        Section(
            "Slices",
            paragraph(
                "Each trial's value against one parameter; pruned trials (grey crosses) at "
                "the last value they reported, the best trial ringed in red."
            ),
            slices,
        )
    )
    ranked = [p for p in (values or {}) if p in {s.path for s in specs}]
    ranked += [s.path for s in specs if s.path not in ranked]
    top = [next(s for s in specs if s.path == p) for p in ranked[:4]]
    pairs = [(a, b) for i, a in enumerate(top) for b in top[i + 1 :]]
    if pairs:
        contours = [
            Figure(
                f"contour-{i}",
                f"{metric} over {a.path} and {b.path}",
                _contour_png(trials, a, b, metric, direction),
            )
            for i, (a, b) in enumerate(pairs)
        ]
        sections.append(
            Section(
                "Contours",
                paragraph(
                    "The complete trials' values over each pair of the most important "
                    "parameters, interpolated between trials (brighter is better)."
                ),
                contours,
            )
        )
    headers = ["trial", "state", metric, "epochs", *(s.path for s in specs), "run", "note"]
    rows = [
        [
            t["number"],
            t["state"],
            t["value"],
            t["epochs"],
            *(t["params"].get(s.path) for s in specs),
            t["run_dir"],
            t.get("error") or t.get("stop_reason") or "",
        ]
        for t in trials
    ]
    sections.append(Section("Trials", table(headers, rows)))
    definition = join(
        [
            table(["param", "kind", "range"], [_range_row(s) for s in specs], sortable=False),
            paragraph(f"Base config: {report['config']}"),
            paragraph(f"Every trial's --set: {' '.join(report['overrides']) or 'none'}"),
            paragraph(
                f"Trials requested: {report['trials_requested']}; study {report['study']} "
                f"in {report['storage']}."
            ),
            tag("pre", "\n".join(f"--param {s.describe()}" for s in specs)),
        ]
    )
    sections.append(Section("Sweep definition", definition))
    return sections


def _range_row(spec: ParamSpec) -> tuple[str, str, str]:
    if spec.kind == "choice":
        return spec.path, "choice", ", ".join(yaml_scalar(c) for c in spec.choices)
    return spec.path, spec.kind, f"{spec.low:g} to {spec.high:g}"


def _coords(spec: ParamSpec, values: Sequence[Any]) -> Any:
    """Plot positions: log10 for a log range, the index of a choice."""
    import numpy as np

    if spec.kind == "choice":
        keys = [yaml_scalar(c) for c in spec.choices]
        return np.array([keys.index(yaml_scalar(v)) for v in values], float)
    found = np.array([float(v) for v in values], float)
    return np.log10(found) if spec.kind == "log" else found


def _axis(ax: Any, spec: ParamSpec, which: str) -> None:
    """Ticks in the param's own terms (``1e-03``, a choice's name)."""
    from matplotlib.ticker import FuncFormatter

    axis = ax.xaxis if which == "x" else ax.yaxis
    if spec.kind == "choice":
        axis.set_ticks(range(len(spec.choices)))
        axis.set_ticklabels([yaml_scalar(c) for c in spec.choices])
        limits = (-0.5, len(spec.choices) - 0.5)
    elif spec.kind == "log":
        axis.set_major_formatter(FuncFormatter(lambda v, _: f"{10**v:.2g}"))
        limits = (math.log10(float(spec.low)), math.log10(float(spec.high)))  # type: ignore[arg-type]
    else:
        limits = (float(spec.low), float(spec.high))  # type: ignore[arg-type]
    pad = 0.03 * (limits[1] - limits[0])
    (ax.set_xlim if which == "x" else ax.set_ylim)(limits[0] - pad, limits[1] + pad)
    (ax.set_xlabel if which == "x" else ax.set_ylabel)(spec.path)


def _jitter(spec: ParamSpec, numbers: Sequence[int]) -> Any:
    """A fixed small offset per trial along a choice axis, so trials of one
    choice do not hide each other (and the best trial's ring stays on its dot)."""
    import numpy as np

    if spec.kind != "choice":
        return np.zeros(len(numbers))
    return np.array([((n * 0.618034) % 1.0 - 0.5) * 0.16 for n in numbers])


def _slice_png(
    trials: Sequence[Mapping[str, Any]],
    spec: ParamSpec,
    metric: str,
    best: Mapping[str, Any] | None,
) -> bytes:
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    from qpcore.plots import to_png

    fig = Figure(figsize=(4.8, 3.5))
    ax = fig.add_subplot()
    done = [t for t in trials if t["state"] == "COMPLETE" and t["value"] is not None]
    pruned = [t for t in trials if t["state"] == "PRUNED" and t["value"] is not None]

    def where(group: Sequence[Mapping[str, Any]]) -> Any:
        numbers = [t["number"] for t in group]
        return _coords(spec, [t["params"][spec.path] for t in group]) + _jitter(spec, numbers)

    if pruned:
        ax.scatter(where(pruned), [t["value"] for t in pruned], marker="x", c="0.6", label="pruned")
    if done:
        numbers = [t["number"] for t in done]
        art = ax.scatter(where(done), [t["value"] for t in done], c=numbers, cmap="viridis", s=28)
        bar = fig.colorbar(art, ax=ax, label="trial")
        bar.locator = MaxNLocator(integer=True)
        bar.update_ticks()
    if best is not None:
        ax.scatter(where([best]), [best["value"]], s=140, facecolors="none", edgecolors="r", lw=1.5)
    if not done and not pruned:
        ax.text(0.5, 0.5, "no finished trial", ha="center", va="center", transform=ax.transAxes)
    _axis(ax, spec, "x")
    ax.set_ylabel(metric)
    ax.grid(alpha=0.3)
    if pruned:
        ax.legend(fontsize=8)
    return to_png(fig)


def _contour_png(
    trials: Sequence[Mapping[str, Any]],
    a: ParamSpec,
    b: ParamSpec,
    metric: str,
    direction: str,
) -> bytes:
    import numpy as np
    from matplotlib.figure import Figure
    from matplotlib.tri import Triangulation

    from qpcore.plots import to_png

    fig = Figure(figsize=(5.0, 4.0))
    ax = fig.add_subplot()
    done = [t for t in trials if t["state"] == "COMPLETE" and t["value"] is not None]
    cmap = "viridis_r" if direction == "minimize" else "viridis"
    x = _coords(a, [t["params"][a.path] for t in done])
    y = _coords(b, [t["params"][b.path] for t in done])
    z = np.array([t["value"] for t in done], float)
    contoured = False
    if len(done) >= 3 and np.ptp(z) > 0:
        try:
            # Triangles from the axes scaled alike, so the mesh does not depend
            # on the parameters' units; drawn in the real coordinates.
            sx, sy = np.ptp(x) or 1.0, np.ptp(y) or 1.0
            mesh = Triangulation(x / sx, y / sy)
            art = ax.tricontourf(Triangulation(x, y, mesh.triangles), z, levels=12, cmap=cmap)
            fig.colorbar(art, ax=ax, label=metric)
            contoured = True
        except (ValueError, RuntimeError):
            pass  # collinear or repeated points: the trials alone are drawn
    if len(done):
        points = ax.scatter(x, y, c=z, cmap=cmap, edgecolors="k", s=30, lw=0.6)
        if not contoured:
            fig.colorbar(points, ax=ax, label=metric)
    else:
        ax.text(0.5, 0.5, "no complete trial", ha="center", va="center", transform=ax.transAxes)
    _axis(ax, a, "x")
    _axis(ax, b, "y")
    return to_png(fig)


def _importance_png(values: Mapping[str, float]) -> bytes:
    from matplotlib.figure import Figure

    from qpcore.plots import to_png

    names = list(values)[::-1]
    fig = Figure(figsize=(5.2, 0.5 + 0.45 * len(names)))
    ax = fig.add_subplot()
    ax.barh(names, [values[n] for n in names], color="C0")
    ax.set(xlabel="importance (share of variance)", xlim=(0, max(1.0, *values.values())))
    ax.grid(alpha=0.3, axis="x")
    return to_png(fig)
