"""Solver backends: each solves a model and answers with a `SolveResult` (plain data).

- "highs": HiGHS through highspy (solvers/highs.py), a `MilpModel`;
- "cbc" (and "glpk" where glpsol is installed): the same `MilpModel` built
  through PuLP (solvers/cbc.py);
- "z3": an `SmtModel` (encodings/smt.py), the network as exact linear real
  arithmetic with disjunctions, solved by Z3 (solvers/z3.py). The
  verifier builds that encoding instead of the MILP when its solver is "z3".

A backend's status vocabulary is deliberately small, and only "infeasible"
may ever be read as a proof:

- "optimal": a solution is proven optimal (up to the solver's gap settings);
- "infeasible": the solver completed its search and found the model infeasible;
- "time_limit": the time ran out;
- "interrupted": `on_solution` asked to stop (a counterexample re-checked);
- "unknown": anything else (numerical trouble, errors, limits).

`on_solution(col_values, objective) -> bool` is called on improving solutions
where the backend supports it; returning True stops the search. HiGHS calls
it on every improving MIP solution; PuLP has no callback (the best solution
comes back in the result, and the verifier re-checks it there); Z3 calls it
with its satisfying assignment, whose objective is the assignment's exact
violation max_i (A_i y - b_i), and answers "optimal" for sat (a point, not an
optimum: the SMT query has no objective).
"""

from __future__ import annotations

from .base import STATUSES, SolveResult  # noqa: F401  (re-exported)

MILP_SOLVERS = ("highs", "cbc", "glpk")  # solve a MilpModel
SMT_SOLVERS = ("z3",)  # solve an SmtModel
_OPTIONAL = (("glpk", "glpsol"),)  # PuLP command-line solvers offered where their executable is found


def _available_solvers() -> tuple:
    import shutil
    return ("highs", "cbc", "z3") + tuple(name for name, exe in _OPTIONAL if shutil.which(exe))


SOLVERS = _available_solvers()  # the names `--solver` accepts; a back end is added here and in `solve`
_SETUP_SECONDS = 0.5  # below this, a large MILP's setup alone outlasts the limit (ERAN 9x200: about a second)


def solve(model, solver: str = "highs", time_limit: float = 60.0, on_solution=None, **options) -> SolveResult:
    """Solve `model` (a MilpModel, or an SmtModel for "z3") with the named backend."""
    smt = hasattr(model, "to_smtlib2")
    if solver in SMT_SOLVERS and not smt:
        raise TypeError(f"solver {solver!r} solves the SMT encoding (encodings/smt.py build_smt), not a MILP")
    if solver in MILP_SOLVERS and smt:
        raise TypeError(f"solver {solver!r} solves a MilpModel, not the SMT encoding")
    if solver == "highs":
        from .highs import solve_highs
        return solve_highs(model, time_limit=time_limit, on_solution=on_solution, **options)
    if solver in ("cbc", "glpk"):
        from .cbc import solve_pulp
        return solve_pulp(model, solver, time_limit=time_limit, on_solution=on_solution, **options)
    if solver == "z3":
        from .z3 import solve_z3
        return solve_z3(model, time_limit=time_limit, on_solution=on_solution, **options)
    raise ValueError(f"unknown solver {solver!r} (available: {', '.join(SOLVERS)})")


def too_large_for(model, time_limit: float) -> bool:
    """Whether setting `model` up alone would outlast `time_limit` seconds, so that solving it is pointless."""
    if time_limit >= _SETUP_SECONDS or hasattr(model, "to_smtlib2"):
        return False
    from .highs import large_model
    return large_model(model)
