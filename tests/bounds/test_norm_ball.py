"""Bounds over an L1 or L2 ball intersected with a box (bounds/norm_ball.py) and CROWN over such sets.

Soundness: the bound never exceeds the linear function at any point of the set (dense samples,
the sphere's points and the box corners inside it included), and never a network's layer values at
sampled points. Tightness: the bound matches an independent solver's minimum (an LP for L1, SLSQP
for L2) and is never below the plain box bound. A deliberately broken bound (shifted up by a hair)
is caught by the same checks.
"""

from __future__ import annotations

import numpy as np
import pytest

from exactverify.bounds import norm_ball
from exactverify.bounds.crown import crown_bounds, linear_objective_bounds
from exactverify.bounds.norm_ball import NormBall, concretize, padded_minimum
from exactverify.core.property import linf_ball
from exactverify.testing import random_network


def _ball_points(rng, c, r, norm, lo, hi, k):
    """Points of [lo, hi] ∩ ball: random (for L1 sparse) directions scaled onto the sphere or inside it,
    then clipped into the box, which only moves them towards c (c lies in the box), so into the ball."""
    n = len(c)
    d = rng.standard_normal((k, n))
    if norm == "1":
        d *= rng.exponential(1.0, (k, n)) * (rng.random((k, n)) < rng.uniform(0.1, 1.0, (k, 1)))
        size = np.abs(d).sum(1, keepdims=True)
    else:
        size = np.linalg.norm(d, axis=1, keepdims=True)
    scale = np.where(rng.random((k, 1)) < 0.5, 1.0, rng.random((k, 1)))
    pts = c + d / np.maximum(size, 1e-300) * r * scale * (1 - 1e-12)
    return np.clip(pts, lo, hi)


def _instance(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 9))
    c = rng.uniform(-1, 1, n)
    norm = ["1", "2"][seed % 2]
    r = float(rng.choice([0.05, 0.3, 1.0, 3.0]))
    lo = c - rng.uniform(0, 1.5, n)
    hi = c + rng.uniform(0, 1.5, n)
    lam = rng.standard_normal((5, n)) * rng.choice([1e-3, 1.0, 1e3])
    const = rng.standard_normal(5)
    return rng, NormBall(c, r, norm), lo, hi, lam, const


def _padded(lam, const, lo, hi, ball):
    """The bound as a backward pass ends it (padded_minimum), for a pass with no layers of its own."""
    return padded_minimum(lam, const, lo, hi, ball, 0.0, len(lo) + 8)[0]


def _solver_minimum(lam_row, lo, hi, ball):
    """min lam . x over box ∩ ball by an independent solver (HiGHS LP for L1, SLSQP for L2)."""
    from scipy.optimize import linprog, minimize
    n, c, r = len(lam_row), ball.center, ball.radius
    if ball.norm == "1":  # x, d: d >= |x - c|, sum d <= r
        eye = np.eye(n)
        A = np.block([[eye, -eye], [-eye, -eye], [np.zeros((1, n)), np.ones((1, n))]])
        res = linprog(np.r_[lam_row, np.zeros(n)], A_ub=A, b_ub=np.r_[c, -c, r],
                      bounds=list(zip(lo, hi)) + [(0, None)] * n, method="highs")
        return res.fun
    best = np.inf
    for start in (np.clip(c, lo, hi), np.clip(c - lam_row / np.linalg.norm(lam_row) * r, lo, hi)):
        res = minimize(lambda x: lam_row @ x, start, jac=lambda x: lam_row, method="SLSQP",
                       bounds=list(zip(lo, hi)), options={"ftol": 1e-14, "maxiter": 500},
                       constraints=[{"type": "ineq", "fun": lambda x: r * r - np.sum((x - c) ** 2),
                                     "jac": lambda x: -2 * (x - c)}])
        if np.sum((res.x - c) ** 2) <= r * r * (1 + 1e-9):
            best = min(best, lam_row @ res.x)
    return best


def _violations(bound_fn, seeds=range(40)):
    """(sampled points below the bound, largest shortfall against the solver) over the instances."""
    below, shortfall = 0, 0.0
    for seed in seeds:
        rng, ball, lo, hi, lam, const = _instance(seed)
        bound = bound_fn(lam, const, lo, hi, ball)
        pts = _ball_points(rng, ball.center, ball.radius, ball.norm, lo, hi, 4000)
        values = pts @ lam.T + const
        below += int(np.sum(values < bound[None, :]))
        for i in range(len(lam)):
            exact = _solver_minimum(lam[i], lo, hi, ball) + const[i]
            if not np.isfinite(exact):  # SLSQP did not converge from either start
                continue
            below += int(exact < bound[i] - 1e-9 * max(1.0, abs(exact)))
            shortfall = max(shortfall, (exact - bound[i]) / max(1.0, abs(exact)))
    return below, shortfall


def test_ball_bound_is_sound_and_tight():
    below, shortfall = _violations(_padded)
    assert below == 0
    assert shortfall < 1e-6  # the dual's multiplier is exact: only padding and the solvers' tolerances remain


def test_ball_bound_never_below_the_box_bound():
    for seed in range(40):
        _, ball, lo, hi, lam, const = _instance(seed)
        box, _, _ = concretize(lam, const, lo, hi, None)
        assert np.all(_padded(lam, const, lo, hi, ball) >= box - 1e-9 * (1 + np.abs(box)))


def test_a_bound_raised_by_a_hair_is_caught():
    def broken(lam, const, lo, hi, ball):
        b = _padded(lam, const, lo, hi, ball)
        return b + 1e-4 * (1 + np.abs(b))
    below, _ = _violations(broken)
    assert below > 0


