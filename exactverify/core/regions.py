"""Linear regions: the polytope of inputs sharing x0's activation pattern, and the network's affine form there."""

from __future__ import annotations

import numpy as np

from .network import Affine, MaxGroups, Network, ReLU


def linear_region(network: Network, x0):
    """Affine form of the network on the linear region of x0.

    Returns (G, g, A, a): the region is {x : G x + g >= 0}, and there f(x) = A x + a.
    """
    n = network.input_size
    A = np.eye(n)
    a = np.zeros(n)
    h = np.asarray(x0, dtype=np.float64)
    rows_G, rows_g = [], []
    for layer in network.layers:
        if isinstance(layer, Affine):
            W = layer.dense_weight()
            A = W @ A
            a = W @ a + layer.bias
            h = layer.apply(h[None, :])[0]
        elif isinstance(layer, ReLU):
            on = h > 0
            sign = np.where(on, 1.0, -1.0)
            rows_G.append(sign[:, None] * A)
            rows_g.append(sign * a)
            A = A * on[:, None]
            a = a * on
            h = np.maximum(h, 0.0)
        elif isinstance(layer, MaxGroups):
            newA, newa = [], []
            for k in range(layer.out_size):
                m = layer.members(k)
                w = m[int(np.argmax(h[m]))]
                for o in m:
                    if o != w:
                        rows_G.append((A[w] - A[o])[None, :])
                        rows_g.append(np.array([a[w] - a[o]]))
                newA.append(A[w])
                newa.append(a[w])
            A, a = np.array(newA), np.array(newa)
            h = layer.apply(h[None, :])[0]
        else:
            raise TypeError(f"unknown layer type {type(layer).__name__}")
    G = np.vstack(rows_G) if rows_G else np.zeros((0, n))
    g = np.concatenate(rows_g) if rows_g else np.zeros(0)
    return G, g, A, a
