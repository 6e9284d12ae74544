"""Parameters of the built-in evaluators.

Kept apart from the evaluators, which need numpy, scipy and matplotlib, so
registering them (``qp plugins``, ``qp config validate``) imports pydantic only.
"""

from __future__ import annotations

from pydantic import Field, field_validator

from qpcore import Params


class RegressionParams(Params):
    outliers: int = Field(10, ge=0, le=1000, description="Largest errors listed with their image.")


class BandsParams(Params):
    edges: list[float] = Field(
        default_factory=lambda: [0.6, 0.8],
        description="Band edges on the true SSIM, ascending (seed: 0.6 and 0.8).",
    )

    @field_validator("edges")
    @classmethod
    def _ascending(cls, value: list[float]) -> list[float]:
        if not value or any(not 0 < e < 1 for e in value) or sorted(set(value)) != value:
            raise ValueError("give ascending, distinct edges inside (0, 1)")
        return value


class CalibrationParams(Params):
    levels: list[float] = Field(
        default_factory=lambda: [0.8, 0.9, 0.95],
        description="Nominal coverages of the intervals, each in (0, 1).",
    )
    calibration_fraction: float = Field(
        0.5, gt=0, lt=1, description="Share of the rows that calibrates; the rest tests."
    )
    seed: int = Field(0, ge=0, description="Seed of the calibration/test split.")
    mc_passes: int = Field(30, ge=0, le=1000, description="MC-dropout passes of the head (0: off).")

    @field_validator("levels")
    @classmethod
    def _levels(cls, value: list[float]) -> list[float]:
        if not value or any(not 0 < v < 1 for v in value):
            raise ValueError("every level must lie strictly between 0 and 1")
        return value


class FeaturesParams(Params):
    top: int = Field(10, ge=1, le=1000, description="Features listed by correlation.")


class TimingParams(Params):
    images: int = Field(50, ge=1, le=10000, description="Images timed one by one.")
    batch_size: int = Field(32, ge=1, description="Batch size of the throughput run.")
