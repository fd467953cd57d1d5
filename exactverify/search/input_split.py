"""Input splitting: branch and bound over the input box of one case, for low-dimensional inputs.

Boxes are split in half on one input (closed halves: their union is the box, so nothing is lost);
each gets its own, tighter, bounds, which refute disjuncts outright or leave few unstable ReLUs. Boxes
deep in a region where CROWN-Ada keeps failing get alpha-CROWN bounds (`_ALPHA_UNSTABLE`,
`_ALPHA_AFTER`). A box goes to a MILP when few ReLUs are left unstable (`_INPUT_LEAF_BINARIES`), or
when splitting has stopped paying: as many splits in a row as there are inputs without one ReLU fewer
unstable (around a point where several ReLU boundaries cross, halving never makes them stable). A
leaf MILP that runs over `_INPUT_LEAF_SECONDS` is split after all. Best-first on the bounds' lower
bound of the violation, so the box likeliest to hold a counterexample comes first; before a box is
split, a few gradient steps inside it and, while they are under `_REGION_SHARE` of the time, region
walks (region_search.py) look for a counterexample there. A disjunct is refuted when every box is:
outcome "split".

The search reads and records through the verifier's run (`SearchRun`): its clock, outcomes, stats
and timings, its re-check of points and its MILP per disjunct, so that a box's MILP and a found
counterexample are handled exactly as in the rest of the pipeline.
"""

from __future__ import annotations

import heapq
import itertools
import time
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from ..bounds import crown as bounds_mod
from ..core.network import Network
from ..core.property import Case, Property
from .attack import violation_and_gradient
from .boxes import bisect, box_bounds, refuted_by_bounds, violation_lower
from .control import Clock
from .region_search import mixed_start, region_walk

# Input splitting's leaves are larger than ReLU splitting's: with alpha-CROWN (below) cutting the tree,
# a 20-binary MILP (~40 ms on ACAS Xu) ends a subtree that CROWN-Ada would split for hundreds of boxes
# near a tight margin. A box whose MILP takes longer than _INPUT_LEAF_SECONDS is split after all.
_INPUT_LEAF_BINARIES = 20
_INPUT_LEAF_SECONDS = 1.0
# A box with at most _ALPHA_UNSTABLE unstable ReLUs whose last _ALPHA_AFTER ancestors (itself included)
# also had at most that many and were not refuted gets alpha-CROWN bounds (~30 ms, 10x a CROWN-Ada box)
# when CROWN-Ada does not refute it. Sooner wastes them on subtrees CROWN-Ada closes in a few splits
# (ACAS Xu 1_1 prop_6: 98% refuted, yet 1.7x slower); on a tight margin (4_2 prop_2, min violation 1e-3)
# they refute about 60% of the boxes CROWN-Ada leaves.
_ALPHA_UNSTABLE = 40
_ALPHA_AFTER = 3
# slope steps per intermediate layer (the property's rows get 20): against 20, 37% less time for 90% of
# the refutations on ACAS Xu 4_2 and 3_3 prop_2
_ALPHA_ITERATIONS = 10
# at most this share of the splitting time goes to region walks (region_search.py): one walk per
# disjunct from a box before it is split, while the walks are under their share
_REGION_SHARE = 0.05


class SearchRun(Protocol):
    """What input splitting uses of the verifier's run (verifier._Run)."""

    net: Network  # the simplified network: bounds, gradients and encodings
    prop: Property
    clock: Clock
    rng: np.random.Generator
    case_bounds: list  # per case: the bounds over its whole box
    bounds_info: dict  # "method": "crown" or "interval", the bounds every box gets
    outcome: dict  # (ci, di) -> outcome
    best_violation: dict  # (ci, di) -> the smallest violation seen
    stats: dict
    timings: dict
    walks: int  # region walks started, over the whole run

    def solve_disjunct(self, ci: int, di: int, case: Case, lb, time_cap: float | None = None) -> str:
        """The MILP outcome of disjunct di over `case`'s box; raises on a re-checked counterexample."""

    def try_points(self, ci: int, dis, pts: np.ndarray, how: str = "cheap point") -> None:
        """Re-check the promising points; raises on a counterexample."""

    def report_progress(self, heap_size: int | None = None, extra: str | None = None) -> None:
        """A progress line, when one is due."""


