"""`verify` against a brute-force oracle on tiny random networks.

The oracle shares no code with the verifier: it enumerates the linear regions
of the network over the input region (a depth-first search over activation
patterns, one neuron at a time, splitting a region only where an LP shows the
neuron takes both signs on it), and on each region the network is one affine
map, so the smallest violation max_i (A_i y - b_i) is one LP. The minimum over
the regions is the exact minimum violation s*: the property is sat iff s* <= 0.

Properties are built so that nothing sits on the knife's edge: after computing
s* for a random threshold, every disjunct's b is shifted so that its s* becomes
+-delta with delta >> the solvers' tolerances; small deltas make the
counterexamples rare enough that the MILP, not the sampling, has to find them.
"""

from __future__ import annotations

import highspy
import numpy as np
import pytest

from exactverify.core.network import Affine, ReLU
from exactverify.core.property import Case, OutputConstraint, Property
from exactverify.testing import random_network
from exactverify.search.verifier import verify

# ------------------------------------------------------------------ the oracle


def _affine_relu_blocks(net):
    """[(W, b, relu_after)] from a net of Affine layers each optionally followed by ReLU."""
    blocks = []
    for layer in net.layers:
        if isinstance(layer, Affine):
            blocks.append([np.asarray(layer.dense_weight(), float), np.asarray(layer.bias, float), False])
        else:
            assert isinstance(layer, ReLU)
            blocks[-1][2] = True
    return blocks


def _lp(c, A_ub, b_ub, lower, upper):
    """min c @ x over {A_ub x <= b_ub, lower <= x <= upper}: (value, x) or (None, None) if infeasible.

    highspy's LP simplex, called directly (scipy's linprog wraps the same code with more overhead).
    """
    A_ub = np.asarray(A_ub, dtype=np.float64).reshape(-1, len(c))
    m, n = A_ub.shape
    lp = highspy.HighsLp()
    lp.num_col_, lp.num_row_ = n, m
    lp.col_cost_ = np.asarray(c, dtype=np.float64)
    lp.col_lower_, lp.col_upper_ = np.asarray(lower, dtype=np.float64), np.asarray(upper, dtype=np.float64)
    lp.row_lower_ = np.full(m, -highspy.kHighsInf)
    lp.row_upper_ = np.asarray(b_ub, dtype=np.float64)
    lp.a_matrix_.format_ = highspy.MatrixFormat.kRowwise
    lp.a_matrix_.start_ = np.arange(0, m * n + 1, n, dtype=np.int32) if m else np.zeros(1, np.int32)
    lp.a_matrix_.index_ = np.tile(np.arange(n, dtype=np.int32), m)
    lp.a_matrix_.value_ = A_ub.ravel()
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.passModel(lp)
    h.run()
    status = h.getModelStatus()
    if status == highspy.HighsModelStatus.kInfeasible:
        return None, None
    assert status == highspy.HighsModelStatus.kOptimal, h.modelStatusToString(status)
    return h.getInfo().objective_function_value, np.array(h.getSolution().col_value)


def _range(a, a0, G, h, case):
    """min and max of a @ x + a0 over the region: LPs, unless the box alone already fixes the sign."""
    centre, radius = (case.lower + case.upper) / 2, (case.upper - case.lower) / 2
    mid, rad = a @ centre + a0, np.abs(a) @ radius
    if mid - rad > 1e-9 or mid + rad < -1e-9:
        return mid - rad, mid + rad
    lo, _ = _lp(a, G, h, case.lower, case.upper)
    hi, _ = _lp(-a, G, h, case.lower, case.upper)
    return lo + a0, -hi + a0


