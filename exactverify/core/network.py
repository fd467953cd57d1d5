"""The network IR: a sequence of affine maps and piecewise-linear activations.

Every loader (ONNX, .nnet, PyTorch) lowers into this form, and every backend
(bounds, MILP, SMT, attacks) handles exactly these three layer types:

- `Affine`: y = W x + b, with W dense (numpy) or sparse (scipy CSR). Conv,
  Gemm, MatMul+Add, BatchNorm, AveragePool, Sub/Div/Mul normalisation,
  Flatten/Reshape (a permutation) all become this.
- `ReLU`: y = max(x, 0) elementwise.
- `MaxGroups`: y_k = max over x[groups[k]] (MaxPool and friends).

Vectors are flat, in the row-major order of the ONNX tensor without its batch
dimension. Weights keep the float32 values the file stores, held in float64
arrays (float64 represents every float32 exactly); all our arithmetic is float64.
`forward32` reproduces the float32 arithmetic of the stored model for re-checking
counterexamples the way an ONNX runtime would see them.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

import numpy as np

from .errors import InputError


def issparse(weight) -> bool:
    """Whether `weight` is a scipy sparse matrix, without importing scipy where nothing has (start-up time)."""
    # a sparse matrix exists only once scipy.sparse, which defines its classes, has been imported
    sparse = sys.modules.get("scipy.sparse")
    return sparse is not None and sparse.issparse(weight)


@dataclass
class Affine:
    """y = weight @ x + bias; weight has shape (n_out, n_in)."""

    weight: object  # np.ndarray or scipy.sparse.csr_matrix, float64
    bias: np.ndarray  # (n_out,) float64

    @property
    def in_size(self) -> int:
        """Number of inputs."""
        return self.weight.shape[1]

    @property
    def out_size(self) -> int:
        """Number of outputs."""
        return self.weight.shape[0]

    @property
    def is_sparse(self) -> bool:
        """Whether the weight is a scipy sparse matrix."""
        return issparse(self.weight)

    def dense_weight(self) -> np.ndarray:
        """The weight as a dense numpy array (the weight itself when it is already dense)."""
        return self.weight.toarray() if self.is_sparse else self.weight

    def apply(self, x: np.ndarray) -> np.ndarray:
        """x has shape (batch, n_in); returns (batch, n_out)."""
        return np.asarray((self.weight @ x.T).T) + self.bias


@dataclass
class ReLU:
    """y = max(x, 0) elementwise over `size` units."""

    size: int

    @property
    def in_size(self) -> int:
        """Number of inputs (`size`)."""
        return self.size

    @property
    def out_size(self) -> int:
        """Number of outputs (`size`)."""
        return self.size

    def apply(self, x: np.ndarray) -> np.ndarray:
        """max(x, 0) elementwise; x has shape (batch, size)."""
        return np.maximum(x, 0.0)


@dataclass
class MaxGroups:
    """y_k = max_j x[groups[k, j]], ignoring entries equal to -1 (padding)."""

    groups: np.ndarray  # (n_out, k) int64, -1 where a group is shorter
    in_size_: int  # number of inputs (not derivable from groups)

    @property
    def in_size(self) -> int:
        """Number of inputs."""
        return self.in_size_

    @property
    def out_size(self) -> int:
        """Number of outputs: one per group."""
        return self.groups.shape[0]

    def members(self, k: int) -> np.ndarray:
        """The input indices of group k, padding dropped."""
        g = self.groups[k]
        return g[g >= 0]

    def apply(self, x: np.ndarray) -> np.ndarray:
        """The max over each group; x has shape (batch, n_in), returns (batch, n_out)."""
        idx = np.where(self.groups >= 0, self.groups, 0)
        vals = x[:, idx]  # (batch, n_out, k)
        vals = np.where(self.groups[None] >= 0, vals, -np.inf)
        return vals.max(axis=2)


Layer = Affine | ReLU | MaxGroups


@dataclass
class Network:
    """A network: its layers in order, its ONNX input and output shapes, and where it came from."""

    layers: list  # Affine | ReLU | MaxGroups, applied in order
    input_shape: tuple = ()  # the ONNX input shape, batch dimension included if the file has one
    output_shape: tuple = ()
    source: str | None = None  # the file it was loaded from, for messages
    meta: dict = field(default_factory=dict)  # loader-specific extras, e.g. .nnet input ranges

    @property
    def input_size(self) -> int:
        """Number of inputs (flat)."""
        return self.layers[0].in_size

    @property
    def output_size(self) -> int:
        """Number of outputs (flat)."""
        return self.layers[-1].out_size

    @property
    def num_relus(self) -> int:
        """Number of ReLU units over all ReLU layers."""
        return sum(l.size for l in self.layers if isinstance(l, ReLU))

    def validate(self) -> "Network":
        """Check sizes chain up and weights are finite; raise InputError otherwise."""
        if not self.layers:
            raise InputError(self.source, "network has no layers")
        prev = self.layers[0].in_size
        for i, layer in enumerate(self.layers):
            if layer.in_size != prev:
                raise InputError(self.source, f"layer {i} ({type(layer).__name__}) expects {layer.in_size} inputs "
                                              f"but the previous layer gives {prev}")
            if isinstance(layer, Affine):
                data = layer.weight.data if layer.is_sparse else layer.weight
                if not np.all(np.isfinite(data)) or not np.all(np.isfinite(layer.bias)):
                    raise InputError(self.source, f"layer {i} has NaN or infinite weights")
                if layer.bias.shape != (layer.out_size,):
                    raise InputError(self.source, f"layer {i} bias has shape {layer.bias.shape}, "
                                                  f"expected ({layer.out_size},)")
            prev = layer.out_size
        return self

    def forward(self, x) -> np.ndarray:
        """Float64 forward pass. x: (n_in,) or (batch, n_in)."""
        x = np.asarray(x, dtype=np.float64)
        single = x.ndim == 1
        h = x.reshape(1, -1) if single else x
        for layer in self.layers:
            h = layer.apply(h)
        return h[0] if single else h

    def forward32(self, x) -> np.ndarray:
        """Float32 forward pass, as a float32 runtime would compute it on the stored weights."""
        x = np.asarray(x, dtype=np.float32)
        single = x.ndim == 1
        h = x.reshape(1, -1) if single else x
        for layer in self.layers:
            if isinstance(layer, Affine):
                w = layer.weight.astype(np.float32)
                h = (np.asarray((w @ h.T).T, dtype=np.float32) + layer.bias.astype(np.float32)).astype(np.float32)
            else:
                h = layer.apply(h).astype(np.float32)
        return h[0] if single else h

    def simplified(self, max_dense_fuse: int = 4_000_000) -> "Network":
        """An equivalent network with consecutive affine maps fused and repeated ReLUs dropped.

        Fusion is done in float64; the tiny rounding this adds is covered by the
        outward padding of every bound. Large sparse maps are fused only when the
        product stays small, so a conv layer is not blown up into a dense matrix.
        """
        out: list = []
        for layer in self.layers:
            prev = out[-1] if out else None
            if isinstance(layer, Affine) and isinstance(prev, Affine):
                fused = _fuse(prev, layer, max_dense_fuse)
                if fused is not None:
                    out[-1] = fused
                    continue
            if isinstance(layer, ReLU) and isinstance(prev, ReLU):
                continue
            out.append(layer)
        return Network(out, self.input_shape, self.output_shape, self.source, dict(self.meta))

    def describe(self) -> str:
        """The layers on one line, e.g. "Affine(784->100) -> ReLU(100) -> Affine(100->10)"."""
        parts = []
        for layer in self.layers:
            if isinstance(layer, Affine):
                parts.append(f"Affine({layer.in_size}->{layer.out_size}{', sparse' if layer.is_sparse else ''})")
            elif isinstance(layer, ReLU):
                parts.append(f"ReLU({layer.size})")
            else:
                parts.append(f"MaxGroups({layer.in_size}->{layer.out_size})")
        return " -> ".join(parts)


def _fuse(first: Affine, second: Affine, max_dense: int) -> Affine | None:
    """second(first(x)) as one affine map, or None when that would be too large."""
    n_out, n_in = second.out_size, first.in_size
    if first.is_sparse or second.is_sparse:
        import scipy.sparse as sp
        w = sp.csr_matrix(second.weight) @ sp.csr_matrix(first.weight)
        w = sp.csr_matrix(w)
        if w.nnz > max_dense:
            return None
        if w.nnz > 0.3 * n_out * n_in and n_out * n_in <= max_dense:
            w = w.toarray()
    else:
        if n_out * n_in > max_dense and n_out * n_in > first.weight.size + second.weight.size:
            return None
        w = second.weight @ first.weight
    b = np.asarray(second.weight @ first.bias).ravel() + second.bias
    return Affine(w, b)
