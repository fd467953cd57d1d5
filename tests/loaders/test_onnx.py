"""ONNX lowering on synthetic models (compared with onnxruntime), save_onnx, load_network, and bad input."""

import subprocess
import sys
import textwrap

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from exactverify.core.errors import InputError
from exactverify.loaders import load_network
from exactverify.core.network import Affine
from exactverify.loaders.onnx import load_onnx, save_onnx
from exactverify.testing import random_network

ort = pytest.importorskip("onnxruntime")

RNG = np.random.default_rng(1234)


def w(*shape, scale=0.5):
    return (RNG.standard_normal(shape) * scale).astype(np.float32)


def make_model(tmp_path, nodes, x_shape, inits=None, opset=13, y_shape=None, name="model.onnx",
               x_type=TensorProto.FLOAT, extra_inputs=(), outputs=None):
    """Write a one-input model; `inits` maps initializer names to arrays."""
    initializers = [numpy_helper.from_array(np.asarray(v), k) for k, v in (inits or {}).items()]
    inputs = [helper.make_tensor_value_info("x", x_type, x_shape), *extra_inputs]
    outputs = outputs or [helper.make_tensor_value_info(nodes[-1].output[0], TensorProto.FLOAT, y_shape)]
    graph = helper.make_graph(nodes, "test", inputs, outputs, initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    path = tmp_path / name
    onnx.save(model, str(path))
    return path


def assert_matches_ort(path, samples=4, tol=1e-5):
    """forward and forward32 agree with onnxruntime (float32) on random inputs."""
    net = load_onnx(path)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    rng = np.random.default_rng(0)
    for _ in range(samples):
        x = rng.standard_normal(net.input_size).astype(np.float32)
        ref = sess.run(None, {name: x.reshape(net.input_shape)})[0]
        assert tuple(net.output_shape) == ref.shape
        bound = tol * max(1.0, float(np.abs(ref).max()))
        assert np.max(np.abs(net.forward(x) - ref.ravel())) <= bound
        assert np.max(np.abs(net.forward32(x) - ref.ravel())) <= bound
    return net


def kinds(net):
    return [type(layer).__name__ for layer in net.layers]


# ---------------------------------------------------------------------------
# Supported operators, each compared with onnxruntime


def test_conv_with_strides_pads_dilations_groups(tmp_path):
    nodes = [helper.make_node("Conv", ["x", "W", "B"], ["c"], name="conv", group=2, strides=[2, 1],
                              pads=[1, 0, 2, 1], dilations=[1, 2]),
             helper.make_node("Relu", ["c"], ["y"])]
    path = make_model(tmp_path, nodes, [1, 4, 9, 8], {"W": w(6, 2, 3, 3), "B": w(6)})
    net = assert_matches_ort(path)
    assert kinds(net) == ["Affine", "ReLU"] and net.layers[0].is_sparse


@pytest.mark.parametrize("auto_pad,kernel,stride", [("SAME_UPPER", 4, 2), ("SAME_LOWER", 2, 1), ("VALID", 3, 2)])
def test_conv_auto_pad(tmp_path, auto_pad, kernel, stride):
    nodes = [helper.make_node("Conv", ["x", "W"], ["y"], auto_pad=auto_pad, strides=[stride, stride])]
    path = make_model(tmp_path, nodes, [1, 3, 7, 7], {"W": w(4, 3, kernel, kernel)})
    net = assert_matches_ort(path)
    if auto_pad != "VALID":
        assert net.output_shape[2:] == (-(-7 // stride),) * 2


def test_batchnorm_after_conv_and_on_vectors(tmp_path):
    bn = {"s": w(3), "b": w(3), "m": w(3), "v": np.abs(w(3)) + 0.5}
    nodes = [helper.make_node("Conv", ["x", "W"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("BatchNormalization", ["c", "s", "b", "m", "v"], ["n"], epsilon=1e-3),
             helper.make_node("Relu", ["n"], ["y"])]
    assert_matches_ort(make_model(tmp_path, nodes, [1, 2, 5, 5], {"W": w(3, 2, 3, 3), **bn}, name="a.onnx"))
    nodes = [helper.make_node("BatchNormalization", ["x", "s", "b", "m", "v"], ["n"]),
             helper.make_node("Gemm", ["n", "G"], ["y"], transB=1)]
    assert_matches_ort(make_model(tmp_path, nodes, [1, 3], {"G": w(2, 3), **bn}, name="b.onnx"))


@pytest.mark.parametrize("include_pad", [0, 1])
def test_average_pool(tmp_path, include_pad):
    nodes = [helper.make_node("AveragePool", ["x"], ["y"], kernel_shape=[3, 3], strides=[2, 2],
                              pads=[1, 1, 1, 1], count_include_pad=include_pad)]
    net = assert_matches_ort(make_model(tmp_path, nodes, [1, 2, 7, 6]))
    assert net.output_shape == (1, 2, 4, 3)


@pytest.mark.parametrize("attrs,largest", [(dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 0, 0]), 9),
                                           (dict(kernel_shape=[2, 2], dilations=[2, 2], pads=[1, 1, 1, 1]), 4)])
def test_max_pool(tmp_path, attrs, largest):
    nodes = [helper.make_node("MaxPool", ["x"], ["y"], **attrs)]
    net = assert_matches_ort(make_model(tmp_path, nodes, [1, 2, 7, 7]))
    assert kinds(net) == ["MaxGroups"]
    # Padding entries are excluded, so a corner window has fewer members than the kernel.
    sizes = (net.layers[0].groups >= 0).sum(axis=1)
    assert sizes.min() < sizes.max() == largest


@pytest.mark.parametrize("pool,expected", [("GlobalAveragePool", "Affine"), ("GlobalMaxPool", "MaxGroups")])
def test_global_pools(tmp_path, pool, expected):
    nodes = [helper.make_node("Conv", ["x", "W"], ["c"]),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node(pool, ["r"], ["y"])]
    net = assert_matches_ort(make_model(tmp_path, nodes, [1, 2, 5, 5], {"W": w(4, 2, 2, 2)}))
    assert kinds(net) == ["Affine", "ReLU", expected] and net.output_shape == (1, 4, 1, 1)


def test_transpose_and_reshape_fold_into_gemm(tmp_path):
    b = w(24, 5)
    nodes = [helper.make_node("Transpose", ["x"], ["t"], perm=[0, 3, 1, 2]),
             helper.make_node("Reshape", ["t", "shape"], ["r"]),
             helper.make_node("Gemm", ["r", "B", "C"], ["g"]),
             helper.make_node("Relu", ["g"], ["y"])]
    path = make_model(tmp_path, nodes, [1, 2, 3, 4], {"shape": np.array([1, -1], np.int64), "B": b, "C": w(5)})
    net = assert_matches_ort(path)
    # The permutation only reorders the Gemm's columns: no extra layer, weights still the stored float32s.
    assert kinds(net) == ["Affine", "ReLU"]
    assert np.array_equal(np.sort(net.layers[0].weight, axis=None), np.sort(b.astype(np.float64), axis=None))


def test_sub_div_mul_normalisation_broadcasts_per_channel(tmp_path):
    nodes = [helper.make_node("Sub", ["x", "mean"], ["a"]),
             helper.make_node("Div", ["a", "std"], ["b"]),
             helper.make_node("Mul", ["b", "two"], ["c"]),
             helper.make_node("Add", ["c", "zero"], ["d"]),  # dropped: adds nothing
             helper.make_node("Flatten", ["d"], ["f"]),
             helper.make_node("Gemm", ["f", "W", "B"], ["y"], transB=1)]
    inits = {"mean": w(1, 3, 1, 1), "std": np.abs(w(1, 3, 1, 1)) + 0.1, "two": np.float32(2.0),
             "zero": np.zeros((1, 1, 1, 1), np.float32), "W": w(4, 12), "B": w(4)}
    net = assert_matches_ort(make_model(tmp_path, nodes, [1, 3, 2, 2], inits))
    assert kinds(net) == ["Affine"] * 4


def test_add_after_a_biased_layer_stays_a_separate_layer(tmp_path):
    # Merging into a non-zero bias would change float32 rounding, so only bias-free layers absorb an Add.
    nodes = [helper.make_node("Gemm", ["x", "W", "C"], ["g"], transB=1),
             helper.make_node("Add", ["g", "b"], ["a"]),
             helper.make_node("MatMul", ["a", "W2"], ["m"]),
             helper.make_node("Sub", ["m", "b2"], ["y"])]
    net = assert_matches_ort(make_model(tmp_path, nodes, [1, 3], {"W": w(4, 3), "C": w(4), "b": w(4),
                                                                  "W2": w(4, 2), "b2": w(2)}))
    assert kinds(net) == ["Affine", "Affine", "Affine"]


@pytest.mark.parametrize("case", ["transA", "transB0", "dynamic_B", "scalar_C"])
def test_gemm_variants(tmp_path, case):
    if case == "transA":  # x is (K, M) and transposed: alpha/beta scale, C a row
        node = helper.make_node("Gemm", ["x", "B", "C"], ["y"], transA=1, alpha=0.5, beta=2.0)
        path = make_model(tmp_path, [node], [5, 1], {"B": w(5, 3), "C": w(1, 3)})
    elif case == "transB0":
        node = helper.make_node("Gemm", ["x", "B", "C"], ["y"], transB=0)
        path = make_model(tmp_path, [node], [1, 5], {"B": w(5, 3), "C": w(3)})
    elif case == "dynamic_B":  # the constant is A and the input is the (transposed) B
        node = helper.make_node("Gemm", ["A", "x", "C"], ["y"], transB=1, alpha=1.5)
        path = make_model(tmp_path, [node], [1, 4], {"A": w(3, 4), "C": w(3, 1)})
    else:
        node = helper.make_node("Gemm", ["x", "B", "C"], ["y"], transB=1, beta=0.25)
        path = make_model(tmp_path, [node], [1, 4], {"B": w(2, 4), "C": np.float32(3.0)})
    assert kinds(assert_matches_ort(path)) == ["Affine"]


def test_matmul_constant_on_either_side(tmp_path):
    nodes = [helper.make_node("MatMul", ["x", "W"], ["m"]),  # (1,4,5) @ (5,3): one block per row
             helper.make_node("Relu", ["m"], ["r"]),
             helper.make_node("Reshape", ["r", "shape"], ["f"]),
             helper.make_node("MatMul", ["f", "W2"], ["m2"]),
             helper.make_node("Add", ["m2", "b"], ["y"])]
    inits = {"W": w(5, 3), "shape": np.array([1, 12], np.int64), "W2": w(12, 2), "b": w(2)}
    net = assert_matches_ort(make_model(tmp_path, nodes, [1, 4, 5], inits, name="right.onnx"))
    assert kinds(net) == ["Affine", "ReLU", "Affine"]  # MatMul + Add is one layer
    nodes = [helper.make_node("MatMul", ["W", "x"], ["m"]),  # (3,4) @ (4,2)
             helper.make_node("Add", ["m", "b"], ["y"])]
    assert_matches_ort(make_model(tmp_path, nodes, [4, 2], {"W": w(3, 4), "b": w(3, 1)}, name="left.onnx"))
    nodes = [helper.make_node("MatMul", ["W", "x"], ["m"]),  # (3,4) @ (4,): a 1-D input
             helper.make_node("Relu", ["m"], ["y"])]
    assert_matches_ort(make_model(tmp_path, nodes, [4], {"W": w(3, 4)}, name="vec.onnx"))


def test_data_movement_ops(tmp_path):
    nodes = [helper.make_node("Unsqueeze", ["x", "ax2"], ["u"]),
             helper.make_node("Squeeze", ["u", "ax2"], ["s"]),
             helper.make_node("Slice", ["s", "starts", "ends", "ax1"], ["sl"]),
             helper.make_node("Gather", ["sl", "idx"], ["g"], axis=1),
             helper.make_node("Expand", ["g", "eshape"], ["e"]),
             helper.make_node("Sub", ["c", "e"], ["d"]),  # constant minus input
             helper.make_node("Neg", ["d"], ["n"]),
             helper.make_node("Relu", ["n"], ["r"]),
             helper.make_node("Identity", ["r"], ["i"]),
             helper.make_node("Dropout", ["i"], ["dr"]),
             helper.make_node("Reshape", ["dr", "flat"], ["f"]),
             helper.make_node("Gemm", ["f", "W"], ["y"], transB=1)]
    inits = {"ax2": np.array([2], np.int64), "ax1": np.array([1], np.int64), "starts": np.array([1], np.int64),
             "ends": np.array([5], np.int64), "idx": np.array([3, 0, 0, 2], np.int64),
             "eshape": np.array([3, 4], np.int64), "c": w(3, 4), "flat": np.array([1, 12], np.int64),
             "W": w(2, 12)}
    net = assert_matches_ort(make_model(tmp_path, nodes, [1, 6], inits))
    assert net.num_relus == 12


def test_legacy_attribute_forms(tmp_path):
    nodes = [helper.make_node("Unsqueeze", ["x"], ["u"], axes=[0]),
             helper.make_node("Squeeze", ["u"], ["s"], axes=[0]),
             helper.make_node("Dropout", ["s"], ["d"], ratio=0.5),
             helper.make_node("ReduceMax", ["d"], ["y"], axes=[2], keepdims=1)]
    net = assert_matches_ort(make_model(tmp_path, nodes, [1, 3, 4], opset=11))
    assert kinds(net) == ["MaxGroups"] and net.output_shape == (1, 3, 1)


def test_constant_subgraphs_are_folded(tmp_path):
    # The old PyTorch flatten idiom: Reshape(x, Concat(Unsqueeze(Gather(Shape(x), 0)), [-1])),
    # and a weight computed from a Constant node.
    w0 = w(12, 3)
    nodes = [helper.make_node("Shape", ["x"], ["shape"]),
             helper.make_node("Gather", ["shape", "zero"], ["batch"], axis=0),
             helper.make_node("Unsqueeze", ["batch", "axis0"], ["batch1"]),
             helper.make_node("Concat", ["batch1", "minus1"], ["target"], axis=0),
             helper.make_node("Reshape", ["x", "target"], ["f"]),
             helper.make_node("Constant", [], ["w0"], value=numpy_helper.from_array(w0)),
             helper.make_node("Constant", [], ["k"], value_float=0.5),
             helper.make_node("Mul", ["w0", "k"], ["wk"]),
             helper.make_node("MatMul", ["f", "wk"], ["y"])]
    inits = {"zero": np.array(0, np.int64), "axis0": np.array([0], np.int64), "minus1": np.array([-1], np.int64)}
    net = assert_matches_ort(make_model(tmp_path, nodes, [1, 3, 2, 2], inits))
    assert kinds(net) == ["Affine"]
    assert np.array_equal(net.layers[0].weight, (w0 * np.float32(0.5)).T.astype(np.float64))


def test_symbolic_batch_dimension_is_one(tmp_path):
    nodes = [helper.make_node("Gemm", ["x", "W"], ["y"], transB=1)]
    path = make_model(tmp_path, nodes, ["N", 3], {"W": w(2, 3)}, y_shape=["N", 2])
    net = load_onnx(path)
    assert net.input_shape == (1, 3) and net.output_shape == (1, 2)


def test_float32_weights_kept_and_metadata(tmp_path):
    weight, bias = w(3, 4), w(3)
    nodes = [helper.make_node("MatMul", ["x", "W"], ["m"]), helper.make_node("Add", ["m", "b"], ["y"])]
    path = make_model(tmp_path, nodes, [1, 4], {"W": weight.T.copy(), "b": bias}, y_shape=[1, 3])
    net = load_onnx(path)
    assert np.array_equal(net.layers[0].weight, weight.astype(np.float64))
    assert net.layers[0].weight.dtype == np.float64 and np.array_equal(net.layers[0].bias, bias.astype(np.float64))
    assert net.source == str(path) and net.meta["input_name"] == "x" and net.meta["output_name"] == "y"


# ---------------------------------------------------------------------------
# save_onnx


@pytest.mark.parametrize("sizes,output_relu", [([5, 16, 16, 3], False), ([7, 4, 2], True)])
def test_save_onnx_round_trip(tmp_path, sizes, output_relu):
    net = random_network(sizes, seed=3, output_relu=output_relu)
    path = tmp_path / "saved.onnx"
    save_onnx(net, path)
    loaded = assert_matches_ort(path)
    assert kinds(loaded) == kinds(net)
    for a, b in zip(net.layers, loaded.layers):
        if isinstance(a, Affine):  # float32 weights survive bit for bit
            assert np.array_equal(a.weight, b.weight) and np.array_equal(a.bias, b.bias)
    x = np.random.default_rng(5).standard_normal((8, sizes[0]))
    assert np.array_equal(net.forward(x), loaded.forward(x))


def test_save_onnx_with_max_groups_and_sparse_weights(tmp_path):
    nodes = [helper.make_node("Conv", ["x", "W"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("MaxPool", ["c"], ["m"], kernel_shape=[2, 2], strides=[2, 2], pads=[1, 1, 0, 0]),
             helper.make_node("Relu", ["m"], ["y"])]
    original = load_onnx(make_model(tmp_path, nodes, [1, 1, 5, 5], {"W": w(2, 1, 3, 3)}))
    path = tmp_path / "saved.onnx"
    save_onnx(original, path)
    loaded = assert_matches_ort(path)
    assert kinds(loaded) == ["Affine", "MaxGroups", "ReLU"]
    assert np.array_equal(np.sort(loaded.layers[1].groups, axis=1), np.sort(original.layers[1].groups, axis=1))
    x = np.random.default_rng(2).standard_normal((6, 25))
    assert np.allclose(original.forward(x), loaded.forward(x), rtol=0, atol=1e-12)


# ---------------------------------------------------------------------------
# load_network


def test_load_network_dispatches_and_validates(tmp_path):
    net = random_network([3, 4, 2], seed=0)
    save_onnx(net, tmp_path / "n.onnx")
    loaded = load_network(tmp_path / "n.onnx")
    assert loaded.input_size == 3 and loaded.output_size == 2
    assert load_network(str(tmp_path / "n.onnx"), input_shape=(1, 3)).output_size == 2
    with pytest.raises(InputError, match="has 4 elements but the network takes 3 inputs"):
        load_network(tmp_path / "n.onnx", input_shape=(2, 2))


def test_load_network_reads_gzipped_onnx(tmp_path):
    import gzip

    save_onnx(random_network([3, 4, 2], seed=0), tmp_path / "n.onnx")
    (tmp_path / "n.onnx.gz").write_bytes(gzip.compress((tmp_path / "n.onnx").read_bytes()))
    x = np.ones(3)
    assert np.array_equal(load_network(tmp_path / "n.onnx.gz").forward(x), load_network(tmp_path / "n.onnx").forward(x))


@pytest.mark.parametrize("setup,problem", [
    (lambda p: p, "file not found"),
    (lambda p: (p.mkdir(), p)[1], "is a directory"),
    (lambda p: (p.with_suffix(".h5").write_text("x"), p.with_suffix(".h5"))[1], "unknown network file type '.h5'"),
])
def test_load_network_bad_paths(tmp_path, setup, problem):
    path = setup(tmp_path / "net.onnx")
    with pytest.raises(InputError) as err:
        load_network(path)
    assert err.value.path == str(path) and problem in err.value.problem


def test_load_network_rejects_other_objects():
    with pytest.raises(InputError, match="cannot load a network from a list"):
        load_network([1, 2, 3])


def test_loading_onnx_does_not_import_torch(tmp_path):
    save_onnx(random_network([3, 4, 2], seed=0), tmp_path / "n.onnx")
    code = textwrap.dedent(f"""
        import sys
        import exactverify, exactverify.loaders.onnx, exactverify.loaders.nnet, exactverify.loaders
        from exactverify.loaders import load_network
        net = load_network({str(tmp_path / "n.onnx")!r})
        assert net.output_size == 2
        assert "torch" not in sys.modules, "torch was imported"
        print("ok")
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


# ---------------------------------------------------------------------------
# Bad ONNX input: always an InputError naming the file and the problem


def raises_input_error(path, *phrases):
    with pytest.raises(InputError) as err:
        load_onnx(path)
    assert err.value.path == str(path)
    assert str(path) in str(err.value)
    for phrase in phrases:
        assert phrase in err.value.problem, err.value.problem
    return err.value.problem


def test_missing_file(tmp_path):
    raises_input_error(tmp_path / "absent.onnx", "file not found")


def test_directory(tmp_path):
    raises_input_error(tmp_path, "is a directory")


@pytest.mark.parametrize("content", [b"", b"definitely not a protobuf", bytes(range(256)) * 4])
def test_garbage_bytes(tmp_path, content):
    path = tmp_path / "garbage.onnx"
    path.write_bytes(content)
    raises_input_error(path, "cannot be parsed as an ONNX model")


@pytest.mark.parametrize("fraction", [0.1, 0.5, 0.99])
def test_truncated_file(tmp_path, fraction):
    full = tmp_path / "full.onnx"
    save_onnx(random_network([20, 30, 5], seed=0), full)
    data = full.read_bytes()
    path = tmp_path / "truncated.onnx"
    path.write_bytes(data[: int(len(data) * fraction)])
    raises_input_error(path, "cannot be parsed as an ONNX model")


def test_unsupported_operators_are_all_listed(tmp_path):
    nodes = [helper.make_node("Gemm", ["x", "W"], ["g"], transB=1, name="fc"),
             helper.make_node("Sigmoid", ["g"], ["s"], name="act1"),
             helper.make_node("Tanh", ["s"], ["y"], name="act2")]
    problem = raises_input_error(make_model(tmp_path, nodes, [1, 3], {"W": w(2, 3)}), "unsupported operator")
    assert "Sigmoid (node 'act1')" in problem and "Tanh (node 'act2')" in problem


def test_unsupported_operator_in_custom_domain(tmp_path):
    nodes = [helper.make_node("FusedGemm", ["x", "W"], ["y"], domain="com.microsoft", name="fused")]
    make = lambda: make_model(tmp_path, nodes, [1, 3], {"W": w(3, 2)})  # noqa: E731
    raises_input_error(make(), "com.microsoft.FusedGemm (node 'fused')")


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_weights(tmp_path, bad):
    weight = w(2, 3)
    weight[1, 2] = bad
    nodes = [helper.make_node("Gemm", ["x", "W"], ["y"], transB=1)]
    raises_input_error(make_model(tmp_path, nodes, [1, 3], {"W": weight}), "NaN or infinite")


def test_non_finite_conv_weight(tmp_path):
    weight = np.zeros((1, 1, 2, 2), np.float32)
    weight[0, 0, 1, 1] = np.nan
    nodes = [helper.make_node("Conv", ["x", "W"], ["y"])]
    raises_input_error(make_model(tmp_path, nodes, [1, 1, 3, 3], {"W": weight}), "NaN or infinite")


def test_two_dynamic_inputs(tmp_path):
    nodes = [helper.make_node("Add", ["x", "x2"], ["y"])]
    extra = [helper.make_tensor_value_info("x2", TensorProto.FLOAT, [1, 3])]
    raises_input_error(make_model(tmp_path, nodes, [1, 3], extra_inputs=extra), "2 inputs without initializers",
                       "'x', 'x2'")


def test_residual_connection_is_not_a_chain(tmp_path):
    nodes = [helper.make_node("Gemm", ["x", "W"], ["h"], transB=1),
             helper.make_node("Relu", ["h"], ["r"]),
             helper.make_node("Add", ["r", "x"], ["y"], name="skip")]
    problem = raises_input_error(make_model(tmp_path, nodes, [1, 3], {"W": w(3, 3)}), "Add node 'skip'",
                                 "residual")
    assert "'r'" in problem and "'x'" in problem


def test_branch_reading_an_older_tensor(tmp_path):
    nodes = [helper.make_node("Relu", ["x"], ["r"]),
             helper.make_node("Mul", ["r", "k"], ["m"]),
             helper.make_node("Concat", ["m", "r"], ["y"], axis=1, name="cat")]
    raises_input_error(make_model(tmp_path, nodes, [1, 3], {"k": np.float32(2)}), "unsupported operator",
                       "Concat (node 'cat')")
    nodes = [helper.make_node("Relu", ["x"], ["r"]),
             helper.make_node("Neg", ["x"], ["y"], name="late")]
    graph_out = [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)]
    # r is dead code here, so this one is a valid chain...
    assert load_onnx(make_model(tmp_path, nodes, [1, 3], outputs=graph_out, name="dead.onnx")).num_relus == 0
    nodes = [helper.make_node("Relu", ["x"], ["r"]),
             helper.make_node("Neg", ["x"], ["n"], name="late"),
             helper.make_node("Add", ["n", "r"], ["y"])]
    raises_input_error(make_model(tmp_path, nodes, [1, 3], name="late.onnx"), "Neg node 'late'",
                       "reads 'x' after the chain has moved on to 'r'")
    nodes = [helper.make_node("Relu", ["x"], ["r"]),
             helper.make_node("Mul", ["x", "r"], ["y"], name="both")]
    raises_input_error(make_model(tmp_path, nodes, [1, 3], name="two.onnx"), "Mul node 'both'",
                       "combines two input-dependent tensors")


@pytest.mark.parametrize("node,shape,inits,phrase", [
    (helper.make_node("Gemm", ["x", "W"], ["y"], transB=1, foo=3, name="g"), [1, 3], {"W": w(2, 3)},
     "unsupported attribute(s) foo"),
    (helper.make_node("Add", ["x", "b"], ["y"], axis=1, broadcast=1, name="g"), [1, 3], {"b": w(3)},
     "unsupported attribute(s) axis"),
    (helper.make_node("AveragePool", ["x"], ["y"], kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1, name="g"),
     [1, 1, 5, 5], {}, "ceil_mode=1"),
    (helper.make_node("BatchNormalization", ["x", "s", "b", "m", "v"], ["y"], training_mode=1, name="g"),
     [1, 2], {k: np.ones(2, np.float32) for k in "sbmv"}, "training_mode=1"),
    (helper.make_node("Conv", ["x", "W"], ["y"], auto_pad="SAME_MIDDLE", name="g"), [1, 1, 4, 4],
     {"W": w(1, 1, 2, 2)}, "auto_pad=SAME_MIDDLE"),
    (helper.make_node("Conv", ["x", "W"], ["y"], name="g"), [1, 1, 5], {"W": w(1, 1, 2)}, "only 2-D convolutions"),
])
def test_unsupported_attributes(tmp_path, node, shape, inits, phrase):
    raises_input_error(make_model(tmp_path, [node], shape, inits), f"{node.op_type} node 'g'", phrase)


@pytest.mark.parametrize("node,shape,inits,phrase", [
    (helper.make_node("Reshape", ["x", "s"], ["y"]), [1, 6], {"s": np.array([4, -1], np.int64)},
     "cannot reshape [1, 6] to [4, -1]"),
    (helper.make_node("Gemm", ["x", "W"], ["y"], transB=1), [1, 3], {"W": w(2, 4)}, "do not match"),
    (helper.make_node("Add", ["x", "b"], ["y"]), [1, 3], {"b": w(4)}, "cannot broadcast shapes [1, 3] and [4]"),
    (helper.make_node("Conv", ["x", "W"], ["y"]), [1, 1, 2, 2], {"W": w(1, 1, 3, 3)}, "does not fit"),
])
def test_shape_errors(tmp_path, node, shape, inits, phrase):
    raises_input_error(make_model(tmp_path, [node], shape, inits), phrase)


def test_symbolic_non_batch_dimension(tmp_path):
    nodes = [helper.make_node("Relu", ["x"], ["y"])]
    raises_input_error(make_model(tmp_path, nodes, [1, "H"]), "dimension 1 of input 'x' is 'H'")


def test_input_without_shape(tmp_path):
    nodes = [helper.make_node("Relu", ["x"], ["y"])]
    raises_input_error(make_model(tmp_path, nodes, None), "has no declared shape")


def test_integer_input(tmp_path):
    nodes = [helper.make_node("Relu", ["x"], ["y"])]
    raises_input_error(make_model(tmp_path, nodes, [1, 3], x_type=TensorProto.INT64), "element type INT64")


def test_declared_output_shape_mismatch(tmp_path):
    nodes = [helper.make_node("Gemm", ["x", "W"], ["y"], transB=1)]
    raises_input_error(make_model(tmp_path, nodes, [1, 3], {"W": w(2, 3)}, y_shape=[1, 5]),
                       "declared with shape [1, 5] but the graph computes [1, 2]")


def test_division_by_zero_and_by_input(tmp_path):
    nodes = [helper.make_node("Div", ["x", "c"], ["y"], name="d")]
    raises_input_error(make_model(tmp_path, nodes, [1, 2], {"c": np.array([1, 0], np.float32)}), "contains zero")
    nodes = [helper.make_node("Div", ["c", "x"], ["y"], name="d")]
    raises_input_error(make_model(tmp_path, nodes, [1, 2], {"c": w(2)}, name="b.onnx"), "not piecewise linear")


def test_several_outputs_and_constant_output(tmp_path):
    nodes = [helper.make_node("Relu", ["x"], ["y"]), helper.make_node("Neg", ["x"], ["z"])]
    outs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in ("y", "z")]
    raises_input_error(make_model(tmp_path, nodes, [1, 2], outputs=outs), "2 outputs")
    nodes = [helper.make_node("Neg", ["c"], ["y"])]
    raises_input_error(make_model(tmp_path, nodes, [1, 2], {"c": w(2)}, name="c.onnx"), "does not depend on the input")


def test_undefined_tensor(tmp_path):
    nodes = [helper.make_node("Gemm", ["x", "W_missing"], ["y"], transB=1, name="g")]
    raises_input_error(make_model(tmp_path, nodes, [1, 3]), "reads tensor 'W_missing', which is not defined")


def test_secondary_output_use_is_refused(tmp_path):
    nodes = [helper.make_node("MaxPool", ["x"], ["p", "where"], kernel_shape=[2, 2], name="pool")]
    outs = [helper.make_tensor_value_info("where", TensorProto.INT64, None)]
    raises_input_error(make_model(tmp_path, nodes, [1, 1, 4, 4], outputs=outs), "MaxPool node 'pool'",
                       "secondary output 'where'")
