"""Small random networks and properties for tests and examples, and a brute-force oracle.

The oracle shares no code with the verifier: `linear_regions` enumerates the
linear regions of a network over an input region (a depth-first search over
activation patterns, one neuron at a time, splitting a region only where an LP
shows the neuron takes both signs on it), and on each region the network is
one affine map, so the smallest violation max_i (A_i y - b_i) is one LP
(`min_violation`). The minimum over the regions is the exact minimum violation
s*: the property is sat iff s* <= 0. The LPs go to HiGHS through highspy (a
dependency of the package) directly. `make_instance` builds random instances
whose verdict the oracle fixes.
"""

from __future__ import annotations

import numpy as np

from .core.network import Affine, Network, ReLU
from .core.property import Case, OutputConstraint, Property

# The time limit (seconds) for a test whose point is the verdict: generous, so that only a hang, not a
# slow or loaded machine, misses it (pytest-timeout, pyproject.toml, ends a hung test after 300 s).
VERDICT_TIMEOUT = 120.0


def random_network(sizes, seed: int = 0, scale: float = 1.0, output_relu: bool = False) -> Network:
    """A fully connected ReLU network with layer sizes `sizes` (inputs first) and float32 weights."""
    rng = np.random.default_rng(seed)
    layers = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        w = (rng.standard_normal((n_out, n_in)) * scale / np.sqrt(n_in)).astype(np.float32)
        b = (rng.standard_normal(n_out) * 0.1 * scale).astype(np.float32)
        layers.append(Affine(w.astype(np.float64), b.astype(np.float64)))
        if i < len(sizes) - 2 or output_relu:
            layers.append(ReLU(n_out))
    return Network(layers, input_shape=(1, sizes[0]), output_shape=(1, sizes[-1]), source=f"random{list(sizes)}-seed{seed}")


def box_property(lower, upper, disjuncts) -> Property:
    """A one-case property: x in [lower, upper] and any of `disjuncts` [(A, b), ...] on the outputs."""
    lower = np.asarray(lower, dtype=np.float64)
    upper = np.asarray(upper, dtype=np.float64)
    ds = [OutputConstraint(np.atleast_2d(np.asarray(A, dtype=np.float64)), np.atleast_1d(np.asarray(b, dtype=np.float64)))
          for A, b in disjuncts]
    return Property(len(lower), ds[0].A.shape[1], [Case(lower, upper, ds)])


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


# ------------------------------------------------------------------ the brute-force oracle


def _affine_relu_blocks(net):
    """[(W, b, relu_after)] from a net of Affine layers each optionally followed by ReLU."""
    blocks = []
    for layer in net.layers:
        if isinstance(layer, Affine):
            blocks.append([np.asarray(layer.dense_weight(), float), np.asarray(layer.bias, float), False])
        else:
            assert isinstance(layer, ReLU)
            blocks[-1][2] = True
    return blocks


def _lp(c, A_ub, b_ub, lower, upper):
    """min c @ x over {A_ub x <= b_ub, lower <= x <= upper}: (value, x) or (None, None) if infeasible.

    highspy's LP simplex, called directly: scipy's linprog wraps the same code with more overhead
    (4-5x the time of these tiny LPs, which dominate the oracle's instance generation).
    """
    import highspy

    A_ub = np.asarray(A_ub, dtype=np.float64).reshape(-1, len(c))
    m, n = A_ub.shape
    lp = highspy.HighsLp()
    lp.num_col_, lp.num_row_ = n, m
    lp.col_cost_ = np.asarray(c, dtype=np.float64)
    lp.col_lower_, lp.col_upper_ = np.asarray(lower, dtype=np.float64), np.asarray(upper, dtype=np.float64)
    lp.row_lower_ = np.full(m, -highspy.kHighsInf)
    lp.row_upper_ = np.asarray(b_ub, dtype=np.float64)
    lp.a_matrix_.format_ = highspy.MatrixFormat.kRowwise
    lp.a_matrix_.start_ = np.arange(0, m * n + 1, n, dtype=np.int32) if m else np.zeros(1, np.int32)
    lp.a_matrix_.index_ = np.tile(np.arange(n, dtype=np.int32), m)
    lp.a_matrix_.value_ = A_ub.ravel()
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.passModel(lp)
    h.run()
    status = h.getModelStatus()
    if status == highspy.HighsModelStatus.kInfeasible:
        return None, None
    assert status == highspy.HighsModelStatus.kOptimal, h.modelStatusToString(status)
    return h.getInfo().objective_function_value, np.array(h.getSolution().col_value)


def _range(a, a0, G, h, case):
    """min and max of a @ x + a0 over the region: LPs, unless the box alone already fixes the sign."""
    centre, radius = (case.lower + case.upper) / 2, (case.upper - case.lower) / 2
    mid, rad = a @ centre + a0, np.abs(a) @ radius
    if mid - rad > 1e-9 or mid + rad < -1e-9:
        return mid - rad, mid + rad
    lo, _ = _lp(a, G, h, case.lower, case.upper)
    hi, _ = _lp(-a, G, h, case.lower, case.upper)
    return lo + a0, -hi + a0


