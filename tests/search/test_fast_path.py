"""The one-pass Lipschitz certificate as the verifier's first stage."""

import numpy as np
import pytest
from pathlib import Path

import exactverify.search.verifier as verifier
from exactverify import load_network, verify
from exactverify.core.property import robustness_property
from exactverify.testing import VERDICT_TIMEOUT, random_network

REPO = Path(__file__).resolve().parents[2]



def test_gloro_digits_point_is_answered_by_the_certificate_without_bounds_or_milp():
    net = load_network(REPO / "examples" / "digits_gloro.onnx")
    data = np.load(REPO / "examples" / "digits_gloro_test.npz")
    x = data["x"][0]
    label = int(net.forward(x).argmax())
    result = verify(net, robustness_property(x, 0.01, label, net.output_size, (0.0, 1.0)), timeout=VERDICT_TIMEOUT)
    assert result.status == "unsat"
    assert "Lipschitz" in result.reason
    assert result.stats["milps"] == 0 and result.timings["bounds"] == 0.0


@pytest.mark.parametrize("seed", range(8))
def test_certificate_refutations_agree_with_the_full_pipeline(seed, monkeypatch):
    rng = np.random.default_rng(seed)
    net = random_network([4, 10, 10, 3], seed=seed)
    x = rng.uniform(-1, 1, 4)
    label = int(net.forward(x).argmax())
    for eps in (1e-3, 1e-2, 5e-2, 0.2):
        prop = robustness_property(x, eps, label, 3)
        fast = verify(net, prop, timeout=VERDICT_TIMEOUT)
        with monkeypatch.context() as m:
            m.setattr(verifier, "_LIPSCHITZ_MAX_WEIGHTS", -1)  # the check off
            full = verify(net, prop, timeout=VERDICT_TIMEOUT)
        if "Lipschitz" in fast.reason:
            assert full.status == "unsat", (seed, eps)
        assert fast.status == full.status or "timeout" in (fast.status, full.status)
