"""Input sets beyond boxes: an L1 or L2 ball intersected with the input box, and the one routine that
bounds a linear function over an input set (`concretize`), for CROWN and ReLU splitting alike.

A backward pass ends with linear lower bounds lam . x + const on what it bounds; the input set enters
only here, where the minimum over it is taken. Over a box [lo, hi] that minimum is the corner
lam+ . lo + lam- . hi. Over B = [lo, hi] ∩ {||x - c||_p <= r} it comes from Lagrangian duality: for
every mu >= 0,

    min_{x in B} lam . x  >=  g(mu) = min_{x in [lo, hi]} lam . x + mu (phi(x) - phi_r),

with phi(x) = ||x - c||_1, phi_r = r (L1) or phi(x) = ||x - c||_2^2, phi_r = r^2 (L2). The inner minimum
splits by coordinate, so g(mu) is a sum of one-dimensional minima; mu = 0 gives the box corner, and
the best mu gives the exact minimum over B (strong duality: B is convex and has a Slater point when
r > 0). Any mu gives a sound bound, so mu only has to be good, not exact; it is chosen exactly
anyway, by sorting each row's breakpoints (a fractional knapsack for L1, the clipped scaling
-t lam for L2), in O(n log n) a row.

Floating point. Each one-dimensional minimum is bounded below in a way that is exact whatever the
computed minimiser: for L1 the minimum of a convex piecewise-linear function with one kink lies at
lo, hi or the clipped kink, and all three are evaluated; for L2 any p in [lo, hi] gives the tangent
bound q(p) + min(q'(p) (lo - p), q'(p) (hi - p)) <= min q, by convexity. What remains is the
rounding of a sum of products, bounded by the magnitude returned next to the value (each term's
absolute size, intermediates included) and padded in `padded_minimum` with `padding.pad_lower` and
CONCRETIZE_TERMS more terms than the backward pass needs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .padding import magnitude, pad_lower

CONCRETIZE_TERMS = 16  # extra rounding steps per coordinate of the ball's dual, for its padding


@dataclass(frozen=True)
class NormBall:
    """{x : ||x - center||_norm <= radius}, norm "1" or "2" (an L-inf ball is a box and needs no ball)."""

    center: np.ndarray
    radius: float
    norm: str

    def __post_init__(self):
        if self.norm not in ("1", "2"):
            raise ValueError(f"a NormBall is an L1 or L2 ball, not {self.norm!r}")
        if not (np.isfinite(self.radius) and self.radius >= 0):
            raise ValueError(f"ball radius must be finite and >= 0, not {self.radius}")


def padded_minimum(lam, const, lo, hi, ball: NormBall | None, mag, terms: int):
    """The sound end of a backward pass: `concretize`, padded (padding.pad_lower) for the pass's own
    rounding (`mag`, `terms`) and the concretisation's. With a ball, the error in lam is bounded as
    without one (times the box's magnitude, which bounds |x| on the set) and the dual's own rounding
    adds its magnitude and CONCRETIZE_TERMS terms. Returns (padded lower bounds, point)."""
    value, own, point = concretize(lam, const, lo, hi, ball)
    if ball is not None:
        own = own + np.abs(lam) @ magnitude(lo, hi)
        terms += CONCRETIZE_TERMS
    return pad_lower(value, mag + own, terms), point


def concretize(lam, const, lo, hi, ball: NormBall | None = None, steer: bool = False):
    """min over the input set of each row of lam @ x + const, unpadded: (value, magnitude, point).

    value is the float bound before padding (`padded_minimum` pads it); point is a minimiser of the
    row's Lagrangian (the box corner without a ball), inside [lo, hi]: the gradient of the bound with
    respect to lam, and a candidate input. Works in the dtype of lam (float32 for steering passes).
    steer: only to steer an optimisation, never a bound: over an L2 ball, value is lam . point + const at
    the computed minimiser, without the tangent bound that makes it exact whatever the minimiser, and
    magnitude is None.
    """
    if ball is None:
        value = np.maximum(lam, 0) @ lo + np.minimum(lam, 0) @ hi + const
        return value, np.abs(lam) @ magnitude(lo, hi) + np.abs(const), np.where(lam >= 0, lo, hi)
    dt = lam.dtype
    c = np.asarray(ball.center, dtype=dt)
    lo, hi = np.asarray(lo, dtype=dt), np.asarray(hi, dtype=dt)
    if ball.norm == "1":
        return _l1(lam, const, lo, hi, c, dt.type(ball.radius))
    return _l2(lam, const, lo, hi, c, dt.type(ball.radius), steer)


def _caps(lam, lo, hi, c):
    """How far each coordinate can move from c (clipped into [lo, hi]) in the direction that lowers lam . x."""
    down = np.maximum(np.clip(c, lo, hi) - lo, 0)
    up = np.maximum(hi - np.clip(c, lo, hi), 0)
    return np.where(lam > 0, down, np.where(lam < 0, up, 0))


def _l1(lam, const, lo, hi, c, r):
    """The L1 ball: mu at the knapsack threshold, then g(mu) from the three candidate points per coordinate."""
    a = np.abs(lam)
    cap = _caps(lam, lo, hi, c)
    order = np.argsort(-a, axis=1)
    a_s = np.take_along_axis(a, order, 1)
    cap_s = np.take_along_axis(cap, order, 1)
    before = np.cumsum(cap_s, axis=1) - cap_s  # budget used by the steeper coordinates
    amount_s = np.clip(r - before, 0, cap_s)
    # mu = the slope of the first coordinate that the budget does not fully cover (0 if all are)
    short = before + cap_s >= r
    k = np.argmax(short, axis=1)
    rows = np.arange(len(lam))
    mu = np.where(short[rows, k], a_s[rows, k], 0).astype(lam.dtype)
    amount = np.empty_like(amount_s)
    np.put_along_axis(amount, order, amount_s, 1)
    point = np.clip(c - np.sign(lam) * amount, lo, hi)
    cc = np.clip(c, lo, hi)
    m = mu[:, None]
    cand = [lam * x + m * np.abs(x - c) for x in (lo, hi, cc)]
    value = np.minimum(np.minimum(cand[0], cand[1]), cand[2]).sum(axis=1) - mu * r + const
    size = np.maximum(np.maximum(np.abs(lo), np.abs(hi)), np.abs(c))
    mag = a @ size + mu * (np.sum(size + np.abs(c)) + r) + np.abs(const)
    return value, mag, point


def _l2(lam, const, lo, hi, c, r, steer=False):
    """The L2 ball: t = 1 / (2 mu) where the clipped step -t lam reaches length r, then the tangent bound
    (steer: lam . point, see `concretize`)."""
    a = np.abs(lam)
    cap = _caps(lam, lo, hi, c)
    with np.errstate(divide="ignore", invalid="ignore"):
        tb = np.where(a > 0, cap / a, np.inf)  # the step length at which each coordinate hits its bound
    order = np.argsort(tb, axis=1)
    tb_s = np.take_along_axis(tb, order, 1)
    cap2_s = np.take_along_axis(cap * cap, order, 1)
    a2_s = np.take_along_axis(a * a, order, 1)
    clipped = np.cumsum(cap2_s, axis=1) - cap2_s  # squared length of the coordinates already at their bound
    free = np.cumsum(a2_s[:, ::-1], axis=1)[:, ::-1]  # sum of lam_i^2 over the coordinates still moving
    with np.errstate(invalid="ignore", over="ignore"):
        reach = clipped + np.where(np.isfinite(tb_s), free * tb_s * tb_s, np.inf)
    r2 = r * r
    short = reach >= r2
    k = np.argmax(short, axis=1)
    rows = np.arange(len(lam))
    binding = short[rows, k] & (free[rows, k] > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.sqrt(np.maximum(r2 - clipped[rows, k], 0) / free[rows, k])
    tiny = np.finfo(lam.dtype).tiny
    t = np.where(binding, np.maximum(t, tiny ** 0.5), 0)
    with np.errstate(divide="ignore", over="ignore"):
        mu = np.where(binding, 0.5 / np.where(binding, t, 1), 0).astype(lam.dtype)
    # where the ball does not bind (mu = 0) the minimiser is the box corner
    point = np.where(binding[:, None], np.clip(c - t[:, None] * lam, lo, hi), np.where(lam >= 0, lo, hi))
    if steer:
        return np.einsum("ij,ij->i", lam, point) + const, None, point
    m = mu[:, None]
    dev = point - c
    slope = lam + 2 * m * dev  # q'(p)
    value = (lam * point + m * dev * dev + np.minimum(slope * (lo - point), slope * (hi - point))).sum(axis=1)
    value = value - mu * r2 + const
    size_p = np.abs(point) + np.abs(c)
    A = a + 2 * m * size_p
    B = np.abs(point) + np.abs(lo) + np.abs(hi)
    mag = np.sum(A * B + m * size_p * size_p, axis=1) + mu * r2 + np.abs(const)
    return value, mag, point
