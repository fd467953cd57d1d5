"""The HiGHS backend (highspy): the whole model is passed as arrays in one `passModel`.

Settings: one thread, no console output, the caller's time limit, and tight
feasibility tolerances (1e-9) so that fewer near-solutions slip through as
spurious counterexamples (every one is re-checked anyway). A gap of zero: the
caller's models stop on their own, either at the violation cap or when a
callback has a re-checked counterexample.

Early stop: HiGHS reports each improving MIP solution through
`cbMipImprovingSolution`, but only its interrupt callbacks can stop the
search, so the first sets a flag and `cbMipInterrupt` (polled regularly during
the search) acts on it; that poll also enforces our own wall-clock deadline as
a backstop to HiGHS' time_limit.
"""

from __future__ import annotations

import time

import numpy as np

from ..core.runtime import held_interrupts
from .base import SolveResult

_TOLERANCES = {
    "primal_feasibility_tolerance": 1e-9,
    "dual_feasibility_tolerance": 1e-9,
    "mip_feasibility_tolerance": 1e-9,
}


_SHORT_LIMIT = 2.0  # seconds: below this, large models are solved without presolve
LARGE_MODEL_NNZ = 50_000  # nonzeros: from here on presolve and one root cut round take seconds


def large_model(model) -> bool:
    """Whether the MilpModel is large enough that HiGHS' presolve and a root cut round take seconds."""
    return model.A.nnz > LARGE_MODEL_NNZ


def solve_highs(model, time_limit: float = 60.0, on_solution=None, seed: int = 0, options: dict | None = None,
                ) -> SolveResult:
    """Solve a MilpModel with HiGHS; `on_solution` sees every improving MIP solution and may stop the search."""
    import highspy

    start = time.perf_counter()
    deadline = start + max(time_limit, 0.0)
    h = new_highs()
    # HiGHS checks its time limit only between root separation rounds, and on large models a round
    # can take 5 s or more (ERAN 9x200: a 26 s limit ended at 31 s): give it a margin there
    margin = min(5.0, 0.2 * time_limit) if large_model(model) else 0.0
    h.setOptionValue("time_limit", float(max(time_limit - margin, 1e-3)))
    h.setOptionValue("random_seed", int(seed))
    h.setOptionValue("mip_rel_gap", 0.0)
    h.setOptionValue("mip_abs_gap", 0.0)
    opts = {**_TOLERANCES, **(options or {})}
    if time_limit < _SHORT_LIMIT and large_model(model):
        # presolve never polls an interrupt and ignores time_limit: on ERAN 9x200 (261k nonzeros) it
        # takes 5-6 s, so a 0.3 s limit ran 5 s. Without it the LP solver's interrupts stop the run.
        opts["presolve"] = "off"
    for name, value in opts.items():
        h.setOptionValue(name, value)
    h.passModel(_to_highs_lp(model, highspy))

    state = {"stop": False, "error": None, "x": None, "objective": None}

    def improving(event):
        try:
            sol = np.array(event.data_out.mip_solution, dtype=np.float64)
            obj = float(event.data_out.objective_function_value)
            if on_solution is not None and len(sol) == model.num_cols and on_solution(sol, obj):
                state.update(stop=True, x=sol, objective=obj)
        except Exception as e:  # an exception must not unwind through the C++ solver
            state.update(stop=True, error=e)

    def interrupt(event):
        if state["stop"] or pending or time.perf_counter() > deadline:
            event.interrupt()

    h.cbMipImprovingSolution.subscribe(improving)
    h.cbMipInterrupt.subscribe(interrupt)
    # the MIP callback is not polled while the root LP or presolve's LPs run: on ERAN 9x200 (1169
    # binaries) a 30 s limit ran over by up to 11 s. The LP solvers' own interrupt callbacks are.
    h.cbSimplexInterrupt.subscribe(interrupt)
    h.cbIpmInterrupt.subscribe(interrupt)
    with held_interrupts() as pending:  # a Ctrl-C stops the run here and is raised after it
        run_highs(h)
    if state["error"] is not None:
        raise state["error"]

    ms = h.getModelStatus()
    info = h.getInfo()
    M = highspy.HighsModelStatus
    bounded = np.all(np.isfinite(model.col_lower)) and np.all(np.isfinite(model.col_upper))
    if ms == M.kInfeasible or (ms == M.kUnboundedOrInfeasible and bounded):
        # with every column bounded the model cannot be unbounded, so "unbounded or infeasible" is infeasible
        status = "infeasible"
    elif ms == M.kOptimal:
        status = "optimal"
    elif ms in (M.kInterrupt, M.kHighsInterrupt) and state["stop"]:
        status = "interrupted"
    elif ms == M.kTimeLimit or ((ms in (M.kInterrupt, M.kHighsInterrupt)) and time.perf_counter() > deadline):
        status = "time_limit"
    else:
        status = "unknown"

    x, objective = state["x"], state["objective"]
    if x is None and int(info.primal_solution_status) == 2 and status != "infeasible":  # 2: feasible
        x = np.array(h.getSolution().col_value, dtype=np.float64)
        objective = float(info.objective_function_value)
    dual = float(info.mip_dual_bound) if model.integrality.any() else None
    if dual is not None and not np.isfinite(dual):
        dual = None
    return SolveResult(status=status, x=x, objective=objective, dual_bound=dual,
                       nodes=int(max(info.mip_node_count, 0)), seconds=time.perf_counter() - start,
                       solver_status=h.modelStatusToString(ms))


