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

from .check import Counterexample, check_point
from .network import Affine, MaxGroups, Network, ReLU


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
    y, cache = forward_with_cache(network, x)
    slack = y @ A.T - b  # (batch, m)
    worst = slack.argmax(1)
    viol = slack[np.arange(len(x)), worst]
    grad = input_gradient(network, cache, A[worst])
    return viol, grad


def pgd_attack(network: Network, prop, time_budget: float = 1.0, restarts: int = 64, steps: int = 60,
               seed: int = 0, deadline: float | None = None) -> Counterexample | None:
    """Search every case and disjunct for a counterexample that re-checks; None if none was found."""
    rng = np.random.default_rng(seed)
    end = time.perf_counter() + time_budget
    if deadline is not None:
        end = min(end, deadline)
    jobs = [(ci, di) for ci, case in enumerate(prop.cases) for di in range(len(case.disjuncts))]
    round_ = 0
    while time.perf_counter() < end:
        for ci, di in jobs:
            if time.perf_counter() >= end:
                break
            ce = _attack_one(network, prop, ci, di, restarts, steps, rng, end, first_round=round_ == 0)
            if ce is not None:
                return ce
        round_ += 1
        if round_ >= 8:
            break
    return None


def _attack_one(network, prop, ci, di, restarts, steps, rng, end, first_round):
    case = prop.cases[ci]
    d = case.disjuncts[di]
    lo, hi = case.lower, case.upper
    width = hi - lo
    x = lo + rng.random((restarts, len(lo))) * width
    if first_round:  # the centre and the corners closest to the gradient are cheap good guesses
        x[0] = (lo + hi) / 2
    if len(d.b) == 0:
        return check_point(network, prop, x[0], ci)
    step = 0.25 * width
    best_x, best_v = None, np.inf
    for t in range(steps):
        viol, grad = violation_and_gradient(network, x, d.A, d.b)
        k = int(viol.argmin())
        if viol[k] < best_v:
            best_v, best_x = viol[k], x[k].copy()
        if best_v <= 0:
            ce = check_point(network, prop, best_x, ci)
            if ce is not None:
                return ce
            best_v = np.inf  # a point on the boundary that did not re-check: push on
        x = np.clip(x - step * np.sign(grad), lo, hi)
        if (t + 1) % 10 == 0:
            step = step * 0.5
            if time.perf_counter() >= end:
                break
    if best_x is not None and best_v <= 1e-9 * (1 + np.abs(d.b).max()):
        return check_point(network, prop, best_x, ci)
    return None
