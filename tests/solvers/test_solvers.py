"""The three exact back ends (HiGHS, CBC through PuLP, Z3) agree, and each is sound on its own terms."""

from __future__ import annotations

import os
import tempfile
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from exactverify.bounds.crown import compute_bounds
from exactverify.core.check import check_point
from exactverify.encodings.milp import build_milp
from exactverify.encodings.smt import _lit, build_smt, parse_literal
from exactverify.core.property import Case
from exactverify.solvers import SOLVERS, solve
from exactverify.solvers.cbc import cbc_status, glpk_status, relaxed_for_text
from exactverify.testing import VERDICT_TIMEOUT, box_property, make_instance, random_network
from exactverify.core.property import robustness_property
from exactverify.search.verifier import verify

BACKENDS = ("highs", "cbc", "z3")


def threshold_instance(seed: int):
    """A random small network and a property whose answer needs the solver more often than not.

    Thresholds sit just below or just above the largest value a dense sample of
    the box reaches, so the sat region (if any) is thin and the bounds are not
    tight enough to refute: kind 0 is one row, kind 1 a conjunction of two
    rows, kind 2 a disjunction of two disjuncts.
    """
    rng = np.random.default_rng(1000 + seed)
    n_in = int(rng.integers(2, 4))
    net = random_network([n_in, int(rng.integers(4, 8)), int(rng.integers(3, 7)), 3], seed=seed)
    lo = rng.uniform(-1, 0, n_in)
    hi = lo + rng.uniform(0.3, 1.0, n_in)
    ys = net.forward(lo + rng.random((4000, n_in)) * (hi - lo))

    def row():
        a = rng.standard_normal(3)
        v = ys @ a
        return a, v.max() + rng.choice([-0.002, 0.002, 0.02]) * (v.max() - v.min())  # a.y >= t

    kind = seed % 3
    (a, t), (b, u) = row(), row()
    if kind == 0:
        ds = [(-a[None], [-t])]
    elif kind == 1:
        ds = [(np.vstack([-a, -b]), [-t, -u])]
    else:
        ds = [(-a[None], [-t]), (-b[None], [-u])]
    return net, box_property(lo, hi, ds), kind


def test_registry_names_the_three_backends():
    assert set(BACKENDS) <= set(SOLVERS)
    with pytest.raises(ValueError, match="unknown solver"):
        solve(None, "no-such-solver")


def test_differential_verify_on_random_networks():
    """>= 50 random networks, sat and unsat, conjunctive and disjunctive: the three back ends agree."""
    verdicts, solved_by_solver, kinds = [], 0, set()
    for seed in range(51):
        net, prop, kind = threshold_instance(seed)
        got = {}
        for solver in BACKENDS:
            r = verify(net, prop, timeout=VERDICT_TIMEOUT, solver=solver, attack_time=0)
            got[solver] = r.status
            if r.status == "sat":  # every sat re-checks on the network as given
                ce = r.counterexample
                assert check_point(net, prop, ce.x) is not None
                assert prop.satisfied_by(np.array(ce.x), net.forward(np.array(ce.x)))
            if solver == "highs" and r.stats["milps"] > 0:
                solved_by_solver += 1
        assert len(set(got.values())) == 1, (seed, got)
        assert got["highs"] in ("sat", "unsat"), (seed, got)
        verdicts.append(got["highs"])
        kinds.add((kind, got["highs"]))
    assert verdicts.count("sat") >= 10 and verdicts.count("unsat") >= 5, verdicts
    assert solved_by_solver >= 15  # the solvers, not only bounds and cheap points, decided many of them
    assert {k for k, _ in kinds} == {0, 1, 2}


def _disjunct_models(seed: int):
    net, prop, _ = threshold_instance(seed)
    case = prop.cases[0]
    sn = net.simplified()
    lb = compute_bounds(sn, case.lower, case.upper, "crown")
    for d in case.disjuncts:
        yield build_milp(sn, lb, case, d), build_smt(sn, lb, case, d)


