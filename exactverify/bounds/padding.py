"""The one outward-padding routine: every bound computed in floating point is widened by more than
the rounding error it could carry, so that it holds in exact arithmetic (the MILP's big-M constants
and every `unsat` from bounds rest on this). See bounds/crown.py for the error analysis."""

from __future__ import annotations

import numpy as np

UNIT = np.finfo(np.float64).eps  # 2.2e-16: twice the unit roundoff, so one factor of 2 of slack is built in


def _slack(magnitude: np.ndarray, terms: int) -> np.ndarray:
    # The one place this formula is written. The classical bound on the error of a recursive
    # dot product of `terms` products is about (terms * u) * magnitude; (terms + 4) * UNIT is
    # twice that (see the error analysis in crown.py), and 1e-300 covers underflow.
    return (terms + 4) * UNIT * magnitude + 1e-300


def pad(lower: np.ndarray, upper: np.ndarray, magnitude: np.ndarray, terms: int):
    """Widen [lower, upper] by a bound on the float64 rounding error of a sum of `terms` products.

    `magnitude` bounds sum_i |w_i x_i| + |b| for each entry.
    """
    slack = _slack(magnitude, terms)
    return lower - slack, upper + slack


def pad_lower(value: np.ndarray, magnitude: np.ndarray, terms: int) -> np.ndarray:
    """`value` lowered by the same slack as `pad`, NaN as -inf: a sound lower bound from a float64 one."""
    out = np.asarray(value - _slack(magnitude, terms))
    out[np.isnan(out)] = -np.inf  # overflow (inf - inf) must not turn into a bound
    return out


def padding_terms(widths, steps: int) -> int:
    """The `terms` of `pad` for a backward pass of `steps` layer steps whose largest inner dimension is max(widths)."""
    # the `terms` of the error analysis in crown.py; CROWN and ReLU splitting pad with the same
    # count, so it is written once
    return max(widths) + 2 * steps + 8


def round_up(x: np.ndarray) -> np.ndarray:
    """A float >= the exact value that the nonnegative float x approximates with at
    most 2 roundings: relative error 2u, plus an absolute 1e-300 for subnormal results."""
    return x * (1.0 + 4.0 * UNIT) + 1e-300


def magnitude(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """max(|lo|, |hi|) elementwise: a bound on |x| for x in [lo, hi]."""
    return np.maximum(np.abs(lo), np.abs(hi))
