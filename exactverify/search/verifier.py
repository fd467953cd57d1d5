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
   input_split.py), since per-box bounds make most ReLUs stable and the
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

import contextlib
import threading
import time

import numpy as np

from ..bounds.krelu import network_cuts
from ..core.check import Counterexample, check_point
from ..core.network import Affine, Network, ReLU
from ..core.property import Case, Property
from ..core.result import VerificationResult
from ..core.runtime import PROGRESS_SECONDS, Ticker, worker_pool
from ..encodings.milp import MilpModel, build_milp
from ..solvers import solve, too_large_for
from . import relu_split
from .attack import local_descent
from .boxes import SPLIT_MAX_INPUTS, box_bounds, refuted_by_bounds
from .control import Clock, Found, OutOfTime
from .input_split import split_case
from .parallel import verify_parallel
from .refine import RefineReport, refine_bounds
from .tightening import KRELU_K, STAGES, TighteningReport, tightened_bounds

_N_CHEAP_POINTS = 64
_POLISH_SECONDS = 0.5  # the most one polish may take; the MILP leaves this much of the budget
# A case with at most this many unstable ReLUs goes straight to the MILP, and so does a ReLU-splitting
# domain (capped at _LEAF_SECONDS; beyond it the domain stays open). On ACAS Xu, CROWN-Ada alone, HiGHS
# needed ~0.1 s for 12-24 binaries where a split and two CROWN passes took ~3 ms: small leaves won there.
_LEAF_BINARIES = 12
_LEAF_SECONDS = 0.5
_MILP_FRIENDLY_UNSTABLE = 150  # at most this many unstable ReLUs: ReLU splitting leaves half the time to MILPs
_REFUTED = ("lipschitz", "bounds", "refined bounds", "milp", "split", "relu split")  # the outcomes that prove a disjunct unreachable
_LIPSCHITZ_MAX_WEIGHTS = 200_000  # the one-pass Lipschitz check runs on networks up to this size
_PROGRESS_SECONDS = PROGRESS_SECONDS  # how often a long run reports progress
_TIGHTENING_SHARE = 0.3  # LP/MILP tightening may use this share of the time limit
# Before ReLU splitting, per-neuron branch and bound may refine a case's bounds for this share of the
# case's time (MNIST-FC 256x4/256x6: 8-47 s, after which bounds alone refuted every disjunct).
_REFINE_SHARE = 0.5
_PROBE_SECONDS, _PROBE_SHARE = 2.0, 0.05  # the split on the root bounds before the refinement


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
    of text, called every `_PROGRESS_SECONDS` on long runs, whatever stage
    runs (the CLI prints it on stderr); it may be called from a timer thread.
    workers: more than 1 lets an instance that one
    process does not decide within a few seconds go on as pieces on that many
    worker processes (parallel.py); where the bounds are refined before ReLU
    splitting (high-dimensional input, Affine/ReLU chain, HiGHS), the workers
    share the refinement's neurons inside one run instead.
    """
    net = bounded_form(network)
    if workers and workers > 1 and not all(_splits_relus(net, prop, solver, case) for case in prop.cases):
        # (where ReLU splitting applies, the refinement before it uses the workers inside one run:
        # pieces would each refine the same bounds again, 10-40 s a piece on MNIST-FC)
        return verify_parallel(network, prop, timeout, workers, decide=verify, bounds=bounds, solver=solver,
                               attack_time=attack_time, seed=seed, tightening=tightening, progress=progress)
    clock = Clock(timeout)
    prop.validate(network)
    if tightening is None:
        tightening = "interval" if bounds == "interval" else "crown"
    if tightening not in STAGES:
        raise ValueError(f"unknown tightening {tightening!r} (choose from {', '.join(STAGES)})")
    run = _Run(network, net, prop, clock, tightening, solver, seed, progress, workers=max(1, workers or 1))
    if attack_time is None:
        attack_time = min(2.0, 0.05 * timeout)
    # the search reports at its hooks (boxes, MILPs, ReLU domains); a timer thread fills the gaps
    # (one long MILP, the tightening), so that a line comes every _PROGRESS_SECONDS whatever runs
    ticker = Ticker(max(0.05, min(0.5, _PROGRESS_SECONDS / 2)), run.report_progress) if progress else None
    try:
        if run.lipschitz_check():  # every disjunct refuted in one forward pass: no bounds, no MILP
            return run.conclude()
        run.bound_cases()
        run.cheap_points()
        run.refute_by_bounds()
        run.attack(attack_time)
        run.solve_open()
    except Found as found:
        return run.result("sat", f"counterexample re-checked ({found.how})", found.ce)
    except OutOfTime:
        pass
    finally:
        if ticker is not None:
            ticker.stop()
    return run.conclude()


def bounded_form(network: Network) -> Network:
    """The network that bounds and encodings work on: `simplified()` (fused affine maps), and where it
    ends in a ReLU (ERAN's mnist_relu_9_200 does), an identity affine map after it. The function is the
    same; the form is the Affine, ReLU, ..., Affine chain that ReLU splitting and bound refinement need."""
    net = network.simplified()
    if isinstance(net.layers[-1], ReLU):
        n = net.layers[-1].size
        net = Network(net.layers + [Affine(np.eye(n), np.zeros(n))], net.input_shape, net.output_shape, net.source,
                      dict(net.meta))
    return net


def _splits_relus(net: Network, prop: Property, solver: str, case: Case) -> bool:
    """Whether a case goes to ReLU splitting (after the bound refinement) rather than input splitting
    or a whole-box MILP, once it has enough unstable ReLUs: high-dimensional input, no input
    constraints, an Affine/ReLU chain (`net` in bounded form), HiGHS."""
    return (prop.n_inputs > SPLIT_MAX_INPUTS and solver == "highs" and case.input_A is None
            and relu_split.supports(net))


class _Run:
    """The state of one `verify` call: per (case, disjunct) outcomes, timings and stats.

    Input splitting (input_split.py) works on it through `input_split.SearchRun`: the attributes
    and the three public helpers (`solve_disjunct`, `try_points`, `report_progress`) named there.
    """

    def __init__(self, network, net, prop, clock, tightening, solver, seed, progress=None, workers: int = 1):
        self.network = network  # the original: every re-check runs on it
        self.net = net  # its bounded_form: bounds and encodings only
        self.prop = prop
        self.clock = clock
        self.solver = solver
        self.rng = np.random.default_rng(seed)
        self.seed = seed
        self.case_bounds: list = []
        self.case_cuts: list = []  # per case: k-ReLU facets for its MILPs (--tightening krelu)
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
        self._progress_lock = threading.Lock()
        self._progress_detail: tuple = (-np.inf, None, None)  # (when, heap size, extra) from the latest hook
        self.walks = 0  # region walks started by input splitting (every third from the box being split)
        self.workers = workers  # processes for the bound refinement (the rest of the run is this one)

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
        """Sound layer bounds over each case's box, tightened as far as `self.tightening` says."""
        t = time.perf_counter()
        for case in self.prop.cases:
            self._check_time()
            report = TighteningReport()
            deadline = min(self.clock.deadline, self.clock.start + _TIGHTENING_SHARE * (self.clock.deadline - self.clock.start))
            try:
                lb = tightened_bounds(self.net, case.lower, case.upper, self.tightening, deadline=deadline, report=report)
                used = self.tightening
            except NotImplementedError:  # CROWN is not available for some layer: intervals
                lb, used = box_bounds(self.net, case.lower, case.upper, "interval")
            self.case_bounds.append(lb)
            # under krelu, every MILP of the case (whole box, input-split piece or ReLU-split leaf: all
            # subsets of the box, where the facets hold too) also carries the 3-ReLU facets
            self.case_cuts.append(network_cuts(self.net, lb, KRELU_K) if used == "krelu" else [])
            self.bounds_info["method"] = "interval" if used == "interval" else "crown"
            self.bounds_info["unstable"].append(lb.unstable_counts(self.net))
            self.bounds_info["stages"].append(report.stages)
        self.timings["bounds"] += time.perf_counter() - t

    def cheap_points(self):
        """Re-check the centre, random corners and uniform points of every case box."""
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
                raise Found(ce, "attack")

    def refute_by_bounds(self):
        """Refute the disjuncts that the bounds over their whole case box exclude."""
        t = time.perf_counter()
        for ci, case in enumerate(self.prop.cases):
            refuted_all = refuted_by_bounds(self.net, self.case_bounds[ci], case.disjuncts, alpha="optimized")
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
            if self.prop.n_inputs <= SPLIT_MAX_INPUTS and unstable > _LEAF_BINARIES:
                split_case(self, ci, by_case[ci])
                continue
            if self._relu_splitting_applies(ci, unstable):
                # The cases left share the time left; a case's MILPs get what splitting leaves. With few
                # unstable ReLUs a whole-box MILP can beat splitting on fixed root bounds (MNIST 256x2,
                # 112 unstable: one disjunct's MILP infeasible in 9 s, splitting open after 500k
                # domains), so there splitting gets half the case's time.
                share = self.clock.left() / (len(order) - n)
                # a short split on the root bounds first: it decides the easy cases in less time than
                # the refinement takes (MNIST-FC 256x4 prop_8_0.03: 1.2k domains, ~1 s; refined: 4.6 s)
                if _PROBE_SECONDS > 0:
                    self._relu_split_case(ci, by_case[ci], time.perf_counter() + min(_PROBE_SECONDS, _PROBE_SHARE * share))
                    by_case[ci] = self._still_open(ci, by_case[ci])
                    if not by_case[ci]:
                        continue
                share = self.clock.left() / (len(order) - n)
                self._refine_case(ci, by_case[ci], time.perf_counter() + _REFINE_SHARE * share)
                by_case[ci] = self._still_open(ci, by_case[ci])
                if not by_case[ci]:
                    continue
                lb = self.case_bounds[ci]
                share = self.clock.left() / (len(order) - n)
                if sum(lb.unstable_counts(self.net)) <= _MILP_FRIENDLY_UNSTABLE:
                    share *= 0.5
                self._relu_split_case(ci, by_case[ci], time.perf_counter() + share)
                by_case[ci] = self._still_open(ci, by_case[ci])
            for di in by_case[ci]:
                if self.clock.expired():
                    self.outcome[(ci, di)] = "timeout"
                else:
                    self.outcome[(ci, di)] = self.solve_disjunct(ci, di, self.prop.cases[ci], lb)

    # ------------------------------------------------------------ ReLU splitting

    def _refine_case(self, ci: int, dis: list, deadline: float):
        """Refine case ci's intermediate bounds by per-neuron branch and bound (refine.py) until
        `deadline`, then refute what the refined bounds exclude (outcome "refined bounds")."""
        case = self.prop.cases[ci]
        t = time.perf_counter()

        def refute(lb) -> bool:
            refuted = refuted_by_bounds(self.net, lb, [case.disjuncts[di] for di in dis], alpha="optimized")
            for di, r in zip(dis, refuted):
                if r and (ci, di) not in self.outcome:
                    self.outcome[(ci, di)] = "refined bounds"
                    self.stats["refuted_by_refined_bounds"] = self.stats.get("refuted_by_refined_bounds", 0) + 1
            self.report_progress(extra=f"bounds refined: unstable ReLUs {lb.unstable_counts(self.net)}")
            return all((ci, di) in self.outcome for di in dis)

        report = RefineReport()
        try:
            with worker_pool(self.workers) if self.workers > 1 else contextlib.nullcontext() as pool:
                lb = refine_bounds(self.net, self.case_bounds[ci], min(deadline, self.clock.deadline), report=report,
                                   enough=refute, pool=pool, workers=self.workers,
                                   progress=lambda k, domains, live: self.report_progress(
                                       extra=f"refining layer {k}: {domains} domains, {live} neuron sides open"))
        finally:
            self.timings["refine"] = self.timings.get("refine", 0.0) + time.perf_counter() - t
            self.stats["refine_domains"] = (self.stats.get("refine_domains", 0)
                                            + sum(layer["domains"] for layer in report.layers))
        self.case_bounds[ci] = lb
        self.bounds_info.setdefault("refined", []).append(dict(report.as_dict(), case=ci))
        self.bounds_info["unstable"][ci] = lb.unstable_counts(self.net)
        self._check_time()

    def _relu_splitting_applies(self, ci: int, unstable: int) -> bool:
        """unstable: the count of unstable ReLUs over case ci's box."""
        return _splits_relus(self.net, self.prop, self.solver, self.prop.cases[ci]) and unstable > _LEAF_BINARIES

    def _still_open(self, ci: int, dis: list) -> list:
        """The disjuncts of `dis` (of case ci) without an outcome yet."""
        return [di for di in dis if (ci, di) not in self.outcome]

    def _relu_split_case(self, ci: int, dis: list, deadline: float):
        """Branch and bound on ReLU phases (relu_split.py) for the disjuncts `dis` of case ci, until
        `deadline`; refuted disjuncts get the outcome "relu split", the others stay open. Domains with
        at most `_LEAF_BINARIES` unstable ReLUs left get a MILP capped at `_LEAF_SECONDS`."""
        case = self.prop.cases[ci]

        def leaf(domain_bounds, di, splits):
            return self.solve_disjunct(ci, di, case, domain_bounds, _LEAF_SECONDS) == "milp"

        def progress(stats, frontier, worst):
            self.report_progress(extra=f"ReLU splitting: {stats.domains} domains, {frontier} open, "
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
            raise Found(ce, "ReLU splitting")
        for di in refuted:
            self.outcome[(ci, di)] = "relu split"
            self.stats["refuted_by_relu_split"] = self.stats.get("refuted_by_relu_split", 0) + 1

    # ------------------------------------------------------------ one disjunct

    def solve_disjunct(self, ci: int, di: int, case: Case, lb, time_cap: float | None = None) -> str:
        """MILP for disjunct di of case ci over `case`'s input region (the case itself or a sub-box of it)."""
        self.report_progress()
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
            cuts = self.case_cuts[ci] if ci < len(self.case_cuts) else ()
            model = build_milp(self.net, lb, case, self.prop.cases[ci].disjuncts[di], cuts=cuts)
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
            raise Found(found[0], "milp")
        if res.status == "infeasible":
            self.stats["refuted_by_milp"] += 1
            return "milp"
        if res.x is not None and res.objective is not None and res.objective <= 0:
            candidates.append(res.x)
        if candidates:
            ce = self._polish(model, ci, di, candidates)
            if ce is not None:
                raise Found(ce, "milp, polished")
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
            raise OutOfTime
        if time_cap is not None:
            limit = min(limit, time_cap)
        if too_large_for(model, limit):
            raise OutOfTime
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
            ce = local_descent(self.network, self.prop, ci, d, x, self.rng)
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
        self.try_points(ci, range(len(case.disjuncts)), np.vstack([(lo + hi) / 2, corners, uniform]))

    def try_points(self, ci: int, dis, pts: np.ndarray, how: str = "cheap point"):
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
                        raise Found(ce, how)

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
            raise OutOfTime

    def report_progress(self, heap_size: int | None = None, extra: str | None = None):
        """A progress line to `self.progress`, at most every `_PROGRESS_SECONDS` (from the search or its timer thread)."""
        if self.progress is None:
            return
        with self._progress_lock:  # the search and the timer thread: one line, never two at once
            now = time.perf_counter()
            if heap_size is not None or extra:
                self._progress_detail = (now, heap_size, extra)
            elif now - self._progress_detail[0] < _PROGRESS_SECONDS:
                # the timer thread: the search's latest detail while it is fresh (open boxes, ReLU domains)
                heap_size, extra = self._progress_detail[1:]
            if now - self._last_progress < _PROGRESS_SECONDS:
                return
            self._last_progress = now
            total = sum(len(c.disjuncts) for c in self.prop.cases)
            # list() copies in one step: the search may add outcomes while the timer thread reads them
            refuted = sum(1 for o in list(self.outcome.values()) if o in _REFUTED)
            line = (f"[{self.clock.elapsed():6.1f} s] disjuncts refuted {refuted}/{total}, "
                    f"MILPs {self.stats['milps']}")
            boxes = self.stats.get("boxes")
            if heap_size is not None:
                line += f", input boxes done {boxes or 0}, open {heap_size}"
            elif boxes:
                line += f", input boxes done {boxes}"
            if extra:
                line += f", {extra}"
            self.progress(line)

    # ------------------------------------------------------------ verdict

    def conclude(self) -> VerificationResult:
        """The verdict from the outcomes: unsat only when every disjunct of every case is refuted."""
        keys = [(ci, di) for ci, case in enumerate(self.prop.cases) for di in range(len(case.disjuncts))]
        outcomes = [self.outcome.get(k) for k in keys]
        refuted = [o in _REFUTED for o in outcomes]
        if all(refuted):
            by = sorted({o for o in outcomes})
            how = {"lipschitz": "Lipschitz certificate", "bounds": "bounds",
                   "refined bounds": f"bounds refined over {self.stats.get('refine_domains', 0)} domains",
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
        """The VerificationResult with this run's timings, bounds summary and stats."""
        decided = {}
        for o in self.outcome.values():
            key = o.split(":")[0]
            decided[key] = decided.get(key, 0) + 1
        stats = dict(self.stats, outcomes=decided)
        bounds_info = dict(self.bounds_info, binaries=self.stats["binaries_max"])
        return VerificationResult(status=status, counterexample=ce, reason=reason, seconds=self.clock.elapsed(),
                                  timings={k: round(v, 6) for k, v in self.timings.items()}, bounds=bounds_info,
                                  stats=stats, network=self.network.source, property=self.prop.source)

