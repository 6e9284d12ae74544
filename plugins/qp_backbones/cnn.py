"""The CNN backbones: torchvision classifiers cut before their last layer, and a
small CNN learnt from scratch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torchvision
from torch import Tensor, nn

from qp_backbones.params import ARCHS, CNNParams, SmallCNNParams
from qpcore import QPError
from qpcore.backbone import Backbone, file_sha256

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
