"""Loading Marabou/Reluplex `.nnet` files into the IR.

The format (comment lines start with "//"):
  1. numLayers, inputSize, outputSize, maxLayerSize
  2. the numLayers + 1 layer sizes, inputs first
  3. an unused flag (ignored, as every reader does)
  4. input minimums, 5. input maximums (inputSize values each)
  6. means, 7. ranges (inputSize + 1 values each; the last one is for the outputs)
  then per layer: one line per output neuron with its row of weights, then one
  line per output neuron with its bias. Hidden layers have ReLU; the last is linear.

How this relates to the ONNX networks in shared/benchmarks (checked when this was written):
- marabou_mnist_small/onnx/*.onnx are conversions of nnet_original/*.nnet. Their
  MatMul weights are exactly float32(nnet value), transposed, and the biases
  equal; the header has means 0 and ranges 1 for inputs and outputs, and the
  ONNX graph has no normalisation or clipping. Every number in those .nnet
  files is the shortest repr of a float32, i.e. the files are float32 dumps.
  So we round every weight to float32: the result is bit-for-bit the ONNX
  network (not just within 1e-7), which matters when a verdict sits on a boundary.
- ACAS Xu: the benchmarks' README says Marabou's ACASXU_*.nnet give the same
  outputs as the VNN-COMP ONNX files, whose inputs and outputs are in the
  *normalised* units the vnnlib properties use (the ONNX Sub subtracts zeros).
  Marabou itself builds its query on the raw layers and states ACAS properties
  in normalised units. So by default we also ignore the header normalisation:
  the network maps normalised inputs to normalised outputs, and agrees with
  the ONNX conversions on the same raw input vectors.
  `normalize=True` instead prepends x -> (x - mean) / range and appends
  y -> y * out_range + out_mean, giving a network on physical units.
- The input minimums/maximums are never applied as clipping (that is not
  piecewise linear in a useful way); they are kept in `meta["input_lower"]` /
  `meta["input_upper"]`, in the units of the returned network's inputs, for
  callers that want the header's input domain.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..core.errors import InputError, require_file
from ..core.network import Affine, Network, ReLU


def load_nnet(path, normalize: bool = False) -> Network:
    """Load a `.nnet` file; see the module docstring for `normalize` and the float32 rounding."""
    path = Path(path)
    reader = _LineReader(path)
    header = reader.numbers(4, "the header (numLayers, inputSize, outputSize, maxLayerSize)")
    n_layers, n_in, n_out = (_count(v, reader, "header") for v in header[:3])
    if n_layers < 1:
        reader.fail("the header declares no layers")
    sizes = [_count(v, reader, "layer sizes") for v in reader.numbers(n_layers + 1, "the layer sizes")]
    if sizes[0] != n_in or sizes[-1] != n_out:
        reader.fail(f"layer sizes {sizes} do not start with inputSize {n_in} and end with outputSize {n_out}")
    reader.skip()  # the unused flag line
    mins = reader.numbers(n_in, "the input minimums")
    maxs = reader.numbers(n_in, "the input maximums")
    means = reader.numbers(n_in + 1, "the means")
    ranges = reader.numbers(n_in + 1, "the ranges")

    layers = []
    for k in range(n_layers):
        rows = [reader.numbers(sizes[k], f"a weight row of layer {k + 1}") for _ in range(sizes[k + 1])]
        bias = [reader.numbers(1, f"a bias of layer {k + 1}")[0] for _ in range(sizes[k + 1])]
        layers.append(Affine(_float32(rows), _float32(bias)))
        if k < n_layers - 1:
            layers.append(ReLU(sizes[k + 1]))
    reader.expect_end()

    lower, upper = np.array(mins), np.array(maxs)
    if normalize:
        layers = _with_normalisation(layers, np.array(means), np.array(ranges), reader)
    else:
        with np.errstate(all="ignore"):
            lower = (lower - means[:n_in]) / np.array(ranges[:n_in])
            upper = (upper - means[:n_in]) / np.array(ranges[:n_in])
    meta = {"normalized": normalize, "input_lower": lower, "input_upper": upper,
            "nnet_means": np.array(means), "nnet_ranges": np.array(ranges)}
    return Network(layers, (1, n_in), (1, n_out), str(path), meta).validate()


def _with_normalisation(layers, means, ranges, reader) -> list:
    import scipy.sparse as sp
    if np.any(ranges == 0):
        reader.fail("a range in the header is zero, so inputs cannot be normalised")
    n_in, n_out = layers[0].in_size, layers[-1].out_size
    if np.any(means[:n_in] != 0) or np.any(ranges[:n_in] != 1):
        scale_in = 1.0 / ranges[:n_in]
        layers = [Affine(sp.diags(scale_in).tocsr(), -means[:n_in] * scale_in), *layers]
    if means[-1] != 0 or ranges[-1] != 1:
        layers = [*layers, Affine(sp.diags(np.full(n_out, ranges[-1])).tocsr(), np.full(n_out, means[-1]))]
    return layers


def _float32(values) -> np.ndarray:
    # The files are float32 dumps; see the module docstring. Out-of-range values become inf
    # and are reported by Network.validate().
    with np.errstate(over="ignore"):
        return np.asarray(values, dtype=np.float64).astype(np.float32).astype(np.float64)


def _count(value: float, reader: "_LineReader", what: str) -> int:
    if value != int(value) or value < 0:
        reader.fail(f"{what}: {value} is not a non-negative integer")
    return int(value)


class _LineReader:
    """The file's non-comment lines, read one at a time, with line numbers for messages."""

    def __init__(self, path: Path):
        self.path = path
        require_file(path, "a .nnet file")
        try:
            text = path.read_text()
        except (OSError, UnicodeDecodeError) as e:
            raise InputError(path, f"cannot be read as a text file ({type(e).__name__}: {e})") from None
        lines = [(i + 1, line.strip()) for i, line in enumerate(text.splitlines())]
        self.lines = [(no, line) for no, line in lines if line and not line.startswith("//")]
        self.pos = 0

    def fail(self, problem: str):
        raise InputError(self.path, problem)

    def _next(self, what: str):
        if self.pos >= len(self.lines):
            self.fail(f"the file ends early: expected {what}")
        self.pos += 1
        return self.lines[self.pos - 1]

    def skip(self):
        self._next("the flag line")

    def numbers(self, count: int, what: str) -> list:
        no, line = self._next(what)
        tokens = [t.strip() for t in line.split(",")]
        if tokens and tokens[-1] == "":  # lines end with a comma
            tokens.pop()
        try:
            values = [float(t) for t in tokens]
        except ValueError:
            bad = next(t for t in tokens if not _is_float(t))
            self.fail(f"line {no}: {bad!r} is not a number (in {what})")
        if len(values) != count:
            self.fail(f"line {no}: expected {count} values for {what}, found {len(values)}")
        return values

    def expect_end(self):
        if self.pos < len(self.lines):
            self.fail(f"line {self.lines[self.pos][0]}: unexpected data after the last layer")


def _is_float(token: str) -> bool:
    try:
        float(token)
        return True
    except ValueError:
        return False
