"""Distances for the pointwise-robustness metrics: the norms, a distance rounded up, the steepest-ascent
direction of a norm, and the domain box.

A distance computed here is never below the exact one (`norm_distance` rounds up), so an upper bound on a
radius taken from it is sound.
"""

from __future__ import annotations

import numpy as np

NORMS = ("inf", "1", "2")
_EPS = np.finfo(np.float64).eps


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


def reach(x0, lo, hi, norm: str) -> float:
    """The distance (rounded up, as `norm_distance`) from x0 to the farthest point of the box [lo, hi];
    inf when the box is unbounded."""
    x0, lo, hi = (np.asarray(a, dtype=np.float64) for a in (x0, lo, hi))
    if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))):
        return np.inf
    return norm_distance(np.where(np.abs(lo - x0) > np.abs(hi - x0), lo, hi), x0, norm)


def check_norm(norm) -> str:
    """The norm's canonical name ("inf", "1" or "2") from the spellings users type; ValueError for others."""
    norm = str(norm).lower().replace("l", "")
    if norm in ("infinity", "linf", "max"):
        norm = "inf"
    if norm not in NORMS:
        raise ValueError(f"unknown norm {norm!r} (choose from inf, 1, 2)")
    return norm


def domain_arrays(domain, n: int):
    """(lo, hi) arrays of length n from a domain (lo, hi) of scalars or arrays; +-inf when domain is None."""
    if domain is None:
        return np.full(n, -np.inf), np.full(n, np.inf)
    lo, hi = domain
    lo = np.broadcast_to(np.asarray(lo, dtype=np.float64), (n,)).copy()
    hi = np.broadcast_to(np.asarray(hi, dtype=np.float64), (n,)).copy()
    return lo, hi


def dual_direction(g: np.ndarray, norm: str) -> np.ndarray:
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
