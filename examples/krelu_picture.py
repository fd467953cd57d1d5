"""The single-neuron convex barrier and the 2-ReLU hull, on two neurons of our own digits network.

    python examples/krelu_picture.py            # writes examples/krelu_hull.png

Two neurons of the second hidden layer of `digits_standard.onnx`, over the L-inf ball of radius 0.15
around a test digit: the pair of their outputs (y1, y2) = relu(x1, x2) that the ball reaches (grey,
sampled), and the projections onto (y1, y2) of
- the single-neuron relaxation: a triangle for each neuron, with the pre-activations (x1, x2) in the
  same octahedron (bounds on x1, x2, x1 + x2, x1 - x2 from CROWN) that the hull uses;
- the 2-ReLU hull (exactverify/bounds/krelu.py): the convex hull of relu over that octahedron (its
  facets that the triangles do not imply, with the triangles, as the LP gets them).
Each projection is traced by its support function (an LP per direction). Even with the octahedron
on (x1, x2), the triangles let both outputs be large at once, far from anything the network
reaches; the hull cuts that corner off. The pair is the one whose projected areas differ most
among the 10 neurons with the loosest triangles.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.optimize import linprog

from exactverify import load_network
from exactverify.bounds.crown import crown_bounds
from exactverify.bounds.krelu import choose_groups, directions, group_facets, octahedral_bounds
from exactverify.core.network import Network
from exactverify.core.property import linf_ball

HERE = Path(__file__).resolve().parent
EPS = 0.15
LAYER = 2  # the second Affine layer: its outputs feed the second ReLU


def support_polygon(A_ub, b_ub, bounds, n_dirs: int = 240) -> np.ndarray:
    """The projection onto (y1, y2), the last two of 4 variables (x1, x2, y1, y2), of {A_ub v <= b_ub}."""
    pts = []
    for t in np.linspace(0, 2 * np.pi, n_dirs, endpoint=False):
        c = np.zeros(4)
        c[2:] = -np.array([np.cos(t), np.sin(t)])
        res = linprog(c, A_ub=A_ub, b_ub=b_ub, bounds=bounds, method="highs")
        if res.status == 0:
            pts.append(res.x[2:])
    return np.array(pts)


def area(poly: np.ndarray) -> float:
    x, y = poly[:, 0], poly[:, 1]
    return 0.5 * abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1)))


def relaxations(dl, du, facets):
    D = directions(2)
    octa_A = np.hstack([np.vstack([D, -D]), np.zeros((8, 2))])
    octa_b = np.concatenate([du, -dl])
    l, u = dl[:2], du[:2]
    tri_A, tri_b = [], []
    for i in range(2):  # y_i >= x_i, y_i >= 0 (bound), y_i <= u_i (x_i - l_i) / (u_i - l_i)
        row = np.zeros(4); row[i], row[2 + i] = 1.0, -1.0
        tri_A.append(row); tri_b.append(0.0)
        row = np.zeros(4); row[i], row[2 + i] = -u[i] / (u[i] - l[i]), 1.0
        tri_A.append(row); tri_b.append(-u[i] * l[i] / (u[i] - l[i]))
    bounds = [(l[0], u[0]), (l[1], u[1]), (0, None), (0, None)]
    single = support_polygon(np.vstack([octa_A, tri_A]), np.concatenate([octa_b, tri_b]), bounds)
    # the facets kept are those the triangles do not imply (bounds/krelu.py `_deepest_cuts`): with the
    # triangles they give the hull, as in the LP
    hull = support_polygon(np.vstack([octa_A, tri_A, facets.A]), np.concatenate([octa_b, tri_b, facets.b]), bounds)
    return single, hull


def main() -> int:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    net = load_network(HERE / "digits_standard.onnx")
    data = np.load(HERE / "digits_test.npz")
    x0 = data["x"][0].astype(np.float64).ravel()
    lo, hi = linf_ball(x0, EPS, (0.0, 1.0))
    lb = crown_bounds(net, lo, hi, alpha="optimized")
    prefix = Network(net.layers[:LAYER + 1], input_shape=(1, net.input_size), output_shape=(1, net.layers[LAYER].out_size))
    top = np.concatenate(choose_groups(lb.lower[LAYER], lb.upper[LAYER], 1, max_neurons=10, max_groups=10))
    pairs = [np.array(p) for i, a in enumerate(top) for p in [(a, b) for b in top[i + 1:]]]
    best = None
    for pair, (dl, du) in zip(pairs, octahedral_bounds(prefix, lb.prefix(LAYER), pairs)):
        facets = group_facets(LAYER, pair, dl, du)
        if facets is None:
            continue
        single, hull = relaxations(dl, du, facets)
        gap = area(single) - area(hull)
        if best is None or gap > best[0]:
            best = (gap, pair, dl, du, single, hull)
    _, pair, dl, du, single, hull = best

    rng = np.random.default_rng(0)
    X = rng.uniform(lo, hi, (150000, len(lo)))
    X = np.vstack([X, np.where(rng.integers(0, 2, (150000, len(lo))), hi, lo)])
    Y = np.maximum(prefix.forward(X)[:, pair], 0.0)

    fig, ax = plt.subplots(figsize=(5.5, 5))
    ax.scatter(Y[:, 0], Y[:, 1], s=1, c="0.6", alpha=0.3, rasterized=True, label="reachable (sampled)")
    for poly, style, name in ((single, "C3--", "single-neuron (triangles)"), (hull, "C0-", "2-ReLU hull")):
        closed = np.vstack([poly, poly[:1]])
        ax.plot(closed[:, 0], closed[:, 1], style, lw=1.8,
                label=f"{name}: area {area(poly):.3g}")
    ax.set_xlabel(f"y{pair[0]} = relu(x{pair[0]})")
    ax.set_ylabel(f"y{pair[1]} = relu(x{pair[1]})")
    ax.set_title(f"digits_standard, layer 2, neurons {pair[0]} and {pair[1]}\nL-inf ball eps {EPS} around test digit 0",
                 fontsize=10)
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    out = HERE / "krelu_hull.png"
    fig.savefig(out, dpi=130)
    print(f"wrote {out}: neurons {pair.tolist()}, area single-neuron {area(single):.4g}, 2-ReLU hull {area(hull):.4g}, "
          f"sampled points' bounding box {np.ptp(Y[:, 0]):.3g} x {np.ptp(Y[:, 1]):.3g}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
