"""Writing output files so that a crash, Ctrl-C or a full disk never leaves half a file.

Every result file qpcore writes (checkpoints, metrics, manifests, reports) goes
through :func:`write_atomic`: a temporary file in the same folder, fsynced, then
renamed over the target. A failure removes the temporary file and leaves the old
target as it was; a full disk becomes one :class:`DiskFull` error that says so.
"""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from qpcore.errors import DiskFull

_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


def is_disk_full(exc: BaseException) -> bool:
    """True for an out-of-space error, also when torch wraps it in a RuntimeError."""
    if isinstance(exc, OSError) and exc.errno in _FULL:
        return True
    text = str(exc)
    return "No space left" in text or "Disk quota exceeded" in text


def disk_full_error(path: Path, what: str, exc: BaseException) -> DiskFull:
    return DiskFull(
        f"disk full: could not write {what} {path} ({exc.__class__.__name__}). "
        "Nothing half-written was kept; free some space and run the command again"
    )


@contextmanager
def disk_full_as_error(path: Path, what: str) -> Iterator[None]:
    """Turn an out-of-space error inside the block into one readable :class:`DiskFull`."""
    try:
        yield
    except DiskFull:
        raise
    except (OSError, RuntimeError) as exc:
        if is_disk_full(exc):
            raise disk_full_error(path, what, exc) from exc
        raise


def _umask_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def write_atomic_with(path: Path, write: Callable[[BinaryIO], None], what: str = "file") -> None:
    """Replace ``path`` with what ``write`` writes to a binary handle, atomically.

    The file gets the mode a plain ``open()`` would give (the umask's), not the
    private 0600 of a temporary file.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with disk_full_as_error(path, what):
            os.fchmod(fd, _umask_mode())
            with os.fdopen(fd, "wb") as handle:
                write(handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_atomic(path: Path, text: str | bytes, what: str = "file") -> None:
    """Replace ``path`` with ``text`` (UTF-8) so a crash leaves the old or the new file."""
    data = text.encode("utf-8") if isinstance(text, str) else text
    write_atomic_with(path, lambda handle: handle.write(data), what)


__all__ = [
    "DiskFull",
    "disk_full_as_error",
    "disk_full_error",
    "is_disk_full",
    "write_atomic",
    "write_atomic_with",
]
