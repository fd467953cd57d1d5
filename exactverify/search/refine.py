"""Intermediate bounds refined by branch and bound: each unstable neuron's own ReLU-splitting search.

The bounds of the layers below a ReLU decide how loose its relaxation is, in
every domain of the search that follows. CROWN bounds them by one linear
relaxation; the exact bounds are two MILPs per neuron, which HiGHS solves
slowly (MNIST-FC 256x4: ~8 s a neuron with 42 binaries). Here each bound is
instead the minimum of one branch and bound over the ReLU phases of the
layers below it, with the beta-CROWN passes of relu_split.py, many neurons
in one batch:

- objective +z_j (a lower bound on z_j) and -z_j (an upper bound), for every
  neuron j of layer k still unstable;
- each round splits the lowest domains of every objective still live; the
  objective's bound is the lowest bound of its open domains (every bound is
  sound: one padded float64 pass; the domains cover the box), so it only
  rises and can be stopped anywhere;
- an objective stops once it is > 0 (the neuron is stable: no more is
  needed), once a concrete point (a domain's minimising corner, run through
  the network) comes within `gap` of it (near exact), or when its domain
  budget is spent.

Layers are refined bottom up; after each, CROWN runs again with the refined
bounds fixed (`known`), so that the gain reaches the layers above before they
are refined.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from ..bounds.crown import crown_bounds
from ..bounds.layer_bounds import LayerBounds
from ..core.network import Network
from .relu_split import Frontier, ReluSplitter, children, supports

# Domains per objective. MNIST-FC 256x4 prop_14_0.05, first refined layer (93 unstable neurons): 64 a
# neuron side made 26 stable in 0.6 s, 512 made 33 in 2.8 s, 2048 made 35 in 5.5 s; HiGHS MILPs needed
# ~8 s a neuron side for about the same bounds.
DOMAINS = 2048
_MIN_SHARE = 16  # objectives a worker gets at least: fewer are not worth the pickling


@dataclass
class RefineReport:
    """Per refined layer: neurons tried, neurons made stable, domains bounded, seconds."""

    layers: list = field(default_factory=list)

    def as_dict(self) -> dict:
        """The report as a plain dict, for JSON."""
        return {"layers": self.layers}


def refine_bounds(net: Network, lb: LayerBounds, deadline: float, domains: int = DOMAINS, batch: int = 1024,
                  gap: float = 0.02, report: RefineReport | None = None, enough=None, progress=None,
                  pool=None, workers: int = 1) -> LayerBounds:
    """`lb` with the bounds of every ReLU's input layer (above the first) refined, bottom up, until
    `deadline` (time.perf_counter()); sound at every point. `net` must be `supports`-ed.

    domains: the most domains one objective (one side of one neuron) may bound; enough(lb), if given,
    is asked after each layer and ends the refinement when it returns True; progress(layer, domains,
    open objectives), if given, is called every round (in this process only). pool: a process pool
    (core.runtime.worker_pool) of `workers` processes that share each layer's objectives."""
    if not supports(net):
        raise ValueError("bound refinement needs Affine, ReLU, ..., Affine")
    layers = list(range(2, len(net.layers) - 1, 2))
    for i, k in enumerate(layers):
        t = time.perf_counter()
        if t >= deadline:
            break
        # a layer may take twice its even share of the time left, so that a deep network's upper
        # layers (whose bounds decide the outputs) are reached
        layer_deadline = t + min(1.0, 2.0 / (len(layers) - i)) * (deadline - t)
        lo, hi, info = refine_layer(net, lb, k, layer_deadline, domains=domains, batch=batch, gap=gap,
                                    progress=None if progress is None else (lambda d, o, k=k: progress(k, d, o)),
                                    pool=pool, workers=workers)
        # (the ReLU after layer k needs nothing: CROWN takes its bounds as the image of layer k's)
        lb = crown_bounds(net, lb.input_lower, lb.input_upper, alpha="optimized", known=lb.with_layer(k, lo, hi),
                          ball=lb.ball)
        if report is not None:
            info.update(layer=k, seconds=round(time.perf_counter() - t, 3), unstable_after=lb.unstable_counts(net))
            report.layers.append(info)
        if enough is not None and enough(lb):
            break
    return lb


