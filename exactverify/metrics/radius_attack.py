"""The upper-bound side of the radius search: counterexamples, found by attacks and linear-region LPs,
and re-checked before they count.

A counterexample we report is held to more than the solver's y_j - y_label >= 0: after it is moved
onto the float32 grid inside the domain, some j != label has y_j > y_label STRICTLY in the float64
and in the float32 forward pass of the original network (`recheck`). To get one from a solver's
boundary point we step a tiny bit beyond it (`strict_point`); the upper bound is the distance of the
point that re-checked (`Best`), never a solver's objective.

The points come from PGD with its radius bisected (`attack`), and from region descent
(`region_descent`): Bastani's LP solved in the linear region of a point found so far instead of
x0's, then in the next region across the optimum's facet, while the distance falls.
"""

from __future__ import annotations

import math
import time

import numpy as np

from ..core.network import Network
from ..core.property import linf_ball
from ..core.regions import linear_region
from .bastani import region_minimum
from .norms import dual_direction, norm_distance


def flip_margin(y: np.ndarray, label: int):
    """(max_{j != label} y_j - y_label, that j)."""
    others = np.array(y, dtype=np.float64)
    others[label] = -np.inf
    j = int(np.argmax(others))
    return float(others[j] - y[label]), j


def recheck(network: Network, x, label: int, lo=None, hi=None):
    """The float32 snap of x (inside [lo, hi]) if it flips the label STRICTLY in float64 and float32.

    Returns {"x", "y", "y_float32", "class"} or None.
    """
    from ..core.check import snap_to_float32_box
    n = network.input_size
    lo = np.full(n, -np.inf) if lo is None else lo
    hi = np.full(n, np.inf) if hi is None else hi
    xs = snap_to_float32_box(np.asarray(x, dtype=np.float64), lo, hi)
    if xs is None or not np.all(np.isfinite(xs)):
        return None
    y64 = network.forward(xs)
    y32 = network.forward32(xs).astype(np.float64)
    m64, j = flip_margin(y64, label)
    m32, _ = flip_margin(y32, label)
    if not (m64 > 0 and m32 > 0 and np.all(np.isfinite(y64)) and np.all(np.isfinite(y32))):
        return None
    return {"x": xs, "y": y64, "y_float32": y32, "class": j}


