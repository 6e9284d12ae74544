"""Built-in backbones: torchvision CNNs, a small CNN, and hand-made features.

``resnet50`` is the seed's (final layer removed, 2048 features, 224 px input,
ImageNet normalisation); ``resnet18``, ``mobilenet_v3_small`` and
``efficientnet_b0`` are lighter relatives with the same knobs. ``small_cnn`` learns
from scratch. ``image_stats`` and ``vectorizer`` are computed in numpy: without
downloadable pretrained weights they are what carries the signal (see
``docs/model.md`` for the measured comparison).

Each backbone's module (torch, torchvision, OpenCV, scipy) is imported only
when a run builds it; registration reads :mod:`qp_backbones.params`.
"""

from __future__ import annotations

from functools import partial

from qp_backbones.params import (
    ARCHS,
    CNNParams,
    PreviewParams,
    ResponseParams,
    SmallCNNParams,
    StatsParams,
    VectorizerParams,
)
from qpcore import BackboneSpec, hookimpl
from qpcore.features.layout import PREVIEW_NAMES, STATS_NAMES, surface_size
from qpcore.specs import lazy

CNN_SUMMARIES: dict[str, str] = {
    "resnet50": "The seed's ResNet-50 without its last layer: 2048 features at 224 px.",
    "resnet18": "ResNet-18 without its last layer: 512 features.",
    "mobilenet_v3_small": "MobileNetV3-Small without its classifier: 576 features.",
    "efficientnet_b0": "EfficientNet-B0 without its classifier: 1280 features.",
}


@hookimpl
def qp_register_backbones() -> list[BackboneSpec]:
    cnn = lazy("qp_backbones.cnn:TorchvisionBackbone")
    specs = [
        BackboneSpec(
            arch, partial(cnn, arch), CNNParams, CNN_SUMMARIES[arch], ARCHS[arch].num_features
        )
        for arch in ARCHS
    ]
    return [
        *specs,
        BackboneSpec(
            "small_cnn",
            lazy("qp_backbones.cnn:SmallCNN"),
            SmallCNNParams,
            "A small CNN learnt from scratch.",
        ),
        BackboneSpec(
            "image_stats",
            lazy("qp_backbones.computed:build_stats"),
            StatsParams,
            "Hand-made statistics: colours, edges, gradients, entropy, flat areas.",
            len(STATS_NAMES),
        ),
        BackboneSpec(
            "vectorizer",
            lazy("qp_backbones.computed:build_vectorizer"),
            VectorizerParams,
            "Re-enacts vtracer's colour clustering and scores the repainted image.",
        ),
        BackboneSpec(
            "vtracer_preview",
            lazy("qp_backbones.computed:build_preview"),
            PreviewParams,
            "The real conversion (vtracer + resvg + SSIM) on a small copy of the image.",
            len(PREVIEW_NAMES),
        ),
        BackboneSpec(
            "vectorizer_response",
            lazy("qp_backbones.computed:build_response"),
            ResponseParams,
            "vtracer's clustering on a grid of settings, read off at each row's own "
            "(random-track models).",
            surface_size(),
        ),
    ]
