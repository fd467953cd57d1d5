"""The big-M MILP encoding of one (case, disjunct) query, as backend-neutral data.

`build_milp` describes the model once, as plain arrays (`MilpModel`): column
bounds, integrality, names, a sparse row matrix with row bounds, an objective.
Solver backends (`exactverify.solvers`) and LP/MPS writers only translate it.

The encoding, for a network `net` with sound `LayerBounds` over the case box:

- inputs: one column per input, bounded by the case box; the case's
  `input_A x <= input_b` as rows;
- `Affine`: one new column z per output with the equality row W x - z = -b,
  bounded by the layer's (padded) bounds;
- `ReLU` with pre-activation bounds [l, u]: u <= 0 -> the output is the constant
  0 (no column); l >= 0 -> the output is the input column itself; otherwise
  the standard big-M: y >= x, y >= 0, y <= x - l (1 - a), y <= u a, a binary;
- `MaxGroups`: members that can never be the maximum (upper bound below the
  largest lower bound of the group) are dropped; a single survivor is passed
  through; otherwise y >= x_j for every member and y <= x_j + M_j (1 - d_j) with
  one binary d_j per member and sum_j d_j = 1;
- the disjunct A y <= b becomes A_i y - b_i <= s for a violation column s.

Deciding the query (see `violation_bounds` for the numbers): s is bounded
above by a small positive proof margin `tolerance`, below by what the output
bounds already imply (max_i of the lower bounds of A_i y - b_i), and the
objective is min s.

- Why a hard upper bound s <= tolerance rather than "minimise s and read the
  dual bound": the two prove the same thing (no point has violation <= 0,
  with `tolerance` of slack against the solver's floating-point error), but
  the hard bound is one status the solver only reports after a complete search
  (infeasible), and it lets presolve and node propagation push the output
  bound A y <= b + tolerance back through the network, which prunes far more
  than a bound on the objective alone. Unsat is therefore concluded ONLY from
  the status infeasible, never from an objective value.
- Why still minimise s, and why no artificial negative cap on it: the LP
  value of s at each node is what steers best-bound search towards
  counterexamples. A cap close to 0 (we tried -1e-3 of the scale) makes
  almost every node's LP sit at the cap, which blinds the search: on random
  30x30 nets it then found no solution at all in 20 s where the uncapped
  model found re-checked counterexamples in a few. Early stopping is the
  backend callback's job instead: it re-checks each improving solution and
  stops at the first real counterexample, so `cap` defaults to the implied
  bound and only matters to callers that want one.
- A real counterexample is never cut off: every row below holds with equality
  or slack at the exact network values of any input in the box (the bounds are
  padded outward for floating point), so its s <= 0 < tolerance is feasible.

Entries whose magnitude is below `SMALL_ENTRY` are not handed to the solver
(HiGHS silently drops matrix values below 1e-9, which would change the model
unsoundly); instead each is removed and its row is widened by the largest
value it could contribute, |w| max(|lo|, |hi|) over its column bounds. That
only relaxes the model: it can add spurious solutions (caught by the re-check)
but never remove a real one. Unstable ReLUs with min(-l, u) below
`SMALL_BIGM` get no binary (their big-M coefficients would be such entries);
they are relaxed to y >= 0, y >= x, y <= x - l, y <= u, which holds at every
real point and differs from the ReLU by at most min(-l, u).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from ..bounds.layer_bounds import LayerBounds
from ..bounds.padding import pad
from ..core.network import Affine, MaxGroups, Network, ReLU
from ..core.property import Case, OutputConstraint

if TYPE_CHECKING:  # scipy.sparse is imported where a matrix is built, not on start-up
    import scipy.sparse as sp

SMALL_ENTRY = 1e-9  # HiGHS' small_matrix_value: entries below it would be dropped silently
SMALL_BIGM = 1e-6  # an unstable ReLU this close to stable is relaxed instead of branched on
TOLERANCE = 1e-6  # proof margin on the violation, relative to the scale
_INF = np.inf
_ZERO = -1  # in a layer's column map: this value is identically 0 and has no column


@dataclass
class MilpModel:
    """min/max objective @ cols  s.t.  row_lower <= A @ cols <= row_upper,  col_lower <= cols <= col_upper."""

    col_lower: np.ndarray
    col_upper: np.ndarray
    integrality: np.ndarray  # bool per column: True = integer (all ours are binaries)
    col_names: list
    A: sp.csr_matrix  # (n_rows, n_cols)
    row_lower: np.ndarray
    row_upper: np.ndarray
    row_names: list
    objective: np.ndarray
    sense: str = "min"  # "min" or "max"
    # how to read a solution back
    input_cols: np.ndarray = None  # column of each network input
    output_cols: np.ndarray = None  # column of each network output, _ZERO (-1) where it is identically 0
    violation_col: int = -1  # the column s
    tolerance: float = 0.0  # s <= tolerance: infeasible proves that no point has violation <= 0
    cap: float = 0.0  # s >= cap: by default the lower bound the output bounds imply
    scale: float = 1.0  # the violation scale (`violation_scale`) that `tolerance` is relative to
    stats: dict = field(default_factory=dict)  # binaries, unstable / relaxed ReLUs per layer, ...

    @property
    def num_cols(self) -> int:
        """Number of columns (variables)."""
        return len(self.col_lower)

    @property
    def num_rows(self) -> int:
        """Number of rows (constraints)."""
        return len(self.row_lower)

    @property
    def num_binaries(self) -> int:
        """Number of integer columns (all of them binaries)."""
        return int(np.count_nonzero(self.integrality))

    def input_values(self, col_values) -> np.ndarray:
        """The network input values in a solution given as one value per column."""
        return np.asarray(col_values, dtype=np.float64)[self.input_cols]

    def output_values(self, col_values) -> np.ndarray:
        """The network output values in a solution given as one value per column (0 for outputs without one)."""
        v = np.asarray(col_values, dtype=np.float64)
        return np.where(self.output_cols >= 0, v[np.maximum(self.output_cols, 0)], 0.0)

    def with_violation_bound(self, upper: float) -> "MilpModel":
        """The same model with s <= upper (e.g. a negative margin to ask for a robust counterexample)."""
        col_upper = self.col_upper.copy()
        col_upper[self.violation_col] = upper
        out = MilpModel(**{**self.__dict__, "col_upper": col_upper})
        out.stats = dict(self.stats)
        return out

    def with_fixed_integers(self, col_values) -> "MilpModel":
        """The LP left when every integer column is fixed to the rounding of its value in `col_values`.

        With the binaries at exactly 0 or 1 the big-M rows encode one linear
        region exactly, so an LP solution is free of the integrality slack a
        MIP solution may carry.
        """
        v = np.round(np.asarray(col_values, dtype=np.float64))
        fixed = np.clip(v, self.col_lower, self.col_upper)
        col_lower = np.where(self.integrality, fixed, self.col_lower)
        col_upper = np.where(self.integrality, fixed, self.col_upper)
        out = MilpModel(**{**self.__dict__, "col_lower": col_lower, "col_upper": col_upper,
                           "integrality": np.zeros_like(self.integrality)})
        out.stats = dict(self.stats)
        return out


def violation_bounds(A: np.ndarray, b: np.ndarray, y_lower: np.ndarray, y_upper: np.ndarray):
    """Sound elementwise bounds on A y - b for y in [y_lower, y_upper], padded for float64 rounding."""
    A = np.asarray(A, dtype=np.float64)
    pos, neg = np.maximum(A, 0.0), np.minimum(A, 0.0)
    lo = pos @ y_lower + neg @ y_upper - b
    hi = pos @ y_upper + neg @ y_lower - b
    magnitude = np.abs(A) @ np.maximum(np.abs(y_lower), np.abs(y_upper)) + np.abs(b)
    return pad(lo, hi, magnitude, A.shape[1])


def violation_scale(row_lower: np.ndarray, row_upper: np.ndarray) -> float:
    """The magnitude of the violation A y - b over the box: margins are relative to it (at least 1)."""
    if len(row_lower) == 0:
        return 1.0
    m = np.max(np.maximum(np.abs(row_lower), np.abs(row_upper)))
    return float(max(1.0, m)) if np.isfinite(m) else 1.0


def build_milp(network: Network, layer_bounds: LayerBounds, case: Case, disjunct: OutputConstraint,
               tolerance: float | None = None, cap: float | None = None, cuts=()) -> MilpModel:
    """Encode 'some x in the case has network(x) meeting the disjunct' as a MILP (see the module doc).

    `layer_bounds` must be bounds of `network` (the simplified one you encode)
    over the case box. `tolerance` (absolute) defaults to TOLERANCE times the
    violation scale; `cap`, a lower bound on s, to the one the bounds imply.
    `cuts`: k-ReLU facets (bounds.krelu.GroupFacets) over the case's input set, added as rows on
    their group's pre- and post-activation columns; they hold at every real point, so they only
    cut relaxed solutions.
    """
    b = _Builder()
    n_in = network.input_size

    x_cols = b.add_cols(case.lower, case.upper, names=[f"x{i}" for i in range(n_in)])
    if case.input_A is not None and len(case.input_b):
        ia = np.asarray(case.input_A, dtype=np.float64)
        r, c = np.nonzero(ia)
        b.add_rows(r, x_cols[c], ia[r, c], np.full(len(case.input_b), -_INF), np.asarray(case.input_b, float),
                   prefix="input")

    cols = x_cols
    for i, layer in enumerate(network.layers):
        lo, hi = layer_bounds.pre_activation(i)
        out_lo, out_hi = layer_bounds.lower[i], layer_bounds.upper[i]
        if isinstance(layer, Affine):
            cols = _encode_affine(b, i, layer, cols, out_lo, out_hi)
        elif isinstance(layer, ReLU):
            pre, cols = cols, _encode_relu(b, i, cols, lo, hi)
            for cut in cuts:
                if cut.layer == i - 1:
                    _add_cut(b, cut, pre, cols)
        elif isinstance(layer, MaxGroups):
            cols = _encode_maxgroups(b, i, layer, cols, lo, hi, out_lo, out_hi)
        else:
            raise TypeError(f"unknown layer type {type(layer).__name__}")

    y_lo, y_hi = layer_bounds.lower[-1], layer_bounds.upper[-1]
    A = np.asarray(disjunct.A, dtype=np.float64)
    rhs = np.asarray(disjunct.b, dtype=np.float64)
    v_lo, v_hi = violation_bounds(A, rhs, y_lo, y_hi)
    scale = violation_scale(v_lo, v_hi)
    tolerance = TOLERANCE * scale if tolerance is None else float(tolerance)
    # s never needs to exceed max_i v_hi_i, and is at least max_i v_lo_i at any real point
    s_upper = min(tolerance, float(np.max(v_hi))) if len(rhs) else tolerance
    if cap is None:
        cap = float(np.max(v_lo)) if len(rhs) else -scale
    cap = min(cap, s_upper)  # lowering a lower bound only relaxes: it stays sound
    s_col = int(b.add_cols([cap], [s_upper], names=["s"])[0])

    # A_i y - s <= b_i (outputs that are identically zero contribute nothing)
    r, c = np.nonzero(A)
    keep = cols[c] >= 0
    r, c = r[keep], c[keep]
    m = len(rhs)
    b.add_rows(np.concatenate([r, np.arange(m)]), np.concatenate([cols[c], np.full(m, s_col)]),
               np.concatenate([A[r, c], -np.ones(m)]), np.full(m, -_INF), rhs, prefix="out")

    model = b.finish()
    model.objective = np.zeros(model.num_cols)
    model.objective[s_col] = 1.0
    model.sense = "min"
    model.input_cols = x_cols
    model.output_cols = cols
    model.violation_col = s_col
    model.tolerance = tolerance
    model.cap = cap
    model.scale = scale
    model.stats = b.stats
    return model


# ------------------------------------------------------------------ layers

def _encode_affine(b: "_Builder", i: int, layer: Affine, cols: np.ndarray, out_lo, out_hi) -> np.ndarray:
    """z = W x + bias as rows W x - z = -bias; inputs that are identically zero drop out."""
    import scipy.sparse as sp
    w = sp.coo_matrix(layer.weight)
    r, c, v = w.row, w.col, w.data
    keep = (cols[c] >= 0) & (v != 0)
    r, c, v = r[keep], c[keep], v[keep]
    n = layer.out_size
    z = b.add_cols(out_lo, out_hi, names=[f"L{i}_z{j}" for j in range(n)])
    rhs = -np.asarray(layer.bias, dtype=np.float64)
    b.add_rows(np.concatenate([r, np.arange(n)]), np.concatenate([cols[c], z]),
               np.concatenate([v, -np.ones(n)]), rhs, rhs, prefix=f"L{i}_aff")
    return z


def _encode_relu(b: "_Builder", i: int, cols: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    out = np.full(len(cols), _ZERO, dtype=np.int64)
    active = (lo >= 0) & (cols >= 0)
    out[active] = cols[active]
    unstable = np.flatnonzero((lo < 0) & (hi > 0) & (cols >= 0))  # a zero input stays zero
    relaxed = unstable[np.minimum(-lo[unstable], hi[unstable]) < SMALL_BIGM]
    branched = unstable[np.minimum(-lo[unstable], hi[unstable]) >= SMALL_BIGM]
    b.stats.setdefault("relu_unstable", []).append(len(unstable))
    b.stats.setdefault("relu_relaxed", []).append(len(relaxed))

    if len(relaxed):
        l, u, x = lo[relaxed], hi[relaxed], cols[relaxed]
        y = b.add_cols(np.zeros(len(relaxed)), u, names=[f"L{i}_y{j}" for j in relaxed])
        k = len(relaxed)
        ones = np.ones(k)
        # y - x >= 0 and y - x <= -l
        b.add_rows(np.tile(np.arange(k), 2), np.concatenate([y, x]), np.concatenate([ones, -ones]),
                   np.zeros(k), -l, prefix=f"L{i}_relax")
        out[relaxed] = y

    if len(branched):
        l, u, x = lo[branched], hi[branched], cols[branched]
        k = len(branched)
        y = b.add_cols(np.zeros(k), u, names=[f"L{i}_y{j}" for j in branched])
        a = b.add_cols(np.zeros(k), np.ones(k), integer=True, names=[f"L{i}_a{j}" for j in branched])
        ones, rows = np.ones(k), np.arange(k)
        # y - x >= 0
        b.add_rows(np.tile(rows, 2), np.concatenate([y, x]), np.concatenate([ones, -ones]),
                   np.zeros(k), np.full(k, _INF), prefix=f"L{i}_ge")
        # y - x - l a <= -l   (y <= x - l (1 - a))
        b.add_rows(np.tile(rows, 3), np.concatenate([y, x, a]), np.concatenate([ones, -ones, -l]),
                   np.full(k, -_INF), -l, prefix=f"L{i}_up")
        # y - u a <= 0
        b.add_rows(np.tile(rows, 2), np.concatenate([y, a]), np.concatenate([ones, -u]),
                   np.full(k, -_INF), np.zeros(k), prefix=f"L{i}_on")
        out[branched] = y
    return out


def _add_cut(b: "_Builder", cut, pre: np.ndarray, post: np.ndarray) -> None:
    """The facets A (x, y) <= b of one k-ReLU group; a y that is identically 0 drops out."""
    k = len(cut.neurons)
    cols = np.concatenate([pre[cut.neurons], post[cut.neurons]])
    m = len(cut.b)
    r, c = np.nonzero(cut.A)
    keep = cols[c] >= 0
    r, c = r[keep], c[keep]
    b.add_rows(r, cols[c], cut.A[r, c], np.full(m, -_INF), cut.b, prefix=f"L{cut.layer}_krelu{k}")
    b.stats["krelu_rows"] = b.stats.get("krelu_rows", 0) + m


def _encode_maxgroups(b: "_Builder", i: int, layer: MaxGroups, cols: np.ndarray, lo, hi, out_lo, out_hi):
    out = np.full(layer.out_size, _ZERO, dtype=np.int64)
    dropped = 0
    for k in range(layer.out_size):
        members = layer.members(k)
        floor = np.max(lo[members])
        members = members[hi[members] >= floor]  # the others are strictly below some member, always
        dropped += layer.members(k).size - members.size
        if len(members) == 1:
            out[k] = cols[members[0]]
            continue
        ml, mu = lo[members], hi[members]
        y = int(b.add_cols([max(floor, out_lo[k])], [min(np.max(mu), out_hi[k])], names=[f"L{i}_m{k}"])[0])
        d = b.add_cols(np.zeros(len(members)), np.ones(len(members)), integer=True,
                       names=[f"L{i}_d{k}_{j}" for j in members])
        # M_j: the most y - x_j can be when member j is not the maximum
        big = np.array([max(np.max(np.delete(mu, j)) - ml[j], 0.0) for j in range(len(members))])
        for j, (mcol, m_j) in enumerate(zip(cols[members], big)):
            if mcol >= 0:  # y - x_j >= 0  and  y - x_j + M_j d_j <= M_j
                b.add_rows([0, 0], [y, mcol], [1.0, -1.0], [0.0], [_INF], prefix=f"L{i}_ge{k}")
                b.add_rows([0, 0, 0], [y, mcol, d[j]], [1.0, -1.0, m_j], [-_INF], [m_j], prefix=f"L{i}_le{k}")
            else:  # member identically 0: y >= 0 holds by its bounds (floor >= 0); y + M_j d_j <= M_j
                b.add_rows([0, 0], [y, d[j]], [1.0, m_j], [-_INF], [m_j], prefix=f"L{i}_le{k}")
        b.add_rows(np.zeros(len(d), dtype=np.int64), d, np.ones(len(d)), [1.0], [1.0], prefix=f"L{i}_one{k}")
        out[k] = y
    b.stats.setdefault("max_dropped_members", []).append(dropped)
    return out


# ------------------------------------------------------------------ assembly

class _Builder:
    """Accumulates columns and COO row blocks; `finish` assembles the CSR matrix."""

    def __init__(self):
        self.col_lower, self.col_upper, self.integer, self.col_names = [], [], [], []
        self.n_cols = 0
        self.rows, self.cols, self.vals = [], [], []
        self.row_lower, self.row_upper, self.row_names = [], [], []
        self.n_rows = 0
        self.stats: dict = {}

    def add_cols(self, lower, upper, integer: bool = False, names=None) -> np.ndarray:
        lower = np.atleast_1d(np.asarray(lower, dtype=np.float64))
        upper = np.atleast_1d(np.asarray(upper, dtype=np.float64))
        n = len(lower)
        idx = np.arange(self.n_cols, self.n_cols + n)
        self.col_lower.append(lower)
        self.col_upper.append(upper)
        self.integer.append(np.full(n, integer))
        self.col_names.extend(names if names is not None else [f"c{j}" for j in idx])
        self.n_cols += n
        return idx

    def add_rows(self, local_rows, cols, vals, lower, upper, prefix: str = "r"):
        """Rows numbered locally from 0 within this block; `lower`/`upper` give the block's row count."""
        lower = np.atleast_1d(np.asarray(lower, dtype=np.float64))
        upper = np.atleast_1d(np.asarray(upper, dtype=np.float64))
        self.rows.append(np.asarray(local_rows, dtype=np.int64) + self.n_rows)
        self.cols.append(np.asarray(cols, dtype=np.int64))
        self.vals.append(np.asarray(vals, dtype=np.float64))
        self.row_lower.append(lower)
        self.row_upper.append(upper)
        self.row_names.extend(f"{prefix}_{j}" for j in range(len(lower)))
        self.n_rows += len(lower)

    def finish(self) -> MilpModel:
        import scipy.sparse as sp
        cat = lambda parts, dt=np.float64: np.concatenate(parts).astype(dt) if parts else np.zeros(0, dt)
        col_lower, col_upper = cat(self.col_lower), cat(self.col_upper)
        integer = cat(self.integer, bool)
        rows, cols, vals = cat(self.rows, np.int64), cat(self.cols, np.int64), cat(self.vals)
        row_lower, row_upper = cat(self.row_lower), cat(self.row_upper)
        if not (np.all(np.isfinite(col_lower)) and np.all(np.isfinite(col_upper))):
            raise ValueError("every MILP column needs finite bounds (they come from the layer bounds)")

        # Relax tiny entries into the row bounds instead of letting the solver drop them (see module doc).
        tiny = (np.abs(vals) < SMALL_ENTRY) & (vals != 0)
        if tiny.any():
            reach = np.abs(vals[tiny]) * np.maximum(np.abs(col_lower[cols[tiny]]), np.abs(col_upper[cols[tiny]]))
            widen = np.bincount(rows[tiny], weights=reach, minlength=len(row_lower))
            widen = widen * (1 + 4 * np.finfo(np.float64).eps) + 1e-300 * (widen > 0)
            row_lower = row_lower - widen
            row_upper = row_upper + widen
            self.stats["tiny_entries_relaxed"] = int(tiny.sum())
        keep = (vals != 0) & ~tiny
        A = sp.csr_matrix((vals[keep], (rows[keep], cols[keep])), shape=(len(row_lower), len(col_lower)))
        A.sum_duplicates()
        self.stats["binaries"] = int(integer.sum())
        return MilpModel(col_lower=col_lower, col_upper=col_upper, integrality=integer, col_names=self.col_names,
                         A=A, row_lower=row_lower, row_upper=row_upper, row_names=self.row_names,
                         objective=np.zeros(len(col_lower)))
