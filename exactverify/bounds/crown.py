"""CROWN and alpha-CROWN: sound per-layer bounds over an input box by backward linear relaxation.

`interval_bounds` (IBP, bounds/interval.py) and `crown_bounds` (here) return a
`LayerBounds`: for every layer of the network, elementwise lower and upper
bounds on that layer's output, valid for every input in the box. These are the
big-M constants of the MILP, so they must hold in exact arithmetic: every bound
computed in floating point is padded outward by more than the rounding error
it could carry (`pad`).
"""

from __future__ import annotations

import numpy as np

from ..core.network import Affine, MaxGroups, Network, ReLU
from .interval import affine_interval, interval_bounds, propagate_interval
from .layer_bounds import LayerBounds
from .norm_ball import NormBall, padded_minimum
from .optimiser import Adam
from .padding import magnitude, padding_terms, round_up


def crown_bounds(network: Network, lower, upper, alpha="adaptive", known: LayerBounds | None = None,
                 iterations: int = 20, ball: NormBall | None = None) -> LayerBounds:
    """CROWN bounds (Zhang et al. 2018), never looser than IBP.

    Layer by layer: the output bounds of an affine layer come from a backward
    pass that relaxes every earlier ReLU and MaxGroups layer linearly, using the
    bounds on that layer's input, which are final by then. ReLU and MaxGroups
    outputs take the interval image of their final input bounds (both are
    monotone, so that image is exact and there is nothing left to gain).
    Every layer is also intersected with IBP (both plain IBP and IBP from the
    tightened previous layer): an intersection of sound bounds is sound.

    alpha, the lower slope of unstable ReLUs: "adaptive" (1 where u >= -l,
    else 0: CROWN-Ada), a number in [0, 1], or "optimized" (alpha-CROWN: after
    the adaptive pass, projected gradient ascent on per-bound slopes for every
    output neuron and every intermediate neuron still unstable; 3-50x slower,
    and markedly tighter on deep networks).

    known: sound bounds already established over the same box (e.g. by LP
    tightening); every layer is intersected with them before the layers above
    are relaxed, so their gain carries upward.

    iterations: the gradient steps per layer when alpha is "optimized".

    ball: an L1 or L2 ball; the bounds then hold over the box intersected with it (each backward
    pass is concretised over that set, bounds/norm_ball.py), and the result carries it.
    """
    _check_alpha(alpha)
    if not (np.all(np.isfinite(lower)) and np.all(np.isfinite(upper))):
        raise ValueError("CROWN bounds need a finite input box")
    ibp = interval_bounds(network, lower, upper)
    out = LayerBounds(ibp.input_lower, ibp.input_upper, method="crown", ball=ball)
    steps = []  # steps[j]: the backward relaxation of layer j
    for k, layer in enumerate(network.layers):
        pre_lo, pre_hi = out.pre_activation(k)
        lo, hi = propagate_interval(layer, pre_lo, pre_hi)
        lo, hi = np.maximum(lo, ibp.lower[k]), np.minimum(hi, ibp.upper[k])
        if known is not None:
            lo, hi = np.maximum(lo, known.lower[k]), np.minimum(hi, known.upper[k])
        if isinstance(layer, Affine) and k > 0:
            feeds_relu = k + 1 < len(network.layers) and isinstance(network.layers[k + 1], ReLU)
            lo, hi = _crown_affine(layer, steps[::-1], out.input_lower, out.input_upper, lo, hi, alpha, feeds_relu,
                                   iterations, ball)
        out.lower.append(lo)
        out.upper.append(hi)
        steps.append(_relax(layer, pre_lo, pre_hi, alpha))
    return out


def _crown_affine(layer: Affine, steps, in_lo, in_hi, lo, hi, alpha, feeds_relu: bool, iterations: int = 20,
                  ball: NormBall | None = None):
    """[lo, hi] intersected with CROWN bounds on the output W y + b of `layer`;
    steps: the relaxations of the layers below it, top down."""
    # both bounds at once, as lower bounds of [W; -W] y + [b; -b]
    w = layer.dense_weight()
    lam, const = np.vstack([w, -w]), np.concatenate([layer.bias, -layer.bias])
    n = layer.out_size
    low = _lower_bound(steps, lam, const, in_lo, in_hi, ball=ball)
    lo, hi = np.maximum(lo, low[:n]), np.minimum(hi, -low[n:])
    if alpha == "optimized":
        # Slopes are optimised per bound, so optimise only the bounds that can still
        # matter: a ReLU's input bounds matter while the neuron is unstable.
        rows = np.flatnonzero((lo < 0) & (hi > 0)) if feeds_relu else np.arange(n)
        if len(rows):
            both = np.concatenate([rows, rows + n])
            low = _lower_bound(steps, lam[both], const[both], in_lo, in_hi, "optimized", iterations, ball)
            lo[rows] = np.maximum(lo[rows], low[:len(rows)])
            hi[rows] = np.minimum(hi[rows], -low[len(rows):])
    return lo, hi