def test_points_lie_in_the_set():
    for seed in range(40):
        _, ball, lo, hi, lam, const = _instance(seed)
        _, _, pts = concretize(lam, const, lo, hi, ball)
        assert np.all(pts >= lo) and np.all(pts <= hi)
        d = np.abs(pts - ball.center)
        dist = d.sum(1) if ball.norm == "1" else np.sqrt((d * d).sum(1))
        assert np.all(dist <= ball.radius * (1 + 1e-9) + 1e-12)


def test_float32_steering_pass_runs():
    _, ball, lo, hi, lam, const = _instance(3)
    v32, _, p32 = concretize(lam.astype(np.float32), const.astype(np.float32), lo.astype(np.float32),
                             hi.astype(np.float32), ball)
    v64, _, _ = concretize(lam, const, lo, hi, ball)
    assert v32.dtype == np.float32 and p32.dtype == np.float32
    assert np.allclose(v32, v64, rtol=1e-3, atol=1e-3 * np.abs(lam).sum())


def test_ball_rejects_bad_arguments():
    with pytest.raises(ValueError):
        NormBall(np.zeros(2), 1.0, "inf")
    with pytest.raises(ValueError):
        NormBall(np.zeros(2), float("nan"), "2")
    # membership is read off the one rounded-up distance (metrics/norms.py), never a second copy of it
    from exactverify.metrics.norms import norm_distance
    assert norm_distance([0.6, 0.8 - 1e-9], np.zeros(2), "2") <= 1.0
    assert norm_distance([0.6, 0.41], np.zeros(2), "1") > 1.0


@pytest.mark.parametrize("norm", ["1", "2"])
@pytest.mark.parametrize("seed", range(6))
def test_crown_over_a_ball_holds_at_sampled_points_and_is_tighter(norm, seed):
    rng = np.random.default_rng(seed)
    net = random_network([6, 10, 8, 3], seed=seed)
    x0 = rng.uniform(0.2, 0.8, 6)
    r = float(rng.choice([0.1, 0.4, 1.0]))
    lo, hi = linf_ball(x0, r, (0.0, 1.0))
    ball = NormBall(x0, r, norm)
    with_ball = crown_bounds(net, lo, hi, alpha="optimized", ball=ball)
    box = crown_bounds(net, lo, hi, alpha="optimized")
    pts = _ball_points(rng, x0, r, norm, lo, hi, 20000)
    h = pts
    for k, layer in enumerate(net.layers):
        h = layer.apply(h)
        assert np.all(h >= with_ball.lower[k][None, :]) and np.all(h <= with_ball.upper[k][None, :])
    widths = sum(np.sum(u - l) for l, u in zip(with_ball.lower, with_ball.upper))
    assert widths <= sum(np.sum(u - l) for l, u in zip(box.lower, box.upper)) + 1e-9
    C = np.eye(3)[[0, 1]] - np.eye(3)[[2, 2]]
    low, high = linear_objective_bounds(net, with_ball, C, alpha="optimized")
    ys = net.forward(pts)
    assert np.all(ys @ C.T >= low - 1e-12) and np.all(ys @ C.T <= high + 1e-12)


def test_broken_ball_dual_is_caught_by_sampling(monkeypatch):
    """A dual that forgets the multiplier's r term (mu r^2 / mu r) claims too much: sampling sees it."""
    real_l2 = norm_ball._l2

    def broken(lam, const, lo, hi, c, r, *steer):
        value, mag, point = real_l2(lam, const, lo, hi, c, r, *steer)
        return value + 0.5 * np.linalg.norm(lam, axis=1) * r, mag, point
    monkeypatch.setattr(norm_ball, "_l2", broken)
    found = 0
    for seed in range(1, 40, 2):  # the L2 instances
        rng, ball, lo, hi, lam, const = _instance(seed)
        assert ball.norm == "2"
        b = _padded(lam, const, lo, hi, ball)
        vals = _ball_points(rng, ball.center, ball.radius, "2", lo, hi, 4000) @ lam.T + const
        found += int(np.sum(vals < b[None, :]))
    assert found > 0


def test_steering_value_is_the_value_at_the_same_point_and_never_a_bound(monkeypatch):
    """concretize(steer=True) (ReLU splitting's float32 steps): the same point, and a value equal to the
    bound's up to rounding; padded_minimum never reads it, so a broken steering value leaves every
    sound bound as it was."""
    sound = []
    for seed in range(1, 40, 2):  # the L2 instances
        _, ball, lo, hi, lam, const = _instance(seed)
        value, _, point = concretize(lam, const, lo, hi, ball)
        steer, mag, steer_point = concretize(lam, const, lo, hi, ball, steer=True)
        assert mag is None and np.array_equal(steer_point, point)
        assert np.allclose(steer, value, rtol=1e-9, atol=1e-9 * (np.abs(lam) @ np.maximum(np.abs(lo), np.abs(hi))).max())
        sound.append(_padded(lam, const, lo, hi, ball))
    real = norm_ball._l2

    def broken(lam, const, lo, hi, c, r, steer=False):
        value, mag, point = real(lam, const, lo, hi, c, r, steer)
        return (value + 1e3, mag, point) if steer else (value, mag, point)
    monkeypatch.setattr(norm_ball, "_l2", broken)
    for seed, before in zip(range(1, 40, 2), sound):
        _, ball, lo, hi, lam, const = _instance(seed)
        assert concretize(lam, const, lo, hi, ball, steer=True)[0][0] > 100 + concretize(lam, const, lo, hi, ball)[0][0]
        assert np.array_equal(_padded(lam, const, lo, hi, ball), before)
