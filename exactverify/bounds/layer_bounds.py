"""`LayerBounds`: sound elementwise bounds on the output of every layer of a network over an input box,
or over the box intersected with an L1 or L2 ball (`ball`)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..core.network import Network, ReLU
from .norm_ball import NormBall


@dataclass
class LayerBounds:
    """lower[i], upper[i]: bounds on the output of network.layers[i], for every input in
    [input_lower, input_upper] (and in `ball`, when one is given: then they need not hold elsewhere in
    the box, and whatever uses them may claim something only about points of the ball)."""

    input_lower: np.ndarray
    input_upper: np.ndarray
    lower: list = field(default_factory=list)
    upper: list = field(default_factory=list)
    method: str = "interval"
    ball: NormBall | None = None

    def pre_activation(self, layer_index: int):
        """Bounds on the input of layer `layer_index`."""
        if layer_index == 0:
            return self.input_lower, self.input_upper
        return self.lower[layer_index - 1], self.upper[layer_index - 1]

    def with_layer(self, k: int, lower, upper) -> "LayerBounds":
        """A copy with layer k's bounds replaced by (lower, upper); the other layers' arrays copied too."""
        lo, hi = [a.copy() for a in self.lower], [a.copy() for a in self.upper]
        lo[k], hi[k] = lower, upper
        return LayerBounds(self.input_lower, self.input_upper, lo, hi, self.method, self.ball)

    def prefix(self, k: int) -> "LayerBounds":
        """The bounds of layers 0..k only (for the network cut after layer k)."""
        return LayerBounds(self.input_lower, self.input_upper, self.lower[:k + 1], self.upper[:k + 1], self.method,
                           self.ball)

    def unstable_counts(self, network: Network) -> list:
        """Per ReLU layer: how many neurons have lower < 0 < upper."""
        counts = []
        for i, layer in enumerate(network.layers):
            if isinstance(layer, ReLU):
                lo, hi = self.pre_activation(i)
                counts.append(int(np.sum((lo < 0) & (hi > 0))))
        return counts
