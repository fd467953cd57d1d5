"""The big-M encoding (encodings/milp.py), the HiGHS backend and verify's plumbing."""

from __future__ import annotations

import time

import numpy as np
import pytest

from exactverify.bounds.crown import compute_bounds, interval_bounds
from exactverify.encodings.milp import SMALL_ENTRY, build_milp
from exactverify.core.network import Affine, MaxGroups, Network, ReLU
from exactverify.core.property import Case, OutputConstraint, Property
from exactverify.solvers import solve
from exactverify.testing import VERDICT_TIMEOUT, box_property, random_network
from exactverify.core.property import robustness_property
from exactverify.search.verifier import verify


def _case(lo, hi, A=None, b=None, n_out=2):
    A = np.eye(n_out)[:1] if A is None else np.atleast_2d(A)
    b = np.zeros(len(A)) if b is None else np.atleast_1d(b)
    return Case(np.asarray(lo, float), np.asarray(hi, float), [OutputConstraint(A, b)])


def _evaluate(net, lb, case, x):
    """The MILP's output values with the inputs fixed to x (and the violation unbounded above)."""
    model = build_milp(net, lb, case, case.disjuncts[0]).with_violation_bound(1e9)
    model.col_lower = model.col_lower.copy()
    model.col_upper = model.col_upper.copy()
    model.col_lower[model.input_cols] = x
    model.col_upper[model.input_cols] = x
    res = solve(model, time_limit=VERDICT_TIMEOUT)
    assert res.status == "optimal", res
    return model.output_values(res.x), model, res


# ------------------------------------------------------------------ the encoding


@pytest.mark.parametrize("seed", range(4))
def test_fixed_input_gives_network_output(seed):
    net = random_network([3, 6, 5, 2], seed=seed, output_relu=seed % 2 == 1)
    lo, hi = -np.ones(3), np.ones(3)
    case = _case(lo, hi)
    lb = compute_bounds(net, lo, hi, "interval")
    rng = np.random.default_rng(seed)
    for x in rng.uniform(lo, hi, (5, 3)):
        y, _, _ = _evaluate(net, lb, case, x)
        assert np.allclose(y, net.forward(x), atol=1e-7), (y, net.forward(x))


def test_stable_relus_get_no_binary():
    # pre-activations: x0 + 2 (always active), x0 - 2 (always inactive), x0 (unstable), -x1 (unstable)
    w = np.array([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [0.0, -1.0]])
    net = Network([Affine(w, np.array([2.0, -2.0, 0.0, 0.0])), ReLU(4), Affine(np.ones((1, 4)), np.zeros(1))])
    lo, hi = -np.ones(2), np.ones(2)
    case = _case(lo, hi, np.ones((1, 1)), [0.5], n_out=1)
    model = build_milp(net, interval_bounds(net, lo, hi), case, case.disjuncts[0])
    assert model.num_binaries == 2
    assert model.stats["relu_unstable"] == [2]
    binaries = [n for n, f in zip(model.col_names, model.integrality) if f]
    assert binaries == ["L1_a2", "L1_a3"]
    # the always-inactive neuron gets no output column, the active one reuses its input's:
    # x (2), z (4), y (2), a (2), the output (1) and s (1)
    assert model.num_cols == 12
    for x in ([0.3, -0.7], [-0.9, 0.2], [1.0, 1.0]):
        y, _, _ = _evaluate(net, interval_bounds(net, lo, hi), case, np.array(x))
        assert np.allclose(y, net.forward(np.array(x)), atol=1e-9)


def test_nearly_stable_relu_is_relaxed_not_branched():
    # x0 + 1 - 1e-8 on [-1, 1]: lower bound -1e-8, too small a big-M to branch on
    net = Network([Affine(np.array([[1.0]]), np.array([1.0 - 1e-8])), ReLU(1), Affine(np.array([[1.0]]), np.zeros(1))])
    case = _case([-1.0], [1.0], np.ones((1, 1)), [-1.0], n_out=1)
    model = build_milp(net, interval_bounds(net, case.lower, case.upper), case, case.disjuncts[0])
    assert model.num_binaries == 0 and model.stats["relu_relaxed"] == [1]
    assert verify(net, Property(1, 1, [case]), timeout=VERDICT_TIMEOUT).status == "unsat"


