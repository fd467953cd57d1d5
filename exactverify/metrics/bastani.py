"""Bastani et al.'s estimate of pointwise robustness: the nearest misclassified point within the linear
region (activation pattern) of x0, by iterative constraint solving.

`bastani_estimate` is the paper's own approximation: the same minimum as rho restricted to the linear
region of x0, an LP (a QP for L2). Its value is >= rho (its optimum is a misclassified point, in the
closure of the region) or None when the region holds no misclassified point. `region_minimum`, the LP
of one class in one region, also drives the region descent of `radius_attack`.
"""

from __future__ import annotations

import numpy as np

from ..core.network import Network
from ..core.regions import linear_region
from .norms import check_norm, domain_arrays, norm_distance


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
    norm = check_norm(norm)
    x0 = np.asarray(x0, dtype=np.float64).ravel()
    if label is None:
        label = int(np.argmax(network.forward(x0)))
    dlo, dhi = domain_arrays(domain, len(x0))
    region = linear_region(network, x0)
    best_v, best_pt = None, None
    for j in range(network.output_size):
        if j == label:
            continue
        value, point = region_minimum(region, x0, label, j, norm, dlo, dhi, max_rounds)
        if value is not None and (best_v is None or value < best_v):
            best_v, best_pt = value, point
    if return_point:
        return best_v, best_pt
    return best_v


def region_minimum(region, x0, label: int, j: int, norm: str, dlo, dhi, max_rounds: int = 200):
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