_banner_silenced = False


def run_highs(h):
    """`h.run()`, robust to HiGHS' process-wide thread scheduler.

    Since HiGHS 1.16 a run whose `threads` option differs from the scheduler
    already running in the process (another Highs object, or scipy's bundled
    HiGHS, may have started one with every core) fails at once with model
    status "Not Set". We then reset the scheduler and run again: the
    one-thread setting is what keeps parallel workers from oversubscribing.
    """
    import highspy
    status = h.run()
    if status == highspy.HighsStatus.kError and h.getModelStatus() == highspy.HighsModelStatus.kNotset:
        highspy.Highs.resetGlobalScheduler(True)
        status = h.run()
    return status


def new_highs():
    """A quiet, single-threaded `highspy.Highs()` (output_flag off, threads 1).

    HiGHS prints its banner on C-level stdout when the first instance of a
    process is made, before any option can be set; the CLI's first stdout line
    must be the verdict, so that first construction runs with fd 1 pointed at
    /dev/null.
    """
    h = _construct_silently()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("threads", 1)
    return h


def _construct_silently():
    import highspy
    global _banner_silenced
    if _banner_silenced:
        return highspy.Highs()
    import os
    import sys
    sys.stdout.flush()
    saved = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        h = highspy.Highs()
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)
    _banner_silenced = True
    return h


def _to_highs_lp(model, highspy):
    """The MilpModel as a HighsLp (row-wise CSR, as built)."""
    lp = highspy.HighsLp()
    lp.num_col_ = model.num_cols
    lp.num_row_ = model.num_rows
    sense = 1.0 if model.sense == "min" else -1.0
    lp.col_cost_ = np.asarray(model.objective, dtype=np.float64)
    lp.sense_ = highspy.ObjSense.kMinimize if sense > 0 else highspy.ObjSense.kMaximize
    lp.col_lower_ = np.asarray(model.col_lower, dtype=np.float64)
    lp.col_upper_ = np.asarray(model.col_upper, dtype=np.float64)
    inf = highspy.kHighsInf
    lp.row_lower_ = np.where(np.isfinite(model.row_lower), model.row_lower, -inf)
    lp.row_upper_ = np.where(np.isfinite(model.row_upper), model.row_upper, inf)
    A = model.A.tocsr()
    lp.a_matrix_.format_ = highspy.MatrixFormat.kRowwise
    lp.a_matrix_.num_col_ = model.num_cols
    lp.a_matrix_.num_row_ = model.num_rows
    lp.a_matrix_.start_ = A.indptr.astype(np.int32)
    lp.a_matrix_.index_ = A.indices.astype(np.int32)
    lp.a_matrix_.value_ = A.data.astype(np.float64)
    if model.integrality.any():
        V = highspy.HighsVarType
        lp.integrality_ = [V.kInteger if f else V.kContinuous for f in model.integrality]
    return lp
