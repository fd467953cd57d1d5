"""ReLU-phase branch and bound (relu_split.py) against the brute-force oracle of exactverify.testing."""

from __future__ import annotations

import time

import numpy as np
import pytest

from exactverify.bounds.crown import crown_bounds
from exactverify.core.check import check_point
from exactverify.encodings.milp import build_milp
from exactverify.core.property import Case, OutputConstraint, Property
from exactverify.search.relu_split import ReluSplitter, supports
from exactverify.solvers import solve
from exactverify.testing import VERDICT_TIMEOUT, linear_regions, min_violation, random_network


def _leaf_milp(net, prop, ci):
    """A fully split domain: its MILP (no binaries left) over the domain's bounds."""
    case = prop.cases[ci]

    def leaf(lb, di, splits):
        model = build_milp(net, lb, case, case.disjuncts[di])
        res = solve(model, "highs", time_limit=VERDICT_TIMEOUT)  # at most 6 binaries: milliseconds
        if res.status == "infeasible":
            return True
        if res.x is not None:
            ce = check_point(net, prop, model.input_values(res.x), ci)
            if ce is not None:
                return ce
        return False
    return leaf


def _splitter(net, prop, ci=0, leaf=True, **kw):
    case = prop.cases[ci]
    lb = crown_bounds(net, case.lower, case.upper, alpha="optimized")
    return ReluSplitter(net, lb, case.disjuncts, lambda x: check_point(net, prop, x, ci),
                        leaf=_leaf_milp(net, prop, ci) if leaf else None, leaf_unstable=6 if leaf else 0, **kw)


def _instance(seed):
    """A random Affine/ReLU net with 2-4 inputs and a box, and disjuncts whose exact minimum
    violations s* are set to chosen values (some just above 0, some just below)."""
    rng = np.random.default_rng(500 + seed)
    n_in = int(rng.integers(2, 5))
    hidden = [int(rng.integers(4, 9)) for _ in range(int(rng.integers(1, 4)))]
    n_out = int(rng.integers(2, 5))
    net = random_network([n_in, *hidden, n_out], seed=seed)
    centre, radius = rng.uniform(-1, 1, n_in), rng.uniform(0.2, 1.0, n_in)
    case = Case(centre - radius, centre + radius, [])
    regions = linear_regions(net, case)
    targets = []
    for _ in range(4):
        m = int(rng.integers(1, 3))
        A = rng.standard_normal((m, n_out))
        s0, _ = min_violation(regions, case, A, np.zeros(m))
        target = float(rng.choice([-0.05, -1e-3, 1e-3, 0.02, 0.3]))
        case.disjuncts.append(OutputConstraint(A, np.full(m, s0 - target)))
        targets.append(target)
    return net, Property(n_in, n_out, [case]), targets, regions


@pytest.mark.parametrize("seed", range(24))
def test_refutes_only_unreachable_disjuncts_and_finds_real_counterexamples(seed):
    net, prop, targets, regions = _instance(seed)
    case = prop.cases[0]
    for di, (d, target) in enumerate(zip(case.disjuncts, targets)):
        exact, _ = min_violation(regions, case, d.A, d.b)
        assert abs(exact - target) < 1e-6  # the instance is what it says
    sp = _splitter(net, prop, iterations=10)
    open_ = list(range(len(targets)))
    refuted, ce = sp.run(open_, time.perf_counter() + VERDICT_TIMEOUT)  # the search ends by itself: ~30 ReLUs
    for di in refuted:
        assert targets[di] > 0, f"disjunct {di} refuted but its minimum violation is {targets[di]}"
    if ce is not None:
        assert targets[ce.disjunct] < 0
        assert prop.satisfied_by(np.asarray(ce.x), net.forward(np.asarray(ce.x)))
    # completeness on clear margins: with no counterexample reported, every disjunct whose
    # minimum violation is >= 0.02 was refuted (these nets have at most ~30 ReLUs)
    if ce is None:
        for di, target in enumerate(targets):
            if target >= 0.02:
                assert di in refuted, f"disjunct {di} (s* = {target}) left open: {sp.stats}"


