"""Loss landscapes of a trained head around its weights (Li et al. 2018,
"Visualizing the Loss Landscape of Neural Nets").

A single loss number says how good the trained weights are, not whether they sit
in a wide basin (small weight changes cost little, which tends to generalise) or
on a sharp ridge. This module answers that for the MLP head of a run: it walks
from the trained weights ``theta*`` along random directions and records the
run's own loss,

* 1-D: ``L(alpha) = loss(theta* + alpha d1)`` for ``alpha`` in
  ``linspace(-span, span, steps)``;
* 2-D: ``L(alpha, beta) = loss(theta* + alpha d1 + beta d2)`` on a
  ``grid x grid`` square of the same span.

Random directions in raw weight space are meaningless across layers of
different scale, so each direction is *filter-normalised* (the paper's
section 4): every row of a weight matrix (one output unit of a ``Linear``) is
rescaled to the Frobenius norm of the same row of ``theta*``. One-dimensional
parameters (biases, batch-norm weights and biases) get a zero direction, as in
the paper: they are left at their trained values. Batch-norm running
statistics stay as trained too (the model is in eval mode), and so does
everything outside the head: backbones, feature standardisation, the SVG-size
head, a loss's own learned weights.

The loss is evaluated as the trainer validates: the run's configured loss (its
total, when it returns a mapping), over the rows of one split in row order,
in batches of the run's ``trainer.batch_size``, as a row-weighted mean of the
batch totals, under ``torch.no_grad`` in float32. At ``alpha = 0`` on the
validation split it is therefore the run's recorded ``val_loss`` of the
checkpoint's epoch (a run trained on CUDA computed that one under bfloat16
autocast, so it may differ in the third decimal).

The data are rebuilt from the checkpoint's own resolved config
(:func:`qpcore.training_data.load_splits`), so the rows are the run's; the
features come from the feature cache (frozen backbones) and are computed once,
since only the head moves. A cross-validation fold's run trained on its fold's
rows, not the dataset's own split: :func:`loss_landscape` notices that through
the data fingerprint in ``run.json`` and says so in ``Landscape.notes``.

Use :func:`loss_landscape` for the numbers, :func:`draw_1d` and :func:`draw_2d`
for PNG figures; ``qp landscape RUN`` (:mod:`qpcore.cli_landscape`) writes all
three into ``RUN/landscape/``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.colors import BoundaryNorm
from matplotlib.figure import Figure
from torch import Tensor, nn
from tqdm import tqdm

from qpcore import jsontext
from qpcore.build import build_loss, build_model, pick_device
from qpcore.checkpoint import load_checkpoint
from qpcore.config import RunConfig
from qpcore.data.dataset import cache_root
from qpcore.errors import QPError
from qpcore.evaluation import regression_metrics
from qpcore.feature_cache import cached_features, compute_features
from qpcore.loss_output import split_loss_output
from qpcore.model import QualityModel
from qpcore.plots import to_png
from qpcore.registry import Registry, default_registry
from qpcore.restore import check_installed, load_weights, rebuild_config
from qpcore.run_files import BEST, LAST, RUN_FILE
from qpcore.specs import Kind
from qpcore.training_data import SPLITS, Rows, build_dataset, data_fingerprint, load_splits
from qpcore.validate import resolve_config

#: What a landscape builds from a checkpoint's config: the model, its data and
#: its loss; and the scheduler, whose watched metric the data checks read (a
#: plateau scheduler on val_loss needs a validation split). The optimizer,
#: monitors and evaluators play no part, so they need not be installed.
LANDSCAPE_KINDS: tuple[Kind, ...] = ("backbone", "dataset", "loss", "scheduler")

#: The half-width of the neighbourhood whose largest loss rise is reported as
#: the local sharpness (capped at ``span``).
NEAR = 0.25

#: Guards the filter normalisation against an all-zero direction row.
EPS = 1e-10

JSON_FILE, PNG_1D, PNG_2D = "landscape.json", "landscape_1d.png", "landscape_2d.png"


@dataclass(frozen=True)
class Landscape:
    """A run's loss around its trained head weights, with sharpness summaries.

    Attributes:
        checkpoint: The checkpoint the weights came from.
        epoch: The epoch that checkpoint saved.
        split: The rows the loss was evaluated on (``train``, ``val`` or ``test``).
        rows: How many rows that split has.
        seed: Seed of the random directions.
        span: The largest ``|alpha|`` (and ``|beta|``) walked.
        loss: The run's loss, by its config name.
        batch_size: Rows per evaluated batch (batch-wise losses depend on it).
        device: Where the loss was evaluated.
        parameters: The head parameters moved along the directions.
        ignored: The head's 1-D parameters, which keep their trained values.
        alphas: The 1-D line's coefficients of ``d1``.
        losses: The loss at each of ``alphas``.
        mae, pearson: The split's MAE and Pearson correlation at each of
            ``alphas`` (``None`` where undefined: constant predictions).
        grid_alphas: The 2-D grid's coefficients, the same along both directions.
        grid: ``grid[i][j]`` is the loss at ``grid_alphas[i] d1 + grid_alphas[j] d2``;
            ``d1`` is the 1-D line's direction.
        summary_1d, summary_2d: See :func:`summarise`.
        recorded_loss: On ``val``, the ``val_loss`` the trainer recorded for the
            checkpoint's epoch, which ``alpha = 0`` reproduces; ``None`` otherwise.
        data_matches_run: Whether the rebuilt rows are those the run trained on
            (its ``run.json`` fingerprint); ``None`` without a ``run.json``.
        notes: What a reader should know (changed data, a loss state not found).
    """

    checkpoint: str
    epoch: int
    split: str
    rows: int
    seed: int
    span: float
    loss: str
    batch_size: int
    device: str
    parameters: list[str]
    ignored: list[str]
    alphas: list[float]
    losses: list[float]
    mae: list[float | None]
    pearson: list[float | None]
    grid_alphas: list[float]
    grid: list[list[float]]
    summary_1d: dict[str, Any]
    summary_2d: dict[str, Any]
    recorded_loss: float | None
    data_matches_run: bool | None
    notes: list[str]

    def to_dict(self) -> dict[str, Any]:
        """Every field as strict JSON values: a non-finite loss (a diverged
        point far out) is ``null``."""
        return jsontext.json_safe(asdict(self))

    def to_json(self, indent: int | None = 2) -> str:
        """The text of ``landscape.json``."""
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Landscape:
        """A landscape read back from :meth:`to_dict`'s value (``null`` losses
        become NaN again, so the figures can be redrawn)."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        missing = known - set(values)
        if missing:
            raise QPError(f"not a landscape: missing {', '.join(sorted(missing))}")
        values["losses"] = [_nan(v) for v in values["losses"]]
        values["mae"] = [_nan(v) for v in values["mae"]]
        values["grid"] = [[_nan(v) for v in row] for row in values["grid"]]
        return cls(**values)


