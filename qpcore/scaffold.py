"""``qp plugin new``: write a complete, installable plugin package from a template.

A plugin author's first hour goes on packaging (the entry-point group, which
record each kind returns, how to test it with qpcore's kit) rather than on the
component. So the scaffold writes all of that around one minimal but working
component of the chosen kind, modelled on the simplest built-in of that kind,
and tests that already pass: the author edits working code instead of
assembling it from the docs.

Naming convention, for a component called ``NAME``:

* distribution ``qp-NAME`` (underscores become hyphens: ``qp-my-loss``),
* import package and entry point ``qp_NAME`` (``qp_my_loss``),
* folder ``qp-NAME`` in the current directory unless ``--out`` says otherwise.

The templates are :class:`string.Template` files under
``qpcore/templates/plugin/`` (package data): one module and one test file per
kind, a ``pyproject.toml`` and a ``README.md`` shared by all kinds.
"""

from __future__ import annotations

import importlib.util
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from string import Template

from qpcore import __version__
from qpcore.errors import QPError
from qpcore.specs import KINDS, NAME_PATTERN, PLURALS, Kind

#: The folder of the template files, inside the qpcore package.
TEMPLATES = "templates/plugin"

#: Longest name the scaffold accepts: configs and commands spell it out, and the
#: generated code stays within its 100-character lines up to this length.
MAX_NAME = 40

#: Suffix of each kind's component class (``TinyLoss``, ``TinyMonitor`` ...).
CLASS_SUFFIX: dict[str, str] = {
    "loss": "Loss",
    "optimizer": "Optimizer",
    "scheduler": "Scheduler",
    "monitor": "Monitor",
    "evaluator": "Evaluator",
    "backbone": "Backbone",
    "dataset": "Dataset",
    "executor": "Executor",
}

#: What the component's module imports besides qpcore: its distribution's
#: direct dependencies (qpcore brings them too, but a package should declare
#: what it imports).
EXTRA_DEPENDENCIES: dict[str, tuple[str, ...]] = {
    "loss": ("torch",),
    "optimizer": ("torch",),
    "scheduler": ("torch",),
    "monitor": (),
    "evaluator": ("numpy",),
    "backbone": ("numpy", "torch"),
    "dataset": (),
    "executor": (),
}

#: Names the templates import or define themselves; a class named like one of
#: them would shadow it (``backbone`` would make a class ``Backbone``).
RESERVED = frozenset(
    {"Any", "Backbone", "Field", "Params", "Path", "Tensor", "Template", "Registry"}
)

#: One line per kind for ``qp plugins`` and the README.
SUMMARIES: dict[str, str] = {
    "loss": "Mean absolute error (a template to edit).",
    "optimizer": "SGD with momentum (a template to edit).",
    "scheduler": "Multiply the LR by gamma every step_size epochs (a template to edit).",
    "monitor": "Counts epochs and batches into a JSON file in the run folder (a template).",
    "evaluator": "Mean absolute error and the share of rows within a tolerance (a template).",
    "backbone": "A tiny, seeded conv net (a template to edit).",
    "dataset": "Rows of a labelled manifest CSV (a template to edit).",
    "executor": "Runs jobs one at a time (a template to edit).",
}

#: How a user picks the component, for the README (``{name}`` is filled in).
USAGE: dict[str, str] = {
    "loss": "```yaml\nloss: {{name: {name}}}\n```",
    "optimizer": "```yaml\noptimizer: {{name: {name}, lr: 0.01}}\n```",
    "scheduler": "```yaml\nscheduler: {{name: {name}, step_size: 10, gamma: 0.5}}\n```",
    "monitor": (
        "```yaml\nmonitors: [progress, {name}]   # the list replaces the default monitors\n```"
    ),
    "evaluator": (
        "```yaml\nevaluators: [regression, {name}]\n```\n\n"
        "`qp evaluate` and the end of `qp train` then report its metrics."
    ),
    "backbone": "```yaml\nmodel: {{backbone: {{name: {name}, width: 16}}}}\n```",
    "dataset": "```yaml\ndata: {{name: {name}, path: data/mine/manifest.csv}}\n```",
    "executor": (
        "```bash\nqp data label ./images --out data/mine --executor {name}\n```\n\n"
        "or `executor: {name}` in the params of a dataset that labels (`synthetic`, `folder`)."
    ),
}