def test_a_sat_disjunct_alone_gets_a_counterexample_or_stays_open():
    for seed in range(24):
        net, prop, targets, _ = _instance(seed)
        for di, target in enumerate(targets):
            if target < 0:
                sp = _splitter(net, prop)
                refuted, ce = sp.run([di], time.perf_counter() + VERDICT_TIMEOUT)
                assert di not in refuted
                assert ce is not None, f"seed {seed} disjunct {di}: no counterexample ({sp.stats})"
                assert np.asarray(ce.x).shape == (prop.n_inputs,)


def test_no_refutation_where_samples_meet_the_disjunct():
    """Wider nets than the oracle can enumerate: a disjunct some sampled point meets is never refuted."""
    rng = np.random.default_rng(3)
    for seed in range(6):
        net = random_network([10, 24, 24, 24, 5], seed=seed)
        x0 = rng.uniform(-1, 1, 10)
        lo, hi = x0 - 0.3, x0 + 0.3
        ys = net.forward(lo + rng.random((4000, 10)) * (hi - lo))
        ds = []
        for j in range(5):
            a = np.zeros((1, 5))
            a[0, j], a[0, (j + 1) % 5] = -1.0, 1.0  # y_j >= y_{j+1}
            q = np.quantile(ys @ a[0], 0.002)  # met by about 8 of the samples
            ds.append(OutputConstraint(a, np.array([q])))
        prop = Property(10, 5, [Case(lo, hi, ds)])
        # bounded by work, not time: the search stops at a few thousand open domains (1 MB of them),
        # though each net's first counterexample, found within a few rounds, ends it long before that
        sp = _splitter(net, prop, memory=1e6)
        refuted, ce = sp.run(list(range(5)), time.perf_counter() + VERDICT_TIMEOUT)
        assert refuted == []


def test_supports_only_affine_relu_chains():
    assert supports(random_network([3, 4, 2]).simplified())
    assert not supports(random_network([3, 4, 2], output_relu=True))
    assert not supports(random_network([3, 2]))


def test_domain_bounds_hold_at_every_sampled_point_of_the_domain():
    """After optimising alpha and beta, each domain's bound is below c.y - d at every sampled
    point that has the domain's ReLU signs (the split constraints hold)."""
    rng = np.random.default_rng(11)
    for seed in range(8):
        net = random_network([4, 10, 10, 3], seed=seed)
        lo, hi = -np.ones(4), np.ones(4)
        c = rng.standard_normal((1, 3))
        prop = Property(4, 3, [Case(lo, hi, [OutputConstraint(c, np.zeros(1))])])
        sp = _splitter(net, prop, leaf=False)
        xs = lo + rng.random((20000, 4)) * (hi - lo)
        pre = []  # pre-activations of the two ReLU layers at the samples
        h = xs
        for layer in net.layers:
            h = layer.apply(h)
            if type(layer).__name__ == "Affine" and len(pre) < 2:
                pre.append(h.copy())
        zs = np.hstack([p[:, info["unstable"]] for p, info in zip(pre, sp.relus)])
        values = net.forward(xs) @ c[0]
        nu = sp.n_unstable
        if nu < 2:
            continue
        B = 64
        splits = np.zeros((B, nu), dtype=np.int8)
        for i in range(B):  # split a random subset of neurons (every one for half the domains),
            # with the signs of a sample, so the domain is not empty
            j = np.arange(nu) if i % 2 else rng.choice(nu, size=rng.integers(1, min(nu, 5) + 1), replace=False)
            splits[i, j] = np.where(zs[rng.integers(len(xs)), j] >= 0, 1, -1)
        C, d = np.repeat(c, B, axis=0), np.zeros(B)
        alpha = rng.random((B, nu))
        best, _, _, _, _ = sp.bound(C, d, splits, alpha, np.zeros((B, nu)), iterations=60)
        for i in range(B):
            inside = np.all((splits[i] == 0) | (splits[i] * zs >= 0), axis=1)
            assert inside.any()
            assert values[inside].min() >= best[i], (seed, i)


