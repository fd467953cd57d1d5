"""Lowering ONNX models into the IR, and writing IR networks back out as ONNX.

What is accepted
----------------
A graph with one input-dependent ("dynamic") input and one output, whose
input-dependent part is a single chain: every node reads at most one dynamic
tensor, and that is always the tensor the chain has reached so far. Anything
that depends only on constants (initializers, Constant nodes, Shape of a
tensor with a static shape) is evaluated with numpy first.

The chain may use:
- affine ops: Gemm, MatMul (constant on either side), Add/Sub/Mul/Div/Neg with
  a constant (numpy broadcasting), Conv (2-D), BatchNormalization (inference),
  AveragePool, GlobalAveragePool;
- data movement: Identity, Dropout (inference), Flatten, Reshape, Squeeze,
  Unsqueeze, Transpose, Slice, Gather (constant indices), Expand;
- piecewise linear ops: Relu, MaxPool, GlobalMaxPool, ReduceMax.
Everything else is reported, all at once, as an unsupported operator.

How the lowering stays faithful to the stored weights
-----------------------------------------------------
The IR vector of a tensor is the tensor flattened in row-major order. Because
the batch dimension is 1, this is the same as dropping it, and it also works
for files without a batch dimension (vnncomp2021_test's 1-D inputs).

Each affine op becomes its own `Affine` layer holding the file's float32 values
(as float64). We do not fuse consecutive ops here, because a fused product is
no longer a float32 number and `forward32` would stop reproducing what an
ONNX runtime computes; `Network.simplified()` fuses later, in float64. The
only merges are exact ones:
- data-movement ops become a pending index map (current tensor = previous
  layer's output[index]). It picks rows of the preceding Affine, or reorders
  the columns of the next one when it is a permutation, or is composed into
  the next MaxGroups; failing those it becomes a 0/1 selection layer.
- an Add of a constant right after a bias-free Affine (MatMul then Add) fills
  in that bias: fl(fl(Wx) + c) is what both sides compute.
- Add/Sub of 0 and Mul/Div by 1 are dropped.
Weights that are not copies of stored values: Gemm with alpha != 1, Div
(stored as 1/c), BatchNormalization and AveragePool (1/count). These are exact
in float64 arithmetic on the real-valued network, but may differ from a
float32 runtime by an ulp.

The package
-----------
This module reads the file and writes networks out. The lowering itself is,
from the top down: `graph` (the walk over the nodes and its checks), `ops`
(one lowering per supported op), `folding` (numpy evaluation of constant
nodes), `matrices` (the affine maps of convolution, pooling, matmul and batch
normalisation) and `chain` (the IR layers under construction). `proto` reads
the file's messages without importing the `onnx` package's helpers (start-up time).
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from ...core.errors import InputError, require_file
from ...core.network import Affine, MaxGroups, Network, ReLU
from .graph import GraphLowering, one_line
from .proto import parse_model, uses_external_data


def load_onnx(path) -> Network:
    """Load an ONNX file (or a gzipped one, `.onnx.gz`) as an IR `Network`.

    Any problem with the file is raised as `InputError(path, problem)`.
    """
    path = Path(path)
    model = _read_model(path)
    network = GraphLowering(model, path).run()
    return network.validate()


def save_onnx(network: Network, path) -> None:
    """Write `network` as a float32 ONNX model (opset 13).

    The input is "input" with shape [1, n_in] and the output "output" with
    shape [1, n_out]. Affine layers become Gemm (sparse weights are written
    dense), ReLU becomes Relu, MaxGroups becomes Gather + ReduceMax. Weights
    are rounded to float32, so networks loaded from float32 files round-trip
    exactly.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    if not network.layers:
        raise ValueError("cannot export a network with no layers")
    nodes, initializers = [], []
    current = "input"
    for i, layer in enumerate(network.layers):
        out = "output" if i == len(network.layers) - 1 else f"h{i}"
        if isinstance(layer, Affine):
            w = np.asarray(layer.dense_weight(), dtype=np.float32)
            initializers.append(numpy_helper.from_array(w, f"W{i}"))
            initializers.append(numpy_helper.from_array(np.asarray(layer.bias, dtype=np.float32), f"b{i}"))
            nodes.append(helper.make_node("Gemm", [current, f"W{i}", f"b{i}"], [out], name=f"gemm{i}", transB=1))
        elif isinstance(layer, ReLU):
            nodes.append(helper.make_node("Relu", [current], [out], name=f"relu{i}"))
        elif isinstance(layer, MaxGroups):
            # Groups are ragged; pad each one by repeating a member, which leaves its max unchanged.
            groups = np.where(layer.groups >= 0, layer.groups, layer.groups[:, :1]).astype(np.int64)
            initializers.append(numpy_helper.from_array(groups, f"G{i}"))
            nodes.append(helper.make_node("Gather", [current, f"G{i}"], [f"g{i}"], name=f"gather{i}", axis=1))
            nodes.append(helper.make_node("ReduceMax", [f"g{i}"], [out], name=f"max{i}", axes=[2], keepdims=0))
        else:
            raise TypeError(f"cannot export layer type {type(layer).__name__}")
        current = out
    graph = helper.make_graph(
        nodes, "exactverify",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, network.input_size])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, network.output_size])],
        initializers)
    model = helper.make_model(graph, producer_name="exactverify", opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8  # readable by onnxruntime releases from 2021 on
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


# ---------------------------------------------------------------------------
# Reading the file


def _read_model(path: Path):
    require_file(path, "an ONNX file")
    try:
        if path.name.lower().endswith(".gz"):
            model = parse_model(gzip.decompress(path.read_bytes()))
        else:
            model = parse_model(path.read_bytes())
            if uses_external_data(model):  # onnx.load reads the other files, relative to this one
                import onnx
                model = onnx.load(str(path))
    except Exception as e:  # protobuf, gzip and external-data errors have no common base class
        raise InputError(path, f"cannot be parsed as an ONNX model ({one_line(e)})") from None
    # Arbitrary bytes can decode as a protobuf message with nothing in it.
    if model.ir_version <= 0 or not model.HasField("graph"):
        raise InputError(path, "cannot be parsed as an ONNX model (no IR version or no graph in the file)")
    return model
