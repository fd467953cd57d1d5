"""Sound per-layer bounds over an input box.

`interval_bounds` (IBP) and `crown_bounds` (backward linear relaxation) return a
`LayerBounds`: for every layer of the network, elementwise lower and upper
bounds on that layer's output, valid for every input in the box. These are the
big-M constants of the MILP, so they must hold in exact arithmetic: every bound
computed in floating point is padded outward by more than the rounding error
it could carry (`pad`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .network import Affine, MaxGroups, Network, ReLU

_U = np.finfo(np.float64).eps  # 2.2e-16: twice the unit roundoff, so one factor of 2 of slack is built in


@dataclass
class LayerBounds:
    """lower[i], upper[i]: bounds on the output of network.layers[i]."""

    input_lower: np.ndarray
    input_upper: np.ndarray
    lower: list = field(default_factory=list)
    upper: list = field(default_factory=list)
    method: str = "interval"

    def pre_activation(self, layer_index: int):
        """Bounds on the input of layer `layer_index`."""
        if layer_index == 0:
            return self.input_lower, self.input_upper
        return self.lower[layer_index - 1], self.upper[layer_index - 1]

    def unstable_counts(self, network: Network) -> list:
        """Per ReLU layer: how many neurons have lower < 0 < upper."""
        counts = []
        for i, layer in enumerate(network.layers):
            if isinstance(layer, ReLU):
                lo, hi = self.pre_activation(i)
                counts.append(int(np.sum((lo < 0) & (hi > 0))))
        return counts


def pad(lower: np.ndarray, upper: np.ndarray, magnitude: np.ndarray, terms: int):
    """Widen [lower, upper] by a bound on the float64 rounding error of a sum of `terms` products.

    `magnitude` bounds sum_i |w_i x_i| + |b| for each entry; the classical
    bound on the error of a recursive dot product is (terms * u) * magnitude.
    """
    slack = (terms + 4) * _U * magnitude + 1e-300
    return lower - slack, upper + slack


def affine_interval(layer: Affine, lo: np.ndarray, hi: np.ndarray):
    """Interval image of the box [lo, hi] under an affine layer, padded outward."""
    centre = (lo + hi) / 2.0
    radius = (hi - lo) / 2.0
    w = layer.weight
    abs_w = abs(w)
    mid = np.asarray(w @ centre).ravel() + layer.bias
    rad = np.asarray(abs_w @ radius).ravel()
    magnitude = np.asarray(abs_w @ np.maximum(np.abs(lo), np.abs(hi))).ravel() + np.abs(layer.bias)
    # centre/radius themselves carry rounding: absorb it in the magnitude term
    return pad(mid - rad, mid + rad, magnitude, layer.in_size + 2)


def interval_bounds(network: Network, lower, upper) -> LayerBounds:
    lo = np.asarray(lower, dtype=np.float64)
    hi = np.asarray(upper, dtype=np.float64)
    out = LayerBounds(lo.copy(), hi.copy(), method="interval")
    for layer in network.layers:
        lo, hi = propagate_interval(layer, lo, hi)
        out.lower.append(lo)
        out.upper.append(hi)
    return out


def propagate_interval(layer, lo: np.ndarray, hi: np.ndarray):
    if isinstance(layer, Affine):
        return affine_interval(layer, lo, hi)
    if isinstance(layer, ReLU):
        return np.maximum(lo, 0.0), np.maximum(hi, 0.0)
    if isinstance(layer, MaxGroups):
        dummy = np.zeros((1, layer.in_size))
        lo_m = layer.apply(lo[None, :] + dummy)[0]
        hi_m = layer.apply(hi[None, :] + dummy)[0]
        return lo_m, hi_m
    raise TypeError(f"unknown layer type {type(layer).__name__}")


def crown_bounds(network: Network, lower, upper) -> LayerBounds:
    """CROWN bounds; filled in by the bounds module's CROWN implementation."""
    raise NotImplementedError


def compute_bounds(network: Network, lower, upper, method: str = "crown") -> LayerBounds:
    if method == "interval":
        return interval_bounds(network, lower, upper)
    if method == "crown":
        return crown_bounds(network, lower, upper)
    raise ValueError(f"unknown bounds method {method!r} (interval, crown)")
