"""Errors a user can act on.

Every error that reaches the CLI derives from :class:`QPError` and carries a message
written for the person at the terminal; the CLI prints it and exits with code 2
instead of showing a traceback (unless ``--traceback`` or ``QP_DEBUG=1``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


class QPError(Exception):
    """Base of every user-facing error; ``str(err)`` is the whole message."""

    exit_code = 2


class ConfigError(QPError):
    """A config that cannot run, with every problem found, not just the first."""

    def __init__(self, issues: list[ConfigIssue], source: str | None = None) -> None:
        self.issues = issues
        self.source = source
        super().__init__(self._render())

    def _render(self) -> str:
        where = f" in {self.source}" if self.source else ""
        noun = "error" if len(self.issues) == 1 else "errors"
        lines = [f"{len(self.issues)} config {noun}{where}:"]
        lines += ["  " + str(issue).replace("\n", "\n    ") for issue in self.issues]
        return "\n".join(lines)


@dataclass(frozen=True)
class ConfigIssue:
    """One problem at one dotted path, with the file line when it is known."""

    path: str
    message: str
    line: int | None = None
    from_set: bool = False

    def __str__(self) -> str:
        where = f"line {self.line}: " if self.line is not None else ""
        if self.from_set:
            where = "--set "
        path = self.path or "(top level)"
        return f"{where}{path}: {self.message}"


class ConfigFileError(QPError):
    """A config file that cannot be read or parsed (missing, empty, bad syntax)."""


class PluginError(QPError):
    """Plugins that cannot be used: a broken import or a name offered twice."""


class UnknownComponentError(QPError):
    """A name that no installed plugin provides."""


class CheckpointError(QPError):
    """A file that is not a checkpoint this qpcore can read."""


class DiskFull(QPError):
    """The disk (or quota) ran out while writing; nothing half-written was kept."""


class FolderBusy(QPError):
    """Another live process holds the folder."""


#: Problems of one manifest listed in full; the rest are counted.
MAX_REPORTED = 20


class ManifestError(QPError):
    """A manifest that cannot be used, with every problem and its line."""

    def __init__(self, path: Path, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        shown = problems[:MAX_REPORTED]
        more = len(problems) - len(shown)
        text = "\n".join(f"  {p}" for p in shown)
        tail = f"\n  ... and {more} more" if more else ""
        noun = "problem" if len(problems) == 1 else "problems"
        super().__init__(f"{path}: {len(problems)} {noun}:\n{text}{tail}")


class UnreadableImage(ValueError):
    """An input that is no usable image; its message is the whole story.

    A ``ValueError``, not a :class:`QPError`: one bad image among many is
    reported in its row (``qp predict``, labelling), not as the command's failure.
    """


__all__ = [
    "CheckpointError",
    "ConfigError",
    "ConfigFileError",
    "ConfigIssue",
    "DiskFull",
    "FolderBusy",
    "ManifestError",
    "PluginError",
    "QPError",
    "UnknownComponentError",
    "UnreadableImage",
]
