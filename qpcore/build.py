"""Turn a resolved config into live objects: the model, the loss, the optimizer.

Each component is built from the registry record its name resolved to
(:attr:`qpcore.config.ComponentRef.spec`), so the registry is not asked again.

The trainer and the predictor both build through here, so a checkpoint's config
rebuilds exactly the model that wrote it.
"""

from __future__ import annotations

import platform
from importlib import metadata
from typing import Any, cast

import torch
from torch import nn

from qpcore.backbone import Backbone
from qpcore.checkpoint import ComponentOrigin
from qpcore.config import ComponentRef, RunConfig, dotted, iter_components
from qpcore.errors import QPError
from qpcore.model import QualityModel
from qpcore.registry import Registry


def build_backbone(ref: ComponentRef) -> Backbone:
    """One resolved backbone; refuses a plugin that returns something else."""
    backbone = ref.spec.build(ref.params)
    if not isinstance(backbone, Backbone):
        raise QPError(
            f"backbone {ref.name!r} returned {type(backbone).__name__}, "
            "not a qpcore.backbone.Backbone"
        )
    return backbone


def build_backbones(cfg: RunConfig) -> list[Backbone]:
    """The model's backbone and feature extractors, in feature order."""
    return [build_backbone(ref) for ref in (cfg.model.backbone, *cfg.model.features)]


def build_model(cfg: RunConfig) -> QualityModel:
    backbones = build_backbones(cfg)
    head = cfg.model.head
    try:
        return QualityModel(
            backbones,
            head.hidden,
            head.dropout,
            head.batch_norm,
            head.params_input,
            size_target="svg_bytes" in cfg.model.targets,
        )
    except ValueError as exc:
        raise QPError(f"model: {exc}") from exc


def build_loss(cfg: RunConfig) -> nn.Module:
    loss = cfg.loss.spec.build(cfg.loss.params)
    if not isinstance(loss, nn.Module):
        raise QPError(f"loss {cfg.loss.name!r} returned {type(loss).__name__}, not an nn.Module")
    return loss


def build_optimizer(cfg: RunConfig, model: nn.Module, loss: nn.Module) -> torch.optim.Optimizer:
    """Only what trains goes in: a frozen backbone stays out, the loss's own
    parameters (uncertainty weighting) go in without weight decay."""
    groups: list[dict[str, Any]] = [{"params": [p for p in model.parameters() if p.requires_grad]}]
    loss_params = [p for p in loss.parameters() if p.requires_grad]
    if loss_params:
        groups.append({"params": loss_params, "weight_decay": 0.0})
    return cast(torch.optim.Optimizer, cfg.optimizer.spec.build(groups, cfg.optimizer.params))


def versions() -> dict[str, str]:
    """Versions that decide what a checkpoint computes."""
    found = {"python": platform.python_version(), "torch": torch.__version__}
    for dist in ("qpcore", "torchvision", "numpy", "opencv-python-headless", "vtracer"):
        try:
            found[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return found


def component_origins(cfg: RunConfig, registry: Registry) -> dict[str, ComponentOrigin]:
    """Every component of ``cfg`` with the distribution that provided it."""
    origins = {}
    for path, kind, value in iter_components(cfg.model_dump()):
        plugin = registry.provider(kind, value["name"])
        origins[dotted(path)] = ComponentOrigin(
            kind=kind,
            name=value["name"],
            distribution=plugin.distribution if plugin else None,
            version=plugin.version if plugin else None,
        )
    return origins


def pick_device(name: str) -> torch.device:
    """``auto``: cuda, then mps, then cpu. An unavailable device asked for by name
    is an error rather than a silent fallback."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise QPError(f"trainer.device={name}, but CUDA is not available here (use auto or cpu)")
    if name == "mps" and not torch.backends.mps.is_available():
        raise QPError("trainer.device=mps, but MPS is not available here (use auto or cpu)")
    return torch.device(name)
