"""Lowering input-dependent ONNX nodes onto a `Chain`.

`LOWERINGS` maps each op in `LOWERED_OPS` to its lowering. Each takes (chain,
position of the dynamic input, its shape, the constant inputs (None where
absent or dynamic), the attributes) and returns the output shape.
"""

from __future__ import annotations

import numpy as np

from .chain import LoweringError, prod
from .folding import FOLDERS, normalize_axis
from .matrices import (avgpool_matrix, batchnorm_affine, conv_matrix, matmul_left, matmul_right, maxpool_groups,
                       window_params)


_INDEX_OPS = {"Identity", "Dropout", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose", "Slice",
              "Gather", "Expand"}
_ELEMENTWISE_OPS = {"Add", "Sub", "Mul", "Div", "Neg"}
LOWERED_OPS = _INDEX_OPS | _ELEMENTWISE_OPS | {
    "Relu", "MatMul", "Gemm", "Conv", "BatchNormalization", "AveragePool", "GlobalAveragePool", "MaxPool",
    "GlobalMaxPool", "ReduceMax"}


def _lower_index_op(op):
    """Data movement: run the op on a tensor of positions to learn where each output value comes from."""
    def lower(chain, k, x_shape, consts, attrs):
        if k != 0:
            raise LoweringError("only the first input may depend on the network input")
        if op == "Dropout" and len(consts) > 2 and consts[2] is not None and bool(np.asarray(consts[2]).any()):
            raise LoweringError("training_mode=true is not supported")
        positions = np.arange(prod(x_shape), dtype=np.int64).reshape(x_shape)
        out = np.asarray(FOLDERS[op]([positions] + consts[1:], attrs)[0])
        chain.move(out.ravel())
        return out.shape
    return lower


def _make_elementwise(op):
    def lower(chain, k, x_shape, consts, attrs):
        if op == "Neg":
            c, out_shape = np.zeros(()), tuple(x_shape)
        else:
            c = np.asarray(consts[1 - k], dtype=np.float64)
            try:
                out_shape = np.broadcast_shapes(tuple(x_shape), c.shape)
            except ValueError:
                raise LoweringError(f"cannot broadcast shapes {list(x_shape)} and {list(c.shape)}") from None
        if out_shape != tuple(x_shape):  # the constant broadcasts the dynamic tensor up
            positions = np.arange(prod(x_shape)).reshape(x_shape)
            chain.move(np.broadcast_to(positions, out_shape).ravel())
        c = np.broadcast_to(c, out_shape).ravel()
        if op == "Add":
            scale, shift = 1.0, c
        elif op == "Sub":
            scale, shift = (1.0, -c) if k == 0 else (-1.0, c)
        elif op == "Mul":
            scale, shift = c, 0.0
        elif op == "Neg":
            scale, shift = -1.0, 0.0
        else:  # Div
            if k == 1:
                raise LoweringError("divides by an input-dependent tensor, which is not piecewise linear")
            if np.any(c == 0):
                raise LoweringError("divides by a constant that contains zero")
            scale, shift = 1.0 / c, 0.0
        n = prod(out_shape)
        scale = np.broadcast_to(np.asarray(scale, dtype=np.float64), (n,))
        shift = np.broadcast_to(np.asarray(shift, dtype=np.float64), (n,))
        if np.all(scale == 1.0):
            if np.any(shift != 0.0):  # NaN shifts are kept, so validate() reports them
                chain.add(shift)
        else:
            import scipy.sparse as sp
            chain.affine(sp.diags(scale).tocsr(), shift)
        return out_shape
    return lower


def _lower_relu(chain, k, x_shape, consts, attrs):
    chain.relu()
    return x_shape


def _lower_matmul(chain, k, x_shape, consts, attrs):
    c = _constant(consts[1 - k], "the other MatMul operand")
    weight, out_shape = matmul_right(x_shape, c) if k == 0 else matmul_left(c, x_shape)
    chain.affine(weight, np.zeros(weight.shape[0]))
    return out_shape


def _lower_gemm(chain, k, x_shape, consts, attrs):
    if k == 2:
        raise LoweringError("an input-dependent C operand is not supported")
    if len(x_shape) != 2:
        raise LoweringError(f"Gemm needs 2-D operands, got shape {list(x_shape)}")
    alpha, beta = float(attrs.get("alpha", 1.0)), float(attrs.get("beta", 1.0))
    trans_a, trans_b = bool(attrs.get("transA", 0)), bool(attrs.get("transB", 0))
    if (k == 0 and trans_a) or (k == 1 and trans_b):  # transposing the dynamic operand is data movement
        chain.move(np.arange(prod(x_shape)).reshape(x_shape).T.ravel())
        x_shape = tuple(reversed(x_shape))
    if k == 0:
        b = _constant(consts[1], "B")
        weight, out_shape = matmul_right(x_shape, b.T if trans_b else b, require_2d=True)
    else:
        a = _constant(consts[0], "A")
        weight, out_shape = matmul_left(a.T if trans_a else a, x_shape, require_2d=True)
    if alpha != 1.0:
        weight = weight * alpha
    bias = np.zeros(prod(out_shape))
    if len(consts) > 2 and consts[2] is not None and beta != 0.0:
        c = np.asarray(consts[2], dtype=np.float64)
        try:
            bias = beta * np.broadcast_to(c, out_shape).ravel()
        except ValueError:
            raise LoweringError(f"C of shape {list(c.shape)} does not broadcast to {list(out_shape)}") from None
    chain.affine(weight, bias)
    return out_shape


