"""Lowering PyTorch `nn.Sequential` models into the IR.

torch is imported inside the functions only: importing exactverify, or loading
an ONNX or .nnet file, must work (and stay fast) without torch.

Supported layers (exact types: a subclass may override `forward`, so it is
refused): Linear, Conv2d (zero padding), ReLU, Flatten, BatchNorm1d/2d (eval
mode, running statistics), MaxPool2d, AvgPool2d, Identity, Dropout (eval
mode), and nn.Sequential containers of these, nested to any depth. The
lowering reuses the ONNX loader's helpers, so a layer here and the matching
ONNX op produce the same IR.
"""

from __future__ import annotations

import math

import numpy as np

from ..core.errors import InputError
from ..core.network import Network
from .onnx.chain import Chain, LoweringError
from .onnx.matrices import avgpool_matrix, batchnorm_affine, conv_matrix, matmul_right, maxpool_groups


def from_torch(module, input_shape) -> Network:
    """The IR of `module` applied to one tensor of shape `input_shape`.

    `input_shape` is the full shape the module is called on, normally with a
    leading batch dimension of 1, e.g. (1, 784) or (1, 3, 32, 32). The IR
    vectors are these tensors flattened in row-major order, as for ONNX.
    Problems are raised as InputError naming the module.
    """
    import torch

    source = f"<torch {type(module).__name__}>"
    if not isinstance(module, torch.nn.Module):
        raise InputError(source, "not a torch.nn.Module")
    try:
        shape = tuple(int(d) for d in input_shape)
    except (TypeError, ValueError):
        raise InputError(source, f"input_shape must be a sequence of integers, got {input_shape!r}") from None
    if not shape or min(shape) < 1:
        raise InputError(source, f"input_shape must be a non-empty sequence of positive sizes, got {input_shape!r}")

    handlers = _handlers()
    leaves = list(_leaves(module, ""))
    unsupported = [f"{type(m).__name__} ('{name}')" if name else type(m).__name__
                   for name, m in leaves if type(m) not in handlers]
    if unsupported:
        raise InputError(source, f"unsupported module(s): {', '.join(unsupported)}; supported are nn.Sequential of "
                                 f"{', '.join(sorted(t.__name__ for t in handlers))}")

    in_shape, chain = shape, Chain(math.prod(shape))
    with torch.no_grad(), np.errstate(all="ignore"):
        for name, m in leaves:
            try:
                shape = tuple(handlers[type(m)](chain, m, shape))
            except LoweringError as e:
                raise InputError(source, f"{type(m).__name__} '{name or 'root'}' on input shape "
                                          f"{list(shape)}: {e}") from None
    return Network(chain.finish(), in_shape, shape, source).validate()


def _leaves(module, prefix: str):
    """The layers in call order, with their qualified names; containers other than Sequential are leaves."""
    import torch

    if type(module) is torch.nn.Sequential:
        for name, child in module.named_children():
            yield from _leaves(child, f"{prefix}.{name}" if prefix else name)
    else:
        yield prefix, module


def _handlers() -> dict:
    from torch import nn

    return {nn.Linear: _linear, nn.Conv2d: _conv2d, nn.ReLU: _relu, nn.Flatten: _flatten,
            nn.BatchNorm1d: _batchnorm1d, nn.BatchNorm2d: _batchnorm2d, nn.MaxPool2d: _maxpool2d,
            nn.AvgPool2d: _avgpool2d, nn.Identity: _identity, nn.Dropout: _dropout}


def _array(tensor) -> np.ndarray:
    # float32 -> float64 is exact, so the IR holds the stored weights.
    return tensor.detach().cpu().double().numpy()


def _pair(v) -> tuple:
    return (int(v), int(v)) if isinstance(v, int) else tuple(int(x) for x in v)


def _as_nchw(shape) -> tuple:
    """Conv/pool layers accept (N, C, H, W) with N = 1, or an unbatched (C, H, W)."""
    if len(shape) == 3:
        return (1,) + tuple(shape)
    if len(shape) == 4:
        return tuple(shape)
    raise LoweringError("expects a 3-D or 4-D input")


def _like_input(out_shape, in_shape) -> tuple:
    return tuple(out_shape[1:]) if len(in_shape) == 3 else tuple(out_shape)


