"""L1 and L2 fixed-radius checks (metrics/radius_ball.py) and the radius search built on them, against an
exact oracle: the network's linear regions over the domain (testing.linear_regions), and in each the
nearest flip to every other class, an LP (L1) or a convex QP (L2)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from exactverify.core.property import Case
from exactverify.metrics import radius_ball
from exactverify.metrics.radius import pointwise_robustness
from exactverify.metrics.radius_attack import Best
from exactverify.search import relu_split
from exactverify.search.verifier import bounded_form
from exactverify.testing import VERDICT_TIMEOUT, linear_regions, random_network

from .test_radius import _min_norm

DOMAIN = (-1.0, 1.0)
# 3-4 inputs, two hidden layers: dozens to hundreds of linear regions, enough for splitting to run
# (networks with large radii: rho 0.39-1.28, the balls cover much of the domain)
NETS = [([3, 8, 6, 3], 4), ([4, 7, 7, 3], 1), ([3, 10, 5, 4], 1), ([4, 8, 6, 3], 1), ([3, 9, 6, 3], 4),
        ([4, 6, 8, 4], 1)]


def _oracle(net, x0, label, norm):
    """The exact rho: min over linear regions and classes j of the nearest x with y_j >= y_label."""
    return min(_oracle_per_class(net, x0, label, norm).values())


_PER_CLASS: dict = {}  # (id(net), norm): the oracle's per-class distances (the fixture's networks live on)


def _oracle_per_class(net, x0, label, norm):
    """{j: the distance of the nearest x with y_j >= y_label} over the linear regions (inf: none)."""
    key = (id(net), norm)
    if key not in _PER_CLASS:
        _PER_CLASS[key] = _per_class(net, x0, label, norm)
    return _PER_CLASS[key]


def _per_class(net, x0, label, norm):
    n = net.input_size
    lo, hi = np.full(n, DOMAIN[0]), np.full(n, DOMAIN[1])
    best = {j: math.inf for j in range(net.output_size) if j != label}
    for G, h, M, c in linear_regions(net, Case(lo, hi, [])):
        for j in best:
            v = _min_norm(-G, h, M[j] - M[label], c[j] - c[label], x0, norm, lo, hi)
            if v is not None:
                best[j] = min(best[j], v)
    return best


def _instance(sizes, seed):
    net = random_network(sizes, seed=seed, scale=1.5)
    x0 = np.random.default_rng(50 + seed).uniform(-0.3, 0.3, net.input_size)
    return net, x0, int(np.argmax(net.forward(x0)))


def _checker(net, x0, label, norm):
    n = net.input_size
    return radius_ball.BallChecker(net, bounded_form(net), x0, label, norm, np.full(n, DOMAIN[0]),
                                   np.full(n, DOMAIN[1]), Best())


@pytest.fixture(scope="module")
def oracle_cases():
    cases = []
    for sizes, seed in NETS:
        net, x0, label = _instance(sizes, seed)
        for norm in ("1", "2"):
            cases.append((net, x0, label, norm, _oracle(net, x0, label, norm)))
    return cases


def test_rho_in_l1_and_l2_matches_the_oracle(oracle_cases):
    ball_checks = 0
    for net, x0, label, norm, rho in oracle_cases:
        r = pointwise_robustness(net, x0, label, norm=norm, domain=DOMAIN, timeout=VERDICT_TIMEOUT)
        assert r.status == "exact", (norm, r.lower, r.upper, rho)
        assert math.isfinite(rho), "the instances are chosen with a flip in the domain"
        tol = 1e-6 * max(1.0, rho)
        assert r.lower <= rho + tol and r.upper >= rho - tol, (norm, r.lower, r.upper, rho)
        ball_checks += r.stats.get("checks", 0)
    assert ball_checks >= 6  # the ball checks, not only CROWN and the attacks, closed these brackets


def test_ball_checks_agree_with_the_oracle(oracle_cases):
    """Below rho a check never says sat and (within the budget) proves unsat; above it never says unsat."""
    unsat_below = 0
    for net, x0, label, norm, rho in oracle_cases:
        below, _ = _checker(net, x0, label, norm).check(rho * (1 - 1e-3), _deadline())
        above, _ = _checker(net, x0, label, norm).check(rho * (1 + 1e-3), _deadline())
        assert below != "sat" and above != "unsat", (norm, rho, below, above)
        unsat_below += below == "unsat"
    assert unsat_below == len(oracle_cases)


def test_l2_leaves_are_decided_by_the_qp_multipliers(oracle_cases):
    """Just below rho the L2 search reaches fully split domains; their QP-multiplier bounds refute them."""
    leaves = 0
    for net, x0, label, norm, rho in oracle_cases:
        if norm == "2":
            chk = _checker(net, x0, label, norm)
            assert chk.check(rho * (1 - 1e-7), _deadline())[0] == "unsat"
            leaves += chk.stats.leaves
    assert leaves > 0


def test_a_lying_leaf_is_caught(oracle_cases, monkeypatch):
    """A leaf decider that refutes every fully split domain claims unsat above rho: the oracle sees it."""
    monkeypatch.setattr(relu_split.ReluSplitter, "domain_bound", lambda self, di, splits, beta: 1.0)
    monkeypatch.setattr(radius_ball.BallChecker, "_leaf", lambda self, *a: True)
    wrong = 0
    for net, x0, label, norm, rho in oracle_cases:
        wrong += _checker(net, x0, label, norm).check(rho * 1.2, _deadline())[0] == "unsat"
    assert wrong > 0


def test_a_ball_bound_that_claims_too_much_is_caught(oracle_cases, monkeypatch):
    """Bounds over the ball raised by 5% of |lam| r: checks above rho come out unsat, and the oracle sees it."""
    from exactverify.bounds import norm_ball
    for name in ("_l1", "_l2"):
        real = getattr(norm_ball, name)

        def raised(lam, const, lo, hi, c, r, *steer, real=real):
            value, mag, point = real(lam, const, lo, hi, c, r, *steer)
            return value + 0.05 * np.abs(lam).sum(axis=1) * r, mag, point
        monkeypatch.setattr(norm_ball, name, raised)
    wrong = 0
    for net, x0, label, norm, rho in oracle_cases:
        wrong += _checker(net, x0, label, norm).check(rho * 1.02, _deadline())[0] == "unsat"
    assert wrong > 0


def test_a_check_without_refinement_agrees_with_the_oracle(oracle_cases):
    """refine=False (the L1 quick check): one split on the bounds given, no refinement, the same answers."""
    for net, x0, label, norm, rho in oracle_cases:
        chk = _checker(net, x0, label, norm)
        below, _ = chk.check(rho * (1 - 1e-3), _deadline(), refine=False)
        above, _ = chk.check(rho * (1 + 1e-3), _deadline(), refine=False)
        assert below == "unsat" and above != "unsat", (norm, rho, below, above)
        assert chk.stats.refine_seconds == 0.0 and chk.refined is None


def _checks_going_on_below(oracle_cases, start=1.3):
    """Ball checks started at start * rho that go on just below each point they find (`below`), over
    every case: (unsat claimed past rho, unsat with the bracket closed, checks that lowered their radius)."""
    wrong = closed = lowered = 0
    for net, x0, label, norm, rho in oracle_cases:
        chk = _checker(net, x0, label, norm)
        status, r = chk.check(start * rho, _deadline(), below=lambda u, r: u - 0.5e-6 * max(1.0, u))
        lowered += r < start * rho
        if status == "unsat":
            wrong += r > rho + 1e-7 * max(1.0, rho)
            closed += chk.best.upper - r <= 1e-6 * max(1.0, chk.best.upper)
    return wrong, closed, lowered


def test_a_check_going_on_below_its_points_closes_the_bracket_at_rho(oracle_cases):
    """Started well above rho, a check that goes on below each point it finds ends unsat just below
    the nearest flip: its radius never passes rho, its last point is rho (the bracket closes)."""
    wrong, closed, lowered = _checks_going_on_below(oracle_cases)
    assert wrong == 0
    assert closed == len(oracle_cases) and lowered == len(oracle_cases)


def test_a_check_whose_split_narrows_too_far_is_caught(oracle_cases, monkeypatch):
    """A split narrowed to half the radius the check goes on at (a slip between the claimed radius and
    the ball the tree is bounded over) claims unsat past rho: the oracle sees it."""
    from exactverify.bounds.norm_ball import NormBall
    real = relu_split.ReluSplitter.narrow_ball
    monkeypatch.setattr(relu_split.ReluSplitter, "narrow_ball",
                        lambda self, ball: real(self, NormBall(ball.center, 0.5 * ball.radius, ball.norm)))
    assert _checks_going_on_below(oracle_cases)[0] > 0


def test_a_split_ball_only_shrinks_about_its_center(oracle_cases):
    """`narrow_ball` refuses a larger ball, another center or another norm (the tree's bounds would not
    hold there)."""
    from exactverify.bounds.norm_ball import NormBall
    net, x0, label, norm, rho = next(c for c in oracle_cases if c[3] == "2")
    chk = _checker(net, x0, label, norm)
    lb, _ = chk.bounds(rho)
    splitter = relu_split.ReluSplitter(chk.net_b, lb, [], lambda x: None)
    for ball in (NormBall(x0, 1.01 * rho, "2"), NormBall(x0 + 1e-3, 0.5 * rho, "2"), NormBall(x0, 0.5 * rho, "1")):
        with pytest.raises(ValueError):
            splitter.narrow_ball(ball)
    splitter.narrow_ball(NormBall(x0, 0.5 * rho, "2"))
    assert splitter.ball.radius == 0.5 * rho


def _proven_beyond_oracle(oracle_cases, count=4):
    """Classes a check above rho records as proven (`BallChecker.proven`) at a radius past their own
    nearest flip, over the first `count` cases: the number of such claims."""
    wrong = 0
    for net, x0, label, norm, rho in oracle_cases[:count]:
        per_class = _oracle_per_class(net, x0, label, norm)
        chk = _checker(net, x0, label, norm)
        chk.check(rho * 1.05, _deadline())
        for k, r in chk.proven.items():
            wrong += r > per_class[chk.others[k]] * (1 + 1e-6)
    return wrong


def test_classes_proven_by_a_check_hold_against_the_oracle(oracle_cases, monkeypatch):
    """Every class a check records as winning nowhere in its ball has its nearest flip outside it; a
    check that records every class (a slip in the bookkeeping) is caught by the same comparison."""
    assert _proven_beyond_oracle(oracle_cases) == 0
    real = radius_ball.BallChecker._prove
    monkeypatch.setattr(radius_ball.BallChecker, "_prove",
                        lambda self, ks, r: real(self, range(len(self.others)), r))
    assert _proven_beyond_oracle(oracle_cases) > 0


def test_l1_radius_by_ball_milps_matches_the_oracle(oracle_cases, monkeypatch):
    """L1 without the quick check: the radius MILPs over the ball (bounds refined over it) give rho."""
    from exactverify.metrics.radius import RadiusSearch
    monkeypatch.setattr(RadiusSearch, "quick_check", lambda self: None)
    milps = 0
    for net, x0, label, norm, rho in oracle_cases:
        if norm != "1":
            continue
        r = pointwise_robustness(net, x0, label, norm=norm, domain=DOMAIN, timeout=VERDICT_TIMEOUT)
        tol = 1e-6 * max(1.0, rho)
        assert r.status == "exact" and r.lower <= rho + tol and r.upper >= rho - tol, (r.lower, r.upper, rho)
        assert r.stats.get("checks", 0) == 0
        milps += r.stats["milps"]
    assert milps >= 6


def test_ball_milps_over_bounds_of_too_small_a_ball_are_caught(oracle_cases, monkeypatch):
    """A region whose neuron bounds hold only over the ball of half its radius (a plausible slip: the
    bounds of an older, smaller ball) lets the MILPs miss the nearest flips: the lower bound passes rho."""
    from exactverify.metrics import radius as radius_mod
    monkeypatch.setattr(radius_mod.RadiusSearch, "quick_check", lambda self: None)
    real = radius_mod.RadiusSearch.region

    def shrunk(self, R):
        from exactverify.core.property import linf_ball
        from exactverify.metrics.norms import reach
        lo, hi = linf_ball(self.x0, R, (self.dlo, self.dhi))  # the MILP's rows still search radius R
        return {**real(self, 0.5 * R), "R": R, "radius": R, "lo": lo, "hi": hi, "t_full": reach(self.x0, lo, hi, "1")}
    monkeypatch.setattr(radius_mod.RadiusSearch, "region", shrunk)
    assert _l1_overshoots(oracle_cases) > 0


def _l1_overshoots(oracle_cases) -> int:
    """How many L1 oracle cases the radius search gives a lower bound above the oracle's rho (a broken
    bound or row shows here)."""
    wrong = 0
    for net, x0, label, norm, rho in oracle_cases:
        if norm == "1":
            r = pointwise_robustness(net, x0, label, norm=norm, domain=DOMAIN, timeout=VERDICT_TIMEOUT)
            wrong += r.lower > rho + 1e-6 * max(1.0, rho)
    return wrong


def _deadline():
    import time
    return time.perf_counter() + VERDICT_TIMEOUT


def _edge_cases(count=4):
    """L1 instances whose x0 has coordinates on the domain's bounds (they can move one way only), with
    the oracle's rho (uncached: the fixture's cache is keyed by network)."""
    cases = []
    for sizes, seed in NETS:
        net, x0, _ = _instance(sizes, seed)
        x0 = x0.copy()
        x0[0], x0[-1] = DOMAIN[0], DOMAIN[1]
        label = int(np.argmax(net.forward(x0)))
        rho = min(_per_class(net, x0, label, "1").values())
        if math.isfinite(rho):
            cases.append((net, x0, label, rho))
        if len(cases) == count:
            break
    return cases


def _ball_milp_radii(cases):
    """(exact and matching the oracle, MILPs solved) for the L1 radius by the ball MILPs, no quick check."""
    ok, milps = [], 0
    for net, x0, label, rho in cases:
        r = pointwise_robustness(net, x0, label, norm="1", domain=DOMAIN, timeout=VERDICT_TIMEOUT)
        tol = 1e-6 * max(1.0, rho)
        ok.append(r.status == "exact" and r.lower <= rho + tol and r.upper >= rho - tol)
        milps += r.stats["milps"]
    return ok, milps


def test_l1_one_sided_coordinates_match_the_oracle(monkeypatch):
    """x0 on the domain's bounds: those coordinates enter the L1 row as sign (x_i - x0_i), no d_i."""
    from exactverify.metrics.radius import RadiusSearch
    from exactverify.metrics.radius_milp import l1_one_sided
    monkeypatch.setattr(RadiusSearch, "quick_check", lambda self: None)
    cases = _edge_cases()
    assert len(cases) >= 3
    assert all(len(l1_one_sided(np.full(len(x0), DOMAIN[0]), np.full(len(x0), DOMAIN[1]), x0)[1]) == 2
               for _, x0, _, _ in cases)
    ok, milps = _ball_milp_radii(cases)
    assert all(ok) and milps >= len(cases)


