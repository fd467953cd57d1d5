"""The PuLP backend: the same `MilpModel`, built through PuLP and solved by CBC (bundled) or GLPK.

Solvers: "cbc" is the CBC binary PuLP ships, driven by `pulp.COIN_CMD` (`cbc_binary`; one thread,
no console output, the caller's time limit); "glpk" is `pulp.GLPK_CMD` where
`glpsol` is installed (`available_solvers()` says which are).

Precision. PuLP hands the model to the solver as a text file and writes every
number with 12-13 significant digits (`% .12e` in MPS, `%.12g` in LP), so the
model the solver reads is not exactly the `MilpModel`. Rounding could cut a real
point off by a few 1e-12 (relative), which would make "infeasible" unsound in
principle. The backend therefore hands PuLP a model that is relaxed by more
than that rounding can take back (`relaxed_for_text`):

- every continuous column's bounds are widened by `_REL` (1e-10) relative to
  their magnitude (binaries keep 0 and 1, which are written exactly);
- every row `rl <= a x <= ru` gets bounds widened by
  `E = 1e-11 * sum_j |a_j| max(|lo_j|, |hi_j|)` (the most that rounding each
  coefficient by a relative 5e-12 can change a x over the widened columns) plus
  `_REL` relative to the bound itself; an equality row becomes a ranged row,
  i.e. two PuLP constraints.

Only relaxing: every point of the original model satisfies the relaxed one, so
"infeasible" of the relaxed model (what the solver reports) is still a proof;
the extra points it admits can only add candidate solutions, which the
verifier re-checks. The slack is far below the proof margin of the encoding
(`TOLERANCE`, 1e-6 of the violation scale).

Status. PuLP's own mapping is too coarse for a proof (it reads CBC's
"Stopped on time - objective value ..." as optimal and GLPK's "INTEGER
NON-OPTIMAL" as optimal), so the solver's raw status line is captured and
mapped here: CBC "Optimal" -> optimal; "Infeasible"/"Integer infeasible" ->
infeasible; "Stopped on time" -> time_limit; anything else (other stops,
"Unbounded", errors, a missing solution file) -> unknown. GLPK "OPTIMAL" /
"INTEGER OPTIMAL" -> optimal; "INFEASIBLE (FINAL)" / "INTEGER EMPTY" ->
infeasible; "INTEGER NON-OPTIMAL" / "INTEGER UNDEFINED" / "UNDEFINED" after
the time limit -> time_limit, otherwise unknown. Only "infeasible" is ever read
as a proof (see `exactverify.solvers`).

No improving-solution callback (PuLP has none): the best solution the solver
returns is handed back, and checked here only for feasibility in the ORIGINAL
model (rows and bounds within 1e-6 relative to the size of their terms: CBC
writes its solution with 8 significant digits) so that a "stopped" solver's
placeholder values are not passed on as a solution. The verifier re-checks it
on the network like every other candidate.

Temporary files: PuLP writes the model and solution files to its `tmpDir`;
each solve gets its own temporary directory, removed afterwards whatever
happens.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time

import numpy as np

from ..encodings.writers import unique_names
from .base import SolveResult

PULP_SOLVERS = ("cbc", "glpk")  # our names for the PuLP command-line solvers we drive
_REL = 1e-10  # outward widening of bounds, relative: far above the 5e-12 of 12-digit rounding
_COEF_REL = 1e-11  # per-coefficient rounding allowance, relative
_FEAS = 1e-6  # a returned point must satisfy the original model to this relative accuracy


def available_solvers() -> tuple:
    """The PuLP solvers usable here, by our names (cbc is bundled with PuLP)."""
    names = []
    try:
        import pulp
        if cbc_binary() is not None and pulp.COIN_CMD(msg=False, path=cbc_binary()).available():
            names.append("cbc")
    except Exception:  # pulp missing or its CBC not executable
        pass
    if shutil.which("glpsol"):
        names.append("glpk")
    return tuple(names)


def cbc_binary() -> str | None:
    """The CBC executable: the one PuLP ships (PuLP 2 and 3), else a `cbc` on PATH (PuLP 4 ships none;
    `pip install "pulp[cbc]"` puts one there). Driven through `COIN_CMD`, PuLP's non-deprecated API."""
    try:
        from pulp.apis import coin_api
    except ImportError:
        return None
    bundled = getattr(coin_api, "pulp_cbc_path", None)
    if bundled and os.access(bundled, os.X_OK):
        return bundled
    return shutil.which("cbc")


