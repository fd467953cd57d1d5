"""Intermediate bounds refined by per-neuron branch and bound (refine.py), against the exact ranges of
the brute-force oracle (exactverify.testing), and end to end through `verify`."""

from __future__ import annotations

import functools
import time

import numpy as np
import pytest

from exactverify.bounds.crown import crown_bounds
from exactverify.core.network import Network
from exactverify.core.property import Case, OutputConstraint, Property
from exactverify.search import refine as refine_module
from exactverify.search.refine import RefineReport, refine_bounds
from exactverify.search import verifier
from exactverify.search.verifier import bounded_form, verify
from exactverify.testing import VERDICT_TIMEOUT, linear_regions, min_violation, random_network

FAR = 1e9  # a deadline the refinement never reaches: its domain budget ends it


def _exact_ranges(net, case, k):
    """The exact (min, max) of every neuron of layer k over the case box: one LP per linear region of
    the network up to layer k."""
    prefix = Network(net.layers[:k + 1], input_shape=(1, net.input_size), output_shape=(1, net.layers[k].out_size))
    regions = linear_regions(prefix, case)
    n = net.layers[k].out_size
    lo, hi = np.empty(n), np.empty(n)
    for j in range(n):
        e = np.zeros((1, n))
        e[0, j] = 1.0
        lo[j], _ = min_violation(regions, case, e, np.zeros(1))
        hi[j] = -min_violation(regions, case, -e, np.zeros(1))[0]
    return lo, hi


def _excluded(net, case, lb, tol=1e-7):
    """(layer, neuron) pairs whose bounds in lb exclude part of the neuron's exact range."""
    bad = []
    for k in range(2, len(net.layers) - 1, 2):
        lo, hi = _exact_ranges(net, case, k)
        for j in np.flatnonzero((lb.lower[k] > lo + tol) | (lb.upper[k] < hi - tol)):
            bad.append((k, int(j)))
    return bad


def _instance(seed):
    rng = np.random.default_rng(900 + seed)
    n_in = int(rng.integers(2, 5))
    net = random_network([n_in] + [int(rng.integers(5, 9)) for _ in range(3)] + [3], seed=seed)
    centre, radius = rng.uniform(-1, 1, n_in), rng.uniform(0.3, 1.0, n_in)
    return net, Case(centre - radius, centre + radius, [])


@pytest.mark.parametrize("seed", range(12))
def test_refined_bounds_contain_every_exact_range_and_are_never_looser(seed):
    net, case = _instance(seed)
    root = crown_bounds(net, case.lower, case.upper, alpha="optimized")
    report = RefineReport()
    lb = refine_bounds(net, root, time.perf_counter() + FAR, domains=256, report=report)
    assert _excluded(net, case, lb) == []
    for k in range(len(net.layers)):
        assert np.all(lb.lower[k] >= root.lower[k]) and np.all(lb.upper[k] <= root.upper[k])
    assert all(layer["domains"] >= 0 for layer in report.layers)


def test_refinement_tightens_and_a_bound_shrunk_by_one_percent_is_caught():
    """Run to convergence (gap 0), the refinement closes the gap between CROWN and the exact ranges:
    moved inward by 1% of its width, a refined lower bound of a neuron it left unstable cuts into
    the exact range, and the oracle sees it."""
    gained, caught, tried = 0.0, 0, 0
    for seed in range(12):
        net, case = _instance(seed)
        root = crown_bounds(net, case.lower, case.upper, alpha="optimized")
        lb = refine_bounds(net, root, time.perf_counter() + FAR, domains=1024, gap=0.0)
        for k in range(2, len(net.layers) - 1, 2):
            gained += float(np.sum(root.upper[k] - root.lower[k]) - np.sum(lb.upper[k] - lb.lower[k]))
            exact_lo, _ = _exact_ranges(net, case, k)
            lo, hi = lb.lower[k], lb.upper[k]
            # a stable neuron's search stops at 0 on purpose; an untouched one was exact at the root already
            aimed = (lo > root.lower[k] + 1e-12) & (lo < 0) & (hi > 0)
            shrunk = lo + 0.01 * (hi - lo)
            tried += int(np.sum(aimed))
            caught += int(np.sum(aimed & (shrunk > exact_lo + 1e-7)))
    assert gained > 0
    assert tried > 50 and caught >= 0.85 * tried, (caught, tried)


@functools.lru_cache(maxsize=None)  # the oracle's regions cost seconds; both end-to-end tests share them
def _wide_instance(seed, output_relu=False):
    """Enough inputs (18) that `verify` takes the ReLU-splitting path with refinement, few enough
    neurons that the oracle enumerates the regions; disjuncts with margins set by the oracle."""
    rng = np.random.default_rng(700 + seed)
    n_in, n_out = 18, 3
    net = random_network([n_in, 6, 6, 6, n_out], seed=seed, output_relu=output_relu)
    x0 = rng.uniform(-1, 1, n_in)
    case = Case(x0 - 0.25, x0 + 0.25, [])
    regions = linear_regions(net, case)
    ys = net.forward(x0 + rng.uniform(-0.25, 0.25, (50, n_in)))
    margins = []
    for _ in range(2):
        A = rng.standard_normal((1, n_out))
        b0 = A @ ys[rng.integers(len(ys))]
        s0, _ = min_violation(regions, case, A, b0)
        target = float(rng.choice([-0.01, 0.002, 0.02, 0.2]))
        case.disjuncts.append(OutputConstraint(A, b0 + (s0 - target)))
        margins.append(target)
    return net, Property(n_in, n_out, [case]), margins