def test_tiny_weights_widen_rows_instead_of_vanishing():
    net = Network([Affine(np.array([[1.0, 1e-12], [0.5, -1.0]]), np.array([0.1, 0.0])), ReLU(2),
                   Affine(np.array([[1.0, 1.0]]), np.zeros(1))])
    lo, hi = -np.ones(2), np.ones(2)
    case = _case(lo, hi, np.ones((1, 1)), [0.0], n_out=1)
    lb = interval_bounds(net, lo, hi)
    model = build_milp(net, lb, case, case.disjuncts[0])
    assert np.all(np.abs(model.A.data) >= SMALL_ENTRY)
    assert model.stats["tiny_entries_relaxed"] == 1
    row = model.row_names.index("L0_aff_0")
    assert model.row_upper[row] - model.row_lower[row] >= 2e-12  # widened by the dropped term's reach
    y, _, _ = _evaluate(net, lb, case, np.array([0.25, -0.5]))
    assert abs(y[0] - net.forward(np.array([0.25, -0.5]))[0]) < 1e-9


def test_input_constraints_are_rows():
    net = random_network([2, 4, 1], seed=3)
    lo, hi = -np.ones(2), np.ones(2)
    case = _case(lo, hi, np.ones((1, 1)), [100.0], n_out=1)
    case.input_A, case.input_b = np.array([[1.0, 1.0]]), np.array([-1.5])
    model = build_milp(net, interval_bounds(net, lo, hi), case, case.disjuncts[0])
    model.objective = np.zeros(model.num_cols)
    model.objective[model.input_cols] = -1.0  # maximise x0 + x1: the input row must stop it at -1.5
    res = solve(model, time_limit=VERDICT_TIMEOUT)
    assert res.status == "optimal" and abs(res.objective - 1.5) < 1e-7


def _maxpool_net(seed, relu_first):
    rng = np.random.default_rng(seed)
    groups = np.array([[0, 1, -1], [2, 3, 4], [5, 6, 7], [1, 7, -1]])  # padded, and overlapping
    layers = [Affine(rng.standard_normal((8, 3)), 0.3 * rng.standard_normal(8))]
    if relu_first:
        layers.append(ReLU(8))
    layers += [MaxGroups(groups, 8), Affine(rng.standard_normal((2, 4)), rng.standard_normal(2))]
    return Network(layers)


@pytest.mark.parametrize("seed,relu_first", [(0, True), (1, False), (2, True), (3, False)])
def test_maxgroups_against_forward(seed, relu_first):
    net = _maxpool_net(seed, relu_first)
    lo, hi = -np.ones(3), np.ones(3)
    case = _case(lo, hi)
    lb = interval_bounds(net, lo, hi)
    for x in np.random.default_rng(seed).uniform(lo, hi, (6, 3)):
        y, _, _ = _evaluate(net, lb, case, x)
        assert np.allclose(y, net.forward(x), atol=1e-7)


def test_maxgroups_drops_members_that_are_never_the_max():
    # member 0 is in [-3, -1], member 1 in [0, 2]: member 0 can never be the max, so no binary is needed
    net = Network([Affine(np.array([[1.0], [1.0]]), np.array([-2.0, 1.0])), MaxGroups(np.array([[0, 1]]), 2)])
    case = _case([-1.0], [1.0], np.ones((1, 1)), [0.5], n_out=1)
    model = build_milp(net, interval_bounds(net, case.lower, case.upper), case, case.disjuncts[0])
    assert model.num_binaries == 0 and model.stats["max_dropped_members"] == [1]
    result = verify(net, Property(1, 1, [case]), timeout=VERDICT_TIMEOUT)
    assert result.status == "sat" and result.counterexample.x[0] <= -0.5


def test_fixed_integers_give_the_pattern_lp():
    net = random_network([2, 5, 2], seed=4)
    lo, hi = -np.ones(2), np.ones(2)
    case = _case(lo, hi)
    lb = interval_bounds(net, lo, hi)
    x = np.array([0.2, -0.4])
    _, model, res = _evaluate(net, lb, case, x)
    lp = model.with_fixed_integers(res.x)
    assert not lp.integrality.any()
    res2 = solve(lp, time_limit=VERDICT_TIMEOUT)
    assert res2.status == "optimal"
    assert np.allclose(lp.output_values(res2.x), net.forward(x), atol=1e-7)


