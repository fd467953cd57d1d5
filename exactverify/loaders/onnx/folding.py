"""Constant folding: numpy versions of ONNX ops on constant inputs.

Each folder in `FOLDERS` takes the list of inputs (None where absent) and the
attributes, and returns the outputs. The data-movement ones also lower dynamic
tensors: `ops` runs them on a tensor of positions.
"""

from __future__ import annotations

import numpy as np

from .chain import LoweringError, prod
from .proto import np_dtype


def normalize_axis(a, rank: int) -> int:
    """Axis `a` (negative counts from the end) of a rank-`rank` tensor as an index in [0, rank)."""
    a = int(a)
    if not -rank <= a < rank:
        raise LoweringError(f"axis {a} is out of range for rank {rank}")
    return a % rank


def _axes_input(ins, attrs):
    if "axes" in attrs:
        return [int(a) for a in attrs["axes"]]
    if len(ins) > 1 and ins[1] is not None:
        return [int(a) for a in np.asarray(ins[1]).ravel()]
    return None


def _fold_reshape(ins, attrs):
    x = ins[0]
    shape = ins[1] if len(ins) > 1 and ins[1] is not None else attrs.get("shape")
    if shape is None:
        raise LoweringError("Reshape without a target shape")
    target = [int(s) for s in np.asarray(shape).ravel()]
    if not attrs.get("allowzero", 0):
        for i, s in enumerate(target):
            if s == 0:
                if i >= x.ndim:
                    raise LoweringError(f"cannot copy dimension {i} of a rank-{x.ndim} tensor")
                target[i] = x.shape[i]
    if target.count(-1) > 1 or any(s < -1 for s in target):
        raise LoweringError(f"invalid target shape {target}")
    try:
        return [np.reshape(x, target)]
    except ValueError:
        raise LoweringError(f"cannot reshape {list(x.shape)} to {target}") from None


def _fold_flatten(ins, attrs):
    x = ins[0]
    axis = int(attrs.get("axis", 1))
    if not -x.ndim <= axis <= x.ndim:
        raise LoweringError(f"axis {axis} is out of range for rank {x.ndim}")
    if axis < 0:
        axis += x.ndim
    return [x.reshape(prod(x.shape[:axis]), prod(x.shape[axis:]))]


def _fold_squeeze(ins, attrs):
    x = ins[0]
    axes = _axes_input(ins, attrs)
    if axes is None:
        return [x.reshape([d for d in x.shape if d != 1])]
    axes = {normalize_axis(a, x.ndim) for a in axes}
    if any(x.shape[a] != 1 for a in axes):
        raise LoweringError(f"cannot squeeze axes {sorted(axes)} of shape {list(x.shape)}")
    return [x.reshape([d for i, d in enumerate(x.shape) if i not in axes])]


def _fold_unsqueeze(ins, attrs):
    x = ins[0]
    axes = _axes_input(ins, attrs)
    if axes is None:
        raise LoweringError("Unsqueeze without axes")
    rank = x.ndim + len(axes)
    axes = sorted(normalize_axis(a, rank) for a in axes)
    if len(set(axes)) != len(axes):
        raise LoweringError(f"repeated axes {axes}")
    return [np.expand_dims(x, tuple(axes))]


def _fold_transpose(ins, attrs):
    x = ins[0]
    perm = attrs.get("perm")
    perm = list(reversed(range(x.ndim))) if perm is None else [int(p) for p in perm]
    if sorted(perm) != list(range(x.ndim)):
        raise LoweringError(f"perm {perm} is not a permutation of the {x.ndim} axes")
    return [np.transpose(x, perm)]


def _fold_slice(ins, attrs):
    x = ins[0]
    if "starts" in attrs:  # opset < 10
        starts, ends, axes, steps = attrs["starts"], attrs["ends"], attrs.get("axes"), None
    else:
        starts, ends = ins[1], ins[2]
        axes = ins[3] if len(ins) > 3 else None
        steps = ins[4] if len(ins) > 4 else None
    starts = [int(v) for v in np.asarray(starts).ravel()]
    ends = [int(v) for v in np.asarray(ends).ravel()]
    axes = list(range(len(starts))) if axes is None else [normalize_axis(a, x.ndim) for a in np.asarray(axes).ravel()]
    steps = [1] * len(starts) if steps is None else [int(v) for v in np.asarray(steps).ravel()]
    if not len(starts) == len(ends) == len(axes) == len(steps) or 0 in steps:
        raise LoweringError("inconsistent starts/ends/axes/steps")
    index = [slice(None)] * x.ndim
    for a, s, e, st in zip(axes, starts, ends, steps):
        index[a] = slice(s, e, st)
    return [x[tuple(index)]]


