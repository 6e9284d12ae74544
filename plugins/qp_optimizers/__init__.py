"""Built-in optimizers: adam, adamw, sgd.

Factories receive parameter groups the trainer prepared (a frozen backbone is
already left out), so no optimizer here decides what trains. They import torch
when called: registering the optimizers must not (``qp plugins`` stays fast).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from pydantic import Field, field_validator, model_validator

from qpcore import OptimizerSpec, Params, hookimpl

if TYPE_CHECKING:
    import torch


class AdamParams(Params):
    lr: float = Field(1e-3, gt=0, description="Learning rate.")
    betas: tuple[float, float] = Field(
        (0.9, 0.999), description="Decay rates of the first and second moment estimates."
    )
    eps: float = Field(1e-8, gt=0, description="Added to the denominator for stability.")
    weight_decay: float = Field(1e-4, ge=0, description="L2 penalty (coupled, as in Adam).")
    amsgrad: bool = Field(False, description="Use the AMSGrad variant.")

    @field_validator("betas")
    @classmethod
    def _betas_in_range(cls, betas: tuple[float, float]) -> tuple[float, float]:
        if not all(0 <= b < 1 for b in betas):
            raise ValueError("betas must both lie in [0, 1)")
        return betas


class AdamWParams(AdamParams):
    weight_decay: float = Field(1e-2, ge=0, description="Decoupled weight decay.")


class SGDParams(Params):
    lr: float = Field(1e-2, gt=0, description="Learning rate.")
    momentum: float = Field(0.9, ge=0, lt=1, description="Momentum factor.")
    nesterov: bool = Field(False, description="Nesterov momentum (needs momentum > 0).")
    weight_decay: float = Field(0.0, ge=0, description="L2 penalty.")

    @model_validator(mode="after")
    def _nesterov_needs_momentum(self) -> SGDParams:
        if self.nesterov and self.momentum == 0:
            raise ValueError("nesterov needs momentum > 0")
        return self


def build_adam(groups: Iterable[Any], params: AdamParams) -> torch.optim.Optimizer:
    import torch

    return torch.optim.Adam(groups, **params.model_dump())


def build_adamw(groups: Iterable[Any], params: AdamWParams) -> torch.optim.Optimizer:
    import torch

    return torch.optim.AdamW(groups, **params.model_dump())


def build_sgd(groups: Iterable[Any], params: SGDParams) -> torch.optim.Optimizer:
    import torch

    return torch.optim.SGD(groups, **params.model_dump())


@hookimpl
def qp_register_optimizers() -> list[OptimizerSpec]:
    return [
        OptimizerSpec("adam", build_adam, AdamParams, "Adam with L2 weight decay (the seed's)."),
        OptimizerSpec("adamw", build_adamw, AdamWParams, "Adam with decoupled weight decay."),
        OptimizerSpec("sgd", build_sgd, SGDParams, "SGD with momentum, optionally Nesterov."),
    ]