def _nan(value: float | None) -> float:
    return math.nan if value is None else float(value)


def read_landscape(path: str | Path) -> Landscape:
    """A ``landscape.json`` written by ``qp landscape``."""
    path = Path(path)
    try:
        return Landscape.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError) as exc:
        raise QPError(f"{path}: not a readable landscape ({exc})") from exc


# --- directions --------------------------------------------------------------


def filter_normalized_direction(
    params: Mapping[str, Tensor], generator: torch.Generator
) -> dict[str, Tensor]:
    """A Gaussian direction shaped like ``params``, filter-normalised.

    For a parameter of 2 or more dimensions, row ``i`` of the direction (all of
    ``d[i]``: the incoming weights of output unit ``i`` of a ``Linear``) is
    rescaled to the Frobenius norm of ``params[i]``, so a step of ``alpha``
    changes every unit by the same fraction of its own weights, whatever the
    layer's scale. 1-D parameters (biases, batch-norm weights and biases) get
    zeros and keep their trained values, as in Li et al.

    Draws from ``generator`` (a CPU generator) in the order of ``params``, so
    one seed gives one direction on any device.
    """
    out: dict[str, Tensor] = {}
    for name, theta in params.items():
        theta = theta.detach().to("cpu", torch.float32)
        if theta.dim() < 2:
            out[name] = torch.zeros_like(theta)
            continue
        d = torch.randn(theta.shape, generator=generator, dtype=torch.float32)
        rows_d, rows_t = d.reshape(len(d), -1), theta.reshape(len(theta), -1)
        scale = rows_t.norm(dim=1) / (rows_d.norm(dim=1) + EPS)
        out[name] = (rows_d * scale[:, None]).reshape(theta.shape)
    return out