@dataclass(eq=False)  # the heap orders (priority, counter, box): boxes themselves are never compared
class _Box:
    lo: np.ndarray
    hi: np.ndarray
    bounds: object  # LayerBounds over [lo, hi]
    open: list  # the disjuncts its bounds did not refute
    stall: int  # splits in a row without one ReLU fewer unstable
    unstable: int  # unstable ReLUs over the box
    gens: int  # generations up to this box with at most _ALPHA_UNSTABLE unstable


def split_case(run: SearchRun, ci: int, dis: list):
    """Branch and bound over the input box of case ci for the disjuncts `dis`; records their outcomes in `run`."""
    case = run.prop.cases[ci]
    heap, counter = [], itertools.count()
    run.stats["boxes"] = run.stats.get("boxes", 0)

    def still_open(lb, ds, alpha="adaptive"):
        refuted = refuted_by_bounds(run.net, lb, [case.disjuncts[di] for di in ds], alpha=alpha)
        return [di for di, r in zip(ds, refuted) if not r]

    def push(lo, hi, ds, stall, parent_unstable, parent_gens):
        """parent_gens: how many generations up to the parent have had at most _ALPHA_UNSTABLE unstable."""
        t = time.perf_counter()
        crown = run.bounds_info["method"] == "crown"
        alpha = crown and parent_gens >= _ALPHA_AFTER  # the parent had alpha-CROWN bounds: so does the child
        if not alpha:
            lb, _ = box_bounds(run.net, lo, hi, run.bounds_info["method"])
            ds = still_open(lb, ds)
            unstable = sum(lb.unstable_counts(run.net))
            alpha = crown and parent_gens + 1 >= _ALPHA_AFTER and unstable <= _ALPHA_UNSTABLE
        if ds and alpha:
            # tighter bounds also mean fewer binaries and smaller big-M constants in the leaf MILP
            lb = bounds_mod.crown_bounds(run.net, lo, hi, alpha="optimized", iterations=_ALPHA_ITERATIONS)
            ds = still_open(lb, ds, "optimized")
            unstable = sum(lb.unstable_counts(run.net))
            run.stats["alpha_boxes"] = run.stats.get("alpha_boxes", 0) + 1
        run.timings["bounds"] += time.perf_counter() - t
        if ds:
            stall = stall + 1 if unstable >= parent_unstable else 0
            gens = parent_gens + 1 if unstable <= _ALPHA_UNSTABLE else 0
            key = min(violation_lower(case.disjuncts[di], lb) for di in ds)
            heapq.heappush(heap, (key, next(counter), _Box(lo, hi, lb, ds, stall, unstable, gens)))

    split_start = time.perf_counter()
    lb0 = run.case_bounds[ci]
    heapq.heappush(heap, (0.0, next(counter),
                          _Box(case.lower, case.upper, lb0, dis, 0, sum(lb0.unstable_counts(run.net)), 0)))
    while heap:
        if run.clock.expired():
            break
        box = heapq.heappop(heap)[2]
        lo, hi, ds = box.lo, box.hi, box.open
        run.stats["boxes"] += 1
        run.report_progress(len(heap))
        t = time.perf_counter()
        _box_descent(run, ci, ds, lo, hi)
        run.timings["attack"] += time.perf_counter() - t
        if run.timings["region"] <= _REGION_SHARE * (time.perf_counter() - split_start):
            _region_walks(run, ci, ds, lo, hi)
        dim = _split_dimension(run, ci, ds, lo, hi)
        if box.unstable <= _INPUT_LEAF_BINARIES or box.stall >= len(lo) or dim is None:
            sub = Case(lo, hi, [], case.input_A, case.input_b)
            left = []
            for di in ds:
                o = run.solve_disjunct(ci, di, sub, box.bounds, _INPUT_LEAF_SECONDS if dim is not None else None)
                if o == "timeout" and dim is not None and not run.clock.expired():
                    left.append(di)  # too hard as a whole: split it
                elif o != "milp":
                    run.outcome.setdefault((ci, di), o)  # "timeout" or "unknown: ..."; other boxes go on
            if not left:
                continue
            ds = left
        for clo, chi in bisect(lo, hi, dim):
            push(clo, chi, ds, box.stall, box.unstable, box.gens)
    for di in dis:
        if any(di in box.open for _, _, box in heap):  # boxes left unexamined when the time ran out
            run.outcome.setdefault((ci, di), "timeout")
        run.outcome.setdefault((ci, di), "split")


