"""The one outward-padding routine: every bound computed in floating point is widened by more than
the rounding error it could carry, so that it holds in exact arithmetic (the MILP's big-M constants
and every `unsat` from bounds rest on this). See bounds/crown.py for the error analysis."""

from __future__ import annotations

import numpy as np

UNIT = np.finfo(np.float64).eps  # 2.2e-16: twice the unit roundoff, so one factor of 2 of slack is built in


def pad(lower: np.ndarray, upper: np.ndarray, magnitude: np.ndarray, terms: int):
    """Widen [lower, upper] by a bound on the float64 rounding error of a sum of `terms` products.

    `magnitude` bounds sum_i |w_i x_i| + |b| for each entry; the classical
    bound on the error of a recursive dot product is (terms * u) * magnitude.
    """
    slack = (terms + 4) * UNIT * magnitude + 1e-300
    return lower - slack, upper + slack


def round_up(x: np.ndarray) -> np.ndarray:
    """A float >= the exact value that the nonnegative float x approximates with at
    most 2 roundings: relative error 2u, plus an absolute 1e-300 for subnormal results."""
    return x * (1.0 + 4.0 * UNIT) + 1e-300


def magnitude(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """max(|lo|, |hi|) elementwise: a bound on |x| for x in [lo, hi]."""
    return np.maximum(np.abs(lo), np.abs(hi))
