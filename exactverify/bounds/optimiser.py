"""Adam (Kingma and Ba 2015), the one gradient optimiser of alpha-CROWN (bounds/crown.py) and of ReLU
splitting's alphas and betas (search/relu_split.py). It only steers: any slopes in [0, 1] and any
betas >= 0 give sound bounds, which are computed (and padded) afterwards, so nothing here needs to be
sound; it must only round as it always has, so that the bounds found stay bit-identical."""

from __future__ import annotations

import numpy as np


class Adam:
    """Adam's moment estimates for named parameter arrays, kept in each gradient's dtype."""

    def __init__(self):
        self._state = {}  # key -> [first moment, second moment, steps taken]

    def step(self, key, grad: np.ndarray, lr: float = 1.0) -> np.ndarray:
        """The ascent update of parameter `key` from its gradient: lr * m_hat / (sqrt(v_hat) + 1e-12)."""
        state = self._state.get(key)
        if state is None:
            state = self._state[key] = [np.zeros_like(grad), np.zeros_like(grad), 0]
        first, second = state[0], state[1]
        state[2] += 1
        t = state[2]
        # 0.1 and 0.001 are written out: 1 - 0.9 and 1 - 0.999 are not those floats, and in place
        # with Python-float factors a float32 moment stays float32
        first *= 0.9
        first += 0.1 * grad
        second *= 0.999
        second += 0.001 * grad * grad
        return lr * (first / (1 - 0.9 ** t)) / (np.sqrt(second / (1 - 0.999 ** t)) + 1e-12)