def linear_objective_bounds(network: Network, layer_bounds: LayerBounds, c, d=0.0, alpha="adaptive"):
    """Sound bounds on c @ f(x) + d over the input box of `layer_bounds`.

    c has shape (m, n_outputs) (one row is also accepted), d shape (m,) or a
    scalar. One CROWN backward pass from the objective through the whole
    network, relaxing each nonlinear layer with the intermediate bounds in
    `layer_bounds` (CROWN or IBP ones; over its ball too, if it has one), then intersected with the interval
    image of the output box. Returns (lower, upper), each of shape (m,).
    A disjunct A y <= b is infeasible when some row of
    linear_objective_bounds(net, lb, A, -b)[0] is > 0.
    """
    _check_alpha(alpha)
    c = np.atleast_2d(np.asarray(c, dtype=np.float64))
    m = c.shape[0]
    d = np.broadcast_to(np.asarray(d, dtype=np.float64), (m,))
    if c.shape[1] != network.output_size:
        raise ValueError(f"objective has {c.shape[1]} columns but the network has {network.output_size} outputs")
    if len(layer_bounds.lower) != len(network.layers):
        raise ValueError("layer_bounds were computed for a different network")
    steps = [_relax(layer, *layer_bounds.pre_activation(j), alpha) for j, layer in enumerate(network.layers)]
    low = _lower_bound(steps[::-1], np.vstack([c, -c]), np.concatenate([d, -d]),
                       layer_bounds.input_lower, layer_bounds.input_upper, alpha, ball=layer_bounds.ball)
    box_lo, box_hi = affine_interval(Affine(c, d.copy()), layer_bounds.lower[-1], layer_bounds.upper[-1])
    return np.maximum(low[:m], box_lo), np.minimum(-low[m:], box_hi)


def compute_bounds(network: Network, lower, upper, method: str = "crown", alpha="adaptive") -> LayerBounds:
    """Bounds by the named method: "interval" (IBP) or "crown"."""
    if method == "interval":
        return interval_bounds(network, lower, upper)
    if method == "crown":
        return crown_bounds(network, lower, upper, alpha=alpha)
    raise ValueError(f"unknown bounds method {method!r} (interval, crown)")


# ---------------------------------------------------------------------------
# CROWN internals
#
# A backward pass holds a linear lower bound  spec(x) >= lam @ y_j + const  on
# the output y_j of layer j, for every x in the box, and steps it down to the
# layer's input (each `*Step.back`) until it reaches the input box, where it is
# concretised. Every bound is a *lower* bound of the rows of lam; an upper
# bound of a spec is minus the lower bound of its negation, so callers stack
# [A; -A] and do a single pass.
#
# Floating-point soundness. Everything is float64 and rounds, so the float
# lam, const are not exactly what exact arithmetic would give. Read the pass as
# a chain of exact inequalities about the float matrices we actually hold:
#
# - affine step: lam @ y_j = fl(lam @ W) @ y_{j-1} + E  with
#   |E| <= gamma_n (|lam| @ |W|) @ |y_{j-1}|  (the classical dot-product bound,
#   valid for any summation order, BLAS or sparse), and const + lam @ b rounds by
#   at most gamma_n (|lam| @ |b| + |const|);
# - ReLU step: the relaxation lines are sound as stored (the upper line's slope
#   and intercept are rounded up, `round_up`), and the products lam * slope and
#   lam^- @ intercept round by at most gamma_n |lam| @ (2 |z|), since
#   slope <= 1 and intercept <= |l| (to a few ulps) <= |z|max;
# - MaxGroups step: the scatter of columns sums at most n terms, and
#   lam^- @ upper rounds by gamma_n |lam| @ |upper|;
# - concretisation: lam^+ @ lo + lam^- @ hi + const rounds by at most
#   gamma_n (|lam| @ max(|lo|, |hi|) + |const|).
#
# So with  mag = sum over steps of (|lam| @ v_j + |const|) + the concretisation
# term, where v_j bounds |W| |y_{j-1}| + |b| (affine) or 2 |layer input|
# (ReLU, MaxGroups) using the layer's sound input bounds, the exact error of the
# computed bound is at most gamma_N mag, with N the largest inner dimension
# plus 2. `pad` widens by (terms + 4) * eps * mag = 2 (terms + 4) u mag with
# terms = N + 2 * depth + 8: that covers gamma_N mag twice over, which also
# absorbs the relative error (about (2N + depth) u) of computing mag itself in
# floating point (nonnegative sums only). mag also bounds |bound| itself, so the
# slack is many ulps of the bound and the final subtraction cannot round it
# back inside. Underflow adds at most ~1e-308 per operation; pad's 1e-300
# absolute term covers that.
# ---------------------------------------------------------------------------


