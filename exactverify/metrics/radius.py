"""Bastani et al.'s robustness metrics, computed exactly: pointwise robustness, adversarial frequency, severity.

Definitions (Bastani et al. 2016, "Measuring Neural Net Robustness with Constraints"), for a
classifier f, a point x0 with label c and a norm ||.||:

- pointwise robustness  rho(x0) = inf { eps >= 0 : some x with ||x - x0|| <= eps (and x in the
  domain box, if one is given) is misclassified };
- adversarial frequency phi(eps) = the fraction of points with rho <= eps;
- adversarial severity  mu(eps)  = the mean of rho over the points with rho <= eps.

Misclassified means: some other class j != c has y_j >= y_c (a tie counts). The set of such x is
closed, so the infimum is a minimum, and it is what a MILP with the constraint y_j - y_c >= 0
computes. A counterexample we *report* is held to more: after it is moved onto the float32 grid
inside the domain, some j != c has y_j > y_c STRICTLY in the float64 and in the float32 forward
pass of the original network (so argmax really changes in both). To get one we step a tiny bit
beyond the solver's boundary point (`radius_attack.strict_point`); the upper bound is the distance
of the point that re-checked, never the solver's objective.

How rho is computed (`pointwise_robustness`, one `RadiusSearch`):

1. A cheap lower bound: the largest radius at which CROWN proves every margin y_c - y_j > 0 over
   (ball of that radius) ∩ domain, by bisection: over L-inf boxes, and for L1 and L2 over the balls
   themselves (bounds/norm_ball.py; without a finite domain over the L-inf box of the same radius,
   which contains the ball).
2. A cheap upper bound R: re-checked points from Bastani's LP (the linear region of x0; by default
   only for inputs of at most 256 values) and from a PGD attack with its radius bisected (L-inf
   steps for L-inf, L2 steps otherwise), each stepped to a strict flip; else `max_radius`, else
   the domain.
2b. The default `method="checks"`: region descent and fixed-radius checks
   (`RadiusSearch.close_by_checks`); for L2 the descents start from minimum-norm walks
   (radius_attack.min_norm_walk) and the checks are ball checks (radius_ball.py: CROWN, ReLU
   splitting and refined bounds over the ball itself, QP multipliers at the leaves).
   Bastani's LP, solved in the linear region of the attack's point (and of targeted-ascent points
   for every other class) instead of x0's, and again in the next region across the optimum's facet,
   lowers R to a local minimum of the distance; then a check of the ball of radius
   R - 5e-7 max(1, R): unsat there proves rho >= that radius and closes the bracket. For L1 and L2 a
   closer point that the check finds (after region descent from it, and if it lies within
   GO_ON_MAX_DROP of the radius) lowers its radius to just below that point and the check goes on
   with its tree (radius_ball.py, `check(below=...)`: the ball only shrinks, so every refuted domain
   stays refuted); otherwise, and for L-inf, a sat gives a closer point and the loop repeats. On the first six MNIST images
   (256x2, 60 s) this closed images 0, 1, 2 in 4-9 s, where the radius MILP of step 3 needed
   19-46 s or timed out; what is left open goes on to step 3. L1 on a finite domain skips the
   checks (`RadiusSearch.ball_milps`): once the descents have found a point it goes to step 3, whose
   region is then the L1 ball of radius R, after one short split on that region's refined bounds
   (`RadiusSearch.quick_check`).
3. The exact MILP over the search region B = domain ∩ (L-inf box of radius R around x0), which
   contains every candidate point of distance <= R in any of the norms: the big-M encoding of
   `encodings/milp.py` with neuron bounds (CROWN) valid over all of B, a radius column t in
   [cheap lower, R], and the norm's rows (`radius_milp`). In L1 and L2 on a finite domain B is the
   ball of radius R itself (in the domain): the neuron bounds are CROWN's over that ball, tightened once
   (`region`: L2 by search/refine.py; L1 by the LP relaxation of this very MILP without the label
   change, `BallChecker.tighten_by_lp`), far tighter than over the box (on the digits network, L1,
   layer 2 went from 63 unstable ReLUs to 19, and the per-class MILPs mostly closed at the root node). In L1
   each unstable first-layer ReLU also gets its envelope row over the ball (`radius_milp`: a point
   of the ball is a convex combination of x0 and the axis points x0 +- R e_i, and the ReLU is
   convex), which made most classes' MILPs infeasible at once (standard point 35: eight of nine classes
   in 0.04-0.05 s each, against 0.3-3.0 s without the rows).
   For L2 the ball is an outer approximation by cutting planes: each solution x* with
   ||x* - x0||_2 > t* adds the tangent cut at x*, until the gap closes. Every relaxation's dual
   bound is a lower bound on rho, and every solution a candidate counterexample.
   The label change is a disjunction over the other classes, either one MILP per class j (the
   default: t <= the best upper bound so far, the class of the best point first; before each
   class the region shrinks to the best upper bound, and classes whose margin CROWN proves
   positive over it are skipped) or one MILP with a binary z_j per class and
   y_c - y_j <= M_j (1 - z_j), sum z_j >= 1 (`disjunction="binary"`). Measured on the first six
   MNIST images on mnist-net_256x2 (L-inf, 60 s, a loaded 2-core machine): per class solved
   images 0, 1, 2, 4 in 11, 23, 10, 9 s; binary in 15, 54, 36, 20 s; neither solved 3 and 5.
   The MILP is pruned (`radius_milp`) and solved without presolve and primal heuristics, which
   halved the times there.

Soundness. The LOWER bound is only ever the CROWN-certified radius, an unsat fixed-radius check,
or a MILP's proven dual bound padded outward by `radius_milp.DUAL_PAD` * max(1, |bound|) (the
trust is the solver's LP tolerances, as for an infeasible status), or R itself when the MILP is
infeasible. The UPPER bound is only ever the distance (rounded up) of a point that re-checked as above. Status:
"exact" when upper - lower <= 1e-6 * max(1, upper), "timeout" when the time ran out first,
"bounded" otherwise (e.g. no point re-checked, or the L2 cut loop stalled).

Bastani's own estimate is in `bastani`, the data-set metrics phi and mu in `dataset`.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from ..core.network import Network
from ..core.property import linf_ball, robustness_property
from .bastani import bastani_estimate
from .norms import check_norm, domain_arrays, reach
from .radius_ball import STRICT_MARGIN, BallChecker
from .radius_attack import (Best, as_counterexample, attack, descend_all_classes, flip_margin, region_descent,
                            strict_point)
from .radius_milp import (add_cut, certified_radius, l2_directions, largest_certified, margin_matrix, padded,
                          radius_model, solve_milp)

EXACT_RTOL = 1e-6  # "exact": upper - lower <= EXACT_RTOL * max(1, upper)
# of the time left, for the first L1/L2 ball check (0.5 for L-inf's verify): in L2 on the digits networks
# (30 s a point) no point whose check just below the upper bound timed out was closed by the later checks
# (0 of 29), and the checks that did close took up to 35 s
BALL_FIRST_CHECK_SHARE = 0.9
# the radius MILPs' ball bounds are tightened once, for at most this share of the time left: in L1 by the
# LP of the ball's model (`BallChecker.tighten_by_lp`), in L2 refined with this many domains per neuron
# side. On the digits network (L1, six points, refinement + nine MILPs): 2048 domains took 4-5 s and most
# per-class MILPs closed at the root in 1-2 s; 1024 took 1.6-3.2 s, the whole 6.2-15.5 s against 512's
# 6.5-17.1 s and 2048's 7-17 s. With the envelope rows, the LP took 0.9-1.3 s and the whole 2.6-4.9 s,
# against 3.9-9.9 s with 1024 domains (six standard points)
REGION_REFINE_DOMAINS, REGION_REFINE_SHARE = 1024, 0.25
# L1: before the ball MILPs, one ReLU split of at most this long (or this share of the timeout) on their
# tightened bounds, where those leave at most QUICK_CHECK_MAX_UNSTABLE unstable ReLUs past the first layer
# (whose inputs the ball moves directly). On the digits networks every quick check that closed its point
# had at most 23 of them, and 56 of the 104 that ran out of time had more than 24. With the MILPs'
# envelope rows (radius_milp) the per-class MILPs mostly take 1-4 s, so the split gets 1 s: on 16 GloRo
# points (where it closes most small balls in 0.2-0.9 s) the median was 5.9 s against 6.2 s with 2 s,
# and 5.2 s with no split at all.
QUICK_CHECK_SECONDS, QUICK_CHECK_SHARE = 1.0, 0.1
QUICK_CHECK_MAX_UNSTABLE = 24
# a ball check just below the upper bound goes on below a closer point it finds (keeping its tree) only
# where that point is at most this share below the check's radius. On the digits networks (L2) every
# closer point a check found was 0.01-0.5% below it, near rho: going on closed the points that had timed
# out at 120 s. On MNIST 256x2 (L2, 30 s) a first check from a far upper bound finds points far below
# its radius (27.5 -> 7.1 on image 43): going on from there left 35 of 100 upper bounds worse than
# ending the check, descending from the point and checking again (image 43: 7.80 against 0.39), the
# loop whose consecutive radii fell by 0.16-84% there (median 4.2%).
GO_ON_MAX_DROP = 0.01


@dataclass
class RadiusResult:
    """Bounds on the pointwise robustness rho of one point: lower <= rho <= upper."""

    lower: float
    upper: float  # math.inf when no counterexample was found (then rho > lower is all we know)
    status: str  # "exact", "bounded" or "timeout"
    norm: str
    label: int
    predicted: int
    counterexample: dict | None = None  # {"x", "y", "y_float32", "class", "distance"} at the upper bound
    seconds: float = 0.0
    stats: dict = field(default_factory=dict)

    @property
    def value(self) -> float | None:
        """rho when exact, else None."""
        return self.upper if self.status == "exact" else None

    def as_dict(self) -> dict:
        """JSON-safe: an infinite bound is None (upper None: no counterexample found; lower None:
        no point of the domain is misclassified, rho = inf)."""
        d = asdict(self)
        d["upper"] = None if not math.isfinite(self.upper) else self.upper
        d["lower"] = None if not math.isfinite(self.lower) else self.lower
        return d


def closed(lower: float, upper: float) -> bool:
    """The bracket is closed: upper - lower <= EXACT_RTOL * max(1, upper) (and upper is finite)."""
    return math.isfinite(upper) and upper - lower <= EXACT_RTOL * max(1.0, upper)


def radius_below(upper: float, lower: float) -> float:
    """The radius of the check just below an upper bound: its unsat closes the bracket [lower, upper]."""
    return max(upper - 0.5 * EXACT_RTOL * max(1.0, upper), lower)


def just_below(lower: float, descend=None):
    """For a ball check that goes on below each point it finds (`BallChecker.check`'s `below`): the
    radius just below a point's distance, the one whose unsat closes the bracket; None (end the check
    with sat) once the bracket [lower, distance] is closed, or where the point lies more than
    GO_ON_MAX_DROP below the check's radius r: then a fresh check over the smaller ball does better
    than a tree bounded over the larger one. descend: None, or a function that descends from the best
    point and returns the best upper bound then; the distance compared is that one (a check's own
    points are not local minima: on MNIST image 9 the first check found 4.5859 at radius 4.587, and
    descending from it gave 0.719)."""
    def below(upper: float, r: float):
        if descend is not None:
            upper = min(upper, descend())
        if closed(lower, upper) or upper < (1.0 - GO_ON_MAX_DROP) * r:
            return None
        return radius_below(upper, lower)
    return below


def pointwise_robustness(network: Network, x0, label: int | None = None, norm: str = "inf", domain=None,
                         timeout: float = 60.0, max_radius: float | None = None, disjunction: str = "per_class",
                         seed: int = 0, l2_max_cuts: int = 200, hints=None, bastani: bool | None = None,
                         method: str = "checks") -> RadiusResult:
    """Bounds on rho(x0) (exact when the solver closes the gap); see the module docstring.

    label: the class x0 should keep (default: the network's prediction). domain: (lo, hi), scalars
    or arrays, confining the inputs. max_radius: search only up to this distance (rho above it is
    reported as lower = max_radius, upper = inf). disjunction: "per_class" or "binary".
    hints: candidate points (e.g. from an attack); any that re-checks seeds the upper bound.
    bastani: use the point of Bastani's estimate as a hint (default: when the input has at most 256
    values; on MNIST the LP costs seconds and its region rarely holds a misclassified point).
    method: "checks" (default) narrows the bracket with fixed-radius checks (`verify` on L-inf boxes,
    ball checks for L1 and L2) before any radius MILP; "milp" goes straight to the radius MILPs.
    """
    return RadiusSearch(network, x0, label, norm, domain, timeout, max_radius, disjunction, seed, l2_max_cuts,
                        hints, bastani, method).run()


class RadiusSearch:
    """One call of `pointwise_robustness`: the bracket [lower, best.upper] on rho and the stages that narrow it.

    A stage raises `lower` only by a proof and lowers `best.upper` only by a re-checked point.
    """

    def __init__(self, network: Network, x0, label, norm, domain, timeout, max_radius, disjunction, seed,
                 l2_max_cuts, hints, bastani, method):
        self.t_start = time.perf_counter()
        self.deadline = self.t_start + max(float(timeout), 0.0)
        self.network, self.domain, self.timeout, self.max_radius = network, domain, timeout, max_radius
        self.seed, self.l2_max_cuts, self.hints, self.bastani = seed, l2_max_cuts, hints, bastani
        self.validate(x0, label, norm, disjunction, method)
        self.stats: dict = {"milps": 0, "nodes": 0, "milp_seconds": 0.0}
        self.best = Best()
        self.lower = 0.0
        self.checks = 0
        self.model = None  # the radius MILP being solved (its input columns map solver points back)
        self.last_region = None  # `region`'s last answer: the L1 quick check and the MILPs after it share it

    def validate(self, x0, label, norm, disjunction, method) -> None:
        """Check the arguments; set the point, its label and prediction, and the domain box."""
        self.norm = check_norm(norm)
        if disjunction not in ("per_class", "binary"):
            raise ValueError("disjunction must be 'per_class' or 'binary'")
        if method not in ("checks", "milp"):
            raise ValueError("method must be 'checks' or 'milp'")
        self.disjunction, self.method = disjunction, method
        self.x0 = x0 = np.asarray(x0, dtype=np.float64).ravel()
        n = self.network.input_size
        if x0.shape != (n,):
            raise ValueError(f"x0 has {x0.size} values but the network takes {n} inputs")
        self.y0 = self.network.forward(x0)
        self.predicted = int(np.argmax(self.y0))
        self.label = label = self.predicted if label is None else int(label)
        if not 0 <= label < self.network.output_size:
            raise ValueError(f"label {label} is not a class of a network with {self.network.output_size} outputs")
        self.dlo, self.dhi = domain_arrays(self.domain, n)
        if np.any(x0 < self.dlo) or np.any(x0 > self.dhi):
            raise ValueError("x0 lies outside the domain")

    def run(self) -> RadiusResult:
        """The stages in order, each skipped once the bracket is closed or the time is up."""
        if self.network.output_size < 2:
            return self.result(math.inf if self.max_radius is None else float(self.max_radius), "bounded")
        # 0. already misclassified (a tie counts): rho = 0
        if flip_margin(self.y0, self.label)[0] >= 0:
            self.offer(self.x0, "x0")
            return self.result(0.0)
        self.net_s = self.network.simplified()
        self.C = margin_matrix(self.net_s.output_size, self.label)
        self.cheap_upper()
        self.search_box()
        self.lower = self.crown_lower()
        self.attack_upper()
        if closed(self.lower, self.best.upper):
            return self.result(self.lower)
        if self.method == "milp" or self.ball_milps():
            # a closer upper bound first (the checks below descend themselves)
            self.descend()
            if closed(self.lower, self.best.upper):
                return self.result(self.lower)
        if self.ball_milps() and math.isfinite(self.best.upper):
            self.quick_check()
            if closed(self.lower, self.best.upper):
                return self.result(self.lower)
        elif self.method == "checks":
            # (L1 with no point found yet too: a check of the whole search region may find one, or prove it robust)
            done = self.close_by_checks()
            if done is not None:
                return done
        return self.exact_milps()

    def result(self, lower: float, status: str | None = None) -> RadiusResult:
        """The RadiusResult for this lower bound and the best re-checked point (status from the bracket by default)."""
        upper = self.best.upper
        if lower > upper:  # cannot happen unless a solver tolerance was broken: keep the sound side
            self.stats["inconsistent_lower"] = float(lower)
        lower = float(min(lower, upper))
        if status is None:
            status = "exact" if closed(lower, upper) else (
                "timeout" if time.perf_counter() >= self.deadline else "bounded")
        ce = as_counterexample(self.best.point)
        self.stats["upper_source"] = self.best.source
        return RadiusResult(lower=max(lower, 0.0), upper=upper, status=status, norm=self.norm, label=self.label,
                            predicted=self.predicted, counterexample=ce, seconds=time.perf_counter() - self.t_start,
                            stats=self.stats)

    def offer(self, x, source: str) -> None:
        """Offer the strict flip at or just beyond x (if one re-checks) as the upper bound."""
        self.best.offer(strict_point(self.network, self.x0, x, self.label, self.norm, self.dlo, self.dhi), source)

    # ------------------------------------------------------------------ 1, 2: cheap bounds

    def cheap_upper(self) -> None:
        """1. A cheap upper bound from the hints and Bastani's point."""
        for pt in self.hints or ():
            self.offer(np.asarray(pt, dtype=np.float64), "hint")
        if self.bastani if self.bastani is not None else self.network.input_size <= 256:
            try:
                _, pt = bastani_estimate(self.network, self.x0, self.label, self.norm, self.domain, return_point=True)
            except Exception:  # the estimate is a heuristic here; the MILP does not need it
                pt = None
            if pt is not None:
                self.offer(pt, "bastani")

    def search_box(self) -> None:
        """The radius cap and the L-inf radius of the domain around x0 (inf for an unbounded domain)."""
        self.cap = math.inf if self.max_radius is None else float(self.max_radius)
        self.finite_domain = bool(np.all(np.isfinite(self.dlo)) and np.all(np.isfinite(self.dhi)))
        self.domain_radius = (float(np.max(np.maximum(self.x0 - self.dlo, self.dhi - self.x0)))
                              if self.finite_domain else math.inf)
        # the farthest point of the domain from x0 in the search norm: beyond it there is nothing to search
        self.domain_reach = reach(self.x0, self.dlo, self.dhi, self.norm)
        if self.norm != "inf":
            from ..search.verifier import bounded_form
            self.balls = BallChecker(self.network, bounded_form(self.network), self.x0, self.label, self.norm,
                                     self.dlo, self.dhi, self.best, self.seed)

    def crown_lower(self) -> float:
        """2. The CROWN-certified radius: over L-inf boxes, or for L1 and L2 over the balls themselves
        (bounds/norm_ball.py) where the domain is finite."""
        search_hi = min(self.best.upper, self.cap)
        r_probe = min(search_hi, self.domain_reach if self.norm != "inf" else self.domain_radius)
        if not math.isfinite(r_probe):
            r_probe = 10.0 * max(1.0, float(np.max(np.abs(self.x0))))
        t0 = time.perf_counter()
        if self.norm == "inf" or not self.finite_domain:  # the L1/L2 ball lies in the L-inf box of its radius
            cheap_lower = certified_radius(self.net_s, self.x0, self.label, self.dlo, self.dhi, r_probe,
                                           self.deadline)
        else:
            cheap_lower = largest_certified(self.balls.certified, r_probe, self.deadline)
        self.stats["crown_lower"] = cheap_lower
        self.stats["crown_seconds"] = time.perf_counter() - t0
        return cheap_lower

    def attack_upper(self) -> None:
        """2. PGD with its radius bisected between the lower bound and the upper bound so far."""
        t0 = time.perf_counter()
        attack(self.network, self.x0, self.label, self.norm, self.dlo, self.dhi, self.lower,
               min(self.best.upper, self.cap, self.domain_radius), self.best,
               min(self.deadline, time.perf_counter() + max(1.0, 0.1 * self.timeout)), seed=self.seed)
        self.stats["attack_seconds"] = time.perf_counter() - t0
        self.stats["attack_upper"] = self.best.upper

    def ball_milps(self) -> bool:
        """Whether the radius MILPs over the ball (stage 3 with `region`'s ball bounds) replace the
        fixed-radius checks: in L1, where the ball's rows are exact, on a finite domain. On the
        digits network the per-class MILPs, their bounds refined over the ball of the descended upper
        bound, closed 8 of 8 points whose checks had timed out at 30 s, in 12-23 s each. An L2 ball in
        a MILP (tangent planes of each coordinate's square, refined at each solution) was far too slow
        (three of nine classes over 60 s at one fixed radius), so L2 keeps the checks. Without a point
        found yet, L1 also goes to the checks, whose check of the whole search region may find one."""
        return self.norm == "1" and self.finite_domain and self.method == "checks"

    def quick_check(self) -> None:
        """A short ball check just below the upper bound, before the ball MILPs and on their refined
        bounds: ReLU splitting closes the smaller balls in a second or two, where the MILPs of nine
        classes take several."""
        upper = self.best.upper
        if not math.isfinite(upper):
            return
        # the bounds over the ball the MILPs will search, tightened: the check starts from them
        reg = self.region(upper)
        # (an unchanged upper bound leaves `exact_milps` this region as it is)
        if sum(reg["lb"].unstable_counts(reg["net"])[1:]) > QUICK_CHECK_MAX_UNSTABLE:
            return
        r = radius_below(upper, self.lower)
        status, r = self.check(r, min(QUICK_CHECK_SECONDS, QUICK_CHECK_SHARE * self.timeout), refine=False)
        if status == "unsat":
            self.lower = max(self.lower, r)

    def descend(self) -> None:
        """Region descent from the best point and from targeted-ascent points of every class."""
        t0 = time.perf_counter()
        descend_all_classes(self.network, self.x0, self.label, self.norm, self.dlo, self.dhi, self.best,
                            min(self.deadline, time.perf_counter() + max(1.0, 0.1 * self.timeout)), self.stats,
                            self.seed)
        self.stats["descent_seconds"] = time.perf_counter() - t0

    # ------------------------------------------------------------------ 2b: L-inf fixed-radius checks

    def close_by_checks(self) -> RadiusResult | None:
        """2b. Narrow the L-inf bracket with fixed-radius checks; the result if that settles rho, else None."""
        t0 = time.perf_counter()
        reach = self.domain_radius if self.norm == "inf" else self.domain_reach
        r_max = min(self.cap, reach)
        self.lower = self.narrow_by_checks(self.lower, r_max)
        self.stats["check_seconds"] = time.perf_counter() - t0
        if not math.isfinite(self.best.upper) and self.lower >= r_max:
            if self.lower >= reach:
                # no point of the whole (finite) domain flips: rho = inf (the infimum of the empty set)
                self.stats["robust_on_domain"] = True
                return self.result(math.inf, "exact")
            return self.result(self.lower)  # nothing within max_radius: rho >= max_radius, and no more is asked
        if closed(self.lower, self.best.upper) or time.perf_counter() >= self.deadline:
            return self.result(self.lower)
        return None

    def narrow_by_checks(self, lower: float, r_max: float) -> float:
        """Close [lower, best.upper]: region descent for the upper bound, then a fixed-radius check just
        below it ("is some label change within radius r?": `verify` for L-inf, a ball check for L1/L2).

        An unsat at r proves rho >= r (no point of the closed ball ties or beats the label), and with r
        within the exactness tolerance of the upper bound the bracket is closed. A sat brings a re-checked
        point (its strict-flip distance becomes the upper bound, and descent starts again from it). A ball
        check just below the upper bound instead goes on just below each closer point it finds, keeping
        its tree (`just_below`): on the standard digits network (L2) checks that found a closer point
        after 5-83 s and then started again from nothing below it timed out at 120 s (points 1, 19, 58,
        81); going on, each closed in one check (88-154 s a point at 600 s a point), and point 95's
        three checks (84 s) became one (34 s). A
        fixed-radius check has bounds over that ball only and asks a decision question: on MNIST 256x2
        it takes 1-10 s, where minimising the radius in one MILP could take more than a minute.
        The first check gets half the time left (a ball check BALL_FIRST_CHECK_SHARE of it); when it
        runs out, for L-inf a wider descent (four starts per class) and a second check just below the
        upper bound get half of the rest, and what remains goes to one check halfway down the bracket.
        For L1 and L2 the rest goes to that check halfway down at once (a second ball check at the same
        radius would only repeat the first one's search).
        With no point found yet, the one check is at r_max: unsat there makes the lower bound r_max.
        Returns the lower bound.
        """
        network, x0, label, dlo, dhi = self.network, self.x0, self.label, self.dlo, self.dhi
        best, deadline, stats, seed = self.best, self.deadline, self.stats, self.seed
        timeouts = 0
        norm = self.norm
        # the check just below the upper bound is the one that can close the bracket; a ball check there
        # gets more of the time (the descended L2 upper bounds of the digits points are mostly rho itself)
        first_share = 0.5 if norm == "inf" else BALL_FIRST_CHECK_SHARE
        # L1/L2: the walks and their region LPs get at most a fifth of the time, later descents less (on
        # MNIST a region LP takes ~0.5 s, and 110 of them took 50 of 60 s, leaving one check 8 s)
        def descent_deadline(share):
            return deadline if norm == "inf" else min(deadline, time.perf_counter() + share * self.timeout)
        descend_all_classes(network, x0, label, norm, dlo, dhi, best, descent_deadline(0.2), stats, seed)
        descended = None  # the best point as a going-on check's descent left it

        def descend_in_check():
            nonlocal descended
            upper = self.descend_from_best(descent_deadline(0.05))
            descended = best.point
            return upper

        while time.perf_counter() < deadline:
            # not again from the point a check has just descended from: on MNIST 256x2 (L2, region LPs of
            # ~0.5 s) that second descent doubled each round's descent time (image 30: 1.6-2.2 s each)
            if best.point is None or best.point is not descended:
                self.descend_from_best(descent_deadline(0.05))
            upper = best.upper
            if closed(lower, upper):
                break
            remaining = deadline - time.perf_counter()
            if not math.isfinite(upper):
                if not math.isfinite(r_max):
                    break
                status, _ = self.check(r_max, remaining)  # no point found yet: is the whole search region robust?
                if status == "unsat":
                    return max(lower, r_max)
                if status != "sat":
                    break
                continue
            if timeouts >= 2:
                r, budget, below = 0.5 * (lower + upper), remaining, None
            else:
                r, budget = radius_below(upper, lower), first_share * remaining
                below = just_below(lower, descend_in_check)
            # just below a descended upper bound the attack rarely finds anything: keep its share small
            status, r = self.check(r, budget, None if timeouts >= 2 else 0.25, below=below)
            if status == "unsat":
                lower = max(lower, r)
            elif status != "sat":
                timeouts += 1
                if timeouts > 2:
                    break
                if timeouts == 1 and norm != "inf":
                    # straight to the check halfway down: on the digits networks the wider descent below
                    # never lowered an L2 upper bound after a timed-out ball check (0 of 56), and the time
                    # it took was what the check halfway down needed to prove its radius
                    timeouts += 1
                elif timeouts == 1:  # perhaps the upper bound is not yet the minimum: search wider, then retry
                    descend_all_classes(network, x0, label, norm, dlo, dhi, best, descent_deadline(0.1), stats,
                                        seed + 1, starts=4)
        return lower

    def descend_from_best(self, deadline: float) -> float:
        """Region descent from the best point (until `deadline`); the best upper bound then."""
        region_descent(self.network, self.x0, self.label, self.norm, self.dlo, self.dhi, self.best, deadline,
                       self.stats)
        return self.best.upper

    def check(self, r: float, budget: float, attack_time: float | None = None, refine: bool = True,
              below=None) -> tuple[str, float]:
        """Is some y_j >= y_label, j != label, within distance r (and the domain)? For L-inf `verify`
        on the box, for L1 and L2 a ball check (radius_ball.py; with `below`, one that goes on below
        each point it finds, see `BallChecker.check`). Logs the check, offers a sat's point as the upper
        bound, and returns the status and the radius it is about (lowered by such points)."""
        if self.norm != "inf":
            status, r = self.balls.check(r, time.perf_counter() + max(budget, 1e-3), refine, below)
            entry = self.balls.stats.log[-1]
        else:
            from ..search.verifier import verify
            network, x0, label, dlo, dhi = self.network, self.x0, self.label, self.dlo, self.dhi
            prop = robustness_property(x0, r, label, network.output_size, (dlo, dhi))
            res = verify(network, prop, timeout=max(budget, 1e-3), seed=self.seed, attack_time=attack_time)
            status, entry = res.status, [float(r), res.status, round(res.seconds, 3)]
            if res.status == "sat" and res.counterexample is not None:
                xs = np.asarray(res.counterexample.x, dtype=np.float64)
                self.best.offer(strict_point(network, x0, xs, label, "inf", dlo, dhi, self.seed), "check")
        self.checks += 1
        self.stats["checks"] = self.checks
        self.stats.setdefault("check_log", []).append(entry)
        return status, r

    # ------------------------------------------------------------------ 3: the exact MILPs

    def exact_milps(self) -> RadiusResult:
        """3. The exact MILPs over the search region B = domain ∩ (L-inf box of radius R around x0)."""
        others = [j for j in range(self.net_s.output_size) if j != self.label]
        self.fallback_box = (self.domain_radius if self.finite_domain
                             else 1e3 * max(1.0, float(np.max(np.abs(self.x0)))))
        reg = self.region(min(self.best.upper, self.cap))
        # the first region is the whole domain
        self.covers_domain = reg["covers"]
        self.t_lo = max(0.0, self.lower)
        self.reg0_full = reg["t_full"]

        open_k = [k for k in range(len(others)) if reg["m_lo"][k] <= 0]
        self.stats["classes_open"] = len(open_k)
        if not open_k:
            # nothing in the region flips: every misclassified point is farther than its radius (an L1 or L2
            # ball, or the L-inf box, which holds the L1 and L2 balls of the same radius)
            return self.final(max(reg["radius"], self.reg0_full) if self.covers_domain else reg["radius"])
        # classes that a ball check just below the upper bound proved (they win nowhere in that ball) need
        # no MILP: their bound already closes the bracket
        proven = {} if self.norm == "inf" else {
            k: r for k, r in self.balls.proven.items() if closed(r, self.best.upper)}
        checked = [proven[k] for k in open_k if k in proven]
        open_k = [k for k in open_k if k not in proven]
        if checked:
            self.stats["classes_proven_by_checks"] = len(checked)
            if not open_k:
                return self.final(min(checked))
        if self.disjunction == "binary" or len(open_k) == 1:
            M = np.array([max(float(reg["m_hi"][k]), 0.0) for k in open_k]) * (1 + 1e-9) + 1e-9
            return self.final(min([self.solve_region(reg, [others[k] for k in open_k], M)] + checked))

        # one MILP per class: the class of the best point first, then by the least margin lower bound;
        # whenever the best upper bound has shrunk, the region (and its bounds) shrinks with it
        first = self.best.point["class"] if self.best.point is not None else None
        todo = sorted(open_k, key=lambda k: (others[k] != first, reg["m_lo"][k]))
        lower_j = []
        for k in todo:
            if time.perf_counter() >= self.deadline:
                lower_j.append(self.t_lo)
                continue
            if math.isfinite(self.best.upper) and self.best.upper < 0.98 * reg["R"]:
                reg = self.region(self.best.upper)
            if reg["m_lo"][k] > 0:  # class j cannot win within the region's radius of x0
                lower_j.append(reg["radius"])
                self.stats["classes_skipped"] = self.stats.get("classes_skipped", 0) + 1
                continue
            lower_j.append(self.solve_region(reg, [others[k]], None))
        return self.final(min(lower_j + checked))

    def region(self, R: float) -> dict:
        """Box, bounds and margin bounds for search radius R (every point with ||x - x0|| <= R, any norm).

        In L1 and L2 on a finite domain the bounds are over the ball itself (a hair larger than R, so
        that they hold up to t's upper bound), refined (search/refine.py) the first time, and every
        later, smaller ball starts from them; elsewhere CROWN over the L-inf box of radius R."""
        from ..bounds.crown import linear_objective_bounds
        from ..search.tightening import tightened_bounds
        if self.last_region is not None and self.last_region["R"] == R:
            return self.last_region
        x0, stats = self.x0, self.stats
        t0 = time.perf_counter()
        R_box = R if math.isfinite(R) else self.fallback_box
        lo, hi = linf_ball(x0, R_box, (self.dlo, self.dhi))
        if self.norm != "inf" and self.finite_domain:
            net = self.balls.net_b
            R_ball = min(R * (1 + 1e-9) + 1e-12, self.domain_reach)
            lb, m_lo = self.balls.bounds(R_ball)
            if (self.balls.refined is None or self.balls.refined[0] < R_ball) and not np.all(m_lo > 0):
                now = time.perf_counter()
                until = now + REGION_REFINE_SHARE * (self.deadline - now)
                lb = (self.balls.tighten_by_lp(lb, R_ball, until) if self.norm == "1" else
                      self.balls.refine(lb, R_ball, until, REGION_REFINE_DOMAINS))
            covers, radius = R_ball >= self.domain_reach, R_ball
        else:
            net = self.net_s
            lb = tightened_bounds(net, lo, hi, "crown")
            covers, radius = self.finite_domain and R_box >= self.domain_radius, R_box
        m_lo, m_hi = linear_objective_bounds(net, lb, self.C)  # bounds on y_label - y_j over the region
        stats["bounds_seconds"] = stats.get("bounds_seconds", 0.0) + time.perf_counter() - t0
        stats.setdefault("unstable", lb.unstable_counts(net))
        self.last_region = {"R": R, "R_box": R_box, "lo": lo, "hi": hi, "lb": lb, "net": net, "m_lo": m_lo,
                            "m_hi": m_hi, "covers": covers, "radius": radius, "t_full": reach(x0, lo, hi, self.norm)}
        return self.last_region

    def final(self, bound: float) -> RadiusResult:
        """The result for the MILP stage's lower bound `bound`."""
        # no misclassified point anywhere in the domain: rho = inf (the infimum of the empty set)
        if self.covers_domain and not math.isfinite(self.best.upper) and bound >= self.reg0_full:
            self.stats["robust_on_domain"] = True
            return self.result(math.inf, "exact")
        return self.result(max(self.lower, bound))

    def deepen(self, reg: dict, j: int, boundary, t_lo: float, t_hi: float) -> None:
        """The MILP's optimum is a tie y_j = y_label, often at a vertex of the flip region where strict
        flips are a thin wedge that rounding misses: solve once more with the flip required
        STRICT_MARGIN deep, and let the re-check walk from that point back towards the tie."""
        model, _ = radius_model(reg["net"], reg["lb"], self.x0, self.label, [j], self.norm, reg["lo"], reg["hi"],
                                t_lo, t_hi, margin=STRICT_MARGIN)
        res = solve_milp(model, self.deadline - time.perf_counter(), None)
        if res.status == "optimal" and res.x is not None:
            self.best.offer(strict_point(self.network, self.x0, boundary, self.label, self.norm, self.dlo, self.dhi,
                                         self.seed, deeper=res.x[model.input_cols]), "milp")

    def on_solution(self, col_values, objective) -> bool:
        """The solver's callback: offer each incumbent's input as the upper bound; never stop the solve."""
        xs = np.asarray(col_values)[self.model.input_cols]
        self.offer(xs, "milp")
        return False

    def solve_region(self, reg: dict, classes, M) -> float:
        """A lower bound on min t over `classes` in the region (t <= the best upper bound so far);
        L2 by cutting planes."""
        x0, stats, best = self.x0, self.stats, self.best
        t_lo = self.t_lo
        t_hi = reg["t_full"]
        if math.isfinite(reg["R"]):
            t_hi = min(t_hi, reg["R"] * (1 + 1e-9) + 1e-12)
        if math.isfinite(best.upper):
            t_hi = min(t_hi, best.upper * (1 + 1e-9) + 1e-12)
        if t_hi < t_lo:
            return t_hi
        self.model, tcol = radius_model(reg["net"], reg["lb"], x0, self.label, classes, self.norm, reg["lo"],
                                        reg["hi"], t_lo, t_hi, M)
        bound = t_lo
        cuts = 0
        if self.norm == "2":  # start the outer approximation with the directions where flips are likely
            for u in l2_directions(self.network, x0, self.label, classes, best):
                self.model = add_cut(self.model, tcol, u, x0)
        while True:
            if time.perf_counter() >= self.deadline:
                return bound
            res = solve_milp(self.model, self.deadline - time.perf_counter(), self.on_solution)
            stats["milps"] += 1
            stats["nodes"] += res.nodes
            stats["milp_seconds"] += res.seconds
            if res.x is not None:  # the final solution (the callback may not have seen it)
                self.on_solution(res.x, res.objective)
            if res.status == "infeasible":
                return max(bound, float(self.model.col_upper[tcol]))
            if res.dual_bound is not None:
                bound = max(bound, padded(res.dual_bound))
            elif res.status == "optimal" and res.objective is not None and not self.model.integrality.any():
                bound = max(bound, padded(res.objective))  # an LP (no unstable ReLU): its optimum
            if res.status != "optimal" or res.x is None:
                return bound
            if self.norm != "2":
                if len(classes) == 1 and not closed(bound, best.upper):
                    self.deepen(reg, classes[0], res.x[self.model.input_cols], t_lo, t_hi)
                return bound
            xs = res.x[self.model.input_cols]
            tstar = float(res.x[tcol])
            dist = float(np.linalg.norm(xs - x0))
            if closed(bound, best.upper) or dist <= tstar * (1 + 1e-9) + 1e-12 or cuts >= self.l2_max_cuts:
                return bound
            self.model = add_cut(self.model, tcol, (xs - x0) / dist * (1 - 1e-12), x0)
            cuts += 1
            stats["l2_cuts"] = stats.get("l2_cuts", 0) + 1
