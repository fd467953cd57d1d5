"""Every ONNX network in shared/benchmarks, lowered and compared with onnxruntime; .nnet against its ONNX twin."""

import tarfile
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, numpy_helper

from exactverify.loaders import load_network
from exactverify.core.network import Affine, ReLU
from exactverify.loaders.nnet import load_nnet
from exactverify.loaders.onnx import load_onnx

ort = pytest.importorskip("onnxruntime")

BENCHMARKS = Path(__file__).resolve().parents[2].parent / "shared" / "benchmarks"
ONNX_FILES = sorted(str(p.relative_to(BENCHMARKS)) for p in BENCHMARKS.glob("**/*.onnx")) if BENCHMARKS.is_dir() else []
COAV_SAMPLE = ["coav_000", "coav_123", "coav_250", "coav_377", "coav_499"]


def need_benchmarks():
    if not BENCHMARKS.is_dir():
        pytest.skip(f"{BENCHMARKS} is not available")


def random_inputs(net, n, seed):
    """Inputs in the range the benchmark nets are used on: pixels in [0, 1], ACAS/coav around 0."""
    rng = np.random.default_rng(seed)
    lo, hi = (0.0, 1.0) if net.input_size == 784 else (-1.0, 1.0)
    return rng.uniform(lo, hi, (n, net.input_size)).astype(np.float32)


def assert_matches_ort(path, samples=4, seed=0):
    """forward/forward32 agree with float32 onnxruntime to 1e-5, relative to the output's magnitude.

    The tolerance is relative to the largest output because the float32 runtime's own rounding
    error scales with it: on marabou's 10-layer mnist nets (outputs ~50) it reaches 1e-4 absolute,
    while our float64 forward agrees with a float64 run of the same file to 1e-13 (test below).
    """
    net = load_onnx(path)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    for x in random_inputs(net, samples, seed):
        ref = sess.run(None, {name: x.reshape(net.input_shape)})[0]
        assert net.output_shape == ref.shape
        bound = 1e-5 * max(1.0, float(np.abs(ref).max()))
        assert np.max(np.abs(net.forward(x) - ref.ravel())) <= bound
        assert np.max(np.abs(net.forward32(x) - ref.ravel())) <= bound
    return net


def as_float64_model(path) -> bytes:
    """The same model with every float tensor widened to float64, for an exact reference run."""
    model = onnx.load(str(path))
    for init in model.graph.initializer:
        if init.data_type == TensorProto.FLOAT:
            init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float64), init.name))
    for node in model.graph.node:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.TENSOR and attr.t.data_type == TensorProto.FLOAT:
                attr.t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(attr.t).astype(np.float64)))
    for value in [*model.graph.input, *model.graph.output]:
        if value.type.tensor_type.elem_type == TensorProto.FLOAT:
            value.type.tensor_type.elem_type = TensorProto.DOUBLE
    del model.graph.value_info[:]
    return model.SerializeToString()


@pytest.mark.parametrize("relpath", ONNX_FILES or ["<no benchmarks>"])
def test_benchmark_onnx_matches_onnxruntime(relpath):
    need_benchmarks()
    net = assert_matches_ort(BENCHMARKS / relpath)
    assert net.source == str(BENCHMARKS / relpath)