def solve_pulp(model, solver: str = "cbc", time_limit: float = 60.0, on_solution=None, seed: int = 0,
               options: dict | None = None) -> SolveResult:
    """Solve a MilpModel with a PuLP solver ("cbc" or "glpk"). `on_solution` is not called (no callback)."""
    import pulp

    start = time.perf_counter()
    limit = max(float(time_limit), 0.01)
    if solver not in PULP_SOLVERS:
        raise ValueError(f"unknown PuLP solver {solver!r} (PuLP solvers: {', '.join(PULP_SOLVERS)})")
    prob, cols = build_problem(model, pulp)
    tmp = tempfile.mkdtemp(prefix="exactverify-pulp-")
    try:
        if solver == "cbc":
            cmd = _command("cbc", msg=False, timeLimit=limit, threads=1, path=cbc_binary(),
                           options=[f"randomSeed {int(seed) + 1}"])
        else:  # GLPK takes whole seconds
            cmd = _command("glpk", msg=False, timeLimit=max(1, int(np.ceil(limit))))
        cmd.tmpDir = tmp
        try:
            prob.solve(cmd)
            raw = cmd.raw_status
        except pulp.PulpSolverError as e:
            raw = f"error: {e}"
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    elapsed = time.perf_counter() - start
    if solver == "cbc":
        status = cbc_status(raw)
    else:
        status = glpk_status(raw, timed_out=elapsed >= 0.95 * limit)

    x = objective = None
    if status != "infeasible":
        values = np.array([v.varValue if v.varValue is not None else np.nan for v in cols], dtype=np.float64)
        if np.all(np.isfinite(values)) and _feasible(model, values):
            x = values
            objective = float(np.dot(model.objective, values))
    if status == "optimal" and x is None:
        status = "unknown"  # "optimal" without a usable point: say nothing
    return SolveResult(status=status, x=x, objective=objective, dual_bound=None, nodes=0,
                       seconds=time.perf_counter() - start, solver_status=f"{solver}: {raw}")


# ------------------------------------------------------------------ status words

def cbc_status(raw: str) -> str:
    """Our status for the first line of a CBC solution file (see the module doc)."""
    words = (raw or "").strip().lower()
    if words.startswith("optimal"):
        return "optimal"
    if words.startswith("infeasible") or words.startswith("integer infeasible"):
        return "infeasible"
    if words.startswith("stopped on time"):
        return "time_limit"
    return "unknown"


def glpk_status(raw: str, timed_out: bool = False) -> str:
    """Our status for GLPK's status string (see the module doc)."""
    words = (raw or "").strip().upper()
    if words in ("OPTIMAL", "INTEGER OPTIMAL"):
        return "optimal"
    if words in ("INFEASIBLE (FINAL)", "INTEGER EMPTY"):
        return "infeasible"
    if words in ("INTEGER NON-OPTIMAL", "INTEGER UNDEFINED", "UNDEFINED") and timed_out:
        return "time_limit"
    return "unknown"


def _command(solver: str, **kwargs):
    """A PuLP command object for `solver` whose class also keeps the solver's raw status line."""
    import pulp

    base = pulp.COIN_CMD if solver == "cbc" else pulp.GLPK_CMD

    class Capturing(base):
        raw_status = "no solution file"

        def get_status(self, filename):  # CBC: the first line of the solution file
            with open(filename) as f:
                self.raw_status = f.readline().strip()
            return super().get_status(filename)

        def readsol(self, outFile, solFile):  # GLPK: line 5 of the output file, after "Status:"
            with open(outFile) as f:
                lines = [f.readline() for _ in range(5)]
            self.raw_status = lines[4][12:].strip()
            return super().readsol(outFile, solFile)

    return Capturing(**kwargs)


