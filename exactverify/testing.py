"""Small random networks and properties for tests and examples."""

from __future__ import annotations

import numpy as np

from .core.network import Affine, Network, ReLU
from .core.property import Case, OutputConstraint, Property


def random_network(sizes, seed: int = 0, scale: float = 1.0, output_relu: bool = False) -> Network:
    """A fully connected ReLU network with layer sizes `sizes` (inputs first) and float32 weights."""
    rng = np.random.default_rng(seed)
    layers = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        w = (rng.standard_normal((n_out, n_in)) * scale / np.sqrt(n_in)).astype(np.float32)
        b = (rng.standard_normal(n_out) * 0.1 * scale).astype(np.float32)
        layers.append(Affine(w.astype(np.float64), b.astype(np.float64)))
        if i < len(sizes) - 2 or output_relu:
            layers.append(ReLU(n_out))
    return Network(layers, input_shape=(1, sizes[0]), output_shape=(1, sizes[-1]), source=f"random{list(sizes)}-seed{seed}")


def box_property(lower, upper, disjuncts) -> Property:
    """A one-case property: x in [lower, upper] and any of `disjuncts` [(A, b), ...] on the outputs."""
    lower = np.asarray(lower, dtype=np.float64)
    upper = np.asarray(upper, dtype=np.float64)
    ds = [OutputConstraint(np.atleast_2d(np.asarray(A, dtype=np.float64)), np.atleast_1d(np.asarray(b, dtype=np.float64)))
          for A, b in disjuncts]
    return Property(len(lower), ds[0].A.shape[1], [Case(lower, upper, ds)])
