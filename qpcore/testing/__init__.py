"""Test helpers for plugin authors, loaded by pytest as the ``qpcore`` plugin.

The ``pytest11`` entry point loads this package in every pytest session of an
environment where qpcore is installed, so nothing here imports torch (or any
other heavy module) at import time: the checks import what they need.

One conformance check per component kind, each ``assert_<kind>_conforms(spec,
params=None, **context)``: it builds the component from its registration
record as qpcore would and raises :class:`AssertionError` naming the kind, the
component and the broken rule. The rules are those the trainer, the feature
cache, the labeller and the report rely on; see each check's docstring and
``docs/plugins.md``.

Example:
    >>> from qpcore.testing import assert_loss_conforms
    >>> from my_plugin import qp_register_losses
    >>> for spec in qp_register_losses():  # doctest: +SKIP
    ...     assert_loss_conforms(spec)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from qpcore.testing.backbones import assert_backbone_conforms
from qpcore.testing.datasets import assert_dataset_conforms
from qpcore.testing.evaluators import assert_evaluator_conforms
from qpcore.testing.executors import assert_executor_conforms
from qpcore.testing.losses import CONFORMANCE_BATCH, assert_loss_conforms
from qpcore.testing.monitors import KitRun, RecordingMonitor, assert_monitor_conforms
from qpcore.testing.optimizers import assert_optimizer_conforms
from qpcore.testing.schedulers import assert_scheduler_conforms

if TYPE_CHECKING:
    from qpcore.registry import Registry


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--qp-allow-plugin-problems",
        action="store_true",
        help="qpcore: run even when installed plugins clash or are broken "
        "(for tests that build such an environment on purpose).",
    )


def pytest_sessionstart(session: pytest.Session) -> None:
    """Fail the run when the environment's plugins clash or are broken.

    ``qp`` refuses to start for every user of such an environment, while the
    plugin's own tests would pass: a name clash only raises when the clashing name
    is looked up. So a plugin's CI fails here, naming both providers.
    """
    if session.config.getoption("qp_allow_plugin_problems", default=False):
        return
    from qpcore.registry import Registry

    problems = Registry.from_entrypoints().problems()
    if problems:
        raise pytest.UsageError(
            "qpcore: the installed plugins cannot be used together, so qp would refuse "
            "to start:\n" + "\n".join(problems) + "\n(pass --qp-allow-plugin-problems "
            "to run the tests anyway)"
        )


@pytest.fixture
def qp_registry() -> Registry:
    """The registry of what is installed, loaded afresh for each test.

    Honours ``QP_DISABLE_PLUGINS`` as the CLI does, so a test can set it with
    ``monkeypatch.setenv`` before asking for this fixture.
    """
    from qpcore.registry import Registry

    return Registry.from_entrypoints()


__all__ = [
    "CONFORMANCE_BATCH",
    "KitRun",
    "RecordingMonitor",
    "assert_backbone_conforms",
    "assert_dataset_conforms",
    "assert_evaluator_conforms",
    "assert_executor_conforms",
    "assert_loss_conforms",
    "assert_monitor_conforms",
    "assert_optimizer_conforms",
    "assert_scheduler_conforms",
]