def _linear(chain, m, shape):
    weight, out_shape = matmul_right(shape, _array(m.weight).T)
    bias = np.zeros(weight.shape[0]) if m.bias is None else np.tile(_array(m.bias), weight.shape[0] // m.out_features)
    chain.affine(weight, bias)
    return out_shape


def _conv2d(chain, m, shape):
    if m.padding_mode != "zeros":
        raise LoweringError(f"padding_mode={m.padding_mode!r} is not supported (only 'zeros')")
    kh, kw = m.kernel_size
    dilation = _pair(m.dilation)
    if m.padding == "valid":
        pads = (0, 0, 0, 0)
    elif m.padding == "same":  # torch puts the odd extra padding at the end
        total = [d * (k - 1) for d, k in zip(dilation, (kh, kw))]
        pads = (total[0] // 2, total[1] // 2, total[0] - total[0] // 2, total[1] - total[1] // 2)
    else:
        ph, pw = _pair(m.padding)
        pads = (ph, pw, ph, pw)
    bias = None if m.bias is None else _array(m.bias)
    weight, bias, out_shape = conv_matrix(_as_nchw(shape), _array(m.weight), bias, _pair(m.stride), pads,
                                          dilation, m.groups)
    chain.affine(weight, bias)
    return _like_input(out_shape, shape)


def _relu(chain, m, shape):
    chain.relu()
    return shape


def _flatten(chain, m, shape):
    rank = len(shape)
    if not (-rank <= m.start_dim < rank and -rank <= m.end_dim < rank):
        raise LoweringError(f"start_dim={m.start_dim}, end_dim={m.end_dim} do not fit a rank-{rank} input")
    start, end = m.start_dim % rank, m.end_dim % rank
    if start > end:
        raise LoweringError(f"start_dim={m.start_dim} comes after end_dim={m.end_dim}")
    # Row-major flattening keeps every value where it is; only the shape changes.
    return shape[:start] + (math.prod(shape[start:end + 1]),) + shape[end + 1:]


def _batchnorm(chain, m, shape, ranks):
    import scipy.sparse as sp
    if len(shape) not in ranks:
        raise LoweringError(f"expects a {' or '.join(map(str, ranks))}-D input")
    if m.training:
        raise LoweringError("is in training mode, where it uses batch statistics; call model.eval() first")
    if m.running_mean is None or m.running_var is None:
        raise LoweringError("has no running statistics (track_running_stats=False)")
    channels = m.num_features
    weight = np.ones(channels) if m.weight is None else _array(m.weight)
    bias = np.zeros(channels) if m.bias is None else _array(m.bias)
    scale, shift = batchnorm_affine(shape, weight, bias, _array(m.running_mean), _array(m.running_var), m.eps)
    chain.affine(sp.diags(scale).tocsr(), shift)
    return shape


def _batchnorm1d(chain, m, shape):
    return _batchnorm(chain, m, shape, (2, 3))


def _batchnorm2d(chain, m, shape):
    return _batchnorm(chain, m, shape, (4,))


def _pool_geometry(m, shape):
    kernel = _pair(m.kernel_size)
    strides = _pair(m.stride if m.stride is not None else m.kernel_size)
    padding = _pair(m.padding)
    dilation = _pair(getattr(m, "dilation", 1))
    pads = padding + padding
    x_shape = _as_nchw(shape)
    if m.ceil_mode:
        for i in range(2):
            span = x_shape[2 + i] + 2 * padding[i] - dilation[i] * (kernel[i] - 1) - 1
            if span % strides[i]:
                raise LoweringError("ceil_mode=True changes the output size here, which is not supported")
    return x_shape, kernel, strides, pads, dilation


def _maxpool2d(chain, m, shape):
    if m.return_indices:
        raise LoweringError("return_indices=True is not supported")
    x_shape, kernel, strides, pads, dilation = _pool_geometry(m, shape)
    groups, out_shape = maxpool_groups(x_shape, kernel, strides, pads, dilation)
    chain.max_groups(groups)
    return _like_input(out_shape, shape)


def _avgpool2d(chain, m, shape):
    x_shape, kernel, strides, pads, dilation = _pool_geometry(m, shape)
    weight, out_shape = avgpool_matrix(x_shape, kernel, strides, pads, dilation, m.count_include_pad,
                                       m.divisor_override)
    chain.affine(weight, np.zeros(weight.shape[0]))
    return _like_input(out_shape, shape)


def _identity(chain, m, shape):
    return shape


def _dropout(chain, m, shape):
    if m.training and m.p > 0:
        raise LoweringError("is in training mode, where it is random; call model.eval() first")
    return shape
