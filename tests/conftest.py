from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
BENCHMARKS = REPO.parent / "shared" / "benchmarks"


@pytest.fixture
def benchmarks():
    if not BENCHMARKS.is_dir():
        pytest.skip("../shared/benchmarks is not present")
    return BENCHMARKS


def make_onnx(path, weights, biases, op_for_activation="Relu", input_shape=None):
    """Write a small fully connected ONNX model (Gemm + activation) with onnx.helper alone."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    n_in = weights[0].shape[1]
    n_out = weights[-1].shape[0]
    nodes, inits = [], []
    cur = "input"
    for k, (w, b) in enumerate(zip(weights, biases)):
        inits += [numpy_helper.from_array(np.asarray(w, dtype=np.float32), f"W{k}"),
                  numpy_helper.from_array(np.asarray(b, dtype=np.float32), f"B{k}")]
        nodes.append(helper.make_node("Gemm", [cur, f"W{k}", f"B{k}"], [f"g{k}"], transB=1, name=f"gemm{k}"))
        cur = f"g{k}"
        if k < len(weights) - 1:
            nodes.append(helper.make_node(op_for_activation, [cur], [f"a{k}"], name=f"act{k}"))
            cur = f"a{k}"
    nodes.append(helper.make_node("Identity", [cur], ["output"], name="out"))
    graph = helper.make_graph(nodes, "net",
                              [helper.make_tensor_value_info("input", TensorProto.FLOAT, input_shape or [1, n_in])],
                              [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, n_out])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path
