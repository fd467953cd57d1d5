"""The k-ReLU relaxation (exactverify/bounds/krelu.py): every facet holds at every sampled point of
the input set, the k-ReLU LP bound lies between the triangle LP bound and the exact optimum on tiny
random networks (and above the triangle somewhere), and broken versions are caught."""

import numpy as np
import pytest

from exactverify.bounds import krelu
from exactverify.bounds.crown import crown_bounds
from exactverify.core.network import Network
from exactverify.core.property import Case, OutputConstraint
from exactverify.search.tightening import lp_lower_bounds, tightened_bounds
from exactverify.testing import linear_regions, min_violation, random_network

SAMPLES = 20000


def _pre_activations(net, X, layer):
    """The outputs of net.layers[layer] at the rows of X."""
    h = X
    for L in net.layers[:layer + 1]:
        h = L.apply(h)
    return h


def _sampled_set(net, lo, hi, seed, n=SAMPLES):
    rng = np.random.default_rng(seed)
    X = rng.uniform(lo, hi, (n, len(lo)))
    corners = rng.integers(0, 2, (n // 4, len(lo)))
    return np.vstack([X, np.where(corners, hi, lo)])  # the box's corners, where extremes often lie


def test_directions_are_the_octahedron():
    assert krelu.directions(1).tolist() == [[1.0]]
    assert krelu.directions(2).tolist() == [[1, 0], [0, 1], [1, 1], [1, -1]]
    d3 = krelu.directions(3)
    assert len(d3) == 13 and np.array_equal(d3[:3], np.eye(3))
    assert len({tuple(d) for d in d3} | {tuple(-d) for d in d3}) == 26  # no d together with -d


@pytest.mark.parametrize("k", [2, 3])
def test_hull_facets_hold_on_a_dense_sample_and_touch_it(k):
    """On a polytope given by samples' own extremes, every facet holds at every sample, and the
    facets are tight (the hull of the samples' images, not a loose outer set)."""
    rng = np.random.default_rng(k)
    for trial in range(6):
        W = rng.standard_normal((k, 5))
        Z = rng.uniform(-1, 1, (60000, 5)) @ W.T + rng.normal(0, 0.3, k)
        D = krelu.directions(k)
        proj = Z @ D.T
        g = krelu.group_facets(0, np.arange(k), proj.min(0), proj.max(0))
        assert g is not None and len(g.b) >= 2 * k
        assert g.holds(Z).all()
        slack = (g.b - np.hstack([Z, np.maximum(Z, 0)]) @ g.A.T).min(axis=0)
        assert np.median(slack) < 0.05 * np.ptp(Z)  # most facets touch the sampled set


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("k", [2, 3])
def test_network_facets_hold_at_every_sampled_input(seed, k):
    net = random_network([3, 10, 10, 10, 2], seed=seed)
    lo, hi = np.full(3, -1.0), np.full(3, 1.0)
    lb = crown_bounds(net, lo, hi, alpha="optimized")
    X = _sampled_set(net, lo, hi, seed)
    cuts = krelu.network_cuts(net, lb, k)
    assert len(cuts) > 5
    for cut in cuts:
        Z = _pre_activations(net, X, cut.layer)[:, cut.neurons]
        assert cut.holds(Z).all(), (cut.layer, cut.neurons)


def test_a_lowered_facet_is_caught_by_sampling():
    net = random_network([3, 10, 10, 2], seed=1)
    lo, hi = np.full(3, -1.0), np.full(3, 1.0)
    lb = crown_bounds(net, lo, hi, alpha="optimized")
    X = _sampled_set(net, lo, hi, 1)
    caught = 0
    for cut in krelu.network_cuts(net, lb, 2):
        Z = _pre_activations(net, X, cut.layer)[:, cut.neurons]
        values = np.hstack([Z, np.maximum(Z, 0)]) @ cut.A.T
        broken = cut.b - 0.05 * (cut.b - values.min(axis=0))  # each facet pushed 5% into the set
        caught += int(not np.all(values <= broken))
    assert caught > 0


def _exact_minimum(net, lo, hi, c):
    case = Case(lo, hi, [OutputConstraint(np.zeros((0, net.output_size)), np.zeros(0))])
    value, _ = min_violation(linear_regions(net, case), case, np.atleast_2d(c), np.zeros(1))
    return value


@pytest.mark.parametrize("seed", range(4))
def test_krelu_lp_lies_between_the_triangle_lp_and_the_exact_minimum(seed):
    net = random_network([3, 8, 8, 3], seed=seed)
    lo, hi = np.full(3, -1.0), np.full(3, 1.0)
    lb = crown_bounds(net, lo, hi, alpha="optimized")
    C = np.array([[1.0, -1.0, 0.0], [0.0, 1.0, -1.0]])
    exact = np.array([_exact_minimum(net, lo, hi, c) for c in C])
    triangle = lp_lower_bounds(net, lb, C)
    for k in (2, 3):
        kr = lp_lower_bounds(net, lb, C, krelu.network_cuts(net, lb, k))
        assert np.all(triangle <= kr + 1e-7), (k, triangle, kr)
        assert np.all(kr <= exact), (k, kr, exact)


def test_krelu_crosses_the_single_neuron_barrier_somewhere():
    gains = []
    for seed in range(6):
        net = random_network([3, 8, 8, 3], seed=seed)
        lo, hi = np.full(3, -1.0), np.full(3, 1.0)
        lb = crown_bounds(net, lo, hi, alpha="optimized")
        C = np.array([[1.0, -1.0, 0.0]])
        gains.append(float(lp_lower_bounds(net, lb, C, krelu.network_cuts(net, lb, 3))[0]
                           - lp_lower_bounds(net, lb, C)[0]))
    assert max(gains) > 1e-2


def test_a_hull_without_the_orthant_walls_is_caught(monkeypatch):
    """A hull built from the vertices of the octahedron alone, without those on the walls x_i = 0 where
    relu bends (a plausible bug), has facets that cut off reachable points: sampling finds them, and
    its LP bound rises above the exact minimum on some network."""
    real = krelu._candidate_vertices

    def without_walls(D, dl, du):
        lo, hi = real(D, dl, du)
        on_wall = np.any((lo <= 0) & (hi >= 0), axis=1)
        return lo[~on_wall], hi[~on_wall]

    monkeypatch.setattr(krelu, "_candidate_vertices", without_walls)
    cut_off, above = 0, 0
    for seed in range(4):
        net = random_network([3, 8, 8, 3], seed=seed)
        lo, hi = np.full(3, -1.0), np.full(3, 1.0)
        lb = crown_bounds(net, lo, hi, alpha="optimized")
        cuts = krelu.network_cuts(net, lb, 2)
        X = _sampled_set(net, lo, hi, seed)
        cut_off += sum(int(not c.holds(_pre_activations(net, X, c.layer)[:, c.neurons]).all()) for c in cuts)
        c = np.array([1.0, -1.0, 0.0])
        above += int(lp_lower_bounds(net, lb, c, cuts)[0] > _exact_minimum(net, lo, hi, c))
    assert cut_off > 0 and above > 0


@pytest.mark.parametrize("seed", range(3))
def test_krelu_tightening_is_sound_and_at_least_as_tight_as_lp(seed):
    net = random_network([4, 12, 12, 12, 2], seed=seed)
    lo, hi = np.full(4, -1.0), np.full(4, 1.0)
    lp = tightened_bounds(net, lo, hi, "lp")
    kr = tightened_bounds(net, lo, hi, "krelu")
    X = _sampled_set(net, lo, hi, seed)
    for i in range(len(net.layers)):
        Z = _pre_activations(Network(net.layers, input_shape=(1, 4), output_shape=(1, 2)), X, i)
        assert np.all(Z >= kr.lower[i] - 1e-12) and np.all(Z <= kr.upper[i] + 1e-12)
    width = lambda b: sum(float(np.sum(u - l)) for l, u in zip(b.lower, b.upper))  # noqa: E731
    assert width(kr) <= width(lp) * (1 + 1e-6)


@pytest.mark.parametrize("seed", range(12))
def test_verify_with_krelu_facets_in_its_milps_gives_the_oracles_verdicts(seed):
    """--tightening krelu: the facets go into every MILP of the case (whole box, pieces, leaves); the
    verdicts still match the region-enumeration oracle's."""
    from exactverify.search.verifier import verify
    from exactverify.testing import VERDICT_TIMEOUT, make_instance
    net, prop, expected, _ = make_instance(seed)
    res = verify(net, prop, timeout=VERDICT_TIMEOUT, tightening="krelu")
    assert res.status == expected, (seed, res.status, res.reason)


def test_the_facets_reach_the_milp():
    from exactverify.encodings.milp import build_milp
    net = random_network([3, 8, 8, 2], seed=3)
    lo, hi = np.full(3, -1.0), np.full(3, 1.0)
    lb = crown_bounds(net, lo, hi, alpha="optimized")
    cuts = krelu.network_cuts(net, lb, 2)
    d = OutputConstraint(np.array([[1.0, -1.0]]), np.zeros(1))
    plain, with_cuts = build_milp(net, lb, Case(lo, hi, [d]), d), build_milp(net, lb, Case(lo, hi, [d]), d, cuts=cuts)
    assert with_cuts.num_rows == plain.num_rows + sum(len(c.b) for c in cuts)
    assert with_cuts.stats["krelu_rows"] == sum(len(c.b) for c in cuts) > 0
