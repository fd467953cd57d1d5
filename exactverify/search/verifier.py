"""`verify`: decide one network/property instance, soundly.

The plan, cheapest first:

1. per case: sound layer bounds over the input box (CROWN, or intervals);
2. cheap points (centre, corners, random points); any point that
   `check_point` accepts on the ORIGINAL network is a `sat`;
3. per disjunct: try to refute it from the output bounds alone;
4. a short gradient attack on the disjuncts still open;
5. the rest: MILPs (encodings/milp.py), the disjuncts the cheap points came
   closest to satisfying first. Where the input is low-dimensional and many
   ReLUs are unstable, over input sub-boxes (branch and bound on the input,
   `_Run._split_case`), since per-box bounds make most ReLUs stable and the
   MILPs small. Where it is high-dimensional and the network is a plain
   Affine/ReLU chain, branch and bound on ReLU phases with beta-CROWN bounds
   first (relu_split.py; MILPs only on its nearly fully split leaves), and
   one MILP per disjunct over the whole case for whatever it leaves. An
   infeasible status is a proof for that disjunct (or box); a solution is only
   a candidate, re-checked by `check_point` inside the solver callback, so that
   the search stops at the first real counterexample, and polished when it
   fails the re-check.

Verdicts: sat only with a re-checked counterexample; unsat only when every
disjunct of every case is refuted (bounds or solver proof, on the whole case
or on every box of a split); timeout when the
time ran out first; unknown when some disjunct could be neither refuted nor
satisfied (e.g. its best violation lies within the solver's tolerances).

The simplified network (fused affine maps) is only encoded and bounded; every
re-check uses the network the caller passed. The few ulps by which the fused
weights differ are covered by the padding of the bounds and by the MILP's
proof margin (encodings/milp.py).
"""

from __future__ import annotations

import heapq
import itertools
import time

import numpy as np

from ..bounds import crown as bounds_mod
from ..core.check import Counterexample, check_point
from ..encodings.milp import MilpModel, build_milp, violation_bounds
from ..core.network import Affine, Network
from . import relu_split
from ..core.property import Case, Property
from ..core.result import VerificationResult
from .tightening import STAGES, TighteningReport, tightened_bounds
from ..solvers import solve, too_large_for

_N_CHEAP_POINTS = 64
_POLISH_SECONDS = 0.5  # the most one polish may take; the MILP leaves this much of the budget
_SPLIT_MAX_INPUTS = 16  # input splitting pays only where the input is low-dimensional
# A case with at most this many unstable ReLUs goes straight to the MILP, and so does a ReLU-splitting
# domain (capped at _LEAF_SECONDS; beyond it the domain stays open). On ACAS Xu, CROWN-Ada alone, HiGHS
# needed ~0.1 s for 12-24 binaries where a split and two CROWN passes took ~3 ms: small leaves won there.
_LEAF_BINARIES = 12
_LEAF_SECONDS = 0.5
# Input splitting's leaves are larger: with alpha-CROWN (below) cutting the tree, a 20-binary MILP (~40 ms
# on ACAS Xu) ends a subtree that CROWN-Ada would split for hundreds of boxes near a tight margin. A box
# whose MILP takes longer than _INPUT_LEAF_SECONDS is split after all.
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
_MILP_FRIENDLY_UNSTABLE = 150  # at most this many unstable ReLUs: ReLU splitting leaves half the time to MILPs
_REFUTED = ("lipschitz", "bounds", "milp", "split", "relu split")  # the outcomes that prove a disjunct unreachable
_LIPSCHITZ_MAX_WEIGHTS = 200_000  # the one-pass Lipschitz check runs on networks up to this size
_PROGRESS_SECONDS = 5.0  # how often a long run reports progress
_TIGHTENING_SHARE = 0.3  # LP/MILP tightening may use this share of the time limit
# input splitting spends at most this share of its time on region walks (region_search.py): one walk
# per disjunct from a box before it is split, while the walks are under their share
_REGION_SHARE = 0.05


class _Clock:
    def __init__(self, timeout: float):
        self.start = time.perf_counter()
        self.deadline = self.start + max(float(timeout), 0.0)

    def left(self) -> float:
        return self.deadline - time.perf_counter()

    def expired(self) -> bool:
        return self.left() <= 0.0

    def elapsed(self) -> float:
        return time.perf_counter() - self.start


class _OutOfTime(Exception):
    pass


class _Found(Exception):
    """Raised internally when a counterexample re-checks, to leave every loop at once."""

    def __init__(self, ce: Counterexample, how: str):
        self.ce, self.how = ce, how


