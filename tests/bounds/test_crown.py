"""Soundness and tightness of IBP and CROWN bounds (exactverify.bounds.crown)."""

from fractions import Fraction

import numpy as np
import pytest
import scipy.sparse as sp

from exactverify.bounds import crown as bounds
from exactverify.bounds.crown import crown_bounds, linear_objective_bounds
from exactverify.bounds.interval import interval_bounds
from exactverify.core.network import Affine, MaxGroups, Network, ReLU
from exactverify.testing import random_network


# --- networks and boxes --------------------------------------------------------------------------

def sparse_network(seed=0):
    """Random layers whose weights are scipy CSR (conv-like: most entries zero)."""
    rng = np.random.default_rng(seed)
    sizes = [12, 30, 24, 5]
    layers = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        w = rng.standard_normal((n_out, n_in)) * (rng.random((n_out, n_in)) < 0.3) / np.sqrt(0.3 * n_in)
        w = w.astype(np.float32).astype(np.float64)
        layers.append(Affine(sp.csr_matrix(w), rng.standard_normal(n_out) * 0.1))
        if i < len(sizes) - 2:
            layers.append(ReLU(n_out))
    return Network(layers).validate()


def maxpool_network(seed=0):
    """Affine -> ReLU -> MaxGroups (overlapping, ragged groups) twice, then Affine."""
    rng = np.random.default_rng(seed)

    def affine(n_in, n_out):
        return Affine(rng.standard_normal((n_out, n_in)) / np.sqrt(n_in), rng.standard_normal(n_out) * 0.1)

    def pool(n_in, n_out, k):
        groups = np.stack([rng.choice(n_in, size=k, replace=False) for _ in range(n_out)])
        groups[::3, -1] = -1  # ragged groups, padded with -1
        groups[1, 1:] = -1  # a one-member group is exact
        return MaxGroups(groups.astype(np.int64), n_in)

    layers = [affine(6, 20), ReLU(20), pool(20, 12, 3), affine(12, 16), ReLU(16), pool(16, 8, 4), affine(8, 3)]
    return Network(layers).validate()


NETWORKS = {
    "acas-like": lambda: random_network([5, 50, 50, 50, 50, 50, 50, 5], seed=0),
    "small-deep": lambda: random_network([3, 10, 10, 10, 10, 2], seed=1),
    "wide-shallow": lambda: random_network([8, 64, 4], seed=2),
    "output-relu": lambda: random_network([4, 20, 20, 3], seed=3, output_relu=True),
    "scaled": lambda: random_network([6, 30, 30, 30, 4], seed=4, scale=2.0),
    "mnist-like": lambda: random_network([784, 64, 64, 10], seed=5),
    "sparse": lambda: sparse_network(6),
    "maxpool": lambda: maxpool_network(7),
}


def box(n, seed, width):
    rng = np.random.default_rng(seed)
    centre = rng.uniform(-1, 1, n)
    return centre - width / 2, centre + width / 2


def box_points(lo, hi, n_random=3000, seed=0):
    """Uniform points, random corners and, in low dimension, every corner of the box."""
    rng = np.random.default_rng(seed)
    n = len(lo)
    pts = [rng.uniform(lo, hi, (n_random, n)), np.where(rng.random((n_random, n)) < 0.5, lo, hi), lo[None], hi[None]]
    if n <= 8:
        bits = (np.arange(2 ** n)[:, None] >> np.arange(n)) & 1
        pts.append(np.where(bits == 1, hi, lo))
    return np.vstack(pts)


def layer_outputs(net, x):
    outs = []
    for layer in net.layers:
        x = layer.apply(x)
        outs.append(x)
    return outs


CASES = [(name, width) for name in NETWORKS for width in (0.05, 0.5)]


# --- soundness on samples -------------------------------------------------------------------------

