"""The dataset kit: :func:`assert_dataset_conforms`."""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qpcore.testing._common import _built, _call, _params, _require

if TYPE_CHECKING:
    from qpcore.data.dataset import LabelledData
    from qpcore.specs import DatasetSpec


def assert_dataset_conforms(
    spec: DatasetSpec,
    params: Mapping[str, Any] | None = None,
    *,
    cache_dir: str | Path | None = None,
    decode: int = 8,
) -> None:
    """Check that a dataset keeps the contract the trainer and evaluator rely on.

    The trainer calls ``factory(params)``, refuses anything but a
    :class:`qpcore.data.dataset.LabelledData` and labels of another protocol,
    splits it with ``data.split(params)`` and, on ``--resume``, loads it again
    and compares a digest of the rows. So the check asserts that:

    * the factory returns a ``LabelledData`` whose ``origin`` is a path and whose
      ``protocol`` is ``None`` or :data:`qpcore.data.protocol.PROTOCOL`;
    * it holds at least one row, each a :class:`~qpcore.data.manifest.Sample`
      with an absolute path to an existing image file, a finite ``ssim`` in
      [-1, 1] (the range manifests accept), :class:`VtracerParams`, a non-empty
      ``group`` and ``svg_bytes``/``svg_paths`` that are ``None`` or ints of 0 or
      more, and no two rows share image and params;
    * the first ``decode`` images decode (:func:`qpcore.data.protocol.load_image`);
    * ``split(params)`` deals every row to exactly one of train/val/test and
      keeps each group on one side;
    * loading again gives the same rows in the same order.

    Args:
        spec: The dataset's registration record.
        params: Raw parameters as a config would give them (a dataset usually
            needs a path among them); ``None`` for defaults.
        cache_dir: ``QP_CACHE_DIR`` while the factory runs, so a dataset that
            labels or downloads into the cache stays out of ``~/.cache``
            (default: as the environment has it).
        decode: How many images to decode.

    Raises:
        AssertionError: Naming the dataset and the broken rule.
    """
    name = spec.name
    validated = _params(spec, params)
    with _cache(cache_dir):
        data = _load(spec, validated)
        again = _load(spec, validated)
    _require_rows(name, data, decode)
    splits = _call("dataset", name, "split(params)", data.split, validated)
    _require(
        "dataset",
        name,
        isinstance(splits, Mapping) and set(splits) == {"train", "val", "test"},
        "split(params) must return train, val and test",
    )
    where: dict[int, str] = {}
    for split, rows in splits.items():
        for sample in rows:
            _require(
                "dataset",
                name,
                id(sample) not in where,
                f"split(params) puts a row in both {where.get(id(sample))} and {split}",
            )
            where[id(sample)] = split
    _require(
        "dataset",
        name,
        len(where) == len(data.samples) and all(id(s) in where for s in data.samples),
        f"split(params) dealt {len(where)} of {len(data.samples)} rows",
    )
    sides: dict[str, str] = {}
    for sample in data.samples:
        side = sides.setdefault(sample.group, where[id(sample)])
        _require(
            "dataset",
            name,
            side == where[id(sample)],
            f"split(params) puts group {sample.group!r} in both {side} and "
            f"{where[id(sample)]}: rows of one image must stay together",
        )
    _require(
        "dataset",
        name,
        _rows(again) == _rows(data) and again.protocol == data.protocol,
        "loading it again gave other rows (or another order): a resumed run compares "
        "the rows it started with and would refuse to continue",
    )


@contextmanager
def _cache(folder: str | Path | None) -> Iterator[None]:
    if folder is None:
        yield
        return
    before = os.environ.get("QP_CACHE_DIR")
    os.environ["QP_CACHE_DIR"] = str(folder)
    try:
        yield
    finally:
        if before is None:
            del os.environ["QP_CACHE_DIR"]
        else:
            os.environ["QP_CACHE_DIR"] = before


def _load(spec: DatasetSpec, params: Any) -> LabelledData:
    from qpcore.data.dataset import LabelledData

    described = "qpcore.data.dataset.LabelledData"
    return _built("dataset", spec.name, spec.factory, (params,), LabelledData, described)


def _rows(data: LabelledData) -> list[tuple[Any, ...]]:
    return [(s.image, s.ssim, s.params, s.group) for s in data.samples]


def _require_rows(name: str, data: LabelledData, decode: int) -> None:
    from qpcore.data.manifest import Sample
    from qpcore.data.protocol import PROTOCOL, VtracerParams, load_image

    def require(condition: bool, message: str) -> None:
        _require("dataset", name, condition, message)

    require(isinstance(data.origin, Path), f"origin is {type(data.origin).__name__}, not a Path")
    require(
        data.protocol in (None, PROTOCOL),
        f"protocol is {data.protocol!r}; the trainer takes {PROTOCOL!r} (or None)",
    )
    samples = data.samples
    require(isinstance(samples, list) and bool(samples), "holds no rows")
    seen: dict[tuple[Path, Any], int] = {}
    for index, sample in enumerate(samples):
        row = f"row {index}"
        require(isinstance(sample, Sample), f"{row} is a {type(sample).__name__}, not a Sample")
        image = sample.image
        require(
            isinstance(image, Path) and image.is_absolute(),
            f"{row}: image {image!r} is not an absolute Path",
        )
        require(image.is_file(), f"{row}: image {image} does not exist")
        ssim = sample.ssim
        require(
            isinstance(ssim, int | float)
            and not isinstance(ssim, bool)
            and math.isfinite(ssim)
            and -1.0 <= ssim <= 1.0,
            f"{row}: ssim {ssim!r} is not a finite number in [-1, 1]",
        )
        require(
            isinstance(sample.params, VtracerParams),
            f"{row}: params is {type(sample.params).__name__}, not VtracerParams",
        )
        require(
            isinstance(sample.group, str) and bool(sample.group),
            f"{row}: group {sample.group!r} is not a non-empty string (splits keep groups "
            "together)",
        )
        for field in ("svg_bytes", "svg_paths"):
            value = getattr(sample, field)
            require(
                value is None or (isinstance(value, int) and value >= 0),
                f"{row}: {field} {value!r} is neither None nor an int of 0 or more",
            )
        key = (image, sample.params)
        require(
            key not in seen,
            f"rows {seen.get(key)} and {index} label the same image with the same params",
        )
        seen[key] = index
    for sample in samples[:decode]:
        _call("dataset", name, f"decoding {sample.image}", load_image, sample.image)


__all__ = ["assert_dataset_conforms"]
