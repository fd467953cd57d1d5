"""The lower-bound side of the radius search: CROWN's certified radius and the radius MILP.

`certified_radius` is the largest L-inf radius at which CROWN proves every margin y_label - y_j > 0
over (box of that radius) ∩ domain, by bisection. An L1 or L2 ball of radius r lies inside the L-inf
box of radius r, so it lower-bounds rho in every norm.

`radius_model` is the exact MILP over a search region B = domain ∩ (L-inf box of radius R around
x0): the big-M encoding of `encodings/milp.py` with neuron bounds valid over all of B, a radius
column t in [lower, R], and
- L-inf: -t <= x_i - x0_i <= t;
- L1: d_i >= |x_i - x0_i| (two rows each), sum_i d_i <= t; where x0_i sits at a bound of the region,
  sign_i (x_i - x0_i) stands in for d_i (`l1_one_sided`); and for each unstable ReLU of the first
  layer its star bound over the ball of radius t's upper bound (`_l1_envelope_rows`), which the
  big-M rows miss: they know the neuron's range, not that the ball cannot push every input at once
  (on the digits networks most per-class MILPs became infeasible at the root LP);
- L2: cutting planes: u.(x - x0) <= t for unit vectors u (an outer approximation of the ball:
  ||v||_2 >= u.v), starting with +-e_i; `add_cut` appends one more such row (the search adds the tangent
  cut at each solution outside the ball).
The label change is one class's disjunct y_label - y_j <= 0, or binaries z_j with
y_label - y_j <= M_j (1 - z_j), sum z_j >= 1. The model is pruned (`_prune`) and solved without
presolve and primal heuristics (`_MIP_OPTIONS`), which halved the times on MNIST 256x2.

Soundness: a proven dual bound is used only after `padded` lowers it by `DUAL_PAD` * max(1, |bound|)
(the trust is the solver's LP tolerances, as for an infeasible status); every relaxation made here
(pruning, cuts with rounded-up right-hand sides, a larger M) only lowers the optimum.
"""

from __future__ import annotations

import math
import time

import numpy as np

from ..core.network import Network
from ..core.property import linf_ball

DUAL_PAD = 1e-7  # a MILP dual bound is lowered by this times max(1, |bound|) before use
# HiGHS settings for the radius MILPs: a gap far below EXACT_RTOL; no presolve and no primal heuristics
# (we bring our own upper bound as the bound on t, and on MNIST 256x2 these halved the solve times)
_MIP_OPTIONS = {"mip_rel_gap": 1e-7, "mip_abs_gap": 1e-9, "presolve": "off", "mip_heuristic_effort": 0.0,
                **{f"mip_heuristic_run_{h}": False for h in ("feasibility_jump", "rens", "rins", "root_reduced_cost",
                                                             "shifting", "zi_round")}}
_EPS = np.finfo(np.float64).eps


# ------------------------------------------------------------------ CROWN's certified radius

def margin_matrix(n_out: int, label: int) -> np.ndarray:
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


def certified_radius(net_s: Network, x0, label, dlo, dhi, r_hi: float, deadline: float, iters: int = 14) -> float:
    """The largest L-inf radius (bisection in [0, r_hi]) at which CROWN proves the label; 0 if none."""
    C = margin_matrix(net_s.output_size, label)
    return largest_certified(lambda r: _certified(net_s, *linf_ball(x0, r, (dlo, dhi)), C)[0], r_hi, deadline, iters)


def largest_certified(certified, r_hi: float, deadline: float, iters: int = 14) -> float:
    """The largest radius in [0, r_hi] (bisection, `iters` halvings) with certified(radius) true; 0 if
    none. certified(r) must be monotone: a proof for a ball holds for every smaller one."""
    lo_r, hi_r = 0.0, float(r_hi)
    if not math.isfinite(hi_r) or hi_r <= 0:
        return 0.0
    if not certified(lo_r):
        return 0.0
    for _ in range(iters):
        if time.perf_counter() > deadline:
            break
        mid = 0.5 * (lo_r + hi_r)
        if certified(mid):
            lo_r = mid
        else:
            hi_r = mid
    return lo_r