@pytest.mark.parametrize("name,width", CASES)
def test_every_layer_contains_samples(name, width):
    net = NETWORKS[name]()
    lo, hi = box(net.input_size, 11, width)
    x = box_points(lo, hi)
    outs = layer_outputs(net, x)
    for lb in (interval_bounds(net, lo, hi), crown_bounds(net, lo, hi), crown_bounds(net, lo, hi, alpha="optimized"),
               crown_bounds(net, lo, hi, alpha="optimized", iterations=3),
               crown_bounds(net, lo, hi, alpha=0.0), crown_bounds(net, lo, hi, alpha=0.7)):
        assert len(lb.lower) == len(net.layers)
        for k, y in enumerate(outs):
            assert np.all(y >= lb.lower[k]), (lb.method, k)
            assert np.all(y <= lb.upper[k]), (lb.method, k)


@pytest.mark.parametrize("name,width", CASES)
def test_crown_never_looser_than_ibp(name, width):
    net = NETWORKS[name]()
    lo, hi = box(net.input_size, 12, width)
    ib, cb = interval_bounds(net, lo, hi), crown_bounds(net, lo, hi)
    assert cb.method == "crown"
    for k in range(len(net.layers)):
        assert np.all(cb.lower[k] >= ib.lower[k]) and np.all(cb.upper[k] <= ib.upper[k]), k
    assert all(c <= i for c, i in zip(cb.unstable_counts(net), ib.unstable_counts(net)))


@pytest.mark.parametrize("name", ["acas-like", "small-deep", "scaled", "mnist-like", "sparse", "maxpool"])
def test_crown_strictly_tighter_on_deep_networks(name):
    net = NETWORKS[name]()
    lo, hi = box(net.input_size, 13, 0.1)
    ib, cb = interval_bounds(net, lo, hi), crown_bounds(net, lo, hi)
    ib_width = ib.upper[-1] - ib.lower[-1]
    cb_width = cb.upper[-1] - cb.lower[-1]
    assert np.all(cb_width < ib_width)
    assert cb_width.sum() < 0.8 * ib_width.sum()


def test_crown_removes_unstable_neurons_on_acas_sized_network():
    net = NETWORKS["acas-like"]()
    lo, hi = box(5, 14, 0.05)
    ib, cb = interval_bounds(net, lo, hi), crown_bounds(net, lo, hi)
    assert sum(cb.unstable_counts(net)) < 0.5 * sum(ib.unstable_counts(net))


def test_optimized_alpha_tightens_deep_networks():
    net = NETWORKS["acas-like"]()
    lo, hi = box(5, 15, 0.2)
    ada, opt = crown_bounds(net, lo, hi), crown_bounds(net, lo, hi, alpha="optimized")
    assert np.sum(opt.upper[-1] - opt.lower[-1]) < 0.9 * np.sum(ada.upper[-1] - ada.lower[-1])
    assert sum(opt.unstable_counts(net)) < sum(ada.unstable_counts(net))


def test_more_alpha_iterations_tighten():
    """The steps are a prefix of the longer run's and the best iterate is kept: 20 steps are no looser than 2
    on the first ReLU layer's input, and tighter at the output."""
    net = NETWORKS["acas-like"]()
    lo, hi = box(5, 15, 0.2)
    few, many = crown_bounds(net, lo, hi, alpha="optimized", iterations=2), crown_bounds(net, lo, hi, alpha="optimized")
    assert np.all(many.lower[2] >= few.lower[2]) and np.all(many.upper[2] <= few.upper[2])
    assert np.sum(many.upper[-1] - many.lower[-1]) < np.sum(few.upper[-1] - few.lower[-1])


