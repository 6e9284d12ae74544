"""What every conformance check shares: the failure message, running plugin
code, and hostile strings for the report checks.

A check fails with :class:`AssertionError` naming the kind, the component and
the rule, so a plugin's CI says which promise broke rather than where.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

if TYPE_CHECKING:
    from qpcore.params import Params
    from qpcore.specs import ComponentSpec

T = TypeVar("T")

#: Markup a file name, group or run folder may carry; a report must show it as text.
HOSTILE = '<script>alert("qp-kit")</script>'
#: The same with an attribute that runs code, for markup built with attributes.
HOSTILE_ATTRIBUTE = '"><img src=x onerror=alert("qp-kit")>'


def _fail(kind: str, name: str, message: str) -> NoReturn:
    raise AssertionError(f"{kind} {name!r}: {message}")


def _require(kind: str, name: str, condition: bool, message: str) -> None:
    """Fail with ``message`` unless ``condition`` holds.

    An explicit raise, not ``assert``: the checks must also hold when Python
    runs with ``-O`` or pytest's assertion rewriting does not apply.
    """
    if not condition:
        _fail(kind, name, message)


def _params(spec: ComponentSpec, params: Mapping[str, Any] | None) -> Params:
    """``params`` validated by the spec's own model, as a config's would be (a
    bad key raises pydantic's ``ValidationError``, not an AssertionError: the
    test is wrong, not the component)."""
    return spec.params.model_validate(dict(params or {}))


def _call(kind: str, name: str, what: str, function: Callable[..., T], *args: Any) -> T:
    """Plugin code, whose exception becomes a failure naming ``what`` it did."""
    try:
        return function(*args)
    except AssertionError:
        raise
    except Exception as exc:
        raise AssertionError(f"{kind} {name!r}: {what} raised {type(exc).__name__}: {exc}") from exc


def _built(
    kind: str,
    name: str,
    factory: Callable[..., Any],
    args: tuple[Any, ...],
    expected: type,
    described: str,
) -> Any:
    """What the factory builds from ``args``, refused unless it is an ``expected``
    (the type qpcore goes on to use it as)."""
    built = _call(kind, name, "the factory", factory, *args)
    _require(
        kind,
        name,
        isinstance(built, expected),
        f"factory returned {type(built).__name__}, not {described}",
    )
    return built


def _reloaded(kind: str, name: str, state: Any) -> Any:
    """``state`` after a checkpoint's ``torch.save`` and ``weights_only`` load,
    the only way a resumed run ever sees it."""
    import io

    import torch

    buffer = io.BytesIO()
    _call(kind, name, "torch.save of state_dict()", torch.save, state, buffer)
    buffer.seek(0)
    return _call(
        kind,
        name,
        "torch.load(weights_only=True) of state_dict() (checkpoints are read so)",
        lambda: torch.load(buffer, weights_only=True),
    )


@contextmanager
def _scratch(given: str | Path | None, prefix: str) -> Iterator[Path]:
    """``given`` as a folder, or a temporary one removed afterwards."""
    if given is not None:
        folder = Path(given)
        folder.mkdir(parents=True, exist_ok=True)
        yield folder
        return
    with tempfile.TemporaryDirectory(prefix=prefix) as folder:
        yield Path(folder)


def _hostile_folder(root: Path) -> Path:
    """A folder whose path reads ``.../<script>alert("qp-kit")</script>``: the
    ``/`` of the closing tag is the path separator, so it exists on POSIX."""
    folder = root / '<script>alert("qp-kit")<' / "script>"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _require_escaped(kind: str, name: str, sections: Any, what: str) -> None:
    """``sections`` are a list of :class:`qpcore.report.Section` whose page
    shows :data:`HOSTILE` strings from the data as text, never as markup."""
    from qpcore.report import Section, render

    _require(
        kind,
        name,
        isinstance(sections, list) and all(isinstance(s, Section) for s in sections),
        f"{what} returned {type(sections).__name__}, not a list of qpcore.report.Section",
    )
    page = _call(kind, name, f"rendering the sections of {what}", render, "kit", [], sections)
    for raw in _RAW_MARKUP:
        _require(
            kind,
            name,
            raw not in page,
            f"{what}: a section puts {raw!r} from the data into the HTML unescaped; "
            "build bodies with qpcore.report's helpers (tag, table, paragraph), which "
            "escape every value that is not already Html",
        )


#: What of the hostile strings may only appear once escaped.
_RAW_MARKUP = ('<script>alert("qp-kit")', "<img src=x onerror=")