# ------------------------------------------------------------------ the radius MILP

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


def radius_model(net_s, lb, x0, label, classes, norm, lo, hi, t_lo, t_hi, M=None, margin: float = 0.0):
    """The MILP min t: x in [lo, hi], the network, y_j >= y_label for some j in `classes`, and the norm rows.

    One class: the disjunct y_label - y_j <= -margin (build_milp's violation column bounded by 0; a
    positive margin asks for points strictly inside the flip region, candidates that survive rounding).
    Several: binaries z_j with y_label - y_j <= M_j (1 - z_j), sum z_j >= 1. None: no label change (the
    network over the region, for bound tightening).
    Returns (model, t column).
    """
    from ..encodings.milp import build_milp
    from ..core.property import Case, OutputConstraint
    n_out = net_s.output_size
    n = len(x0)
    if len(classes) == 1:
        a = np.zeros(n_out)
        a[label], a[classes[0]] = 1.0, -1.0
        disjunct = OutputConstraint(a[None, :], np.full(1, -float(margin)))
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
        two, one, sign, rhs = l1_one_sided(lo, hi, x0)
        dcols = base + 1 + np.arange(len(two))
        cl += [0.0] * len(two)
        cu += list(np.maximum(np.abs(lo - x0), np.abs(hi - x0))[two])
        names += [f"d{i}" for i in two]
        for k, i in enumerate(two):
            rows += [r, r]; cols += [dcols[k], xc[i]]; vals += [1.0, -1.0]; rl.append(-x0[i]); ru.append(np.inf); r += 1
            rows += [r, r]; cols += [dcols[k], xc[i]]; vals += [1.0, 1.0]; rl.append(x0[i]); ru.append(np.inf); r += 1
        # sum_two d_i + sum_one sign_i x_i - t <= sum_one sign_i x0_i (rounded up)
        rows += [r] * (len(two) + len(one) + 1); cols += list(dcols) + list(xc[one]) + [t]
        vals += [1.0] * len(two) + list(sign) + [-1.0]; rl.append(-np.inf); ru.append(rhs)
        r += 1
        rn += [f"l1_{k}" for k in range(2 * len(two) + 1)]
    model = _extend(model, np.array(cl, float), np.array(cu, float), False, names, rows, cols, vals,
                    np.array(rl, float), np.array(ru, float), rn)
    if norm == "1":
        model = _l1_envelope_rows(model, net_s, x0, (two, one, sign), base + 1 + np.arange(len(two)), t_hi)
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