def _box_descent(run: SearchRun, ci: int, ds: list, lo: np.ndarray, hi: np.ndarray, starts: int = 2,
                 steps: int = 5):
    """A few signed-gradient steps inside one box, from its centre and random points."""
    x0 = np.vstack([lo + (hi - lo) / 2, lo + run.rng.random((starts - 1, len(lo))) * (hi - lo)])
    for di in ds:
        d = run.prop.cases[ci].disjuncts[di]
        if len(d.b) == 0:
            run.try_points(ci, [di], x0[:1], "search in an input box")
            continue
        x, step = x0, 0.25 * (hi - lo)
        for _ in range(steps):
            viol, grad = violation_and_gradient(run.net, x, d.A, d.b)
            run.best_violation[(ci, di)] = min(run.best_violation.get((ci, di), np.inf), float(viol.min()))
            if viol.min() <= 1e-9 * (1 + np.max(np.abs(d.b))):
                run.try_points(ci, [di], x[viol <= viol.min()], "search in an input box")
            x = np.clip(x - step * np.sign(grad), lo, hi)
            step = step * 0.5


def _region_walks(run: SearchRun, ci: int, ds: list, lo: np.ndarray, hi: np.ndarray):
    """One region walk per disjunct over the case box, from a corner/face/interior mix of the case
    box (its faces hold the thin regions the walk is for) or, every third time, of this box."""
    case = run.prop.cases[ci]
    t = time.perf_counter()
    try:
        for di in ds:
            d = case.disjuncts[di]
            if len(d.b) == 0 or run.clock.expired():
                continue
            run.walks += 1
            box = (lo, hi) if run.walks % 3 == 0 else (case.lower, case.upper)
            start = mixed_start(run.net, *box, d.A, d.b, run.rng)
            x, s, lps = region_walk(run.net, case.lower, case.upper, d.A, d.b, start, run.clock.deadline,
                                    case.input_A, case.input_b)
            run.stats["region_lps"] = run.stats.get("region_lps", 0) + lps
            if x is not None:
                run.try_points(ci, [di], x[None, :], "region walk")
    finally:
        run.timings["region"] += time.perf_counter() - t


def _split_dimension(run: SearchRun, ci: int, ds: list, lo: np.ndarray, hi: np.ndarray):
    """The input to split: largest width x mean |gradient of the violation| at a few points; None if none can be."""
    mid = lo + (hi - lo) / 2
    splittable = (lo < mid) & (mid < hi)
    if not splittable.any():
        return None
    pts = np.vstack([mid, lo + run.rng.random((3, len(lo))) * (hi - lo)])
    g = np.zeros(len(lo))
    for di in ds:
        d = run.prop.cases[ci].disjuncts[di]
        if len(d.b):
            g += np.abs(violation_and_gradient(run.net, pts, d.A, d.b)[1]).mean(axis=0)
    score = np.where(splittable, (hi - lo) * (g + 1e-12 * (g.max() + 1e-300)), -1.0)
    return int(np.argmax(score))
