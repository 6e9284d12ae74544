"""Built-in LR schedulers: reduce_on_plateau, cosine, step, onecycle.

Each accepts the warmup knobs of :class:`qpcore.schedulers.SchedulerParams`; the
core applies warmup, so nothing here implements it. Factories import torch when
called: registering the schedulers must not (``qp plugins`` stays fast).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field

from qpcore import SchedulerParams, SchedulerSpec, hookimpl
from qpcore.epoch_metrics import MetricName, metric_mode
from qpcore.schedulers import ScheduleContext

if TYPE_CHECKING:
    import torch
    from torch.optim import lr_scheduler


class PlateauParams(SchedulerParams):
    monitor: MetricName = Field("val_loss", description="Epoch metric to watch.")
    mode: Literal["auto", "min", "max"] = Field(
        "auto", description="auto: max for pearson metrics, min for the others."
    )
    factor: float = Field(0.5, gt=0, lt=1, description="LR is multiplied by this on a plateau.")
    patience: int = Field(10, ge=0, description="Epochs without improvement before reducing.")
    threshold: float = Field(1e-4, ge=0, description="Relative change that counts as better.")
    cooldown: int = Field(0, ge=0, description="Epochs to wait after a reduction.")
    min_lr: float = Field(1e-7, ge=0, description="Lower bound of the LR.")


class CosineParams(SchedulerParams):
    t_max: int | None = Field(
        None, ge=1, description="Epochs of one half cosine (null: the run's epochs after warmup)."
    )
    eta_min: float = Field(1e-7, ge=0, description="LR at the end of the cosine.")


class StepParams(SchedulerParams):
    step_size: int = Field(30, ge=1, description="Epochs between decays.")
    gamma: float = Field(0.1, gt=0, le=1, description="Multiplicative decay.")


class OneCycleParams(SchedulerParams):
    max_lr: float | None = Field(
        None, gt=0, description="Peak LR (null: the optimizer's configured LR)."
    )
    pct_start: float = Field(0.3, gt=0, lt=1, description="Fraction of steps spent increasing.")
    anneal_strategy: Literal["cos", "linear"] = Field("cos", description="Annealing shape.")
    div_factor: float = Field(25.0, gt=1, description="Initial LR = max_lr / div_factor.")
    final_div_factor: float = Field(1e4, gt=1, description="Final LR = initial / this.")


def build_plateau(
    optimizer: torch.optim.Optimizer, params: PlateauParams, context: ScheduleContext
) -> lr_scheduler.ReduceLROnPlateau:
    from torch.optim import lr_scheduler

    mode = metric_mode(params.monitor) if params.mode == "auto" else params.mode
    return lr_scheduler.ReduceLROnPlateau(
        optimizer,
        mode=mode,
        factor=params.factor,
        patience=params.patience,
        threshold=params.threshold,
        cooldown=params.cooldown,
        min_lr=params.min_lr,
    )


def build_cosine(
    optimizer: torch.optim.Optimizer, params: CosineParams, context: ScheduleContext
) -> lr_scheduler.CosineAnnealingLR:
    from torch.optim import lr_scheduler

    return lr_scheduler.CosineAnnealingLR(
        optimizer, T_max=params.t_max or context.epochs, eta_min=params.eta_min
    )


def build_step(
    optimizer: torch.optim.Optimizer, params: StepParams, context: ScheduleContext
) -> lr_scheduler.StepLR:
    from torch.optim import lr_scheduler

    return lr_scheduler.StepLR(optimizer, step_size=params.step_size, gamma=params.gamma)


def build_onecycle(
    optimizer: torch.optim.Optimizer, params: OneCycleParams, context: ScheduleContext
) -> lr_scheduler.OneCycleLR:
    from qp_schedulers.onecycle import BoundedOneCycleLR

    max_lr = params.max_lr or [group["lr"] for group in optimizer.param_groups]
    return BoundedOneCycleLR(
        optimizer,
        max_lr=max_lr,
        total_steps=context.epochs * context.steps_per_epoch,
        pct_start=params.pct_start,
        anneal_strategy=params.anneal_strategy,
        div_factor=params.div_factor,
        final_div_factor=params.final_div_factor,
    )


@hookimpl
def qp_register_schedulers() -> list[SchedulerSpec]:
    return [
        SchedulerSpec(
            "reduce_on_plateau",
            build_plateau,
            PlateauParams,
            "Reduce the LR when a metric stops improving (the seed's default).",
            metric_param="monitor",
        ),
        SchedulerSpec("cosine", build_cosine, CosineParams, "Cosine annealing to eta_min."),
        SchedulerSpec("step", build_step, StepParams, "Multiply the LR by gamma every N epochs."),
        SchedulerSpec(
            "onecycle",
            build_onecycle,
            OneCycleParams,
            "One-cycle policy, stepped every optimizer step.",
            interval="step",
        ),
    ]
