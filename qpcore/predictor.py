"""Predictions from a checkpoint: ``load_predictor(path).predict(images)``.

The predictor rebuilds the model from the checkpoint's own resolved config, so it
computes exactly what training validated: same backbones, same preprocessing.
Backbone weights stored by reference (a public set, or a file with its digest)
are fetched again and checked against the digest recorded at training time.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

import numpy as np
import torch
from PIL import Image

from qpcore.build import build_model, pick_device
from qpcore.checkpoint import CheckpointMeta, load_checkpoint
from qpcore.data.protocol import (
    DEFAULT_PARAMS,
    VtracerParams,
    check_side,
    composite_white,
    encode_params,
)
from qpcore.data.protocol import load_image as load_image_file
from qpcore.errors import QPError
from qpcore.executor import Executor
from qpcore.model import QualityModel
from qpcore.registry import Registry, default_registry
from qpcore.restore import PREDICTION_KINDS, check_installed, load_weights, rebuild_config
from qpcore.validate import resolve_config

if TYPE_CHECKING:
    from qpcore.exported import ExportedPredictor

ImageLike = Union[str, Path, Image.Image, np.ndarray]  # noqa: UP007 - a runtime alias
ParamsLike = Union[VtracerParams, Mapping[str, Any], None]  # noqa: UP007


def to_pixels(image: ImageLike) -> np.ndarray:
    """Any supported image to ``H x W x 3`` uint8 RGB over white, as the label
    protocol's step 1 does."""
    if isinstance(image, (str, Path)):
        return load_image_file(image)
    pixels = _array_pixels(image)
    check_side(pixels.shape[1], pixels.shape[0])
    return pixels


def _array_pixels(image: ImageLike) -> np.ndarray:
    if isinstance(image, Image.Image):
        return composite_white(image)
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8:
            raise ValueError(f"arrays must be uint8, got {image.dtype}")
        if image.ndim == 2:
            return np.repeat(image[:, :, None], 3, axis=2)
        if image.ndim == 3 and image.shape[2] == 4:
            return composite_white(Image.fromarray(image, "RGBA"))
        if image.ndim == 3 and image.shape[2] == 3:
            return np.ascontiguousarray(image)
        raise ValueError(f"expected H x W, H x W x 3 or H x W x 4, got shape {image.shape}")
    raise TypeError(f"cannot predict a {type(image).__name__}; give a path, PIL image or array")


def to_params(params: ParamsLike) -> VtracerParams:
    if params is None:
        return DEFAULT_PARAMS
    if isinstance(params, VtracerParams):
        return params
    unknown = set(params) - set(VtracerParams.__dataclass_fields__)
    if unknown:
        raise ValueError(f"unknown vtracer params: {', '.join(sorted(unknown))}")
    return VtracerParams.from_mapping(params)


def settings_for(params: ParamsLike | Sequence[ParamsLike], count: int) -> list[VtracerParams]:
    """One setting per image: ``params`` for all, or a list with one per image."""
    if isinstance(params, Sequence):
        if len(params) != count:
            raise ValueError(f"{len(params)} params for {count} images")
        return [to_params(p) for p in params]
    return [to_params(params)] * count


