"""Loading plugins from entry points, remembering where each one came from.

pluggy can load setuptools entry points itself, but it forgets the distribution and
stops at the first import error. We load them ourselves so that ``qp plugins`` can
say which package and version offered a component, show a broken plugin instead of
crashing, and honour ``QP_DISABLE_PLUGINS``.
"""

from __future__ import annotations

import importlib.metadata as md
import os
from collections import Counter
from dataclasses import dataclass, replace
from types import ModuleType
from typing import Any, Literal

import pluggy

from qpcore import hookspecs

ENTRY_POINT_GROUP = "qpcore"
DISABLE_ENV = "QP_DISABLE_PLUGINS"

Status = Literal["ok", "broken", "disabled"]


@dataclass(frozen=True)
class PluginInfo:
    """One plugin as installed: an entry point and the distribution behind it.

    Attributes:
        name: The entry point's name; unique within its distribution only.
        module: What the entry point points at (``package.module``).
        distribution: The installed distribution that declares it, if known.
        version: That distribution's version, if known.
        status: ``ok``, ``broken`` (failed to import or register) or ``disabled``.
        error: Why it is broken, as ``ExceptionType: message``.
        disable_as: The name that turns off exactly this plugin: its
            distribution when that holds no other plugin, else the entry point.
    """

    name: str
    module: str
    distribution: str | None = None
    version: str | None = None
    status: Status = "ok"
    error: str | None = None
    disable_as: str = ""

    @property
    def key(self) -> str:
        """Unique id: entry-point names only need to be unique per distribution."""
        return f"{self.distribution}:{self.name}" if self.distribution else self.name

    @property
    def disable_hint(self) -> str:
        return f"{DISABLE_ENV}={self.disable_as or self.name}"

    @property
    def provider(self) -> str:
        """``dist version (module)``, the way conflict messages name a provider."""
        if self.distribution:
            return f"{self.distribution} {self.version} ({self.module})"
        return f"{self.module} (not from an installed distribution)"

    def broken(self, error: BaseException | str) -> PluginInfo:
        text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
        return replace(self, status="broken", error=text)

    def load_error_message(self) -> str:
        """What a user reads when this plugin cannot be used, with the way out."""
        source = f" from {self.distribution} {self.version}" if self.distribution else ""
        return (
            f"Cannot load plugin {self.module}{source}:\n"
            f"  {self.error}. Fix it or set {self.disable_hint}"
        )


def disabled_names(environ: dict[str, str] | None = None) -> set[str]:
    """Names listed in ``QP_DISABLE_PLUGINS`` (comma or whitespace separated)."""
    raw = (environ if environ is not None else os.environ).get(DISABLE_ENV, "")
    return {part.strip() for part in raw.replace(",", " ").split() if part.strip()}


def _normalise(name: str) -> str:
    return name.lower().replace("_", "-")


class PluginManager:
    """The global pluggy manager plus the provenance of every plugin in it.

    Args:
        disabled: Plugin names (entry point, module, distribution or
            ``distribution:entry_point``) to skip;
            defaults to ``QP_DISABLE_PLUGINS``.
    """

    def __init__(self, disabled: set[str] | None = None) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        names = disabled if disabled is not None else disabled_names()
        self.disabled = {_normalise(n) for n in names}
        self.plugins: list[PluginInfo] = []
        self._matched: set[str] = set()

    def is_disabled(self, info: PluginInfo) -> bool:
        keys = {info.name, info.module, info.distribution or "", info.key}
        hits = {_normalise(key) for key in keys if key} & self.disabled
        self._matched |= hits
        return bool(hits)

    def unmatched_disabled(self) -> list[str]:
        """Names in ``QP_DISABLE_PLUGINS`` that matched no plugin (likely typos)."""
        return sorted(self.disabled - self._matched)

    def load_entrypoints(self, group: str = ENTRY_POINT_GROUP) -> None:
        """Import and register every entry point of ``group``; never raises for one.

        The same distribution can be visible twice (an editable install next to a
        path entry); those duplicates are loaded once.
        """
        seen: set[tuple[str, str, str | None]] = set()
        points = []
        for ep in md.entry_points(group=group):
            dist = getattr(ep, "dist", None)
            info = PluginInfo(
                name=ep.name,
                module=ep.value,
                distribution=dist.metadata["Name"] if dist is not None else None,
                version=dist.version if dist is not None else None,
            )
            key = (info.name, info.module, info.distribution)
            if key not in seen:
                seen.add(key)
                points.append((ep, info))
        per_dist = Counter(info.distribution for _, info in points)
        per_name = Counter(info.name for _, info in points)
        for ep, info in points:
            if info.distribution is not None and per_dist[info.distribution] == 1:
                off = info.distribution
            else:
                off = info.name if per_name[info.name] == 1 else info.key
            info = replace(info, disable_as=off)
            if self.is_disabled(info):
                self.plugins.append(replace(info, status="disabled"))
                continue
            try:
                plugin = ep.load()
            except KeyboardInterrupt:
                raise
            except BaseException as exc:  # any import failure, sys.exit() included, is the plugin's
                self.plugins.append(info.broken(exc))
                continue
            self.register(plugin, info)

    def register(self, plugin: ModuleType | Any, info: PluginInfo) -> PluginInfo:
        """Register one plugin object; a malformed one is recorded as broken."""
        if self.is_disabled(info):
            info = replace(info, status="disabled")
            self.plugins.append(info)
            return info
        try:
            self.pm.register(plugin, name=info.key)
            # pluggy accepts an impl of a hook nobody declared (a typo such as
            # qp_register_loss) and would silently never call it: refuse it here.
            callers = self.pm.get_hookcallers(plugin) or []
            unknown = sorted(caller.name for caller in callers if caller.spec is None)
            if unknown:
                self.pm.unregister(name=info.key)
                raise ValueError(f"implements unknown hook(s) {', '.join(unknown)}")
        except KeyboardInterrupt:
            raise
        except BaseException as exc:
            info = info.broken(exc)
        self.plugins.append(info)
        return info

    def info(self, key: str) -> PluginInfo:
        """The plugin registered under ``key`` (pluggy's plugin name)."""
        for info in self.plugins:
            if info.key == key:
                return info
        return PluginInfo(name=key, module=key)

    def mark_broken(self, key: str, error: BaseException | str) -> None:
        """Record that a registered plugin failed later (e.g. its hook raised)."""
        self.plugins = [
            p.broken(error) if p.key == key and p.status == "ok" else p for p in self.plugins
        ]
