"""Input boxes: where cutting them pays, the one way they are cut, and what sound bounds over one refute.

Shared by input splitting (input_split.py), the verifier's pipeline (verifier.py) and the parallel
driver's pieces (parallel.py), so that all three cut and refute boxes the same way.
"""

from __future__ import annotations

import numpy as np

from ..bounds import crown as bounds_mod
from ..core.network import Network
from ..encodings.milp import violation_bounds

SPLIT_MAX_INPUTS = 16  # input splitting pays only where the input is low-dimensional


def bisect(lo: np.ndarray, hi: np.ndarray, dim: int) -> list | None:
    """The two closed halves (lo, hi) of the box cut at the middle of input `dim`; None where no float lies strictly inside."""
    mid = lo[dim] + (hi[dim] - lo[dim]) / 2
    if not lo[dim] < mid < hi[dim]:
        return None
    halves = []
    # closed halves that share the cut: their union is the box, so nothing is lost
    for a, b in ((lo[dim], mid), (mid, hi[dim])):
        clo, chi = lo.copy(), hi.copy()
        clo[dim], chi[dim] = a, b
        halves.append((clo, chi))
    return halves


def box_bounds(net: Network, lo, hi, method: str, alpha: str = "adaptive"):
    """(bounds, the method used) over [lo, hi]; CROWN falls back to intervals where it is not available."""
    if method == "crown":
        try:
            return bounds_mod.compute_bounds(net, lo, hi, "crown", alpha=alpha), "crown"
        except NotImplementedError:
            method = "interval"
    return bounds_mod.compute_bounds(net, lo, hi, method), method


def violation_lower(d, lb) -> float:
    """A lower bound on the disjunct's violation max_i (A_i y - b_i) from the output bounds."""
    if len(d.b) == 0:
        return -np.inf
    return float(np.max(violation_bounds(d.A, d.b, lb.lower[-1], lb.upper[-1])[0]))


def refuted_by_bounds(net: Network, lb, disjuncts: list, alpha: str = "adaptive") -> list:
    """For each disjunct: is some row of A y <= b violated (> 0) at every output the bounds allow?

    The interval image of the output bounds first; for the disjuncts it leaves
    open, one CROWN pass over all their rows at once (`linear_objective_bounds`,
    where the bounds module has it). Sound, padded bounds only.
    """
    refuted = []
    for d in disjuncts:
        refuted.append(len(d.b) > 0 and bool(np.any(violation_bounds(d.A, d.b, lb.lower[-1], lb.upper[-1])[0] > 0)))
    open_ = [k for k, (d, r) in enumerate(zip(disjuncts, refuted)) if not r and len(d.b)]
    linear = getattr(bounds_mod, "linear_objective_bounds", None)
    if not open_ or linear is None:
        return refuted
    A = np.vstack([disjuncts[k].A for k in open_])
    b = np.concatenate([disjuncts[k].b for k in open_])
    try:
        lo, _ = linear(net, lb, A, -b, alpha=alpha)
    except NotImplementedError:
        return refuted
    lo = np.asarray(lo)
    start = 0
    for k in open_:
        m = len(disjuncts[k].b)
        refuted[k] = bool(np.any(lo[start:start + m] > 0))
        start += m
    # A conjunction of several rows is also refuted when some nonnegative combination
    # sum_i lam_i (A_i y - b_i) is > 0 everywhere: then no point meets every row. The
    # CROWN bound of a combination is often positive where no single row's is (each
    # row fails in a different part of the box); on ACAS Xu this cuts the input boxes
    # of a split 5-8 fold. The combinations are a fixed sample of the simplex.
    for k in open_:
        d = disjuncts[k]
        if refuted[k] or len(d.b) < 2:
            continue
        lam = _simplex_sample(len(d.b))
        try:
            lo, _ = linear(net, lb, lam @ d.A, -(lam @ d.b), alpha=alpha)
        except NotImplementedError:
            continue
        refuted[k] = bool(np.any(np.asarray(lo) > 0))
    return refuted


_SIMPLEX_SAMPLES: dict = {}


def _simplex_sample(m: int, count: int = 32) -> np.ndarray:
    """`count` fixed weight vectors on the m-simplex: the centre and Dirichlet(1) draws (seeded: runs repeat)."""
    if m not in _SIMPLEX_SAMPLES:
        draws = np.random.default_rng(m).dirichlet(np.ones(m), size=count - 1)
        _SIMPLEX_SAMPLES[m] = np.vstack([np.full(m, 1.0 / m), draws])
    return _SIMPLEX_SAMPLES[m]
