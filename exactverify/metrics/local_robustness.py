"""Exact checks of local robustness on an L-inf or L2 ball: standard, relaxed top-K and affinity.

These decide, by the exact verifier (`exactverify.verify`: bounds, then MILP),
the same three properties the one-pass certificates of `exactverify.bounds.lipschitz`
certify, so that every certificate can be checked against ground truth.

The ball. B = {x' : ||x' - x||_inf <= eps} intersected with the domain box
[domain_lo, domain_hi] (e.g. pixels in [0, 1]). The box handed to the verifier
is widened by one float64 ulp on each side before clipping to the domain, so
it contains B exactly; a counterexample is reported only after an exact
(rational) check that it lies in B.

L2 balls (`norm="2"`) are decided by cutting planes, with HiGHS alone. For
each pair (i in S, j not in S) the MILP of encodings/milp.py is built over the
L-inf box of radius eps (which contains the ball), cut by tangent half-spaces
g . x' <= g . x + eps (g a unit vector, the right-hand side padded up, so each
contains the ball), and asked for the point of the polytope with f_i <= f_j
closest to x in L1. Infeasible: the pair is stable on the ball (the rows that
prove it are the verifier's, with its padded bounds; only the objective
differs). A solution outside the ball adds the cut through the ball's boundary
in its direction, and the MILP is solved again; one inside the ball is
re-checked (float64 and float32, as for `verify`, then an exact rational
check that it lies in the ball; a point on the decision boundary is replaced
by a strictly violating one) and is a counterexample. Running out of cuts
(`max_cuts`) or time answers unknown. Practical for small inputs and radii:
on the 64-input digits networks at L2 radius 0.3 the box MILPs alone take
minutes, so there the inscribed L-inf ball (radius eps / sqrt(n)) is what is
checked.

Stable sets. For a set S of classes, "S is stable on B" means: for every x'
in B, every i in S scores strictly above every j outside S,
f_i(x') > f_j(x'). Its negation, the unsafe condition the verifier is asked
about, is the disjunction over pairs (i in S, j not in S) of f_i(x') - f_j(x') <= 0,
one `OutputConstraint` row each. S_k denotes the top-k set of f(x) at the centre.

The three properties (the definitions of bounds/lipschitz.py, exactly):

- standard: S_1 = {argmax f(x)} is stable: no x' in B has f_j(x') >= f_i(x')
  for some j != i.
- topk K (relaxed top-K robustness, Leino & Fredrikson 2021): some k <= K has
  S_k stable on B (then every x' in B has the same top-k set as x).
- affinity GROUPS (same paper): some k has S_k contained in one group and
  stable on B. Classes in no group are singleton groups, so standard
  robustness implies affinity robustness.

Answers: `robust` when some candidate set is proven stable (the verifier says
unsat: bounds or an infeasible MILP; for L2 every pair's cut MILP infeasible); `not_robust` when every candidate set has
a re-checked counterexample (one per candidate, each a point of B where some
j outside S_k reaches some i inside, in float64 and float32); `unknown`
otherwise (a timeout, or a solver answer that could not be trusted). The
candidate sets are the top-k classes at the centre; exact ties there are not
detected (the sort picks one of the tied sets).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from ..core.network import Network
from ..core.property import Case, Property, class_change_disjuncts, linf_ball

STATUSES = ("robust", "not_robust", "unknown")


@dataclass
class LocalRobustnessResult:
    """The exact answer at one point: a status, the set proven stable or one counterexample per candidate set."""

    status: str  # robust | not_robust | unknown
    mode: str  # standard | topk | affinity
    eps: float  # the ball's radius
    predicted: int  # argmax of the logits at the centre
    reason: str = ""
    k: int | None = None  # robust: the size of the set proven stable
    top_set: list | None = None  # robust: the set proven stable
    candidates: list = field(default_factory=list)  # per candidate set: {"set", "status", "reason", "seconds"}
    counterexamples: list = field(default_factory=list)  # not_robust: one re-checked point per candidate set
    seconds: float = 0.0

    def as_dict(self) -> dict:
        """The result as a plain dict, for JSON."""
        return {"status": self.status, "mode": self.mode, "eps": self.eps, "predicted": self.predicted,
                "reason": self.reason, "k": self.k, "top_set": self.top_set, "candidates": self.candidates,
                "counterexamples": self.counterexamples, "seconds": self.seconds}


def stable_set_property(x, eps: float, top_set, n_outputs: int, domain=(-np.inf, np.inf),
                        input_A=None, input_b=None) -> Property:
    """The unsafe condition 'some x' in the ball has f_j(x') >= f_i(x') for i in S, j not in S'.

    input_A / input_b: extra input constraints (the cutting planes of an L2 ball).
    """
    S = sorted(int(c) for c in top_set)
    disjuncts = class_change_disjuncts(S, n_outputs)
    lo, hi = linf_ball(x, eps, domain)
    if input_A is not None and len(input_A):
        case = Case(lo, hi, disjuncts, np.asarray(input_A, dtype=np.float64), np.asarray(input_b, dtype=np.float64))
    else:
        case = Case(lo, hi, disjuncts)
    return Property(len(lo), n_outputs, [case], source=f"stable set {S}")


def candidate_sets(logits, mode: str = "standard", k: int | None = None, groups=None) -> list:
    """The top sets S_k, in increasing k, whose stability would make the point robust under `mode`."""
    y = np.asarray(logits, dtype=np.float64)
    n = len(y)
    order = np.argsort(-y, kind="stable")
    if mode == "standard":
        sizes = [1]
    elif mode == "topk":
        if k is None or int(k) < 1:
            raise ValueError("mode 'topk' needs k >= 1")
        sizes = range(1, min(int(k), n) + 1)
    elif mode == "affinity":
        if groups is None:
            raise ValueError("mode 'affinity' needs groups")
        gsets = [set(int(c) for c in g) for g in groups if len(g)]
        covered = set().union(*gsets) if gsets else set()
        gsets += [{c} for c in range(n) if c not in covered]
        sizes = [kc for kc in range(1, n + 1) if any(set(order[:kc].tolist()) <= g for g in gsets)]
    else:
        raise ValueError(f"unknown mode {mode!r}")
    return [sorted(int(c) for c in order[:kc]) for kc in sizes]


def _in_ball(xc, x, eps: float, domain) -> bool:
    """Exact (rational) check that xc lies in the clipped L-inf ball."""
    e = Fraction(float(eps))
    dlo = np.broadcast_to(np.asarray(domain[0], dtype=np.float64), np.shape(x))
    dhi = np.broadcast_to(np.asarray(domain[1], dtype=np.float64), np.shape(x))
    for a, b, lo, hi in zip(np.asarray(xc, dtype=np.float64), np.asarray(x, dtype=np.float64), dlo, dhi):
        if abs(Fraction(float(a)) - Fraction(float(b))) > e:
            return False
        if a < lo or a > hi:
            return False
    return True


def _in_l2_ball(xc, x, eps: float, domain) -> bool:
    """Exact (rational) check that xc lies in the clipped L2 ball."""
    dlo = np.broadcast_to(np.asarray(domain[0], dtype=np.float64), np.shape(x))
    dhi = np.broadcast_to(np.asarray(domain[1], dtype=np.float64), np.shape(x))
    xc = np.asarray(xc, dtype=np.float64)
    if np.any(xc < dlo) or np.any(xc > dhi):
        return False
    total = sum((Fraction(float(a)) - Fraction(float(b))) ** 2 for a, b in zip(xc, np.asarray(x, dtype=np.float64)))
    return total <= Fraction(float(eps)) ** 2


def tangent_cut(x, eps: float, point):
    """(g, rhs): g . y <= rhs holds for every y with ||y - x||_2 <= eps (padded for rounding), and
    cuts off `point` when it lies clearly outside the ball. g = (point - x) / ||point - x||."""
    x = np.asarray(x, dtype=np.float64)
    d = np.asarray(point, dtype=np.float64) - x
    nd = float(np.linalg.norm(d))
    if nd == 0.0:
        return None
    g = d / nd
    u = np.finfo(np.float64).eps
    gnorm = float(np.linalg.norm(g)) * (1 + 4 * u) * (1 + 4 * len(g) * u)
    mag = float(np.abs(g) @ np.abs(x))
    rhs = float(g @ x) + eps * gnorm * (1 + 4 * u) + 2.0 * (len(g) + 4) * u * mag + 1e-300
    return g, rhs


def _decide_set(network, x, eps, S, n_out, domain, norm, time_left, max_cuts, verify_options):
    """(status, reason, counterexample dict or None, cuts) for one candidate set: unsat = S is stable."""
    from ..search.verifier import verify

    if norm == "2":
        return _decide_set_l2(network, x, eps, S, n_out, domain, time_left, max_cuts, verify_options)
    prop = stable_set_property(x, eps, S, n_out, domain)
    res = verify(network, prop, timeout=time_left, **verify_options)
    if res.status == "sat" and res.counterexample is not None:
        if _in_ball(res.counterexample.x, x, eps, domain):
            return "sat", res.reason, {"set": S, **res.counterexample.as_dict()}, 0
        return "unknown", "counterexample outside the ball by rounding", None, 0
    return res.status, res.reason, None, 0


def _decide_set_l2(network, x, eps, S, n_out, domain, time_left, max_cuts, verify_options):
    """Cutting planes on the L2 ball: one MILP (encodings/milp.py, HiGHS) per pair (i in S, j not in S) and cut."""
    from ..bounds import crown as bounds_mod
    from ..core.check import check_point
    from ..encodings.milp import build_milp
    from ..solvers import solve

    t0 = time.perf_counter()
    solver = verify_options.get("solver", "highs")
    prop = stable_set_property(x, eps, S, n_out, domain)
    case = prop.cases[0]
    try:
        lb = bounds_mod.compute_bounds(network, case.lower, case.upper, "crown")
    except NotImplementedError:
        lb = bounds_mod.compute_bounds(network, case.lower, case.upper, "interval")
    rows, rhs = [], []  # cuts, shared by every pair (each holds on the whole ball)
    cuts = 0
    for d in case.disjuncts:
        while True:
            left = time_left - (time.perf_counter() - t0)
            if left <= 0:
                return "timeout", f"no time left after {cuts} cuts", None, cuts
            cut_case = Case(case.lower, case.upper, [d], np.array(rows) if rows else None,
                            np.array(rhs) if rhs else None)
            model = _closest_point_model(build_milp(network, lb, cut_case, d), x)
            res = solve(model, solver, time_limit=left)
            if res.status == "infeasible":
                break  # this pair is stable on the ball
            if res.x is None or res.objective is None:
                return ("timeout" if res.status == "time_limit" else "unknown"), \
                    f"solver status {res.solver_status}", None, cuts
            xs = model.input_values(res.x)
            dist = float(np.linalg.norm(xs - x))
            if dist <= eps * (1 + 1e-9):
                ce = _recheck_in_l2_ball(network, prop, x, eps, domain, xs, check_point)
                if ce is None:
                    # the closest point sits on the decision boundary (violation 0), where rounding decides
                    # the re-check: ask for a strictly violating point instead
                    strict = model.with_violation_bound(-1e-6 * model.scale)
                    res2 = solve(strict, solver, time_limit=max(time_left - (time.perf_counter() - t0), 0.1))
                    if res2.x is not None:
                        xs2 = strict.input_values(res2.x)
                        ce = _recheck_in_l2_ball(network, prop, x, eps, domain, xs2, check_point)
                if ce is not None:
                    return "sat", "counterexample re-checked (cutting planes)", {"set": S, **ce.as_dict()}, cuts
                return "unknown", "a solution inside the L2 ball did not re-check", None, cuts
            if cuts >= max_cuts:
                return "unknown", f"no decision within {max_cuts} cutting planes", None, cuts
            cut = tangent_cut(x, eps, xs)
            if cut is None or cut[0] @ xs <= cut[1]:
                return "unknown", "a solution on the boundary of the L2 ball cannot be cut off", None, cuts
            rows.append(cut[0])
            rhs.append(cut[1])
            cuts += 1
    return "unsat", f"every pair infeasible on the polytope ({cuts} cutting planes)", None, cuts


def _closest_point_model(model, x):
    """The same MILP asking for the feasible point closest to x in L1 (columns t >= |x' - x|, min sum t).

    The rows and bounds are unchanged, so infeasibility proves exactly what it did; only the objective
    (which steered towards the most violating point, a far corner of the polytope) now steers towards
    points near x, which is where the cutting planes need them.
    """
    import scipy.sparse as sp

    n = len(model.input_cols)
    nc = model.num_cols
    t_cols = np.arange(nc, nc + n)
    r = np.arange(2 * n)
    extra = sp.csr_matrix((np.concatenate([np.ones(n), -np.ones(n), -np.ones(2 * n)]),
                           (np.concatenate([r[:n], r[n:], r]),
                            np.concatenate([model.input_cols, model.input_cols, t_cols, t_cols]))),
                          shape=(2 * n, nc + n))
    A = sp.vstack([sp.hstack([model.A, sp.csr_matrix((model.num_rows, n))]), extra]).tocsr()
    out = type(model)(**{**model.__dict__,
                         "col_lower": np.concatenate([model.col_lower, np.zeros(n)]),
                         "col_upper": np.concatenate([model.col_upper, np.full(n, np.inf)]),
                         "integrality": np.concatenate([model.integrality, np.zeros(n, dtype=bool)]),
                         "col_names": list(model.col_names) + [f"t{i}" for i in range(n)],
                         "A": A,
                         "row_lower": np.concatenate([model.row_lower, np.full(2 * n, -np.inf)]),
                         "row_upper": np.concatenate([model.row_upper, x, -x]),
                         "row_names": list(model.row_names) + [f"dist{i}" for i in range(2 * n)],
                         "objective": np.concatenate([np.zeros(nc), np.ones(n)])})
    out.stats = dict(model.stats)
    return out


def _recheck_in_l2_ball(network, prop, x, eps, domain, xs, check_point):
    """A re-checked counterexample in the L2 ball near xs (moved slightly towards x if need be), or None."""
    for t in (1.0, 1 + 1e-9, 1 + 1e-7, 1 - 1e-9, 1 - 1e-7, 1 - 1e-5):
        ce = check_point(network, prop, x + (xs - x) * t)
        if ce is not None and _in_l2_ball(ce.x, x, eps, domain):
            return ce
    return None


def check_local_robustness(network: Network, x, eps: float, mode: str = "standard", k: int | None = None,
                           groups=None, domain=(-np.inf, np.inf), timeout: float = 60.0, norm: str = "inf",
                           max_cuts: int = 200, **verify_options) -> LocalRobustnessResult:
    """Decide exactly whether `network` is robust at x on the (domain-clipped) ball of radius eps.

    norm: "inf" (default) or "2" (cutting planes, at most `max_cuts` per candidate set).
    """
    t0 = time.perf_counter()
    x = np.asarray(x, dtype=np.float64).ravel()
    eps = float(eps)
    norm = str(norm).lower().replace("l", "")
    if norm not in ("inf", "2"):
        raise ValueError(f"unsupported norm {norm!r} (choose 'inf' or '2')")
    if not np.isfinite(eps) or eps < 0:
        raise ValueError(f"eps must be finite and >= 0, got {eps}")
    dlo = np.broadcast_to(np.asarray(domain[0], dtype=np.float64), x.shape)
    dhi = np.broadcast_to(np.asarray(domain[1], dtype=np.float64), x.shape)
    if np.any(x < dlo) or np.any(x > dhi):
        raise ValueError("x lies outside the domain")
    y = network.forward(x)
    pred = int(np.argmax(y))
    n_out = network.output_size
    out = LocalRobustnessResult("unknown", mode, eps, pred)
    sets = candidate_sets(y, mode, k, groups)
    all_sat, ces = True, []
    for S in sets:
        left = timeout - (time.perf_counter() - t0)
        if left <= 0:
            all_sat = False
            out.candidates.append({"set": S, "status": "timeout", "reason": "no time left", "seconds": 0.0})
            break
        if len(S) == n_out:  # the set of all classes is trivially stable
            out.candidates.append({"set": S, "status": "unsat", "reason": "all classes", "seconds": 0.0})
            out.status, out.k, out.top_set, out.reason = "robust", len(S), S, "the set of all classes"
            break
        t = time.perf_counter()
        status, reason, ce, cuts = _decide_set(network, x, eps, S, n_out, domain, norm, left, max_cuts,
                                               verify_options)
        out.candidates.append({"set": S, "status": status, "reason": reason, "cuts": cuts,
                               "seconds": time.perf_counter() - t})
        if status == "unsat":
            out.status, out.k, out.top_set = "robust", len(S), S
            out.reason = f"top-{len(S)} set {S} proven stable ({reason})"
            break
        if status == "sat":
            ces.append(ce)
        else:
            all_sat = False
    if out.status != "robust":
        if all_sat and len(ces) == len(sets):
            out.status = "not_robust"
            out.counterexamples = ces
            out.reason = f"every candidate set ({len(sets)}) has a re-checked counterexample"
        else:
            out.reason = "some candidate set was neither proven stable nor refuted"
    out.seconds = time.perf_counter() - t0
    return out


def check_standard(network, x, eps, **kw) -> LocalRobustnessResult:
    """`check_local_robustness` in mode standard: is the predicted class stable on the ball?"""
    return check_local_robustness(network, x, eps, mode="standard", **kw)


def check_topk(network, x, eps, k: int, **kw) -> LocalRobustnessResult:
    """`check_local_robustness` in mode topk: is some top-k' set, k' <= k, stable on the ball?"""
    return check_local_robustness(network, x, eps, mode="topk", k=k, **kw)


def check_affinity(network, x, eps, groups, **kw) -> LocalRobustnessResult:
    """`check_local_robustness` in mode affinity: is some top-k set inside one of `groups` stable on the ball?"""
    return check_local_robustness(network, x, eps, mode="affinity", groups=groups, **kw)