def _fold_gather(ins, attrs):
    x, indices = ins[0], np.asarray(ins[1]).astype(np.int64)
    axis = normalize_axis(attrs.get("axis", 0), x.ndim)
    if np.any(indices >= x.shape[axis]) or np.any(indices < -x.shape[axis]):
        raise LoweringError(f"indices out of range for axis {axis} of size {x.shape[axis]}")
    return [np.take(x, indices, axis=axis)]


def _fold_expand(ins, attrs):
    x, shape = ins[0], tuple(int(s) for s in np.asarray(ins[1]).ravel())
    try:
        return [np.array(np.broadcast_to(x, np.broadcast_shapes(x.shape, shape)))]
    except ValueError:
        raise LoweringError(f"cannot expand shape {list(x.shape)} to {list(shape)}") from None


def _fold_shape(ins, attrs):
    dims = np.array(ins[0].shape, dtype=np.int64)
    start, end = attrs.get("start", 0), attrs.get("end")
    return [dims[start:end]]


def _fold_constant(ins, attrs):
    if "value" in attrs:
        return [np.asarray(attrs["value"])]
    for key, dtype in (("value_float", np.float32), ("value_floats", np.float32),
                       ("value_int", np.int64), ("value_ints", np.int64)):
        if key in attrs:
            return [np.array(attrs[key], dtype=dtype)]
    raise LoweringError(f"Constant node with unsupported value attribute(s) {sorted(attrs)}")


def _fold_constant_of_shape(ins, attrs):
    value = np.asarray(attrs.get("value", np.zeros(1, dtype=np.float32))).ravel()
    return [np.full([int(s) for s in np.asarray(ins[0]).ravel()], value[0], dtype=value.dtype)]


def _fold_div(ins, attrs):
    a, b = ins
    if np.issubdtype(np.result_type(a, b), np.integer):
        return [np.trunc(a / b).astype(np.result_type(a, b))]  # ONNX integer division truncates
    return [np.divide(a, b)]


def _fold_binary(fn):
    return lambda ins, attrs: [fn(ins[0], ins[1])]


def _fold_unary(fn):
    return lambda ins, attrs: [fn(ins[0])]


FOLDERS = {
    "Identity": lambda ins, attrs: [ins[0]],
    "Dropout": lambda ins, attrs: [ins[0], np.ones(np.shape(ins[0]), dtype=bool)],
    "Reshape": _fold_reshape, "Flatten": _fold_flatten, "Squeeze": _fold_squeeze, "Unsqueeze": _fold_unsqueeze,
    "Transpose": _fold_transpose, "Slice": _fold_slice, "Gather": _fold_gather, "Expand": _fold_expand,
    "Shape": _fold_shape, "Constant": _fold_constant, "ConstantOfShape": _fold_constant_of_shape,
    "Concat": lambda ins, attrs: [np.concatenate([x for x in ins if x is not None], axis=int(attrs.get("axis", 0)))],
    "Cast": lambda ins, attrs: [np.asarray(ins[0]).astype(np_dtype(attrs["to"]))],
    "Add": _fold_binary(np.add), "Sub": _fold_binary(np.subtract), "Mul": _fold_binary(np.multiply),
    "Div": _fold_div, "MatMul": _fold_binary(np.matmul),
    "Pow": lambda ins, attrs: [np.power(ins[0], ins[1]).astype(np.asarray(ins[0]).dtype)],
    "Neg": _fold_unary(np.negative), "Sqrt": _fold_unary(np.sqrt), "Reciprocal": _fold_unary(np.reciprocal),
    "Relu": lambda ins, attrs: [np.maximum(ins[0], 0).astype(np.asarray(ins[0]).dtype)],
}