def test_frontier_pops_each_domain_once_lowest_first():
    from exactverify.search.relu_split import Frontier
    rng = np.random.default_rng(0)
    f = Frontier(3)
    seen, pushed = [], 0
    for step in range(40):
        n = int(rng.integers(0, 30))
        bound = rng.standard_normal(n)
        f.push(row=np.arange(pushed, pushed + n), splits=np.zeros((n, 3), np.int8), alpha=np.zeros((n, 3)),
               beta=np.zeros((n, 3)), bound=bound, branch=np.zeros(n, np.int64), depth=np.zeros(n), free=np.full(n, 3))
        pushed += n
        rest = f.view("bound").copy()
        out = f.pop_lowest(int(rng.integers(1, 20))) if f.size else {"row": [], "bound": np.zeros(0)}
        if len(out["bound"]):
            assert out["bound"].max() <= np.sort(rest)[len(out["bound"]) - 1]  # the lowest ones
        seen += list(out["row"])
        if step % 7 == 0 and f.size:
            seen += list(f.pop_where(f.view("row") % 2 == 0)["row"])
        assert f.size + len(seen) == pushed
    seen += list(f.pop_lowest(f.size)["row"]) if f.size else []
    assert sorted(seen) == list(range(pushed))


def _uncompacted_bound(sp, C, dc, splits, alpha, beta, iterations, wrong_rows=False):
    """ReluSplitter.bound as it was before its steps skipped the items that look refuted: every step
    passes over every item and only the live ones move (wrong_rows: the others move instead)."""
    from exactverify.bounds.optimiser import Adam
    alpha, beta = alpha.astype(np.float32), beta.astype(np.float32)
    adam = Adam()
    best = np.full(len(dc), -np.inf, dtype=np.float32)
    best_alpha, best_beta = alpha.copy(), beta.copy()
    for t in range(1, iterations + 2):
        last = t == iterations + 1
        value, _, _, grads = sp._pass(C, dc, splits, alpha, beta, want_grad=not last, fast=True)
        better = value > best
        best_alpha[better], best_beta[better] = alpha[better], beta[better]
        best = np.maximum(best, value)
        live = (best <= 0)[:, None]
        if last or not live.any():
            break
        move = ~live if wrong_rows else live
        for key, p, g, lr, hi in (("alpha", alpha, grads[0], sp.lr_alpha, 1.0), ("beta", beta, grads[1], sp.lr_beta, None)):
            p += np.where(move, adam.step(key, g, lr), 0)
            np.clip(p, 0.0, hi, out=p)
    return sp._pass(C, dc, splits, best_alpha.astype(np.float64), best_beta.astype(np.float64), want_grad=False)[0]


def test_steps_that_skip_refuted_domains_give_the_bounds_of_steps_over_all():
    """`bound` steps only the domains that do not look refuted yet; each domain's sound bound is the one
    the steps over every domain give (up to float32 rounding of other batch shapes). A version that moves
    the wrong domains gives other bounds, and the comparison sees it."""
    same = wrong = domains = 0
    for seed in range(12):
        net, prop, _, _ = _instance(seed)
        sp = _splitter(net, prop, leaf=False)
        if sp.n_unstable == 0:
            continue
        rng = np.random.default_rng(seed)
        C = np.vstack([sp.rows_c[di] for di in range(len(sp.rows_c))])
        dc = np.concatenate([sp.rows_d[di] for di in range(len(sp.rows_d))])
        rows = rng.integers(0, len(dc), 64)
        splits = rng.integers(-1, 2, (64, sp.n_unstable)).astype(np.int8)
        alpha = np.tile(sp.alpha0, (64, 1))
        beta = np.zeros_like(alpha)
        value = sp.bound(C[rows], dc[rows], splits, alpha, beta, 8)[0]
        ref = _uncompacted_bound(sp, C[rows], dc[rows], splits, alpha, beta, 8)
        broken = _uncompacted_bound(sp, C[rows], dc[rows], splits, alpha, beta, 8, wrong_rows=True)
        tol = 1e-4 * (1 + np.abs(ref))
        same += int(np.sum(np.abs(value - ref) <= tol))
        wrong += int(np.sum(np.abs(broken - ref) > tol))
        domains += len(rows)
    assert domains >= 300 and same == domains
    assert wrong > 0


def test_adam_rows_step_like_the_full_batch():
    """Adam.step on some rows only: those rows get the update and moments of a step over all rows."""
    from exactverify.bounds.optimiser import Adam
    rng = np.random.default_rng(0)
    full, part = Adam(), Adam()
    rows = np.arange(10)
    for _ in range(5):
        g = rng.standard_normal((10, 3)).astype(np.float32)
        rows = rows[rng.random(len(rows)) < 0.8] if len(rows) > 2 else rows
        want = full.step("a", g, 0.1)[rows]
        got = part.step("a", g[rows], 0.1, rows=rows, shape=g.shape)
        assert np.array_equal(got, want)