@dataclass(frozen=True)
class PluginNames:
    """Every name the scaffold derives from a component name, in one place so
    the package, its metadata and its tests cannot disagree.

    Attributes:
        name: The component name configs use (``my_loss``).
        kind: The component kind (``loss``).
        distribution: The distribution name for pip (``qp-my-loss``).
        package: The import package, also the entry-point name (``qp_my_loss``).
        component: The component's class name (``MyLoss``).
        params: Its params model's class name (``MyLossParams``).
    """

    name: str
    kind: Kind
    distribution: str
    package: str
    component: str
    params: str

    @classmethod
    def of(cls, name: str, kind: str) -> PluginNames:
        """Validate ``name`` and ``kind`` and derive the other names.

        Raises:
            QPError: A name configs could not use, or an unknown kind.
        """
        if kind not in KINDS:
            raise QPError(f"unknown kind {kind!r}: pick one of {', '.join(KINDS)}")
        if not NAME_PATTERN.match(name):
            raise QPError(
                f"{name!r} is not a component name: use lower-case letters, digits and "
                "underscores, starting with a letter (like my_loss)"
            )
        if len(name) > MAX_NAME:
            raise QPError(f"{name!r} is {len(name)} characters long; keep it to {MAX_NAME}")
        camel = "".join(part.capitalize() for part in name.split("_"))
        suffix = CLASS_SUFFIX[kind]
        # "my_loss" gives MyLoss, not MyLossLoss, unless that shadows an import.
        component = camel if camel.endswith(suffix) else camel + suffix
        if component in RESERVED:
            component = camel + suffix
        return cls(
            name=name,
            kind=kind,  # type: ignore[arg-type]  # checked against KINDS above
            distribution="qp-" + re.sub(r"_+", "-", name).strip("-"),
            package=f"qp_{name}",
            component=component,
            params=f"{camel}Params",
        )

    def substitutions(self) -> dict[str, str]:
        """The ``$variables`` every template may use."""
        dependencies = [f"qpcore>={__version__}", *EXTRA_DEPENDENCIES[self.kind]]
        return {
            "name": self.name,
            "kind": self.kind,
            "plural": PLURALS[self.kind],
            "hook": f"qp_register_{PLURALS[self.kind]}",
            "distribution": self.distribution,
            "package": self.package,
            "Component": self.component,
            "Params": self.params,
            "summary": SUMMARIES[self.kind],
            "usage": USAGE[self.kind].format(name=self.name),
            "dependencies": ", ".join(f'"{d}"' for d in dependencies),
            "qpcore_version": __version__,
        }


def template_text(file: str) -> str:
    """One template file's text, read from the installed qpcore package."""
    return (resources.files("qpcore") / TEMPLATES / file).read_text(encoding="utf-8")


def render(names: PluginNames) -> dict[str, str]:
    """The package's files: relative path -> text.

    ``Template.substitute`` (not ``safe_substitute``) so a misspelt variable in
    a template fails here, in qpcore's tests, not as a ``$typo`` in a user's file.
    """
    values = names.substitutions()
    files = {
        "pyproject.toml": "pyproject.toml.tmpl",
        "README.md": "README.md.tmpl",
        f"{names.package}/__init__.py": f"{names.kind}.py.tmpl",
        f"tests/test_{names.name}.py": f"test_{names.kind}.py.tmpl",
    }
    return {
        path: Template(template_text(source)).substitute(values) for path, source in files.items()
    }


def check_unused(names: PluginNames) -> None:
    """Refuse names already taken in this environment.

    A second ``qp_NAME`` module would shadow the first when both are installed,
    and a component name offered twice stops every ``qp`` command (and the new
    package's own tests): better to pick another name now than after packaging.

    Raises:
        QPError: Naming what is already installed under that name.
    """
    if importlib.util.find_spec(names.package) is not None:
        raise QPError(
            f"a module called {names.package} is already importable here; pick another name"
        )
    from qpcore.registry import default_registry

    provider = default_registry().provider(names.kind, names.name)
    if provider is not None:
        where = f" ({provider.distribution} {provider.version})" if provider.distribution else ""
        raise QPError(
            f"{names.kind} {names.name!r} is already offered by the plugin "
            f"{provider.name}{where}; pick another name (qp plugins --kind {names.kind})"
        )


def new_plugin(name: str, kind: str, out: Path | None = None, check: bool = True) -> Path:
    """Write the plugin package for one ``kind`` component called ``name``.

    Args:
        name: The component name (``[a-z][a-z0-9_]*``).
        kind: One of :data:`qpcore.specs.KINDS`.
        out: The package folder to create (default: ``./qp-NAME``); it may
            exist if it is empty.
        check: Refuse names already installed (see :func:`check_unused`).

    Returns:
        The package folder.

    Raises:
        QPError: A bad name or kind, a name already taken, or an ``out`` that
            exists and is not an empty folder (nothing is ever overwritten).
    """
    names = PluginNames.of(name, kind)
    folder = out if out is not None else Path(names.distribution)
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise QPError(f"{folder}: already exists and is not an empty folder; nothing written")
    if check:
        check_unused(names)
    files = render(names)
    try:
        for relative, text in files.items():
            path = folder / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise QPError(f"{folder}: cannot write the plugin: {exc.strerror or exc}") from exc
    return folder


__all__ = ["PluginNames", "new_plugin", "render"]
