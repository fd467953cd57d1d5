"""What every solver back end answers: a `SolveResult`, with a small status vocabulary
(see exactverify.solvers for what each status means; only "infeasible" is ever a proof)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

STATUSES = ("optimal", "infeasible", "time_limit", "interrupted", "unknown")


@dataclass
class SolveResult:
    """The solver's answer: a status, the best point found and a proven bound, if any."""

    status: str  # one of STATUSES
    x: np.ndarray | None = None  # primal column values of the best solution found, if any
    objective: float | None = None  # its objective value
    dual_bound: float | None = None  # the proven bound on the objective, if the solver reports one
    nodes: int = 0  # branch-and-bound nodes, where the backend reports them
    seconds: float = 0.0
    solver_status: str = ""  # the backend's own words, for messages
    extra: dict = field(default_factory=dict)  # backend-specific details, e.g. z3's exact violation
