"""What a backbone plugin builds: a feature extractor the trainer can cache.

A backbone splits its work in two: :meth:`Backbone.preprocess` turns one decoded
image into a tensor on the CPU (it runs in data-loader workers and may be pure
numpy), and ``forward`` turns a batch of those into ``[B, num_features]``. Hand-made
statistics do all their work in ``preprocess``; a CNN resizes there and convolves
in ``forward``. Because both halves are deterministic for a frozen backbone, the
trainer can compute each image's features once and key them by
:meth:`Backbone.identity`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn


class Backbone(nn.Module):
    """Base class of every feature extractor.

    Attributes:
        num_features: Width of the feature vector ``forward`` returns.
        feature_names: One name per feature when they mean something (hand-made
            statistics), for reports; empty for learned features.
        conditioned_features: Width of :meth:`condition`'s output; 0 for a backbone
            whose features go to the head as they are.
    """

    num_features: int
    feature_names: tuple[str, ...] = ()
    conditioned_features: int = 0

    def condition(self, features: Tensor, params: Tensor) -> Tensor:
        """Per-row features of this image under the row's vtracer setting.

        A backbone whose per-image features describe every setting at once (a
        response surface) reads them off here at each row's encoded ``params``, so
        the head sees what this setting does instead of the whole surface. Must be
        plain tensor ops: it runs in the cached path, in prediction and in exports.
        """
        raise NotImplementedError

    def preprocess(self, pixels: np.ndarray) -> Tensor:
        """One ``H x W x 3`` uint8 RGB image to this backbone's input tensor."""
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """Everything besides the weights that decides the output (name, knobs,
        preprocessing, code version): JSON-compatible, stored in checkpoints."""
        raise NotImplementedError

    def weights_reference(self) -> dict[str, Any] | None:
        """Where the weights can be found again (a public set, a file with its
        digest), or ``None`` when a checkpoint must embed them."""
        return None

    @property
    def trainable(self) -> bool:
        return any(p.requires_grad for p in self.parameters())

    def identity(self) -> str:
        """A digest of what this backbone computes: :meth:`describe` plus the
        weights' bytes. Equal identities give equal features, so it keys the cache;
        code changes reach it only through the version number a plugin puts in
        :meth:`describe`, which must be bumped when the features' meaning changes."""
        digest = hashlib.sha256(repr(sorted(_flatten(self.describe()))).encode())
        for name, tensor in sorted(self.state_dict().items()):
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        return digest.hexdigest()[:24]


class ComputedFeatures(Backbone):
    """Features computed in numpy by a function of the image, with no weights.

    ``forward`` is the identity: everything happens in :meth:`preprocess`, which
    the feature cache then makes a one-off cost.

    Args:
        name: The component name.
        compute: ``pixels -> float32 vector`` of length ``len(names)``.
        names: Feature names.
        settings: Knobs of ``compute`` and its code version, for :meth:`describe`.
    """

    def __init__(
        self,
        name: str,
        compute: Callable[[np.ndarray], np.ndarray],
        names: tuple[str, ...],
        settings: Mapping[str, Any],
    ) -> None:
        super().__init__()
        self.name = name
        self.compute = compute
        self.feature_names = tuple(names)
        self.num_features = len(names)
        self.settings = dict(settings)

    def preprocess(self, pixels: np.ndarray) -> Tensor:
        values = np.asarray(self.compute(pixels), dtype=np.float32)
        if values.shape != (self.num_features,):
            raise ValueError(
                f"{self.name}: expected {self.num_features} features, got shape {values.shape}"
            )
        return torch.from_numpy(np.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0))

    def forward(self, x: Tensor) -> Tensor:
        return x

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "num_features": self.num_features, **self.settings}


def _flatten(value: Any, prefix: str = "") -> list[tuple[str, str]]:
    if isinstance(value, Mapping):
        return [item for key, sub in value.items() for item in _flatten(sub, f"{prefix}{key}.")]
    return [(prefix, repr(value))]


def file_sha256(path: str, chunk: int = 1 << 20) -> str:
    """Hex digest of a file, read in chunks (weights files are large)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()
