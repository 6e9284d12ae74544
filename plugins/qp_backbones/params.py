"""Parameters of the built-in backbones, and the widths registration states.

Kept apart from the backbones themselves (torch, torchvision, OpenCV), so
registering them (``qp plugins``, ``qp config validate``) imports pydantic only.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import Field, field_validator

from qpcore import Params


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


class SmallCNNParams(Params):
    width: int = Field(16, ge=4, le=256, description="Channels of the first block (doubling).")
    blocks: int = Field(4, ge=1, le=6, description="Conv blocks, each halving the size.")
    input_size: int = Field(128, ge=16, le=1024, description="Square input size in pixels.")
    weights: str = Field("none", description="none (random init) or a .pth path.")
    freeze: bool = Field(False, description="Keep the weights fixed.")


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


class ResponseParams(Params):
    size: int = Field(128, ge=16, le=1024, description="Working resolution in pixels.")


class PreviewParams(Params):
    size: int = Field(128, ge=16, le=1024, description="Longer side of the converted copy.")
