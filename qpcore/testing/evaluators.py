"""The evaluator kit: :func:`assert_evaluator_conforms`."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qpcore.testing._common import (
    HOSTILE,
    HOSTILE_ATTRIBUTE,
    _call,
    _fail,
    _hostile_folder,
    _params,
    _require,
    _require_escaped,
    _scratch,
)

if TYPE_CHECKING:
    import numpy as np

    from qpcore.evaluation import EvalData
    from qpcore.specs import EvaluatorSpec

#: Rows of the ordinary case; the degenerate cases are derived from it.
ROWS = 24


def assert_evaluator_conforms(
    spec: EvaluatorSpec,
    params: Mapping[str, Any] | None = None,
    *,
    predictor: Any = None,
    workdir: str | Path | None = None,
) -> None:
    """Check that an evaluator keeps the contract ``qp evaluate`` relies on.

    :func:`qpcore.evaluation.run_evaluators` builds the evaluator, calls
    ``evaluate(data)`` and, for the HTML report, ``report(data, out)`` on the
    same object; ``metrics.json`` is written with ``allow_nan=False``, and an
    undefined statistic is ``None`` with its reason in ``out.undefined``
    (:meth:`qpcore.evaluation.EvalOutput.put`). The check asserts, for an
    ordinary set of rows and for degenerate ones (a single row, constant
    targets, constant predictions, both constant), that:

    * ``evaluate`` returns an :class:`~qpcore.evaluation.EvalOutput` without
      raising, whatever the data;
    * every metric is JSON without NaN or infinity anywhere (also inside lists
      and mappings), and none is called ``rows`` (``run_evaluators`` reports it);
    * every ``None`` metric has a non-empty reason in ``undefined``, and every
      reason belongs to a metric that is ``None``;
    * ``report(data, out)``, where present, returns report sections, and the
      sample's image paths, groups and sources, which hold markup
      (``<script>`` in a folder name), appear in the page only escaped.

    Args:
        spec: The evaluator's registration record.
        params: Raw parameters as a config would give them; ``None`` for defaults.
        predictor: The :class:`qpcore.predictor.Predictor` ``data.predictor``
            holds (``None``, as when predictions come as arrays, by default).
        workdir: Folder for the rows' image files (default: a temporary one).

    Raises:
        AssertionError: Naming the evaluator and the broken rule.
    """
    import numpy as np

    validated = _params(spec, params)
    with _scratch(workdir, "qp-kit-evaluator-") as root:
        images = _images(_hostile_folder(root), ROWS)
        rng = np.random.default_rng(0)
        targets = np.round(rng.uniform(0.3, 1.0, ROWS), 6)
        predictions = np.clip(targets + rng.normal(0, 0.05, ROWS), 0, 1)
        cases = {
            "ordinary rows": (predictions, targets),
            "a single row": (predictions[:1], targets[:1]),
            "constant targets": (predictions, np.full(ROWS, 0.75)),
            "constant predictions": (np.full(ROWS, 0.75), targets),
            "constant predictions and targets": (np.full(ROWS, 0.75), np.full(ROWS, 0.75)),
        }
        for case, (pred, target) in cases.items():
            data = _data(images, pred, target, predictor)
            evaluator = _call("evaluator", spec.name, "the factory", spec.factory, validated)
            out = _call("evaluator", spec.name, f"evaluate() on {case}", evaluator.evaluate, data)
            _require_output(spec.name, out, case)
            if hasattr(evaluator, "report"):
                what = f"report() on {case}"
                sections = _call("evaluator", spec.name, what, evaluator.report, data, out)
                _require_escaped("evaluator", spec.name, sections, what)


def _images(folder: Path, count: int) -> list[Path]:
    """Small real PNGs (a report may show thumbnails) in a folder named with markup."""
    from PIL import Image

    paths = []
    for i in range(count):
        path = folder / f"image-{i}.png"
        Image.new("RGB", (8, 8), (10 * i % 256, 120, 200)).save(path)
        paths.append(path)
    return paths


def _data(images: list[Path], pred: np.ndarray, target: np.ndarray, predictor: Any) -> EvalData:
    from qpcore.data.manifest import Sample
    from qpcore.data.protocol import VtracerParams
    from qpcore.evaluation import EvalData

    samples = [
        Sample(
            images[i],
            float(target[i]),
            VtracerParams(),
            group=f"{HOSTILE}{i // 2}",
            source=HOSTILE_ATTRIBUTE,
            line=i + 2,
        )
        for i in range(len(target))
    ]
    return EvalData(pred.astype(float), target.astype(float), samples, predictor)


def _require_output(name: str, out: Any, case: str) -> None:
    from qpcore.evaluation import EvalOutput

    _require(
        "evaluator",
        name,
        isinstance(out, EvalOutput),
        f"evaluate() on {case} returned {type(out).__name__}, not qpcore.evaluation.EvalOutput",
    )
    metrics, undefined = out.metrics, out.undefined
    _require(
        "evaluator",
        name,
        "rows" not in metrics,
        "reports a metric called 'rows', which run_evaluators reports itself",
    )
    for metric, value in metrics.items():
        bad = _non_finite(value)
        _require(
            "evaluator",
            name,
            bad is None,
            f"on {case}, metric {metric!r} holds {bad}: an undefined statistic is None "
            "with a reason (EvalOutput.put(name, compute, needs)), never NaN or infinity",
        )
        if value is None:
            reason = undefined.get(metric)
            _require(
                "evaluator",
                name,
                isinstance(reason, str) and bool(reason.strip()),
                f"on {case}, metric {metric!r} is None without a reason in out.undefined",
            )
    try:
        json.dumps(metrics, allow_nan=False)
    except (TypeError, ValueError) as exc:
        _fail(
            "evaluator",
            name,
            f"on {case}, the metrics are not JSON (metrics.json is written with "
            f"allow_nan=False): {exc}",
        )
    for metric in undefined:
        _require(
            "evaluator",
            name,
            metric in metrics and metrics[metric] is None,
            f"on {case}, out.undefined explains {metric!r}, which is not a None metric",
        )


def _non_finite(value: Any) -> str | None:
    """What non-finite number ``value`` holds, anywhere inside it, or ``None``."""
    if isinstance(value, float):
        return None if math.isfinite(value) else repr(value)
    if isinstance(value, Mapping):
        value = list(value.values())
    if isinstance(value, list | tuple):
        for item in value:
            found = _non_finite(item)
            if found is not None:
                return found
        return None
    try:
        import numpy as np

        if isinstance(value, np.ndarray | np.generic) and not np.all(np.isfinite(value)):
            return repr(value)
    except TypeError:
        return None
    return None


__all__ = ["assert_evaluator_conforms"]
