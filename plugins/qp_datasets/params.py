"""Parameters of the built-in datasets.

Kept apart from the loaders, which bring the labelling pipeline (vtracer, resvg,
Pillow, the synthetic generator's matplotlib), so registering the datasets
(``qp plugins``, ``qp config validate``) imports pydantic only.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from qpcore import DatasetParams


class ManifestParams(DatasetParams):
    path: str = Field(description="The manifest CSV; image paths are relative to its folder.")
    check_images: bool = Field(True, description="Check that every image file exists.")


class LabelParams(DatasetParams):
    track: Literal["default", "random"] = Field("default", description="Parameter track.")
    per_image: int = Field(1, ge=1, description="Labels per image (random track).")
    seed: int = Field(0, ge=0, description="Seed of the parameter draws.")
    workers: int = Field(0, ge=0, description="Labelling processes (0: one per core).")
    executor: str = Field(
        "local", description="Where labelling runs: an executor plugin (local, ray)."
    )
    address: str | None = Field(
        None, description="Cluster address for executors that take one (ray)."
    )
    cache_dir: str | None = Field(
        None, description="Cache folder (null: QP_CACHE_DIR or ~/.cache/qpcore)."
    )


class SyntheticParams(LabelParams):
    count: int = Field(2000, ge=1, description="Images to generate.")
    size: int = Field(256, ge=16, le=4096, description="Canvas size in pixels.")


class FolderParams(LabelParams):
    path: str = Field(description="Folder of images (searched recursively) to label.")