def verify(network: Network, prop: Property, timeout: float = 60.0, bounds: str = "crown", solver: str = "highs",
           attack_time: float | None = None, seed: int = 0, tightening: str | None = None,
           progress=None, workers: int = 1) -> VerificationResult:
    """Decide whether some input of `prop` drives `network` into the unsafe output set.

    tightening: how far the bounds over each case's box are tightened before
    any MILP (tightening.STAGES: "interval", "crown" (default), "lp", "milp");
    "interval" also makes every sub-box use intervals. `bounds` is the older
    name for the interval/crown choice. attack_time: seconds for the gradient
    attack before any MILP (default: 5% of the timeout, at most 2 s; 0 skips
    it; cheap points are always tried). progress: a callable taking one line
    of text, called every `_PROGRESS_SECONDS` or so on long runs (the CLI
    prints it on stderr). workers: more than 1 lets an instance that one
    process does not decide within a few seconds go on as pieces on that many
    worker processes (parallel.py).
    """
    if workers and workers > 1:
        from .parallel import verify_parallel
        return verify_parallel(network, prop, timeout, workers, bounds=bounds, solver=solver,
                               attack_time=attack_time, seed=seed, tightening=tightening, progress=progress)
    clock = _Clock(timeout)
    prop.validate(network)
    if tightening is None:
        tightening = "interval" if bounds == "interval" else "crown"
    if tightening not in STAGES:
        raise ValueError(f"unknown tightening {tightening!r} (choose from {', '.join(STAGES)})")
    run = _Run(network, prop, clock, tightening, solver, seed, progress)
    if attack_time is None:
        attack_time = min(2.0, 0.05 * timeout)
    try:
        if run.lipschitz_check():  # every disjunct refuted in one forward pass: no bounds, no MILP
            return run.conclude()
        run.bound_cases()
        run.cheap_points()
        run.refute_by_bounds()
        run.attack(attack_time)
        run.solve_open()
    except _Found as found:
        return run.result("sat", f"counterexample re-checked ({found.how})", found.ce)
    except _OutOfTime:
        pass
    return run.conclude()


