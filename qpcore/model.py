"""The quality model: backbones whose features are concatenated, then an MLP head.

The head is the seed's (Linear, BatchNorm, ReLU, dropout per hidden layer, Kaiming
init, a sigmoid output since an SSIM lies in [0, 1]). Two additions: features are
standardised by statistics of the training set stored as buffers (hand-made
statistics span many orders of magnitude, which an unscaled first layer would
drown in), and an optional second input carries the label's vtracer params, so a
model trained on the random track predicts the quality of one image under any
setting.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor, nn

from qpcore.backbone import Backbone
from qpcore.data.protocol import ENCODED_PARAM_NAMES


class Head(nn.Module):
    """The MLP: ``in_features -> hidden... -> 1``, sigmoid output (``sigmoid=False``:
    the raw value, for a target that is not bounded like an SSIM)."""

    def __init__(
        self,
        in_features: int,
        hidden: Sequence[int],
        dropout: float,
        batch_norm: bool,
        sigmoid: bool = True,
    ) -> None:
        super().__init__()
        self.sigmoid = sigmoid
        layers: list[nn.Module] = []
        width = in_features
        for size in hidden:
            layers.append(nn.Linear(width, size))
            if batch_norm:
                layers.append(nn.BatchNorm1d(size))
            layers.append(nn.ReLU(inplace=True))
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = size
        layers.append(nn.Linear(width, 1))
        self.layers = nn.Sequential(*layers)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
                nn.init.zeros_(module.bias)

    def forward(self, x: Tensor) -> Tensor:
        out = self.layers(x).squeeze(-1)
        return torch.sigmoid(out) if self.sigmoid else out


class QualityModel(nn.Module):
    """Backbones + head.

    Args:
        backbones: Feature extractors, their outputs concatenated in this order.
        hidden, dropout, batch_norm: The head's shape.
        params_input: Feed the encoded vtracer params to the head as well.
        size_target: Add a second head predicting the SVG's log size in bytes
            from the same standardised input (fitted by :mod:`qpcore.size_model`).
    """

    def __init__(
        self,
        backbones: Sequence[Backbone],
        hidden: Sequence[int],
        dropout: float,
        batch_norm: bool,
        params_input: bool,
        size_target: bool = False,
    ) -> None:
        super().__init__()
        self.backbones = nn.ModuleList(backbones)
        self.num_features = sum(b.num_features for b in backbones)
        self.params_input = params_input
        self.params_dim = len(ENCODED_PARAM_NAMES) if params_input else 0
        # A conditioning backbone's surface is read off per row, not fed as it is.
        self.conditioning: list[tuple[int, int, int]] = []
        plain: list[int] = []
        start = 0
        for index, backbone in enumerate(backbones):
            end = start + backbone.num_features
            if backbone.conditioned_features:
                if not params_input:
                    raise ValueError(
                        f"backbone {index} is read off at each row's setting: "
                        "it needs model.head.params_input: true"
                    )
                self.conditioning.append((index, start, end))
            else:
                plain.extend(range(start, end))
            start = end
        self.conditioned_dim = sum(
            backbones[i].conditioned_features for i, _, _ in self.conditioning
        )
        self.register_buffer("plain_index", torch.tensor(plain, dtype=torch.long), persistent=False)
        self.register_buffer("feature_mean", torch.zeros(self.num_features))
        self.register_buffer("feature_std", torch.ones(self.num_features))
        if self.conditioned_dim:
            self.register_buffer("conditioned_mean", torch.zeros(self.conditioned_dim))
            self.register_buffer("conditioned_std", torch.ones(self.conditioned_dim))
        width = len(plain) + self.conditioned_dim + self.params_dim
        self.head = Head(width, hidden, dropout, batch_norm)
        self.size_head: Head | None = None
        if size_target:
            self.size_head = Head(width, hidden, dropout, batch_norm, sigmoid=False)
            # Standardised log bytes: the head predicts z, bytes = exp(z * std + mean).
            self.register_buffer("size_mean", torch.zeros(()))
            self.register_buffer("size_std", torch.ones(()))

    @property
    def backbones_trainable(self) -> bool:
        return any(b.trainable for b in self.backbones)

    def preprocess(self, pixels: np.ndarray) -> tuple[Tensor, ...]:
        """One decoded image to the input tuple of every backbone."""
        return tuple(b.preprocess(pixels) for b in self.backbones)

    def features(self, inputs: Sequence[Tensor]) -> Tensor:
        """``[B, num_features]``: every backbone's output, concatenated."""
        outs = [b(x).flatten(1).float() for b, x in zip(self.backbones, inputs, strict=True)]
        return torch.cat(outs, dim=1)

    def set_feature_stats(self, features: Tensor, params: Tensor | None = None) -> None:
        """Standardise by the mean and spread of these (training) features.

        A constant feature gets spread 1, so it maps to 0 instead of dividing by 0.
        A conditioning backbone's per-row outputs are standardised too, by their
        values at the training rows' own ``params``.
        """
        mean, std = _mean_std(features)
        self.feature_mean.copy_(mean)
        self.feature_std.copy_(std)
        if self.conditioned_dim:
            if params is None:
                raise ValueError("conditioned features are standardised at the rows' params")
            mean, std = _mean_std(self._conditioned(features, params))
            self.conditioned_mean.copy_(mean)
            self.conditioned_std.copy_(std)

    def _conditioned(self, features: Tensor, params: Tensor) -> Tensor:
        params = params.to(features.dtype)
        outs = [
            self.backbones[index].condition(features[:, start:end], params)
            for index, start, end in self.conditioning
        ]
        return torch.cat(outs, dim=1)

    def predict_features(self, features: Tensor, params: Tensor | None = None) -> Tensor:
        """Predictions ``[B]`` from precomputed features (the cached path)."""
        return self.head(self.head_input(features, params))

    def predict_log_size(self, features: Tensor, params: Tensor | None = None) -> Tensor:
        """Predicted natural log of the SVG's bytes ``[B]``, from precomputed features."""
        if self.size_head is None:
            raise ValueError("this model does not predict the SVG size (model.targets)")
        z = self.size_head(self.head_input(features, params))
        return z * self.size_std + self.size_mean

    def head_input(self, features: Tensor, params: Tensor | None = None) -> Tensor:
        """What the heads read: standardised features (read off at the row's
        setting for conditioning backbones), then the encoded params."""
        x = (features - self.feature_mean) / self.feature_std
        if self.params_input:
            if params is None:
                raise ValueError("this model takes the vtracer params as a second input")
            parts = [x.index_select(1, self.plain_index)] if self.conditioning else [x]
            if self.conditioned_dim:
                conditioned = self._conditioned(features, params)
                parts.append((conditioned - self.conditioned_mean) / self.conditioned_std)
            x = torch.cat([*parts, params.to(x.dtype)], dim=1)
        return x

    def forward(self, inputs: list[Tensor], params: Tensor | None = None) -> Tensor:
        return self.predict_features(self.features(inputs), params)


def _mean_std(values: Tensor) -> tuple[Tensor, Tensor]:
    mean = values.mean(0)
    std = values.std(0, unbiased=False)
    return mean, torch.where(std > 1e-6 * (1 + mean.abs()), std, torch.ones_like(std))