def linear_regions(net, case):
    """Every linear region of an Affine/ReLU `net` over `case`, as (G, h, M, c): the region is
    {G x <= h} (within the case's box) and net(x) = M x + c on it."""
    n = len(case.lower)
    base_G = np.zeros((0, n)) if case.input_A is None else np.asarray(case.input_A, float)
    base_h = np.zeros(0) if case.input_b is None else np.asarray(case.input_b, float)
    blocks = _affine_relu_blocks(net)
    regions = []

    def extend(G, h, M, c, k, j, pre):
        # M, c: the map to the input of block k (so far); pre: (W_k M, W_k c + b_k), the block's pre-activation
        if k == len(blocks):
            regions.append((G, h, M, c))
            return
        W, b, relu = blocks[k]
        if pre is None:
            pre = (W @ M, W @ c + b)
            j = 0
            if not relu:
                extend(G, h, pre[0], pre[1], k + 1, 0, None)
                return
        P, p = pre
        if j == len(p):
            # every neuron of block k has a sign: its output is the pre-activation masked by the signs
            extend(G, h, P, p, k + 1, 0, None)
            return
        lo, hi = _range(P[j], p[j], G, h, case)
        if hi > 0:  # active somewhere: z_j >= 0, i.e. -P_j x <= p_j
            extend(np.vstack([G, -P[j]]), np.append(h, p[j]), M, c, k, j + 1, (P, p))
        if lo < 0:  # inactive somewhere: z_j <= 0 and the neuron's output row is 0
            P0, p0 = P.copy(), p.copy()
            P0[j], p0[j] = 0.0, 0.0
            extend(np.vstack([G, P[j]]), np.append(h, -p[j]), M, c, k, j + 1, (P0, p0))

    extend(base_G, base_h, np.eye(n), np.zeros(n), 0, 0, None)
    return regions


def min_violation(regions, case, A, b):
    """The exact minimum of max_i (A_i net(x) - b_i) over the case's input region (one LP per region of
    `linear_regions(net, case)`) and a point attaining it."""
    n = len(case.lower)
    best, best_x = np.inf, None
    for G, h, M, c in regions:
        # variables (x, s): min s  s.t.  G x <= h,  A M x - s <= b - A c
        rows = np.vstack([np.hstack([G, np.zeros((len(G), 1))]), np.hstack([A @ M, -np.ones((len(b), 1))])])
        rhs = np.concatenate([h, b - A @ c])
        val, x = _lp(np.append(np.zeros(n), 1.0), rows, rhs, np.append(case.lower, -1e6), np.append(case.upper, 1e6))
        if val is not None and val < best:
            best, best_x = val, x[:n]
    return best, best_x


def make_instance(seed: int):
    """A random tiny network and a property whose verdict the oracle fixes, as (net, prop, expected,
    margins), each disjunct's exact minimum violation shifted to its margin (+-1e-3 or more)."""
    rng = np.random.default_rng(1000 + seed)
    n_in = int(rng.integers(2, 5))
    hidden = [int(rng.integers(3, 7))] + ([int(rng.integers(3, 6))] if rng.random() < 0.6 else [])
    n_out = int(rng.integers(2, 4))
    output_relu = bool(rng.random() < 0.2) and sum(hidden) <= 8
    net = random_network([n_in, *hidden, n_out], seed=seed, output_relu=output_relu)

    kind = ["single", "disjunctive", "cases"][seed % 3]
    n_cases = int(rng.integers(2, 4)) if kind == "cases" else 1
    want_sat = bool(rng.random() < 0.5)
    sat_slot = (int(rng.integers(n_cases)), None)

    cases, margins = [], []
    for ci in range(n_cases):
        centre = rng.uniform(-1, 1, n_in)
        radius = rng.uniform(0.1, 1.0, n_in)
        case = Case(centre - radius, centre + radius, [])
        if rng.random() < 0.25:  # a halfspace through the box, keeping its centre
            a = rng.standard_normal((1, n_in))
            case.input_A, case.input_b = a, a @ centre + 0.3 * np.abs(a) @ radius
        regions = linear_regions(net, case)
        ys = net.forward(centre + radius * rng.uniform(-1, 1, (50, n_in)))
        n_dis = 1 if kind == "single" else int(rng.integers(2, 4))
        for di in range(n_dis):
            m = int(rng.integers(1, 3)) if n_out > 1 else 1
            A = rng.standard_normal((m, n_out))
            b0 = A @ ys[rng.integers(len(ys))]
            s0, _ = min_violation(regions, case, A, b0)
            # small margins make the counterexamples rare enough that the MILP, not sampling, has to find them
            if want_sat and ci == sat_slot[0] and di == 0:
                target = -rng.choice([1e-3, 5e-3, 0.05])
            else:
                target = rng.choice([1e-3, 5e-3, 0.05, 0.3])
            b = b0 + (s0 - target)  # shifting every row by t shifts s* by -t
            case.disjuncts.append(OutputConstraint(A, b))
            margins.append(target)
        cases.append(case)
    prop = Property(n_in, n_out, cases, source=f"oracle-{seed}")
    expected = "sat" if min(margins) <= 0 else "unsat"
    return net, prop, expected, margins


# ---------------------------------------------------------------- tasks for the runner tests (core/runner.py)
# module-level, so that they travel to worker processes and Dask workers by reference

_REMEMBERED: dict = {}


def remember(value) -> None:
    """A runner initializer: keep `value` in this worker process."""
    _REMEMBERED["value"] = value


def slow_echo(item):
    """A runner task: sleep item[1] seconds, then (item[0], the value `remember` kept here, this process's id)."""
    import os
    import time
    time.sleep(item[1])
    return item[0], _REMEMBERED.get("value"), os.getpid()
