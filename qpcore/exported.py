"""Serving an ONNX export (``qp export --format onnx``) with ONNX Runtime.

The export holds the tensor part of the model; the backbones' ``preprocess``
(resizing, hand-made features) still runs here, built from the metadata the
export carries, and is checked against what training recorded so a changed
preprocessing is refused rather than mispredicted.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from qpcore.backbone import Backbone
from qpcore.build import build_backbones
from qpcore.checkpoint import CheckpointMeta
from qpcore.data.protocol import VtracerParams, encode_params
from qpcore.errors import CheckpointError, QPError
from qpcore.executor import Executor
from qpcore.predictor import ImageLike, ParamsLike, settings_for, to_params, to_pixels
from qpcore.registry import Registry, default_registry
from qpcore.restore import PREDICTION_KINDS, check_backbones, check_installed
from qpcore.validate import resolve_config


class ExportedPredictor:
    """An ONNX export, ready to predict; the same methods as :class:`Predictor`."""

    def __init__(self, session: object, meta: CheckpointMeta, backbones: list[Backbone]) -> None:
        self.session = session
        self.meta = meta
        self.backbones = backbones
        self.names = [i.name for i in session.get_inputs()]  # type: ignore[attr-defined]
        self.takes_params = len(self.names) > len(backbones)
        self.device = "cpu (ONNX Runtime)"

    def _run(self, pixels: Sequence[np.ndarray], settings: Sequence[VtracerParams]) -> np.ndarray:
        columns = [np.stack([b.preprocess(p).numpy() for p in pixels]) for b in self.backbones]
        if self.takes_params:
            columns.append(np.stack([encode_params(s) for s in settings]))
        feeds = dict(zip(self.names, columns, strict=True))
        return self.session.run(None, feeds)[0].astype(np.float32)  # type: ignore[attr-defined]

    def predict(
        self,
        images: Iterable[ImageLike],
        params: ParamsLike | Sequence[ParamsLike] = None,
        batch_size: int = 32,
        executor: Executor | None = None,
    ) -> np.ndarray:
        """Predicted SSIM of each image; see :meth:`Predictor.predict`."""
        if executor is not None:
            raise QPError("an ONNX export predicts on this machine: --executor needs a checkpoint")
        pixels = [to_pixels(image) for image in images]
        settings = settings_for(params, len(pixels))
        out = [np.zeros(0, np.float32)]
        for start in range(0, len(pixels), batch_size):
            end = start + batch_size
            out.append(self._run(pixels[start:end], settings[start:end]))
        return np.concatenate(out)

    def predict_settings(self, image: ImageLike, settings: Sequence[ParamsLike]) -> np.ndarray:
        """One image under many settings. The export recomputes the backbones for
        each row, so a CNN model scores many settings faster from its checkpoint."""
        if not self.takes_params:
            raise QPError("this model was trained on one setting; it does not take params")
        resolved = [to_params(s) for s in settings]
        if not resolved:
            return np.zeros(0, np.float32)
        pixels = to_pixels(image)
        return self._run([pixels] * len(resolved), resolved)


def load_exported(path: Path, registry: Registry | None = None) -> ExportedPredictor:
    """Load an ONNX file written by ``qp export``.

    Raises:
        QPError: ONNX Runtime is missing, or the file is not a qpcore export.
    """
    from qpcore.export import FORMAT_KEY, META_KEY, ONNX_FORMAT

    try:
        import onnxruntime
    except ImportError as exc:
        raise QPError("ONNX models need the optional extra: pip install 'qpcore[onnx]'") from exc
    try:
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own unrelated classes
        first = next(iter(str(exc).splitlines()), "")[:200]
        raise CheckpointError(f"{path}: not a readable ONNX model: {first}") from None
    props = session.get_modelmeta().custom_metadata_map
    if props.get(FORMAT_KEY) != ONNX_FORMAT or META_KEY not in props:
        raise CheckpointError(
            f"{path}: an ONNX model without qpcore's metadata; export it with qp export"
        )
    try:
        meta = CheckpointMeta.model_validate_json(props[META_KEY])
    except ValueError as exc:
        raise CheckpointError(f"{path}: damaged qpcore metadata: {exc}") from None
    registry = registry or default_registry()
    check_installed(meta, registry, path, PREDICTION_KINDS)
    config = copy.deepcopy(meta.config)
    refs = [config["model"]["backbone"], *config["model"].get("features", [])]
    for ref in refs:  # preprocessing only: the weights are in the export
        if isinstance(ref, dict) and "weights" in ref:
            ref["weights"] = "none"
    cfg = resolve_config(config, registry, source=f"{path} (its config)", kinds=PREDICTION_KINDS)
    backbones = build_backbones(cfg)
    check_backbones(backbones, meta, path)
    return ExportedPredictor(session, meta, backbones)
