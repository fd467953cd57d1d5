"""Re-checking counterexamples: the only way a `sat` verdict is ever produced.

A candidate input from any source (a MILP solution, an SMT model, an attack) is
first moved onto the float32 grid inside its case's input box, so that the very
same point is the input of both the float64 and the float32 forward passes and
of the ONNX file's own float32 semantics. It is a counterexample only if both
forward passes satisfy every constraint of the case and one output disjunct,
with no tolerance.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .network import Network
from .property import Case, Property


@dataclass
class Counterexample:
    """An input that re-checked as unsafe, with both forward passes and the case and disjunct it meets."""

    x: list  # the input, float32-representable values, as float64
    y: list  # float64 forward pass
    y32: list  # float32 forward pass
    case: int  # which case of the property it meets
    disjunct: int  # which output disjunct of that case
    margin: float  # min over the passes of -(max constraint violation): >= 0

    def as_dict(self) -> dict:
        """The counterexample as JSON-ready data; the float32 pass is under "y_float32"."""
        return {"x": self.x, "y": self.y, "y_float32": self.y32, "case": self.case,
                "disjunct": self.disjunct, "margin": self.margin}


def snap_to_float32_box(x: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> np.ndarray | None:
    """The float32 point nearest x inside [lower, upper] (exactly), as float64; None if there is none."""
    x = np.clip(np.asarray(x, dtype=np.float64), lower, upper)
    x32 = x.astype(np.float32)
    for _ in range(4):
        above = x32.astype(np.float64) > upper
        below = x32.astype(np.float64) < lower
        if not (above.any() or below.any()):
            return x32.astype(np.float64)
        x32 = np.where(above, np.nextafter(x32, np.float32(-np.inf)), x32)
        x32 = np.where(below, np.nextafter(x32, np.float32(np.inf)), x32)
    return None  # a box narrower than one float32 step: no float32 point inside


def check_point(network: Network, prop: Property, x, case_index: int | None = None) -> Counterexample | None:
    """Return a re-checked Counterexample at (the float32 snap of) x, or None."""
    cases = range(len(prop.cases)) if case_index is None else [case_index]
    for ci in cases:
        case: Case = prop.cases[ci]
        xs = snap_to_float32_box(x, case.lower, case.upper)
        if xs is None or not case.contains(xs):
            continue
        y64 = network.forward(xs)
        y32 = network.forward32(xs).astype(np.float64)
        if not (np.all(np.isfinite(y64)) and np.all(np.isfinite(y32))):
            continue
        for di, d in enumerate(case.disjuncts):
            v = max(d.violation(y64), d.violation(y32))
            if v <= 0.0:
                return Counterexample(xs.tolist(), y64.tolist(), y32.tolist(), ci, di, float(-v))
    return None


def best_violation(network: Network, prop: Property, x) -> float:
    """The smallest constraint violation at x over all cases and disjuncts (for attacks and polishing)."""
    best = np.inf
    x = np.asarray(x, dtype=np.float64)
    for case in prop.cases:
        xs = np.clip(x, case.lower, case.upper)
        y = network.forward(xs)
        for d in case.disjuncts:
            best = min(best, d.violation(y))
    return float(best)
