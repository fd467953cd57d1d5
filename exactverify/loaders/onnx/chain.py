"""The chain of IR layers under construction, shared by the ONNX and torch loaders.

`Chain` accumulates Affine, ReLU and MaxGroups layers and keeps data movement
as a pending index map, which it folds exactly into a neighbouring layer. Here
too are `LoweringError`, which every lowering helper raises, and `prod`.
"""

from __future__ import annotations

import math

import numpy as np

from ...core.network import Affine, MaxGroups, ReLU


class LoweringError(Exception):
    """A problem with the model found by a lowering helper; the loaders turn it into an
    InputError naming the file (and node). torch_module shares these helpers."""


def prod(shape) -> int:
    """The number of elements of a tensor of this shape, as a Python int."""
    return int(math.prod(shape))


class Chain:
    """Accumulates IR layers; data movement is kept as a pending index map.

    The current tensor, flattened, is `last layer output[index]` (or the
    network input before any layer). Folding the map into a neighbouring
    Affine only reorders or copies its rows/columns, so weights stay
    bit-for-bit what the file stores.
    """

    def __init__(self, n_in: int):
        self.layers: list = []
        self.width = n_in  # size of the last layer's output
        self.index: np.ndarray | None = None  # None means the identity

    @property
    def size(self) -> int:
        """The length of the current tensor, flattened."""
        return self.width if self.index is None else len(self.index)

    def move(self, index) -> None:
        """The new current tensor is the current one at positions `index`."""
        index = np.asarray(index, dtype=np.int64).ravel()
        if self.index is not None:
            index = self.index[index]
        self.index = index
        if len(index) == self.width and np.array_equal(index, np.arange(self.width)):
            self.index = None
        elif isinstance(self._last(), Affine) and len(np.unique(index)) == len(index):
            self._apply_index()  # reorders or drops rows; repeats are left for max_groups to absorb

    def affine(self, weight, bias) -> None:
        """Append current -> weight @ current + bias."""
        if weight.shape[1] != self.size:
            raise LoweringError(f"internal size mismatch: a {weight.shape} map applied to {self.size} values")
        if self.index is not None:
            if _is_permutation(self.index, self.width):
                weight = weight[:, np.argsort(self.index)]
                self.index = None
            else:
                self._apply_index()
        self.layers.append(Affine(weight, np.asarray(bias, dtype=np.float64)))
        self.width = weight.shape[0]

    def add(self, shift: np.ndarray) -> None:
        """Append current -> current + shift, as the bias of a bias-free Affine just before when there is one."""
        last = self._last()
        if self.index is None and isinstance(last, Affine) and not np.any(last.bias):
            self.layers[-1] = Affine(last.weight, np.asarray(shift, dtype=np.float64).copy())
        else:
            import scipy.sparse as sp
            self.affine(sp.identity(self.size, format="csr"), shift)

    def relu(self) -> None:
        """Append current -> max(current, 0)."""
        # ReLU commutes with any index map; only a map that drops values is applied first,
        # so that no ReLU is spent on a value nobody reads.
        if self.index is not None and len(np.unique(self.index)) < self.width:
            self._apply_index()
        self.layers.append(ReLU(self.width))

    def max_groups(self, groups: np.ndarray) -> None:
        """Append current -> [max(current[g]) for g in groups]; -1 entries are padding."""
        groups = np.asarray(groups, dtype=np.int64)
        if self.index is not None:
            groups = np.where(groups >= 0, self.index[np.maximum(groups, 0)], -1)
        groups = _tidy_groups(groups)
        self.layers.append(MaxGroups(groups, self.width))
        self.width, self.index = groups.shape[0], None

    def finish(self) -> list:
        """Make any pending index map real and return the layers (at least one)."""
        if self.index is not None:
            self._apply_index()
        if not self.layers:
            self._apply_index()  # an identity map: a network needs at least one layer
        return self.layers

    def _last(self):
        return self.layers[-1] if self.layers else None

    def _apply_index(self) -> None:
        """Make the pending index map real: pick rows of the last Affine, or add a 0/1 selection layer."""
        index = np.arange(self.width) if self.index is None else self.index
        last = self._last()
        if isinstance(last, Affine) and self.index is not None:
            self.layers[-1] = Affine(last.weight[index], last.bias[index])
        else:
            import scipy.sparse as sp
            n = len(index)
            weight = sp.csr_matrix((np.ones(n), (np.arange(n), index)), shape=(n, self.width))
            self.layers.append(Affine(weight, np.zeros(n)))
        self.width, self.index = len(index), None


def _is_permutation(index: np.ndarray, n: int) -> bool:
    return len(index) == n and np.array_equal(np.sort(index), np.arange(n))


def _tidy_groups(groups: np.ndarray) -> np.ndarray:
    """Sort each group, drop repeated members, move the -1 padding to the end, trim the width."""
    if groups.size == 0 or np.any(np.all(groups < 0, axis=1)):
        raise LoweringError("a max-pooling window covers only padding")
    g = np.sort(groups, axis=1)
    repeated = np.zeros(g.shape, dtype=bool)
    repeated[:, 1:] = g[:, 1:] == g[:, :-1]
    g = np.where(repeated | (g < 0), -1, g)
    g = np.take_along_axis(g, np.argsort(g < 0, axis=1, kind="stable"), axis=1)
    return np.ascontiguousarray(g[:, : int((g >= 0).sum(axis=1).max())])