def _check_alpha(alpha):
    if alpha in ("adaptive", "optimized"):
        return
    if isinstance(alpha, (int, float)) and 0.0 <= alpha <= 1.0:
        return
    raise ValueError(f"alpha must be 'adaptive', 'optimized' or a number in [0, 1], not {alpha!r}")


def _relax(layer, lo: np.ndarray, hi: np.ndarray, alpha):
    """The backward step of `layer`, given sound bounds [lo, hi] on its input."""
    if isinstance(layer, Affine):
        return AffineStep(layer, lo, hi)
    if isinstance(layer, ReLU):
        return ReluStep(lo, hi, alpha)
    if isinstance(layer, MaxGroups):
        return MaxStep(layer, lo, hi)
    raise TypeError(f"unknown layer type {type(layer).__name__}")


class AffineStep:
    """y = W x + b: the backward step is exact, lam @ y = (lam @ W) @ x + lam @ b."""

    def __init__(self, layer: Affine, lo, hi):
        self.weight = layer.weight
        self.weight_t = layer.weight.T.tocsr() if layer.is_sparse else None
        self.bias = layer.bias
        self.width = max(layer.in_size, layer.out_size)
        self.scale = np.asarray(abs(layer.weight) @ magnitude(lo, hi)).ravel() + np.abs(layer.bias)

    def back(self, lam, const, alpha=None):
        """(lam @ W, const + lam @ b): the bound's coefficients on this layer's input."""
        const = const + lam @ self.bias
        if self.weight_t is None:
            return lam @ self.weight, const
        return np.ascontiguousarray((self.weight_t @ lam.T).T), const

    def grad(self, lam, g, alpha=None):
        """d(bound)/d(lam) from d(bound)/d(next lam) = g; the bound depends on const with slope 1."""
        g_prev = g @ self.weight.T if self.weight_t is None else np.asarray((self.weight @ g.T).T)
        return g_prev + self.bias, None


class ReluStep:
    """y = max(z, 0), z in [l, u]. Active (l >= 0): y = z. Inactive (u <= 0): y = 0.
    Unstable: alpha z <= y <= s (z - l) with s = u / (u - l); lam >= 0 takes the lower
    line, lam < 0 the upper one."""

    def __init__(self, lo, hi, alpha):
        self.width = len(lo)
        self.unstable = np.flatnonzero((lo < 0) & (hi > 0))
        self.stable_slope = (lo >= 0).astype(np.float64)  # unstable columns are overwritten in `back`
        l, u = lo[self.unstable], hi[self.unstable]
        # The upper line s z + t is valid for any s >= u / (u - l) and t >= -s l (it is then
        # above the ReLU at both ends of [l, u]), so round both up. The exact slope is < 1:
        # capping at 1 keeps it sound, and 1 is also the fallback if u - l overflows.
        with np.errstate(over="ignore"):
            width = u - l
        self.upper_slope = np.where(np.isfinite(width), np.minimum(round_up(u / width), 1.0), 1.0)
        self.upper_intercept = round_up(self.upper_slope * -l)
        if alpha in ("adaptive", "optimized"):
            self.alpha = (u >= -l).astype(np.float64)
        else:
            self.alpha = np.full(len(l), float(alpha))
        with np.errstate(over="ignore"):  # an infinite scale only makes the padding vacuous
            self.scale = 2.0 * magnitude(lo, hi)

    def back(self, lam, const, alpha=None):
        """alpha: per-row lower slopes (m, n_unstable) overriding the default ones."""
        u = self.unstable
        new = lam * self.stable_slope
        if len(u):
            sub = lam[:, u]
            a = self.alpha if alpha is None else alpha
            new[:, u] = np.where(sub >= 0, sub * a, sub * self.upper_slope)
            const = const + np.minimum(sub, 0.0) @ self.upper_intercept
        return new, const

    def grad(self, lam, g, alpha=None):
        """d(bound)/d(lam) from d(bound)/d(next lam) = g, and d(bound)/d(alpha) for the unstable columns."""
        u = self.unstable
        g_prev = g * self.stable_slope
        if not len(u):
            return g_prev, None
        sub, gu = lam[:, u], g[:, u]
        a = self.alpha if alpha is None else alpha
        pos = sub >= 0
        g_prev[:, u] = np.where(pos, gu * a, gu * self.upper_slope + self.upper_intercept)
        return g_prev, np.where(pos, gu * sub, 0.0)