class _Run:
    """The state of one `verify` call: per (case, disjunct) outcomes, timings and stats."""

    def __init__(self, network, prop, clock, tightening, solver, seed, progress=None):
        self.network = network  # the original: every re-check runs on it
        self.net = network.simplified()  # bounds and encodings only
        self.prop = prop
        self.clock = clock
        self.solver = solver
        self.rng = np.random.default_rng(seed)
        self.seed = seed
        self.case_bounds: list = []
        # (ci, di) -> "bounds" | "milp" | "split" (refuted) | "timeout" | "unknown: why"; missing = undecided
        self.outcome: dict = {}
        self.best_violation: dict = {}  # (ci, di) -> the smallest violation seen at any tried point
        self.timings = {"bounds": 0.0, "attack": 0.0, "milp": 0.0, "region": 0.0}
        self.stats = {"solver_calls": 0, "nodes": 0, "milps": 0, "binaries_max": 0, "polish_calls": 0,
                      "refuted_by_bounds": 0, "refuted_by_milp": 0}
        self.bounds_info: dict = {"method": None, "unstable": [], "stages": []}
        self.tightening = tightening  # one of tightening.STAGES
        self.progress = progress
        self._last_progress = time.perf_counter()
        self.walks = 0  # region walks started (every third starts from the box being split)

    # ------------------------------------------------------------ stages

    def lipschitz_check(self) -> bool:
        """The one-pass Lipschitz certificate (Leino et al.) on each case box; True if it refutes every disjunct.

        Only on networks with at most `_LIPSCHITZ_MAX_WEIGHTS` weights: the
        certified layer norms cost seconds on MNIST-sized layers, where CROWN
        is tighter anyway. GloRo-trained networks pass it often.
        """
        if sum(np.prod(l.weight.shape) for l in self.net.layers if isinstance(l, Affine)) > _LIPSCHITZ_MAX_WEIGHTS:
            return False
        from ..bounds.lipschitz import lipschitz_refutes
        t = time.perf_counter()
        try:
            for ci, case in enumerate(self.prop.cases):
                for di, refuted in enumerate(lipschitz_refutes(self.net, case)):
                    if refuted:
                        self.outcome[(ci, di)] = "lipschitz"
                        self.stats["refuted_by_lipschitz"] = self.stats.get("refuted_by_lipschitz", 0) + 1
        finally:
            self.timings["lipschitz"] = self.timings.get("lipschitz", 0.0) + time.perf_counter() - t
        return all((ci, di) in self.outcome for ci, c in enumerate(self.prop.cases) for di in range(len(c.disjuncts)))

    def bound_cases(self):
        t = time.perf_counter()
        for case in self.prop.cases:
            self._check_time()
            report = TighteningReport()
            deadline = min(self.clock.deadline, self.clock.start + _TIGHTENING_SHARE * (self.clock.deadline - self.clock.start))
            try:
                lb = tightened_bounds(self.net, case.lower, case.upper, self.tightening, deadline=deadline, report=report)
                used = self.tightening
            except NotImplementedError:  # CROWN is not available for some layer: intervals
                lb, used = _box_bounds(self.net, case.lower, case.upper, "interval")
            self.case_bounds.append(lb)
            self.bounds_info["method"] = "interval" if used == "interval" else "crown"
            self.bounds_info["unstable"].append(lb.unstable_counts(self.net))
            self.bounds_info["stages"].append(report.stages)
        self.timings["bounds"] += time.perf_counter() - t

    def cheap_points(self):
        t = time.perf_counter()
        try:
            for ci, case in enumerate(self.prop.cases):
                self._check_time()
                self._cheap_points(ci, case)
        finally:
            self.timings["attack"] += time.perf_counter() - t

    def attack(self, attack_time: float):
        """The gradient attack, on the disjuncts the bounds left open."""
        open_prop = self._undecided_property()
        budget = min(attack_time, self.clock.left())
        if open_prop is None or budget <= 0:
            return
        from .attack import pgd_attack
        t = time.perf_counter()
        try:
            ce = pgd_attack(self.network, open_prop, time_budget=budget, seed=self.seed, deadline=self.clock.deadline)
        finally:
            self.timings["attack"] += time.perf_counter() - t
        if ce is not None:
            # a counterexample of a sub-property is one of the property: re-check against it for the indices
            ce = check_point(self.network, self.prop, ce.x)
            if ce is not None:
                raise _Found(ce, "attack")

    def refute_by_bounds(self):
        t = time.perf_counter()
        for ci, case in enumerate(self.prop.cases):
            refuted_all = _refuted_by_bounds(self.net, self.case_bounds[ci], case.disjuncts, alpha="optimized")
            for di, refuted in enumerate(refuted_all):
                if refuted and (ci, di) not in self.outcome:
                    self.outcome[(ci, di)] = "bounds"
                    self.stats["refuted_by_bounds"] += 1
        self.timings["bounds"] += time.perf_counter() - t

    def solve_open(self):
        """Every disjunct still open: MILPs, over input sub-boxes where the input is low-dimensional."""
        by_case = {}
        for ci, case in enumerate(self.prop.cases):
            ds = [di for di in range(len(case.disjuncts)) if (ci, di) not in self.outcome]
            if ds:
                # the disjuncts the cheap points came closest to meeting first: the likeliest to be sat
                by_case[ci] = sorted(ds, key=lambda di: self.best_violation.get((ci, di), np.inf))
        order = sorted(by_case, key=lambda ci: self.best_violation.get((ci, by_case[ci][0]), np.inf))
        for n, ci in enumerate(order):
            lb = self.case_bounds[ci]
            unstable = sum(lb.unstable_counts(self.net))
            if self.prop.n_inputs <= _SPLIT_MAX_INPUTS and unstable > _LEAF_BINARIES:
                self._split_case(ci, by_case[ci])
                continue
            if self._relu_splitting_applies(ci, unstable):
                # The cases left share the time left; a case's MILPs get what splitting leaves. With few
                # unstable ReLUs a whole-box MILP can beat splitting on fixed root bounds (MNIST 256x2,
                # 112 unstable: one disjunct's MILP infeasible in 9 s, splitting open after 500k
                # domains), so there splitting gets half the case's time.
                share = self.clock.left() / (len(order) - n)
                if unstable <= _MILP_FRIENDLY_UNSTABLE:
                    share *= 0.5
                self._relu_split_case(ci, by_case[ci], time.perf_counter() + share)
                by_case[ci] = [di for di in by_case[ci] if (ci, di) not in self.outcome]
            for di in by_case[ci]:
                if self.clock.expired():
                    self.outcome[(ci, di)] = "timeout"
                else:
                    self.outcome[(ci, di)] = self._solve_disjunct(ci, di, self.prop.cases[ci], lb)

    # ------------------------------------------------------------ ReLU splitting

    def _relu_splitting_applies(self, ci: int, unstable: int) -> bool:
        """unstable: the count of unstable ReLUs over case ci's box."""
        return (self.prop.n_inputs > _SPLIT_MAX_INPUTS and self.solver == "highs" and relu_split.supports(self.net)
                and self.prop.cases[ci].input_A is None and unstable > _LEAF_BINARIES)

    def _relu_split_case(self, ci: int, dis: list, deadline: float):
        """Branch and bound on ReLU phases (relu_split.py) for the disjuncts `dis` of case ci, until
        `deadline`; refuted disjuncts get the outcome "relu split", the others stay open. Domains with
        at most `_LEAF_BINARIES` unstable ReLUs left get a MILP capped at `_LEAF_SECONDS`."""
        case = self.prop.cases[ci]

        def leaf(domain_bounds, di):
            return self._solve_disjunct(ci, di, case, domain_bounds, _LEAF_SECONDS) == "milp"

        def progress(stats, frontier, worst):
            self._report_progress(extra=f"ReLU splitting: {stats.domains} domains, {frontier} open, "
                                        f"worst bound {worst:.4g}")

        splitter = relu_split.ReluSplitter(self.net, self.case_bounds[ci], case.disjuncts,
                                           lambda x: check_point(self.network, self.prop, x, ci),
                                           leaf=leaf, leaf_unstable=_LEAF_BINARIES)
        t = time.perf_counter()
        try:
            refuted, ce = splitter.run(dis, min(deadline, self.clock.deadline), progress)
        finally:
            self.timings["relu_split"] = self.timings.get("relu_split", 0.0) + time.perf_counter() - t
            st = splitter.stats
            self.stats["relu_domains"] = self.stats.get("relu_domains", 0) + st.domains
            self.stats["relu_depth"] = max(self.stats.get("relu_depth", 0), st.max_depth)
        if ce is not None:
            raise _Found(ce, "ReLU splitting")
        for di in refuted:
            self.outcome[(ci, di)] = "relu split"
            self.stats["refuted_by_relu_split"] = self.stats.get("refuted_by_relu_split", 0) + 1

    # ------------------------------------------------------------ input splitting

    def _split_case(self, ci: int, dis: list):
        """Branch and bound over the input box of case ci for the disjuncts `dis`.

        Boxes are split in half on one input (closed halves: their union is the
        box, so nothing is lost); each gets its own, tighter, bounds, which
        refute disjuncts outright or leave few unstable ReLUs. Boxes deep in a
        region where CROWN-Ada keeps failing get alpha-CROWN bounds
        (`_ALPHA_UNSTABLE`, `_ALPHA_AFTER`). A box goes to a MILP when few
        ReLUs are left unstable (`_INPUT_LEAF_BINARIES`), or when splitting has
        stopped paying: as many splits in a row as there are inputs without
        one ReLU fewer unstable (around a point where several ReLU boundaries
        cross, halving never makes them stable). A leaf MILP that runs over
        `_INPUT_LEAF_SECONDS` is split after all. Best-first on the bounds' lower
        bound of the violation, so the box likeliest to hold a counterexample
        comes first. A disjunct is refuted when every box is: outcome "split".
        """
        case = self.prop.cases[ci]
        heap, counter = [], itertools.count()
        self.stats["boxes"] = self.stats.get("boxes", 0)

        def still_open(lb, ds, alpha="adaptive"):
            refuted = _refuted_by_bounds(self.net, lb, [case.disjuncts[di] for di in ds], alpha=alpha)
            return [di for di, r in zip(ds, refuted) if not r]

        def push(lo, hi, ds, stall, parent_unstable, parent_gens):
            """parent_gens: how many generations up to the parent have had at most _ALPHA_UNSTABLE unstable."""
            t = time.perf_counter()
            crown = self.bounds_info["method"] == "crown"
            alpha = crown and parent_gens >= _ALPHA_AFTER  # the parent had alpha-CROWN bounds: so does the child
            if not alpha:
                lb, _ = _box_bounds(self.net, lo, hi, self.bounds_info["method"])
                ds = still_open(lb, ds)
                unstable = sum(lb.unstable_counts(self.net))
                alpha = crown and parent_gens + 1 >= _ALPHA_AFTER and unstable <= _ALPHA_UNSTABLE
            if ds and alpha:
                # tighter bounds also mean fewer binaries and smaller big-M constants in the leaf MILP
                lb = bounds_mod.crown_bounds(self.net, lo, hi, alpha="optimized", iterations=_ALPHA_ITERATIONS)
                ds = still_open(lb, ds, "optimized")
                unstable = sum(lb.unstable_counts(self.net))
                self.stats["alpha_boxes"] = self.stats.get("alpha_boxes", 0) + 1
            self.timings["bounds"] += time.perf_counter() - t
            if ds:
                stall = stall + 1 if unstable >= parent_unstable else 0
                gens = parent_gens + 1 if unstable <= _ALPHA_UNSTABLE else 0
                key = min(_violation_lower(case.disjuncts[di], lb) for di in ds)
                heapq.heappush(heap, (key, next(counter), lo, hi, lb, ds, stall, unstable, gens))

        split_start = time.perf_counter()
        lb0 = self.case_bounds[ci]
        heapq.heappush(heap, (0.0, next(counter), case.lower, case.upper, lb0, dis, 0,
                              sum(lb0.unstable_counts(self.net)), 0))
        while heap:
            if self.clock.expired():
                break
            _, _, lo, hi, lb, ds, stall, unstable, gens = heapq.heappop(heap)
            self.stats["boxes"] += 1
            self._report_progress(len(heap))
            t = time.perf_counter()
            self._box_descent(ci, ds, lo, hi)
            self.timings["attack"] += time.perf_counter() - t
            if self.timings["region"] <= _REGION_SHARE * (time.perf_counter() - split_start):
                self._region_walks(ci, ds, lo, hi)
            dim = self._split_dimension(ci, ds, lo, hi)
            if unstable <= _INPUT_LEAF_BINARIES or stall >= len(lo) or dim is None:
                sub = Case(lo, hi, [], case.input_A, case.input_b)
                left = []
                for di in ds:
                    o = self._solve_disjunct(ci, di, sub, lb, _INPUT_LEAF_SECONDS if dim is not None else None)
                    if o == "timeout" and dim is not None and not self.clock.expired():
                        left.append(di)  # too hard as a whole: split it
                    elif o != "milp":
                        self.outcome.setdefault((ci, di), o)  # "timeout" or "unknown: ..."; other boxes go on
                if not left:
                    continue
                ds = left
            mid = lo[dim] + (hi[dim] - lo[dim]) / 2
            for a, b in ((lo[dim], mid), (mid, hi[dim])):
                clo, chi = lo.copy(), hi.copy()
                clo[dim], chi[dim] = a, b
                push(clo, chi, ds, stall, unstable, gens)
        for di in dis:
            if any(di in item[5] for item in heap):  # boxes left unexamined when the time ran out
                self.outcome.setdefault((ci, di), "timeout")
            self.outcome.setdefault((ci, di), "split")

    def _box_descent(self, ci: int, ds: list, lo: np.ndarray, hi: np.ndarray, starts: int = 2, steps: int = 5):
        """A few signed-gradient steps inside one box, from its centre and random points."""
        from .attack import violation_and_gradient
        x0 = np.vstack([lo + (hi - lo) / 2, lo + self.rng.random((starts - 1, len(lo))) * (hi - lo)])
        for di in ds:
            d = self.prop.cases[ci].disjuncts[di]
            if len(d.b) == 0:
                self._try_points(ci, [di], x0[:1], "search in an input box")
                continue
            x, step = x0, 0.25 * (hi - lo)
            for _ in range(steps):
                viol, grad = violation_and_gradient(self.net, x, d.A, d.b)
                self.best_violation[(ci, di)] = min(self.best_violation.get((ci, di), np.inf), float(viol.min()))
                if viol.min() <= 1e-9 * (1 + np.max(np.abs(d.b))):
                    self._try_points(ci, [di], x[viol <= viol.min()], "search in an input box")
                x = np.clip(x - step * np.sign(grad), lo, hi)
                step = step * 0.5

    def _region_walks(self, ci: int, ds: list, lo: np.ndarray, hi: np.ndarray):
        """One region walk per disjunct over the case box, from a corner/face/interior mix of the case
        box (its faces hold the thin regions the walk is for) or, every third time, of this box."""
        from .region_search import mixed_start, region_walk
        case = self.prop.cases[ci]
        t = time.perf_counter()
        try:
            for di in ds:
                d = case.disjuncts[di]
                if len(d.b) == 0 or self.clock.expired():
                    continue
                self.walks += 1
                box = (lo, hi) if self.walks % 3 == 0 else (case.lower, case.upper)
                start = mixed_start(self.net, *box, d.A, d.b, self.rng)
                x, s, lps = region_walk(self.net, case.lower, case.upper, d.A, d.b, start, self.clock.deadline,
                                        case.input_A, case.input_b)
                self.stats["region_lps"] = self.stats.get("region_lps", 0) + lps
                if x is not None:
                    self._try_points(ci, [di], x[None, :], "region walk")
        finally:
            self.timings["region"] += time.perf_counter() - t

    def _split_dimension(self, ci: int, ds: list, lo: np.ndarray, hi: np.ndarray):
        """The input to split: largest width x mean |gradient of the violation| at a few points; None if none can be."""
        mid = lo + (hi - lo) / 2
        splittable = (lo < mid) & (mid < hi)
        if not splittable.any():
            return None
        pts = np.vstack([mid, lo + self.rng.random((3, len(lo))) * (hi - lo)])
        from .attack import violation_and_gradient
        g = np.zeros(len(lo))
        for di in ds:
            d = self.prop.cases[ci].disjuncts[di]
            if len(d.b):
                g += np.abs(violation_and_gradient(self.net, pts, d.A, d.b)[1]).mean(axis=0)
        score = np.where(splittable, (hi - lo) * (g + 1e-12 * (g.max() + 1e-300)), -1.0)
        return int(np.argmax(score))

    # ------------------------------------------------------------ one disjunct

    def _solve_disjunct(self, ci: int, di: int, case: Case, lb, time_cap: float | None = None) -> str:
        """MILP for disjunct di of case ci over `case`'s input region (the case itself or a sub-box of it)."""
        self._report_progress()
        t = time.perf_counter()
        try:
            return self._milp_outcome(ci, di, case, lb, time_cap)
        finally:
            self.timings["milp"] += time.perf_counter() - t

    def _milp_outcome(self, ci, di, case, lb, time_cap):
        if self.solver == "z3":  # the SMT encoding (exact rationals, disjunctions) instead of the MILP
            from ..encodings.smt import build_smt
            model = build_smt(self.net, lb, case, self.prop.cases[ci].disjuncts[di])
        else:
            model = build_milp(self.net, lb, case, self.prop.cases[ci].disjuncts[di])
        self.stats["milps"] += 1
        self.stats["binaries_max"] = max(self.stats["binaries_max"], model.num_binaries)
        candidates = []  # solutions with violation <= 0 that did not re-check
        found = []

        def on_solution(col_values, objective):
            if objective > 0:
                return False
            ce = check_point(self.network, self.prop, model.input_values(col_values), ci)
            if ce is None:
                candidates.append(col_values)
                return False
            found.append(ce)
            return True

        res = self._solve(model, on_solution, time_cap)
        if found:
            raise _Found(found[0], "milp")
        if res.status == "infeasible":
            self.stats["refuted_by_milp"] += 1
            return "milp"
        if res.x is not None and res.objective is not None and res.objective <= 0:
            candidates.append(res.x)
        if candidates:
            ce = self._polish(model, ci, di, candidates)
            if ce is not None:
                raise _Found(ce, "milp, polished")
        if res.status == "time_limit" or self.clock.expired():
            return "timeout"
        if candidates:
            return "unknown: the MILP's solutions with violation <= 0 did not re-check, even polished"
        if res.status == "optimal":
            return (f"unknown: the smallest violation {res.objective:.3g} lies within the proof margin "
                    f"{model.tolerance:.3g}")
        return f"unknown: solver status {res.solver_status}"

    def _solve(self, model: MilpModel, on_solution=None, time_cap: float | None = None):
        limit = self.clock.left() - min(_POLISH_SECONDS, 0.1 * max(self.clock.left(), 0.0))
        if limit <= 0:
            raise _OutOfTime
        if time_cap is not None:
            limit = min(limit, time_cap)
        if too_large_for(model, limit):
            raise _OutOfTime
        res = solve(model, self.solver, time_limit=limit, on_solution=on_solution, seed=self.seed)
        self.stats["solver_calls"] += 1
        self.stats["nodes"] += res.nodes
        return res

    def _polish(self, model: MilpModel, ci: int, di: int, candidates: list) -> Counterexample | None:
        """Turn MILP solutions that failed the re-check into a counterexample, if one is near.

        First the LP of the solution's activation pattern (binaries fixed to
        their rounding, which removes any integrality slack), minimising the
        violation, so its optimum has the largest margin the region offers;
        then a few small gradient steps from each point. Whatever comes out still has to pass `check_point`.
        That LP is always solved by HiGHS (a search heuristic whose output is re-checked, whatever the
        solver); an SMT model (solver z3) has no binaries to fix and goes straight to the gradient steps.
        """
        self.stats["polish_calls"] += 1
        end = time.perf_counter() + _POLISH_SECONDS
        points = []
        for col_values in candidates[-3:][::-1]:
            if (isinstance(model, MilpModel) and model.integrality.any()
                    and time.perf_counter() < min(end, self.clock.deadline)):
                lp = model.with_fixed_integers(col_values)
                res = solve(lp, "highs", time_limit=max(0.05, min(end, self.clock.deadline) - time.perf_counter()))
                self.stats["solver_calls"] += 1
                if res.x is not None and res.objective is not None and res.objective <= 0:
                    x = lp.input_values(res.x)
                    ce = check_point(self.network, self.prop, x, ci)
                    if ce is not None:
                        return ce
                    points.append(x)
            points.append(model.input_values(col_values))
        d = self.prop.cases[ci].disjuncts[di]
        for x in points:
            if time.perf_counter() >= min(end, self.clock.deadline):
                break
            ce = _local_descent(self.network, self.prop, ci, d, x, self.rng)
            if ce is not None:
                return ce
        return None

    # ------------------------------------------------------------ helpers

    def _cheap_points(self, ci: int, case):
        """Centre, random corners and uniform points of the case box."""
        lo, hi = case.lower, case.upper
        n = len(lo)
        k = _N_CHEAP_POINTS
        corners = np.where(self.rng.random((k // 4, n)) < 0.5, lo, hi)
        uniform = lo + self.rng.random((k - k // 4 - 1, n)) * (hi - lo)
        self._try_points(ci, range(len(case.disjuncts)), np.vstack([(lo + hi) / 2, corners, uniform]))

    def _try_points(self, ci: int, dis, pts: np.ndarray, how: str = "cheap point"):
        """Record the disjuncts' violations at pts and re-check the promising points."""
        case = self.prop.cases[ci]
        ys = self.net.forward(pts)
        for di in dis:
            d = case.disjuncts[di]
            viol = np.full(len(pts), -np.inf) if len(d.b) == 0 else np.max(ys @ d.A.T - d.b, axis=1)
            self.best_violation[(ci, di)] = min(self.best_violation.get((ci, di), np.inf), float(np.min(viol)))
            for j in np.argsort(viol)[:3]:
                # near-misses too: the simplified network's rounding differs from the original's
                if viol[j] <= 1e-9 * (1 + np.max(np.abs(d.b), initial=0.0)):
                    ce = check_point(self.network, self.prop, pts[j], ci)
                    if ce is not None:
                        raise _Found(ce, how)

    def _undecided_property(self) -> Property | None:
        """The property restricted to the disjuncts not yet refuted (None if there are none)."""
        cases = []
        for ci, case in enumerate(self.prop.cases):
            ds = [d for di, d in enumerate(case.disjuncts) if (ci, di) not in self.outcome]
            if ds:
                cases.append(Case(case.lower, case.upper, ds, case.input_A, case.input_b))
        if not cases:
            return None
        return Property(self.prop.n_inputs, self.prop.n_outputs, cases, self.prop.source, self.prop.meta)

    def _check_time(self):
        if self.clock.expired():
            raise _OutOfTime

    def _report_progress(self, heap_size: int | None = None, extra: str | None = None):
        now = time.perf_counter()
        if self.progress is None or now - self._last_progress < _PROGRESS_SECONDS:
            return
        self._last_progress = now
        total = sum(len(c.disjuncts) for c in self.prop.cases)
        refuted = sum(1 for o in self.outcome.values() if o in _REFUTED)
        line = (f"[{self.clock.elapsed():6.1f} s] disjuncts refuted {refuted}/{total}, "
                f"MILPs {self.stats['milps']}")
        if heap_size is not None:
            line += f", input boxes done {self.stats.get('boxes', 0)}, open {heap_size}"
        if extra:
            line += f", {extra}"
        self.progress(line)

    # ------------------------------------------------------------ verdict

    def conclude(self) -> VerificationResult:
        keys = [(ci, di) for ci, case in enumerate(self.prop.cases) for di in range(len(case.disjuncts))]
        outcomes = [self.outcome.get(k) for k in keys]
        refuted = [o in _REFUTED for o in outcomes]
        if all(refuted):
            by = sorted({o for o in outcomes})
            how = {"lipschitz": "Lipschitz certificate", "bounds": "bounds",
                   "milp": "SMT unsat (z3)" if self.solver == "z3" else "MILP infeasible",
                   "relu split": f"ReLU splitting over {self.stats.get('relu_domains', 0)} domains",
                   "split": f"input splitting into {self.stats.get('boxes', 0)} boxes, each refuted by its bounds"
                            + (f" or an infeasible MILP ({self.stats['milps']} MILPs)" if self.stats["milps"] else "")}
            return self.result("unsat", f"every disjunct refuted ({' and '.join(how[o] for o in by)}; "
                                        f"{len(keys)} disjuncts)")
        if self.clock.expired() or any(o is None or o == "timeout" for o in outcomes):
            left = sum(not r for r in refuted)
            return self.result("timeout", f"time ran out with {left} of {len(keys)} disjuncts undecided")
        unknown = [f"case {ci} disjunct {di}: {o[len('unknown: '):]}" for (ci, di), o in zip(keys, outcomes)
                   if o and o.startswith("unknown")]
        return self.result("unknown", "; ".join(unknown))

    def result(self, status: str, reason: str, ce: Counterexample | None = None) -> VerificationResult:
        decided = {}
        for o in self.outcome.values():
            key = o.split(":")[0]
            decided[key] = decided.get(key, 0) + 1
        stats = dict(self.stats, outcomes=decided)
        bounds_info = dict(self.bounds_info, binaries=self.stats["binaries_max"])
        return VerificationResult(status=status, counterexample=ce, reason=reason, seconds=self.clock.elapsed(),
                                  timings={k: round(v, 6) for k, v in self.timings.items()}, bounds=bounds_info,
                                  stats=stats, network=self.network.source, property=self.prop.source)


# ------------------------------------------------------------------ bounds

def _box_bounds(net: Network, lo, hi, method: str, alpha: str = "adaptive"):
    """(bounds, the method used) over [lo, hi]; CROWN falls back to intervals where it is not available."""
    if method == "crown":
        try:
            return bounds_mod.compute_bounds(net, lo, hi, "crown", alpha=alpha), "crown"
        except NotImplementedError:
            method = "interval"
    return bounds_mod.compute_bounds(net, lo, hi, method), method


def _violation_at(d, y) -> float:
    return -np.inf if len(d.b) == 0 else float(np.max(d.A @ y - d.b))


def _violation_lower(d, lb) -> float:
    """A lower bound on the disjunct's violation max_i (A_i y - b_i) from the output bounds."""
    if len(d.b) == 0:
        return -np.inf
    return float(np.max(violation_bounds(d.A, d.b, lb.lower[-1], lb.upper[-1])[0]))


def _refuted_by_bounds(net: Network, lb, disjuncts: list, alpha: str = "adaptive") -> list:
    """For each disjunct: is some row of A y <= b violated (> 0) at every output the bounds allow?

    The interval image of the output bounds first; for the disjuncts it leaves
    open, one CROWN pass over all their rows at once (`linear_objective_bounds`,
    where the bounds module has it). Sound, padded bounds only.
    """
    refuted = []
    for d in disjuncts:
        refuted.append(len(d.b) > 0 and bool(np.any(violation_bounds(d.A, d.b, lb.lower[-1], lb.upper[-1])[0] > 0)))
    open_ = [k for k, (d, r) in enumerate(zip(disjuncts, refuted)) if not r and len(d.b)]
    linear = getattr(bounds_mod, "linear_objective_bounds", None)
    if not open_ or linear is None:
        return refuted
    A = np.vstack([disjuncts[k].A for k in open_])
    b = np.concatenate([disjuncts[k].b for k in open_])
    try:
        lo, _ = linear(net, lb, A, -b, alpha=alpha)
    except NotImplementedError:
        return refuted
    lo = np.asarray(lo)
    start = 0
    for k in open_:
        m = len(disjuncts[k].b)
        refuted[k] = bool(np.any(lo[start:start + m] > 0))
        start += m
    # A conjunction of several rows is also refuted when some nonnegative combination
    # sum_i lam_i (A_i y - b_i) is > 0 everywhere: then no point meets every row. The
    # CROWN bound of a combination is often positive where no single row's is (each
    # row fails in a different part of the box); on ACAS Xu this cuts the input boxes
    # of a split 5-8 fold. The combinations are a fixed sample of the simplex.
    for k in open_:
        d = disjuncts[k]
        if refuted[k] or len(d.b) < 2:
            continue
        lam = _simplex_sample(len(d.b))
        try:
            lo, _ = linear(net, lb, lam @ d.A, -(lam @ d.b), alpha=alpha)
        except NotImplementedError:
            continue
        refuted[k] = bool(np.any(np.asarray(lo) > 0))
    return refuted


_SIMPLEX_SAMPLES: dict = {}


def _simplex_sample(m: int, count: int = 32) -> np.ndarray:
    """`count` fixed weight vectors on the m-simplex: the centre and Dirichlet(1) draws (seeded: runs repeat)."""
    if m not in _SIMPLEX_SAMPLES:
        draws = np.random.default_rng(m).dirichlet(np.ones(m), size=count - 1)
        _SIMPLEX_SAMPLES[m] = np.vstack([np.full(m, 1.0 / m), draws])
    return _SIMPLEX_SAMPLES[m]


# ------------------------------------------------------------------ polishing

def _local_descent(network: Network, prop: Property, ci: int, d, x0: np.ndarray, rng, steps: int = 30):
    """Small signed-gradient steps on the disjunct's violation from x0 and tiny perturbations of it."""
    from .attack import violation_and_gradient

    case = prop.cases[ci]
    lo, hi = case.lower, case.upper
    width = np.maximum(hi - lo, 0.0)
    x = np.clip(x0 + rng.uniform(-1, 1, (8, len(x0))) * 1e-6 * width, lo, hi)
    x[0] = np.clip(x0, lo, hi)
    step = 1e-3 * width
    for t in range(steps):
        viol, grad = violation_and_gradient(network, x, d.A, d.b)
        for j in np.argsort(viol)[:2]:
            if viol[j] <= 0:
                ce = check_point(network, prop, x[j], ci)
                if ce is not None:
                    return ce
        x = np.clip(x - step * np.sign(grad), lo, hi)
        if (t + 1) % 5 == 0:
            step = step * 0.3
    return None
