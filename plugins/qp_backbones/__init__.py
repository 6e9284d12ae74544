"""Built-in backbones: torchvision CNNs, a small CNN, and hand-made features.

``resnet50`` is the seed's (final layer removed, 2048 features, 224 px input,
ImageNet normalisation); ``resnet18``, ``mobilenet_v3_small`` and
``efficientnet_b0`` are lighter relatives with the same knobs. ``small_cnn`` learns
from scratch. ``image_stats`` and ``vectorizer`` are computed in numpy: without
downloadable pretrained weights they are what carries the signal (see
``docs/model.md`` for the measured comparison).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torchvision
from pydantic import Field, field_validator
from torch import Tensor, nn

from qpcore import BackboneSpec, Params, QPError, hookimpl
from qpcore.backbone import Backbone, ComputedFeatures, file_sha256
from qpcore.features import response
from qpcore.features.preview import PREVIEW_NAMES, preview_features
from qpcore.features.stats import STATS_NAMES, image_stats
from qpcore.features.vectorizer import feature_names as vectorizer_feature_names
from qpcore.features.vectorizer import vectorizer_features

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# --- preprocessing shared by the CNNs -----------------------------------------


def to_tensor(pixels: np.ndarray, size: int, normalise: bool) -> Tensor:
    """Resize to ``size`` x ``size`` (area filter when shrinking) and scale to a
    ``3 x size x size`` float tensor, ImageNet-normalised if asked."""
    height, width = pixels.shape[:2]
    shrink = height >= size and width >= size
    resized = cv2.resize(
        np.ascontiguousarray(pixels),
        (size, size),
        interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR,
    )
    x = resized.astype(np.float32) / 255.0
    if normalise:
        x = (x - np.asarray(IMAGENET_MEAN, np.float32)) / np.asarray(IMAGENET_STD, np.float32)
    return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))


def load_weights_file(path: str) -> dict[str, Tensor]:
    """A state dict from a local file, never unpickling arbitrary objects."""
    if not Path(path).is_file():
        raise QPError(f"backbone weights file not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise QPError(f"{path}: not a readable weights file ({exc})") from exc
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise QPError(f"{path}: expected a state dict of tensors")
    return state


# --- torchvision CNNs ----------------------------------------------------------


@dataclass(frozen=True)
class Arch:
    """How one torchvision model is cut into a feature extractor."""

    classifier: str  # attribute replaced by Identity
    last_stage: str  # attribute path of the stage ``train_last_stage`` unfreezes
    num_features: int


ARCHS: dict[str, Arch] = {
    "resnet50": Arch("fc", "layer4", 2048),
    "resnet18": Arch("fc", "layer4", 512),
    "mobilenet_v3_small": Arch("classifier", "features.12", 576),
    "efficientnet_b0": Arch("classifier", "features.8", 1280),
}


class CNNParams(Params):
    weights: str = Field(
        "imagenet",
        description="imagenet (torchvision's weights), none (random init) or a .pth path.",
    )
    freeze: bool = Field(True, description="Keep the backbone's weights fixed.")
    train_last_stage: bool = Field(
        False, description="With freeze: still train the last stage (partial fine-tuning)."
    )
    input_size: int = Field(224, ge=32, le=1024, description="Square input size in pixels.")

    @field_validator("weights")
    @classmethod
    def _weights(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("weights must be imagenet, none or a file path")
        return value


def imagenet_state(arch: str) -> tuple[dict[str, Tensor], str]:
    """torchvision's default ImageNet weights for ``arch``, from its cache or the net.

    Offline, with nothing cached, the error says where to put a local copy.
    """
    weights = torchvision.models.get_model_weights(arch).DEFAULT
    try:
        state = weights.get_state_dict(progress=False, check_hash=True)
    except Exception as exc:
        cache = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name
        raise QPError(
            f"could not get the ImageNet weights of {arch} ({type(exc).__name__}: {exc}).\n"
            f"Offline? Download {weights.url} elsewhere, then either copy it to {cache} "
            f"or pass its path: model.backbone.weights=/path/to/{Path(weights.url).name}; "
            "or train without pretrained weights: model.backbone.weights=none"
        ) from exc
    return state, f"{type(weights).__name__}.{weights.name}"


class TorchvisionBackbone(Backbone):
    """A torchvision classifier without its final layer."""

    def __init__(self, arch: str, params: CNNParams) -> None:
        super().__init__()
        spec = ARCHS[arch]
        self.arch = arch
        self.params = params
        self.num_features = spec.num_features
        self.net = torchvision.models.get_model(arch, weights=None)
        self.reference: dict[str, Any] | None = None
        if params.weights == "imagenet":
            state, tag = imagenet_state(arch)
            self._load(state, tag)
            self.reference = {"torchvision": tag}
        elif params.weights != "none":
            self._load(load_weights_file(params.weights), params.weights)
            self.reference = {
                "file": str(Path(params.weights).resolve()),
                "sha256": file_sha256(params.weights),
            }
        setattr(self.net, spec.classifier, nn.Identity())
        if params.freeze:
            self.net.requires_grad_(False)
            if params.train_last_stage:
                self.net.get_submodule(spec.last_stage).requires_grad_(True)
        self.train(False)

    def _load(self, state: dict[str, Tensor], source: str) -> None:
        missing, unexpected = self.net.load_state_dict(state, strict=False)
        classifier = ARCHS[self.arch].classifier + "."
        missing = [k for k in missing if not k.startswith(classifier)]
        if missing or unexpected:
            raise QPError(
                f"{source}: not {self.arch} weights (missing {missing[:3]}, "
                f"unexpected {unexpected[:3]})"
            )

    def train(self, mode: bool = True) -> TorchvisionBackbone:
        # Frozen layers keep their BatchNorm statistics: eval mode, always.
        super().train(mode)
        if self.params.freeze:
            self.net.eval()
            if mode and self.params.train_last_stage:
                self.net.get_submodule(ARCHS[self.arch].last_stage).train()
        return self

    def preprocess(self, pixels: np.ndarray) -> Tensor:
        return to_tensor(pixels, self.params.input_size, normalise=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.arch,
            "input_size": self.params.input_size,
            "normalise": "imagenet",
            "resize": "area-or-linear",
        }

    def weights_reference(self) -> dict[str, Any] | None:
        # Only weights nobody changed can be found again elsewhere.
        if self.reference is None or self.trainable:
            return None
        return self.reference


def cnn_factory(arch: str):
    def build(params: CNNParams) -> TorchvisionBackbone:
        return TorchvisionBackbone(arch, params)

    return build


# --- a small CNN learnt from scratch ------------------------------------------


class SmallCNNParams(Params):
    width: int = Field(16, ge=4, le=256, description="Channels of the first block (doubling).")
    blocks: int = Field(4, ge=1, le=6, description="Conv blocks, each halving the size.")
    input_size: int = Field(128, ge=16, le=1024, description="Square input size in pixels.")
    weights: str = Field("none", description="none (random init) or a .pth path.")
    freeze: bool = Field(False, description="Keep the weights fixed.")


class SmallCNN(Backbone):
    """Conv-BN-ReLU-pool blocks and a global average: cheap enough to learn here."""

    def __init__(self, params: SmallCNNParams) -> None:
        super().__init__()
        self.params = params
        layers: list[nn.Module] = []
        channels = 3
        for i in range(params.blocks):
            out = params.width * 2**i
            layers += [
                nn.Conv2d(channels, out, 3, padding=1, bias=False),
                nn.BatchNorm2d(out),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2),
            ]
            channels = out
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self.net = nn.Sequential(*layers)
        self.num_features = channels
        if params.weights != "none":
            try:
                self.net.load_state_dict(load_weights_file(params.weights))
            except RuntimeError as exc:
                raise QPError(f"{params.weights}: not small_cnn weights of this shape") from exc
        if params.freeze:
            self.net.requires_grad_(False)
            self.train(False)

    def train(self, mode: bool = True) -> SmallCNN:
        super().train(mode and not self.params.freeze)
        return self

    def preprocess(self, pixels: np.ndarray) -> Tensor:
        return to_tensor(pixels, self.params.input_size, normalise=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)

    def describe(self) -> dict[str, Any]:
        return {"name": "small_cnn", **self.params.model_dump(exclude={"weights", "freeze"})}


# --- features computed in numpy ------------------------------------------------


class StatsParams(Params):
    size: int = Field(128, ge=16, le=1024, description="Working resolution in pixels.")


class VectorizerParams(Params):
    precisions: list[int] = Field(
        default_factory=lambda: [6],
        description="color_precision levels to re-enact (1-8); all of them for random track.",
    )
    size: int = Field(128, ge=16, le=1024, description="Working resolution in pixels.")
    filter_speckle: int = Field(4, ge=0, le=64, description="Speckle size re-enacted.")
    layer_difference: int = Field(16, ge=0, le=255, description="Layer difference re-enacted.")
    binary: bool = Field(False, description="Also re-enact colormode=binary (random-track models).")

    @field_validator("precisions")
    @classmethod
    def _levels(cls, value: list[int]) -> list[int]:
        if not value or any(not 1 <= p <= 8 for p in value) or len(set(value)) != len(value):
            raise ValueError("give distinct color_precision levels between 1 and 8")
        return value


def build_stats(params: StatsParams) -> ComputedFeatures:
    return ComputedFeatures(
        "image_stats",
        partial(image_stats, size=params.size),
        STATS_NAMES,
        {"size": params.size, "version": 2},
    )


def build_vectorizer(params: VectorizerParams) -> ComputedFeatures:
    precisions = tuple(params.precisions)
    knobs = params.model_dump()
    knobs["precisions"] = precisions
    return ComputedFeatures(
        "vectorizer",
        partial(vectorizer_features, **knobs),
        tuple(vectorizer_feature_names(precisions, params.binary)),
        {**params.model_dump(), "version": 2},
    )


class ResponseParams(Params):
    size: int = Field(128, ge=16, le=1024, description="Working resolution in pixels.")


class ResponseSurface(ComputedFeatures):
    """The repaint's features on a grid of settings, read off at each row's own.

    Per image it costs a re-enactment per distinct repaint of the grid; per extra
    setting, a table look-up (see :mod:`qpcore.features.response`).
    """

    conditioned_features = len(response.CELL_FEATURES)

    def condition(self, features: Tensor, params: Tensor) -> Tensor:
        return response.interpolate(features, params)


def build_response(params: ResponseParams) -> ResponseSurface:
    grid = {"speckles": list(response.SPECKLES), "layers": list(response.LAYERS)}
    return ResponseSurface(
        "vectorizer_response",
        partial(response.response_surface, size=params.size),
        tuple(response.feature_names()),
        {**params.model_dump(), **grid, "version": 1},
    )


class PreviewParams(Params):
    size: int = Field(128, ge=16, le=1024, description="Longer side of the converted copy.")


def build_preview(params: PreviewParams) -> ComputedFeatures:
    return ComputedFeatures(
        "vtracer_preview",
        partial(preview_features, size=params.size),
        PREVIEW_NAMES,
        {**params.model_dump(), "version": 1},
    )


CNN_SUMMARIES: dict[str, str] = {
    "resnet50": "The seed's ResNet-50 without its last layer: 2048 features at 224 px.",
    "resnet18": "ResNet-18 without its last layer: 512 features.",
    "mobilenet_v3_small": "MobileNetV3-Small without its classifier: 576 features.",
    "efficientnet_b0": "EfficientNet-B0 without its classifier: 1280 features.",
}


@hookimpl
def qp_register_backbones() -> list[BackboneSpec]:
    specs = [
        BackboneSpec(
            arch, cnn_factory(arch), CNNParams, CNN_SUMMARIES[arch], ARCHS[arch].num_features
        )
        for arch in ARCHS
    ]
    return [
        *specs,
        BackboneSpec("small_cnn", SmallCNN, SmallCNNParams, "A small CNN learnt from scratch."),
        BackboneSpec(
            "image_stats",
            build_stats,
            StatsParams,
            "Hand-made statistics: colours, edges, gradients, entropy, flat areas.",
            len(STATS_NAMES),
        ),
        BackboneSpec(
            "vectorizer",
            build_vectorizer,
            VectorizerParams,
            "Re-enacts vtracer's colour clustering and scores the repainted image.",
        ),
        BackboneSpec(
            "vtracer_preview",
            build_preview,
            PreviewParams,
            "The real conversion (vtracer + resvg + SSIM) on a small copy of the image.",
            len(PREVIEW_NAMES),
        ),
        BackboneSpec(
            "vectorizer_response",
            build_response,
            ResponseParams,
            "vtracer's clustering on a grid of settings, read off at each row's own "
            "(random-track models).",
            response.surface_size(),
        ),
    ]
