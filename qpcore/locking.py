"""One process per output folder: run folders and dataset folders are locked.

Two ``qp train`` runs with the same ``output.name``, or two ``qp data label``
with the same ``--out``, would otherwise both exit 0 with their output
interleaved. The lock is an OS-level lock (``filelock``), so it dies with its
process, kill -9 included: a crashed run never leaves a folder locked.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from qpcore.errors import FolderBusy, QPError

LOCK = ".qp.lock"
OWNER = ".qp.lock.owner"


def _owner_text(folder: Path) -> str:
    try:
        owner = json.loads((folder / OWNER).read_text(encoding="utf-8"))
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(owner["started"])))
        return f"pid {int(owner['pid'])} on {owner['host']}, since {started}: {owner['command']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "a process that has not recorded itself yet"


@contextmanager
def hold_folder(folder: Path, what: str) -> Iterator[None]:
    """Hold ``folder`` for this process while the block runs, or raise FolderBusy.

    Never waits: a second writer is refused at once and told who holds the folder.
    """
    created = not folder.exists()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise QPError(f"{folder}: cannot create this folder: {exc.strerror or exc}") from exc
    lock = FileLock(folder / LOCK, is_singleton=False)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise FolderBusy(
            f"{folder} is in use by another {what} ({_owner_text(folder)}); "
            "wait for it to finish, or write elsewhere"
        ) from None
    owner = folder / OWNER
    try:
        record = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": time.time(),
            "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])[:300],
        }
        owner.write_text(json.dumps(record) + "\n", encoding="utf-8")
        yield
    finally:
        owner.unlink(missing_ok=True)
        lock.release()
        if created:
            _remove_if_only_lock(folder)


def _remove_if_only_lock(folder: Path) -> None:
    """A folder made only to be locked (the run failed at once) is not left behind."""
    try:
        if {p.name for p in folder.iterdir()} <= {LOCK}:
            (folder / LOCK).unlink(missing_ok=True)
            folder.rmdir()
    except OSError:
        pass


__all__ = ["FolderBusy", "hold_folder"]