class Predictor:
    """A trained model, ready to predict.

    Attributes:
        meta: The checkpoint's metadata (config, protocol, versions, metrics).
        model: The model, in eval mode.
    """

    def __init__(self, model: QualityModel, meta: CheckpointMeta, device: torch.device) -> None:
        self.model = model.eval().to(device)
        self.meta = meta
        self.device = device

    @property
    def takes_params(self) -> bool:
        return self.model.params_input

    def features(self, pixels: Sequence[np.ndarray]) -> torch.Tensor:
        inputs = [self.model.preprocess(p) for p in pixels]
        batch = [torch.stack(column).to(self.device) for column in zip(*inputs, strict=True)]
        with torch.no_grad():
            return self.model.features(batch)

    def _head(self, features: torch.Tensor, settings: Sequence[VtracerParams]) -> np.ndarray:
        params = None
        if self.takes_params:
            params = torch.from_numpy(np.stack([encode_params(s) for s in settings]))
            params = params.to(self.device)
        with torch.no_grad():
            return self.model.predict_features(features, params).float().cpu().numpy()

    def predict(
        self,
        images: Iterable[ImageLike],
        params: ParamsLike | Sequence[ParamsLike] = None,
        batch_size: int = 32,
        executor: Executor | None = None,
    ) -> np.ndarray:
        """Predicted SSIM of each image. ``params`` (random-track models): one
        setting for all images, or a list with one setting per image.

        With an ``executor`` (and image paths, frozen backbones), the features
        are computed there in chunks, e.g. on a Ray cluster; the head runs here.
        """
        images = list(images)
        if executor is not None and self._can_distribute(images):
            return self._predict_on(executor, [Path(i) for i in images], params, batch_size)  # type: ignore[arg-type]
        pixels = [to_pixels(image) for image in images]
        settings = settings_for(params, len(pixels))
        out = [np.zeros(0, np.float32)]
        for start in range(0, len(pixels), batch_size):
            end = start + batch_size
            out.append(self._head(self.features(pixels[start:end]), settings[start:end]))
        return np.concatenate(out)

    def _can_distribute(self, images: list[ImageLike]) -> bool:
        paths = all(isinstance(i, (str, Path)) for i in images)
        return paths and not self.model.backbones_trainable

    def _predict_on(
        self,
        executor: Executor,
        paths: list[Path],
        params: ParamsLike | Sequence[ParamsLike],
        batch_size: int,
    ) -> np.ndarray:
        from qpcore.feature_cache import compute_features_on

        settings = settings_for(params, len(paths))
        tables = [
            compute_features_on(executor, b, paths, batch_size, progress=False)
            for b in self.model.backbones
        ]
        features = torch.from_numpy(np.concatenate(tables, axis=1)).to(self.device)
        return self._head(features, settings)

    @property
    def predicts_size(self) -> bool:
        """Whether the model also predicts the SVG's size (``model.targets``)."""
        return self.model.size_head is not None

    def score_settings(
        self, image: ImageLike, settings: Sequence[ParamsLike]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Predicted SSIM and SVG bytes of one image under each setting: the
        features once, both heads batched over the settings."""
        resolved = [to_params(s) for s in settings]
        return self.score_encoded(image, np.stack([encode_params(s) for s in resolved]))

    def score_encoded(self, image: ImageLike, encoded: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`score_settings` for settings already encoded (``encode_params``
        rows): a caller scoring the same candidates for many images encodes once."""
        if not self.takes_params or not self.predicts_size:
            raise QPError(
                "scoring settings needs a random-track model with model.targets: "
                "[ssim, svg_bytes] (e.g. qp train random)"
            )
        params = torch.tensor(np.asarray(encoded), dtype=torch.float32, device=self.device)
        features = self.features([to_pixels(image)]).expand(len(params), -1)
        with torch.no_grad():
            ssim = self.model.predict_features(features, params).float().cpu().numpy()
            log_bytes = self.model.predict_log_size(features, params).float().cpu().numpy()
        return ssim, np.exp(log_bytes)

    def predict_settings(self, image: ImageLike, settings: Sequence[ParamsLike]) -> np.ndarray:
        """One image under many vtracer settings: features once, the head batched."""
        if not self.takes_params:
            raise QPError("this model was trained on one setting; it does not take params")
        resolved = [to_params(s) for s in settings]
        if not resolved:
            return np.zeros(0, np.float32)
        features = self.features([to_pixels(image)])
        return self._head(features.expand(len(resolved), -1), resolved)


def load_predictor(
    path: str | Path, registry: Registry | None = None, device: str = "cpu"
) -> Predictor | ExportedPredictor:
    """Load a checkpoint written by ``qp train``, or its ONNX export (``.onnx``,
    from ``qp export``, served by ONNX Runtime on the CPU), for inference.

    Only what prediction builds (the backbones) must be installed: the loss,
    optimizer and the rest of training are not looked up.

    Raises:
        CheckpointError: Not a (readable) qpcore checkpoint.
        QPError: A referenced backbone's weights are missing or differ.
    """
    path = Path(path)
    if path.suffix == ".onnx":
        from qpcore.exported import load_exported

        return load_exported(path, registry)
    meta, payload = load_checkpoint(path)
    registry = registry or default_registry()
    check_installed(meta, registry, path, PREDICTION_KINDS)
    cfg = resolve_config(
        rebuild_config(meta, path),
        registry,
        source=f"{path} (its config)",
        kinds=PREDICTION_KINDS,
    )
    model = build_model(cfg)
    load_weights(model, meta, payload["model"], path)
    return Predictor(model, meta, pick_device(device))
