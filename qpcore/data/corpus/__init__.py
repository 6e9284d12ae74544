"""A real-image corpus, rebuilt by one command (``qp data corpus``).

Pinned icon-set packages from npm and two photos from the scikit-learn wheel are
fetched into the download cache, rendered like ``shared/data/dev-icons``, given
degraded copies, and labelled on both parameter tracks. Modules: ``sources``
(the table and the deny-list), ``fetch`` (downloads and integrity), ``render``
(icons, crops, degradations), ``stage`` (the render step), ``build`` (all steps),
``report`` (``SOURCES.md`` and the summary table).
"""

from __future__ import annotations

from qpcore.data.corpus.build import CorpusResult, build_corpus
from qpcore.data.corpus.report import format_table, source_table
from qpcore.data.corpus.sources import SOURCES, Source, check_allowed, reserved_reason, select

__all__ = [
    "SOURCES",
    "CorpusResult",
    "Source",
    "build_corpus",
    "check_allowed",
    "format_table",
    "reserved_reason",
    "select",
    "source_table",
]