def _l1_envelope_rows(model, net_s, x0, split, dcols, r: float):
    """Upper bounds on the first layer's unstable ReLUs over the L1 ball of radius r: tighter than the
    big-M rows wherever the ball, not the box, limits the neuron.

    A point x = x0 + delta with ||delta||_1 = s <= r is the convex combination (1 - s/r) x0 +
    sum_i (|delta_i|/r) (x0 + r sgn(delta_i) e_i), and f = max(0, w.x + b) is convex, so
    f(x) <= f(x0) + sum_i |delta_i| c_i^sgn(delta_i), with c_i^+- = (f(x0 +- r e_i) - f(x0)) / r.
    Two-sided coordinates enter through d_i >= |delta_i| with max(c^+, c^-) (>= 0, as f is convex);
    one-sided ones through sign_i (x_i - x0_i) with their own direction's c (split: the L1 rows'
    `l1_one_sided` (two, one, sign), dcols: the columns d_i of `two`). The right-hand side is padded by
    1e-9 of the row's magnitude (far above its rounding)."""
    if not (math.isfinite(r) and r > 0):
        return model
    from ..core.network import Affine, ReLU
    if len(net_s.layers) < 2 or not isinstance(net_s.layers[0], Affine) or not isinstance(net_s.layers[1], ReLU):
        return model
    layer = net_s.layers[0]
    W = np.asarray(layer.dense_weight(), dtype=np.float64)
    b = np.asarray(layer.bias, dtype=np.float64)
    index = {name: c for c, name in enumerate(model.col_names) if name.startswith("L1_y")}
    js = [j for j in range(W.shape[0]) if f"L1_y{j}" in index]
    if not js:
        return model
    two, one, sign = split
    xc = np.asarray(model.input_cols, dtype=np.int64)
    Wj = W[js]
    z0 = Wj @ x0 + b[js]
    f0 = np.maximum(z0, 0.0)
    c_up = (np.maximum(z0[:, None] + r * Wj, 0.0) - f0[:, None]) / r
    c_down = (np.maximum(z0[:, None] - r * Wj, 0.0) - f0[:, None]) / r
    c_two = np.maximum(np.maximum(c_up[:, two], c_down[:, two]), 0.0)
    c_one = np.where(sign > 0, c_up[:, one], c_down[:, one]) * sign  # per unit of x_i
    # y_j - sum_two c d_i - sum_one c_one x_i <= f0 - sum_one c_one x0_i (+ pad)
    from ..encodings.milp import SMALL_ENTRY
    k = len(js)
    rows = np.concatenate([np.arange(k), np.repeat(np.arange(k), len(two)), np.repeat(np.arange(k), len(one))])
    cols = np.concatenate([[index[f"L1_y{j}"] for j in js], np.tile(dcols, k), np.tile(xc[one], k)]).astype(np.int64)
    vals = np.concatenate([np.ones(k), -c_two.ravel(), -c_one.ravel()])
    rhs = f0 - c_one @ x0[one]
    rhs = rhs + 1e-9 * (1.0 + np.abs(f0) + np.abs(c_one) @ np.abs(x0[one])
                        + r * (np.abs(c_two).sum(1) + np.abs(c_one).sum(1)))
    # entries HiGHS would drop: left out, their row widened by the most they could contribute
    tiny = (np.abs(vals) < SMALL_ENTRY) & (vals != 0)
    reach = np.maximum(np.abs(model.col_lower[cols[tiny]]), np.abs(model.col_upper[cols[tiny]]))
    np.add.at(rhs, rows[tiny], np.abs(vals[tiny]) * reach)
    keep = (vals != 0) & ~tiny
    return _extend(model, np.zeros(0), np.zeros(0), False, [], rows[keep], cols[keep], vals[keep],
                   np.full(k, -np.inf), rhs, [f"env{j}" for j in js])


def l1_one_sided(lo, hi, x0):
    """The L1 rows' split of the coordinates: (two, one, sign, rhs). Where x_i can move one way only in
    [lo, hi] (x0_i at a bound), |x_i - x0_i| = sign_i (x_i - x0_i) exactly, so the distance needs no
    column d_i and no rows of its own (on the digits data 57% of the pixels sit at 0 or 1; the per-class
    MILPs took 7-23% less time without them, three points); rhs is an upper bound on sum_one sign_i x0_i."""
    up, down = lo >= x0, hi <= x0
    two, one = np.flatnonzero(~(up | down)), np.flatnonzero(up | down)
    sign = np.where(up[one], 1.0, -1.0)
    return two, one, sign, _cut_rhs(sign, x0[one])


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


def add_cut(model, t: int, u: np.ndarray, x0: np.ndarray):
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


def l2_directions(network: Network, x0, label: int, classes, best) -> list:
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


def solve_milp(model, time_limit: float, on_solution):
    """Solve a radius MILP with HiGHS and `_MIP_OPTIONS`, calling on_solution at each incumbent."""
    from ..solvers.highs import solve_highs
    return solve_highs(model, time_limit=max(time_limit, 1e-3), on_solution=on_solution, options=dict(_MIP_OPTIONS))


def padded(dual: float) -> float:
    """A solver's dual bound lowered by DUAL_PAD * max(1, |bound|), for use as a lower bound."""
    return dual - DUAL_PAD * max(1.0, abs(dual))
