"""The evaluation report: one self-contained HTML file.

Everything the page shows is inside it (plots and thumbnails as base64 PNG, CSS
and one small script inline), so it opens offline, can be mailed, and prints.
Its Content-Security-Policy allows no fetch at all and only the report's own
script (by hash): a file name or config value that slipped past escaping still
could not run or load anything.

The markup helpers (escaping, tables, figures, :class:`~qpcore.html.Section`)
are in :mod:`qpcore.html`, which plugins import; this module frames the
evaluators' and monitors' sections into the page and writes it.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import platform
from collections.abc import Mapping, Sequence
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qpcore.fileio import write_atomic
from qpcore.html import Figure, Html, Section, join, number, paragraph, png_uri, table, tag

if TYPE_CHECKING:
    from qpcore.registry import Registry


# --- headline -----------------------------------------------------------------

#: The seed's report thresholds: (label, good beyond, warning beyond, higher is better).
GRADES: dict[str, tuple[str, float, float, bool]] = {
    "pearson_correlation": ("Pearson correlation", 0.9, 0.8, True),
    "r2_score": ("R²", 0.8, 0.6, True),
    "mae": ("MAE", 0.05, 0.1, False),
    "accuracy_5pct": ("within ±0.05", 0.8, 0.6, True),
}
#: Shown beside the graded ones, without a grade.
PLAIN = {"rows": "rows", "spearman_correlation": "Spearman correlation", "rmse": "RMSE"}


def grade(name: str, value: float | None) -> str | None:
    """``good``, ``warning`` or ``poor`` by the seed's thresholds; ``None`` when
    the metric has none or is undefined."""
    if name not in GRADES or value is None:
        return None
    _, good, warning, higher = GRADES[name]
    if higher:
        return "good" if value > good else "warning" if value > warning else "poor"
    return "good" if value < good else "warning" if value < warning else "poor"


def _threshold_text(name: str) -> str:
    _, good, warning, higher = GRADES[name]
    sign = ">" if higher else "<"
    return f"good {sign} {good:g}, warning {sign} {warning:g}"


def headline(metrics: Mapping[str, Any], undefined: Mapping[str, str]) -> Html:
    cards = []
    for name in ("rows", *GRADES, "spearman_correlation", "rmse"):
        if name not in metrics:
            continue
        value = metrics[name]
        label = GRADES[name][0] if name in GRADES else PLAIN[name]
        percent = name == "accuracy_5pct" and value is not None
        text = f"{value:.1%}" if percent else number(value)
        verdict = grade(name, value)
        note = undefined.get(name) or (_threshold_text(name) if name in GRADES else "")
        cards.append(
            tag(
                "div",
                tag("div", label, class_="label"),
                tag("div", text, class_="value"),
                tag("div", verdict or "", class_="verdict") if verdict else "",
                tag("div", note, class_="note") if note else "",
                class_=f"card {verdict or 'plain'}",
                data_metric=name,
            )
        )
    return tag("div", *cards, class_="cards")


def metrics_table(metrics: Mapping[str, Any], undefined: Mapping[str, str]) -> Html:
    """Every scalar metric; lists (outliers, feature tables) have their own sections."""
    rows = [
        (name, value, undefined.get(name, ""))
        for name, value in metrics.items()
        if value is None or isinstance(value, int | float | str)
    ]
    return table(["metric", "value", "why null"], rows)


# --- environment --------------------------------------------------------------


def environment(device: str) -> list[tuple[str, str]]:
    """What produced the numbers: versions, machine, device."""
    import torch

    from qpcore.build import versions

    found = versions()
    with contextlib.suppress(metadata.PackageNotFoundError):
        found["matplotlib"] = metadata.version("matplotlib")
    return [
        *sorted(found.items()),
        ("platform", platform.platform()),
        ("cpus", str(os.cpu_count())),
        ("torch threads", str(torch.get_num_threads())),
        ("device", device),
    ]


def plugin_rows(registry: Registry) -> list[tuple[str, str, str, str]]:
    return [
        (p.distribution or "-", p.version or "-", p.module, p.status)
        for p in sorted(registry.plugins, key=lambda p: p.key)
    ]


# --- page ---------------------------------------------------------------------

CSS = """
:root { --good: #1b7f3b; --warning: #b86e00; --poor: #c0262d; --line: #d7dbe0; }
* { box-sizing: border-box; }
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
  color: #1d2228; margin: 0 auto; max-width: 1120px; padding: 24px; }
h1 { font-size: 1.6em; margin: 0 0 4px; }
h2 { font-size: 1.25em; margin: 0 0 12px; border-bottom: 1px solid var(--line); }
header .meta { color: #5b6570; margin: 0; }
nav { margin: 14px 0 8px; display: flex; flex-wrap: wrap; gap: 6px 14px; font-size: .9em; }
nav a { color: #2457a6; text-decoration: none; }
section { margin: 22px 0; padding: 16px 18px; border: 1px solid var(--line); border-radius: 6px; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; }
.card { border: 1px solid var(--line); border-left: 6px solid #8a949e; border-radius: 5px;
  padding: 8px 14px; min-width: 150px; }
.card .label { font-size: .85em; color: #5b6570; }
.card .value { font-size: 1.5em; font-weight: 600; }
.card .verdict { font-weight: 600; text-transform: uppercase; font-size: .8em; }
.card .note { font-size: .75em; color: #5b6570; }
.card.good { border-left-color: var(--good); }
.card.good .value, .good .verdict { color: var(--good); }
.card.warning { border-left-color: var(--warning); }
.card.warning .value, .warning .verdict { color: var(--warning); }
.card.poor { border-left-color: var(--poor); }
.card.poor .value, .poor .verdict { color: var(--poor); }
table { border-collapse: collapse; margin: 8px 0; font-size: .9em; }
th, td { border-bottom: 1px solid var(--line); padding: 4px 10px; text-align: left;
  vertical-align: middle; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.js table.sortable th { cursor: pointer; }
.js table.sortable th:after { content: " \\2195"; color: #9aa3ac; }
.figures { display: flex; flex-wrap: wrap; gap: 8px 24px; align-items: flex-start; }
figure { margin: 10px 0; flex: 1 1 400px; }
figure img { max-width: 100%; height: auto; }
figcaption { color: #5b6570; font-size: .85em; }
img.thumb { width: 64px; height: 64px; object-fit: contain; border: 1px solid var(--line);
  background: repeating-conic-gradient(#e6e6e6 0% 25%, #fff 0% 50%) 50% / 12px 12px; }
.missing { color: var(--poor); font-size: .85em; }
pre { background: #f5f7f9; padding: 10px; overflow-x: auto; font-size: .85em; }
@page { size: A4; margin: 14mm; }
@media print {
  body { max-width: none; padding: 0; font-size: 10pt; }
  nav { display: none; }
  section { border: none; padding: 0; margin: 12px 0; }
  h2 { break-after: avoid; }
  figure, tr, .cards, .card { break-inside: avoid; }
  figure { flex-basis: 260px; }
  figure img { max-height: 95mm; }
  pre { white-space: pre-wrap; font-size: 8pt; }
  .js table.sortable th:after { content: ""; }
}
"""

#: Click a header to sort its table; numeric cells sort by value. The class on
#: <html> tells the page (and the browser test) that the script ran.
SCRIPT = """
document.documentElement.classList.add("js");
document.querySelectorAll("table.sortable").forEach(function (table) {
  table.querySelectorAll("th").forEach(function (th, column) {
    var ascending = true;
    th.addEventListener("click", function () {
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = a.cells[column], y = b.cells[column];
        var p = x.dataset.value, q = y.dataset.value;
        var order = (p !== undefined && q !== undefined)
          ? parseFloat(p) - parseFloat(q)
          : x.textContent.localeCompare(y.textContent);
        return ascending ? order : -order;
      });
      ascending = !ascending;
      rows.forEach(function (row) { body.appendChild(row); });
    });
  });
});
"""


def _script_hash(script: str) -> str:
    digest = hashlib.sha256(script.encode("utf-8")).digest()
    return "sha256-" + base64.b64encode(digest).decode("ascii")


#: No fetch of any kind; inline styles and images only; our script by hash.
CSP = (
    "default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
    f"script-src '{_script_hash(SCRIPT)}'"
)


def _anchor(index: int) -> str:
    return f"s{index}"


def render(title: str, facts: Sequence[tuple[str, str]], sections: Sequence[Section]) -> str:
    """The whole page; ``facts`` are the line under the title (what, on what)."""
    nav = tag("nav", *(tag("a", s.title, href=f"#{_anchor(i)}") for i, s in enumerate(sections)))
    parts = []
    for index, section in enumerate(sections):
        figures = [
            tag(
                "figure",
                tag("img", src=png_uri(f.png), alt=f.title),
                tag("figcaption", f.title),
            )
            for f in section.figures
        ]
        gallery = tag("div", *figures, class_="figures") if figures else ""
        parts.append(
            tag("section", tag("h2", section.title), section.body, gallery, id=_anchor(index))
        )
    meta = " · ".join(f"{k}: {v}" for k, v in facts)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"{tag('title', title)}<style>{CSS}</style></head>\n<body>"
        f"{tag('header', tag('h1', title), tag('p', meta, class_='meta'))}{nav}\n"
        + "\n".join(parts)
        + f"\n<script>{SCRIPT}</script></body></html>\n"
    )


def build_sections(
    report: Mapping[str, Any],
    evaluator_sections: Sequence[Section],
    *,
    history: Sequence[Mapping[str, Any]] | None,
    config_yaml: str | None,
    registry: Registry,
    device: str,
) -> list[Section]:
    """Headline first, then what the evaluators contributed, then the run's
    curves, every metric, skipped rows, the config and the environment."""
    from qpcore import plots

    metrics, undefined = report["metrics"], report.get("undefined", {})
    sections = [Section("Headline", headline(metrics, undefined)), *evaluator_sections]
    if history:
        png = plots.training_curves(history)
        sections.append(
            Section(
                "Training curves",
                paragraph(f"{len(history)} epochs, from the run's metrics.jsonl."),
                [Figure("training_curves", "Loss, agreement and LR per epoch", png)],
            )
        )
        components = loss_components_section(history)
        if components is not None:
            sections.append(components)
    sections.append(Section("All metrics", metrics_table(metrics, undefined)))
    unreadable = report.get("unreadable") or []
    if unreadable:
        rows = [(u["image"], u["line"], u["error"]) for u in unreadable]
        sections.append(Section("Skipped rows", table(["image", "line", "error"], rows)))
    if config_yaml is not None:
        sections.append(Section("Resolved config", tag("pre", config_yaml)))
    sections.append(
        Section(
            "Environment",
            join(
                [
                    table(["what", "value"], environment(device), sortable=False),
                    tag("h3", "Plugins"),
                    table(["distribution", "version", "module", "status"], plugin_rows(registry)),
                ]
            ),
        )
    )
    return sections


def loss_components_section(history: Sequence[Mapping[str, Any]]) -> Section | None:
    """What each term of the loss did over the run (``None`` for a loss without
    components): a total that falls while one term rises is a trade-off the
    single loss curve hides."""
    from qpcore import plots

    png = plots.loss_components(history)
    if png is None:
        return None
    keys = plots.loss_component_keys(history)
    first, last = history[0], history[-1]
    rows = [
        (
            key,
            *(
                "-"
                if row.get(f"{split}_loss_{key}") is None
                else number(row[f"{split}_loss_{key}"])
                for split in ("train", "val")
                for row in (first, last)
            ),
        )
        for key in [*keys["terms"], *keys["weights"], *keys["log_vars"]]
    ]
    return Section(
        "Loss components",
        join(
            [
                paragraph(
                    f"Every component the loss returned, averaged over each epoch's rows "
                    f"(epochs {first['epoch']} to {last['epoch']})."
                ),
                table(
                    [
                        "component",
                        "train, first epoch",
                        "train, last epoch",
                        "val, first epoch",
                        "val, last epoch",
                    ],
                    rows,
                ),
            ]
        ),
        [Figure("loss_components", "Loss terms, their weights and shares per epoch", png)],
    )


def read_history(path: Path) -> list[dict[str, Any]]:
    """A run's ``metrics.jsonl``; a torn last line (a crash mid-write) is dropped."""
    rows = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    for line in lines:
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict) and isinstance(row.get("epoch"), int):
            rows.append(row)
    return rows


def write_report(
    folder: Path, title: str, facts: Sequence[tuple[str, str]], sections: Sequence[Section]
) -> Path:
    """``folder/report.html`` and every figure as ``folder/plots/<name>.png``."""
    plots_dir = folder / "plots"
    plots_dir.mkdir(parents=True, exist_ok=True)
    for section in sections:
        for figure in section.figures:
            write_atomic(plots_dir / f"{figure.name}.png", figure.png, "a plot")
    path = folder / "report.html"
    write_atomic(path, render(title, facts, sections), "the report")
    return path


def generated_at() -> str:
    return datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")


def write_evaluation_report(
    folder: Path,
    facts: Sequence[tuple[str, str]],
    report: Mapping[str, Any],
    sections: Sequence[Section],
    *,
    history: Sequence[Mapping[str, Any]] | None,
    config_yaml: str | None,
    registry: Registry,
    device: str,
) -> Path:
    """The evaluation report of ``qp evaluate`` and ``qp train``: the
    evaluators' ``sections`` framed by :func:`build_sections`, with the time
    it was made added to ``facts``."""
    pages = build_sections(
        report,
        sections,
        history=history,
        config_yaml=config_yaml,
        registry=registry,
        device=device,
    )
    stamped = [*facts, ("generated", generated_at())]
    return write_report(folder, "Evaluation report", stamped, pages)
