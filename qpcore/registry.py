"""Components per kind, gathered from every plugin, looked up by name.

Conflicts are never resolved silently: a name offered twice makes the registry
unusable until the user removes or disables one provider, because "last one wins"
would make a run depend on install order.
"""

from __future__ import annotations

import difflib
import functools
import sys
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from qpcore.errors import PluginError, UnknownComponentError
from qpcore.hookspecs import REGISTRATION_HOOKS
from qpcore.manager import PluginInfo, PluginManager
from qpcore.specs import KINDS, PLURALS, SPEC_TYPES, ComponentSpec, Kind


@dataclass(frozen=True)
class Entry:
    """A component together with the plugin that offered it."""

    spec: ComponentSpec
    plugin: PluginInfo
    conflict: bool = False


class Registry:
    """Every component of every kind, built once from a plugin manager.

    Args:
        manager: A manager whose plugins are already registered.
    """

    def __init__(self, manager: PluginManager) -> None:
        self.manager = manager
        self._entries: dict[Kind, list[Entry]] = {kind: [] for kind in KINDS}
        for kind in KINDS:
            self._collect(kind)
        self._mark_conflicts()

    @classmethod
    def from_entrypoints(cls, disabled: set[str] | None = None) -> Registry:
        manager = PluginManager(disabled=disabled)
        manager.load_entrypoints()
        return cls(manager)

    def _collect(self, kind: Kind) -> None:
        caller = getattr(self.manager.pm.hook, REGISTRATION_HOOKS[kind])
        expected = SPEC_TYPES[kind]
        # Call each implementation on its own (not the whole hook) so every record
        # keeps its provider and one failing plugin does not hide the others.
        for impl in caller.get_hookimpls():
            try:
                records = list(impl.function() or [])
                wrong = [r for r in records if not isinstance(r, expected)]
                if wrong:
                    raise TypeError(
                        f"{REGISTRATION_HOOKS[kind]} returned {type(wrong[0]).__name__}, "
                        f"expected {expected.__name__} records"
                    )
            except KeyboardInterrupt:
                raise
            except BaseException as exc:  # SystemExit too: a plugin never ends the command
                self.manager.mark_broken(impl.plugin_name, exc)
                continue
            info = self.manager.info(impl.plugin_name)
            self._entries[kind] += [Entry(spec, info) for spec in records]

    def _mark_conflicts(self) -> None:
        for kind, entries in self._entries.items():
            counts: dict[str, int] = defaultdict(int)
            for entry in entries:
                counts[entry.spec.name] += 1
            self._entries[kind] = [
                Entry(e.spec, self._current_info(e.plugin), counts[e.spec.name] > 1)
                for e in entries
            ]

    def _current_info(self, info: PluginInfo) -> PluginInfo:
        # A plugin marked broken after its records were collected (its hook for
        # another kind raised) must show as broken everywhere.
        return self.manager.info(info.key)

    # --- queries -------------------------------------------------------------

    @property
    def plugins(self) -> list[PluginInfo]:
        return list(self.manager.plugins)

    def entries(self, kind: Kind | None = None) -> list[Entry]:
        kinds: Iterable[Kind] = (kind,) if kind else KINDS
        return [e for k in kinds for e in sorted(self._entries[k], key=lambda e: e.spec.name)]

    def names(self, kind: Kind) -> list[str]:
        return sorted({e.spec.name for e in self._entries[kind] if e.plugin.status == "ok"})

    def problems(self) -> list[str]:
        """Every reason the registry cannot be trusted, as user-facing messages."""
        messages = [p.load_error_message() for p in self.manager.plugins if p.status == "broken"]
        for kind in KINDS:
            seen: set[str] = set()
            for entry in self._entries[kind]:
                name = entry.spec.name
                if entry.conflict and name not in seen:
                    seen.add(name)
                    messages.append(self._conflict_message(kind, name))
        return messages

    def ensure_usable(self) -> None:
        """Refuse to start anything while a plugin is broken or a name is taken twice."""
        problems = self.problems()
        if problems:
            raise PluginError("\n".join(problems))

    def _conflict_message(self, kind: Kind, name: str) -> str:
        plugins = [e.plugin for e in self._entries[kind] if e.spec.name == name]
        lines = [f"Duplicate {kind} {name!r} provided by:"]
        lines += [f"  - {p.provider}" for p in plugins]
        hints = " or ".join(p.disable_hint for p in plugins)
        lines.append(f"Uninstall one, or turn one off with {hints}.")
        return "\n".join(lines)

    def unknown_message(self, kind: Kind, name: str, at: str | None = None) -> str:
        """``Unknown loss 'focall' (at loss.name). Did you mean 'focal'? ...``"""
        names = self.names(kind)
        where = f" (at {at})" if at else ""
        text = f"Unknown {kind} {name!r}{where}."
        close = _closest(name.lower(), names)
        if close:
            text += f" Did you mean {close!r}?"
        if names:
            text += f"\nAvailable {PLURALS[kind]}: {', '.join(names)}."
        else:
            text += f"\nNo {PLURALS[kind]} are installed."
        return text + f" See: qp plugins --kind {kind}"

    def get(self, kind: Kind, name: str, at: str | None = None) -> ComponentSpec:
        """The spec called ``name``; raises with suggestions when there is none."""
        matches = [e for e in self._entries[kind] if e.spec.name == name]
        if len(matches) > 1:
            raise PluginError(self._conflict_message(kind, name))
        if not matches or matches[0].plugin.status != "ok":
            raise UnknownComponentError(self.unknown_message(kind, name, at))
        return matches[0].spec

    def provider(self, kind: Kind, name: str) -> PluginInfo | None:
        """The plugin offering ``name``, when exactly one usable plugin does."""
        matches = [e for e in self._entries[kind] if e.spec.name == name]
        return matches[0].plugin if len(matches) == 1 else None


def _closest(name: str, names: list[str]) -> str | None:
    """A typo's likely target: similar spelling, else a name it contains (mse_loss)."""
    close = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
    if close:
        return close[0]
    inside = [n for n in names if n in name or name in n]
    return min(inside, key=lambda n: abs(len(n) - len(name))) if inside else None


@functools.lru_cache(maxsize=1)
def default_registry() -> Registry:
    """The registry of installed plugins, loaded once per process.

    A name in ``QP_DISABLE_PLUGINS`` that matches no plugin is most likely a
    typo that leaves the plugin meant enabled, so it is said on stderr, once.
    """
    registry = Registry.from_entrypoints()
    for name in registry.manager.unmatched_disabled():
        print(
            f"Warning: QP_DISABLE_PLUGINS names {name!r}, which matches no plugin.",
            file=sys.stderr,
        )
    return registry
