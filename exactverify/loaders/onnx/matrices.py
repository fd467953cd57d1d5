"""Affine maps and max groups of the common layers, shared by the ONNX and torch loaders.

Each builder takes the shape of the tensor it reads (batch size 1) and the
layer's constants, and returns the layer in IR terms: matrix multiplication by
a constant on either side and 2-D convolution as a weight matrix (dense or
CSR), average pooling as a CSR matrix and max pooling as MaxGroups indices
(both over the sliding windows of `windows`), and inference-mode batch
normalisation as a per-element scale and shift.
"""

from __future__ import annotations

import numpy as np

from ...core.network import issparse
from .chain import LoweringError, prod


def matmul_right(x_shape, c: np.ndarray, require_2d: bool = False):
    """The map x -> x @ c (numpy matmul rules) for a constant c; returns (weight, output shape)."""
    c = np.asarray(c, dtype=np.float64)
    x_shape = tuple(x_shape)
    if c.ndim not in (1, 2) or not x_shape or (require_2d and (c.ndim != 2 or len(x_shape) != 2)):
        raise LoweringError(f"cannot multiply a tensor of shape {list(x_shape)} by a constant of shape {list(c.shape)}")
    if x_shape[-1] != c.shape[0]:
        raise LoweringError(f"shapes {list(x_shape)} and {list(c.shape)} do not match for matrix multiplication")
    rows = prod(x_shape[:-1])
    block = c.T if c.ndim == 2 else c[None, :]
    out_shape = x_shape[:-1] + c.shape[1:]
    return _block_diagonal(block, rows), out_shape


def matmul_left(c: np.ndarray, x_shape, require_2d: bool = False):
    """The map x -> c @ x (numpy matmul rules) for a constant c; returns (weight, output shape)."""
    c = np.asarray(c, dtype=np.float64)
    x_shape = tuple(x_shape)
    if c.ndim not in (1, 2) or not x_shape or (require_2d and (c.ndim != 2 or len(x_shape) != 2)):
        raise LoweringError(f"cannot multiply a constant of shape {list(c.shape)} by a tensor of shape {list(x_shape)}")
    k_axis = 0 if len(x_shape) == 1 else -2
    if c.shape[-1] != x_shape[k_axis]:
        raise LoweringError(f"shapes {list(c.shape)} and {list(x_shape)} do not match for matrix multiplication")
    block = c if c.ndim == 2 else c[None, :]
    if len(x_shape) == 1:
        return block.copy(), c.shape[:-1]
    batch, cols = prod(x_shape[:-2]), x_shape[-1]
    if cols == 1:
        inner = block
    else:
        import scipy.sparse as sp
        inner = sp.kron(block, sp.identity(cols), format="csr")
    out_shape = x_shape[:-2] + c.shape[:-1] + (cols,)
    return _block_diagonal(inner, batch), out_shape


def _block_diagonal(block, copies: int):
    """`copies` copies of `block` on the diagonal; dense when there is just one."""
    if copies == 1:
        return block.toarray() if issparse(block) else np.ascontiguousarray(block)
    import scipy.sparse as sp
    return sp.kron(sp.identity(copies, format="csr"), block, format="csr")


