"""The Z3 backend: solves an `SmtModel` (encodings/smt.py) exactly, over the rationals.

The model's SMT-LIB2 text (`SmtModel.to_smtlib2`, the same text `exactverify
export --format smt2` writes) is parsed into a fresh Z3 context and checked with
the caller's time limit (`timeout`, in ms) and one thread. Statuses:

- z3 `unsat` -> "infeasible": an exact proof that no point meets the disjunct
  within the model's proof margin;
- z3 `sat` -> the exact rational values of the inputs and outputs are read
  from the model, and the exact violation max_i (A_i y - b_i) computed in
  rational arithmetic is the objective. If it is <= 0, `on_solution` gets the
  point (True stops: "interrupted"), otherwise (a point inside the margin) the
  query is asked again with margin 0 on the pushed solver: a sat answer there
  is the point returned; unsat means every point's violation lies in
  (0, margin]: "optimal" with the first point's (positive) violation. A point
  is never a verdict: the verifier re-checks its inputs on the network. When
  that re-check fails, the query is asked once more with margin -tolerance
  (a point at least that far inside every row, where float rounding cannot
  undo it), and that point, if any, goes to `on_solution` too;
- z3 `unknown` with reason "timeout"/"canceled", or the time gone -> "time_limit";
  any other `unknown` -> "unknown".

`SolveResult.x` holds one value per model variable: the exact values (rounded
to float64) of the inputs and outputs, NaN for the others (they are not read).
"""

from __future__ import annotations

import time
from fractions import Fraction

import numpy as np

from .base import SolveResult


def solve_z3(model, time_limit: float = 60.0, on_solution=None, seed: int = 0, options: dict | None = None,
             ) -> SolveResult:
    """Solve an SmtModel with Z3 within `time_limit` seconds (see the module doc for the statuses).

    `on_solution(x, violation)` gets each point found with violation <= 0; returning True stops
    ("interrupted"). `options` are set on the Z3 solver as they are.
    """
    import z3

    start = time.perf_counter()
    deadline = start + max(float(time_limit), 0.0)
    ctx = z3.Context()
    solver = z3.Solver(ctx=ctx)
    solver.set("random_seed", int(seed))
    for k, v in (options or {}).items():
        solver.set(k, v)
    solver.add(z3.parse_smt2_string(model.to_smtlib2(commands=False), ctx=ctx))

    def check():
        ms = int((deadline - time.perf_counter()) * 1000)
        if ms <= 0:
            return None
        solver.set("timeout", max(ms, 1))
        return solver.check()

    def status_of(r):
        if r is None or (r == z3.unknown and (solver.reason_unknown() in ("timeout", "canceled")
                                               or time.perf_counter() >= deadline)):
            return "time_limit"
        return "unknown"

    def read_point():
        m = solver.model()
        exact = {}
        for idx in np.concatenate([model.input_idx, model.output_idx]):
            v = m.eval(z3.Real(model.names[idx], ctx), model_completion=True)
            exact[int(idx)] = Fraction(v.numerator_as_long(), v.denominator_as_long())
        x = np.full(model.num_vars, np.nan)
        for idx, v in exact.items():
            x[idx] = float(v)
        viol = model.violation([exact[int(i)] for i in model.output_idx])
        return x, viol

    def done(status, x=None, viol=None, raw=""):
        objective = None if viol is None else float(viol)
        if viol is not None and viol > 0 and objective <= 0:
            objective = float(np.nextafter(0.0, 1.0))  # keep the sign of a tiny positive violation
        if x is not None and viol is None:
            objective = -np.inf  # no output rows: every point of the network meets the disjunct
        return SolveResult(status=status, x=x, objective=objective, seconds=time.perf_counter() - start,
                           solver_status=f"z3: {raw}", extra={"exact_violation": None if viol is None else str(viol)})

    r = check()
    if r == z3.unsat:
        return done("infeasible", raw="unsat")
    if r != z3.sat:
        return done(status_of(r), raw="unknown" if r is None else f"unknown ({solver.reason_unknown()})")
    x, viol = read_point()
    if viol is not None and viol > 0:
        # inside the margin: is there a point with violation <= 0 at all?
        solver.push()
        solver.add(_rows(model, 0, ctx))
        r2 = check()
        if r2 == z3.unsat:
            return done("optimal", x, viol, raw="sat; unsat with margin 0")
        if r2 != z3.sat:
            return done(status_of(r2), x, viol, raw=f"sat; unknown with margin 0 ({solver.reason_unknown()})")
        x, viol = read_point()
    if on_solution is None:
        return done("optimal", x, viol, raw="sat")
    if on_solution(x, float(viol) if viol is not None else -np.inf):
        return done("interrupted", x, viol, raw="sat")
    if viol is not None:
        # Z3 answers with a vertex, usually ON a row A_i y = b_i, where float rounding can fail the
        # re-check: ask once more for a point at least `tolerance` inside every row
        solver.push()
        solver.add(_rows(model, -model.tolerance, ctx))
        if check() == z3.sat:
            x2, viol2 = read_point()
            if on_solution(x2, float(viol2)):
                return done("interrupted", x2, viol2, raw="sat (a point inside the rows)")
    return done("optimal", x, viol, raw="sat")


def _rows(model, margin, ctx):
    """The disjunct's rows A y <= b + margin, parsed into ctx."""
    import z3

    decls = "".join(f"(declare-const {model.names[i]} Real)\n" for i in model.output_idx)
    return z3.parse_smt2_string(decls + "".join(f"(assert {t})\n" for t in model.output_rows(margin)), ctx=ctx)
