"""Falsification: projected gradient descent on the property's violation, in plain numpy.

For an output disjunct A y <= b the violation max_i (A_i f(x) - b_i) is <= 0
exactly at counterexamples; we minimise it over the input box from many random
starts at once (a batch), with signed-gradient steps (the L-inf geometry of a box)
and a shrinking step size. Attacks only ever *propose* points: a `sat` verdict
still needs `check.check_point` to accept one.
"""

from __future__ import annotations

import time

import numpy as np

from ..core.check import Counterexample, check_point
from ..core.network import Affine, MaxGroups, Network, ReLU


def forward_with_cache(network: Network, x: np.ndarray):
    """Forward pass of a batch that keeps what the backward pass needs."""
    cache = []
    h = x
    for layer in network.layers:
        if isinstance(layer, ReLU):
            cache.append(h > 0)
        elif isinstance(layer, MaxGroups):
            idx = np.where(layer.groups >= 0, layer.groups, 0)
            vals = np.where(layer.groups[None] >= 0, h[:, idx], -np.inf)
            cache.append(np.take_along_axis(idx[None].repeat(len(h), 0), vals.argmax(2)[..., None], 2)[..., 0])
        else:
            cache.append(None)
        h = layer.apply(h)
    return h, cache


def input_gradient(network: Network, cache, grad_out: np.ndarray) -> np.ndarray:
    """Back-propagate d(objective)/d(output) of a batch to the inputs."""
    g = grad_out
    for layer, c in zip(reversed(network.layers), reversed(cache)):
        if isinstance(layer, Affine):
            g = np.asarray((layer.weight.T @ g.T).T)
        elif isinstance(layer, ReLU):
            g = g * c
        else:  # MaxGroups: the gradient flows to the winning member of each group
            gin = np.zeros((g.shape[0], layer.in_size))
            rows = np.arange(g.shape[0])[:, None]
            np.add.at(gin, (rows, c), g)
            g = gin
    return g


def violation_and_gradient(network: Network, x: np.ndarray, A: np.ndarray, b: np.ndarray):
    """The violation max_i (A_i f(x) - b_i) of each point of a batch x, and its input gradient (the worst row's)."""
    y, cache = forward_with_cache(network, x)
    slack = y @ A.T - b  # (batch, m)
    worst = slack.argmax(1)
    viol = slack[np.arange(len(x)), worst]
    grad = input_gradient(network, cache, A[worst])
    return viol, grad


def pgd_attack(network: Network, prop, time_budget: float = 1.0, restarts: int = 64, steps: int = 60,
               seed: int = 0, deadline: float | None = None) -> Counterexample | None:
    """Search every case for a counterexample that re-checks; None if none was found.

    Each case's disjuncts are attacked jointly: every start descends the
    violation of whichever disjunct it is currently closest to meeting (for a
    robustness property: whichever other class is closest to winning). On the
    MNIST-FC properties this finds in milliseconds counterexamples that one
    attack per disjunct missed in 10 s. Rounds alternate the schedule: large
    steps from random corners (full-width signed steps, as FGSM) and smaller
    steps from uniform starts.
    """
    rng = np.random.default_rng(seed)
    end = time.perf_counter() + time_budget
    if deadline is not None:
        end = min(end, deadline)
    for round_ in range(8):
        for ci in range(len(prop.cases)):
            if time.perf_counter() >= end:
                return None
            ce = _attack_case(network, prop, ci, restarts, steps, rng, end, round_)
            if ce is not None:
                return ce
    return None


_SCHEDULES = (  # (initial step as a share of the box width, steps between halvings, start)
    (1.0, 15, "corners"),
    (0.25, 20, "uniform"),
)


def _attack_case(network, prop, ci, restarts, steps, rng, end, round_):
    case = prop.cases[ci]
    lo, hi = case.lower, case.upper
    width = hi - lo
    ds = case.disjuncts
    if any(len(d.b) == 0 for d in ds):  # a disjunct with no output constraint: any point of the case
        return check_point(network, prop, (lo + hi) / 2, ci)
    rows = np.vstack([d.A for d in ds])
    rhs = np.concatenate([d.b for d in ds])
    starts = np.cumsum([0] + [len(d.b) for d in ds[:-1]])
    step0, halve_every, init = _SCHEDULES[round_ % len(_SCHEDULES)]
    if init == "corners":
        x = np.where(rng.random((restarts, len(lo))) < 0.5, lo, hi)
    else:
        x = lo + rng.random((restarts, len(lo))) * width
    if round_ == 0:
        x[0] = (lo + hi) / 2
    step = step0 * width
    tol = 1e-9 * (1 + np.abs(rhs).max())
    best_x, best_v = None, np.inf
    for t in range(steps):
        y, cache = forward_with_cache(network, x)
        slack = y @ rows.T - rhs  # (batch, all rows)
        per_disjunct = np.maximum.reduceat(slack, starts, axis=1)  # violation of each disjunct
        closest = per_disjunct.argmin(1)
        viol = per_disjunct[np.arange(len(x)), closest]
        k = int(viol.argmin())
        if viol[k] < best_v:
            best_v, best_x = viol[k], x[k].copy()
        if best_v <= 0:
            ce = check_point(network, prop, best_x, ci)
            if ce is not None:
                return ce
            best_v = np.inf  # a point on the boundary that did not re-check: push on
        # the gradient of each start's closest disjunct: its worst row
        masked = np.full_like(slack, -np.inf)
        for j, (a, n) in enumerate(zip(starts, [len(d.b) for d in ds])):
            sel = closest == j
            masked[sel, a:a + n] = slack[sel, a:a + n]
        grad = input_gradient(network, cache, rows[masked.argmax(1)])
        x = np.clip(x - step * np.sign(grad), lo, hi)
        if (t + 1) % halve_every == 0:
            step = step * 0.5
            if time.perf_counter() >= end:
                break
    if best_x is not None and best_v <= tol:
        return check_point(network, prop, best_x, ci)
    return None


def local_descent(network: Network, prop, ci: int, d, x0: np.ndarray, rng, steps: int = 30):
    """Small signed-gradient steps on the disjunct's violation from x0 and tiny perturbations of it
    (the verifier's polish of MILP solutions that failed the re-check); only a re-checked point is returned."""
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
