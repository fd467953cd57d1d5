"""The multi-neuron (k-ReLU) relaxation: the convex hull of k ReLUs of one layer over an octahedral
bound on their pre-activations, as linear facets that hold wherever the group can be (Singh et al.
2019, "Beyond the single neuron convex barrier"; PRIMA, Müller et al. 2022).

A single-neuron relaxation (the triangle) bounds each (x_i, relu(x_i)) alone. The k neurons of a
group are not independent: their pre-activations x lie in a polytope P that is much smaller than
the box of their bounds. Here P is the octahedron

    dl_d <= d . x <= du_d   for every direction d in {-1, 0, 1}^k (one of d and -d),

whose unit directions are the box and whose others bound sums and differences; the bounds come
from CROWN on those linear forms (`octahedral_bounds`). The set {(x, relu(x)) : x in P} is the
union over the 2^k orthants s of the pieces {(x, relu_s(x)) : x in P, x in orthant s}, relu_s
linear on each, so its convex hull is the convex hull of the images of the pieces' vertices.

Soundness, in three steps (`group_facets`):
1. Vertices. A vertex of a piece is where k planes with independent normals meet (d . x = dl_d or
   du_d, or an orthant wall x_i = 0). The normals have entries in {-1, 0, 1}, so x = adj(D) v / det(D)
   with small integer adj(D) and det(D): the float result is within a proven error of the exact
   vertex (`padding.pad`). Every k-subset of planes is tried and every candidate within a loose
   tolerance of feasibility kept: each exact vertex is then among the candidates, and the extra ones
   only enlarge the hull.
2. Normals. The hull's facet normals come from qhull (scipy.spatial.ConvexHull) in floating point;
   they are only directions, never trusted.
3. Right-hand sides. Each facet a . (x, y) <= b gets b recomputed: the largest value of a . (x,
   relu_s(x)) over every candidate's error box, in interval arithmetic, padded for rounding. A linear
   function's maximum over a piece is at one of its vertices, so the facet holds at every point of P.

The facets are rows over the group's pre-activation and post-activation variables, for the LP
(search/tightening.py: `lp` with `krelu`) and the leaf MILPs (encodings/milp.py `cuts`).
"""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass

import numpy as np

from ..core.network import Affine, Network, ReLU
from .padding import pad

FEASIBILITY = 1e-9  # relative: candidate vertices this close to feasible are kept (more points are sound)
MAX_NEURONS = 24  # per layer: the unstable neurons, by triangle area, that groups are drawn from
MAX_GROUPS = 24  # per layer
MAX_FACETS = 512  # per group: the facets that cut deepest into the single-neuron relaxation


@dataclass
class GroupFacets:
    """Facets A @ (x, y) <= b of k ReLUs of one layer: x the pre-activations (network.layers[layer]'s
    outputs `neurons`), y = relu(x) (the next layer's same outputs)."""

    layer: int  # index of the Affine layer whose outputs are the group's pre-activations
    neurons: np.ndarray  # (k,)
    A: np.ndarray  # (m, 2k): x coefficients, then y coefficients
    b: np.ndarray  # (m,)

    def holds(self, x: np.ndarray, slack: float = 0.0) -> np.ndarray:
        """Whether every facet holds at the pre-activation rows x (n, k) of the group (for tests)."""
        pts = np.hstack([x, np.maximum(x, 0.0)])
        return np.all(pts @ self.A.T <= self.b + slack, axis=1)


def directions(k: int) -> np.ndarray:
    """The octahedral directions in dimension k: d in {-1, 0, 1}^k, d != 0, first nonzero entry +1;
    the unit vectors first."""
    dirs = [d for d in itertools.product((-1, 0, 1), repeat=k) if any(d) and d[next(i for i in range(k) if d[i])] > 0]
    dirs.sort(key=lambda d: (sum(map(abs, d)), [-v for v in d]))
    return np.array(dirs, dtype=np.float64)


def choose_groups(lower: np.ndarray, upper: np.ndarray, k: int, max_neurons: int = MAX_NEURONS,
                  max_groups: int = MAX_GROUPS) -> list:
    """Overlapping groups of k unstable neurons where the triangle relaxation is loosest.

    The unstable neurons are ranked by the triangle's height -l u / (u - l) (its area over the
    width, the largest gap between relu and its relaxation); the top `max_neurons` form groups of
    k consecutive ones in that order, each sharing k - 1 neurons with the next (at most `max_groups`).
    """
    unstable = np.flatnonzero((lower < 0) & (upper > 0))
    if len(unstable) < k:
        return []
    height = -lower[unstable] * upper[unstable] / (upper[unstable] - lower[unstable])
    top = unstable[np.argsort(-height, kind="stable")[:max_neurons]]
    return [np.sort(top[i:i + k]) for i in range(min(len(top) - k + 1, max_groups))]


