"""The plugin manager and registry: provenance, conflicts, suggestions, broken plugins."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from qpcore import LossSpec, Params, PluginError, UnknownComponentError, hookimpl
from qpcore.manager import PluginInfo, PluginManager, disabled_names
from qpcore.registry import Registry

from conftest import make_distribution

FOCAL_PLUGIN = """
import torch
from qpcore import LossSpec, hookimpl

@hookimpl
def qp_register_losses():
    return [LossSpec("focal", torch.nn.MSELoss, summary="A second focal.")]
"""

BROKEN_PLUGIN = """
import timm_that_is_not_installed
"""


def test_builtins_come_from_entry_points_with_provenance() -> None:
    registry = Registry.from_entrypoints(disabled=set())
    entry = next(e for e in registry.entries("optimizer") if e.spec.name == "adam")
    assert entry.plugin.name == "qp_optimizers"
    assert entry.plugin.distribution == "qpcore"
    assert entry.plugin.version == "0.1.0"
    assert registry.names("scheduler") == ["cosine", "onecycle", "reduce_on_plateau", "step"]
    assert {"focal", "ranking", "combined", "mse"} <= set(registry.names("loss"))
    assert registry.problems() == []


@pytest.mark.parametrize(
    ("hook", "kind", "builtin"),
    [
        ("qp_register_datasets", "dataset", "manifest"),
        ("qp_register_backbones", "backbone", "resnet50"),
        ("qp_register_losses", "loss", "huber"),
        ("qp_register_optimizers", "optimizer", "adamw"),
        ("qp_register_schedulers", "scheduler", "cosine"),
        ("qp_register_monitors", "monitor", "progress"),
        ("qp_register_evaluators", "evaluator", "regression"),
        ("qp_register_executors", "executor", "local"),
    ],
)
def test_each_registration_hook_returns_records_of_its_kind(
    hook: str, kind: str, builtin: str
) -> None:
    """The registry is what the hooks return: every record of the right type,
    and every name the hook offers is the registry's."""
    from qpcore.specs import SPEC_TYPES

    manager = PluginManager(disabled=set())
    manager.load_entrypoints()
    found = [spec for records in getattr(manager.pm.hook, hook)() for spec in records]
    assert found and all(isinstance(spec, SPEC_TYPES[kind]) for spec in found)
    names = {spec.name for spec in found}
    assert builtin in names
    assert names == set(Registry.from_entrypoints(disabled=set()).names(kind))


def test_unknown_name_suggests_the_closest_and_lists_all() -> None:
    registry = Registry.from_entrypoints(disabled=set())
    with pytest.raises(UnknownComponentError) as err:
        registry.get("loss", "focall", at="loss.name")
    message = str(err.value)
    assert message.startswith("Unknown loss 'focall' (at loss.name). Did you mean 'focal'?")
    assert "Available losses: combined, focal, huber, mae, mse" in message
    assert message.endswith("See: qp plugins --kind loss")


def test_unknown_name_of_an_empty_kind_says_none_installed() -> None:
    # With the evaluators plugin switched off, no evaluator is installed.
    registry = Registry.from_entrypoints(disabled={"qp_evaluators"})
    with pytest.raises(UnknownComponentError, match="No evaluators are installed"):
        registry.get("evaluator", "regression")


def test_duplicate_name_names_both_providers(
    tmp_path: Path, on_path: Callable[[Path], None]
) -> None:
    on_path(
        make_distribution(
            tmp_path,
            "qp-extra",
            "2.3.1",
            {"qp_extra_losses": FOCAL_PLUGIN},
            {"qp_extra_losses": "qp_extra_losses"},
        )
    )
    registry = Registry.from_entrypoints(disabled=set())
    problems = "\n".join(registry.problems())
    assert "Duplicate loss 'focal' provided by:" in problems
    assert "  - qpcore 0.1.0 (qp_losses)" in problems
    assert "  - qp-extra 2.3.1 (qp_extra_losses)" in problems
    with pytest.raises(PluginError, match="Duplicate loss 'focal'"):
        registry.get("loss", "focal")
    with pytest.raises(PluginError):
        registry.ensure_usable()
    # Never last-wins: both entries are shown, both marked as a conflict.
    both = [e for e in registry.entries("loss") if e.spec.name == "focal"]
    assert [e.conflict for e in both] == [True, True]


