"""The plugin's own tests, using the checks qpcore offers plugin authors."""

import math

import pytest
import torch

from qpcore.registry import Registry
from qpcore.testing import assert_loss_conforms


def test_registered_and_conforms(qp_registry: Registry) -> None:
    spec = qp_registry.get("loss", "log_cosh")
    assert_loss_conforms(spec)


def test_value_is_log_cosh(qp_registry: Registry) -> None:
    spec = qp_registry.get("loss", "log_cosh")
    loss = spec.factory(spec.params(scale=2.0))
    pred, target = torch.tensor([0.5, 0.1]), torch.tensor([0.2, 0.9])
    expected = sum(math.log(math.cosh(2.0 * (p - t))) for p, t in [(0.5, 0.2), (0.1, 0.9)]) / 2 / 4
    assert loss(pred, target).item() == pytest.approx(expected, rel=1e-6)
