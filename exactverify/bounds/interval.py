"""Interval bound propagation (IBP): the box image of a box, layer by layer, padded outward."""

from __future__ import annotations

import numpy as np

from ..core.network import Affine, MaxGroups, Network, ReLU
from .layer_bounds import LayerBounds
from .padding import pad


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
    """Interval bound propagation (IBP) over the box [lower, upper], padded outward."""
    lo = np.asarray(lower, dtype=np.float64)
    hi = np.asarray(upper, dtype=np.float64)
    out = LayerBounds(lo.copy(), hi.copy(), method="interval")
    for layer in network.layers:
        lo, hi = propagate_interval(layer, lo, hi)
        out.lower.append(lo)
        out.upper.append(hi)
    return out


def propagate_interval(layer, lo: np.ndarray, hi: np.ndarray):
    """Interval image of the box [lo, hi] under one layer (padded outward for affine layers)."""
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