def group_facets(layer: int, neurons, dl: np.ndarray, du: np.ndarray, max_facets: int | None = None) -> GroupFacets | None:
    """The facets of the convex hull of {(x, relu(x)) : dl <= D x <= du} (D = directions(k)); see the
    module docstring. Of those, the `max_facets` that cut deepest into the triangles (`_deepest_cuts`).
    None when the group's set is too flat for a hull (a neuron's range is a point)."""
    from scipy.spatial import ConvexHull, QhullError

    neurons = np.asarray(neurons)
    k = len(neurons)
    D = directions(k)
    lo_pts, hi_pts = _candidate_vertices(D, np.asarray(dl, float), np.asarray(du, float))
    if len(lo_pts) == 0:
        return None
    mid = 0.5 * (lo_pts + hi_pts)
    scale = 1.0 + float(np.max(np.abs(mid)))
    # candidates a rounding apart make qhull split facets into slivers; the rigorous right-hand sides
    # below use every candidate, so merging them here only affects the normals
    images = np.unique(np.round(np.hstack([mid, np.maximum(mid, 0.0)]) / scale, 9), axis=0) * scale
    if len(images) <= 2 * k:
        return None
    try:
        hull = ConvexHull(images)
    except QhullError:
        try:
            hull = ConvexHull(images, qhull_options="QJ")  # a flat set: joggled, the normals are re-bounded anyway
        except QhullError:
            return None
    normals = hull.equations[:, :-1]
    normals = normals / np.max(np.abs(normals), axis=1, keepdims=True)
    normals = np.unique(np.round(normals, 12), axis=0)
    b = _rigorous_maximum(normals, lo_pts, hi_pts)
    ok = np.isfinite(b)
    normals, b = normals[ok], b[ok]
    keep = _deepest_cuts(normals, b, dl[:k], du[:k], max_facets or MAX_FACETS)
    return GroupFacets(layer, neurons, normals[keep], b[keep])


def _deepest_cuts(A: np.ndarray, b: np.ndarray, lo: np.ndarray, hi: np.ndarray, limit: int) -> np.ndarray:
    """Indices of at most `limit` facets that cut deepest into the single-neuron relaxation: the product
    of the k triangles (vertices (l, 0), (0, 0), (u, u) per neuron). A facet that no vertex of that
    product violates is implied by the triangles and is left out."""
    k = len(lo)
    options = np.stack([np.stack([lo, np.zeros(k)], 1), np.zeros((k, 2)), np.stack([hi, hi], 1)], 1)  # (k, 3, 2)
    picks = np.array(list(itertools.product(range(3), repeat=k)))  # (3^k, k)
    corners = options[np.arange(k), picks]  # (3^k, k, 2)
    T = np.concatenate([corners[:, :, 0], corners[:, :, 1]], axis=1)  # (3^k, 2k): x then y
    depth = np.max(T @ A.T - b, axis=0) / np.linalg.norm(A, axis=1)
    order = np.argsort(-depth, kind="stable")
    return order[depth[order] > 1e-9 * (1.0 + float(np.max(np.abs(T))))][:limit]


@functools.lru_cache(maxsize=None)
def _systems(k: int):
    """Every k-subset of the directions with independent normals: its indices, adj(D) and det(D) (exact small integers)."""
    D = directions(k)
    combos = [c for c in itertools.combinations(range(len(D)), k) if round(np.linalg.det(D[list(c)])) != 0]
    Ms = D[np.array(combos)]  # (c, k, k)
    det = np.round(np.linalg.det(Ms))
    adj = np.round(np.linalg.inv(Ms) * det[:, None, None])
    return np.array(combos), adj, det


