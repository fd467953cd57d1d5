"""`LayerBounds`: sound elementwise bounds on the output of every layer of a network over an input box."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..core.network import Network, ReLU


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

    def with_layer(self, k: int, lower, upper) -> "LayerBounds":
        """A copy with layer k's bounds replaced by (lower, upper); the other layers' arrays copied too."""
        lo, hi = [a.copy() for a in self.lower], [a.copy() for a in self.upper]
        lo[k], hi[k] = lower, upper
        return LayerBounds(self.input_lower, self.input_upper, lo, hi, self.method)

    def unstable_counts(self, network: Network) -> list:
        """Per ReLU layer: how many neurons have lower < 0 < upper."""
        counts = []
        for i, layer in enumerate(network.layers):
            if isinstance(layer, ReLU):
                lo, hi = self.pre_activation(i)
                counts.append(int(np.sum((lo < 0) & (hi > 0))))
        return counts