def _lower_conv(chain, k, x_shape, consts, attrs):
    if k != 0:
        raise LoweringError("input-dependent weights are not supported")
    w = _constant(consts[1], "the weights")
    b = consts[2] if len(consts) > 2 else None
    if len(x_shape) != 4 or w.ndim != 4:
        raise LoweringError(f"only 2-D convolutions are supported (input shape {list(x_shape)}, "
                            f"weights {list(w.shape)})")
    if "kernel_shape" in attrs and tuple(attrs["kernel_shape"]) != tuple(w.shape[2:]):
        raise LoweringError(f"kernel_shape {attrs['kernel_shape']} does not match the weights {list(w.shape)}")
    strides, dilations, pads = window_params(attrs, x_shape[2:], w.shape[2:])
    weight, bias, out_shape = conv_matrix(x_shape, w, b, strides, pads, dilations, int(attrs.get("group", 1)))
    chain.affine(weight, bias)
    return out_shape


def _lower_batchnorm(chain, k, x_shape, consts, attrs):
    import scipy.sparse as sp
    if k != 0:
        raise LoweringError("input-dependent parameters are not supported")
    if attrs.get("training_mode", 0):
        raise LoweringError("training_mode=1 is not supported")
    if attrs.get("spatial", 1) != 1:
        raise LoweringError("spatial=0 is not supported")
    params = [_constant(consts[i] if i < len(consts) else None, name)
              for i, name in enumerate(("scale", "B", "mean", "var"), start=1)]
    scale, shift = batchnorm_affine(x_shape, *params, float(attrs.get("epsilon", 1e-5)))
    chain.affine(sp.diags(scale).tocsr(), shift)
    return x_shape


def _lower_avgpool(chain, k, x_shape, consts, attrs):
    kernel = _pool_kernel(x_shape, attrs)
    strides, dilations, pads = window_params(attrs, x_shape[2:], kernel)
    _check_ceil_mode(attrs, x_shape[2:], kernel, strides, pads, dilations)
    weight, out_shape = avgpool_matrix(x_shape, kernel, strides, pads, dilations,
                                       bool(attrs.get("count_include_pad", 0)))
    chain.affine(weight, np.zeros(weight.shape[0]))
    return out_shape


def _lower_global_avgpool(chain, k, x_shape, consts, attrs):
    _require_nchw(x_shape)
    weight, out_shape = avgpool_matrix(x_shape, x_shape[2:], (1, 1), (0, 0, 0, 0), (1, 1), False)
    chain.affine(weight, np.zeros(weight.shape[0]))
    return out_shape


def _lower_maxpool(chain, k, x_shape, consts, attrs):
    kernel = _pool_kernel(x_shape, attrs)
    strides, dilations, pads = window_params(attrs, x_shape[2:], kernel)
    _check_ceil_mode(attrs, x_shape[2:], kernel, strides, pads, dilations)
    groups, out_shape = maxpool_groups(x_shape, kernel, strides, pads, dilations)
    chain.max_groups(groups)
    return out_shape


def _lower_global_maxpool(chain, k, x_shape, consts, attrs):
    _require_nchw(x_shape)
    groups, out_shape = maxpool_groups(x_shape, x_shape[2:], (1, 1), (0, 0, 0, 0), (1, 1))
    chain.max_groups(groups)
    return out_shape


def _lower_reducemax(chain, k, x_shape, consts, attrs):
    if k != 0:
        raise LoweringError("only the first input may depend on the network input")
    axes = attrs.get("axes")
    if axes is None and len(consts) > 1 and consts[1] is not None:
        axes = [int(a) for a in np.asarray(consts[1]).ravel()]
    if not axes:
        if attrs.get("noop_with_empty_axes", 0):
            return x_shape
        axes = list(range(len(x_shape)))
    axes = sorted({normalize_axis(a, len(x_shape)) for a in axes})
    kept = [d for d in range(len(x_shape)) if d not in axes]
    positions = np.arange(prod(x_shape)).reshape(x_shape).transpose(kept + axes)
    chain.max_groups(positions.reshape(prod([x_shape[d] for d in kept]), -1))
    if attrs.get("keepdims", 1):
        return tuple(1 if d in axes else x_shape[d] for d in range(len(x_shape)))
    return tuple(x_shape[d] for d in kept)


LOWERINGS = {
    **{op: _lower_index_op(op) for op in _INDEX_OPS},
    **{op: _make_elementwise(op) for op in _ELEMENTWISE_OPS},
    "Relu": _lower_relu, "MatMul": _lower_matmul, "Gemm": _lower_gemm, "Conv": _lower_conv,
    "BatchNormalization": _lower_batchnorm, "AveragePool": _lower_avgpool,
    "GlobalAveragePool": _lower_global_avgpool, "MaxPool": _lower_maxpool,
    "GlobalMaxPool": _lower_global_maxpool, "ReduceMax": _lower_reducemax,
}


def _constant(value, what: str) -> np.ndarray:
    if value is None:
        raise LoweringError(f"{what} must be a constant (an initializer or computed from constants)")
    return np.asarray(value)


def _require_nchw(x_shape):
    if len(x_shape) != 4:
        raise LoweringError(f"only 2-D pooling on NCHW tensors is supported (input shape {list(x_shape)})")


def _pool_kernel(x_shape, attrs) -> tuple:
    _require_nchw(x_shape)
    kernel = tuple(int(v) for v in attrs.get("kernel_shape", ()))
    if len(kernel) != 2 or min(kernel) < 1:
        raise LoweringError(f"kernel_shape must list two positive sizes, got {list(kernel)}")
    return kernel


def _check_ceil_mode(attrs, in_hw, kernel, strides, pads, dilations):
    if not attrs.get("ceil_mode", 0):
        return
    for i in range(2):
        span = in_hw[i] + pads[i] + pads[i + 2] - dilations[i] * (kernel[i] - 1) - 1
        if span % strides[i]:
            raise LoweringError("ceil_mode=1 changes the output size here, which is not supported")