def head_directions(head: nn.Module, seed: int, count: int) -> list[dict[str, Tensor]]:
    """``count`` filter-normalised directions for ``head``'s parameters, drawn
    one after the other from one generator seeded by ``seed``: the first is the
    same whether one or two are asked for."""
    generator = torch.Generator().manual_seed(seed)
    params = dict(head.named_parameters())
    return [filter_normalized_direction(params, generator) for _ in range(count)]


# --- evaluation --------------------------------------------------------------


@dataclass(frozen=True)
class _Batch:
    inputs: Tensor  # what the head reads: standardised features (and params)
    target: Tensor


class _Objective:
    """The run's loss of the head's current weights over fixed batches.

    The head's input does not move with its weights, so it is computed once per
    batch; one evaluation is then a forward of the head and the loss only.
    """

    def __init__(self, head: nn.Module, loss: nn.Module, batches: Sequence[_Batch]) -> None:
        self.head, self.loss, self.batches = head, loss, list(batches)

    def __call__(self) -> tuple[float, np.ndarray]:
        """The row-weighted mean loss and the predictions, in row order."""
        total_sum, count, preds = 0.0, 0, []
        with torch.no_grad():
            for batch in self.batches:
                pred = self.head(batch.inputs).float()
                total, _ = split_loss_output(self.loss(pred, batch.target))
                total_sum += float(total) * len(pred)
                count += len(pred)
                preds.append(pred.cpu())
        values = torch.cat(preds).numpy() if preds else np.zeros(0, np.float32)
        return total_sum / max(count, 1), values


@contextmanager
def _moved(
    head: nn.Module, directions: Sequence[Mapping[str, Tensor]], device: torch.device
) -> Iterator[Callable[[Sequence[float]], None]]:
    """A setter of ``theta* + sum c_k d_k`` for the head; the trained weights
    are put back on leaving."""
    params = dict(head.named_parameters())
    trained = {name: p.detach().clone() for name, p in params.items()}
    moved = [{n: d[n].to(device) for n in params} for d in directions]

    def place(coefficients: Sequence[float]) -> None:
        with torch.no_grad():
            for name, p in params.items():
                value = trained[name].clone()
                for c, d in zip(coefficients, moved, strict=True):
                    if c:
                        value.add_(d[name], alpha=float(c))
                p.copy_(value)

    try:
        yield place
    finally:
        with torch.no_grad():
            for name, p in params.items():
                p.copy_(trained[name])


# --- summaries -----------------------------------------------------------------


