"""The ``--param`` grammar of ``qp sweep``: ``PATH=low:high``, ``PATH=log:low:high``,
``PATH=int:low:high`` and ``PATH=choice:a,b,c``, parsed into :class:`ParamSpec`
(whose ``suggest`` asks an Optuna trial for a value). Kept apart from the sweep
so that parsing and its errors need neither Optuna nor torch."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import yaml

from qpcore.errors import QPError

if TYPE_CHECKING:
    import optuna

Kind = Literal["float", "log", "int", "choice"]
_PATH = re.compile(r"^[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*$")
_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
GRAMMAR = "PATH=low:high, PATH=log:low:high, PATH=int:low:high or PATH=choice:a,b,c"


@dataclass(frozen=True)
class ParamSpec:
    """One swept config path and the values it may take.

    Attributes:
        path: The dotted config path (``optimizer.lr``).
        kind: ``float`` (uniform), ``log`` (log-uniform float), ``int`` or ``choice``.
        low: Lower bound of a range (inclusive).
        high: Upper bound of a range (inclusive).
        choices: The values of a ``choice``.
        text: The ``--param`` as given, for messages.
    """

    path: str
    kind: Kind
    low: float | int | None = None
    high: float | int | None = None
    choices: tuple[Any, ...] = ()
    text: str = ""

    @property
    def label(self) -> str:
        """The ``--param`` as given (or as it would be written), for messages."""
        return self.text or self.describe()

    def samples(self) -> list[Any]:
        """Values checked against the config before any trial runs: every
        choice; both ends of a range and, for a float range, a fractional
        value inside it (``8:32`` on an integer setting passes at 8.0 and 32.0
        and fails at 21.17, which the first trial would draw)."""
        if self.kind == "choice":
            return list(dict.fromkeys(self.choices))
        if self.kind == "int":
            return [self.low, self.high]
        low, high = float(self.low), float(self.high)  # type: ignore[arg-type]
        if self.kind == "log":
            inside = math.exp(math.log(low) + 0.37 * (math.log(high) - math.log(low)))
        else:
            inside = low + 0.37 * (high - low)
        return [self.low, self.high, inside]

    def override(self, value: Any) -> str:
        """The ``--set`` text that puts ``value`` at this path."""
        return f"{self.path}={yaml_scalar(value)}"

    def suggest(self, trial: optuna.trial.Trial) -> Any:
        """The trial's value, drawn by its sampler."""
        if self.kind == "choice":
            return trial.suggest_categorical(self.path, list(self.choices))
        if self.kind == "int":
            return trial.suggest_int(self.path, int(self.low), int(self.high))  # type: ignore[arg-type]
        return trial.suggest_float(
            self.path,
            float(self.low),  # type: ignore[arg-type]
            float(self.high),  # type: ignore[arg-type]
            log=self.kind == "log",
        )

    def to_dict(self) -> dict[str, Any]:
        found: dict[str, Any] = {"path": self.path, "kind": self.kind}
        if self.kind == "choice":
            found["choices"] = list(self.choices)
        else:
            found["low"], found["high"] = self.low, self.high
        return found

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ParamSpec:
        choices = tuple(data.get("choices", ()))
        return cls(data["path"], data["kind"], data.get("low"), data.get("high"), choices)

    def describe(self) -> str:
        """The spec in the ``--param`` grammar."""
        if self.kind == "choice":
            return f"{self.path}=choice:" + ",".join(yaml_scalar(c) for c in self.choices)
        prefix = {"float": "", "log": "log:", "int": "int:"}[self.kind]
        return f"{self.path}={prefix}{self.low:g}:{self.high:g}"


def yaml_scalar(value: Any) -> str:
    """``value`` as a YAML scalar that reads back as the same value (``1e-05``
    becomes ``1.0e-05``: YAML 1.1 reads the former as a string)."""
    text = yaml.safe_dump(value, default_flow_style=True, width=10**6).strip()
    return text.removesuffix("\n...").strip()


