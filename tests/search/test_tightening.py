"""Progressive bound tightening: every stage sound, each never looser than the one before."""

import numpy as np
import pytest

from exactverify.bounds.crown import crown_bounds
from exactverify.testing import random_network
from exactverify.search.tightening import STAGES, TighteningReport, _Solver, tightened_bounds


def _layer_values(net, xs):
    out, h = [], xs
    for layer in net.layers:
        h = layer.apply(h)
        out.append(h)
    return out


@pytest.mark.parametrize("seed", range(6))
def test_every_stage_contains_sampled_points_and_tightens_monotonically(seed):
    rng = np.random.default_rng(seed)
    net = random_network([4, 12, 12, 10, 3], seed=seed)
    x0 = rng.standard_normal(4)
    lo, hi = x0 - 0.4, x0 + 0.4
    report = TighteningReport()
    lbs = {s: tightened_bounds(net, lo, hi, s, report=report if s == "milp" else None) for s in STAGES}
    values = _layer_values(net, lo + rng.random((3000, 4)) * (hi - lo))
    for s, lb in lbs.items():
        for k, v in enumerate(values):
            assert np.all(v >= lb.lower[k]) and np.all(v <= lb.upper[k]), (s, k)
    chain = ("interval", "crown", "lp", "milp")  # each stage runs the ones before
    # krelu is lp with facets: only unstable neurons get LPs, so a neuron that tighter bounds below made
    # stable keeps its CROWN bound; what must not grow is the number of unstable ReLUs
    assert sum(lbs["krelu"].unstable_counts(net)) <= sum(lbs["lp"].unstable_counts(net))
    for looser, tighter in zip(chain, chain[1:]):
        for k in range(len(net.layers)):
            assert np.all(lbs[tighter].lower[k] >= lbs[looser].lower[k] - 1e-9), (tighter, k)
            assert np.all(lbs[tighter].upper[k] <= lbs[looser].upper[k] + 1e-9), (tighter, k)
    assert [st["stage"] for st in report.stages] == list(chain)
    unstable = [sum(st["unstable"]) for st in report.stages]
    assert unstable == sorted(unstable, reverse=True)


def test_milp_tightening_stabilises_neurons_that_crown_cannot():
    """On a random net, exact per-neuron MILP bounds make some CROWN-unstable ReLU stable."""
    gained = 0
    for seed in (0, 4):
        net = random_network([3, 12, 12, 2], seed=seed)
        lo, hi = -np.ones(3), np.ones(3)
        crown = sum(tightened_bounds(net, lo, hi, "crown").unstable_counts(net))
        milp = sum(tightened_bounds(net, lo, hi, "milp").unstable_counts(net))
        assert milp <= crown
        gained += crown - milp
    assert gained > 0


def test_lp_bound_is_sound_whatever_the_multipliers():
    """The weak-duality bound holds for any multipliers: scrambled duals give a looser bound, never a wrong one."""
    net = random_network([3, 8, 8, 2], seed=3)
    lo, hi = -np.ones(3), np.ones(3)
    lb = crown_bounds(net, lo, hi)
    k = 2
    rng = np.random.default_rng(0)
    values = _layer_values(net, lo + rng.random((5000, 3)) * (hi - lo))[k]
    from exactverify.encodings.milp import build_milp
    from exactverify.bounds.layer_bounds import LayerBounds
    from exactverify.core.network import Network
    from exactverify.core.property import Case, OutputConstraint
    prefix = Network(net.layers[:k + 1], input_shape=(1, 3), output_shape=(1, 8))
    empty = OutputConstraint(np.zeros((0, 8)), np.zeros(0))
    model = build_milp(prefix, LayerBounds(lo, hi, lb.lower[:k + 1], lb.upper[:k + 1]), Case(lo, hi, [empty]), empty)
    model.integrality[:] = False
    solver = _Solver(model, integer=False)
    for j in range(8):
        col = int(model.output_cols[j])
        best = solver.lower_bound(col, 1.0, 5.0)
        assert best <= values[:, j].min()
        c = np.zeros(model.num_cols)
        c[col] = 1.0
        for _ in range(5):
            lam = rng.standard_normal(model.num_rows) * 3
            assert solver._dual_bound(c, lam) <= values[:, j].min()
        # the solver's own duals are nearly the LP optimum: well below the sampled minimum is fine, above never
        assert best >= lb.lower[k][j] - 1e-6 or best <= values[:, j].min()


def test_unknown_stage_is_rejected():
    net = random_network([2, 3, 2], seed=0)
    with pytest.raises(ValueError, match="tightening"):
        tightened_bounds(net, -np.ones(2), np.ones(2), "exact")


def test_deadline_returns_the_sound_bounds_so_far():
    import time
    net = random_network([3, 16, 16, 2], seed=1)
    lo, hi = -np.ones(3), np.ones(3)
    report = TighteningReport()
    lb = tightened_bounds(net, lo, hi, "milp", deadline=time.perf_counter() - 1, report=report)
    crown = tightened_bounds(net, lo, hi, "crown")
    assert all(np.array_equal(a, b) for a, b in zip(lb.lower, crown.lower))
    assert report.stages[-1]["solves"] == 0