@pytest.mark.parametrize("seed", range(0, 30, 3))
def test_backends_agree_on_each_disjunct(seed):
    """Below verify: the same query, HiGHS and CBC on the MILP, Z3 on the SMT encoding."""
    for milp, smt in _disjunct_models(seed):
        h = solve(milp, "highs", time_limit=VERDICT_TIMEOUT)
        c = solve(milp, "cbc", time_limit=VERDICT_TIMEOUT)
        z = solve(smt, "z3", time_limit=VERDICT_TIMEOUT)
        infeasible = {h.status == "infeasible", c.status == "infeasible", z.status == "infeasible"}
        assert len(infeasible) == 1, (h, c, z)
        if h.status == "optimal":
            assert c.status == "optimal" and abs(c.objective - h.objective) <= 1e-6 * max(1, abs(h.objective))
            assert z.status == "optimal" and z.objective <= milp.tolerance


def test_cbc_status_words_never_read_a_stop_as_a_proof():
    assert cbc_status("Optimal - objective value -0.5") == "optimal"
    assert cbc_status("Infeasible - objective value 0.1") == "infeasible"
    assert cbc_status("Integer infeasible - objective value -0.3") == "infeasible"
    for raw in ("Stopped on time - objective value -0.0039", "Stopped on time - objective value 1e+50"):
        assert cbc_status(raw) == "time_limit"
    for raw in ("Stopped on iterations - objective value 0", "Stopped on difficulties", "Unbounded",
                "Not Solved", "no solution file", "error: Pulp: Error while executing", ""):
        assert cbc_status(raw) == "unknown"
    assert glpk_status("INTEGER OPTIMAL") == "optimal"
    assert glpk_status("INTEGER EMPTY") == "infeasible"
    assert glpk_status("INTEGER NON-OPTIMAL", timed_out=True) == "time_limit"
    assert glpk_status("INTEGER NON-OPTIMAL") == "unknown"
    assert glpk_status("INTEGER UNDEFINED") == "unknown"


def _hard_model():
    net = random_network([10, 40, 40, 40, 3], seed=1)
    prop = robustness_property(np.zeros(10), 0.5, int(np.argmax(net.forward(np.zeros(10)))), 3)
    case = prop.cases[0]
    sn = net.simplified()
    lb = compute_bounds(sn, case.lower, case.upper, "crown")
    return build_milp(sn, lb, case, case.disjuncts[0]), build_smt(sn, lb, case, case.disjuncts[0])


def test_time_limits_are_time_limits_and_temp_files_are_removed():
    """A TIME-LIMIT test: its point is that a short limit stops CBC and Z3 with a "time_limit" status, never
    a made-up verdict, so its limits stay short (a slow machine only makes "time_limit" likelier)."""
    milp, smt = _hard_model()
    before = set(os.listdir(tempfile.gettempdir()))
    r = solve(milp, "cbc", time_limit=0.3)
    assert r.status in ("time_limit", "optimal"), r  # never infeasible: HiGHS finds violation < 0 here
    assert r.status != "infeasible"
    if r.x is not None:
        assert r.objective == pytest.approx(r.x[milp.violation_col])
    after = set(os.listdir(tempfile.gettempdir()))
    assert not [f for f in after - before if f.startswith("exactverify-pulp-")], after - before
    z = solve(smt, "z3", time_limit=0.01)
    assert z.status == "time_limit", z


def _milp_point(model, net, x, disjunct):
    """The MILP's columns at the network's own (float64) values for input x, by column name."""
    outs, h = [], np.asarray(x, dtype=np.float64)[None]
    for layer in net.layers:
        h = layer.apply(h)
        outs.append(h[0])
    y = outs[-1]
    pt = np.zeros(model.num_cols)
    for j, name in enumerate(model.col_names):
        if name == "s":
            pt[j] = max(float(np.max(disjunct.A @ y - disjunct.b)), model.col_lower[j])
        elif name.startswith("x"):
            pt[j] = x[int(name[1:])]
        else:
            layer, var = name.split("_")
            i, kind, k = int(layer[1:]), var[0], int(var[1:])
            pt[j] = float(outs[i - 1][k] > 0) if kind == "a" else outs[i][k]
    return pt


