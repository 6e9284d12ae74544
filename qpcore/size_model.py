"""The SVG-size head: fitted once on the frozen features, before the SSIM head.

The size a setting produces is a second target with its own scale (bytes span
three orders of magnitude, so the head predicts standardised log bytes) and its
own loss; fitting it apart keeps the loss plugins, the training loop and its
metrics about the SSIM alone. It reads the same standardised features as the SSIM
head, so it needs frozen backbones whose features the cache holds.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from qpcore.data.manifest import Sample
from qpcore.errors import QPError
from qpcore.model import QualityModel

#: Passes over the training rows at most, and passes without a better
#: validation loss before stopping.
MAX_EPOCHS = 200
PATIENCE = 15
BATCH = 256


def log_sizes(samples: Sequence[Sample], where: str) -> Tensor:
    """Natural log of each row's SVG bytes; refuses rows without one."""
    missing = [s for s in samples if not s.svg_bytes]
    if missing:
        raise QPError(
            f"{where}: model.targets asks for svg_bytes, but {len(missing)} of "
            f"{len(samples)} rows have no svg_bytes (first: {missing[0].image}, line "
            f"{missing[0].line}); label the images with this qpcore (qp data label), "
            "which records each SVG's size"
        )
    return torch.tensor([math.log(s.svg_bytes or 1) for s in samples], dtype=torch.float32)


def size_metrics(predicted_log: np.ndarray, true_bytes: np.ndarray) -> dict[str, float | None]:
    """Pearson on log bytes and the median relative error of the bytes."""
    true_log = np.log(true_bytes)
    pearson = None
    if len(true_log) > 1 and np.std(true_log) > 0 and np.std(predicted_log) > 0:
        pearson = float(np.corrcoef(predicted_log, true_log)[0, 1])
    relative = np.abs(np.exp(predicted_log) - true_bytes) / true_bytes
    return {
        "size_pearson_log": pearson,
        "size_median_rel_error": float(np.median(relative)) if len(relative) else None,
    }


def fit_size_head(
    model: QualityModel,
    train: tuple[Tensor, Tensor | None, Sequence[Sample]],
    val: tuple[Tensor, Tensor | None, Sequence[Sample]],
    seed: int,
) -> dict[str, float | None]:
    """Fit ``model.size_head`` (features, encoded params, samples per split), then
    freeze it; returns its validation metrics (training ones without a val split)."""
    head = model.size_head
    assert head is not None
    features, params, samples = train
    target = log_sizes(samples, "training data")
    model.size_mean.fill_(float(target.mean()))
    model.size_std.fill_(float(target.std(unbiased=False)) or 1.0)
    z = (target - model.size_mean) / model.size_std
    x = model.head_input(features, params).detach()
    checked = val if len(val[2]) else train
    x_val = model.head_input(checked[0], checked[1]).detach()
    z_val = (log_sizes(checked[2], "validation data") - model.size_mean) / model.size_std
    batch_norm = any(isinstance(m, torch.nn.BatchNorm1d) for m in head.modules())
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        optimizer = torch.optim.Adam(head.parameters(), lr=1e-3, weight_decay=1e-4)
        best, best_state, waited = math.inf, copy.deepcopy(head.state_dict()), 0
        for _ in range(MAX_EPOCHS):
            head.train()
            order = torch.randperm(len(x))
            for start in range(0, len(x), BATCH):
                index = order[start : start + BATCH]
                if len(index) < 2 and batch_norm:
                    continue  # BatchNorm cannot train on one row
                loss = torch.nn.functional.mse_loss(head(x[index]), z[index])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            head.eval()
            with torch.no_grad():
                current = float(torch.nn.functional.mse_loss(head(x_val), z_val))
            if current < best - 1e-6:
                best, best_state, waited = current, copy.deepcopy(head.state_dict()), 0
            else:
                waited += 1
                if waited > PATIENCE:
                    break
    head.load_state_dict(best_state)
    head.eval().requires_grad_(False)
    with torch.no_grad():
        predicted = model.predict_log_size(checked[0], checked[1]).numpy()
    true_bytes = np.array([s.svg_bytes for s in checked[2]], dtype=np.float64)
    return size_metrics(predicted, true_bytes)