# ------------------------------------------------------------------ the model

def relaxed_for_text(model):
    """(col_lower, col_upper, row_lower, row_upper) relaxed so that 12-digit rounding cannot cut a point off."""
    integer = np.asarray(model.integrality, dtype=bool)
    cl = np.asarray(model.col_lower, dtype=np.float64)
    cu = np.asarray(model.col_upper, dtype=np.float64)
    cl = np.where(integer, cl, cl - _REL * np.abs(cl))
    cu = np.where(integer, cu, cu + _REL * np.abs(cu))
    mag = np.maximum(np.abs(cl), np.abs(cu))
    A = model.A.tocsr()
    E = _COEF_REL * (abs(A) @ mag)
    E = E * (1 + 1e-6) + 1e-300  # the float64 error of this sum is far below the factor
    rl = np.asarray(model.row_lower, dtype=np.float64)
    ru = np.asarray(model.row_upper, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        rl = np.where(np.isfinite(rl), rl - E - _REL * np.abs(rl), rl)
        ru = np.where(np.isfinite(ru), ru + E + _REL * np.abs(ru), ru)
    return cl, cu, rl, ru


def build_problem(model, pulp):
    """(problem, variables): the MilpModel as a PuLP problem, relaxed by `relaxed_for_text`, columns in order."""
    sense = pulp.LpMinimize if model.sense == "min" else pulp.LpMaximize
    prob = pulp.LpProblem("exactverify", sense)
    cl, cu, rl, ru = relaxed_for_text(model)
    names = unique_names(model.col_names, "c", identifiers=True)
    # PuLP >= 3.3 wants variables made by the problem (LpVariable(...) directly is deprecated there)
    make = prob.add_variable if hasattr(prob, "add_variable") else pulp.LpVariable
    cols = [make(n, lowBound=float(lo), upBound=float(hi), cat=pulp.LpInteger if integer else pulp.LpContinuous)
            for n, lo, hi, integer in zip(names, cl, cu, model.integrality)]
    obj = [(cols[j], float(c)) for j, c in enumerate(model.objective) if c != 0]
    prob.setObjective(pulp.LpAffineExpression(obj) if obj else pulp.LpAffineExpression())
    A = model.A.tocsr()
    row_names = unique_names(model.row_names, "r", identifiers=True)
    for i in range(model.num_rows):
        s, e = A.indptr[i], A.indptr[i + 1]
        terms = [(cols[j], float(v)) for j, v in zip(A.indices[s:e], A.data[s:e])]
        if np.isfinite(rl[i]):
            prob.addConstraint(pulp.LpConstraint(pulp.LpAffineExpression(terms), pulp.LpConstraintGE,
                                                 rhs=float(rl[i]), name=f"{row_names[i]}_lo"))
        if np.isfinite(ru[i]):
            prob.addConstraint(pulp.LpConstraint(pulp.LpAffineExpression(terms), pulp.LpConstraintLE,
                                                 rhs=float(ru[i]), name=f"{row_names[i]}_up"))
    return prob, cols


def _feasible(model, x: np.ndarray) -> bool:
    """Does x satisfy the original model's bounds, rows and integrality to `_FEAS` (relative)?"""
    tol = lambda v: _FEAS * (1.0 + np.abs(np.where(np.isfinite(v), v, 0.0)))
    if np.any(x < model.col_lower - tol(model.col_lower)) or np.any(x > model.col_upper + tol(model.col_upper)):
        return False
    integer = np.asarray(model.integrality, dtype=bool)
    if integer.any() and np.any(np.abs(x[integer] - np.round(x[integer])) > _FEAS):
        return False
    act = model.A @ x
    # CBC's solution file has 8 significant digits: measure rows against the size of their terms
    mag = abs(model.A) @ np.abs(x)
    with np.errstate(invalid="ignore"):
        low = np.isfinite(model.row_lower) & (act < model.row_lower - tol(model.row_lower) - _FEAS * mag)
        high = np.isfinite(model.row_upper) & (act > model.row_upper + tol(model.row_upper) + _FEAS * mag)
    return not (low.any() or high.any())