def test_one_sided_rows_that_drop_x0_are_caught(monkeypatch):
    """A slip in the one-sided rows (x_i counted instead of x_i - x0_i) miscounts the distance: the
    radius no longer matches the oracle on some instance."""
    from exactverify.metrics import radius_milp
    from exactverify.metrics.radius import RadiusSearch
    monkeypatch.setattr(RadiusSearch, "quick_check", lambda self: None)
    real = radius_milp.l1_one_sided
    monkeypatch.setattr(radius_milp, "l1_one_sided", lambda lo, hi, x0: (*real(lo, hi, x0)[:3], 0.0))
    ok, _ = _ball_milp_radii(_edge_cases())
    assert not all(ok)


def _envelope_excess(r_rows: float | None = None, samples: int = 400) -> tuple[float, float]:
    """The L1 MILP's envelope rows at real points of the L1 ball of radius r in the domain (ReLU outputs
    exact, d_i = |x_i - x0_i|): (largest lhs - rhs, smallest |lhs - rhs|). r_rows: build the rows for
    another radius than the points' (a broken version)."""
    import scipy.sparse as sp
    from exactverify.core.property import linf_ball
    from exactverify.metrics import radius_milp
    worst, tightest = -math.inf, math.inf
    rng = np.random.default_rng(3)
    for sizes, seed in NETS[:3]:
        net, x0, label = _instance(sizes, seed)
        x0 = x0.copy()
        x0[0], x0[-1] = DOMAIN[0], DOMAIN[1]  # coordinates that can only move up, only down
        r = 0.9
        checker = _checker(net, x0, label, "1")
        lb, _ = checker.bounds(r)
        lo, hi = linf_ball(x0, r, (np.full(len(x0), DOMAIN[0]), np.full(len(x0), DOMAIN[1])))
        net_b = checker.net_b
        model, _ = radius_milp.radius_model(net_b, lb, x0, label, [(label + 1) % 3], "1", lo, hi, 0.0,
                                            r if r_rows is None else r_rows)
        env = [k for k, name in enumerate(model.row_names) if name.startswith("env")]
        assert env, "the first layer has unstable ReLUs over this ball"
        A = sp.csr_matrix(model.A)[env]
        col = {name: c for c, name in enumerate(model.col_names)}
        n = len(x0)
        # points: the axis points x0 +- r e_i, random sparse and dense directions on the sphere and inside
        pts = [x0 + s * r * np.eye(n)[i] for i in range(n) for s in (1.0, -1.0)]
        for _ in range(samples):
            d = rng.standard_normal(n) * (rng.random(n) < 0.5)
            if not d.any():
                continue
            pts.append(x0 + d / np.abs(d).sum() * r * rng.choice([1.0, rng.random()]))
        W, b = net_b.layers[0].dense_weight(), net_b.layers[0].bias
        for x in pts:
            if np.any(x < lo) or np.any(x > hi):
                continue
            v = np.zeros(model.num_cols)
            v[model.input_cols] = x
            for j, y in enumerate(np.maximum(W @ x + b, 0.0)):
                if f"L1_y{j}" in col:
                    v[col[f"L1_y{j}"]] = y
            for i in range(n):
                if f"d{i}" in col:
                    v[col[f"d{i}"]] = abs(x[i] - x0[i])
            gap = A @ v - model.row_upper[env]
            worst, tightest = max(worst, float(gap.max())), min(tightest, float(np.abs(gap).min()))
    return worst, tightest


