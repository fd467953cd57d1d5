"""Branch and bound over ReLU phases with beta-CROWN bounds, batched in numpy.

Halving the input box pays only when there are few inputs; an MNIST network
has 784. Here a *domain* is the whole input box with some ReLUs that are
unstable over it fixed: active (z >= 0, so y = z) or inactive (z <= 0, so
y = 0). The two children of a domain cover it (z = 0 belongs to both), so a
disjunct is refuted once every leaf of the tree is.

Each domain's bound is a lower bound on one row c.y - d of the disjunct
(c.y - d > 0 everywhere refutes it), from one CROWN backward pass in which

- the pre-activation bounds are those of the root, except that a split neuron
  is exact (slope 1 or 0), and
- each split constraint s z >= 0 (s = +1 active, -1 inactive) enters with a
  Lagrange multiplier beta >= 0 (beta-CROWN, Wang et al. 2021): the objective
  is >= objective - beta s z on the domain, and the pass bounds the right-hand side.

The lower slopes alpha in [0, 1] of the unstable ReLUs and the betas are
optimised per domain by projected gradient ascent (Adam, in float32, only to
steer); every value of them gives a sound bound, so the bound reported is one
float64 pass with the best values found, its rounding bounded and padded
exactly as in bounds/crown.py (see the comment there; both end their pass in
bounds/norm_ball.py's `padded_minimum`), with the beta terms' products and sums
covered by counting |lam| on both sides of each ReLU step.
A parent's bound also holds for its children and is kept where it is higher.

Many domains (and all the disjuncts) are bounded at once as one batch: each
step is a (batch, n) @ (n, n') product. A domain's bound also names a point
(the box corner that minimises its last linear bound); every such point is run
through the network and re-checked as a counterexample.

With bounds over a box intersected with an L1 or L2 ball (`LayerBounds.ball`), each pass is concretised
over that set instead (bounds/norm_ball.py), and the domains cover the ball.

Only networks of the form Affine, ReLU, Affine, ..., Affine qualify
(`supports`); the verifier uses this for cases with many inputs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from ..bounds.crown import AffineStep, ReluStep
from ..bounds.layer_bounds import LayerBounds
from ..bounds.norm_ball import concretize, padded_minimum
from ..bounds.optimiser import Adam
from ..bounds.padding import padding_terms
from ..core.network import Affine, Network, ReLU


def supports(net: Network) -> bool:
    """Affine, ReLU, Affine, ReLU, ..., Affine, with at least one ReLU."""
    layers = net.layers
    if len(layers) < 3 or len(layers) % 2 == 0:
        return False
    return all(isinstance(l, Affine) if i % 2 == 0 else isinstance(l, ReLU) for i, l in enumerate(layers))


@dataclass
class SplitStats:
    """What one ReLU-splitting search did: domains bounded, rounds, the largest frontier and depth."""

    domains: int = 0  # domains bounded (the root items included)
    rounds: int = 0
    max_frontier: int = 0
    max_depth: int = 0
    points_checked: int = 0
    leaves: int = 0  # fully split domains handed to the leaf decider
    seconds: float = 0.0


class ReluSplitter:
    """Branch and bound over ReLU phases for the disjuncts of one case.

    net: a `supports`-ed network (the simplified one); lb: sound bounds over the
    case's box (every layer's output); disjuncts: the case's OutputConstraints.
    `check(x)` re-checks a candidate point against the real property and
    returns a counterexample or None. `leaf(bounds, di, splits)`, if given, decides a
    domain with at most `leaf_unstable` unstable ReLUs left unsplit (with none
    left the relaxation is exact, but the betas may not have converged, e.g.
    on an empty domain) from that domain's `LayerBounds` and split vector: True if it refutes
    disjunct di there (an infeasible MILP), a counterexample, or False;
    without it a fully split domain leaves its disjunct open.
    """

    def __init__(self, net: Network, lb: LayerBounds, disjuncts: list, check, iterations: int = 8,
                 batch: int = 512, lr_alpha: float = 0.1, lr_beta: float = 0.05,
                 leaf=None, leaf_unstable: int = 0, memory: float = 1e9):
        if not supports(net):
            raise ValueError("ReLU splitting needs Affine, ReLU, ..., Affine")
        self.net, self.disjuncts, self.check = net, disjuncts, check
        self.iterations, self.batch, self.lr_alpha, self.lr_beta = iterations, batch, lr_alpha, lr_beta
        self.memory = memory  # bytes the open domains may take; beyond that the search stops
        self.leaf = leaf
        self.leaf_unstable = leaf_unstable if leaf is not None else 0
        self.root_bounds = lb
        self.W = [np.ascontiguousarray(l.dense_weight(), dtype=np.float64) for l in net.layers[0::2]]
        self.b = [np.asarray(l.bias, dtype=np.float64) for l in net.layers[0::2]]
        self.WT = [np.ascontiguousarray(w.T) for w in self.W]
        self.in_lo = np.asarray(lb.input_lower, dtype=np.float64)
        self.in_hi = np.asarray(lb.input_upper, dtype=np.float64)
        # the relaxation constants are bounds/crown.py's own backward steps, built from the root bounds:
        # the affine scales |W| |input| + |b| and the ReLU upper lines (rounded up) and scales
        self.aff_scale = [AffineStep(layer, *lb.pre_activation(2 * k)).scale
                          for k, layer in enumerate(net.layers[0::2])]
        # ReLU layers r = 0..L-1: pre-activation = output of affine r = lb layer 2r
        self.relus = []
        offset = 0
        for r in range(len(self.W) - 1):
            l, u = lb.lower[2 * r], lb.upper[2 * r]
            step = ReluStep(l, u, "adaptive")
            unstable = step.unstable
            self.relus.append({
                "unstable": unstable, "slope": step.upper_slope, "intercept": step.upper_intercept,
                "stable": step.stable_slope, "scale": step.scale, "alpha0": step.alpha,
                "width": np.minimum(u[unstable], -l[unstable]), "offset": offset, "n": len(unstable),
            })
            offset += len(unstable)
        self.n_unstable = offset
        self.alpha0 = np.concatenate([r["alpha0"] for r in self.relus])  # the root's lower slopes, all layers
        widths = [len(self.in_lo)] + [w.shape[0] for w in self.W] + [w.shape[1] for w in self.W]
        self.terms = padding_terms(widths, 2 * len(self.W) - 1)  # the pass steps through every layer
        self.ball = lb.ball  # an L1 or L2 ball within the box, or None: the bounds are over the box only
        # every row c.y - d of every disjunct; the search keeps one per disjunct, the row whose root
        # bound is highest (a disjunct is refuted where any of its rows is > 0)
        self.rows_c, self.rows_d = [], []
        for d in disjuncts:
            self.rows_c.append(np.asarray(d.A, dtype=np.float64))
            self.rows_d.append(-np.asarray(d.b, dtype=np.float64))
        self.stats = SplitStats()

    # ------------------------------------------------------------------ bounding

    def _fast(self):
        """float32 copies of the pass's parameters (built once): the optimisation steps run in
        float32, about 1.5x faster; only the final float64 pass gives bounds."""
        if not hasattr(self, "_f32"):
            f = lambda a: np.asarray(a, dtype=np.float32)
            self._f32 = {"W": [f(w) for w in self.W], "WT": [f(w) for w in self.WT], "b": [f(x) for x in self.b],
                         "relus": [dict(r, slope=f(r["slope"]), intercept=f(r["intercept"]), stable=f(r["stable"]))
                                   for r in self.relus], "in_lo": f(self.in_lo), "in_hi": f(self.in_hi)}
        return self._f32

    def _pass(self, C, dconst, splits, alpha, beta, want_grad, fast=False):
        """One backward pass for a batch: C (B, n_out), dconst (B,), splits int8 / alpha / beta (B, n_unstable).
        Returns (lower bounds (B,), lam at the input (B, n_in), saved per ReLU layer, grads or None).
        The bounds are sound (float64, padded) unless `fast`: then float32, unpadded, for steering only."""
        if fast:
            p = self._fast()
            W, WT, bias, relus, in_lo, in_hi = p["W"], p["WT"], p["b"], p["relus"], p["in_lo"], p["in_hi"]
            C, dconst = C.astype(np.float32), dconst.astype(np.float32)
            alpha, beta = alpha.astype(np.float32), beta.astype(np.float32)
        else:
            W, WT, bias, relus, in_lo, in_hi = self.W, self.WT, self.b, self.relus, self.in_lo, self.in_hi
        lam, const = C, dconst.copy()
        mag = np.zeros(len(const))
        saved = {}
        L = len(W) - 1
        for k in range(L, -1, -1):
            if not fast:
                mag += np.abs(lam) @ self.aff_scale[k] + np.abs(const)
            const = const + lam @ bias[k]
            lam = lam @ W[k]
            if k == 0:
                break
            r = k - 1
            info = relus[r]
            U, o, n = info["unstable"], info["offset"], info["n"]
            lam_z = lam * info["stable"]
            if n:
                sub = lam[:, U]
                s = splits[:, o:o + n]
                a, be = alpha[:, o:o + n], beta[:, o:o + n]
                free = s == 0
                pos = sub >= 0
                relaxed = np.where(pos, sub * a, sub * info["slope"])
                new_sub = np.where(free, relaxed, np.where(s > 0, sub, 0)) - be * s
                const = const + np.where(free & ~pos, sub, 0) @ info["intercept"]
                lam_z[:, U] = new_sub
                saved[r] = (sub, free, pos, s)
            if not fast:
                with np.errstate(over="ignore", invalid="ignore"):
                    mag += (np.abs(lam) + np.abs(lam_z)) @ info["scale"] + np.abs(const)
            lam = lam_z
        if fast:
            value, _, point = concretize(lam, const, in_lo, in_hi, self.ball, steer=True)
        else:
            value, point = padded_minimum(lam, const, in_lo, in_hi, self.ball, mag, self.terms)
        if not want_grad:
            return value, lam, saved, None
        g = point  # d value / d lam at the input: the minimiser over the input set
        g_alpha = np.zeros_like(alpha)
        g_beta = np.zeros_like(beta)
        for r in range(L):
            g = g @ WT[r] + bias[r]  # d value / d lam_z at ReLU layer r
            info = relus[r]
            gy = None if r == L - 1 else g * info["stable"]
            if info["n"]:
                U, o, n = info["unstable"], info["offset"], info["n"]
                sub, free, pos, s = saved[r]
                gu = g[:, U]
                g_alpha[:, o:o + n] = np.where(free & pos, sub * gu, 0)
                g_beta[:, o:o + n] = -s * gu
                if gy is not None:
                    a = alpha[:, o:o + n]
                    gy[:, U] = np.where(free, np.where(pos, a * gu, gu * info["slope"] + info["intercept"]),
                                        np.where(s > 0, gu, 0))
            if gy is None:
                break
            g = gy
        return value, lam, saved, (g_alpha, g_beta)

    def bound(self, C, dconst, splits, alpha, beta, iterations, floor=None):
        """Optimise alpha and beta for `iterations` Adam steps (float32, with the concretisation's
        steering value `concretize(steer=True)`; a domain whose bound looks positive leaves the steps),
        then bound with the best of them in float64. Returns (sound bound, that alpha and beta, lam_x of
        the sound pass, saved of the last float32 pass).
        floor: bounds already proven for these domains (a parent's bound holds for its children),
        kept where they are higher."""
        alpha = alpha.astype(np.float32)
        beta = beta.astype(np.float32)
        adam = Adam()
        best = np.full(len(dconst), -np.inf, dtype=np.float32)
        best_alpha, best_beta = alpha.copy(), beta.copy()

        def steering_pass(idx, want_grad):
            """A float32 pass over items idx, keeping each item's best bound and its alpha and beta."""
            value, _, saved, grads = self._pass(C[idx], dconst[idx], splits[idx], alpha[idx], beta[idx],
                                                want_grad=want_grad, fast=True)
            better = idx[value > best[idx]]
            best_alpha[better], best_beta[better] = alpha[better], beta[better]
            best[idx] = np.maximum(best[idx], value)
            return saved, grads

        # the steps run on the items that do not look refuted yet (one that does never moves again),
        # the last pass on all of them: branching reads it
        idx = np.arange(len(dconst))
        for _ in range(iterations):
            _, (ga, gb) = steering_pass(idx, want_grad=True)
            live = best[idx] <= 0
            if not live.any():
                break
            idx, ga, gb = idx[live], ga[live], gb[live]
            for key, p, g, lr, hi in (("alpha", alpha, ga, self.lr_alpha, 1.0), ("beta", beta, gb, self.lr_beta, None)):
                p[idx] = np.clip(p[idx] + adam.step(key, g, lr, rows=idx, shape=p.shape), 0.0, hi)
        saved, _ = steering_pass(np.arange(len(dconst)), want_grad=False)
        best_alpha, best_beta = best_alpha.astype(np.float64), best_beta.astype(np.float64)
        value, lam_x, _, _ = self._pass(C, dconst, splits, best_alpha, best_beta, want_grad=False)
        if floor is not None:
            value = np.maximum(value, floor)
        # branching reads the last iterate's coefficients, not the best one's: where the steps did
        # not improve on the start, the best is the parent's own state, which points the same way
        # as the parent's choice (measured: MNIST 256x4 prop_8 0.03 needs 1.2k domains
        # this way, over 18k the other way)
        return value, best_alpha, best_beta, lam_x, saved

    def branches(self, saved, splits) -> np.ndarray:
        """Each item's neuron to split next, from its last pass (`saved`) and its splits."""
        return self._choose(self._branch_scores(saved, splits))

    def _choose(self, scores):
        """Each item's neuron to split: the best-scoring one (-1 scores mark split neurons; an item
        with none left gets 0, and is a leaf by its count of free neurons)."""
        if scores.shape[1] == 0:
            return np.zeros(len(scores), np.int64)
        return np.argmax(scores, axis=1)

    def _branch_scores(self, saved, splits):
        """Per item and unstable neuron: how much fixing the neuron would raise the bound (BaBSR's
        intercept score), with a small width-weighted tie-break; -1 where the neuron is already split."""
        B = splits.shape[0]
        score = np.full((B, self.n_unstable), -1.0)
        for r, info in enumerate(self.relus):
            if not info["n"] or r not in saved:
                continue
            sub, free, pos, s = saved[r]
            o, n = info["offset"], info["n"]
            intercept = np.where(free & ~pos, -sub * info["intercept"], 0.0)
            backup = np.abs(sub) * info["width"]
            score[:, o:o + n] = np.where(free, intercept + 1e-4 * backup + 1e-12, -1.0)
        return score

    # ------------------------------------------------------------------ the search

    def run(self, open_disjuncts: list, deadline: float, progress=None):
        """Branch and bound on the disjuncts `open_disjuncts` until each is refuted or `deadline`
        (time.perf_counter()). Returns (refuted disjunct indices, counterexample or None)."""
        t_start = time.perf_counter()
        try:
            return self._search([di for di in open_disjuncts if len(self.rows_d[di])], deadline, progress)
        finally:
            self.stats.seconds += time.perf_counter() - t_start

    def _search(self, open_disjuncts, deadline, progress):
        nu = self.n_unstable
        if not open_disjuncts:
            return [], None
        # root items: every row of every open disjunct, so the best row can be chosen
        C = np.vstack([self.rows_c[di] for di in open_disjuncts])
        dc = np.concatenate([self.rows_d[di] for di in open_disjuncts])
        owner = np.concatenate([np.full(len(self.rows_d[di]), di) for di in open_disjuncts])
        zeros = np.zeros((len(dc), nu), dtype=np.int8)
        alpha0 = np.tile(self.alpha0, (len(dc), 1))
        best, alpha, beta, lam_x, saved = self.bound(C, dc, zeros, alpha0, np.zeros_like(alpha0), 4 * self.iterations)
        self.stats.domains += len(dc)
        ce = self._try_points(C, dc, owner, lam_x, best)
        if ce is not None:
            return [], ce
        refuted, keep = set(), []
        for di in open_disjuncts:
            rows = np.flatnonzero(owner == di)
            if np.any(best[rows] > 0):
                refuted.add(di)
            else:
                keep.append(rows[np.argmax(best[rows])])
        keep = np.array(keep, dtype=np.int64)
        self.C, self.dc, self.owner = C, dc, owner  # an item's row: an index into these
        frontier = Frontier(nu)
        frontier.push(row=keep, splits=zeros[keep], alpha=alpha[keep], beta=beta[keep], bound=best[keep],
                      branch=self.branches(saved, zeros)[keep], depth=np.zeros(len(keep)),
                      free=np.full(len(keep), nu))
        max_items = max(1000, int(self.memory / (frontier.bytes_per_item + 1)))
        stuck = set()  # disjuncts with a domain the leaf decider could not refute
        while frontier.size:
            if time.perf_counter() >= deadline or frontier.size > max_items:
                break
            self.stats.rounds += 1
            self.stats.max_frontier = max(self.stats.max_frontier, frontier.size)
            # domains with (almost) nothing left to split: the leaf decider, or their disjunct stays open
            leaves = frontier.pop_where(frontier.view("free") <= self.leaf_unstable)
            for i in range(len(leaves["row"])):
                di = int(self.owner[leaves["row"][i]])
                if time.perf_counter() >= deadline or self.leaf is None:
                    stuck.add(di)
                    continue
                outcome = self.leaf(self.domain_bounds(leaves["splits"][i]), di, leaves["splits"][i])
                self.stats.leaves += 1
                if outcome is False:
                    stuck.add(di)
                elif outcome is not True:
                    return sorted(refuted), outcome
            if frontier.size:
                ce = self._expand(frontier)
                if ce is not None:
                    return sorted(refuted), ce
            alive = set(self.owner[frontier.view("row")].tolist())
            refuted.update(di for di in open_disjuncts if di not in alive and di not in stuck)
            if progress is not None:
                progress(self.stats, frontier.size, float(frontier.view("bound").min()) if frontier.size else 0.0)
        return sorted(refuted), None

    def _expand(self, frontier):
        """Pop the domains with the lowest bounds, bound both children of each, push the open ones."""
        P = frontier.pop_lowest(max(1, self.batch // 2))
        take = len(P["row"])
        row, splits, alpha, beta, depth = children(P)
        C, dc = self.C[row], self.dc[row]
        best, alpha, beta, lam_x, saved = self.bound(C, dc, splits, alpha, beta, self.iterations,
                                                     floor=np.repeat(P["bound"], 2))
        self.stats.domains += 2 * take
        self.stats.max_depth = max(self.stats.max_depth, int(depth.max()))
        ce = self._try_points(C, dc, self.owner[row], lam_x, best)
        if ce is not None:
            return ce
        live = best <= 0
        if np.any(live):
            frontier.push(row=row[live], splits=splits[live], alpha=alpha[live], beta=beta[live], bound=best[live],
                          branch=self.branches(saved, splits)[live], depth=depth[live],
                          free=np.count_nonzero(splits[live] == 0, axis=1))
        return None

    def domain_bound(self, di: int, splits, beta) -> float:
        """The sound bound of disjunct di (its best row) on one domain, with the split multipliers
        `beta` (n_unstable,) given (e.g. from a solver's duals: any beta >= 0 is sound) and the root's
        lower slopes for the neurons left free."""
        C, dc = self.rows_c[di], self.rows_d[di]
        k = len(dc)
        alpha = np.tile(self.alpha0, (k, 1))
        value, _, _, _ = self._pass(C, dc, np.tile(splits, (k, 1)), alpha,
                                    np.tile(np.maximum(beta, 0.0), (k, 1)), want_grad=False)
        return float(np.max(value))

    def domain_bounds(self, splits) -> LayerBounds:
        """The root bounds with one domain's splits applied: z >= 0 or z <= 0 for each split neuron."""
        lb = self.root_bounds
        out = LayerBounds(lb.input_lower, lb.input_upper, [a.copy() for a in lb.lower],
                          [a.copy() for a in lb.upper], lb.method, lb.ball)
        for r, info in enumerate(self.relus):
            s = splits[info["offset"]:info["offset"] + info["n"]]
            on, off = info["unstable"][s > 0], info["unstable"][s < 0]
            out.lower[2 * r][on] = 0.0
            out.upper[2 * r][off] = 0.0
            out.upper[2 * r + 1][off] = 0.0
        return out

    def narrow_ball(self, ball) -> None:
        """Go on over a smaller ball inside the one the search started with (same center and norm):
        every bound so far, the frontier's and the root's, was proven over a superset of it, so it holds
        here too, and a disjunct refuted so far stays refuted. A check that finds a point within its
        radius goes on this way just below that point's distance, keeping its tree."""
        old = self.ball
        if (old is None or ball.norm != old.norm or not np.array_equal(ball.center, old.center)
                or not ball.radius <= old.radius):
            raise ValueError("a ReLU split's ball may only shrink about the same center, in the same norm")
        self.ball = ball

    def corners(self, lam_x):
        """The point of the input set (the box corner without a ball) that minimises each item's last
        linear bound lam_x . x."""
        return concretize(lam_x, np.zeros(len(lam_x)), self.in_lo, self.in_hi, self.ball)[2]

    def _try_points(self, C, dc, owners, lam_x, best):
        """Re-check the box corners that minimise each open item's last linear bound."""
        live = np.flatnonzero(best <= 0)
        if not len(live):
            return None
        xs = self.corners(lam_x[live])
        ys = self.net.forward(xs)
        self.stats.points_checked += len(live)
        values = np.einsum("ij,ij->i", ys, C[live]) + dc[live]  # the item's row c.y - d at its corner
        tol = 1e-9 * np.maximum(1.0, np.abs(ys).max(axis=1))
        for i in np.flatnonzero(values <= tol):
            if self.disjuncts[owners[live[i]]].violation(ys[i]) > tol[i]:
                continue
            ce = self.check(xs[i])
            if ce is not None:
                return ce
        return None


def children(P: dict):
    """Both children of each popped domain of P (a Frontier pop), the active one first: (row, splits,
    alpha, beta, depth), the new split's multiplier starting at 0."""
    take = len(P["row"])
    both = np.arange(2 * take)
    br = np.repeat(P["branch"], 2)
    splits = np.repeat(P["splits"], 2, axis=0)
    splits[both, br] = np.tile(np.array([1, -1], dtype=np.int8), take)  # active, then inactive
    alpha = np.repeat(P["alpha"], 2, axis=0)
    beta = np.repeat(P["beta"], 2, axis=0).astype(np.float64)
    beta[both, br] = 0.0
    return np.repeat(P["row"], 2), splits, alpha, beta, np.repeat(P["depth"], 2) + 1


class Frontier:
    """The open domains, as growable arrays: push appends, pops swap the tail into the holes,
    so neither copies the whole frontier (it can hold 10^5 domains of 10^3 neurons)."""

    FIELDS = {"row": np.int64, "splits": np.int8, "alpha": np.float16, "beta": np.float16, "bound": np.float64,
              "branch": np.int64, "depth": np.int64, "free": np.int64}
    WIDE = ("splits", "alpha", "beta")

    def __init__(self, width: int):
        self.width, self.size, self.capacity = width, 0, 0
        self.data = {k: np.zeros((0, width) if k in self.WIDE else 0, dtype=t) for k, t in self.FIELDS.items()}
        self.bytes_per_item = width * 5 + 48

    def view(self, key):
        """The open domains' field `key` (a view: valid until the next push or pop)."""
        return self.data[key][:self.size]

    def push(self, **items):
        """Append domains: one array per field, all of the same length."""
        n = len(items["row"])
        if self.size + n > self.capacity:
            self.capacity = max(2 * self.capacity, self.size + n, 64)
            for k, v in self.data.items():
                grown = np.zeros((self.capacity,) + v.shape[1:], dtype=v.dtype)
                grown[:self.size] = v[:self.size]
                self.data[k] = grown
        for k, v in items.items():
            self.data[k][self.size:self.size + n] = v
        self.size += n

    def pop_lowest(self, take: int) -> dict:
        """Remove and return the `take` domains with the lowest bounds."""
        take = min(take, self.size)
        bound = self.view("bound")
        idx = np.argpartition(bound, take - 1)[:take] if take < self.size else np.arange(self.size)
        return self._pop(idx)

    def pop_where(self, mask: np.ndarray) -> dict:
        """Remove and return the domains where `mask` is True."""
        return self._pop(np.flatnonzero(mask))

    def _pop(self, idx: np.ndarray) -> dict:
        out = {k: v[idx].copy() for k, v in self.data.items()}
        keep_n = self.size - len(idx)
        holes = idx[idx < keep_n]
        gone = np.zeros(self.size - keep_n, dtype=bool)
        gone[idx[idx >= keep_n] - keep_n] = True
        tail = keep_n + np.flatnonzero(~gone)  # survivors past the new end fill the holes
        for v in self.data.values():
            v[holes] = v[tail]
        self.size = keep_n
        return out
