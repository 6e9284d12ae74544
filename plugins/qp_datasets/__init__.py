"""Built-in datasets: ``manifest``, ``synthetic`` and ``folder``.

``synthetic`` and ``folder`` label on first use into a cache folder named after
their parameters, so ``qp train`` works offline with no preparation and a second
run reuses the labels.

The loaders (:mod:`qp_datasets.loaders`) are imported only when a run loads a
dataset; registration reads :mod:`qp_datasets.params`.
"""

from __future__ import annotations

from qp_datasets.params import FolderParams, ManifestParams, SyntheticParams
from qpcore import DatasetSpec, hookimpl
from qpcore.specs import lazy


@hookimpl
def qp_register_datasets() -> list[DatasetSpec]:
    return [
        DatasetSpec(
            "manifest",
            lazy("qp_datasets.loaders:load_manifest"),
            ManifestParams,
            "A labelled manifest.csv.",
        ),
        DatasetSpec(
            "synthetic",
            lazy("qp_datasets.loaders:load_synthetic"),
            SyntheticParams,
            "Generated logo-like images, labelled on first use and cached.",
        ),
        DatasetSpec(
            "folder",
            lazy("qp_datasets.loaders:load_folder"),
            FolderParams,
            "A folder of images, labelled on first use.",
        ),
    ]