def test_l1_envelope_rows_hold_at_real_points_and_touch_them():
    """Each first-layer ReLU's star bound over the L1 ball holds at every real point of the ball, and is
    tight at some (the axis points, where the bound is the ReLU itself)."""
    worst, tightest = _envelope_excess()
    assert worst <= 0.0
    assert tightest <= 1e-6


def test_envelope_rows_of_too_small_a_ball_are_caught(oracle_cases, monkeypatch):
    """Rows built for half the radius (a plausible slip: the region's old radius) cut real points off:
    the real points violate them, and the L1 radius search then overshoots rho on some network."""
    from exactverify.metrics import radius_milp
    from exactverify.metrics.radius import RadiusSearch
    assert _envelope_excess(r_rows=0.45)[0] > 1e-6
    real = radius_milp._l1_envelope_rows
    monkeypatch.setattr(radius_milp, "_l1_envelope_rows",
                        lambda model, net_s, x0, split, dcols, r: real(model, net_s, x0, split, dcols, 0.5 * r))
    monkeypatch.setattr(RadiusSearch, "quick_check", lambda self: None)
    assert _l1_overshoots(oracle_cases) > 0


def test_l1_bounds_tightened_by_lp_hold_at_real_points():
    """`tighten_by_lp` over the L1 ball: every real point of the ball (the axis points, random points
    on and inside the sphere) lies within the tightened bounds, and they are tighter than CROWN's."""
    from exactverify.core.network import ReLU
    rng = np.random.default_rng(5)
    narrower = 0
    for sizes, seed in NETS[:3]:
        net, x0, label = _instance(sizes, seed)
        r = 0.9
        checker = _checker(net, x0, label, "1")
        lb, _ = checker.bounds(r)
        tight = checker.tighten_by_lp(lb, r, _deadline())
        n = len(x0)
        pts = [x0 + s * r * np.eye(n)[i] for i in range(n) for s in (1.0, -1.0)]
        for _ in range(300):
            d = rng.standard_normal(n)
            pts.append(x0 + d / np.abs(d).sum() * r * rng.choice([1.0, rng.random()]))
        for x in pts:
            if np.any(x < DOMAIN[0]) or np.any(x > DOMAIN[1]):
                continue
            h = x
            for k, layer in enumerate(checker.net_b.layers):
                h = np.maximum(h, 0.0) if isinstance(layer, ReLU) else layer.dense_weight() @ h + layer.bias
                assert np.all(h >= tight.lower[k] - 1e-9) and np.all(h <= tight.upper[k] + 1e-9)
        narrower += int(np.sum(tight.upper[2] - tight.lower[2] < lb.upper[2] - lb.lower[2] - 1e-9))
    assert narrower > 0


