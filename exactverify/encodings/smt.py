"""The SMT encoding of one (case, disjunct) query: exact linear real arithmetic with disjunctions.

`build_smt(network, layer_bounds, case, disjunct)` describes the query as an
`SmtModel`; `SmtModel.to_smtlib2()` is its SMT-LIB2 text (logic QF_LRA), and
that text is exactly what the Z3 backend (`exactverify.solvers.z3`)
parses and solves, so an exported `.smt2` file is the problem `verify` solves.

The encoding, for a network `net` with sound `LayerBounds` over the case box
(the same names as the MILP of encodings/milp.py, so the two can be compared):

- inputs: one Real `x{i}` per input, bounded by the case box; the case's
  `input_A x <= input_b` as assertions;
- `Affine` layer i: one Real `L{i}_z{j}` per output, asserted equal to
  `sum_k W[j,k] * (input k) + b[j]`, and bounded by the layer's (padded) bounds;
- `ReLU` layer i: one Real `L{i}_y{j}` per neuron with its bounds; with
  pre-activation bounds [l, u]: u <= 0 -> `y = 0`; l >= 0 -> `y = z`;
  otherwise the disjunction `(z <= 0 and y = 0) or (z >= 0 and y = z)`;
- `MaxGroups` layer i: one Real `L{i}_m{k}` per group with `m >= x_j` for
  every member and the disjunction `m = x_j` over the members;
- the disjunct `A y <= b`: every row `A_i y <= b_i + tolerance`.

Numbers. Every weight, bias and bound is written as the exact rational value
of its float64 (`float.as_integer_ratio()`: the stored float32 values, or the
float64 fused ones of `Network.simplified()`): `(/ N.0 D.0)` with D a power of
two, never a rounded decimal. Z3 solves over the rationals, so its answer is
exact for the model as written.

The proof margin `tolerance` (default: `TOLERANCE` times the violation scale,
exactly as the MILP's `s <= tolerance`) makes "unsat" mean "no point has a
violation <= tolerance", which also covers the few ulps by which the fused
weights of the simplified network differ from the stored ones (the verifier
encodes the simplified network). `tolerance=0` gives the plain query. The
bounds on the neurons are implied constraints (they hold at every point of the
box: they are padded outward), added because they help the solver.

A satisfying assignment is only a candidate: its input values are re-checked by
`check_point` on the original network, like every other counterexample.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from ..bounds.layer_bounds import LayerBounds
from ..core.network import Affine, MaxGroups, Network, ReLU
from ..core.property import Case, OutputConstraint
from .milp import TOLERANCE, violation_bounds, violation_scale


@dataclass
class SmtModel:
    """Real variables with bounds, assertions as SMT-LIB2 terms, and how to read a model back."""

    names: list  # every Real, in declaration order
    lower: np.ndarray  # float64 bounds per variable (written exactly)
    upper: np.ndarray
    assertions: list  # SMT-LIB2 terms (each becomes one `(assert ...)`)
    input_idx: np.ndarray  # variable index of each network input
    output_idx: np.ndarray  # variable index of each network output
    out_A: np.ndarray  # the disjunct's rows (m, n_outputs)
    out_b: np.ndarray  # (m,)
    tolerance: float = 0.0  # rows are asserted as A_i y <= b_i + tolerance (exactly)
    comments: list = field(default_factory=list)  # header lines for the text
    stats: dict = field(default_factory=dict)  # disjunctions, unstable ReLUs per layer, ...

    @property
    def num_vars(self) -> int:
        """Number of Real variables."""
        return len(self.names)

    @property
    def num_binaries(self) -> int:
        """The number of disjunctions (the SMT counterpart of the MILP's binaries)."""
        return int(self.stats.get("disjunctions", 0))

    def input_values(self, values) -> np.ndarray:
        """The network input values in an assignment given as one value per variable (in `names` order)."""
        return np.asarray(values, dtype=np.float64)[self.input_idx]

    def output_values(self, values) -> np.ndarray:
        """The network output values in an assignment given as one value per variable (in `names` order)."""
        return np.asarray(values, dtype=np.float64)[self.output_idx]

    def output_rows(self, margin) -> list:
        """The disjunct's rows as SMT-LIB2 terms `A_i y <= b_i + margin` (margin exact, a float or Fraction)."""
        rows = []
        for a, b in zip(self.out_A, self.out_b):
            nz = np.flatnonzero(a)
            lhs = _sum([_times(a[j], self.names[self.output_idx[j]]) for j in nz])
            rows.append(f"(<= {lhs} {_lit(Fraction(float(b)) + Fraction(margin))})")
        return rows

    def violation(self, output_values) -> Fraction | None:
        """max_i (A_i y - b_i) in exact arithmetic for exact (Fraction) output values; None without rows."""
        if len(self.out_b) == 0:
            return None
        best = None
        for a, b in zip(self.out_A, self.out_b):
            v = sum((Fraction(float(a[j])) * output_values[j] for j in np.flatnonzero(a)), Fraction(0))
            v -= Fraction(float(b))
            best = v if best is None or v > best else best
        return best

    def to_smtlib2(self, commands: bool = True) -> str:
        """The model as SMT-LIB2 text; `commands` adds produce-models, set-logic and check-sat."""
        out = [f"; {c}" for c in self.comments]
        if commands:
            out += ["(set-option :produce-models true)", "(set-logic QF_LRA)"]
        out += [f"(declare-const {n} Real)" for n in self.names]
        for n, lo, hi in zip(self.names, self.lower, self.upper):
            if np.isfinite(lo):
                out.append(f"(assert (<= {_lit(lo)} {n}))")
            if np.isfinite(hi):
                out.append(f"(assert (<= {n} {_lit(hi)}))")
        out += [f"(assert {a})" for a in self.assertions]
        out += [f"(assert {r})" for r in self.output_rows(self.tolerance)]
        if commands:
            # no (get-value ...): it is an error after unsat; `z3 -model FILE` prints the model of a sat answer
            out.append("(check-sat)")
        return "\n".join(out) + "\n"


def build_smt(network: Network, layer_bounds: LayerBounds, case: Case, disjunct: OutputConstraint,
              tolerance: float | None = None) -> SmtModel:
    """Encode 'some x in the case has network(x) meeting the disjunct' in QF_LRA (see the module doc)."""
    import scipy.sparse as sp
    names, lower, upper, assertions = [], [], [], []
    stats = {"relu_unstable": [], "disjunctions": 0}

    def declare(new_names, lo, hi) -> np.ndarray:
        start = len(names)
        names.extend(new_names)
        lower.extend(np.asarray(lo, dtype=np.float64).tolist())
        upper.extend(np.asarray(hi, dtype=np.float64).tolist())
        return np.arange(start, len(names))

    n_in = network.input_size
    cur = declare([f"x{i}" for i in range(n_in)], case.lower, case.upper)
    input_idx = cur
    if case.input_A is not None and len(case.input_b):
        ia = np.asarray(case.input_A, dtype=np.float64)
        for row, rhs in zip(ia, np.asarray(case.input_b, dtype=np.float64)):
            lhs = _sum([_times(row[j], names[cur[j]]) for j in np.flatnonzero(row)])
            assertions.append(f"(<= {lhs} {_lit(rhs)})")

    for i, layer in enumerate(network.layers):
        lo, hi = layer_bounds.pre_activation(i)
        out_lo, out_hi = layer_bounds.lower[i], layer_bounds.upper[i]
        src = [names[k] for k in cur]
        if isinstance(layer, Affine):
            n = layer.out_size
            cur = declare([f"L{i}_z{j}" for j in range(n)], out_lo, out_hi)
            w = sp.csr_matrix(layer.weight)
            bias = np.asarray(layer.bias, dtype=np.float64)
            for j in range(n):
                s, e = w.indptr[j], w.indptr[j + 1]
                terms = [_times(v, src[k]) for k, v in zip(w.indices[s:e], w.data[s:e]) if v != 0]
                if bias[j] != 0 or not terms:
                    terms.append(_lit(bias[j]))
                assertions.append(f"(= {names[cur[j]]} {_sum(terms)})")
        elif isinstance(layer, ReLU):
            n = layer.size
            cur = declare([f"L{i}_y{j}" for j in range(n)], np.maximum(out_lo, 0.0), out_hi)
            unstable = 0
            for j in range(n):
                z, y = src[j], names[cur[j]]
                if hi[j] <= 0:
                    assertions.append(f"(= {y} 0.0)")
                elif lo[j] >= 0:
                    assertions.append(f"(= {y} {z})")
                else:
                    unstable += 1
                    assertions.append(f"(or (and (<= {z} 0.0) (= {y} 0.0)) (and (>= {z} 0.0) (= {y} {z})))")
            stats["relu_unstable"].append(unstable)
            stats["disjunctions"] += unstable
        elif isinstance(layer, MaxGroups):
            cur = declare([f"L{i}_m{k}" for k in range(layer.out_size)], out_lo, out_hi)
            for k in range(layer.out_size):
                m = names[cur[k]]
                members = [src[j] for j in layer.members(k)]
                assertions.extend(f"(>= {m} {x})" for x in members)
                if len(members) == 1:
                    assertions.append(f"(= {m} {members[0]})")
                else:
                    assertions.append("(or " + " ".join(f"(= {m} {x})" for x in members) + ")")
                    stats["disjunctions"] += 1
        else:
            raise TypeError(f"unknown layer type {type(layer).__name__}")

    A = np.asarray(disjunct.A, dtype=np.float64)
    b = np.asarray(disjunct.b, dtype=np.float64)
    if tolerance is None:
        v_lo, v_hi = violation_bounds(A, b, layer_bounds.lower[-1], layer_bounds.upper[-1])
        tolerance = TOLERANCE * violation_scale(v_lo, v_hi)
    model = SmtModel(names=names, lower=np.array(lower), upper=np.array(upper), assertions=assertions,
                     input_idx=np.asarray(input_idx), output_idx=np.asarray(cur), out_A=A, out_b=b,
                     tolerance=float(tolerance), stats=stats)
    model.comments = [
        f"exactverify SMT encoding: {network.source or 'network'}, {n_in} inputs, {network.output_size} outputs",
        f"{len(names)} Reals, {stats['disjunctions']} disjunctions (unstable ReLUs {stats['relu_unstable']})",
        f"output rows asserted as A y <= b + {float(tolerance)!r} (the proof margin); numbers are exact rationals",
    ]
    return model


# ------------------------------------------------------------------ exact literals

def _lit(v) -> str:
    """The exact SMT-LIB2 literal of a float (or Fraction): N.0 or (/ N.0 D.0), negated with (- ...)."""
    if isinstance(v, Fraction):
        n, d = v.numerator, v.denominator
    else:
        v = float(v)
        if not np.isfinite(v):
            raise ValueError(f"cannot write {v} as an SMT-LIB2 real")
        n, d = v.as_integer_ratio()
    body = f"{abs(n)}.0" if d == 1 else f"(/ {abs(n)}.0 {d}.0)"
    return f"(- {body})" if n < 0 else body


def _times(w, name: str) -> str:
    w = float(w)
    return name if w == 1.0 else f"(* {_lit(w)} {name})"


def _sum(terms: list) -> str:
    if not terms:
        return "0.0"
    if len(terms) == 1:
        return terms[0]
    return "(+ " + " ".join(terms) + ")"


def parse_literal(text: str) -> Fraction:
    """The inverse of `_lit` (for tests and readers of exported files)."""
    t = text.strip()
    neg = t.startswith("(- ")
    if neg:
        t = t[3:-1].strip()
    if t.startswith("(/ "):
        n, d = t[3:-1].split()
        val = Fraction(int(n.split(".")[0]), int(d.split(".")[0]))
    else:
        val = Fraction(t)
    return -val if neg else val