def window_params(attrs, in_hw, kernel):
    """(strides, dilations, pads) of a 2-D Conv/pool node; pads as (top, left, bottom, right)."""
    strides = tuple(int(v) for v in attrs.get("strides", (1, 1)))
    dilations = tuple(int(v) for v in attrs.get("dilations", (1, 1)))
    if len(strides) != 2 or len(dilations) != 2 or min(strides + dilations) < 1:
        raise LoweringError(f"strides {list(strides)} / dilations {list(dilations)} must be two positive integers each")
    auto_pad = attrs.get("auto_pad", "NOTSET")
    if auto_pad == "NOTSET":
        pads = tuple(int(v) for v in attrs.get("pads", (0, 0, 0, 0)))
        if len(pads) != 4 or min(pads) < 0:
            raise LoweringError(f"pads {list(pads)} must be four non-negative integers")
    elif auto_pad == "VALID":
        pads = (0, 0, 0, 0)
    elif auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        begin, end = [], []
        for size, k, s, d in zip(in_hw, kernel, strides, dilations):
            total = max(0, (-(-size // s) - 1) * s + (k - 1) * d + 1 - size)
            small, large = total // 2, total - total // 2
            begin.append(small if auto_pad == "SAME_UPPER" else large)
            end.append(large if auto_pad == "SAME_UPPER" else small)
        pads = (begin[0], begin[1], end[0], end[1])
    else:
        raise LoweringError(f"auto_pad={auto_pad} is not supported")
    return strides, dilations, pads


def windows(in_hw, kernel, strides, pads, dilations):
    """Sliding windows over an H x W image.

    Returns (OH, OW, index) with index of shape (OH*OW, kh*kw): the flat
    position h*W + w each window entry reads, or -1 where it falls in padding.
    """
    (h, w), (kh, kw), (sh, sw), (dh, dw) = in_hw, kernel, strides, dilations
    oh = (h + pads[0] + pads[2] - dh * (kh - 1) - 1) // sh + 1
    ow = (w + pads[1] + pads[3] - dw * (kw - 1) - 1) // sw + 1
    if oh < 1 or ow < 1:
        raise LoweringError(f"the {kh}x{kw} window does not fit the padded {h}x{w} input")
    rows = np.arange(oh)[:, None] * sh - pads[0] + np.arange(kh)[None, :] * dh  # (oh, kh)
    cols = np.arange(ow)[:, None] * sw - pads[1] + np.arange(kw)[None, :] * dw  # (ow, kw)
    inside = ((rows >= 0) & (rows < h))[:, None, :, None] & ((cols >= 0) & (cols < w))[None, :, None, :]
    index = np.where(inside, rows[:, None, :, None] * w + cols[None, :, None, :], -1)
    return oh, ow, index.reshape(oh * ow, kh * kw)


def conv_matrix(x_shape, w, b, strides, pads, dilations, group: int):
    """A 2-D convolution over a (1, C, H, W) tensor as a CSR matrix; returns (weight, bias, output shape)."""
    import scipy.sparse as sp
    n, c_in, h, wd = x_shape
    m, c_group, kh, kw = w.shape
    if n != 1:
        raise LoweringError(f"batch size {n} is not supported (only 1)")
    if group < 1 or m % group or c_in != c_group * group:
        raise LoweringError(f"{c_in} input channels, {m} output channels and weights {list(w.shape)} "
                            f"do not fit group={group}")
    oh, ow, win = windows((h, wd), (kh, kw), strides, pads, dilations)
    p = oh * ow
    out_ch = np.arange(m)[:, None, None, None]
    ch = np.arange(c_group)[None, :, None, None]
    entry = np.arange(kh * kw)[None, None, None, :]
    spatial = win[None, None, :, :]  # (1, 1, p, kh*kw)
    in_ch = (out_ch // (m // group)) * c_group + ch
    vals = np.asarray(w, dtype=np.float64).reshape(m, c_group, kh * kw)[out_ch, ch, entry]
    shape = (m, c_group, p, kh * kw)
    rows = np.broadcast_to(out_ch * p + np.arange(p)[None, None, :, None], shape)
    cols = np.broadcast_to(in_ch * (h * wd) + spatial, shape)
    vals = np.broadcast_to(vals, shape)
    keep = np.broadcast_to(spatial >= 0, shape) & (vals != 0)  # NaN != 0, so NaN weights stay for validate()
    weight = sp.csr_matrix((vals[keep], (rows[keep], cols[keep])), shape=(m * p, c_in * h * wd))
    if b is None:
        bias = np.zeros(m * p)
    else:
        b = np.asarray(b, dtype=np.float64).ravel()
        if b.shape != (m,):
            raise LoweringError(f"bias of shape {list(b.shape)} does not match {m} output channels")
        bias = np.repeat(b, p)
    return weight, bias, (1, m, oh, ow)


def avgpool_matrix(x_shape, kernel, strides, pads, dilations, count_include_pad: bool, divisor=None):
    """2-D average pooling over a (1, C, H, W) tensor as a CSR matrix; returns (weight, output shape).

    Each window's sum is divided by `divisor` when given, else by its size
    (padding included or not, per `count_include_pad`).
    """
    import scipy.sparse as sp
    n, c, h, w = x_shape
    if n != 1:
        raise LoweringError(f"batch size {n} is not supported (only 1)")
    oh, ow, win = windows((h, w), kernel, strides, pads, dilations)
    inside = win >= 0
    if divisor is not None:
        count = np.full(len(win), divisor)
    elif count_include_pad:
        count = np.full(len(win), kernel[0] * kernel[1])
    else:
        count = inside.sum(axis=1)
    if np.any(inside.sum(axis=1) == 0):
        raise LoweringError("an averaging window covers only padding")
    p = oh * ow
    ch = np.arange(c)[:, None, None]
    rows = np.broadcast_to(ch * p + np.arange(p)[None, :, None], (c,) + win.shape)
    cols = np.broadcast_to(ch * (h * w) + win[None], (c,) + win.shape)
    vals = np.broadcast_to((1.0 / count)[None, :, None], (c,) + win.shape)
    keep = np.broadcast_to(inside[None], (c,) + win.shape)
    weight = sp.csr_matrix((vals[keep], (rows[keep], cols[keep])), shape=(c * p, c * h * w))
    return weight, (1, c, oh, ow)


def maxpool_groups(x_shape, kernel, strides, pads, dilations):
    """2-D max pooling over a (1, C, H, W) tensor as MaxGroups indices; returns (groups, output shape)."""
    n, c, h, w = x_shape
    if n != 1:
        raise LoweringError(f"batch size {n} is not supported (only 1)")
    oh, ow, win = windows((h, w), kernel, strides, pads, dilations)
    groups = np.where(win[None] >= 0, np.arange(c)[:, None, None] * (h * w) + win[None], -1)
    return groups.reshape(c * oh * ow, -1), (1, c, oh, ow)


def batchnorm_affine(x_shape, scale, bias, mean, var, eps: float):
    """Inference-mode batch normalisation (channels on axis 1) as per-element (scale, shift)."""
    if len(x_shape) < 2:
        raise LoweringError(f"batch normalisation needs a channel axis (input shape {list(x_shape)})")
    channels = x_shape[1]
    params = [np.asarray(p, dtype=np.float64).ravel() for p in (scale, bias, mean, var)]
    if any(p.shape != (channels,) for p in params):
        raise LoweringError(f"parameter shapes {[list(p.shape) for p in params]} do not match {channels} channels")
    scale, bias, mean, var = params
    if np.any(var + eps <= 0):
        raise LoweringError("variance + epsilon is not positive")
    factor = scale / np.sqrt(var + eps)
    channel_of = (np.arange(prod(x_shape)) // prod(x_shape[2:])) % channels
    return factor[channel_of], (bias - mean * factor)[channel_of]