def test_lp_tightening_over_too_small_a_ball_is_caught(oracle_cases, monkeypatch):
    """Bounds tightened by the LP of a ball of half the radius (a plausible slip: the model built for an
    older, smaller ball) let the ball MILPs miss the nearest flips: the lower bound passes rho."""
    from exactverify.metrics.radius import RadiusSearch
    real = radius_ball.BallChecker.tighten_by_lp
    monkeypatch.setattr(radius_ball.BallChecker, "tighten_by_lp",
                        lambda self, lb, r, until: real(self, lb, 0.5 * r, until))
    monkeypatch.setattr(RadiusSearch, "quick_check", lambda self: None)
    assert _l1_overshoots(oracle_cases) > 0


def test_a_check_goes_on_only_just_below_its_radius():
    """The radius search's rule (`radius.just_below`): a point within GO_ON_MAX_DROP of the check's radius
    lowers it to just below the point; a point far below it, or one that closes the bracket, ends the
    check with sat (None)."""
    from exactverify.metrics.radius import EXACT_RTOL, GO_ON_MAX_DROP, just_below
    below = just_below(0.5)
    r = 0.8
    near = r * (1 - 0.5 * GO_ON_MAX_DROP)
    assert below(near, r) == pytest.approx(near - 0.5 * EXACT_RTOL) and below(near, r) < near
    assert below(r * (1 - 2 * GO_ON_MAX_DROP), r) is None
    assert just_below(r - 0.2 * EXACT_RTOL)(r - 0.1 * EXACT_RTOL, r) is None  # the point closes the bracket


