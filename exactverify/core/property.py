"""Properties in the VNN-COMP normal form.

A VNN-LIB file states the *negation* of a safety property: some input in the
input set whose output meets the unsafe condition. We hold it as a disjunction
of cases; each case is an input box (optionally cut by linear input constraints)
together with a disjunction of conjunctions over the outputs:

    sat  <=>  exists case c, exists disjunct d, exists x in c.box with
              c.input_A @ x <= c.input_b and d.A @ f(x) <= d.b

Every constraint is non-strict (`<=`); `>=` atoms are negated into this form.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .errors import InputError


@dataclass
class OutputConstraint:
    """A conjunction A @ y <= b over the network outputs."""

    A: np.ndarray  # (m, n_outputs)
    b: np.ndarray  # (m,)

    def violation(self, y: np.ndarray) -> float:
        """max_i (A_i y - b_i): <= 0 exactly when y satisfies every row."""
        if len(self.b) == 0:
            return -np.inf
        return float(np.max(self.A @ y - self.b))


def class_change_disjuncts(top_set, n_outputs: int) -> list:
    """Robustness properties' unsafe outputs: some class j outside `top_set` scores at least as high as
    some class i in it. One disjunct y_i - y_j <= 0 per pair (i in top_set, j not), i then j ascending."""
    top = sorted(int(c) for c in top_set)
    rest = [j for j in range(n_outputs) if j not in top]
    disjuncts = []
    for i in top:
        for j in rest:
            a = np.zeros((1, n_outputs))
            a[0, i], a[0, j] = 1.0, -1.0
            disjuncts.append(OutputConstraint(a, np.zeros(1)))
    return disjuncts


def linf_ball(x, eps: float, domain=None):
    """The box holding every point within L-inf distance eps of x: [x - eps, x + eps] widened outward by one
    ulp (whatever x +- eps rounded to, the box holds the exact ball), clipped to `domain` = (lo, hi),
    scalars or arrays, and never excluding x itself (a point outside the domain stays its own candidate).

    The one ball constructor: robustness properties, validation, local robustness and the radius search
    all build their boxes here."""
    x = np.asarray(x, dtype=np.float64)
    lo = np.nextafter(x - eps, -np.inf)
    hi = np.nextafter(x + eps, np.inf)
    if domain is not None:
        lo = np.maximum(lo, np.broadcast_to(np.asarray(domain[0], dtype=np.float64), x.shape))
        hi = np.minimum(hi, np.broadcast_to(np.asarray(domain[1], dtype=np.float64), x.shape))
    return np.minimum(lo, x), np.maximum(hi, x)


def robustness_property(x, eps: float, label: int, n_outputs: int, domain=None) -> "Property":
    """The L-inf ball of radius eps around x (`linf_ball`, within `domain`), unsafe when some
    y_j >= y_label, j != label: one case, one disjunct per j."""
    x = np.asarray(x, dtype=np.float64).ravel()
    lo, hi = linf_ball(x, eps, domain)
    return Property(len(x), n_outputs, [Case(lo, hi, class_change_disjuncts([label], n_outputs))],
                    source=f"Linf ball eps={eps:g} label {label}")


@dataclass
class Case:
    """An input region and the output disjuncts that make it unsafe."""

    lower: np.ndarray  # (n_inputs,)
    upper: np.ndarray  # (n_inputs,)
    disjuncts: list  # list[OutputConstraint]; the case is unsafe if any disjunct holds
    input_A: np.ndarray | None = None  # extra linear input constraints input_A @ x <= input_b
    input_b: np.ndarray | None = None

    def contains(self, x: np.ndarray) -> bool:
        """x lies in the input region, exactly (no tolerance)."""
        if np.any(x < self.lower) or np.any(x > self.upper):
            return False
        if self.input_A is not None and len(self.input_b):
            if np.any(self.input_A @ x > self.input_b):
                return False
        return True


@dataclass
class Property:
    """A property in normal form: a disjunction of cases over n_inputs network inputs and n_outputs outputs."""

    n_inputs: int
    n_outputs: int
    cases: list  # list[Case]: the property is sat if any case is
    source: str | None = None  # the file it was loaded from (or a description), for messages
    meta: dict = field(default_factory=dict)

    def validate(self, network=None) -> "Property":
        """Raise InputError on an empty input box or a size mismatch with `network`."""
        if not self.cases:
            raise InputError(self.source, "property has no input region")
        for k, case in enumerate(self.cases):
            if case.lower.shape != (self.n_inputs,) or case.upper.shape != (self.n_inputs,):
                raise InputError(self.source, f"case {k}: input box does not cover all {self.n_inputs} inputs")
            if not (np.all(np.isfinite(case.lower)) and np.all(np.isfinite(case.upper))):
                bad = int(np.flatnonzero(~(np.isfinite(case.lower) & np.isfinite(case.upper)))[0])
                raise InputError(self.source, f"input X_{bad} has no finite lower and upper bound")
            for d in case.disjuncts:
                if d.A.ndim != 2 or d.A.shape[1] != self.n_outputs or d.b.shape != (d.A.shape[0],):
                    raise InputError(self.source, f"case {k}: an output constraint has shape {d.A.shape}, "
                                                  f"expected (rows, {self.n_outputs})")
            if case.input_A is not None and case.input_A.size and case.input_A.shape[1] != self.n_inputs:
                raise InputError(self.source, f"case {k}: an input constraint has {case.input_A.shape[1]} "
                                              f"columns, expected {self.n_inputs}")
            empty = np.flatnonzero(case.lower > case.upper)
            if len(empty):
                i = int(empty[0])
                raise InputError(self.source, f"empty input box: X_{i} has lower bound {case.lower[i]:g} "
                                              f"above upper bound {case.upper[i]:g}")
        if network is not None:
            if network.input_size != self.n_inputs:
                raise InputError(self.source, f"property declares {self.n_inputs} inputs but network "
                                              f"{network.source or ''} has {network.input_size}".replace("  ", " "))
            if network.output_size != self.n_outputs:
                raise InputError(self.source, f"property declares {self.n_outputs} outputs but network "
                                              f"{network.source or ''} has {network.output_size}".replace("  ", " "))
        return self

    def satisfied_by(self, x: np.ndarray, y: np.ndarray) -> bool:
        """Does the point (x, y) meet every constraint of some case and disjunct, exactly?"""
        for case in self.cases:
            if case.contains(x) and any(d.violation(y) <= 0.0 for d in case.disjuncts):
                return True
        return False