# ------------------------------------------------------------------ verify


def test_verify_unsat_sat_and_rechecks_on_the_original_network():
    # two affine maps in a row: the simplified network fuses them, the re-check uses the original
    rng = np.random.default_rng(5)
    net = Network([Affine(rng.standard_normal((4, 3)), rng.standard_normal(4)),
                   Affine(rng.standard_normal((6, 4)), rng.standard_normal(6)), ReLU(6),
                   Affine(rng.standard_normal((2, 6)), rng.standard_normal(2))], source="fused")
    lo, hi = -np.ones(3), np.ones(3)
    ys = net.forward(np.random.default_rng(0).uniform(lo, hi, (2000, 3)))
    top = ys[:, 0].max()
    sat = verify(net, box_property(lo, hi, [(np.array([[-1.0, 0.0]]), [-(top - 0.01)])]), timeout=VERDICT_TIMEOUT)
    assert sat.status == "sat"
    x = np.asarray(sat.counterexample.x)
    assert net.forward(x)[0] >= top - 0.01
    assert sat.network == "fused"
    bound = compute_bounds(net.simplified(), lo, hi, "interval").upper[-1][0]
    unsat = verify(net, box_property(lo, hi, [(np.array([[-1.0, 0.0]]), [-(bound + 1.0)])]), timeout=VERDICT_TIMEOUT)
    assert unsat.status == "unsat" and "bounds" in unsat.reason


def test_interval_bounds_option_and_result_fields():
    net = random_network([3, 10, 10, 3], seed=2)
    prop = robustness_property(np.zeros(3), 0.5, 0, 3)
    r = verify(net, prop, timeout=VERDICT_TIMEOUT, bounds="interval", attack_time=0.0)
    assert r.status == "unsat" and r.reason.startswith("every disjunct refuted")
    assert r.bounds["method"] == "interval" and len(r.bounds["unstable"][0]) == 2
    assert r.stats["milps"] >= 1 and r.stats["solver_calls"] >= 1
    assert set(r.timings) >= {"bounds", "attack", "milp"}
    assert r.as_dict()["status"] == "unsat"


def test_empty_disjunct_is_sat_anywhere():
    net = random_network([2, 3, 2], seed=0)
    prop = Property(2, 2, [Case(-np.ones(2), np.ones(2), [OutputConstraint(np.zeros((0, 2)), np.zeros(0))])])
    assert verify(net, prop, timeout=VERDICT_TIMEOUT).status == "sat"


@pytest.mark.parametrize("n_in", [20, 12])  # ReLU splitting, then one MILP over the whole box; input splitting
def test_timeout_is_respected(n_in):
    """A TIMING test: its point is that verify returns "timeout" about when its time limit runs out.
    The slack, max(5 s, 50% of the limit), is for a slow or loaded machine; a hang still fails."""
    net = random_network([n_in, 120, 120, 120, 5], seed=11)
    lo, hi = -np.ones(n_in), np.ones(n_in)
    simple = net.simplified()
    crown_lo = compute_bounds(simple, lo, hi, "crown").lower[-1][0]
    sampled = net.forward(np.random.default_rng(0).uniform(lo, hi, (2000, n_in)))[:, 0].min()
    # y0 <= b with b between the bound and the sampled minimum: only a long search can decide it
    # (ReLU splitting refutes b halfway between them in under a second for n_in = 20)
    b = crown_lo + 0.9 * (sampled - crown_lo)
    prop = box_property(lo, hi, [(np.eye(5)[:1], [b])])
    for timeout in (0.5, 2.0):
        t = time.perf_counter()
        r = verify(net, prop, timeout=timeout)
        elapsed = time.perf_counter() - t
        assert r.status == "timeout", r
        assert elapsed <= timeout + max(5.0, 0.5 * timeout), elapsed


def test_maxgroups_with_members_that_are_identically_zero():
    # neurons 1 and 2 are always inactive: their ReLU outputs have no column, and the max must still see 0
    w = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
    net = Network([Affine(w, np.array([0.0, -5.0, -5.0, 0.0])), ReLU(4),
                   MaxGroups(np.array([[0, 1], [1, 2], [2, 3]]), 4), Affine(np.array([[1.0, 2.0, -1.0]]), np.zeros(1))])
    lo, hi = -np.ones(2), np.ones(2)
    case = _case(lo, hi, np.ones((1, 1)), [0.0], n_out=1)
    lb = interval_bounds(net, lo, hi)
    for x in ([0.5, 0.5], [-0.5, -0.5], [0.2, -0.9], [-1.0, 1.0]):
        y, model, _ = _evaluate(net, lb, case, np.array(x))
        assert abs(y[0] - net.forward(np.array(x))[0]) < 1e-9
    assert model.output_cols[0] >= 0