def strict_point(network: Network, x0, xstar, label: int, norm: str, lo, hi, seed: int = 0, deeper=None):
    """The nearest (to x0) of many points at or just beyond xstar that re-check with a strict flip.

    Candidates, for step sizes s from 1e-11 to 1e-3 (times max(1, |xstar|)) in factors of 2: the ray
    from x0 through xstar scaled by 1 + s, a step of s along the norm's steepest-ascent direction of
    y_j - y_label and one along its gradient (both without the coordinates that the domain stops),
    and a few random points at L-inf distance s (for solver points at degenerate
    vertices, where the gradient of the current linear piece does not help), and `deeper` (points
    known to lie well inside the flip region: the bisection below then walks back from them to xstar,
    through a flip region that is convex within a linear region). All are moved onto
    the float32 grid inside [lo, hi] and run in float64 and float32; the label must lose strictly in
    both. Returns {"x", "y", "y_float32", "class", "distance"} or None.
    """
    from ..search.attack import forward_with_cache, input_gradient
    from ..core.check import snap_to_float32_box
    x0 = np.asarray(x0, dtype=np.float64)
    xstar = np.clip(np.asarray(xstar, dtype=np.float64), lo, hi)
    n = len(xstar)
    y, cache = forward_with_cache(network, xstar[None, :])
    _, j = flip_margin(y[0], label)
    gout = np.zeros((1, network.output_size))
    gout[0, j], gout[0, label] = 1.0, -1.0
    g = input_gradient(network, cache, gout)[0]
    # a coordinate at the domain's edge cannot move further out (a point in a corner of the domain
    # would otherwise step along a coordinate that clipping undoes)
    g = np.where(((g > 0) & (xstar >= hi)) | ((g < 0) & (xstar <= lo)), 0.0, g)
    direction = dual_direction(g, norm)
    scale = max(1.0, float(np.max(np.abs(xstar))) if n else 1.0)
    steps = 1e-11 * 2.0 ** np.arange(0, 28)  # up to ~1.3e-3
    rng = np.random.default_rng(seed)
    k_rand = 4
    cands = [xstar[None, :],
             x0 + (1 + steps[:, None]) * (xstar - x0),
             xstar + (steps * scale)[:, None] * direction,
             xstar + (steps * scale)[:, None] * dual_direction(g, "2"),
             (xstar + (np.repeat(steps, k_rand) * scale)[:, None] * rng.uniform(-1, 1, (len(steps) * k_rand, n)))]
    if deeper is not None:
        cands.append(np.atleast_2d(np.asarray(deeper, dtype=np.float64)))
    X = np.clip(np.vstack(cands), lo, hi)
    X32 = np.clip(X, lo, hi).astype(np.float32).astype(np.float64)
    # keep the float32 rounding inside [lo, hi] (snap_to_float32_box, row by row, where it left it)
    out = np.any((X32 < lo) | (X32 > hi), axis=1)
    for r in np.flatnonzero(out):
        sn = snap_to_float32_box(X[r], lo, hi)
        X32[r] = sn if sn is not None else np.nan
    X32 = X32[np.all(np.isfinite(X32), axis=1)]
    if len(X32) == 0:
        return None
    y64 = network.forward(X32)
    y32 = network.forward32(X32).astype(np.float64)
    o64, o32 = y64.copy(), y32.copy()
    o64[:, label] = -np.inf
    o32[:, label] = -np.inf
    maybe = np.flatnonzero((o64.max(1) > y64[:, label]) & (o32.max(1) > y32[:, label])
                           & np.all(np.isfinite(y64), axis=1) & np.all(np.isfinite(y32), axis=1))
    if len(maybe) == 0:
        return None
    dists = np.array([norm_distance(X32[i], x0, norm) for i in maybe])
    found = None
    for i in maybe[np.argsort(dists)]:  # the batch pass only pre-filters: each point is re-checked alone
        found = recheck(network, X32[i], label, lo, hi)
        if found is not None:
            break
    if found is None:
        return None
    # bisect on the segment from xstar to the point that passed: the flip sets in at some lambda
    p, lam_lo, lam_hi = found["x"], 0.0, 1.0
    for _ in range(60):
        mid = 0.5 * (lam_lo + lam_hi)
        chk = recheck(network, xstar + mid * (p - xstar), label, lo, hi)
        if chk is not None and norm_distance(chk["x"], x0, norm) <= norm_distance(found["x"], x0, norm):
            found, lam_hi = chk, mid
        else:
            lam_lo = mid
        if lam_hi - lam_lo <= 1e-9 * lam_hi:
            break
    return {**found, "distance": norm_distance(found["x"], x0, norm)}


def as_counterexample(chk) -> dict | None:
    """A re-checked point as the JSON-safe counterexample of a RadiusResult (None stays None)."""
    if chk is None:
        return None
    return {"x": [float(v) for v in chk["x"]], "y": [float(v) for v in chk["y"]],
            "y_float32": [float(v) for v in chk["y_float32"]], "class": int(chk["class"]),
            "distance": float(chk["distance"])}


class Best:
    """The best re-checked counterexample so far."""

    def __init__(self):
        self.upper = math.inf
        self.point = None
        self.source = None

    def offer(self, chk, source: str) -> bool:
        """Keep `chk` (a re-checked point, or None) if it is closer than the best so far; True if kept."""
        if chk is not None and chk["distance"] < self.upper:
            self.upper = float(chk["distance"])
            self.point = chk
            self.source = source
            return True
        return False


# ------------------------------------------------------------------ attacks

