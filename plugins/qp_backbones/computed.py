"""Backbones computed in numpy: hand-made statistics, the re-enacted clustering,
its response surface, and the real conversion on a small copy."""

from __future__ import annotations

from functools import partial

from torch import Tensor

from qp_backbones.params import PreviewParams, ResponseParams, StatsParams, VectorizerParams
from qpcore.backbone import ComputedFeatures
from qpcore.features import response
from qpcore.features.layout import PREVIEW_NAMES, STATS_NAMES
from qpcore.features.preview import preview_features
from qpcore.features.stats import image_stats
from qpcore.features.vectorizer import feature_names as vectorizer_feature_names
from qpcore.features.vectorizer import vectorizer_features


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


def build_preview(params: PreviewParams) -> ComputedFeatures:
    return ComputedFeatures(
        "vtracer_preview",
        partial(preview_features, size=params.size),
        PREVIEW_NAMES,
        {**params.model_dump(), "version": 1},
    )