def test_pulp_model_is_relaxed_beyond_twelve_digit_rounding():
    """Real points stay feasible after PuLP writes the (relaxed) model's numbers with 12 digits."""
    net, prop, _ = threshold_instance(4)
    case = prop.cases[0]
    sn = net.simplified()
    lb = compute_bounds(sn, case.lower, case.upper, "crown")
    d = case.disjuncts[0]
    milp = build_milp(sn, lb, case, d).with_violation_bound(1e9)
    cl, cu, rl, ru = relaxed_for_text(milp)
    assert np.all(cl <= milp.col_lower) and np.all(cu >= milp.col_upper)
    assert np.all(rl <= milp.row_lower) and np.all(ru >= milp.row_upper)
    r12 = lambda v: np.array([float(f"{t:.12g}") for t in np.atleast_1d(v)])
    A12 = milp.A.copy()
    A12.data = r12(A12.data)
    rng = np.random.default_rng(0)
    for x in case.lower + rng.random((50, len(case.lower))) * (case.upper - case.lower):
        pt = _milp_point(milp, sn, x, d)
        assert np.all((r12(cl) <= pt) & (pt <= r12(cu)))
        act = A12 @ pt
        assert np.all(~np.isfinite(rl) | (act >= r12(rl))) and np.all(~np.isfinite(ru) | (act <= r12(ru)))


def test_smt_literals_are_exact():
    rng = np.random.default_rng(0)
    vals = list(rng.standard_normal(50) * 10.0 ** rng.integers(-30, 30, 50)) + [0.0, -0.0, 1.0, -3.0, 5e-324, 0.1]
    for v in vals:
        assert parse_literal(_lit(v)) == Fraction(float(v))
    assert parse_literal(_lit(np.float32(0.1).item())) == Fraction(float(np.float32(0.1)))


def test_smt_encoding_computes_the_network_exactly():
    """Inputs fixed to a dyadic point: Z3's outputs equal the network evaluated in exact rationals."""
    import z3

    net = random_network([3, 6, 5, 2], seed=7)
    x = np.array([0.25, -0.5, 0.125])
    case = Case(x.copy(), x.copy(), [])
    sn = net.simplified()
    lb = compute_bounds(sn, x, x, "interval")
    empty = type("D", (), {"A": np.zeros((0, 2)), "b": np.zeros(0)})()
    model = build_smt(sn, lb, case, empty)
    s = z3.Solver()
    s.add(z3.parse_smt2_string(model.to_smtlib2()))
    assert s.check() == z3.sat
    exact = [Fraction(float(v)) for v in x]
    for layer in sn.layers:
        if hasattr(layer, "weight"):
            W = np.asarray(layer.dense_weight())
            exact = [sum((Fraction(float(W[j, k])) * exact[k] for k in range(W.shape[1])), Fraction(0))
                     + Fraction(float(layer.bias[j])) for j in range(W.shape[0])]
        else:
            exact = [max(v, Fraction(0)) for v in exact]
    got = [s.model().eval(z3.Real(model.names[i]), model_completion=True) for i in model.output_idx]
    assert [Fraction(g.numerator_as_long(), g.denominator_as_long()) for g in got] == exact


def test_cli_verify_accepts_each_solver(capsys):
    from exactverify.cli.app import main

    ex = Path(__file__).resolve().parents[2] / "examples"
    net = str(ex / "toy_spirals.onnx")
    for solver in BACKENDS:
        assert main(["verify", net, str(ex / "toy_eps0.15.vnnlib"), "--solver", solver]) == 0
        assert capsys.readouterr().out.splitlines()[0] == "sat"
        assert main(["verify", net, str(ex / "toy_eps0.05.vnnlib"), "--solver", solver]) == 0
        assert capsys.readouterr().out.splitlines()[0] == "unsat"


def test_z3_with_little_time_left_does_not_crash():
    """`_solve` skips large MILPs when under 0.5 s is left; an SMT model has no matrix to measure."""
    net, prop, expected, _ = make_instance(4)
    res = verify(net, prop, timeout=0.3, solver="z3", attack_time=0.0)
    assert res.status in (expected, "timeout")