def test_the_search_does_not_descend_twice_from_a_point_a_check_descended_from(monkeypatch):
    """A ball check just below the upper bound that finds a point far below its radius descends from
    it (`radius.just_below`) and ends with sat; the radius search's loop then goes straight to its next
    check instead of descending from the same point again (on MNIST 256x2 that doubled each round's
    region-LP time). The checks here are stand-ins: two such sats, then an unsat."""
    from exactverify.metrics import radius
    net, x0, label = _instance(*NETS[0])
    descents = []  # who called each descent from the best point: the loop or a check
    inside_check = [False]
    real_descent = radius.RadiusSearch.descend_from_best

    def descend_from_best(self, deadline):
        descents.append("check" if inside_check[0] else "loop")
        return real_descent(self, deadline)

    checks = []

    def check(self, r, budget, attack_time=None, refine=True, below=None):
        checks.append(below is not None)
        if len(checks) <= 2 and below is not None:
            inside_check[0] = True
            try:
                assert below(0.5 * r, r) is None  # far below the radius: descend, then end with sat
            finally:
                inside_check[0] = False
            return "sat", r
        return "unsat", r

    monkeypatch.setattr(radius.RadiusSearch, "descend_from_best", descend_from_best)
    monkeypatch.setattr(radius.RadiusSearch, "check", check)
    res = pointwise_robustness(net, x0, label, norm="2", domain=DOMAIN, timeout=VERDICT_TIMEOUT)
    assert checks[:3] == [True, True, True]
    assert descents == ["loop", "check", "check"]
    assert res.status == "exact"
