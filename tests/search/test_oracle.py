"""`verify` against a brute-force oracle on tiny random networks.

The oracle (exactverify.testing) shares no code with the verifier: it
enumerates the linear regions of the network over the input region (a
depth-first search over activation patterns, one neuron at a time, splitting a
region only where an LP shows the neuron takes both signs on it), and on each
region the network is one affine map, so the smallest violation
max_i (A_i y - b_i) is one LP. The minimum over the regions is the exact
minimum violation s*: the property is sat iff s* <= 0.

Properties are built so that nothing sits on the knife's edge: after computing
s* for a random threshold, every disjunct's b is shifted so that its s* becomes
+-delta with delta >> the solvers' tolerances; small deltas make the
counterexamples rare enough that the MILP, not the sampling, has to find them.
"""

from __future__ import annotations

import numpy as np
import pytest

from exactverify.core.property import Case
from exactverify.search.verifier import verify
from exactverify.testing import VERDICT_TIMEOUT, linear_regions, make_instance, min_violation, random_network

SEEDS = range(66)
SPLIT_SEEDS = range(100, 130)


def _counterexample_is_real(net, prop, ce):
    x = np.asarray(ce.x)
    assert prop.satisfied_by(x, net.forward(x))
    assert prop.satisfied_by(x, net.forward32(x).astype(np.float64))
    assert np.all(x.astype(np.float32).astype(np.float64) == x)


def test_oracle_regions_cover_samples():
    """The oracle's regions agree with the forward pass, and its minimum is below every sampled violation."""
    rng = np.random.default_rng(7)
    for seed in range(5):
        net = random_network([3, 5, 4, 2], seed=seed)
        case = Case(-np.ones(3), np.ones(3), [])
        regions = linear_regions(net, case)
        xs = rng.uniform(-1, 1, (200, 3))
        ys = net.forward(xs)
        for x, y in zip(xs, ys):
            inside = [M @ x + c for G, h, M, c in regions if np.all(G @ x <= h + 1e-12)]
            assert inside and all(np.allclose(v, y, atol=1e-9) for v in inside)
        A, b = np.array([[1.0, -1.0]]), np.array([0.0])
        s_star, x_star = min_violation(regions, case, A, b)
        assert s_star <= np.min(ys @ A.T - b) + 1e-9
        assert abs(np.max(A @ net.forward(x_star) - b) - s_star) < 1e-7


@pytest.fixture(scope="module")
def oracle_results():
    out = []
    for seed in SEEDS:
        net, prop, expected, margins = make_instance(seed)
        # every third instance without the gradient attack (the others get 1 s of it), so the MILP has
        # to find the counterexamples
        result = verify(net, prop, timeout=VERDICT_TIMEOUT, attack_time=0.0 if seed % 3 == 0 else 1.0, seed=seed)
        out.append((seed, net, prop, expected, margins, result))
    return out


@pytest.fixture(scope="module")
def split_results():
    """The same kind of instances with input splitting forced down to tiny leaves, and alpha-CROWN
    bounds on every box from the fifth generation on."""
    import exactverify.search.input_split as input_split
    import exactverify.search.verifier as verify_mod

    out = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(verify_mod, "_LEAF_BINARIES", 1)
        mp.setattr(input_split, "_INPUT_LEAF_BINARIES", 1)
        mp.setattr(input_split, "_ALPHA_UNSTABLE", 10**6)
        mp.setattr(input_split, "_ALPHA_AFTER", 5)
        for seed in SPLIT_SEEDS:
            net, prop, expected, margins = make_instance(seed)
            result = verify(net, prop, timeout=VERDICT_TIMEOUT, attack_time=0.0, seed=seed)
            out.append((seed, net, prop, expected, margins, result))
    return out


def _mismatches(results):
    mismatches = []
    for seed, net, prop, expected, margins, result in results:
        if result.status == "sat":
            assert result.counterexample is not None
            _counterexample_is_real(net, prop, result.counterexample)
        if result.status != expected:
            mismatches.append((seed, expected, result.status, result.reason, margins))
    return mismatches


def test_verify_agrees_with_oracle(oracle_results):
    assert not _mismatches(oracle_results)


def test_input_splitting_agrees_with_oracle(split_results):
    assert not _mismatches(split_results)
    reasons = [r[5].reason for r in split_results]
    assert sum("input splitting" in s for s in reasons) >= 10
    assert all(r[5].status != "unknown" for r in split_results)
    assert sum(r[5].stats.get("alpha_boxes", 0) > 0 for r in split_results) >= 5


def test_oracle_set_is_balanced(oracle_results):
    """Both verdicts occur, some sats come from the MILP and some unsats from a MILP proof."""
    expected = [r[3] for r in oracle_results]
    assert expected.count("sat") >= 15 and expected.count("unsat") >= 15
    reasons = [r[5].reason for r in oracle_results]
    assert sum("milp" in s for s in reasons if s.startswith("counterexample")) >= 3
    assert sum("MILP infeasible" in s for s in reasons) >= 10
    assert all(r[5].status != "unknown" for r in oracle_results)