def _abs_net():
    """y = relu(x) + relu(-x) = |x| on one input."""
    return Network([Affine(np.array([[1.0], [-1.0]]), np.zeros(2)), ReLU(2), Affine(np.ones((1, 2)), np.zeros(1))])


def test_violation_exactly_zero_is_a_counterexample():
    # |x| >= 1 on [-1, 1]: met with equality at x = +-1, and the constraints are non-strict
    prop = box_property([-1.0], [1.0], [(np.array([[-1.0]]), [-1.0])])
    r = verify(_abs_net(), prop, timeout=VERDICT_TIMEOUT)
    assert r.status == "sat" and abs(r.counterexample.x[0]) == 1.0


def _clamp_net():
    """y = relu(x) - relu(x - 0.5): x clamped to [0, 0.5]; both interval and CROWN bounds put y <= 1."""
    return Network([Affine(np.array([[1.0], [1.0]]), np.array([0.0, -0.5])), ReLU(2),
                    Affine(np.array([[1.0, -1.0]]), np.zeros(1))])


def test_knife_edge_is_unknown_never_a_verdict():
    # y >= 0.5 + 1e-9: truly unsat, but by less than the proof margin; the bounds cannot refute it,
    # so the MILP decides, and it must claim neither verdict
    prop = box_property([-1.0], [1.0], [(np.array([[-1.0]]), [-(0.5 + 1e-9)])])
    r = verify(_clamp_net(), prop, timeout=VERDICT_TIMEOUT)
    assert r.status == "unknown" and "proof margin" in r.reason
    # with a margin well above the tolerance the same MILP proves it
    prop = box_property([-1.0], [1.0], [(np.array([[-1.0]]), [-(0.5 + 1e-3)])])
    r = verify(_clamp_net(), prop, timeout=VERDICT_TIMEOUT)
    assert r.status == "unsat" and "MILP" in r.reason


def test_polish_recovers_a_counterexample_from_a_bad_candidate(monkeypatch):
    import exactverify.search.verifier as verifier
    from exactverify.search.control import Clock
    from exactverify.search.verifier import _Run

    # the polish is bounded by its work (three candidates, one LP and a few descent steps each): its
    # 0.5 s cap must not decide this test on a loaded machine
    monkeypatch.setattr(verifier, "_POLISH_SECONDS", VERDICT_TIMEOUT)

    net = random_network([2, 6, 1], seed=8)
    lo, hi = -np.ones(2), np.ones(2)
    ys = net.forward(np.random.default_rng(1).uniform(lo, hi, (4000, 2)))[:, 0]
    prop = box_property(lo, hi, [(np.array([[1.0]]), [np.quantile(ys, 0.01)])])  # a small sat region
    run = _Run(net, verifier.bounded_form(net), prop, Clock(VERDICT_TIMEOUT), "interval", "highs", 0)
    run.bound_cases()
    model = build_milp(run.net, run.case_bounds[0], prop.cases[0], prop.cases[0].disjuncts[0])
    res = solve(model, time_limit=VERDICT_TIMEOUT)
    assert res.status == "optimal" and res.objective < 0
    bad = res.x.copy()
    bad[model.input_cols] = (lo + hi) / 2  # right activation pattern, wrong point
    assert prop.cases[0].disjuncts[0].violation(net.forward(model.input_values(bad))) > 0
    ce = run._polish(model, 0, 0, [bad])
    assert ce is not None and prop.satisfied_by(np.array(ce.x), net.forward(np.array(ce.x)))


def test_highs_banner_never_reaches_stdout():
    """The CLI's first stdout line is the verdict: HiGHS' banner (printed on the first Highs()) must not precede it."""
    import subprocess
    import sys
    code = "from exactverify.solvers.highs import new_highs\nnew_highs(); new_highs()\nprint('verdict')"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "verdict\n"