def test_disabling_one_provider_resolves_the_conflict(
    tmp_path: Path, on_path: Callable[[Path], None]
) -> None:
    on_path(
        make_distribution(
            tmp_path,
            "qp-extra",
            "2.3.1",
            {"qp_extra_losses": FOCAL_PLUGIN},
            {"qp_extra_losses": "qp_extra_losses"},
        )
    )
    registry = Registry.from_entrypoints(disabled={"qp-extra"})
    assert registry.problems() == []
    assert registry.get("loss", "focal").summary != "A second focal."
    disabled = [p for p in registry.plugins if p.distribution == "qp-extra"]
    assert [p.status for p in disabled] == ["disabled"]


def test_broken_plugin_is_reported_with_its_distribution(
    tmp_path: Path, on_path: Callable[[Path], None]
) -> None:
    on_path(
        make_distribution(
            tmp_path, "qp-broken", "0.3", {"qp_broken": BROKEN_PLUGIN}, {"qp_broken": "qp_broken"}
        )
    )
    registry = Registry.from_entrypoints(disabled=set())
    broken = [p for p in registry.plugins if p.status == "broken"]
    assert [(p.name, p.distribution, p.version) for p in broken] == [
        ("qp_broken", "qp-broken", "0.3")
    ]
    (message,) = registry.problems()
    assert message == (
        "Cannot load plugin qp_broken from qp-broken 0.3:\n"
        "  ModuleNotFoundError: No module named 'timm_that_is_not_installed'. "
        "Fix it or set QP_DISABLE_PLUGINS=qp-broken"
    )
    # The healthy plugins are still all there.
    assert "adam" in registry.names("optimizer")
    with pytest.raises(PluginError, match="Cannot load plugin qp_broken"):
        registry.ensure_usable()


def test_disabled_names_parse_commas_and_spaces() -> None:
    env = {"QP_DISABLE_PLUGINS": "qp-extra, qp_losses  other"}
    assert disabled_names(env) == {"qp-extra", "qp_losses", "other"}
    assert disabled_names({}) == set()


def test_builtin_can_be_disabled_by_entry_point_name() -> None:
    registry = Registry.from_entrypoints(disabled={"qp_losses"})
    assert registry.names("loss") == []
    assert registry.names("optimizer") == ["adam", "adamw", "sgd"]


class _Misspelt:
    @hookimpl
    def qp_register_loss(self) -> list[LossSpec]:  # missing the "es"
        return []


class _Raises:
    @hookimpl
    def qp_register_losses(self) -> list[LossSpec]:
        raise RuntimeError("cannot build the list")


class _WrongRecord:
    @hookimpl
    def qp_register_losses(self) -> list[object]:
        return ["mse"]


class _Good:
    @hookimpl
    def qp_register_losses(self) -> list[LossSpec]:
        return [LossSpec("good_loss", lambda p: None, summary="fine")]


def _manual_registry(*plugins: object) -> Registry:
    manager = PluginManager(disabled=set())
    for i, plugin in enumerate(plugins):
        manager.register(
            plugin, PluginInfo(name=f"p{i}", module=f"mod{i}", distribution="d", version="1")
        )
    return Registry(manager)


@pytest.mark.parametrize(
    ("plugin", "error"),
    [
        (_Misspelt(), "ValueError: implements unknown hook(s) qp_register_loss"),
        (_Raises(), "RuntimeError: cannot build the list"),
        (_WrongRecord(), "TypeError: qp_register_losses returned str, expected LossSpec records"),
    ],
)
def test_malformed_plugins_are_broken_not_fatal(plugin: object, error: str) -> None:
    registry = _manual_registry(plugin, _Good())
    statuses = {p.name: (p.status, p.error) for p in registry.plugins}
    assert statuses["p0"] == ("broken", error)
    assert statuses["p1"] == ("ok", None)
    assert registry.names("loss") == ["good_loss"]


def test_spec_records_reject_bad_names_and_params() -> None:
    with pytest.raises(ValueError, match=r"must match \[a-z\]"):
        LossSpec("Focal", lambda p: None)
    with pytest.raises(TypeError, match=r"subclass of qpcore\.Params"):
        LossSpec("focal", lambda p: None, params=dict)  # type: ignore[arg-type]

    class NotScheduler(Params):
        x: int = 1

    from qpcore import SchedulerSpec

    with pytest.raises(TypeError, match="SchedulerParams"):
        SchedulerSpec("sched", lambda *a: None, params=NotScheduler)


