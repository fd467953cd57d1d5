"""Fixed-radius checks in L1 and L2: is some point of the ball {||x - x0|| <= r} ∩ domain misclassified?

The L-inf radius search asks this question of `verify` on a box. An L1 or L2 ball is not a box, so
here the same branch and bound runs over the ball itself:

1. CROWN over the ball's L-inf box with every backward pass concretised over the ball
   (`crown_bounds(..., ball=...)`, bounds/norm_ball.py): intermediate bounds and the margins
   y_label - y_j. A class whose margin is > 0 over the ball cannot win there.
2. ReLU splitting (`search.relu_split.ReluSplitter`) on the classes left, with the same ball in every
   domain's bound; its candidate points are offered as counterexamples.
   Before splitting on them, bounds that a short split does not settle are refined (search/refine.py).
3. Leaves. L1: domains with at most `LEAF_BINARIES` unstable ReLUs go to a small MILP, the radius
   MILP of `radius_milp.radius_model` with the domain's bounds and t <= r; infeasible refutes the
   domain, a solution is a candidate counterexample. L2: fully split domains, where the network is
   affine, go to a convex QP (the nearest flip) whose duals are checked in the domain's own padded
   bound (`_qp_leaf`).

Answers "unsat" (no point of the closed ball ties or beats the label: rho >= r), "sat" (a re-checked
strict flip within distance r, now the upper bound of `best`), or "unknown"/"timeout". A check asked
to go on below the points it finds (`check(below=...)`, the radius search's check just below its upper
bound) lowers r to just below each such point and goes on with the same tree over the smaller ball
(`ReluSplitter.narrow_ball`): the bounds and refutations so far were proven over a superset of it. Every
candidate on the way goes through `strict_point`, so even an undecided check can lower the upper
bound. Soundness: unsat only from padded bounds over the ball (the leaves' QP multipliers included) or
an infeasible MILP status.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from ..bounds.crown import crown_bounds, linear_objective_bounds
from ..bounds.norm_ball import NormBall
from ..core.network import Network
from ..core.property import OutputConstraint, linf_ball
from ..search import relu_split
from ..search.refine import refine_bounds
from .radius_attack import Best, strict_point
from .radius_milp import margin_matrix, radius_model, solve_milp

LEAF_BINARIES = 12  # an L1 domain with at most this many unstable ReLUs left is decided by a MILP
LEAF_SECONDS = 1.0  # the most one leaf MILP may take
# A check first splits on the CROWN bounds for PROBE_SECONDS (or PROBE_SHARE of its time, at most
# PROBE_MAX_SECONDS: in L2 at 120 s a point the probe took 2.2 s, and of the digits points exact at both
# 30 s and 120 s, 38 of 84 (GloRo) and 37 of 89 (standard) took 1.0-3.5 s longer at 120 s); if that does
# not settle it, the bounds are refined (search/refine.py, REFINE_DOMAINS[0] per neuron side) for up to
# REFINE_SHARE of the time left, and the split starts again on them for SPLIT_SHARE of the time left
# (the last stage's split runs to the deadline). On the digits network (L1, rho 0.94) 256 domains
# (0.8 s) cut the split from 181k domains (13 s) to 27k (1.7 s); at rho 1.20, 256 left a 100 s split of
# 1.36M domains, 2048 (5.6 s) a 26 s one of 403k. One stage of 1024 decided the four hardest L2
# checks of the standard network (just below rho, 60 s each) in 9-13 s, where stages of 256 and then
# 2048 took 11-25 s (the split on the 256-domain bounds ran to its end, 150-300k domains).
PROBE_SECONDS, PROBE_SHARE, PROBE_MAX_SECONDS = 0.5, 0.02, 1.0
REFINE_SHARE, REFINE_DOMAINS, SPLIT_SHARE = 0.3, (1024,), 0.5
# Adam steps per domain in a check's split (search/relu_split.py's default is 8). More steps give tighter
# bounds and a smaller tree; the steps skip the domains that already look refuted. On the standard digits
# network's L2 point 60 (the check just below rho, with its refinement at the same number of steps):
# 8 steps 427k domains, 28.1 s; 12 steps 267k, 24.2 s; 16 steps 201k, 23.9 s; 24 steps 147k, 25.8 s
# (two runs at once on the two cores). The count also decides which corner points a check finds: on MNIST
# 256x2 (L2, 30 s) session 6's code (8 steps) left lower upper bounds than session 7's (12) on 21 of the
# 27 images where they differ, with the same exact count (1 of 100); with 8 steps the code of session 9
# retraces session 6's checks on images 42 and 48 (48: 0.496 against 0.545 with 12)
SPLIT_ITERATIONS = 12
# how deep into the flip region a leaf's second candidate lies (past float32 rounding of a logit); the
# re-check then walks back from it towards the first, tied, candidate
STRICT_MARGIN = 1e-6


@dataclass
class BallCheckStats:
    """What the fixed-radius checks of one radius search did."""

    checks: int = 0
    domains: int = 0
    leaves: int = 0
    refine_seconds: float = 0.0
    seconds: float = 0.0
    log: list = field(default_factory=list)  # [radius, status, seconds] per check


class BallChecker:
    """Fixed-radius checks around x0 in one norm ("1" or "2"): `check(r, deadline)`."""

    def __init__(self, network: Network, net_b: Network, x0, label: int, norm: str, dlo, dhi, best: Best,
                 seed: int = 0):
        if norm not in ("1", "2"):
            raise ValueError("ball checks are for the L1 and L2 norms (L-inf balls are boxes: use verify)")
        self.network, self.net_b = network, net_b  # the network as given (re-checks), its bounded form
        self.x0, self.label, self.norm, self.dlo, self.dhi = x0, label, norm, dlo, dhi
        self.best, self.seed = best, seed
        self.C = margin_matrix(net_b.output_size, label)
        self.others = [j for j in range(net_b.output_size) if j != label]
        self.stats = BallCheckStats()
        self.refined = None  # (radius, LayerBounds refined over that ball): they hold in every smaller ball
        # k: the largest radius r at which a check proved that class others[k] wins nowhere in the ball
        # (CROWN's margin or a finished split), even where the check as a whole stayed open
        self.proven: dict[int, float] = {}

    def bounds(self, r: float, alpha="optimized"):
        """CROWN bounds over the ball of radius r (and the domain), and the margins' lower bounds.
        Refined bounds of a ball at least as large (`self.refined`) hold here too and are kept."""
        lo, hi = linf_ball(self.x0, r, (self.dlo, self.dhi))
        known = self.refined[1] if self.refined is not None and self.refined[0] >= r else None
        lb = crown_bounds(self.net_b, lo, hi, alpha=alpha, ball=NormBall(self.x0, float(r), self.norm), known=known)
        return lb, self.margins(lb, alpha)

    def margins(self, lb, alpha="optimized"):
        """Lower bounds on y_label - y_j (j != label) over the input set of `lb`."""
        return linear_objective_bounds(self.net_b, lb, self.C, alpha=alpha)[0]

    def refine(self, lb, r: float, until: float, domains: int, open_k=None):
        """`lb` (bounds over the ball of radius r) refined by search/refine.py until `until`, or until
        every margin in open_k (default: all) is proven > 0; kept for every later ball of radius <= r."""
        keep = slice(None) if open_k is None else open_k
        t0 = time.perf_counter()
        lb = refine_bounds(self.net_b, lb, until, domains=domains,
                           enough=lambda b: bool(np.all(self.margins(b)[keep] > 0)))
        self.stats.refine_seconds += time.perf_counter() - t0
        self.refined = (r, lb)
        return lb

    def tighten_by_lp(self, lb, r: float, until: float):
        """L1: `lb` (bounds over the ball of radius r) tightened layer by layer, above the first, by the LP
        relaxation of the radius MILP's model over that ball without a label change (its envelope rows
        included: `radius_milp.radius_model`), min and max of each unstable neuron (search/tightening.py,
        padded weak-duality bounds); then CROWN again with the layer fixed. Kept for every later ball of
        radius <= r. On six standard digits points this took 0.9-1.3 s and left fewer unstable ReLUs than
        2 s of `refine` (1024 domains a neuron side), and the nine per-class MILPs took 10-54% less time
        (on six GloRo points -5% to 18%)."""
        from ..search.tightening import tighten_columns
        t0 = time.perf_counter()
        net = self.net_b
        for k in range(2, len(net.layers) - 1, 2):
            lo, hi = lb.lower[k], lb.upper[k]
            unstable = np.flatnonzero((lo < 0) & (hi > 0))
            if time.perf_counter() >= until or not len(unstable):
                continue
            model, _ = radius_model(net, lb, self.x0, self.label, [], self.norm, lb.input_lower, lb.input_upper, 0.0, r)
            index = {name: c for c, name in enumerate(model.col_names)}
            keep = [j for j in unstable if f"L{k}_z{j}" in index]
            new_lo, new_hi, _ = tighten_columns(model, [index[f"L{k}_z{j}"] for j in keep], keep, lo, hi,
                                                deadline=until)
            lb = crown_bounds(net, lb.input_lower, lb.input_upper, alpha="optimized", ball=lb.ball,
                              known=lb.with_layer(k, new_lo, new_hi))
        self.stats.refine_seconds += time.perf_counter() - t0
        self.refined = (r, lb)
        return lb

    def certified(self, r: float) -> bool:
        """CROWN alone proves every margin > 0 over the ball of radius r."""
        return bool(np.all(self.bounds(r, alpha="adaptive")[1] > 0))

    def check(self, r: float, deadline: float, refine: bool = True, below=None) -> tuple[str, float]:
        """(status, radius): "unsat", "sat", "unknown" or "timeout" for the ball of that radius; see the
        module docstring. refine=False: one split to the deadline on the bounds as they are (refined ones
        of a larger ball, `self.refined`, included), without refining them.
        below: None (the radius stays r: a point within it ends the check, "sat"), or a function of a
        point's distance and the radius, giving the radius to check instead, or None to end the check
        with "sat" there. Then a point within the radius lowers it to below(its distance, radius) and
        the check goes on over the smaller
        ball with its tree as it stands (`ReluSplitter.narrow_ball`): an "unsat" proves the returned,
        lowered radius, and "sat" means a point closed the bracket."""
        t0 = time.perf_counter()
        state = _Radius(float(r), below)
        try:
            status = self._check(state, deadline, refine)
        finally:
            self.stats.checks += 1
            self.stats.seconds += time.perf_counter() - t0
        self.stats.log.append([state.r, status, round(time.perf_counter() - t0, 3)])
        return status, state.r

    def _prove(self, ks, r: float) -> None:
        """Record that no class others[k], k in ks, ties or beats the label in the ball of radius r."""
        for k in ks:
            self.proven[int(k)] = max(self.proven.get(int(k), 0.0), float(r))

    def _check(self, state: "_Radius", deadline: float, refine: bool = True) -> str:
        if self.best.upper <= state.r and not state.lower_to(self.best.upper):
            return "sat"
        r = state.r
        lb, m_lo = self.bounds(r)
        open_k = [k for k in range(len(self.others)) if not m_lo[k] > 0]
        self._prove(np.flatnonzero(m_lo > 0), r)
        if not open_k:
            return "unsat"
        if not relu_split.supports(self.net_b):
            return "unknown"
        disjuncts = [OutputConstraint(self.C[k:k + 1], np.zeros(1)) for k in range(len(self.others))]

        splitters = []  # the split running now (a point within the radius may narrow its ball)

        def offer(x, deeper=None):
            """A candidate: its strict flip (if one re-checks) offered to best; a counterexample if within
            the radius (unless the check goes on below it: then the running split's ball shrinks)."""
            self.best.offer(strict_point(self.network, self.x0, x, self.label, self.norm, self.dlo, self.dhi,
                                         self.seed, deeper), "ball check")
            if self.best.upper > state.r:
                return None
            if not state.lower_to(self.best.upper):
                return self.best.point
            splitters[-1].narrow_ball(NormBall(self.x0, state.r, self.norm))
            return None

        def split(lb, open_k, until):
            """ReLU splitting on the classes open_k: (refuted, counterexample)."""
            def leaf(domain_bounds, di, splits):
                if self.norm == "2":
                    return self._qp_leaf(splitter, di, splits, offer)
                return self._leaf(domain_bounds, di, state.r, offer, until)

            splitter = relu_split.ReluSplitter(self.net_b, lb, disjuncts, offer, iterations=SPLIT_ITERATIONS,
                                               leaf=leaf, leaf_unstable=0 if self.norm == "2" else LEAF_BINARIES)
            # the split starts over the current radius (a finished stage may have lowered it below lb's)
            if lb.ball.radius > state.r:
                splitter.narrow_ball(NormBall(self.x0, state.r, self.norm))
            splitters.append(splitter)
            try:
                return splitter.run(open_k, until)
            finally:
                self.stats.domains += splitter.stats.domains
                self.stats.leaves += splitter.stats.leaves

        # a short split on the CROWN bounds settles the easy checks; the rest get refined bounds first,
        # in stages of more domains per neuron side, each followed by a split (the last one to the deadline)
        now = time.perf_counter()
        probe = (min(max(PROBE_SECONDS, PROBE_SHARE * (deadline - now)), PROBE_MAX_SECONDS) if refine
                 else deadline - now)
        refuted, ce = split(lb, open_k, min(deadline, now + probe))
        self._prove(refuted, state.r)
        for stage, domains in enumerate(REFINE_DOMAINS if refine else ()):
            if ce is not None or self.best.upper <= state.r or set(refuted) >= set(open_k) or time.perf_counter() >= deadline:
                break
            open_k = [k for k in open_k if k not in refuted]
            if lb.ball.radius > state.r:  # a point found in the probe lowered the radius: bound the smaller ball
                lb = self.bounds(state.r)[0]
            now = time.perf_counter()
            lb = self.refine(lb, state.r, now + REFINE_SHARE * (deadline - now), domains, open_k)
            m_lo = self.margins(lb)
            self._prove([k for k in open_k if m_lo[k] > 0], state.r)
            open_k = [k for k in open_k if not m_lo[k] > 0]
            now = time.perf_counter()
            until = deadline if stage == len(REFINE_DOMAINS) - 1 else now + SPLIT_SHARE * (deadline - now)
            refuted, ce = split(lb, open_k, until) if open_k else ([], None)
            self._prove(refuted, state.r)
        if ce is not None or self.best.upper <= state.r:
            return "sat"
        if set(refuted) >= set(open_k):
            return "unsat"
        return "timeout" if time.perf_counter() >= deadline else "unknown"

    def _leaf(self, domain_bounds, di: int, r: float, offer, deadline: float):
        """One L1 domain's MILP with t <= r (the L1 rows are exact): True (refuted), a counterexample,
        or False (left open). A solution that does not re-check (a tie at a vertex of the flip region,
        where strict flips are a thin wedge) is retried once with the flip required STRICT_MARGIN
        deep, and the re-check bisects between the two."""
        j = self.others[di]
        boundary = None
        for margin in (0.0, STRICT_MARGIN):
            model, _ = radius_model(self.net_b, domain_bounds, self.x0, self.label, [j], self.norm,
                                    domain_bounds.input_lower, domain_bounds.input_upper, 0.0, r, margin=margin)
            left = min(deadline - time.perf_counter(), LEAF_SECONDS)
            if left <= 0:
                return False
            res = solve_milp(model, left, None)
            if res.status == "infeasible":
                return margin == 0.0  # (no deep flip is no proof: only the margin-0 model refutes)
            if res.status != "optimal" or res.x is None:
                return False
            x = res.x[model.input_cols]
            ce = offer(x) if boundary is None else offer(boundary, deeper=x)
            if ce is not None:
                return ce
            boundary = x
        return False

    def _qp_leaf(self, splitter, di: int, splits, offer):
        """A fully split domain in L2: True (refuted), a counterexample, or False (left open).

        On the domain the network is affine, so the nearest flip to class j is a convex QP:
        min ||x - x0||^2 over the box, the split constraints s z(x) >= 0 and y_label(x) - y_j(x) <= 0.
        The QP (on matrices composed in floating point) only proposes multipliers: the proof is the
        domain's own padded bound (`ReluSplitter.domain_bound`), concretised over the ball, with
        beta = (the split rows' duals) / (the margin row's dual). By the QP's optimality conditions
        that bound is > 0 exactly when the QP's minimum exceeds r. Where the margin row's dual is 0
        (the domain itself lies farther than r) or the QP is infeasible (no flip in the domain, or an
        empty domain), the split rows' duals (of the QP, or of an LP: `_emptiness_multipliers`) prove
        the domain empty in the ball once scaled up. Any multipliers are sound.
        """
        form = _domain_affine_form(splitter, splits)
        if form is None:
            return False
        G, g, owners, A, a = form
        c_row = A[self.label] - A[self.others[di]]  # margin = c_row x + c_const
        c_const = a[self.label] - a[self.others[di]]
        lo, hi = splitter.in_lo, splitter.in_hi
        qp = _nearest_flip_qp(self.x0, G, g, c_row, c_const, lo, hi)
        tries = []  # (split multipliers, scales to try)
        if qp is not None:
            x, lam_split, lam_margin, deeper = qp
            ce = offer(x)
            if ce is None and deeper is not None:
                ce = offer(x, deeper=deeper)
            if ce is not None:
                return ce
            if lam_margin > 0:
                tries.append((lam_split / lam_margin, (1.0,)))
            tries.append((lam_split, _SCALES))
        else:
            mu = _emptiness_multipliers(G, g, c_row, c_const, lo, hi)
            if mu is None:
                return False
            tries.append((mu, _SCALES))
        for direction, scales in tries:
            beta = np.zeros(splitter.n_unstable)
            for scale in scales:
                beta[owners] = direction * scale
                if splitter.domain_bound(di, splits, beta) > 0:
                    return True
        return False


@dataclass
class _Radius:
    """A check's radius, which a point found within it may lower (`BallChecker.check`'s `below`)."""

    r: float
    below: object = None  # None, or (a point's distance, r) -> the radius to check instead (None: end with sat)

    def lower_to(self, upper: float) -> bool:
        """A point at distance `upper` <= r was found: lower r below it and go on (True), or end the
        check with "sat" (False: the radius is fixed, or `below` says so)."""
        if self.below is None:
            return False
        r = self.below(upper, self.r)
        if r is None or not r < self.r:
            return False
        self.r = float(r)
        return True


_SCALES = (1.0, 1e2, 1e4, 1e6)  # multiples of an emptiness certificate's multipliers to try


def _highs():
    from ..solvers.highs import new_highs
    h = new_highs()
    for name in ("primal_feasibility_tolerance", "dual_feasibility_tolerance"):
        h.setOptionValue(name, 1e-10)
    return h


def _add_rows(h, rows, row_lo, row_hi, extra_col=None):
    """Add dense rows (and a coefficient -1 on column `extra_col` in each, if given)."""
    for k in range(len(rows)):
        idx = np.flatnonzero(rows[k])
        vals = rows[k][idx]
        if extra_col is not None:
            idx, vals = np.append(idx, extra_col), np.append(vals, -1.0)
        h.addRow(float(row_lo[k]), float(row_hi[k]), len(idx), idx.astype(np.int32), vals)


def _nearest_flip_qp(x0, G, g, c_row, c_const, lo, hi):
    """min ||x - x0||^2 s.t. G x + g >= 0, c_row x + c_const <= 0, x in [lo, hi]: (x, split duals,
    margin dual, a point STRICT_MARGIN deep in the flip region or None), or None unless optimal."""
    import highspy
    from ..solvers.highs import run_highs
    n, inf = len(x0), highspy.kHighsInf
    h = _highs()
    h.addVars(n, lo, hi)
    h.changeColsCost(n, np.arange(n, dtype=np.int32), -2.0 * x0)
    h.passHessian(n, n, highspy.HessianFormat.kTriangular, np.arange(n + 1, dtype=np.int32),
                  np.arange(n, dtype=np.int32), np.full(n, 2.0))
    _add_rows(h, np.vstack([G, c_row[None, :]]), np.concatenate([-g, [-inf]]),
              np.concatenate([np.full(len(g), inf), [-c_const]]))
    run_highs(h)
    if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
        return None
    sol = h.getSolution()
    x = np.array(sol.col_value, dtype=np.float64)
    dual = np.array(sol.row_dual, dtype=np.float64)
    # the nearest flip is a tie; for a candidate that survives rounding, one STRICT_MARGIN deep
    h.changeRowBounds(len(g), -inf, float(-c_const - STRICT_MARGIN))
    run_highs(h)
    deeper = (np.array(h.getSolution().col_value, dtype=np.float64)
              if h.getModelStatus() == highspy.HighsModelStatus.kOptimal else None)
    return x, np.maximum(dual[:-1], 0.0), max(-dual[-1], 0.0), deeper


def _emptiness_multipliers(G, g, c_row, c_const, lo, hi):
    """Split multipliers mu >= 0 with sum_k mu_k (G_k x + g_k) < 0 on the box (with the margin row
    as one more row), where the QP was infeasible: the duals of max s s.t. G x + g >= s, -margin >= s,
    x in [lo, hi] when its optimum is < 0; else None. Only the split rows' part is returned: the
    margin row enters every domain bound with weight 1 anyway."""
    import highspy
    from ..solvers.highs import run_highs
    n, inf = len(c_row), highspy.kHighsInf
    h = _highs()
    h.addVars(n, lo, hi)
    h.addVar(-1.0, 1.0)  # s
    h.changeColCost(n, -1.0)  # min -s
    rows = np.vstack([G, -c_row[None, :]])
    rhs = -np.concatenate([g, [-c_const]])
    _add_rows(h, rows, rhs, np.full(len(rows), inf), extra_col=n)
    run_highs(h)
    if h.getModelStatus() != highspy.HighsModelStatus.kOptimal or -h.getInfo().objective_function_value >= 0:
        return None
    mu = np.maximum(np.array(h.getSolution().row_dual, dtype=np.float64), 0.0)
    return mu[:-1] / max(mu[-1], 1e-12) if mu[-1] > 0 else mu[:-1]


def _domain_affine_form(splitter, splits):
    """The affine form of a `supports`-ed network on one fully split domain of `splitter`: (G, g, owners,
    A, a) with the split constraints G x + g >= 0 (s z >= 0, one row per split neuron, owners = its
    index among the unstable neurons) and the outputs A x + a. None if a neuron is left free."""
    n = len(splitter.in_lo)
    A, a = np.eye(n), np.zeros(n)
    G, g, owners = [], [], []
    lb = splitter.root_bounds
    for k in range(len(splitter.W)):
        A, a = splitter.W[k] @ A, splitter.W[k] @ a + splitter.b[k]
        if k == len(splitter.W) - 1:
            break
        info = splitter.relus[k]
        on = lb.lower[2 * k] >= 0
        s = splits[info["offset"]:info["offset"] + info["n"]]
        if np.any(s == 0):
            return None
        on[info["unstable"]] = s > 0
        G.append(s[:, None] * A[info["unstable"]])
        g.append(s * a[info["unstable"]])
        owners.append(info["offset"] + np.arange(info["n"]))
        A, a = A * on[:, None], a * on
    return np.vstack(G), np.concatenate(g), np.concatenate(owners), A, a