def test_optimized_objective_never_looser_than_adaptive_with_the_same_layer_bounds():
    # the ascent starts from the adaptive slopes and keeps the best bound seen
    net = NETWORKS["scaled"]()
    lo, hi = box(6, 25, 0.2)
    lb = crown_bounds(net, lo, hi)
    c = np.random.default_rng(26).standard_normal((5, 4))
    ada_lo, ada_hi = linear_objective_bounds(net, lb, c)
    opt_lo, opt_hi = linear_objective_bounds(net, lb, c, alpha="optimized")
    tol = 1e-12 * (1 + np.abs(ada_lo) + np.abs(ada_hi))
    assert np.all(opt_lo >= ada_lo - tol) and np.all(opt_hi <= ada_hi + tol)
    assert np.sum(opt_hi - opt_lo) < np.sum(ada_hi - ada_lo)


def test_sparse_weights_give_the_same_bounds_as_dense():
    net = sparse_network(8)
    dense = Network([Affine(l.dense_weight().copy(), l.bias) if isinstance(l, Affine) else l for l in net.layers])
    lo, hi = box(net.input_size, 16, 0.3)
    a, b = crown_bounds(net, lo, hi), crown_bounds(dense, lo, hi)
    for k in range(len(net.layers)):
        np.testing.assert_allclose(a.lower[k], b.lower[k], rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(a.upper[k], b.upper[k], rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("name", ["acas-like", "output-relu", "maxpool", "sparse"])
def test_degenerate_box_is_tight_around_the_forward_value(name):
    net = NETWORKS[name]()
    x = np.random.default_rng(17).uniform(-1, 1, net.input_size)
    lb = crown_bounds(net, x, x)
    for k, y in enumerate(layer_outputs(net, x[None])):
        y = y[0]
        assert np.all(lb.lower[k] <= y) and np.all(y <= lb.upper[k]), k
        assert np.all(lb.upper[k] - lb.lower[k] <= 1e-9 * (1 + np.abs(y))), k
    assert sum(lb.unstable_counts(net)) == 0


# --- linear objectives ------------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(NETWORKS))
@pytest.mark.parametrize("alpha", ["adaptive", "optimized"])
def test_linear_objective_bounds_sound_and_tighter_than_output_box(name, alpha):
    net = NETWORKS[name]()
    lo, hi = box(net.input_size, 18, 0.1)
    rng = np.random.default_rng(19)
    c = rng.standard_normal((6, net.output_size))
    d = rng.standard_normal(6)
    lb = crown_bounds(net, lo, hi)
    obj_lo, obj_hi = linear_objective_bounds(net, lb, c, d, alpha=alpha)
    assert obj_lo.shape == obj_hi.shape == (6,)
    values = net.forward(box_points(lo, hi)) @ c.T + d
    assert np.all(values >= obj_lo) and np.all(values <= obj_hi)
    # the interval image of the output box: c^+ hi + c^- lo
    box_lo = np.maximum(c, 0) @ lb.lower[-1] + np.minimum(c, 0) @ lb.upper[-1] + d
    box_hi = np.maximum(c, 0) @ lb.upper[-1] + np.minimum(c, 0) @ lb.lower[-1] + d
    slack = 1e-12 * (np.abs(c) @ np.maximum(np.abs(lb.lower[-1]), np.abs(lb.upper[-1])) + np.abs(d))
    assert np.all(obj_lo >= box_lo - slack) and np.all(obj_hi <= box_hi + slack)


def test_linear_objective_is_strictly_tighter_for_output_differences():
    # y_i - y_j correlate strongly; bounding the difference directly beats the box
    net = NETWORKS["acas-like"]()
    lo, hi = box(5, 20, 0.1)
    lb = crown_bounds(net, lo, hi)
    c = np.array([[1.0, -1, 0, 0, 0], [0, 1, -1, 0, 0], [0, 0, 0, 1, -1]])
    obj_lo, obj_hi = linear_objective_bounds(net, lb, c)
    box_width = np.abs(c) @ (lb.upper[-1] - lb.lower[-1])
    assert np.all(obj_hi - obj_lo < 0.9 * box_width)


def test_linear_objective_proves_a_disjunct_infeasible():
    net = NETWORKS["acas-like"]()
    x0 = np.random.default_rng(21).uniform(-1, 1, 5)
    label = int(np.argmax(net.forward(x0)))
    lb = crown_bounds(net, x0 - 1e-3, x0 + 1e-3)
    others = [j for j in range(5) if j != label]
    a = np.zeros((4, 5))
    a[np.arange(4), label] = 1.0
    a[np.arange(4), others] = -1.0  # y_label - y_j <= 0 is each disjunct
    low, _ = linear_objective_bounds(net, lb, a, np.zeros(4))
    assert np.all(low > 0)


def test_linear_objective_accepts_one_row_and_checks_shape():
    net = NETWORKS["small-deep"]()
    lo, hi = box(3, 22, 0.1)
    lb = crown_bounds(net, lo, hi)
    low, up = linear_objective_bounds(net, lb, np.array([1.0, 0.0]))
    assert low.shape == (1,) and low[0] <= net.forward(lo)[0] <= up[0]
    with pytest.raises(ValueError):
        linear_objective_bounds(net, lb, np.ones((2, 3)))
    with pytest.raises(ValueError):
        crown_bounds(net, lo, hi, alpha=1.5)
    with pytest.raises(ValueError):
        crown_bounds(net, lo, np.where(np.arange(3) == 0, np.inf, hi))


def test_linear_objective_works_from_interval_bounds():
    net = NETWORKS["scaled"]()
    lo, hi = box(6, 23, 0.05)
    lb = interval_bounds(net, lo, hi)
    c = np.eye(4)
    obj_lo, obj_hi = linear_objective_bounds(net, lb, c)
    y = net.forward(box_points(lo, hi))
    assert np.all(y >= obj_lo) and np.all(y <= obj_hi)
    assert np.all(obj_hi - obj_lo <= lb.upper[-1] - lb.lower[-1])


# --- floating point: the padding against an exact rational evaluation ------------------------------

def _exact_lower_bound(steps, lam, const, in_lo, in_hi):
    """The same backward pass as bounds._backward, in exact rational arithmetic
    (the relaxation parameters are read from the steps, as the floats they are)."""
    F = np.vectorize(Fraction, otypes=[object])
    lam, const = F(lam), F(const)
    for step in steps:
        if isinstance(step, bounds.AffineStep):
            const = const + lam @ F(step.bias)
            lam = lam @ F(np.asarray(step.weight.toarray() if sp.issparse(step.weight) else step.weight))
        elif isinstance(step, bounds.ReluStep):
            new = lam * F(step.stable_slope)
            for col, j in enumerate(step.unstable):
                for r in range(lam.shape[0]):
                    v = lam[r, j]
                    if v >= 0:
                        new[r, j] = v * Fraction(step.alpha[col])
                    else:
                        new[r, j] = v * Fraction(step.upper_slope[col])
                        const[r] += v * Fraction(step.upper_intercept[col])
            lam = new
        else:  # MaxGroups: y_k >= x_j*(k); y_k <= x_j*(k) when exact, else <= upper_k
            sel = step.select_t.tocoo()
            j_star = np.empty(sel.shape[1], dtype=np.int64)
            j_star[sel.col] = sel.row
            new = np.full((lam.shape[0], sel.shape[0]), Fraction(0), dtype=object)
            for r in range(lam.shape[0]):
                for k, v in enumerate(lam[r]):
                    if v >= 0 or step.exact[k]:
                        new[r, j_star[k]] += v
                    else:
                        const[r] += v * Fraction(step.upper[k])
            lam = new
    pos = np.where(lam >= 0, lam, Fraction(0))
    neg = np.where(lam < 0, lam, Fraction(0))
    return pos @ F(in_lo) + neg @ F(in_hi) + const


def _exact_cases():
    nets = [random_network([3, 7, 7, 7, 2], seed=seed, scale=1.5) for seed in range(6)]
    for i, net in enumerate(nets + [sparse_network(27), maxpool_network(28)]):
        lo, hi = box(net.input_size, 100 + i, 0.6)
        lb = crown_bounds(net, lo, hi)
        steps = [bounds._relax(layer, *lb.pre_activation(j), "adaptive") for j, layer in enumerate(net.layers)]
        for k, layer in enumerate(net.layers):
            if isinstance(layer, Affine) and k > 0:
                w = layer.dense_weight()
                lam = np.vstack([w, -w])
                const = np.concatenate([layer.bias, -layer.bias])
                yield steps[k - 1::-1], lam, const, lb.input_lower, lb.input_upper


def test_padded_bounds_hold_in_exact_arithmetic():
    rows = 0
    for steps, lam, const, lo, hi in _exact_cases():
        computed = bounds._lower_bound(steps, lam, const, lo, hi)
        exact = _exact_lower_bound(steps, lam, const, lo, hi)
        for got, want in zip(computed, exact):
            assert Fraction(got) <= want  # sound
            assert float(want) - got <= 1e-10 * (1 + abs(float(want)))  # and not padded absurdly
            rows += 1
    assert rows > 50


def test_without_padding_rounding_would_break_soundness(monkeypatch):
    # shows the exact comparison above has teeth: the raw float results sometimes overshoot
    from exactverify.bounds import norm_ball  # where a backward pass is padded (padded_minimum)
    monkeypatch.setattr(norm_ball, "pad_lower", lambda value, magnitude, terms: value)
    overshoot = 0
    for steps, lam, const, lo, hi in _exact_cases():
        computed = bounds._lower_bound(steps, lam, const, lo, hi)
        exact = _exact_lower_bound(steps, lam, const, lo, hi)
        overshoot += sum(Fraction(g) > w for g, w in zip(computed, exact))
    assert overshoot > 0


def test_relu_upper_line_is_above_relu_in_exact_arithmetic():
    rng = np.random.default_rng(24)
    scale = 10.0 ** rng.uniform(-12, 12, (2, 3000))
    lo, hi = -rng.random(3000) * scale[0], rng.random(3000) * scale[1]
    lo[:5], hi[:5] = -1e-300, 1e300 * np.array([1e-300, 1, 1e-10, 1e-290, 1e-200])
    lo[5:9], hi[5:9] = [-1e308, -1.0, -3.0, -1e-320], [1e308, 1e-320, 7e-315, 1e-320]  # overflow, subnormals
    step = bounds.ReluStep(lo, hi, "adaptive")
    assert len(step.unstable) == len(lo)
    for l, u, s, t in zip(lo, hi, step.upper_slope, step.upper_intercept):
        l, u, s, t = map(Fraction, (l, u, s, t))
        assert s * l + t >= 0  # above relu(l) = 0
        assert s * u + t >= u  # above relu(u) = u


def test_rounding_inside_the_backward_pass_is_padded():
    # y = 1e16 x + x - 1e16 x = x exactly, but float64 computes the backward
    # coefficient 1e16 + 1 - 1e16 as 0: only the padding of the intermediate
    # steps (not of the final concretisation) keeps the bounds around [1, 2].
    net = Network([Affine(np.array([[1e16], [1.0], [1e16]]), np.zeros(3)), ReLU(3),
                   Affine(np.array([[1.0, 1.0, -1.0]]), np.zeros(1))]).validate()
    lo, hi = np.array([1.0]), np.array([2.0])
    for lb in (crown_bounds(net, lo, hi), crown_bounds(net, lo, hi, alpha="optimized")):
        assert lb.lower[-1][0] <= 1.0 and lb.upper[-1][0] >= 2.0
        obj_lo, obj_hi = linear_objective_bounds(net, lb, np.array([[1.0], [-1.0]]))
        assert obj_lo[0] <= 1.0 <= 2.0 <= obj_hi[0] and obj_lo[1] <= -2.0 <= -1.0 <= obj_hi[1]