@pytest.mark.parametrize("relpath", ONNX_FILES or ["<no benchmarks>"])
def test_benchmark_onnx_is_exact_in_float64(relpath):
    """Against a float64 onnxruntime run of the same weights, the lowering is exact up to float64 rounding."""
    need_benchmarks()
    path = BENCHMARKS / relpath
    net = load_onnx(path)
    sess = ort.InferenceSession(as_float64_model(path), providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    for x in random_inputs(net, 3, seed=1).astype(np.float64):
        ref = sess.run(None, {name: x.reshape(net.input_shape)})[0].ravel()
        assert np.max(np.abs(net.forward(x) - ref)) <= 1e-11 * max(1.0, float(np.abs(ref).max()))


def test_benchmark_structures():
    need_benchmarks()
    acas = load_onnx(BENCHMARKS / "acasxu/onnx/ACASXU_run2a_1_1_batch_2000.onnx")
    # Sub of zeros dropped, Flatten free, MatMul+Add one layer: exactly the 6x50 ReLU net.
    assert acas.describe() == " -> ".join(["Affine(5->50) -> ReLU(50)"] + ["Affine(50->50) -> ReLU(50)"] * 5
                                          + ["Affine(50->5)"])
    assert acas.input_shape == (1, 1, 1, 5) and acas.output_shape == (1, 5)
    eran = load_onnx(BENCHMARKS / "eran_mnist_relu_9_200/onnx/mnist_relu_9_200.onnx")
    assert isinstance(eran.layers[-1], ReLU), "ERAN's output layer has a ReLU"
    assert sum(isinstance(layer, Affine) for layer in eran.layers) == 9 and eran.num_relus == 8 * 200 + 10
    mnist = load_onnx(BENCHMARKS / "mnist_fc/onnx/mnist-net_256x2.onnx")
    assert mnist.input_shape == (1, 784, 1) and mnist.num_relus == 512
    nano = load_onnx(BENCHMARKS / "vnncomp2021_test/test_nano.onnx")
    assert nano.input_shape == (1,) and nano.output_shape == (1,)


@pytest.fixture(scope="module")
def coav_dir(tmp_path_factory):
    need_benchmarks()
    archive = BENCHMARKS / "coav" / "coav.tar.xz"
    if not archive.is_file():
        pytest.skip(f"{archive} is not available")
    out = tmp_path_factory.mktemp("coav")
    wanted = {f"coav/onnx/{name}.onnx" for name in COAV_SAMPLE}
    with tarfile.open(archive) as tar:
        members = [m for m in tar.getmembers() if m.name in wanted and m.isfile()]
        tar.extractall(out, members=members, filter="data")
    assert len(members) == len(COAV_SAMPLE)
    return out / "coav" / "onnx"


@pytest.mark.parametrize("name", COAV_SAMPLE)
def test_coav_matches_onnxruntime(coav_dir, name):
    net = assert_matches_ort(coav_dir / f"{name}.onnx")
    assert net.input_shape == (1, 6) and net.output_shape == (1, 1) and net.num_relus == 137


@pytest.mark.parametrize("name", ["mnist10x10", "mnist10x20"])
def test_nnet_agrees_with_its_onnx_conversion(name):
    need_benchmarks()
    base = BENCHMARKS / "marabou_mnist_small"
    from_nnet = load_nnet(base / "nnet_original" / f"{name}.nnet")
    from_onnx = load_onnx(base / "onnx" / f"{name}.onnx")
    assert from_nnet.describe() == from_onnx.describe()
    assert from_nnet.input_shape == from_onnx.input_shape and from_nnet.output_shape == from_onnx.output_shape
    # The .nnet numbers are float32 dumps: rounded back to float32 they are the ONNX weights, bit for bit.
    for a, b in zip(from_nnet.layers, from_onnx.layers):
        if isinstance(a, Affine):
            assert np.array_equal(a.weight, b.weight) and np.array_equal(a.bias, b.bias)
    x = random_inputs(from_onnx, 20, seed=4)
    assert np.array_equal(from_nnet.forward(x), from_onnx.forward(x))
    sess = ort.InferenceSession(str(base / "onnx" / f"{name}.onnx"), providers=["CPUExecutionProvider"])
    ref = np.concatenate([sess.run(None, {"X": row[None]})[0] for row in x])
    assert np.max(np.abs(from_nnet.forward32(x) - ref)) <= 1e-5 * max(1.0, float(np.abs(ref).max()))
    # The header's identity normalisation (means 0, ranges 1) adds no layers, and the domain is [0, 1].
    assert load_nnet(base / "nnet_original" / f"{name}.nnet", normalize=True).describe() == from_nnet.describe()
    assert np.all(from_nnet.meta["input_lower"] == 0) and np.all(from_nnet.meta["input_upper"] == 1)
    assert load_network(base / "nnet_original" / f"{name}.nnet").describe() == from_nnet.describe()
