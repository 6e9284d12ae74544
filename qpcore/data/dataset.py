"""What a dataset plugin returns: labelled rows, ready to split.

The trainer and evaluator only see this type, so any dataset plugin (a manifest,
a generator, a third party's archive) works with both.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from qpcore.data.manifest import Manifest, Sample
from qpcore.data.splits import split_samples
from qpcore.params import DatasetParams


@dataclass(frozen=True)
class LabelledData:
    """Rows labelled under one protocol.

    Attributes:
        samples: Every row, in manifest order.
        protocol: The label protocol, or ``None`` when the manifest does not say.
        origin: Where the rows come from (the manifest file), for reports.
    """

    samples: list[Sample]
    protocol: str | None
    origin: Path

    @classmethod
    def from_manifest(cls, manifest: Manifest) -> LabelledData:
        return cls(manifest.samples, manifest.protocol, manifest.path)

    def split(self, params: DatasetParams) -> dict[str, list[Sample]]:
        """Train/val/test by the dataset's split knobs (group-aware, by band)."""
        return split_samples(
            self.samples, params.val_fraction, params.test_fraction, params.split_seed
        )


def cache_root() -> Path:
    """Where generated and labelled datasets are cached between runs.

    ``QP_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/qpcore`` (``~/.cache/qpcore``).
    """
    if os.environ.get("QP_CACHE_DIR"):
        return Path(os.environ["QP_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "qpcore"
