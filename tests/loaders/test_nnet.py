""".nnet parsing, normalisation, and bad files (the benchmark cross-check is in test_loaders_benchmarks.py)."""

import numpy as np
import pytest

from exactverify.core.errors import InputError
from exactverify.core.network import Affine, ReLU
from exactverify.loaders.nnet import load_nnet

# 2 inputs -> 3 ReLUs -> 1 output, with a non-trivial normalisation in the header.
SMALL = """\
// a hand-made test network
2,2,1,3,
2,3,1,
0,
-1.0,0.0,
1.0,10.0,
0.5,5.0,2.0,
2.0,10.0,4.0,
1.0,-1.0,
0.5,0.25,
-2.0,0.1,
0.1,
0.2,
-0.3,
1.0,2.0,-1.0,
0.5,
"""


def write(tmp_path, text, name="net.nnet"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_parse_small_network(tmp_path):
    net = load_nnet(write(tmp_path, SMALL))
    assert [type(layer) for layer in net.layers] == [Affine, ReLU, Affine]
    assert np.array_equal(net.layers[0].weight, np.float32([[1, -1], [0.5, 0.25], [-2, 0.1]]).astype(np.float64))
    assert np.array_equal(net.layers[0].bias, np.float32([0.1, 0.2, -0.3]).astype(np.float64))
    x = np.array([0.3, -0.2])
    w1 = np.float32([[1, -1], [0.5, 0.25], [-2, 0.1]]).astype(float)
    b1 = np.float32([0.1, 0.2, -0.3]).astype(float)
    expected = np.array([1.0, 2.0, -1.0]) @ np.maximum(w1 @ x + b1, 0) + 0.5
    assert net.forward(x) == pytest.approx(expected, abs=1e-12)
    assert net.input_shape == (1, 2) and net.output_shape == (1, 1)
    # Without normalisation the header's input box is reported in normalised units.
    assert np.allclose(net.meta["input_lower"], [(-1 - 0.5) / 2, (0 - 5) / 10])
    assert np.allclose(net.meta["input_upper"], [(1 - 0.5) / 2, (10 - 5) / 10])


def test_normalize_maps_physical_units(tmp_path):
    raw = load_nnet(write(tmp_path, SMALL))
    physical = load_nnet(write(tmp_path, SMALL), normalize=True)
    x = np.array([[0.7, 3.0], [-1.0, 10.0]])
    expected = raw.forward((x - [0.5, 5.0]) / [2.0, 10.0]) * 4.0 + 2.0
    assert np.allclose(physical.forward(x), expected, rtol=0, atol=1e-12)
    assert np.allclose(physical.meta["input_lower"], [-1.0, 0.0])


def test_weights_are_rounded_to_float32(tmp_path):
    text = SMALL.replace("1.0,-1.0,\n", "0.1000000001,-1.0,\n")
    net = load_nnet(write(tmp_path, text))
    assert net.layers[0].weight[0, 0] == float(np.float32(0.1000000001)) != 0.1000000001


@pytest.mark.parametrize("edit,phrase", [
    (lambda t: t.replace("1.0,2.0,-1.0,\n0.5,\n", "1.0,2.0,-1.0,\n"), "ends early"),
    (lambda t: t + "7.0,\n", "unexpected data after the last layer"),
    (lambda t: t.replace("0.5,0.25,", "0.5,abc,"), "'abc' is not a number"),
    (lambda t: t.replace("0.5,0.25,", "0.5,"), "expected 2 values"),
    (lambda t: t.replace("2,3,1,\n", "3,3,1,\n"), "do not start with inputSize 2"),
    (lambda t: t.replace("2,2,1,3,", "2.5,2,1,3,"), "not a non-negative integer"),
    (lambda t: t.replace("-2.0,0.1,", "-2.0,nan,"), "NaN or infinite"),
    (lambda t: t.replace("-2.0,0.1,", "-2.0,1e300,"), "NaN or infinite"),  # overflows float32
    (lambda t: "", "ends early"),
])
def test_bad_files(tmp_path, edit, phrase):
    path = write(tmp_path, edit(SMALL))
    with pytest.raises(InputError) as err:
        load_nnet(path)
    assert err.value.path == str(path) and phrase in err.value.problem, err.value.problem


def test_zero_range_with_normalize(tmp_path):
    path = write(tmp_path, SMALL.replace("2.0,10.0,4.0,", "0.0,10.0,4.0,"))
    with pytest.raises(InputError, match="range in the header is zero"):
        load_nnet(path, normalize=True)


def test_missing_binary_and_directory(tmp_path):
    with pytest.raises(InputError, match="file not found"):
        load_nnet(tmp_path / "absent.nnet")
    with pytest.raises(InputError, match="is a directory"):
        load_nnet(tmp_path)
    binary = tmp_path / "binary.nnet"
    binary.write_bytes(bytes(range(128, 256)))
    with pytest.raises(InputError, match="cannot be read as a text file"):
        load_nnet(binary)