def _pgd(network: Network, x0, label, norm, dlo, dhi, r: float, rng, starts: int = 16, steps: int = 40):
    """Batched PGD maximising max_{j != label} y_j - y_label over {||x - x0|| <= r} ∩ domain.

    L-inf: signed-gradient steps and clipping. L2 and L1: normalised-gradient steps, projection
    onto the L2 ball of radius r, then clipping (for L1 a heuristic: a point found counts with its
    own L1 distance).
    Returns the points (batch, n) with a positive margin at some step (not yet re-checked).
    """
    from ..search.attack import forward_with_cache, input_gradient
    n = len(x0)
    lo, hi = linf_ball(x0, r, (dlo, dhi))
    if norm == "inf":
        x = lo + rng.random((starts, n)) * (hi - lo)
        x[0] = x0
    else:
        d = rng.standard_normal((starts, n))
        d *= (r * rng.random((starts, 1))) / np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-300)
        x = np.clip(x0 + d, lo, hi)
    step = r / 4
    found = []
    for t in range(steps):
        y, cache = forward_with_cache(network, x)
        others = y.copy()
        others[:, label] = -np.inf
        j = others.argmax(1)
        margin = others[np.arange(len(x)), j] - y[:, label]
        if np.any(margin > 0):
            found.append(x[margin > 0][np.argsort(-margin[margin > 0])[:2]].copy())
            if len(found) >= 2:
                break
        gout = np.zeros_like(y)
        gout[np.arange(len(x)), j] = 1.0
        gout[:, label] -= 1.0
        g = input_gradient(network, cache, gout)
        if norm == "inf":
            x = np.clip(x + step * np.sign(g), lo, hi)
        else:
            gn = np.maximum(np.linalg.norm(g, axis=1, keepdims=True), 1e-300)
            x = x + step * g / gn
            dx = x - x0
            dn = np.maximum(np.linalg.norm(dx, axis=1, keepdims=True), 1e-300)
            x = np.clip(x0 + dx * np.minimum(1.0, r / dn), lo, hi)
        if (t + 1) % 10 == 0:
            step *= 0.5
    return np.vstack(found) if found else np.zeros((0, n))


def attack(network: Network, x0, label, norm, dlo, dhi, r_lo: float, r_hi: float, best: Best, deadline: float,
            rounds: int = 10, seed: int = 0):
    """PGD with the radius bisected in (r_lo, r_hi]; re-checked points go to `best`."""
    if network.output_size < 2:
        return
    rng = np.random.default_rng(seed)
    finite_domain = np.all(np.isfinite(dlo)) and np.all(np.isfinite(dhi))
    if not math.isfinite(r_hi):
        r_hi = (float(np.max(np.maximum(x0 - dlo, dhi - x0))) if finite_domain
                else 1e3 * max(1.0, float(np.max(np.abs(x0)))))
    lo_r, hi_r = r_lo, r_hi
    r = r_hi
    succeeded = False
    for _ in range(rounds):
        if time.perf_counter() >= deadline:
            break
        pts = _pgd(network, x0, label, norm, dlo, dhi, r, rng)
        ok = False
        order = np.argsort([norm_distance(p, x0, norm) for p in pts]) if len(pts) else []
        for k in order:  # the nearest point that re-checks
            chk = strict_point(network, x0, pts[k], label, norm, dlo, dhi)
            if chk is not None:
                best.offer(chk, "attack")
                ok = True
                break
        if ok:
            succeeded = True
            hi_r = min(r, best.upper)
        else:
            lo_r = r
            if not succeeded:
                break  # nothing at the largest radius: bisecting below it is pointless
        if hi_r - lo_r <= 0.01 * hi_r:
            break
        r = 0.5 * (lo_r + hi_r)


def _targeted_ends(network: Network, x0, label: int, j: int, dlo, dhi, r: float, rng, starts: int = 4,
                   steps: int = 30) -> np.ndarray:
    """End points of signed-gradient ascent on y_j - y_label in the L-inf box of radius r (not
    re-checked, and not necessarily flipped: they only pick linear regions to search)."""
    from ..search.attack import forward_with_cache, input_gradient
    lo, hi = linf_ball(x0, r, (dlo, dhi))
    x = lo + rng.random((starts, len(x0))) * (hi - lo)
    x[0] = x0
    gout = np.zeros((starts, network.output_size))
    gout[:, j], gout[:, label] = 1.0, -1.0
    step = r / 4
    for t in range(steps):
        _, cache = forward_with_cache(network, x)
        x = np.clip(x + step * np.sign(input_gradient(network, cache, gout)), lo, hi)
        if (t + 1) % 10 == 0:
            step *= 0.5
    y = network.forward(x)
    return x[np.argsort(-(y[:, j] - y[:, label]))]


# ------------------------------------------------------------------ region descent

def region_descent(network: Network, x0, label: int, norm: str, dlo, dhi, best: "Best", deadline: float,
                    stats: dict, start=None, j: int | None = None, max_steps: int = 10) -> None:
    """Improve the best point by linear-region LPs: the nearest point of the linear region of `start`
    (default: the best point) where class j (default: the best point's) beats the label, i.e.
    Bastani's LP in that region instead of x0's; then the same in the neighbouring region just past
    that optimum towards x0, while the distance falls. A local search: on MNIST 256x2 the first LP
    from an attack point lands within 1e-5 of rho. Every point goes through `strict_point` before it
    can become the upper bound."""
    if start is None:
        if best.point is None:
            return
        start, j = best.point["x"], best.point["class"]
    x = np.asarray(start, dtype=np.float64)
    value = math.inf
    for _ in range(max_steps):
        if time.perf_counter() >= deadline:
            return
        v, p = region_minimum(linear_region(network, x), x0, label, int(j), norm, dlo, dhi)
        stats["region_lps"] = stats.get("region_lps", 0) + 1
        if p is None or not v < value * (1 - 1e-12):
            return
        value = v
        best.offer(strict_point(network, x0, p, label, norm, dlo, dhi), "region")
        x = p + 1e-7 * (x0 - p)  # a point across the facet the optimum lies on, in the next region


def descend_all_classes(network: Network, x0, label: int, norm: str, dlo, dhi, best: "Best", deadline: float,
                         stats: dict, seed: int = 0, starts: int = 1) -> None:
    """Region descent from the best point, then from `starts` points per other class (the nearest
    flip may be to another class): for L-inf the best end points of targeted ascent within the
    L-inf box of the best distance, for L1 and L2 minimum-norm walks (`min_norm_walk`) from x0 and
    from random points near it."""
    region_descent(network, x0, label, norm, dlo, dhi, best, deadline, stats)
    if not math.isfinite(best.upper) and norm == "inf":
        return
    rng = np.random.default_rng(seed)
    for j in range(network.output_size):
        if j == label or (norm == "inf" and best.point is not None and j == best.point["class"]):
            continue
        if time.perf_counter() >= deadline:
            return
        if norm == "inf":
            ends = _targeted_ends(network, x0, label, j, dlo, dhi, best.upper, rng)[:starts]
        else:
            ends = min_norm_walk(network, x0, label, j, norm, dlo, dhi, rng, starts)
        for start in ends:
            if norm != "inf":
                best.offer(strict_point(network, x0, start, label, norm, dlo, dhi), "walk")
            region_descent(network, x0, label, norm, dlo, dhi, best, deadline, stats, start=start, j=j)


def min_norm_walk(network: Network, x0, label: int, j: int, norm: str, dlo, dhi, rng, starts: int = 1,
                  steps: int = 100, overshoot: float = 0.02) -> np.ndarray:
    """End points of walks from x0 (and from starts - 1 random points near it) towards class j by
    linearised minimum-norm steps, as DeepFool (L2: along the gradient of y_j - y_label, by the margin
    over its squared norm) and SparseFool-like greedy coordinate steps (L1: the coordinate with the
    largest gradient that can still move, by the margin over that gradient), clipped to the domain,
    until y_j > y_label. Not re-checked: they start region descents and go through `strict_point`."""
    from ..search.attack import forward_with_cache, input_gradient
    n = len(x0)
    x = np.tile(np.asarray(x0, dtype=np.float64), (starts, 1))
    if starts > 1:
        x[1:] = np.clip(x[1:] + 0.02 * rng.standard_normal((starts - 1, n)), dlo, dhi)
    done = np.zeros(starts, dtype=bool)
    gout = np.zeros((starts, network.output_size))
    gout[:, j], gout[:, label] = 1.0, -1.0
    rows = np.arange(starts)
    for _ in range(steps):
        y, cache = forward_with_cache(network, x)
        margin = y[:, label] - y[:, j]
        done |= margin < 0
        if done.all():
            break
        g = input_gradient(network, cache, gout)  # d(y_j - y_label)/dx
        # a coordinate at the domain's edge cannot move further that way
        g = np.where(((g > 0) & (x >= dhi)) | ((g < 0) & (x <= dlo)), 0.0, g)
        need = (np.maximum(margin, 0.0) * (1 + overshoot) + 1e-9)
        if norm == "2":
            step = (need / np.maximum(np.sum(g * g, axis=1), 1e-300))[:, None] * g
        else:
            i = np.argmax(np.abs(g), axis=1)
            gi = g[rows, i]
            step = np.zeros_like(x)
            step[rows, i] = np.where(gi != 0, need / np.where(gi != 0, gi, 1.0), 0.0)
        x = np.where(done[:, None], x, np.clip(x + step, dlo, dhi))
    return x[done]