def _check_verdicts(seeds, output_relu=False):
    wrong, refined = [], 0
    for seed in seeds:
        net, prop, margins = _wide_instance(seed, output_relu)
        res = verify(net, prop, timeout=VERDICT_TIMEOUT, attack_time=0.0)
        refined += res.stats.get("refine_domains", 0) > 0
        if res.status == "unsat" and min(margins) <= 0:
            wrong.append((seed, "unsat", margins))
        if res.status == "sat":
            x = np.asarray(res.counterexample.x)
            if min(margins) > 0 or not prop.satisfied_by(x, net.forward(x)):
                wrong.append((seed, "sat", margins))
    return wrong, refined


@pytest.fixture
def refine_first(monkeypatch):
    """No short split on the root bounds before the refinement: on these small networks it would
    decide most instances, and the refinement path would go untested."""
    monkeypatch.setattr(verifier, "_PROBE_SECONDS", 0.0)


def test_verify_through_refinement_agrees_with_the_oracle(refine_first):
    wrong, refined = _check_verdicts(range(10))
    assert wrong == []
    assert refined >= 3  # the refinement path really ran


def test_verify_with_the_short_split_first_agrees_with_the_oracle():
    wrong, _ = _check_verdicts(range(10))
    assert wrong == []


def test_a_network_ending_in_a_relu_is_refined_and_split_too(refine_first):
    """ERAN's mnist_relu_9_200 ends in a ReLU: the verifier bounds it with an identity map appended
    (bounded_form), so refinement and ReLU splitting apply, and the verdicts still agree with the oracle."""
    net, _, _ = _wide_instance(0, True)
    form = bounded_form(net)
    xs = np.random.default_rng(0).uniform(-1, 1, (100, net.input_size))
    assert np.array_equal(form.forward(xs), net.forward(xs))
    wrong, refined = _check_verdicts(range(6), output_relu=True)
    assert wrong == []
    assert refined >= 2


def test_an_unsound_refinement_is_caught_end_to_end(monkeypatch, refine_first):
    """A refinement that moves every bound 40% of its width inward gives wrong verdicts the oracle sees."""
    real = refine_module.refine_layer

    def broken(net, lb, k, *args, **kw):
        lo, hi, info = real(net, lb, k, *args, **kw)
        width = hi - lo
        return lo + 0.4 * width, hi - 0.4 * width, info

    monkeypatch.setattr(refine_module, "refine_layer", broken)
    wrong, _ = _check_verdicts(range(10))
    assert wrong


def test_refinement_shared_among_worker_processes_is_sound_and_tightens():
    """The same layer's objectives shared out to two processes: every sampled point stays inside the
    refined bounds, which are tighter than CROWN's, as in one process."""
    from exactverify.core.runtime import worker_pool

    rng = np.random.default_rng(5)
    net = random_network([6, 24, 24, 24, 3], seed=5)
    lo, hi = -0.5 * np.ones(6), 0.5 * np.ones(6)
    root = crown_bounds(net, lo, hi, alpha="optimized")
    with worker_pool(2) as pool:
        lb = refine_bounds(net, root, time.perf_counter() + FAR, domains=64, pool=pool, workers=2)
    alone = refine_bounds(net, root, time.perf_counter() + FAR, domains=64)
    xs = lo + rng.random((20000, 6)) * (hi - lo)
    h = xs
    for k, layer in enumerate(net.layers):
        h = layer.apply(h)
        assert np.all(h >= lb.lower[k] - 1e-12) and np.all(h <= lb.upper[k] + 1e-12), k
    width = lambda b: sum(float(np.sum(b.upper[k] - b.lower[k])) for k in range(2, len(net.layers) - 1, 2))
    assert width(lb) < width(root)
    assert width(lb) == pytest.approx(width(alone), rel=0.05)


def test_verify_with_workers_refines_in_one_run_and_agrees(refine_first):
    """With several workers, a high-dimensional Affine/ReLU instance stays one run whose refinement
    uses the workers (no pieces that would each refine the same bounds again)."""
    found = []
    for seed in range(10):
        net, prop, margins = _wide_instance(seed)
        one = verify(net, prop, timeout=VERDICT_TIMEOUT, attack_time=0.0)
        two = verify(net, prop, timeout=VERDICT_TIMEOUT, attack_time=0.0, workers=2)
        assert two.status == one.status
        found.append(two.stats.get("refine_domains", 0) > 0)
    assert sum(found) >= 3


@pytest.mark.parametrize("seed", range(3))
def test_refined_bounds_of_deeper_wider_networks_contain_sampled_points(seed):
    """Beyond the oracle's reach (6 hidden layers of 20, an output ReLU as in ERAN's network, bounded
    through bounded_form): every sampled point's every layer stays inside the refined bounds."""
    rng = np.random.default_rng(40 + seed)
    net = random_network([10] + [20] * 6 + [4], seed=seed, output_relu=True)
    form = bounded_form(net)
    x0 = rng.uniform(-1, 1, 10)
    lo, hi = x0 - 0.3, x0 + 0.3
    root = crown_bounds(form, lo, hi, alpha="optimized")
    lb = refine_bounds(form, root, time.perf_counter() + FAR, domains=128)
    corners = np.where(rng.random((2000, 10)) < 0.5, lo, hi)
    h = np.vstack([lo + rng.random((20000, 10)) * (hi - lo), corners])
    for k, layer in enumerate(form.layers):
        h = layer.apply(h)
        assert np.all(h >= lb.lower[k] - 1e-12) and np.all(h <= lb.upper[k] + 1e-12), k
    assert sum(lb.unstable_counts(form)) <= sum(root.unstable_counts(form))