class MaxStep:
    """y_k = max of its members. Lower line: y_k >= x_j* for the member j* with the
    largest lower bound. Upper: y_k = x_j* exactly when l_j* >= every other member's
    upper bound, else the constant max of the members' upper bounds."""

    def __init__(self, layer: MaxGroups, lo, hi):
        import scipy.sparse as sp
        valid = layer.groups >= 0
        idx = np.where(valid, layer.groups, 0)
        lo_m = np.where(valid, lo[idx], -np.inf)
        hi_m = np.where(valid, hi[idx], -np.inf)
        rows = np.arange(layer.out_size)
        best = np.argmax(lo_m, axis=1)
        others = hi_m.copy()
        others[rows, best] = -np.inf
        self.exact = lo_m[rows, best] >= others.max(axis=1)
        self.upper = np.where(self.exact, 0.0, hi_m.max(axis=1))
        # select_t[j, k] = 1 where j = j*(k): column scatter as a sparse product
        self.select_t = sp.csr_matrix((np.ones(layer.out_size), (idx[rows, best], rows)),
                                      shape=(layer.in_size, layer.out_size))
        self.width = max(layer.in_size, layer.out_size)
        mag = magnitude(lo, hi)
        self.scale = 2.0 * np.where(valid, mag[idx], 0.0).max(axis=1)

    def back(self, lam, const, alpha=None):
        """lam's columns moved to each group's chosen member (its upper constant where lam < 0 and the max is not exact)."""
        take = (lam >= 0) | self.exact
        const = const + np.where(take, 0.0, lam) @ self.upper
        new = np.asarray(self.select_t @ np.where(take, lam, 0.0).T).T
        return np.ascontiguousarray(new), const

    def grad(self, lam, g, alpha=None):
        """d(bound)/d(lam) from d(bound)/d(next lam) = g (no slopes to optimise here)."""
        take = (lam >= 0) | self.exact
        g_take = np.asarray(self.select_t.T @ g.T).T
        return np.where(take, g_take, self.upper), None


def _lower_bound(steps, lam, const, in_lo, in_hi, alpha="adaptive", iterations: int = 20, ball=None):
    """Sound lower bounds on the rows of lam @ y + const, y the output of the
    layer whose backward step is steps[0] (steps run from the top down), over the box (and ball)."""
    if alpha == "optimized" and any(isinstance(s, ReluStep) and len(s.unstable) for s in steps):
        return _optimized_lower_bound(steps, lam, const, in_lo, in_hi, iterations, ball=ball)
    return _backward(steps, lam, const, in_lo, in_hi, ball=ball)[0]


def _backward(steps, lam, const, in_lo, in_hi, alphas=None, want_grad=False, ball=None):
    """One backward pass. alphas: {step index: (m, n_unstable) lower slopes}.
    Returns (padded lower bounds, {step index: d(bound)/d(alpha)} or None)."""
    alphas = alphas or {}
    mag = np.zeros(lam.shape[0])
    seen = []
    for i, step in enumerate(steps):
        mag += np.abs(lam) @ step.scale + np.abs(const)
        if want_grad:
            seen.append(lam)
        lam, const = step.back(lam, const, alphas.get(i))
    value, point = padded_minimum(lam, const, in_lo, in_hi, ball, mag,
                                  padding_terms([len(in_lo)] + [s.width for s in steps], len(steps)))
    if not want_grad:
        return value, None
    grads = {}
    g = point
    for i in range(len(steps) - 1, -1, -1):
        if not any(j <= i for j in alphas):
            break  # nothing left to differentiate above this point
        g, g_alpha = steps[i].grad(seen[i], g, alphas.get(i))
        if i in alphas:
            grads[i] = g_alpha
    return value, grads


def _optimized_lower_bound(steps, lam, const, in_lo, in_hi, iterations: int = 20, lr: float = 0.25, ball=None):
    """alpha-CROWN: projected gradient ascent (Adam) on per-row lower slopes of
    the unstable ReLUs, from the adaptive slopes. Any slopes in [0, 1] give a
    sound bound, so the best padded bound seen for each row is returned."""
    m = lam.shape[0]
    alphas = {i: np.tile(s.alpha, (m, 1)) for i, s in enumerate(steps)
              if isinstance(s, ReluStep) and len(s.unstable)}
    adam = Adam()
    best = None
    for _ in range(iterations):
        value, grads = _backward(steps, lam, const, in_lo, in_hi, alphas, want_grad=True, ball=ball)
        best = value if best is None else np.maximum(best, value)
        for i, g in grads.items():
            # lr scales Adam's quotient, not its numerator as in relu_split: the two round differently,
            # and the slopes (so the bounds) stay bit-identical this way; Adam's lr=1 multiplies exactly
            alphas[i] = np.clip(alphas[i] + lr * adam.step(i, g), 0.0, 1.0)
    value, _ = _backward(steps, lam, const, in_lo, in_hi, alphas, ball=ball)
    return np.maximum(best, value)