def _candidate_vertices(D: np.ndarray, dl: np.ndarray, du: np.ndarray):
    """(lower, upper) corners of an error box around every candidate vertex of every orthant piece."""
    k = D.shape[1]
    # each direction's plane values: its two bounds, and 0 for a unit direction that straddles it (an orthant wall)
    values = np.full((len(D), 3), np.nan)
    values[:, 0], values[:, 1] = dl, du
    for i in range(k):  # the unit directions are the first k rows of D
        if dl[i] < 0 < du[i]:
            values[i, 2] = 0.0
    combos, adj, det = _systems(k)
    picks = np.array(list(itertools.product(range(3), repeat=k)))  # (3^k, k): which value of each plane
    v = values[combos[:, None, :], picks[None, :, :]]  # (c, 3^k, k)
    v = v.reshape(-1, k)
    adj = np.repeat(adj, len(picks), axis=0)
    det = np.repeat(det, len(picks))
    usable = ~np.isnan(v).any(axis=1)
    v, adj, det = v[usable], adj[usable], det[usable]
    x = np.einsum("cij,cj->ci", adj, v) / det[:, None]
    mag = np.einsum("cij,cj->ci", np.abs(adj), np.abs(v)) / np.abs(det)[:, None]
    lo, hi = pad(x, x, mag, terms=k + 2)
    # keep the candidates whose error box comes within a loose tolerance of dl <= D x <= du
    pos, neg = np.maximum(D, 0.0), np.minimum(D, 0.0)
    dx_lo = lo @ pos.T + hi @ neg.T
    dx_hi = hi @ pos.T + lo @ neg.T
    tol = FEASIBILITY * (1.0 + float(np.max(np.abs(np.concatenate([dl, du])))))
    keep = np.all((dx_hi >= dl - tol) & (dx_lo <= du + tol), axis=1)
    return lo[keep], hi[keep]


def _rigorous_maximum(normals: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """For each row a of `normals` (over (x, y)), a float >= max over the candidates' error boxes of
    a . (x, relu(x)): every piece's vertex lies in some box, and relu is monotone, so y lies in
    [relu(lo), relu(hi)] there."""
    k = lo.shape[1]
    box_lo = np.hstack([lo, np.maximum(lo, 0.0)])  # (p, 2k)
    box_hi = np.hstack([hi, np.maximum(hi, 0.0)])
    pos, neg = np.maximum(normals, 0.0), np.minimum(normals, 0.0)
    upper = box_hi @ pos.T + box_lo @ neg.T  # (p, m): the interval upper end at each candidate
    mag = np.maximum(np.abs(box_lo), np.abs(box_hi)) @ np.abs(normals).T
    _, padded = pad(upper, upper, mag, terms=2 * k + 2)
    return np.max(padded, axis=0)


def octahedral_bounds(prefix, prefix_bounds, groups: list):
    """(dl, du) for every group: CROWN bounds on d . x over the input set for each direction d, x the
    group's pre-activations (outputs of the last layer of `prefix`), intersected with the box."""
    from .crown import linear_objective_bounds

    if not groups:
        return []
    n = prefix.output_size
    rows, spans = [], []
    for g in groups:
        D = directions(len(g))
        C = np.zeros((len(D), n))
        C[:, g] = D
        spans.append((len(rows), len(D)))
        rows.extend(C)
    lo, hi = linear_objective_bounds(prefix, prefix_bounds, np.array(rows))
    out = []
    box_lo, box_hi = prefix_bounds.lower[-1], prefix_bounds.upper[-1]
    for g, (start, m) in zip(groups, spans):
        dl, du = lo[start:start + m].copy(), hi[start:start + m].copy()
        k = len(g)
        dl[:k] = np.maximum(dl[:k], box_lo[g])
        du[:k] = np.minimum(du[:k], box_hi[g])
        out.append((dl, du))
    return out



def layer_cuts(network, layer_bounds, layer: int, k: int) -> list:
    """The GroupFacets of the ReLUs fed by `network.layers[layer]` (an Affine layer), over the input set
    of `layer_bounds` (its box, and its ball if any): groups by `choose_groups`, octahedra by CROWN."""
    lo, hi = layer_bounds.lower[layer], layer_bounds.upper[layer]
    groups = choose_groups(lo, hi, k)
    if not groups:
        return []
    prefix = Network(network.layers[:layer + 1], input_shape=(1, network.input_size),
                     output_shape=(1, network.layers[layer].out_size))
    cuts = []
    for g, (dl, du) in zip(groups, octahedral_bounds(prefix, layer_bounds.prefix(layer), groups)):
        facets = group_facets(layer, g, dl, du)
        if facets is not None and len(facets.b):
            cuts.append(facets)
    return cuts


def relu_inputs(network) -> list:
    """Indices of the Affine layers whose outputs feed a ReLU (where groups can be formed)."""
    return [i for i in range(len(network.layers) - 1)
            if isinstance(network.layers[i], Affine) and isinstance(network.layers[i + 1], ReLU)]


def network_cuts(network, layer_bounds, k: int) -> list:
    """`layer_cuts` for every layer that feeds a ReLU."""
    return [c for i in relu_inputs(network) for c in layer_cuts(network, layer_bounds, i, k)]