def refine_layer(net: Network, lb: LayerBounds, k: int, deadline: float, domains: int = DOMAINS, batch: int = 1024,
                 gap: float = 0.02, progress=None, pool=None, workers: int = 1):
    """Refined (lower, upper) of layer k (an affine layer that feeds a ReLU) and a summary dict."""
    lo, hi = lb.lower[k].copy(), lb.upper[k].copy()
    unstable = np.flatnonzero((lo < 0) & (hi > 0))
    info = {"unstable": int(len(unstable)), "stabilised": 0, "domains": 0}
    if not len(unstable):
        return lo, hi, info
    prefix = Network(net.layers[:k + 1], input_shape=(1, net.input_size), output_shape=(1, net.layers[k].out_size))
    plb = lb.prefix(k)
    m = len(unstable)
    n_out = net.layers[k].out_size
    C = np.zeros((2 * m, n_out))
    C[np.arange(m), unstable] = 1.0
    C[m + np.arange(m), unstable] = -1.0
    if pool is None or workers < 2 or len(C) < 2 * _MIN_SHARE:
        bounds, count = _minimise(prefix, plb, C, deadline, domains, batch, gap, progress)
    else:
        # shuffled shares: the hard objectives (often neighbours in a layer) spread over the workers
        parts = max(1, min(workers, len(C) // _MIN_SHARE))
        shares = np.array_split(np.random.default_rng(k).permutation(len(C)), parts)
        left = deadline - time.perf_counter()  # perf_counter is per process: each worker gets seconds
        jobs = [(prefix, plb, C[rows], left, domains, batch, gap) for rows in shares]
        bounds, count = np.empty(len(C)), 0
        for rows, (b, n) in zip(shares, pool.map(_minimise_job, jobs)):
            bounds[rows] = b
            count += n
    info["domains"] = count
    new_lo = np.maximum(lo[unstable], bounds[:m])
    new_hi = np.minimum(hi[unstable], -bounds[m:])
    lo[unstable], hi[unstable] = new_lo, new_hi
    info["stabilised"] = int(np.sum((new_lo >= 0) | (new_hi <= 0)))
    return lo, hi, info


def _minimise(net: Network, lb: LayerBounds, C: np.ndarray, deadline: float, domains: int, batch: int,
              gap: float, progress=None):
    """Sound lower bounds on each row of C @ net(x) over lb's box by per-row branch and bound on ReLU
    phases; returns (bounds, domains bounded)."""
    sp = ReluSplitter(net, lb, [], check=None)
    nu, n = sp.n_unstable, len(C)
    zeros = np.zeros((n, nu), dtype=np.int8)
    alpha0 = np.tile(sp.alpha0, (n, 1))
    dc = np.zeros(n)
    best, alpha, beta, lam_x, saved = sp.bound(C, dc, zeros, alpha0, np.zeros_like(alpha0), 2 * sp.iterations)
    count = n
    primal = _corner_values(sp, C, np.arange(n), lam_x)
    scale = np.maximum(np.abs(primal), 1.0)
    closed = np.full(n, np.inf)  # the lowest bound among an objective's domains that were dropped as > 0
    spent = np.ones(n)
    frontier = Frontier(nu)
    frontier.push(row=np.arange(n), splits=zeros, alpha=alpha, beta=beta, bound=best,
                  branch=sp.branches(saved, zeros), depth=np.zeros(n),
                  free=np.full(n, nu))
    while frontier.size and time.perf_counter() < deadline:
        rows, bound = frontier.view("row"), frontier.view("bound")
        current = np.minimum(_min_by_row(bound, rows, n), closed)
        live = (current <= 0) & (primal - current > gap * scale) & (spent < domains)
        pick = _pick(rows, bound, frontier.view("free"), live, max(1, batch // 2))
        if not pick.any():
            break
        if progress is not None:
            progress(count, int(np.sum(live)))
        P = frontier.pop_where(pick)
        row, splits, a, b, depth = children(P)
        value, a, b, lam_x, saved = sp.bound(C[row], dc[row], splits, a, b, sp.iterations,
                                             floor=np.repeat(P["bound"], 2))
        count += len(row)
        np.add.at(spent, row, 2)
        primal = np.minimum(primal, _min_by_row(_corner_values(sp, C, row, lam_x), row, n))
        done = value > 0
        if np.any(done):
            np.minimum.at(closed, row[done], 0.0)
        keep = ~done
        if np.any(keep):
            frontier.push(row=row[keep], splits=splits[keep], alpha=a[keep], beta=b[keep], bound=value[keep],
                          branch=sp.branches(saved, splits)[keep],
                          depth=depth[keep],
                          free=np.count_nonzero(splits[keep] == 0, axis=1))
    lowest = np.minimum(_min_by_row(frontier.view("bound"), frontier.view("row"), n), closed)
    # every objective keeps a domain open or closed (its root is one of them); -inf would keep the old bound
    return np.where(np.isfinite(lowest), lowest, -np.inf), count


def _minimise_job(job):
    """`_minimise` in a worker process: the deadline comes as seconds left."""
    net, lb, C, seconds, domains, batch, gap = job
    return _minimise(net, lb, C, time.perf_counter() + seconds, domains, batch, gap)


def _min_by_row(values, rows, n):
    """Per objective 0..n-1, the least of the values whose row is it (inf where none)."""
    out = np.full(n, np.inf)
    np.minimum.at(out, rows, values)
    return out


def _corner_values(sp: ReluSplitter, C, rows, lam_x):
    """c.net(x) at each domain's minimising box corner: a concrete value, so an upper bound on the minimum."""
    ys = sp.net.forward(sp.corners(lam_x))
    return np.einsum("ij,ij->i", ys, C[rows])


def _pick(rows, bound, free, live, budget):
    """A mask of domains to split: the lowest few of every live objective (splittable ones only)."""
    ok = live[rows] & (free > 0)
    idx = np.flatnonzero(ok)
    if not len(idx):
        return np.zeros(len(rows), bool)
    n_live = len(np.unique(rows[idx]))
    per = max(1, budget // n_live)
    order = idx[np.lexsort((bound[idx], rows[idx]))]
    r = rows[order]
    start = np.r_[0, np.flatnonzero(np.diff(r)) + 1]
    rank = np.arange(len(order)) - np.repeat(start, np.diff(np.r_[start, len(order)]))
    mask = np.zeros(len(rows), bool)
    mask[order[rank < per]] = True
    return mask