def test_lazy_factories_check_their_module_now_and_import_it_when_called() -> None:
    from qpcore.specs import LazyFactory, lazy

    with pytest.raises(ValueError, match=r"package\.module:attribute"):
        lazy("qp_losses.pointwise.MSELoss")
    with pytest.raises(ValueError, match="no module"):
        lazy("qp_losses.pointwize:MSELoss")
    factory = lazy("qp_losses.pointwise:MSELoss")
    assert isinstance(factory, LazyFactory)
    assert type(LossSpec("mse", factory).build(Params())).__name__ == "MSELoss"


def test_every_lazy_builtin_factory_points_at_something_callable() -> None:
    """``lazy`` checks a target's module at registration but not its attribute:
    a misspelt class name would only fail when a run builds the component."""
    from qpcore.specs import LazyFactory

    registry = Registry.from_entrypoints(disabled=set())
    builtins = [e.spec for e in registry.entries() if e.plugin.distribution == "qpcore"]
    targets = [
        getattr(spec.factory, "func", spec.factory)  # partial(lazy(...), arch) too
        for spec in builtins
    ]
    assert any(isinstance(t, LazyFactory) for t in targets)
    for spec, target in zip(builtins, targets, strict=True):
        if isinstance(target, LazyFactory):
            assert callable(target.load()), spec.name


def test_testing_fixture_honours_the_disable_variable(
    monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    monkeypatch.setenv("QP_DISABLE_PLUGINS", "qp_schedulers")
    registry: Registry = request.getfixturevalue("qp_registry")
    assert registry.names("scheduler") == []
    assert "adam" in registry.names("optimizer")


def test_same_entry_point_name_in_two_distributions(
    tmp_path: Path, on_path: Callable[[Path], None]
) -> None:
    # Entry-point names are unique per distribution only: a third party may also
    # call its entry point "qp_losses" without touching the built-in one.
    on_path(
        make_distribution(
            tmp_path, "qp-same", "1.0", {"qp_same_mod": FOCAL_PLUGIN}, {"qp_losses": "qp_same_mod"}
        )
    )
    registry = Registry.from_entrypoints(disabled=set())
    assert [p.status for p in registry.plugins if p.name == "qp_losses"] == ["ok", "ok"]
    problems = "\n".join(registry.problems())
    assert "Duplicate loss 'focal'" in problems
    assert "QP_DISABLE_PLUGINS=qpcore:qp_losses" in problems  # not the ambiguous qp_losses
    assert "QP_DISABLE_PLUGINS=qp-same" in problems
    fixed = Registry.from_entrypoints(disabled={"qp-same"})
    assert fixed.problems() == []
    assert "mse" in fixed.names("loss")


def test_unmatched_disable_names_are_reported() -> None:
    registry = Registry.from_entrypoints(disabled={"qp_lossez", "qp_losses"})
    assert registry.manager.unmatched_disabled() == ["qp-lossez"]


def test_a_clash_fails_the_plugin_authors_pytest_run(
    tmp_path: Path, on_path: Callable[[Path], None]
) -> None:
    """qpcore's pytest plugin refuses to run tests in an environment qp refuses."""
    import os
    import subprocess
    import sys

    on_path(
        make_distribution(
            tmp_path / "site",
            "qp-extra",
            "2.3.1",
            {"qp_extra_losses": FOCAL_PLUGIN},
            {"qp_extra_losses": "qp_extra_losses"},
        )
    )
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_mine.py").write_text("def test_mine():\n    pass\n")
    env = {k: v for k, v in os.environ.items() if k != "QP_DISABLE_PLUGINS"}

    def pytest_run(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args]
        return subprocess.run(
            command, cwd=tmp_path / "tests", capture_output=True, text=True, env=env
        )

    refused = pytest_run()
    assert refused.returncode == 4, refused.stdout + refused.stderr
    said = refused.stdout + refused.stderr
    assert "Duplicate loss 'focal' provided by:" in said
    assert "qp-extra 2.3.1 (qp_extra_losses)" in said and "qpcore" in said
    allowed = pytest_run("--qp-allow-plugin-problems")
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr
