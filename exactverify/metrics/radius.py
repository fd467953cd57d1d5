"""Bastani et al.'s robustness metrics, computed exactly: pointwise robustness, adversarial frequency, severity.

Definitions (Bastani et al. 2016, "Measuring Neural Net Robustness with Constraints"), for a
classifier f, a point x0 with label c and a norm ||.||:

- pointwise robustness  rho(x0) = inf { eps >= 0 : some x with ||x - x0|| <= eps (and x in the
  domain box, if one is given) is misclassified };
- adversarial frequency phi(eps) = the fraction of points with rho <= eps;
- adversarial severity  mu(eps)  = the mean of rho over the points with rho <= eps.

Misclassified means: some other class j != c has y_j >= y_c (a tie counts). The set of such x is
closed, so the infimum is a minimum, and it is what a MILP with the constraint y_j - y_c >= 0
computes. A counterexample we *report* is held to more: after it is moved onto the float32 grid
inside the domain, some j != c has y_j > y_c STRICTLY in the float64 and in the float32 forward
pass of the original network (so argmax really changes in both). To get one we step a tiny bit
beyond the solver's boundary point (`_strict_point`); the upper bound is the distance of the point
that re-checked, never the solver's objective.

How rho is computed (`pointwise_robustness`):

1. A cheap lower bound: the largest L-inf radius at which CROWN proves every margin y_c - y_j > 0
   over (box of that radius) ∩ domain, by bisection. An L1 or L2 ball of radius r lies inside the
   L-inf box of radius r, so this lower-bounds rho in every norm.
2. A cheap upper bound R: re-checked points from Bastani's LP (the linear region of x0; by default
   only for inputs of at most 256 values) and from a PGD attack with its radius bisected (L-inf
   steps for L-inf, L2 steps otherwise), each stepped to a strict flip; else `max_radius`, else
   the domain.
2b. L-inf only (the default `method="checks"`): region descent and fixed-radius checks
   (`_close_by_checks`). Bastani's LP, solved in the linear region of the attack's point (and of
   targeted-ascent points for every other class) instead of x0's, and again in the next region
   across the optimum's facet, lowers R to a local minimum of the distance; then `verify` on the
   L-inf ball of radius R - 5e-7 max(1, R): unsat there proves rho >= that radius and closes the
   bracket; sat gives a closer point and the loop repeats. On the first six MNIST images
   (256x2, 60 s) this closed images 0, 1, 2 in 4-9 s, where the radius MILP of step 3 needed
   19-46 s or timed out; what is left open goes on to step 3.
3. The exact MILP over the search region B = domain ∩ (L-inf box of radius R around x0), which
   contains every candidate point of distance <= R in any of the norms: the big-M encoding of
   `encodings/milp.py` with neuron bounds (CROWN) valid over all of B, a radius column t in
   [cheap lower, R], and
   - L-inf: -t <= x_i - x0_i <= t;
   - L1: d_i >= |x_i - x0_i| (two rows each), sum_i d_i <= t;
   - L2: cutting planes: u.(x - x0) <= t for unit vectors u (an outer approximation of the ball:
     ||v||_2 >= u.v), starting with +-e_i; each solution x* with ||x* - x0||_2 > t* adds the tangent
     cut at x*, until the gap closes. Every relaxation's dual bound is a lower bound on rho, and
     every solution a candidate counterexample.
   The label change is a disjunction over the other classes, either one MILP per class j (the
   default: t <= the best upper bound so far, the class of the best point first; before each
   class the region shrinks to the best upper bound, and classes whose margin CROWN proves
   positive over it are skipped) or one MILP with a binary z_j per class and
   y_c - y_j <= M_j (1 - z_j), sum z_j >= 1 (`disjunction="binary"`). Measured on the first six
   MNIST images on mnist-net_256x2 (L-inf, 60 s, a loaded 2-core machine): per class solved
   images 0, 1, 2, 4 in 11, 23, 10, 9 s; binary in 15, 54, 36, 20 s; neither solved 3 and 5.
   The MILP is pruned (`_prune`) and solved without presolve and primal heuristics, which
   halved the times there.

Soundness. The LOWER bound is only ever the CROWN-certified radius, or a MILP's proven dual bound
padded outward by `DUAL_PAD` * max(1, |bound|) (the trust is the solver's LP tolerances, as for
an infeasible status), or R itself when the MILP is infeasible. The UPPER bound is only ever the
distance (rounded up) of a point that re-checked as above. Status: "exact" when
upper - lower <= 1e-6 * max(1, upper), "timeout" when the time ran out first, "bounded" otherwise
(e.g. no point re-checked, or the L2 cut loop stalled).

`bastani_estimate` is the paper's own approximation: the same minimum restricted to the linear
region (activation pattern) of x0, an LP (a QP for L2). Its value is >= rho (its optimum is a
misclassified point, in the closure of the region) or None when the region holds no misclassified
point.

`dataset_robustness` runs points on worker processes, appends each finished point to a jsonl
file (resume), and summarises phi and mu per eps over the correctly classified points (the
denominator; misclassified points are reported separately, as the paper does).
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..loaders.datasets import load_dataset  # noqa: F401  (re-exported: robustness.load_dataset)
from ..core.errors import InputError
from ..core.runtime import limit_worker_threads
from ..core.network import Affine, MaxGroups, Network, ReLU
from ..core.property import linf_ball, robustness_property
from ..core.regions import linear_region

NORMS = ("inf", "1", "2")
EXACT_RTOL = 1e-6  # "exact": upper - lower <= EXACT_RTOL * max(1, upper)
DUAL_PAD = 1e-7  # a MILP dual bound is lowered by this times max(1, |bound|) before use
# HiGHS settings for the radius MILPs: a gap far below EXACT_RTOL; no presolve and no primal heuristics
# (we bring our own upper bound as the bound on t, and on MNIST 256x2 these halved the solve times)
_MIP_OPTIONS = {"mip_rel_gap": 1e-7, "mip_abs_gap": 1e-9, "presolve": "off", "mip_heuristic_effort": 0.0,
                **{f"mip_heuristic_run_{h}": False for h in ("feasibility_jump", "rens", "rins", "root_reduced_cost",
                                                             "shifting", "zi_round")}}
_EPS = np.finfo(np.float64).eps


@dataclass
class RadiusResult:
    """Bounds on the pointwise robustness rho of one point: lower <= rho <= upper."""

    lower: float
    upper: float  # math.inf when no counterexample was found (then rho > lower is all we know)
    status: str  # "exact", "bounded" or "timeout"
    norm: str
    label: int
    predicted: int
    counterexample: dict | None = None  # {"x", "y", "y_float32", "class", "distance"} at the upper bound
    seconds: float = 0.0
    stats: dict = field(default_factory=dict)

    @property
    def value(self) -> float | None:
        """rho when exact, else None."""
        return self.upper if self.status == "exact" else None

    def as_dict(self) -> dict:
        """JSON-safe: an infinite bound is None (upper None: no counterexample found; lower None:
        no point of the domain is misclassified, rho = inf)."""
        d = asdict(self)
        d["upper"] = None if not math.isfinite(self.upper) else self.upper
        d["lower"] = None if not math.isfinite(self.lower) else self.lower
        return d


# ------------------------------------------------------------------ small helpers

def norm_distance(x, x0, norm: str) -> float:
    """||x - x0|| rounded up (a few ulps), so that it is never below the exact distance."""
    d = np.abs(np.asarray(x, dtype=np.float64) - np.asarray(x0, dtype=np.float64))
    n = len(d)
    if norm == "inf":
        v = float(np.max(d)) if n else 0.0
        return v * (1 + 2 * _EPS)
    if norm == "1":
        return float(np.sum(d)) * (1 + (n + 2) * _EPS)
    if norm == "2":
        return float(np.sqrt(np.sum(d * d))) * (1 + (n + 4) * _EPS)
    raise ValueError(f"unknown norm {norm!r} (choose from inf, 1, 2)")


def _check_norm(norm) -> str:
    norm = str(norm).lower().replace("l", "")
    if norm in ("infinity", "linf", "max"):
        norm = "inf"
    if norm not in NORMS:
        raise ValueError(f"unknown norm {norm!r} (choose from inf, 1, 2)")
    return norm


def _domain_arrays(domain, n: int):
    if domain is None:
        return np.full(n, -np.inf), np.full(n, np.inf)
    lo, hi = domain
    lo = np.broadcast_to(np.asarray(lo, dtype=np.float64), (n,)).copy()
    hi = np.broadcast_to(np.asarray(hi, dtype=np.float64), (n,)).copy()
    return lo, hi


def _flip_margin(y: np.ndarray, label: int):
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
    m64, j = _flip_margin(y64, label)
    m32, _ = _flip_margin(y32, label)
    if not (m64 > 0 and m32 > 0 and np.all(np.isfinite(y64)) and np.all(np.isfinite(y32))):
        return None
    return {"x": xs, "y": y64, "y_float32": y32, "class": j}


def _dual_direction(g: np.ndarray, norm: str) -> np.ndarray:
    """A unit-norm direction d maximising g.d (the steepest ascent for the norm)."""
    if norm == "inf":
        return np.sign(g)
    if norm == "1":
        d = np.zeros_like(g)
        k = int(np.argmax(np.abs(g)))
        d[k] = np.sign(g[k]) if g[k] != 0 else 1.0
        return d
    nrm = np.linalg.norm(g)
    return g / nrm if nrm > 0 else g


def _strict_point(network: Network, x0, xstar, label: int, norm: str, lo, hi, seed: int = 0):
    """The nearest (to x0) of many points at or just beyond xstar that re-check with a strict flip.

    Candidates, for step sizes s from 1e-11 to 1e-3 (times max(1, |xstar|)) in factors of 2: the ray
    from x0 through xstar scaled by 1 + s, a step of s along the norm's steepest-ascent direction of
    y_j - y_label, and a few random points at L-inf distance s (for solver points at degenerate
    vertices, where the gradient of the current linear piece does not help). All are moved onto
    the float32 grid inside [lo, hi] and run in float64 and float32; the label must lose strictly in
    both. Returns {"x", "y", "y_float32", "class", "distance"} or None.
    """
    from ..search.attack import forward_with_cache, input_gradient
    from ..core.check import snap_to_float32_box
    x0 = np.asarray(x0, dtype=np.float64)
    xstar = np.clip(np.asarray(xstar, dtype=np.float64), lo, hi)
    n = len(xstar)
    y, cache = forward_with_cache(network, xstar[None, :])
    _, j = _flip_margin(y[0], label)
    gout = np.zeros((1, network.output_size))
    gout[0, j], gout[0, label] = 1.0, -1.0
    g = input_gradient(network, cache, gout)[0]
    direction = _dual_direction(g, norm)
    scale = max(1.0, float(np.max(np.abs(xstar))) if n else 1.0)
    steps = 1e-11 * 2.0 ** np.arange(0, 28)  # up to ~1.3e-3
    rng = np.random.default_rng(seed)
    k_rand = 4
    cands = [xstar[None, :],
             x0 + (1 + steps[:, None]) * (xstar - x0),
             xstar + (steps * scale)[:, None] * direction,
             (xstar + (np.repeat(steps, k_rand) * scale)[:, None] * rng.uniform(-1, 1, (len(steps) * k_rand, n)))]
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
    for _ in range(40):
        mid = 0.5 * (lam_lo + lam_hi)
        chk = recheck(network, xstar + mid * (p - xstar), label, lo, hi)
        if chk is not None and norm_distance(chk["x"], x0, norm) <= norm_distance(found["x"], x0, norm):
            found, lam_hi = chk, mid
        else:
            lam_lo = mid
        if lam_hi - lam_lo <= 1e-6 * lam_hi:
            break
    return {**found, "distance": norm_distance(found["x"], x0, norm)}


def _as_ce(chk) -> dict | None:
    if chk is None:
        return None
    return {"x": [float(v) for v in chk["x"]], "y": [float(v) for v in chk["y"]],
            "y_float32": [float(v) for v in chk["y_float32"]], "class": int(chk["class"]),
            "distance": float(chk["distance"])}


class _Best:
    """The best re-checked counterexample so far."""

    def __init__(self):
        self.upper = math.inf
        self.point = None
        self.source = None

    def offer(self, chk, source: str) -> bool:
        if chk is not None and chk["distance"] < self.upper:
            self.upper = float(chk["distance"])
            self.point = chk
            self.source = source
            return True
        return False


# ------------------------------------------------------------------ cheap bounds

def _margin_matrix(n_out: int, label: int) -> np.ndarray:
    """Rows e_label - e_j for j != label."""
    others = [j for j in range(n_out) if j != label]
    C = np.zeros((len(others), n_out))
    C[np.arange(len(others)), label] = 1.0
    C[np.arange(len(others)), others] = -1.0
    return C


def _certified(net_s: Network, lo, hi, C) -> tuple[bool, np.ndarray, object]:
    from ..bounds.crown import crown_bounds, linear_objective_bounds
    lb = crown_bounds(net_s, lo, hi)
    low, _ = linear_objective_bounds(net_s, lb, C)
    return bool(np.all(low > 0)), low, lb


def _certified_radius(net_s: Network, x0, label, dlo, dhi, r_hi: float, deadline: float, iters: int = 14) -> float:
    """The largest L-inf radius (bisection in [0, r_hi]) at which CROWN proves the label; 0 if none."""
    C = _margin_matrix(net_s.output_size, label)
    lo_r, hi_r = 0.0, float(r_hi)
    if not math.isfinite(hi_r) or hi_r <= 0:
        return 0.0
    ok, _, _ = _certified(net_s, *linf_ball(x0, lo_r, (dlo, dhi)), C)
    if not ok:
        return 0.0
    for _ in range(iters):
        if time.perf_counter() > deadline:
            break
        mid = 0.5 * (lo_r + hi_r)
        ok, _, _ = _certified(net_s, *linf_ball(x0, mid, (dlo, dhi)), C)
        if ok:
            lo_r = mid
        else:
            hi_r = mid
    return lo_r


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


def _attack(network: Network, x0, label, norm, dlo, dhi, r_lo: float, r_hi: float, best: _Best, deadline: float,
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
            chk = _strict_point(network, x0, pts[k], label, norm, dlo, dhi)
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


# ------------------------------------------------------------------ Bastani's estimator

def bastani_estimate(network: Network, x0, label: int | None = None, norm: str = "inf", domain=None,
                     return_point: bool = False, max_rounds: int = 200):
    """Bastani et al.'s estimate of rho: the minimum distance to a misclassified point within the
    linear region (activation pattern) of x0 (and the domain, if given).

    An upper bound on rho (the minimiser is a misclassified point); None when the region holds no
    misclassified point. One LP per other class (a QP for L2), the least value wins, each solved
    as the paper does, by iterative constraint solving: start from the label-change constraint
    alone and add the region's constraints that the current solution violates until none is
    (the LP optimum over a subset that satisfies every constraint is the optimum over all; a
    subset that is infeasible proves the whole region infeasible). With `return_point`, returns
    (value, point) instead.
    """
    norm = _check_norm(norm)
    x0 = np.asarray(x0, dtype=np.float64).ravel()
    if label is None:
        label = int(np.argmax(network.forward(x0)))
    dlo, dhi = _domain_arrays(domain, len(x0))
    region = linear_region(network, x0)
    best_v, best_pt = None, None
    for j in range(network.output_size):
        if j == label:
            continue
        value, point = _region_minimum(region, x0, label, j, norm, dlo, dhi, max_rounds)
        if value is not None and (best_v is None or value < best_v):
            best_v, best_pt = value, point
    if return_point:
        return best_v, best_pt
    return best_v


def _region_minimum(region, x0, label: int, j: int, norm: str, dlo, dhi, max_rounds: int = 200):
    """min ||x - x0|| over the linear region `region` = (G, g, A, a) of some point (see core.regions.linear_region)
    and the domain, subject to y_j >= y_label there: (value, point), or (None, None) when infeasible
    or unsolved. The point is the solver's and is not re-checked here."""
    import highspy
    from ..solvers.highs import new_highs, run_highs
    G, g, A, a = region
    n = len(x0)
    # in d = x - x0: region G d >= region_rhs = -(G x0 + g); domain dlo - x0 <= d <= dhi - x0
    region_rhs = -(G @ x0 + g)
    d_lo, d_hi = dlo - x0, dhi - x0
    inf = highspy.kHighsInf
    fin = lambda v: np.where(np.isfinite(v), v, np.where(v > 0, inf, -inf))
    c_row = A[j] - A[label]
    c_rhs = -(c_row @ x0 + a[j] - a[label])  # c_row d >= c_rhs
    h = new_highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("threads", 1)
    if norm == "2":  # columns d; min d.d
        h.addVars(n, fin(d_lo), fin(d_hi))
        h.passHessian(n, n, highspy.HessianFormat.kTriangular, np.arange(n + 1, dtype=np.int32),
                      np.arange(n, dtype=np.int32), np.full(n, 2.0))
        ext = lambda row: row
    elif norm == "inf":  # columns d, t; min t; -t <= d_i <= t
        h.addVars(n + 1, fin(np.r_[d_lo, 0.0]), fin(np.r_[d_hi, np.inf]))
        h.changeColCost(n, 1.0)
        for i in range(n):
            h.addRow(0.0, inf, 2, np.array([i, n], dtype=np.int32), np.array([1.0, 1.0]))
            h.addRow(0.0, inf, 2, np.array([i, n], dtype=np.int32), np.array([-1.0, 1.0]))
        ext = lambda row: np.r_[row, 0.0]
    else:  # L1: d = p - q, p, q >= 0; min sum p + q
        h.addVars(2 * n, np.zeros(2 * n), fin(np.r_[np.maximum(d_hi, 0.0), np.maximum(-d_lo, 0.0)]))
        h.changeColsCost(2 * n, np.arange(2 * n, dtype=np.int32), np.ones(2 * n))
        for i in range(n):
            h.addRow(float(fin(d_lo[i])), float(fin(d_hi[i])), 2, np.array([i, n + i], dtype=np.int32),
                     np.array([1.0, -1.0]))
        ext = lambda row: np.r_[row, -row]

    def add(row, lo_):
        full = ext(row)
        idx = np.flatnonzero(full)
        h.addRow(float(lo_), inf, len(idx), idx.astype(np.int32), full[idx])

    add(c_row, c_rhs)
    for _ in range(max_rounds):
        run_highs(h)
        if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
            break  # infeasible (a subset of the region's constraints already excludes a flip)
        sol = np.array(h.getSolution().col_value, dtype=np.float64)
        d = sol[:n] - sol[n:] if norm == "1" else sol[:n]
        res = G @ d - region_rhs
        viol = np.flatnonzero(res < -1e-9 * (1.0 + np.abs(region_rhs)))
        if len(viol) == 0:
            return norm_distance(x0 + d, x0, norm), x0 + d
        for k in viol[np.argsort(res[viol])][:50]:  # the most violated first
            add(G[k], region_rhs[k])
    return None, None


# ------------------------------------------------------------------ the exact MILP

def _extend(model, col_lower, col_upper, integer, names, rows, cols, vals, row_lower, row_upper, row_names):
    """A copy of `model` with columns and rows appended (rows index all columns, old and new)."""
    import scipy.sparse as sp
    from ..encodings.milp import MilpModel, SMALL_ENTRY
    ncol = model.num_cols + len(col_lower)
    nrow_new = len(row_lower)
    vals = np.asarray(vals, dtype=np.float64)
    if np.any((np.abs(vals) < SMALL_ENTRY) & (vals != 0)):
        raise ValueError("a coefficient below HiGHS' small_matrix_value would be dropped")
    B = sp.csr_matrix((vals, (np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64))),
                      shape=(nrow_new, ncol))
    A_old = sp.csr_matrix((model.A.data, model.A.indices, model.A.indptr), shape=(model.num_rows, ncol))
    out = MilpModel(**{**model.__dict__,
                       "col_lower": np.concatenate([model.col_lower, col_lower]),
                       "col_upper": np.concatenate([model.col_upper, col_upper]),
                       "integrality": np.concatenate([model.integrality, np.full(len(col_lower), bool(integer))]),
                       "col_names": list(model.col_names) + list(names),
                       "A": sp.vstack([A_old, B]).tocsr(),
                       "row_lower": np.concatenate([model.row_lower, row_lower]),
                       "row_upper": np.concatenate([model.row_upper, row_upper]),
                       "row_names": list(model.row_names) + list(row_names),
                       "objective": np.concatenate([model.objective, np.zeros(len(col_lower))])})
    out.stats = dict(model.stats)
    return out


def _cut_rhs(u: np.ndarray, x0: np.ndarray) -> float:
    """An upper bound on the exact u.x0 (the row u.x - t <= rhs must not cut a real point)."""
    v = float(u @ x0)
    return v + (len(u) + 2) * _EPS * float(np.abs(u) @ np.abs(x0)) + 1e-300


def _radius_model(net_s, lb, x0, label, classes, norm, lo, hi, t_lo, t_hi, M=None):
    """The MILP min t: x in [lo, hi], the network, y_j >= y_label for some j in `classes`, and the norm rows.

    One class: the disjunct y_label - y_j <= 0 (build_milp's violation column bounded by 0).
    Several: binaries z_j with y_label - y_j <= M_j (1 - z_j), sum z_j >= 1.
    Returns (model, t column).
    """
    from ..encodings.milp import build_milp
    from ..core.property import Case, OutputConstraint
    n_out = net_s.output_size
    n = len(x0)
    if len(classes) == 1:
        a = np.zeros(n_out)
        a[label], a[classes[0]] = 1.0, -1.0
        disjunct = OutputConstraint(a[None, :], np.zeros(1))
    else:
        disjunct = OutputConstraint(np.zeros((0, n_out)), np.zeros(0))
    model = build_milp(net_s, lb, Case(lo, hi, [disjunct]), disjunct, tolerance=0.0)
    base = model.num_cols
    xc = np.asarray(model.input_cols, dtype=np.int64)
    cl, cu, names, rows, cols, vals, rl, ru, rn = [], [], [], [], [], [], [], [], []
    t = base
    cl.append(t_lo); cu.append(t_hi); names.append("t")
    r = 0
    if norm in ("inf", "2"):
        # x_i - t <= x0_i ; x_i + t >= x0_i  (for L2: the cuts u = +-e_i)
        for i in range(n):
            rows += [r, r]; cols += [xc[i], t]; vals += [1.0, -1.0]; rl.append(-np.inf); ru.append(x0[i]); r += 1
            rows += [r, r]; cols += [xc[i], t]; vals += [1.0, 1.0]; rl.append(x0[i]); ru.append(np.inf); r += 1
        rn += [f"rad{i}" for i in range(2 * n)]
    else:  # L1
        dcols = base + 1 + np.arange(n)
        cl += [0.0] * n
        cu += list(np.maximum(np.abs(lo - x0), np.abs(hi - x0)))
        names += [f"d{i}" for i in range(n)]
        for i in range(n):
            rows += [r, r]; cols += [dcols[i], xc[i]]; vals += [1.0, -1.0]; rl.append(-x0[i]); ru.append(np.inf); r += 1
            rows += [r, r]; cols += [dcols[i], xc[i]]; vals += [1.0, 1.0]; rl.append(x0[i]); ru.append(np.inf); r += 1
        rows += [r] * (n + 1); cols += list(dcols) + [t]; vals += [1.0] * n + [-1.0]; rl.append(-np.inf); ru.append(0.0)
        r += 1
        rn += [f"l1_{k}" for k in range(2 * n + 1)]
    model = _extend(model, np.array(cl, float), np.array(cu, float), False, names, rows, cols, vals,
                    np.array(rl, float), np.array(ru, float), rn)
    if len(classes) > 1:
        zc = model.num_cols + np.arange(len(classes))
        oc = model.output_cols
        rows, cols, vals, rl, ru = [], [], [], [], []
        for k, j in enumerate(classes):
            mj = max(float(M[k]), 1e-6)  # a larger M only relaxes
            entries = [(oc[label], 1.0), (oc[j], -1.0), (zc[k], mj)]
            for c, v in entries:
                if c >= 0:
                    rows.append(k); cols.append(c); vals.append(v)
            rl.append(-np.inf); ru.append(mj)
        kk = len(classes)
        rows += [kk] * kk; cols += list(zc); vals += [1.0] * kk; rl.append(1.0); ru.append(np.inf)
        model = _extend(model, np.zeros(kk), np.ones(kk), True, [f"z{j}" for j in classes], rows, cols, vals,
                        np.array(rl, float), np.array(ru, float), [f"or{j}" for j in classes] + ["or"])
    model.objective = np.zeros(model.num_cols)
    model.objective[t] = 1.0
    model.sense = "min"
    return _prune(model, t)


def _prune(model, t: int):
    """Drop each column that occurs in one row only, its own defining equality (z = W x + b of a neuron
    that is inactive or feeds nothing), together with that row. The row only says W x + b lies within
    z's bounds, which holds at every real point: dropping it relaxes the model (sound for the lower
    bound, and no real point is cut). On MNIST 256x2 it removes most of the dense first layer.
    Returns (model, the new index of t)."""
    from ..encodings.milp import MilpModel
    A = model.A.tocsc()
    counts = np.diff(A.indptr)
    protected = model.integrality.copy()
    protected[np.asarray(model.input_cols, dtype=np.int64)] = True
    protected[t] = True
    oc = np.asarray(model.output_cols, dtype=np.int64)
    protected[oc[oc >= 0]] = True
    cand = np.flatnonzero((counts == 1) & ~protected)
    if len(cand) == 0:
        return model, t
    rows = A.indices[A.indptr[cand]]
    eq = model.row_lower[rows] == model.row_upper[rows]
    cand, rows = cand[eq], rows[eq]
    rows, first = np.unique(rows, return_index=True)
    cand = cand[first]
    keep_r = np.ones(model.num_rows, bool)
    keep_r[rows] = False
    keep_c = np.ones(model.num_cols, bool)
    keep_c[cand] = False
    new = np.cumsum(keep_c) - 1
    out = MilpModel(**{**model.__dict__, "col_lower": model.col_lower[keep_c], "col_upper": model.col_upper[keep_c],
                       "integrality": model.integrality[keep_c],
                       "col_names": [c for c, k in zip(model.col_names, keep_c) if k],
                       "A": model.A.tocsr()[keep_r][:, keep_c].tocsr(),
                       "row_lower": model.row_lower[keep_r], "row_upper": model.row_upper[keep_r],
                       "row_names": [r for r, k in zip(model.row_names, keep_r) if k],
                       "objective": model.objective[keep_c],
                       "input_cols": new[np.asarray(model.input_cols, dtype=np.int64)],
                       "output_cols": np.where(oc >= 0, new[np.maximum(oc, 0)], -1),
                       "violation_col": int(new[model.violation_col]) if keep_c[model.violation_col] else -1})
    out.stats = dict(model.stats, pruned_rows=int(len(rows)))
    return out, int(new[t])


def _add_cut(model, t: int, u: np.ndarray, x0: np.ndarray):
    """Append the row u.x - t <= u.x0 (u of norm <= 1)."""
    xc = np.asarray(model.input_cols, dtype=np.int64)
    keep = np.abs(u) >= 1e-9  # dropping a tiny entry: shrink |u| instead, which keeps ||u|| <= 1
    u = np.where(keep, u, 0.0)
    cols = list(xc[keep]) + [t]
    vals = list(u[keep]) + [-1.0]
    m = _extend(model, np.zeros(0), np.zeros(0), False, [], [0] * len(cols), cols, vals,
                np.array([-np.inf]), np.array([_cut_rhs(u, x0)]), [f"cut{model.num_rows}"])
    m.objective = np.concatenate([model.objective])
    return m


def _l2_directions(network: Network, x0, label: int, classes, best) -> list:
    """Unit vectors (scaled by 1 - 1e-12) towards the best point so far and along the gradient of
    y_j - y_label at x0 for each class j: the first tangent cuts of the L2 cutting-plane loop."""
    from ..search.attack import forward_with_cache, input_gradient
    out = []
    if best.point is not None:
        d = np.asarray(best.point["x"]) - x0
        if np.linalg.norm(d) > 0:
            out.append(d)
    _, cache = forward_with_cache(network, x0[None, :])
    for j in classes:
        gout = np.zeros((1, network.output_size))
        gout[0, j], gout[0, label] = 1.0, -1.0
        g = input_gradient(network, cache, gout)[0]
        if np.linalg.norm(g) > 0:
            out.append(g)
    return [v / np.linalg.norm(v) * (1 - 1e-12) for v in out]


def _solve(model, time_limit: float, on_solution):
    from ..solvers.highs import solve_highs
    return solve_highs(model, time_limit=max(time_limit, 1e-3), on_solution=on_solution, options=dict(_MIP_OPTIONS))


def _closed(lower: float, upper: float) -> bool:
    """The bracket is closed: upper - lower <= EXACT_RTOL * max(1, upper) (and upper is finite)."""
    return math.isfinite(upper) and upper - lower <= EXACT_RTOL * max(1.0, upper)


def _padded(dual: float) -> float:
    return dual - DUAL_PAD * max(1.0, abs(dual))


def _check_radius(network: Network, x0, label: int, dlo, dhi, r: float, timeout: float, seed: int,
                  attack_time: float | None = None):
    """`verify` on the L-inf ball of radius r (within the domain): is some y_j >= y_label, j != label?"""
    from ..search.verifier import verify
    prop = robustness_property(x0, r, label, network.output_size, (dlo, dhi))
    return verify(network, prop, timeout=max(timeout, 1e-3), seed=seed, attack_time=attack_time)


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


def _region_descent(network: Network, x0, label: int, norm: str, dlo, dhi, best: "_Best", deadline: float,
                    stats: dict, start=None, j: int | None = None, max_steps: int = 10) -> None:
    """Improve the best point by linear-region LPs: the nearest point of the linear region of `start`
    (default: the best point) where class j (default: the best point's) beats the label, i.e.
    Bastani's LP in that region instead of x0's; then the same in the neighbouring region just past
    that optimum towards x0, while the distance falls. A local search: on MNIST 256x2 the first LP
    from an attack point lands within 1e-5 of rho. Every point goes through `_strict_point` before it
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
        v, p = _region_minimum(linear_region(network, x), x0, label, int(j), norm, dlo, dhi)
        stats["region_lps"] = stats.get("region_lps", 0) + 1
        if p is None or not v < value * (1 - 1e-12):
            return
        value = v
        best.offer(_strict_point(network, x0, p, label, norm, dlo, dhi), "region")
        x = p + 1e-7 * (x0 - p)  # a point across the facet the optimum lies on, in the next region


def _descend_all_classes(network: Network, x0, label: int, norm: str, dlo, dhi, best: "_Best", deadline: float,
                         stats: dict, seed: int = 0, starts: int = 1) -> None:
    """Region descent from the best point, then from the `starts` best targeted-ascent end points for
    every other class within the L-inf box of the best distance (the nearest flip may be to another
    class)."""
    _region_descent(network, x0, label, norm, dlo, dhi, best, deadline, stats)
    if not math.isfinite(best.upper):
        return
    rng = np.random.default_rng(seed)
    for j in range(network.output_size):
        if j == label or (best.point is not None and j == best.point["class"]):
            continue
        if time.perf_counter() >= deadline:
            return
        for start in _targeted_ends(network, x0, label, j, dlo, dhi, best.upper, rng)[:starts]:
            _region_descent(network, x0, label, norm, dlo, dhi, best, deadline, stats, start=start, j=j)


def _close_by_checks(network: Network, x0, label: int, dlo, dhi, lower: float, r_max: float, best: "_Best",
                     deadline: float, stats: dict, seed: int = 0) -> tuple[float, bool]:
    """Close [lower, best.upper] for the L-inf norm: region descent for the upper bound, then a
    fixed-radius `verify` just below it ("is some label change within radius r?").

    An unsat at r proves rho >= r (no point of the closed ball ties or beats the label), and with r
    within the exactness tolerance of the upper bound the bracket is closed. A sat brings a re-checked
    point (its strict-flip distance becomes the upper bound, and descent starts again from it). A
    fixed-radius check has bounds over that ball only and asks a decision question: on MNIST 256x2
    it takes 1-10 s, where minimising the radius in one MILP could take more than a minute.
    The first check gets half the time left; when it runs out, a wider descent (four starts per
    class) and a second check just below the upper bound get half of the rest, and what remains
    goes to one check halfway down the bracket.
    With no point found yet, the one check is at r_max: unsat there makes the lower bound r_max.
    Returns the lower bound.
    """
    close = 0.5 * EXACT_RTOL
    checks = 0

    def check(r, budget, attack_time=None):
        nonlocal checks
        res = _check_radius(network, x0, label, dlo, dhi, r, budget, seed, attack_time)
        checks += 1
        stats["checks"] = checks
        stats.setdefault("check_log", []).append([float(r), res.status, round(res.seconds, 3)])
        if res.status == "sat" and res.counterexample is not None:
            xs = np.asarray(res.counterexample.x, dtype=np.float64)
            best.offer(_strict_point(network, x0, xs, label, "inf", dlo, dhi, seed), "check")
        return res.status

    timeouts = 0
    _descend_all_classes(network, x0, label, "inf", dlo, dhi, best, deadline, stats, seed)
    while time.perf_counter() < deadline:
        _region_descent(network, x0, label, "inf", dlo, dhi, best, deadline, stats)
        upper = best.upper
        if _closed(lower, upper):
            break
        remaining = deadline - time.perf_counter()
        if not math.isfinite(upper):
            if not math.isfinite(r_max):
                break
            status = check(r_max, remaining)  # no point found yet: is the whole search region robust?
            if status == "unsat":
                return max(lower, r_max)
            if status != "sat":
                break
            continue
        if timeouts >= 2:
            r, budget = 0.5 * (lower + upper), remaining
        else:
            r, budget = max(upper - close * max(1.0, upper), lower), 0.5 * remaining
        # just below a descended upper bound the attack rarely finds anything: keep its share small
        status = check(r, budget, None if timeouts >= 2 else 0.25)
        if status == "unsat":
            lower = max(lower, r)
        elif status != "sat":
            timeouts += 1
            if timeouts > 2:
                break
            if timeouts == 1:  # perhaps the upper bound is not yet the minimum: search wider, then retry
                _descend_all_classes(network, x0, label, "inf", dlo, dhi, best, deadline, stats, seed + 1, starts=4)
    return lower


def pointwise_robustness(network: Network, x0, label: int | None = None, norm: str = "inf", domain=None,
                         timeout: float = 60.0, max_radius: float | None = None, disjunction: str = "per_class",
                         seed: int = 0, l2_max_cuts: int = 200, hints=None, bastani: bool | None = None,
                         method: str = "checks") -> RadiusResult:
    """Bounds on rho(x0) (exact when the solver closes the gap); see the module docstring.

    label: the class x0 should keep (default: the network's prediction). domain: (lo, hi), scalars
    or arrays, confining the inputs. max_radius: search only up to this distance (rho above it is
    reported as lower = max_radius, upper = inf). disjunction: "per_class" or "binary".
    hints: candidate points (e.g. from an attack); any that re-checks seeds the upper bound.
    bastani: use the point of Bastani's estimate as a hint (default: when the input has at most 256
    values; on MNIST the LP costs seconds and its region rarely holds a misclassified point).
    method: "checks" (default) narrows an L-inf bracket with fixed-radius `verify` calls before any
    radius MILP; "milp" goes straight to the radius MILPs. L1 and L2 always use the MILPs.
    """
    t_start = time.perf_counter()
    deadline = t_start + max(float(timeout), 0.0)
    norm = _check_norm(norm)
    if disjunction not in ("per_class", "binary"):
        raise ValueError("disjunction must be 'per_class' or 'binary'")
    if method not in ("checks", "milp"):
        raise ValueError("method must be 'checks' or 'milp'")
    x0 = np.asarray(x0, dtype=np.float64).ravel()
    n = network.input_size
    if x0.shape != (n,):
        raise ValueError(f"x0 has {x0.size} values but the network takes {n} inputs")
    y0 = network.forward(x0)
    predicted = int(np.argmax(y0))
    label = predicted if label is None else int(label)
    if not 0 <= label < network.output_size:
        raise ValueError(f"label {label} is not a class of a network with {network.output_size} outputs")
    dlo, dhi = _domain_arrays(domain, n)
    if np.any(x0 < dlo) or np.any(x0 > dhi):
        raise ValueError("x0 lies outside the domain")
    stats: dict = {"milps": 0, "nodes": 0, "milp_seconds": 0.0}
    best = _Best()

    def result(lower, status=None):
        upper = best.upper
        if lower > upper:  # cannot happen unless a solver tolerance was broken: keep the sound side
            stats["inconsistent_lower"] = float(lower)
        lower = float(min(lower, upper))
        if status is None:
            status = "exact" if _closed(lower, upper) else (
                "timeout" if time.perf_counter() >= deadline else "bounded")
        ce = _as_ce(best.point)
        stats["upper_source"] = best.source
        return RadiusResult(lower=max(lower, 0.0), upper=upper, status=status, norm=norm, label=label,
                            predicted=predicted, counterexample=ce, seconds=time.perf_counter() - t_start,
                            stats=stats)

    if network.output_size < 2:
        return result(math.inf if max_radius is None else float(max_radius), "bounded")

    # 0. already misclassified (a tie counts): rho = 0
    if _flip_margin(y0, label)[0] >= 0:
        best.offer(_strict_point(network, x0, x0, label, norm, dlo, dhi), "x0")
        return result(0.0)

    net_s = network.simplified()
    # 1. a cheap upper bound R: Bastani's point and an attack
    for pt in hints or ():
        best.offer(_strict_point(network, x0, np.asarray(pt, dtype=np.float64), label, norm, dlo, dhi), "hint")
    if bastani if bastani is not None else n <= 256:
        try:
            _, pt = bastani_estimate(network, x0, label, norm, domain, return_point=True)
        except Exception:  # the estimate is a heuristic here; the MILP does not need it
            pt = None
        if pt is not None:
            best.offer(_strict_point(network, x0, pt, label, norm, dlo, dhi), "bastani")
    cap = math.inf if max_radius is None else float(max_radius)
    search_hi = min(best.upper, cap)
    finite_domain = bool(np.all(np.isfinite(dlo)) and np.all(np.isfinite(dhi)))
    domain_radius = float(np.max(np.maximum(x0 - dlo, dhi - x0))) if finite_domain else math.inf
    # 2. a cheap lower bound from CROWN (valid for every norm: the L1/L2 ball lies in the L-inf box)
    r_probe = min(search_hi, domain_radius)
    if not math.isfinite(r_probe):
        r_probe = 10.0 * max(1.0, float(np.max(np.abs(x0))))
    t0 = time.perf_counter()
    cheap_lower = _certified_radius(net_s, x0, label, dlo, dhi, r_probe, deadline)
    stats["crown_lower"] = cheap_lower
    stats["crown_seconds"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    _attack(network, x0, label, norm, dlo, dhi, cheap_lower, min(best.upper, cap, domain_radius), best,
            min(deadline, time.perf_counter() + max(1.0, 0.1 * timeout)), seed=seed)
    stats["attack_seconds"] = time.perf_counter() - t0
    stats["attack_upper"] = best.upper
    lower = cheap_lower
    if _closed(lower, best.upper):
        return result(lower)
    if norm == "inf" and method == "checks":
        # 2b. close the bracket with fixed-radius `verify` calls (L-inf balls are boxes)
        t0 = time.perf_counter()
        r_max = min(cap, domain_radius)
        lower = _close_by_checks(network, x0, label, dlo, dhi, lower, r_max, best, deadline, stats, seed)
        stats["check_seconds"] = time.perf_counter() - t0
        if not math.isfinite(best.upper) and lower >= r_max:
            if lower >= domain_radius:
                # no point of the whole (finite) domain flips: rho = inf (the infimum of the empty set)
                stats["robust_on_domain"] = True
                return result(math.inf, "exact")
            return result(lower)  # nothing within max_radius: rho >= max_radius, and no more is asked
        if _closed(lower, best.upper) or time.perf_counter() >= deadline:
            return result(lower)

    if norm != "inf" or method != "checks":
        # a closer upper bound first: region descent (the L-inf path above does this itself)
        t0 = time.perf_counter()
        _descend_all_classes(network, x0, label, norm, dlo, dhi, best,
                             min(deadline, time.perf_counter() + max(1.0, 0.1 * timeout)), stats, seed)
        stats["descent_seconds"] = time.perf_counter() - t0
        if _closed(lower, best.upper):
            return result(lower)

    # 3. the exact MILPs over the search region B = domain ∩ (L-inf box of radius R around x0)
    from ..bounds.crown import linear_objective_bounds
    from ..search.tightening import tightened_bounds
    C = _margin_matrix(net_s.output_size, label)
    others = [j for j in range(net_s.output_size) if j != label]
    fallback_box = domain_radius if finite_domain else 1e3 * max(1.0, float(np.max(np.abs(x0))))

    def region(R):
        """Box, bounds and margin bounds for search radius R (every point with ||x - x0|| <= R, any norm)."""
        t0 = time.perf_counter()
        R_box = R if math.isfinite(R) else fallback_box
        lo, hi = linf_ball(x0, R_box, (dlo, dhi))
        lb = tightened_bounds(net_s, lo, hi, "crown")
        m_lo, m_hi = linear_objective_bounds(net_s, lb, C)  # bounds on y_label - y_j over the box
        far = np.where(np.abs(lo - x0) > np.abs(hi - x0), lo, hi)
        stats["bounds_seconds"] = stats.get("bounds_seconds", 0.0) + time.perf_counter() - t0
        stats.setdefault("unstable", lb.unstable_counts(net_s))
        return {"R": R, "R_box": R_box, "lo": lo, "hi": hi, "lb": lb, "m_lo": m_lo, "m_hi": m_hi,
                "t_full": norm_distance(far, x0, norm)}

    reg = region(min(best.upper, cap))
    covers_domain = finite_domain and reg["R_box"] >= domain_radius  # the first region is the whole domain
    t_lo = max(0.0, lower)

    def final(bound):
        # no misclassified point anywhere in the domain: rho = inf (the infimum of the empty set)
        if covers_domain and not math.isfinite(best.upper) and bound >= reg0_full:
            stats["robust_on_domain"] = True
            return result(math.inf, "exact")
        return result(max(lower, bound))

    reg0_full = reg["t_full"]

    def on_solution(col_values, objective):
        xs = np.asarray(col_values)[model.input_cols]
        best.offer(_strict_point(network, x0, xs, label, norm, dlo, dhi), "milp")
        return False

    model = None

    def solve_region(reg, classes, M):
        """A lower bound on min t over `classes` in the region (t <= the best upper bound so far);
        L2 by cutting planes."""
        nonlocal model
        t_hi = reg["t_full"]
        if math.isfinite(reg["R"]):
            t_hi = min(t_hi, reg["R"] * (1 + 1e-9) + 1e-12)
        if math.isfinite(best.upper):
            t_hi = min(t_hi, best.upper * (1 + 1e-9) + 1e-12)
        if t_hi < t_lo:
            return t_hi
        model, tcol = _radius_model(net_s, reg["lb"], x0, label, classes, norm, reg["lo"], reg["hi"], t_lo, t_hi, M)
        bound = t_lo
        cuts = 0
        if norm == "2":  # start the outer approximation with the directions where flips are likely
            for u in _l2_directions(network, x0, label, classes, best):
                model = _add_cut(model, tcol, u, x0)
        while True:
            if time.perf_counter() >= deadline:
                return bound
            res = _solve(model, deadline - time.perf_counter(), on_solution)
            stats["milps"] += 1
            stats["nodes"] += res.nodes
            stats["milp_seconds"] += res.seconds
            if res.x is not None:  # the final solution (the callback may not have seen it)
                on_solution(res.x, res.objective)
            if res.status == "infeasible":
                return max(bound, float(model.col_upper[tcol]))
            if res.dual_bound is not None:
                bound = max(bound, _padded(res.dual_bound))
            elif res.status == "optimal" and res.objective is not None and not model.integrality.any():
                bound = max(bound, _padded(res.objective))  # an LP (no unstable ReLU): its optimum
            if res.status != "optimal" or res.x is None or norm != "2":
                return bound
            xs = res.x[model.input_cols]
            tstar = float(res.x[tcol])
            dist = float(np.linalg.norm(xs - x0))
            if _closed(bound, best.upper) or dist <= tstar * (1 + 1e-9) + 1e-12 or cuts >= l2_max_cuts:
                return bound
            model = _add_cut(model, tcol, (xs - x0) / dist * (1 - 1e-12), x0)
            cuts += 1
            stats["l2_cuts"] = stats.get("l2_cuts", 0) + 1

    open_k = [k for k in range(len(others)) if reg["m_lo"][k] <= 0]
    stats["classes_open"] = len(open_k)
    if not open_k:
        # nothing in the region flips: every misclassified point is farther than R_box in L-inf, hence
        # in L1 and L2 too (those balls lie in the L-inf box of the same radius)
        return final(max(reg["R_box"], reg0_full) if covers_domain else reg["R_box"])
    if disjunction == "binary" or len(open_k) == 1:
        M = np.array([max(float(reg["m_hi"][k]), 0.0) for k in open_k]) * (1 + 1e-9) + 1e-9
        return final(solve_region(reg, [others[k] for k in open_k], M))

    # one MILP per class: the class of the best point first, then by the least margin lower bound;
    # whenever the best upper bound has shrunk, the region (and its bounds) shrinks with it
    first = best.point["class"] if best.point is not None else None
    todo = sorted(open_k, key=lambda k: (others[k] != first, reg["m_lo"][k]))
    lower_j = []
    for k in todo:
        if time.perf_counter() >= deadline:
            lower_j.append(t_lo)
            continue
        if math.isfinite(best.upper) and best.upper < 0.98 * reg["R"]:
            reg = region(best.upper)
        if reg["m_lo"][k] > 0:  # class j cannot win within R_box of x0
            lower_j.append(reg["R_box"])
            stats["classes_skipped"] = stats.get("classes_skipped", 0) + 1
            continue
        lower_j.append(solve_region(reg, [others[k]], None))
    return final(min(lower_j))


# ------------------------------------------------------------------ datasets

_WORKER: dict = {}


def _worker_init(network, options):
    limit_worker_threads()
    _WORKER["network"] = network
    _WORKER["options"] = options


def _point_record(network, index: int, x, label: int, options: dict) -> dict:
    """One dataset point: rho (for a correctly classified point) and Bastani's estimate."""
    t0 = time.perf_counter()
    y0 = network.forward(x)
    predicted = int(np.argmax(y0))
    correct = predicted == int(label) and _flip_margin(y0, int(label))[0] < 0
    rec = {"index": int(index), "label": int(label), "predicted": predicted}
    est, hints = None, []
    if options.get("baseline") and correct:
        try:
            est, pt = bastani_estimate(network, x, int(label), options["norm"], options["domain"], return_point=True)
            if pt is not None:
                hints.append(pt)
        except Exception:
            est = None
    t_est = time.perf_counter() - t0
    if correct:
        r = pointwise_robustness(network, x, label, norm=options["norm"], domain=options["domain"],
                                 timeout=options["timeout"], disjunction=options.get("disjunction", "per_class"),
                                 hints=hints, bastani=False if options.get("baseline") else None)
        d = r.as_dict()
        keep = ("milps", "nodes", "unstable", "crown_lower", "attack_upper", "upper_source", "l2_cuts",
                "classes_open", "classes_skipped", "robust_on_domain", "checks", "check_log", "check_seconds",
                "region_lps")
        stats = {k: v for k, v in r.stats.items() if k in keep}
        if stats.get("attack_upper") is not None and not math.isfinite(stats["attack_upper"]):
            stats["attack_upper"] = None
        rec.update(radius={"lower": d["lower"], "upper": d["upper"]}, status=r.status,
                   counterexample=r.counterexample, seconds=r.seconds, stats=stats)
    else:
        # rho = 0: x itself is misclassified (reported separately, not counted in the metrics)
        rec.update(radius={"lower": 0.0, "upper": 0.0}, status="misclassified", counterexample=None,
                   seconds=time.perf_counter() - t0, stats={})
    rec["bastani_estimate"] = est
    rec["bastani_seconds"] = t_est if options.get("baseline") else None
    return rec


def _run_point(item):
    index, x, label = item
    return _point_record(_WORKER["network"], index, x, label, _WORKER["options"])


def _config(network: Network, norm, domain, timeout, n_points) -> dict:
    return {"network": str(network.source) if network.source else None, "inputs": network.input_size,
            "norm": norm, "domain": None if domain is None else [float(domain[0]), float(domain[1])],
            "timeout": float(timeout), "points": int(n_points)}


def _read_resume(path: Path, config: dict) -> dict:
    """Finished records by index from a resume file; InputError if it belongs to another run."""
    done: dict = {}
    if not path.exists():
        return done
    with open(path) as f:
        lines = f.read().splitlines()
    for k, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            if k == len(lines) - 1:
                continue  # a line cut off by the interruption
            raise InputError(path, f"line {k + 1} is not JSON")
        if "config" in rec:
            theirs = {key: rec["config"].get(key) for key in ("inputs", "norm", "domain")}
            ours = {key: config.get(key) for key in ("inputs", "norm", "domain")}
            if theirs != ours:
                raise InputError(path, f"resume file was written for a different run ({theirs} vs {ours})")
            continue
        if "index" in rec:
            done[int(rec["index"])] = rec
    return done


def dataset_robustness(network: Network, X, y, norm: str = "inf", domain=None, eps_list=(), timeout: float = 60.0,
                       workers: int = 1, resume_path=None, progress: bool = True, baseline: bool = False,
                       disjunction: str = "per_class") -> dict:
    """rho for every point of (X, y) and Bastani's phi and mu per eps; see the module docstring.

    Finished points are appended to `resume_path` (jsonl) as they come in; points already in that
    file are not recomputed. Returns a dict with `points` (sorted by index), `metrics` (one entry
    per eps) and `summary`.
    """
    norm = _check_norm(norm)
    X = np.asarray(X, dtype=np.float64).reshape(len(X), -1)
    y = np.asarray(y, dtype=np.int64).ravel()
    config = _config(network, norm, domain, timeout, len(X))
    done: dict = {}
    resume = Path(resume_path) if resume_path else None
    if resume is not None:
        done = _read_resume(resume, config)
        done = {i: r for i, r in done.items() if i < len(X)}
    options = {"norm": norm, "domain": None if domain is None else (float(domain[0]), float(domain[1])),
               "timeout": float(timeout), "baseline": bool(baseline), "disjunction": disjunction}
    todo = [(i, X[i], int(y[i])) for i in range(len(X)) if i not in done]
    records = dict(done)
    fh = None
    if resume is not None and todo:
        new_file = not resume.exists() or resume.stat().st_size == 0
        fh = open(resume, "a")
        if new_file:
            fh.write(json.dumps({"config": config}) + "\n")
            fh.flush()
    bar = None
    if progress:
        try:
            from tqdm import tqdm
            bar = tqdm(total=len(X), initial=len(done), unit="pt", dynamic_ncols=True)
        except ImportError:
            bar = None

    def finish(rec):
        records[rec["index"]] = rec
        if fh is not None:
            fh.write(json.dumps(rec, default=_json_float) + "\n")
            fh.flush()
        if bar is not None:
            exact = sum(1 for r in records.values() if r["status"] == "exact")
            bar.set_postfix_str(f"exact {exact}")
            bar.update(1)

    try:
        workers = max(1, int(workers or 1))
        if workers == 1 or len(todo) <= 1:
            for item in todo:
                finish(_point_record(network, *item, options))
        else:
            import multiprocessing as mp
            # spawn, not fork: a forked copy of a process that has run HiGHS is not safe
            with mp.get_context("spawn").Pool(min(workers, len(todo)), initializer=_worker_init,
                                              initargs=(network, options)) as pool:
                for rec in pool.imap_unordered(_run_point, todo):
                    finish(rec)
    finally:
        if fh is not None:
            fh.close()
        if bar is not None:
            bar.close()
    points = [records[i] for i in sorted(records)]
    return {"config": config, "points": points, "metrics": dataset_metrics(points, eps_list),
            "summary": summarise(points)}


def _json_float(obj):
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    raise TypeError(f"cannot serialise {type(obj).__name__}")


def dataset_metrics(points: list, eps_list) -> list:
    """phi(eps) and mu(eps) over the correctly classified points.

    adversarial_frequency = #{rho <= eps} / #correct; adversarial_severity = mean rho over those.
    A bound of None in a record is infinite (upper None: no counterexample found; lower None: no
    point of the domain is misclassified). Where a point's bracket [lower, upper] straddles eps, phi is only known within
    `adversarial_frequency_bounds` and both values are None; mu uses each counted point's upper
    bound (its rho when exact) and `adversarial_severity_bounds` its lower and upper bounds.
    `bastani_frequency` counts the points whose Bastani estimate is <= eps (the estimate is >= rho,
    so this never exceeds the true frequency).
    """
    correct = [p for p in points if p.get("status") != "misclassified"]
    n = len(correct)
    out = []
    for eps in eps_list:
        eps = float(eps)
        up = [p["radius"]["upper"] for p in correct]
        lo = [p["radius"]["lower"] if p["radius"]["lower"] is not None else math.inf for p in correct]
        sure = [k for k in range(n) if up[k] is not None and up[k] <= eps]
        maybe = [k for k in range(n) if lo[k] <= eps and not (up[k] is not None and up[k] <= eps)]
        entry = {"eps": eps, "points": n, "count": len(sure), "undecided": len(maybe),
                 "adversarial_frequency": (len(sure) / n if n else None) if not maybe else None,
                 "adversarial_frequency_bounds": [len(sure) / n if n else None,
                                                  (len(sure) + len(maybe)) / n if n else None],
                 "adversarial_severity": (float(np.mean([up[k] for k in sure])) if sure else None)
                 if not maybe else None,
                 "adversarial_severity_bounds": [float(np.mean([lo[k] for k in sure])) if sure else None,
                                                 float(np.mean([up[k] for k in sure])) if sure else None]}
        est = [p.get("bastani_estimate") for p in correct]
        if any(e is not None for e in est):
            hits = [e for e in est if e is not None and e <= eps]
            entry["bastani_frequency"] = len(hits) / n if n else None
            entry["bastani_severity"] = float(np.mean(hits)) if hits else None
        out.append(entry)
    return out


def summarise(points: list) -> dict:
    correct = [p for p in points if p.get("status") != "misclassified"]
    secs = [p["seconds"] for p in correct]
    ratios = [p["bastani_estimate"] / p["radius"]["upper"] for p in correct
              if p.get("status") == "exact" and p.get("bastani_estimate") is not None and p["radius"]["upper"]]
    return {"points": len(points), "correct": len(correct),
            "misclassified": [p["index"] for p in points if p.get("status") == "misclassified"],
            "exact": sum(1 for p in correct if p["status"] == "exact"),
            "bounded": sum(1 for p in correct if p["status"] == "bounded"),
            "timeout": sum(1 for p in correct if p["status"] == "timeout"),
            "median_seconds": float(np.median(secs)) if secs else None,
            "total_seconds": float(np.sum([p["seconds"] for p in points])) if points else 0.0,
            "bastani_found": sum(1 for p in correct if p.get("bastani_estimate") is not None),
            "bastani_ratio": ({"median": float(np.median(ratios)), "min": float(np.min(ratios)),
                               "max": float(np.max(ratios)), "n": len(ratios)} if ratios else None)}


def plot_metrics(report: dict, path, eps_max: float | None = None) -> None:
    """The paper's figure: the number of points with rho <= eps against eps (exact, and Bastani's estimate)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    correct = [p for p in report["points"] if p.get("status") != "misclassified"]
    up = np.array([p["radius"]["upper"] if p["radius"]["upper"] is not None else np.inf for p in correct])
    lo = np.array([p["radius"]["lower"] if p["radius"]["lower"] is not None else np.inf for p in correct])
    est = np.array([p["bastani_estimate"] if p.get("bastani_estimate") is not None else np.inf for p in correct])
    finite = np.concatenate([up[np.isfinite(up)], est[np.isfinite(est)]])
    top = eps_max or (float(np.max(finite)) * 1.05 if len(finite) else 1.0)
    grid = np.linspace(0, top, 400)
    fig, ax = plt.subplots(figsize=(6, 4))
    exact_all = bool(np.all(up - lo <= EXACT_RTOL * np.maximum(1.0, np.where(np.isfinite(up), up, 1.0))))
    ax.plot(grid, [(up <= e).sum() for e in grid], label="exact rho (exactverify)" if exact_all
            else "rho upper bound (exactverify)")
    if not exact_all:
        ax.plot(grid, [(lo <= e).sum() for e in grid], "--", label="rho lower bound (exactverify)")
    if np.isfinite(est).any():
        ax.plot(grid, [(est <= e).sum() for e in grid], ":", label="Bastani et al. estimate (linear region)")
    ax.set_xlabel(f"eps (L{report['config']['norm']})")
    ax.set_ylabel("points with rho <= eps")
    ax.set_title(f"{len(correct)} correctly classified points")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
