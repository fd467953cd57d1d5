"""Region walks (exactverify/region_search.py): every LP value is a real violation, a walk never
goes below the true minimum nor above its start, and it finds the thin counterexample of ACAS Xu
1_9 prop_7 that the gradient attack misses."""

import numpy as np
import pytest

from exactverify import load_network, load_vnnlib, verify
from exactverify.search.region_search import _region_lp, mixed_start, region_walk
from exactverify.testing import VERDICT_TIMEOUT, linear_regions, make_instance, min_violation

SEEDS = range(24)


def _violation(net, x, A, b):
    return float(np.max(A @ net.forward(x) - b))


@pytest.mark.parametrize("seed", SEEDS)
def test_region_lp_value_is_the_violation_at_its_point(seed):
    net, prop, _, _ = make_instance(seed)
    case = prop.cases[0]
    d = case.disjuncts[0]
    rng = np.random.default_rng(seed)
    x = case.lower + rng.random(len(case.lower)) * (case.upper - case.lower)
    sol = _region_lp(net, x, case.lower, case.upper, d.A, d.b, case.input_A, case.input_b)
    if case.input_A is not None and np.any(case.input_A @ x > case.input_b):
        return  # the start itself lies outside the case: nothing to compare with
    assert sol is not None
    xs, s, G, g = sol
    assert s <= _violation(net, x, d.A, d.b) + 1e-9  # x is a feasible point of its own region's LP
    assert np.all(xs >= case.lower - 1e-9) and np.all(xs <= case.upper + 1e-9)
    assert np.all(G @ xs + g >= -1e-7)  # the optimum stays in the closure of x's region
    assert abs(_violation(net, xs, d.A, d.b) - s) <= 1e-7 * (1 + abs(s))  # affine there: exact


def test_walks_stay_between_the_true_minimum_and_their_start():
    reached = 0
    for seed in SEEDS:
        net, prop, _, _ = make_instance(seed)
        case = prop.cases[0]
        d = case.disjuncts[0]
        true_min, _ = min_violation(linear_regions(net, case), case, d.A, d.b)
        rng = np.random.default_rng(seed)
        best = np.inf
        for _ in range(5):
            start = mixed_start(net, case.lower, case.upper, d.A, d.b, rng)
            if case.input_A is not None and np.any(case.input_A @ start > case.input_b):
                continue
            x, s, lps = region_walk(net, case.lower, case.upper, d.A, d.b, start, np.inf, case.input_A, case.input_b)
            assert x is not None and lps >= 1
            assert s <= _violation(net, start, d.A, d.b) + 1e-9
            assert s >= true_min - 1e-7 * (1 + abs(true_min))
            assert abs(_violation(net, x, d.A, d.b) - s) <= 1e-7 * (1 + abs(s))
            best = min(best, s)
        reached += best <= true_min + 1e-6 * (1 + abs(true_min))
    print(f"the global minimum reached on {reached} of {len(SEEDS)} instances")
    assert reached >= 0.75 * len(SEEDS)  # 23 of 24 when written


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_verify_finds_the_thin_counterexample_of_acas_1_9_prop_7(benchmarks, seed):
    net = load_network(benchmarks / "acasxu" / "onnx" / "ACASXU_run2a_1_9_batch_2000.onnx")
    prop = load_vnnlib(benchmarks / "acasxu" / "vnnlib" / "prop_7.vnnlib")
    res = verify(net, prop, timeout=VERDICT_TIMEOUT, seed=seed)
    assert res.status == "sat"
    x = np.asarray(res.counterexample.x)
    assert prop.satisfied_by(x, net.forward(x))
    assert prop.satisfied_by(x, net.forward32(x).astype(np.float64))