def summarise(alphas: Sequence[float], values: np.ndarray, near: float = NEAR) -> dict[str, Any]:
    """Sharpness of a 1-D line (``values[i]``) or a 2-D grid (``values[i, j]``)
    around its centre, the trained weights.

    Returns ``centre_loss``; ``min_loss`` with its ``argmin`` (an index, or
    ``[i, j]``) and whether the centre is the minimum (``centre_is_minimum``:
    ``False`` says a lower loss lies within reach, which is common on
    validation rows: the weights were fitted to the training rows);
    ``max_rise_near``, the largest rise above the centre within
    ``|alpha| <= near`` (within the square ``max(|alpha|, |beta|) <= near`` on a
    grid); ``max_rise_span``, the same over the whole span; and both rises
    relative to the centre loss. A point whose loss is not finite counts in
    ``non_finite`` and is skipped.
    """
    alphas = np.asarray(alphas, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64)
    centre = (len(alphas) // 2,) * values.ndim
    reach = np.abs(alphas)
    if values.ndim == 2:
        reach = np.maximum(reach[:, None], reach[None, :])
    radius = min(near, float(reach.max()))
    finite = np.isfinite(values)
    centre_loss = float(values[centre])

    def rise(mask: np.ndarray) -> float | None:
        chosen = values[mask & finite]
        if not len(chosen) or not math.isfinite(centre_loss):
            return None
        return float(chosen.max() - centre_loss)

    found: dict[str, Any] = {
        "centre_loss": centre_loss,
        "min_loss": None,
        "argmin": None,
        "argmin_alpha": None,
        "centre_is_minimum": None,
        "near": radius,
        "max_rise_near": rise(reach <= radius + 1e-12),
        "max_rise_span": rise(np.ones_like(finite)),
        "relative_rise_near": None,
        "relative_rise_span": None,
        "non_finite": int((~finite).sum()),
    }
    if finite.any():
        flat = int(np.argmin(np.where(finite, values, np.inf)))
        index = np.unravel_index(flat, values.shape)
        found["min_loss"] = float(values[index])
        found["argmin"] = int(index[0]) if values.ndim == 1 else [int(i) for i in index]
        coords = [float(alphas[i]) for i in index]
        found["argmin_alpha"] = coords[0] if values.ndim == 1 else coords
        # Ties (a flat loss) count as the centre being a minimum.
        found["centre_is_minimum"] = bool(
            math.isfinite(centre_loss) and centre_loss <= found["min_loss"]
        )
    if centre_loss and math.isfinite(centre_loss):
        for key in ("near", "span"):
            value = found[f"max_rise_{key}"]
            if value is not None:
                found[f"relative_rise_{key}"] = value / abs(centre_loss)
    return found


# --- the landscape ---------------------------------------------------------------


def checkpoint_of(path: str | Path) -> Path:
    """The checkpoint of ``path``: a run folder's ``best.pt``, or the file itself.

    Raises:
        QPError: ``path`` does not exist, or is a folder without ``best.pt``.
    """
    path = Path(path)
    if path.is_dir():
        best = path / BEST
        if not best.is_file():
            hint = (
                f"it holds {LAST}, but no epoch kept weights as best; give {path / LAST} "
                "to use the last epoch's"
                if (path / LAST).is_file()
                else "not a run folder of qp train"
            )
            raise QPError(f"{path}: no {BEST} in this folder ({hint})")
        return best
    if not path.exists():
        raise QPError(f"{path}: no such run folder or checkpoint")
    return path


def _check_grid(name: str, value: int) -> None:
    if value < 3 or value % 2 == 0:
        raise QPError(
            f"{name} must be an odd number >= 3 (the trained weights are the middle point), "
            f"got {value}"
        )


def loss_landscape(
    run: str | Path,
    *,
    split: str = "val",
    steps: int = 41,
    grid: int = 21,
    span: float = 1.0,
    seed: int = 0,
    batch_size: int | None = None,
    device: str = "cpu",
    registry: Registry | None = None,
    progress: bool = False,
) -> Landscape:
    """The 1-D and 2-D loss landscape of a run's head around its trained weights.

    Args:
        run: A run folder (its ``best.pt`` is used) or a checkpoint file.
        split: The rows to evaluate the loss on: ``val`` (default), ``train``
            (in eval mode and row order, so not the run's ``train_loss``, which
            has dropout on and shuffled batches) or ``test``.
        steps: Points of the 1-D line, odd so that ``alpha = 0`` is one of them.
        grid: Points per side of the 2-D grid (``grid * grid`` evaluations), odd.
        span: The line and the grid cover ``[-span, span]``; 1 is a step as long
            as each weight row itself.
        seed: Seed of the random directions.
        batch_size: Rows per batch (default: the run's ``trainer.batch_size``,
            which a batch-wise loss such as ``combined`` needs to mean the same).
        device: Where to evaluate (``cpu``, ``cuda``, ``auto``...).
        registry: The installed components (default: the entry points').
        progress: A progress bar over the evaluations (and feature computing).

    Raises:
        QPError: A missing run or checkpoint, bad arguments, an empty split, or
            a checkpoint whose model, data or loss cannot be rebuilt here.
    """
    if split not in SPLITS:
        raise QPError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    _check_grid("steps", steps)
    _check_grid("grid", grid)
    if not (isinstance(span, int | float) and math.isfinite(span) and span > 0):
        raise QPError(f"span must be a positive number, got {span!r}")
    if batch_size is not None and batch_size < 1:
        raise QPError(f"batch_size must be at least 1, got {batch_size}")
    file = checkpoint_of(run)
    meta, payload = load_checkpoint(file)
    registry = registry or default_registry()
    check_installed(meta, registry, file, LANDSCAPE_KINDS)
    cfg = resolve_config(
        rebuild_config(meta, file), registry, source=f"{file} (its config)", kinds=LANDSCAPE_KINDS
    )
    where = pick_device(device)
    notes: list[str] = []
    # Building the model draws initial weights: the caller's RNG stays as it was.
    with torch.random.fork_rng(devices=[]):
        splits = load_splits(cfg, build_dataset(cfg))
        model = build_model(cfg)
    load_weights(model, meta, payload["model"], file)
    matches = _data_matches(file, splits)
    if matches is False:
        notes.append(
            f"the rows rebuilt from the config differ from those {file.parent} trained on "
            "(its run.json fingerprint): the data changed since, or the run was a "
            "cross-validation fold; the loss is of the rows rebuilt now"
        )
    rows = splits[split]
    if not len(rows):
        raise QPError(f"{file}: the {split} split of its data has no rows")
    loss = build_loss(cfg)
    notes += _load_loss_state(loss, file, payload)
    set_epoch = getattr(loss, "set_epoch", None)
    if callable(set_epoch):
        set_epoch(meta.epoch)  # ramped weights as at the checkpoint's epoch
    model.eval().to(where)
    loss.eval().to(where)
    size = batch_size or cfg.trainer.batch_size
    batches = _batches(cfg, model, rows, where, size, progress)
    objective = _Objective(model.head, loss, batches)
    directions = head_directions(model.head, seed, 2)
    alphas = _symmetric(span, steps)
    grid_alphas = _symmetric(span, grid)
    target = rows.labels.numpy()
    losses, maes, pearsons = [], [], []
    surface = np.full((grid, grid), np.nan)
    total = steps + grid * grid
    with (
        _moved(model.head, directions, where) as place,
        tqdm(total=total, desc="landscape", unit="eval", leave=False, disable=not progress) as bar,
    ):
        for alpha in alphas:
            place([alpha, 0.0])
            value, pred = objective()
            scores = regression_metrics(pred, target)
            losses.append(value)
            maes.append(scores["mae"])
            pearsons.append(scores["pearson"])
            bar.update()
        for i, alpha in enumerate(grid_alphas):
            for j, beta in enumerate(grid_alphas):
                place([alpha, beta])
                surface[i, j] = objective()[0]
                bar.update()
    names = [n for n, p in model.head.named_parameters() if p.dim() >= 2]
    ignored = [n for n, p in model.head.named_parameters() if p.dim() < 2]
    # Only val_loss was computed as here (eval mode, rows in order); train_loss
    # had dropout on and shuffled batches, and no test loss is recorded.
    recorded = meta.metrics.get("val_loss") if split == "val" else None
    return Landscape(
        checkpoint=str(file),
        epoch=meta.epoch,
        split=split,
        rows=len(rows),
        seed=seed,
        span=float(span),
        loss=cfg.loss.name,
        batch_size=size,
        device=str(where),
        parameters=names,
        ignored=ignored,
        alphas=alphas.tolist(),
        losses=losses,
        mae=maes,
        pearson=pearsons,
        grid_alphas=grid_alphas.tolist(),
        grid=surface.tolist(),
        summary_1d=summarise(alphas, np.array(losses)),
        summary_2d=summarise(grid_alphas, surface),
        recorded_loss=recorded,
        data_matches_run=matches,
        notes=notes,
    )


def _symmetric(span: float, count: int) -> np.ndarray:
    """``linspace(-span, span, count)`` with an exact 0 in the middle and an
    exact mirror image on both sides (``count`` is odd)."""
    half = np.linspace(0.0, span, count // 2 + 1)
    return np.concatenate([-half[:0:-1], half])


def _batches(
    cfg: RunConfig,
    model: QualityModel,
    rows: Rows,
    device: torch.device,
    size: int,
    progress: bool,
) -> list[_Batch]:
    """The split's head inputs and labels, batched in row order as the trainer
    validates. Frozen backbones' features come from the cache; a trained
    backbone's are computed here with its checkpoint weights (eval mode), not
    cached: its identity is that one run's."""
    paths = [s.image for s in rows.samples]
    tables = []
    for backbone in model.backbones:
        if backbone.trainable:
            table = compute_features(
                backbone,
                paths,
                num_workers=cfg.trainer.num_workers,
                device=device,
                progress=progress,
            )
        else:
            table, _ = cached_features(
                backbone,
                paths,
                cache_root(),
                num_workers=cfg.trainer.num_workers,
                device=device,
                progress=progress,
            )
        tables.append(table)
    features = torch.from_numpy(np.concatenate(tables, axis=1))
    batches = []
    with torch.no_grad():
        for index in torch.arange(len(rows)).split(size):
            inputs = model.head_input(features[index].to(device), rows.params[index].to(device))
            batches.append(_Batch(inputs.float(), rows.labels[index].to(device)))
    return batches


def _data_matches(file: Path, splits: Mapping[str, Rows]) -> bool | None:
    """Whether ``splits`` are the rows of the run that wrote ``file``, by the
    fingerprint its folder's ``run.json`` records; ``None`` without one."""
    try:
        record = json.loads((file.parent / RUN_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    digest = record.get("data_digest") if isinstance(record, dict) else None
    if not isinstance(digest, str):
        return None
    return digest == data_fingerprint(splits)


def _load_loss_state(loss: nn.Module, file: Path, payload: Mapping[str, Any]) -> list[str]:
    """Give a loss with state of its own (learned term weights) the trained one.

    ``best.pt`` holds the model only; the loss state then comes from the
    training state of the checkpoint itself, else of the run's ``last.pt``
    (the last epoch's, which may be later than the best one). Returns notes.
    """
    if not loss.state_dict():
        return []
    sources = [file]
    last = file.parent / LAST
    if last != file and last.is_file():
        sources.append(last)
    for source in sources:
        try:
            found = payload if source == file else load_checkpoint(source, False)[1]
            training = found.get("training")
            if not isinstance(training, dict) or not isinstance(training.get("loss"), dict):
                continue
            loss.load_state_dict(training["loss"])
        except (QPError, RuntimeError, KeyError, TypeError) as exc:
            return [f"the loss's own state could not be read from {source} ({exc}): untrained"]
        if source == file:
            return []
        return [f"the loss's own state (learned weights) comes from {source}, its last epoch"]
    return ["the loss's own state was not found (no training state): it is untrained"]


# --- figures -------------------------------------------------------------------


def _title(landscape: Landscape) -> str:
    return (
        f"{landscape.loss} loss, {landscape.split} ({landscape.rows} rows), "
        f"seed {landscape.seed}, epoch {landscape.epoch}"
    )


def draw_1d(landscape: Landscape) -> bytes:
    """PNG: the loss along the 1-D line (and the split's MAE on a second axis),
    the trained weights marked at ``alpha = 0``. A loss spanning more than two
    orders of magnitude (all positive) is drawn on a log axis."""
    alphas = np.asarray(landscape.alphas, dtype=float)
    losses = np.asarray(landscape.losses, dtype=float)
    fig = Figure(figsize=(6.4, 4.2))
    ax = fig.add_subplot()
    ax.plot(alphas, losses, marker="o", ms=3, lw=1.5, label=f"{landscape.loss} loss")
    centre = landscape.summary_1d["centre_loss"]
    ax.plot([0.0], [centre], "r*", ms=13, label="trained weights", zorder=5)
    finite = losses[np.isfinite(losses)]
    if len(finite) and finite.min() > 0 and finite.max() / finite.min() > 100:
        ax.set_yscale("log")
    mae = np.asarray(landscape.mae, dtype=float)
    if np.isfinite(mae).any():
        twin = ax.twinx()
        twin.plot(alphas, mae, color="grey", ls="--", lw=1, label="MAE")
        twin.set_ylabel("MAE (SSIM units)", color="grey")
        lines, labels = ax.get_legend_handles_labels()
        more, names = twin.get_legend_handles_labels()
        ax.legend(lines + more, labels + names, loc="upper center", fontsize=8)
    else:
        ax.legend(loc="upper center", fontsize=8)
    ax.set(
        xlabel="alpha: step along a filter-normalised random direction",
        ylabel="loss",
        title=_title(landscape),
    )
    ax.title.set_fontsize(10)
    ax.grid(alpha=0.3)
    return to_png(fig)


def contour_levels(values: np.ndarray, count: int = 16) -> np.ndarray:
    """Contour levels over the finite ``values``: evenly spaced, or, when most
    of the surface lies near its minimum (its median in the lowest quarter of
    the range: walls steeper than a quadratic bowl's, where even levels would
    leave the floor one colour), spaced geometrically above the minimum so the
    floor keeps detail."""
    finite = np.asarray(values, dtype=float)
    finite = finite[np.isfinite(finite)]
    lo, hi = float(finite.min()), float(finite.max())
    if hi - lo <= 1e-12 * max(1.0, abs(lo)):
        return np.array([lo, lo + max(1e-12, 1e-9 * abs(lo))])
    if float(np.median(finite)) - lo < 0.25 * (hi - lo):
        offsets = (np.geomspace(1.0, 101.0, count) - 1.0) / 100.0
        return lo + (hi - lo) * offsets
    return np.linspace(lo, hi, count)


def draw_2d(landscape: Landscape) -> bytes:
    """PNG: filled contours of the 2-D grid over ``(alpha, beta)``, the trained
    weights marked at the centre, the grid's minimum marked where it lies
    elsewhere. Levels from :func:`contour_levels`; a colour per level band."""
    alphas = np.asarray(landscape.grid_alphas, dtype=float)
    surface = np.asarray(landscape.grid, dtype=float)
    fig = Figure(figsize=(6.0, 5.2))
    ax = fig.add_subplot()
    # grid[i][j]: i along d1 (x), j along d2 (y); contour wants [y, x].
    z = np.ma.masked_invalid(surface.T)
    if z.count() == 0:
        ax.text(0.5, 0.5, "no finite loss", ha="center", va="center", transform=ax.transAxes)
    else:
        levels = contour_levels(surface)
        norm = BoundaryNorm(levels, ncolors=256)
        art = ax.contourf(alphas, alphas, z, levels=levels, norm=norm, cmap="viridis")
        ax.contour(alphas, alphas, z, levels=levels, colors="k", linewidths=0.4, alpha=0.6)
        bar = fig.colorbar(art, ax=ax, format="%.3g")
        bar.set_label(f"{landscape.loss} loss")
    ax.plot([0.0], [0.0], "r*", ms=14, label="trained weights", zorder=5)
    where = landscape.summary_2d.get("argmin_alpha")
    if where is not None and not landscape.summary_2d.get("centre_is_minimum"):
        ax.plot([where[0]], [where[1]], "wX", ms=9, mec="k", label="grid minimum", zorder=5)
    ax.set(
        xlabel="alpha (direction d1)",
        ylabel="beta (direction d2)",
        title=_title(landscape),
        xlim=(alphas[0], alphas[-1]),
        ylim=(alphas[0], alphas[-1]),
    )
    ax.title.set_fontsize(10)
    ax.set_aspect("equal")
    ax.legend(loc="upper right", fontsize=8)
    return to_png(fig)


def write_landscape(landscape: Landscape, out: str | Path) -> list[Path]:
    """``landscape.json``, ``landscape_1d.png`` and ``landscape_2d.png`` in
    ``out`` (created), each written atomically; returns their paths."""
    from qpcore.fileio import write_atomic

    out = Path(out)
    files = [out / JSON_FILE, out / PNG_1D, out / PNG_2D]
    write_atomic(files[0], landscape.to_json() + "\n", "the landscape")
    write_atomic(files[1], draw_1d(landscape), "the 1-D landscape figure")
    write_atomic(files[2], draw_2d(landscape), "the 2-D landscape figure")
    return files


__all__ = [
    "LANDSCAPE_KINDS",
    "Landscape",
    "checkpoint_of",
    "contour_levels",
    "draw_1d",
    "draw_2d",
    "filter_normalized_direction",
    "head_directions",
    "loss_landscape",
    "read_landscape",
    "summarise",
    "write_landscape",
]
