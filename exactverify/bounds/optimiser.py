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

    def step(self, key, grad: np.ndarray, lr: float = 1.0, rows=None, shape=None) -> np.ndarray:
        """The ascent update of parameter `key` from its gradient: lr * m_hat / (sqrt(v_hat) + 1e-12).

        rows, shape: `grad` holds only these rows of a parameter of this shape, and only their moments
        advance. A row must then take part in every step from the first on (its moments count the
        steps taken by all); ReLU splitting drops the domains that look refuted and never takes them back."""
        state = self._state.get(key)
        if state is None:
            full = grad if rows is None else np.zeros(shape, dtype=grad.dtype)
            state = self._state[key] = [np.zeros_like(full), np.zeros_like(full), 0]
        state[2] += 1
        t = state[2]
        if rows is not None:
            first, second = state[0][rows], state[1][rows]
            update = self._update(first, second, grad, lr, t)
            state[0][rows], state[1][rows] = first, second
            return update
        return self._update(state[0], state[1], grad, lr, t)

    @staticmethod
    def _update(first, second, grad, lr, t):
        """Advance the moments in place; the update."""
        # 0.1 and 0.001 are written out: 1 - 0.9 and 1 - 0.999 are not those floats, and in place
        # with Python-float factors a float32 moment stays float32
        first *= 0.9
        first += 0.1 * grad
        second *= 0.999
        second += 0.001 * grad * grad
        return lr * (first / (1 - 0.9 ** t)) / (np.sqrt(second / (1 - 0.999 ** t)) + 1e-12)
