"""MILP backends: each solves a `MilpModel` and answers with a `SolveResult` (plain data).

A backend's status vocabulary is deliberately small, and only "infeasible"
may ever be read as a proof:

- "optimal": a solution is proven optimal (up to the solver's gap settings);
- "infeasible": the solver completed its search and found the model infeasible;
- "time_limit": the time ran out;
- "interrupted": `on_solution` asked to stop (a counterexample re-checked);
- "unknown": anything else (numerical trouble, errors, limits).

`on_solution(col_values, objective) -> bool` is called on improving solutions
where the backend supports it; returning True stops the search.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

STATUSES = ("optimal", "infeasible", "time_limit", "interrupted", "unknown")
SOLVERS = ("highs",)  # the names `--solver` accepts; a back end is added here and in `solve`


@dataclass
class SolveResult:
    status: str  # one of STATUSES
    x: np.ndarray | None = None  # primal column values of the best solution found, if any
    objective: float | None = None  # its objective value
    dual_bound: float | None = None  # the proven bound on the objective, if the solver reports one
    nodes: int = 0
    seconds: float = 0.0
    solver_status: str = ""  # the backend's own words, for messages
    extra: dict = field(default_factory=dict)


def solve(model, solver: str = "highs", time_limit: float = 60.0, on_solution=None, **options) -> SolveResult:
    """Solve `model` with the named backend."""
    if solver == "highs":
        from .highs import solve_highs
        return solve_highs(model, time_limit=time_limit, on_solution=on_solution, **options)
    raise ValueError(f"unknown MILP solver {solver!r} (available: highs)")
