"""loaders/onnx/proto.py reads what onnx's own helpers read, bit for bit, without importing them."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from exactverify.loaders.onnx import load_onnx, proto
from exactverify.testing import make_onnx

REPO = Path(__file__).resolve().parents[2]

_VALUES = {
    np.float32: [0.0, -0.0, 1.5, -2.25e-30, np.inf, -np.inf, np.nan, 3.4e38, 1e-45, 0.1],
    np.float64: [0.0, -0.0, 1.5, -2.25e-300, np.inf, np.nan, 1.7e308, 5e-324],
    np.float16: [0.0, -0.0, 1.5, -65504.0, np.inf, np.nan, 6e-8, 0.1],
    np.int8: [0, -128, 127, -1], np.uint8: [0, 255, 1, 7], np.int16: [0, -32768, 32767, -1],
    np.uint16: [0, 65535, 1, 300], np.int32: [0, -2**31, 2**31 - 1, -1], np.int64: [0, -2**63, 2**63 - 1, -1],
    np.uint32: [0, 2**32 - 1, 1, 5], np.uint64: [0, 2**64 - 1, 1, 5], np.bool_: [True, False, True, True],
}


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


@pytest.mark.parametrize("dtype", list(_VALUES), ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("raw", [True, False])
def test_to_array_matches_numpy_helper(dtype, raw):
    values = np.array(_VALUES[dtype], dtype=dtype)
    for shape in [values.shape, (2, len(values) // 2), ()]:
        array = values.reshape(shape) if shape else values[:1].reshape(())
        if raw:
            tensor = numpy_helper.from_array(array, "t")
        else:  # the typed fields (float_data, int32_data, ...) that some exporters write
            elem = helper.np_dtype_to_tensor_dtype(array.dtype)
            tensor = helper.make_tensor("t", elem, array.shape, array.ravel().tolist(), raw=False)
        assert tensor.HasField("raw_data") == raw
        assert _same(proto.to_array(tensor), numpy_helper.to_array(tensor))


def test_other_element_types_go_to_onnx():
    for tensor in [helper.make_tensor("b", TensorProto.BFLOAT16, [2], [1.0, 2.5]),
                   helper.make_tensor("s", TensorProto.STRING, [2], [b"a", b"bc"]),
                   helper.make_tensor("c", TensorProto.COMPLEX64, [1], [1 + 2j])]:
        a, b = proto.to_array(tensor), numpy_helper.to_array(tensor)
        assert a.dtype == b.dtype and np.array_equal(a, b)


def test_np_dtype_and_attribute_values_match_helper():
    for elem in [TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.INT64, TensorProto.INT32, TensorProto.BOOL,
                 TensorProto.FLOAT16, TensorProto.UINT8, TensorProto.INT8, TensorProto.UINT64, TensorProto.BFLOAT16]:
        assert proto.np_dtype(elem) == helper.tensor_dtype_to_np_dtype(elem)
    node = helper.make_node("X", ["a"], ["b"], f=1.5, i=-3, s="same_upper", t=numpy_helper.from_array(np.eye(2)),
                            fs=[1.0, 2.0], is_=[1, 2], ss=["a", "b"])
    for a in node.attribute:
        ours, theirs = proto.attribute_value(a), helper.get_attribute_value(a)
        assert type(ours) is type(theirs) and ours == theirs


def test_external_data_is_read_by_onnx(tmp_path):
    rng = np.random.default_rng(0)
    path = make_onnx(tmp_path / "inline.onnx", [rng.standard_normal((5, 3)), rng.standard_normal((2, 5))],
                     [rng.standard_normal(5), rng.standard_normal(2)])
    model = onnx.load(str(path))
    onnx.save_model(model, str(tmp_path / "external.onnx"), save_as_external_data=True,
                    all_tensors_to_one_file=True, location="weights.bin", size_threshold=0)
    assert proto.uses_external_data(proto.parse_model((tmp_path / "external.onnx").read_bytes()))
    assert not proto.uses_external_data(proto.parse_model(path.read_bytes()))
    inline, external = load_onnx(path), load_onnx(tmp_path / "external.onnx")
    for a, b in zip(inline.layers, external.layers):
        assert type(a) is type(b) and (not hasattr(a, "weight") or _same(a.dense_weight(), b.dense_weight()))


def test_verify_on_a_small_instance_imports_neither_onnx_nor_scipy():
    """Start-up time: onnx's helpers (ml_dtypes), scipy.sparse, the solvers and tqdm load only when a run needs them;
    the protobuf classes are onnx's own, and onnx imported afterwards works with them."""
    examples = REPO / "examples"
    code = f"""
import sys
from exactverify.cli.app import main
assert main(["verify", r"{examples / 'toy_spirals.onnx'}", r"{examples / 'toy_eps0.05.vnnlib'}"]) == 0
heavy = [m for m in ("onnx", "ml_dtypes", "scipy", "highspy", "tqdm", "z3", "pulp", "torch") if m in sys.modules]
print("heavy:", heavy)
import onnx
from exactverify.loaders.onnx.proto import messages, parse_model
model = parse_model(open(r"{examples / 'toy_spirals.onnx'}", "rb").read())
assert isinstance(model, onnx.ModelProto) and model == onnx.load(r"{examples / 'toy_spirals.onnx'}")
print("onnx afterwards: ok")
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert r.returncode == 0, r.stderr
    assert "heavy: []" in r.stdout and "onnx afterwards: ok" in r.stdout, r.stdout