def linear_regions(net, case):
    """Every linear region of net over the case: (G, h, M, c) with region {G x <= h} and net(x) = M x + c there."""
    n = len(case.lower)
    base_G = np.zeros((0, n)) if case.input_A is None else np.asarray(case.input_A, float)
    base_h = np.zeros(0) if case.input_b is None else np.asarray(case.input_b, float)
    blocks = _affine_relu_blocks(net)
    regions = []

    def extend(G, h, M, c, k, j, pre):
        # M, c: the map to the input of block k (so far); pre: (W_k M, W_k c + b_k), the block's pre-activation
        if k == len(blocks):
            regions.append((G, h, M, c))
            return
        W, b, relu = blocks[k]
        if pre is None:
            pre = (W @ M, W @ c + b)
            j = 0
            if not relu:
                extend(G, h, pre[0], pre[1], k + 1, 0, None)
                return
        P, p = pre
        if j == len(p):
            # every neuron of block k has a sign: its output is the pre-activation masked by the signs
            extend(G, h, P, p, k + 1, 0, None)
            return
        lo, hi = _range(P[j], p[j], G, h, case)
        if hi > 0:  # active somewhere: z_j >= 0, i.e. -P_j x <= p_j
            extend(np.vstack([G, -P[j]]), np.append(h, p[j]), M, c, k, j + 1, (P, p))
        if lo < 0:  # inactive somewhere: z_j <= 0 and the neuron's output row is 0
            P0, p0 = P.copy(), p.copy()
            P0[j], p0[j] = 0.0, 0.0
            extend(np.vstack([G, P[j]]), np.append(h, -p[j]), M, c, k, j + 1, (P0, p0))

    extend(base_G, base_h, np.eye(n), np.zeros(n), 0, 0, None)
    return regions


def min_violation(regions, case, A, b):
    """The exact min over the input region of max_i (A_i net(x) - b_i), and a point attaining it."""
    n = len(case.lower)
    best, best_x = np.inf, None
    for G, h, M, c in regions:
        # variables (x, s): min s  s.t.  G x <= h,  A M x - s <= b - A c
        rows = np.vstack([np.hstack([G, np.zeros((len(G), 1))]), np.hstack([A @ M, -np.ones((len(b), 1))])])
        rhs = np.concatenate([h, b - A @ c])
        val, x = _lp(np.append(np.zeros(n), 1.0), rows, rhs, np.append(case.lower, -1e6), np.append(case.upper, 1e6))
        if val is not None and val < best:
            best, best_x = val, x[:n]
    return best, best_x


# ------------------------------------------------------------------ instances


def make_instance(seed: int):
    """A random net and a property with known verdict; returns (net, prop, expected, margins)."""
    rng = np.random.default_rng(1000 + seed)
    n_in = int(rng.integers(2, 5))
    hidden = [int(rng.integers(3, 7))] + ([int(rng.integers(3, 6))] if rng.random() < 0.6 else [])
    n_out = int(rng.integers(2, 4))
    output_relu = bool(rng.random() < 0.2) and sum(hidden) <= 8
    net = random_network([n_in, *hidden, n_out], seed=seed, output_relu=output_relu)

    kind = ["single", "disjunctive", "cases"][seed % 3]
    n_cases = int(rng.integers(2, 4)) if kind == "cases" else 1
    want_sat = bool(rng.random() < 0.5)
    sat_slot = (int(rng.integers(n_cases)), None)

    cases, margins = [], []
    for ci in range(n_cases):
        centre = rng.uniform(-1, 1, n_in)
        radius = rng.uniform(0.1, 1.0, n_in)
        case = Case(centre - radius, centre + radius, [])
        if rng.random() < 0.25:  # a halfspace through the box, keeping its centre
            a = rng.standard_normal((1, n_in))
            case.input_A, case.input_b = a, a @ centre + 0.3 * np.abs(a) @ radius
        regions = linear_regions(net, case)
        ys = net.forward(centre + radius * rng.uniform(-1, 1, (50, n_in)))
        n_dis = 1 if kind == "single" else int(rng.integers(2, 4))
        for di in range(n_dis):
            m = int(rng.integers(1, 3)) if n_out > 1 else 1
            A = rng.standard_normal((m, n_out))
            b0 = A @ ys[rng.integers(len(ys))]
            s0, _ = min_violation(regions, case, A, b0)
            if want_sat and ci == sat_slot[0] and di == 0:
                target = -rng.choice([1e-3, 5e-3, 0.05])  # small: rare counterexamples
            else:
                target = rng.choice([1e-3, 5e-3, 0.05, 0.3])
            b = b0 + (s0 - target)  # shifting every row by t shifts s* by -t
            case.disjuncts.append(OutputConstraint(A, b))
            margins.append(target)
        cases.append(case)
    prop = Property(n_in, n_out, cases, source=f"oracle-{seed}")
    expected = "sat" if min(margins) <= 0 else "unsat"
    return net, prop, expected, margins


# ------------------------------------------------------------------ tests

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
        # every third instance without the gradient attack, so the MILP has to find the counterexamples
        result = verify(net, prop, timeout=20, attack_time=0.0 if seed % 3 == 0 else None, seed=seed)
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
            result = verify(net, prop, timeout=20, attack_time=0.0, seed=seed)
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
