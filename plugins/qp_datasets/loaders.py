"""What the built-in datasets do when a run loads one: read a manifest, or
label generated or found images into a cache named after their parameters."""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from qp_datasets.params import FolderParams, LabelParams, ManifestParams, SyntheticParams
from qpcore import QPError
from qpcore.data.dataset import LabelledData, cache_root
from qpcore.data.jobs import Job, collect_inputs, label_jobs, synth_jobs
from qpcore.data.labeler import MANIFEST, Summary, run_jobs
from qpcore.data.manifest import read_manifest
from qpcore.data.protocol import PROTOCOL
from qpcore.data.synth import GENERATOR_VERSION
from qpcore.errors import FolderBusy
from qpcore.executor import Executor, build_executor

#: Seconds between two looks at a cache folder another process holds.
WAIT_POLL_S = 0.5


def load_manifest(params: ManifestParams) -> LabelledData:
    return LabelledData.from_manifest(read_manifest(params.path, params.check_images))


def _cached(
    kind: str, identity: dict[str, Any], jobs: list[Job], params: LabelParams
) -> LabelledData:
    """Label ``jobs`` into the cache folder of ``identity``, or reuse it."""
    if params.track == "default" and params.per_image > 1:
        raise QPError("per_image > 1 needs track: random (default-track labels are all equal)")
    # "columns": manifests gained the SVG size columns; older caches are relabelled.
    key = json.dumps({"protocol": PROTOCOL, "columns": 2, **identity}, sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    root = Path(params.cache_dir) if params.cache_dir else cache_root()
    folder = root / f"{kind}-{digest}"
    settings = {"kind": kind, **identity}
    executor = build_executor(params.executor, workers=params.workers, address=params.address)
    summary = _label_when_free(jobs, folder, settings, executor)
    if summary.interrupted:
        raise KeyboardInterrupt
    if summary.errors:
        print(f"{summary.errors} images could not be labelled: see {folder / 'errors.csv'}")
    return LabelledData.from_manifest(read_manifest(folder / MANIFEST))


def _label_when_free(
    jobs: list[Job], folder: Path, settings: dict[str, Any], executor: Executor
) -> Summary:
    """``run_jobs`` into a cache folder, waiting while another process holds it.

    The cache is shared by every run on the machine: two runs (two ``qp
    train``, a sweep's workers, a study beside a training) that start on the
    same dataset should label it once, the second reusing what the first made,
    not fail because the first holds the folder. A held lock is a live process
    (the OS drops a dead one's), so this waits for as long as that one works;
    Ctrl-C still stops the wait.
    """
    told = False
    while True:
        try:
            return run_jobs(jobs, folder, settings, progress=True, executor=executor)
        except FolderBusy as busy:
            if not told:
                print(f"waiting: {busy}", file=sys.stderr, flush=True)
                told = True
            time.sleep(WAIT_POLL_S)


def load_synthetic(params: SyntheticParams) -> LabelledData:
    identity = {
        "generator": GENERATOR_VERSION,
        "count": params.count,
        "size": params.size,
        "track": params.track,
        "per_image": params.per_image,
        "seed": params.seed,
    }
    jobs = synth_jobs(params.count, params.track, params.per_image, params.seed, params.size)
    return _cached("synthetic", identity, jobs, params)


def load_folder(params: FolderParams) -> LabelledData:
    files = collect_inputs([params.path])
    # The cache follows the folder's content: a changed file is a new dataset.
    listing = [(str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in files]
    identity = {
        "folder": os.path.realpath(params.path),
        "files": hashlib.sha256(json.dumps(listing).encode()).hexdigest(),
        "track": params.track,
        "per_image": params.per_image,
        "seed": params.seed,
    }
    jobs = label_jobs([params.path], params.track, params.per_image, params.seed)
    return _cached("folder", identity, jobs, params)