def _choice(item: str, text: str) -> Any:
    item = item.strip()
    if not item:
        raise QPError(f"--param {text}: a choice is empty (choices are separated by ',')")
    if _NUMBER.match(item):  # YAML 1.1 reads 1e-4 as text; a choice of it is a number
        number = float(item)
        return int(number) if re.fullmatch(r"[+-]?\d+", item) else number
    try:
        value = yaml.safe_load(item)
    except yaml.YAMLError:
        value = item
    if value is not None and not isinstance(value, str | int | float | bool):
        raise QPError(
            f"--param {text}: choice {item!r} is a {type(value).__name__}; "
            "choices are single values (numbers, names, true/false, null)"
        )
    if isinstance(value, float) and not math.isfinite(value):
        raise QPError(f"--param {text}: choice {item!r} is not a finite number")
    return value


def _bound(raw: str, kind: Kind, text: str) -> float | int:
    raw = raw.strip()
    try:
        if kind == "int":
            return int(raw)
        value = float(raw)
    except ValueError:
        wanted = "a whole number" if kind == "int" else "a number"
        raise QPError(f"--param {text}: {raw!r} is not {wanted}") from None
    if not math.isfinite(value):
        raise QPError(f"--param {text}: {raw!r} is not a finite number")
    return value


def parse_param(text: str) -> ParamSpec:
    """Read one ``--param``; raises :class:`QPError` naming it when it is malformed.

    Grammar: ``PATH=low:high`` (uniform float), ``PATH=log:low:high``
    (log-uniform float), ``PATH=int:low:high``, ``PATH=choice:a,b,c`` (each
    value read as a YAML scalar, so ``0.5`` is a number and ``adam`` a name).
    """
    path, sep, spec = text.partition("=")
    path, spec = path.strip(), spec.strip()
    if not sep or not path or not spec:
        raise QPError(f"--param {text!r}: expected {GRAMMAR}")
    if not _PATH.match(path):
        raise QPError(f"--param {text}: {path!r} is not a dotted config path (e.g. optimizer.lr)")
    head, _, rest = spec.partition(":")
    if head == "choice":
        if not rest.strip():
            raise QPError(f"--param {text}: choice needs values, e.g. choice:0.1,0.3")
        choices = tuple(_choice(item, text) for item in rest.split(","))
        if len(choices) < 2:
            raise QPError(f"--param {text}: a choice needs at least two values")
        if len(set(map(yaml_scalar, choices))) != len(choices):
            raise QPError(f"--param {text}: a value is listed twice")
        return ParamSpec(path, "choice", choices=choices, text=text)
    kind: Kind = "float"
    parts = spec.split(":")
    if head in ("log", "int"):
        kind, parts = head, parts[1:]  # type: ignore[assignment]
    elif len(parts) != 2:
        raise QPError(f"--param {text}: unknown kind {head!r}; expected {GRAMMAR}")
    if len(parts) != 2:
        raise QPError(f"--param {text}: {kind} takes low:high, e.g. {path}={head}:1:10")
    low, high = (_bound(p, kind, text) for p in parts)
    if low >= high:
        raise QPError(f"--param {text}: low ({low:g}) must be below high ({high:g})")
    if kind == "log" and low <= 0:
        raise QPError(f"--param {text}: a log range needs low > 0 (got {low:g})")
    return ParamSpec(path, kind, low, high, text=text)


def overlaps(a: str, b: str) -> bool:
    """Whether setting dotted path ``a`` and ``b`` touches the same value: the
    same path, or one inside the other (``optimizer`` and ``optimizer.lr``),
    where the one applied last silently replaces the other."""
    return a == b or a.startswith(f"{b}.") or b.startswith(f"{a}.")


def parse_params(texts: Iterable[str | ParamSpec]) -> list[ParamSpec]:
    """Every ``--param``; a path given twice, or inside another, is refused."""
    specs = [t if isinstance(t, ParamSpec) else parse_param(t) for t in texts]
    for i, spec in enumerate(specs):
        for other in specs[:i]:
            if overlaps(spec.path, other.path):
                how = "already swept" if spec.path == other.path else "overlapping the one swept"
                raise QPError(
                    f"--param {spec.label}: {spec.path} is {how} by --param {other.label}; "
                    "one would overwrite the other"
                )
    return specs


def short_value(value: Any) -> str:
    """A param value as tables and progress lines show it."""
    return f"{value:.4g}" if isinstance(value, float) else str(value)
