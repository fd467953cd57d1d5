"""Progressive bound tightening: interval -> CROWN -> per-neuron LP -> per-neuron MILP.

Each stage starts from the bounds of the one before and only re-bounds the
neurons that are still unstable (pre-activation lower < 0 < upper): those are
the ones that cost a binary variable in the MILP. The result of every stage is
sound, so the stages can be stopped anywhere (a time budget) and the bounds so
far used as they are.

- "interval": IBP.
- "crown": CROWN with optimised slopes (alpha-CROWN), intersected with IBP.
- "lp": for each layer feeding a ReLU, in order, min and max of every unstable
  neuron over the LP relaxation (triangle relaxation of the ReLUs below it,
  with the bounds tightened so far), then CROWN again with those bounds fixed,
  which carries the gain to the layers above.
- "milp": the same with the binaries kept, each solve under a time cap.
- "krelu": the "lp" stage, where each layer's LPs also carry the k-ReLU facets
  (bounds/krelu.py, k = KRELU_K) of the groups of every earlier ReLU layer:
  the multi-neuron relaxation below the layer instead of the triangles alone.
  (The verifier then also puts the facets of every layer into every MILP.)

Soundness of LP bounds. The value an LP solver reports is a floating-point
number with tolerances; it is never used. Instead, for min c.x subject to
rl <= A x <= ru and cl <= x <= cu, ANY multipliers lam give the bound

    c.x = lam.(A x) + (c - A^T lam).x
        >= sum_i min(lam_i rl_i, lam_i ru_i) + sum_j min(r_j cl_j, r_j cu_j),  r = c - A^T lam,

(weak duality, Neumaier and Shcherbina 2004). We take the solver's row duals
as lam, evaluate that expression in float64 and pad it by a bound on its
rounding error. Wrong or inaccurate duals can only make the bound looser,
never unsound. A neuron's bound is only ever replaced by a tighter one.

Soundness of MILP bounds: the solver's proven dual bound (best bound over the
open nodes), padded by `MILP_PAD` relative to the scale. It rests on the
solver's own LP tolerances, the same trust as its infeasible status, and it is
used only when the solver ends optimal or on its time cap with a finite bound.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from ..bounds.crown import compute_bounds, crown_bounds
from ..bounds.interval import affine_interval
from ..bounds.krelu import layer_cuts, relu_inputs
from ..bounds.layer_bounds import LayerBounds
from ..encodings.milp import build_milp
from ..core.network import Affine, Network
from ..core.property import Case, OutputConstraint
from ..solvers.highs import run_highs as _run_highs

STAGES = ("interval", "crown", "lp", "milp", "krelu")
KRELU_K = 3  # the group size of the "krelu" stage
MARGIN_SECONDS = 30.0  # time cap of one LP of `lp_lower_bounds`
MILP_PAD = 1e-6  # relative to max(1, |bound|)
_EPS = np.finfo(np.float64).eps


@dataclass
class TighteningReport:
    """Unstable ReLUs per layer after each stage, and the time each stage took."""

    stages: list = field(default_factory=list)  # [{"stage", "unstable", "seconds", "solves"}]

    def add(self, stage: str, lb: LayerBounds, net: Network, seconds: float, solves: int = 0):
        """Record one stage: the unstable ReLUs per layer under `lb`, its time and its number of solves."""
        self.stages.append({"stage": stage, "unstable": lb.unstable_counts(net), "seconds": round(seconds, 4),
                            "solves": solves})

    def as_dict(self) -> dict:
        """The report as a plain dict, for JSON."""
        return {"stages": self.stages}


def tightened_bounds(net: Network, lower, upper, tightening: str = "crown", deadline: float | None = None,
                     milp_neuron_seconds: float = 1.0, report: TighteningReport | None = None) -> LayerBounds:
    """Sound bounds over [lower, upper], tightened up to stage `tightening` (one of STAGES).

    Stops tightening (returning the sound bounds so far) at `deadline`
    (a time.perf_counter() value). `report`, if given, receives per-stage counts.
    """
    if tightening not in STAGES:
        raise ValueError(f"unknown tightening {tightening!r} (choose from {', '.join(STAGES)})")
    report = report if report is not None else TighteningReport()
    t = time.perf_counter()
    lb = compute_bounds(net, lower, upper, "interval")
    report.add("interval", lb, net, time.perf_counter() - t)
    if tightening == "interval":
        return lb
    t = time.perf_counter()
    lb = crown_bounds(net, lower, upper, alpha="optimized")
    report.add("crown", lb, net, time.perf_counter() - t)
    if tightening == "krelu":
        t = time.perf_counter()
        lb, solves = _solver_tighten(net, lb, lower, upper, integer=False, deadline=deadline,
                                     neuron_seconds=milp_neuron_seconds, krelu=KRELU_K)
        report.add("krelu", lb, net, time.perf_counter() - t, solves)
        return lb
    for stage in ("lp", "milp"):
        if STAGES.index(tightening) < STAGES.index(stage):
            break
        t = time.perf_counter()
        lb, solves = _solver_tighten(net, lb, lower, upper, integer=(stage == "milp"), deadline=deadline,
                                     neuron_seconds=milp_neuron_seconds)
        report.add(stage, lb, net, time.perf_counter() - t, solves)
    return lb


def _solver_tighten(net: Network, lb: LayerBounds, lower, upper, integer: bool, deadline, neuron_seconds: float,
                    krelu: int = 0):
    """One LP (or MILP) min and max per unstable neuron, layer by layer; returns (bounds, number of solves).
    With `krelu` = k, each layer's LPs carry the k-ReLU facets of the layers below it."""
    solves = 0
    inputs = relu_inputs(net)
    cuts: list = []
    for k in inputs:
        lo, hi = lb.lower[k], lb.upper[k]
        unstable = np.flatnonzero((lo < 0) & (hi > 0))
        if deadline is not None and time.perf_counter() >= deadline:
            break
        if len(unstable) and k >= 1:  # the first layer's bounds are exact already
            new_lo, new_hi, n = _tighten_layer(net, lb, k, unstable, lower, upper, integer, deadline, neuron_seconds,
                                               cuts)
            solves += n
            # CROWN again with the tightened layer fixed: later layers' relaxations get tighter too
            lb = crown_bounds(net, lower, upper, alpha="adaptive",
                              known=lb.with_layer(k, np.maximum(lo, new_lo), np.minimum(hi, new_hi)))
        if krelu and k != inputs[-1]:
            cuts += layer_cuts(net, lb, k, krelu)
    return lb, solves


def lp_lower_bounds(net: Network, lb: LayerBounds, C, cuts=(), time_cap: float = MARGIN_SECONDS,
                    stop_at: float | None = None) -> np.ndarray:
    """Sound lower bounds on each row of C @ net(x) over the input box of `lb`, from the LP relaxation with
    `lb`'s bounds (the triangle for every unstable ReLU: the single-neuron barrier) plus the k-ReLU facets
    `cuts`; each is the padded weak-duality bound of the LP's duals, never below the interval one.
    With `stop_at`, the rows after the first whose bound is <= stop_at keep their interval bounds (a
    certificate that needs every row > stop_at has failed already)."""
    C = np.atleast_2d(np.asarray(C, dtype=np.float64))
    margin = Affine(C, np.zeros(len(C)))
    box_lo, box_hi = affine_interval(margin, lb.lower[-1], lb.upper[-1])
    ext = Network([*net.layers, margin], input_shape=(1, net.input_size), output_shape=(1, len(C)))
    elb = LayerBounds(lb.input_lower, lb.input_upper, [*lb.lower, box_lo], [*lb.upper, box_hi], lb.method)
    empty = OutputConstraint(np.zeros((0, len(C))), np.zeros(0))
    model = build_milp(ext, elb, Case(np.asarray(lb.input_lower, float), np.asarray(lb.input_upper, float), [empty]),
                       empty, cuts=cuts)
    model.integrality = np.zeros_like(model.integrality)
    solver = _Solver(model, integer=False)
    out = box_lo.copy()
    for j, col in enumerate(model.output_cols):
        bound = solver.lower_bound(int(col), 1.0, time_cap)
        if bound is not None:
            out[j] = max(out[j], bound)
        if stop_at is not None and out[j] <= stop_at:
            break
    return out


def _tighten_layer(net: Network, lb: LayerBounds, k: int, neurons, lower, upper, integer: bool, deadline,
                   neuron_seconds: float, cuts=()):
    """Bounds on neurons of layer k's output from the (MI)LP of layers 0..k (with the k-ReLU facets `cuts`)."""
    prefix = Network(net.layers[:k + 1], input_shape=(1, net.input_size), output_shape=(1, net.layers[k].out_size))
    plb = lb.prefix(k)
    empty = OutputConstraint(np.zeros((0, net.layers[k].out_size)), np.zeros(0))
    model = build_milp(prefix, plb, Case(np.asarray(lower, float), np.asarray(upper, float), [empty]), empty,
                       cuts=cuts)
    return tighten_columns(model, [int(model.output_cols[j]) for j in neurons], neurons, lb.lower[k], lb.upper[k],
                           integer, deadline, neuron_seconds)


def tighten_columns(model, cols, neurons, lower, upper, integer: bool = False, deadline=None,
                    neuron_seconds: float = MARGIN_SECONDS):
    """min and max of model column cols[i] (the neuron neurons[i] of a layer with bounds lower, upper),
    one warm-started solve each: the model's LP relaxation (or MILP, `integer`), bounds as in the
    module doc. Returns (new lower, new upper, solves); a neuron found stable skips its other side."""
    new_lo, new_hi = np.array(lower, dtype=np.float64), np.array(upper, dtype=np.float64)
    if not integer:
        model.integrality = np.zeros_like(model.integrality)
    solver = _Solver(model, integer)
    solves = 0
    for col, j in zip(cols, neurons):
        for sign in (1.0, -1.0):  # min z_j, then min -z_j
            if deadline is not None and time.perf_counter() >= deadline:
                return new_lo, new_hi, solves
            cap = neuron_seconds if deadline is None else min(neuron_seconds, deadline - time.perf_counter())
            bound = solver.lower_bound(int(col), sign, cap)
            solves += 1
            if bound is None:
                continue
            if sign > 0:
                new_lo[j] = max(new_lo[j], bound)
            else:
                new_hi[j] = min(new_hi[j], -bound)
            if new_lo[j] >= 0 or new_hi[j] <= 0:
                break  # stable now: the other side cannot change that
    return new_lo, new_hi, solves


class _Solver:
    """One HiGHS instance per layer; each neuron only changes the objective (warm-started LPs)."""

    def __init__(self, model, integer: bool):
        import highspy

        from ..solvers.highs import _to_highs_lp, new_highs
        self.model = model
        self.integer = integer
        self.h = new_highs()
        h = self.h
        h.setOptionValue("mip_rel_gap", 1e-4)
        model.objective = np.zeros(model.num_cols)
        h.passModel(_to_highs_lp(model, highspy))
        self.highspy = highspy
        self.A = model.A.tocsr()
        self.At = self.A.T.tocsr()
        self.absA = abs(self.A)
        self.col_mag = np.maximum(np.abs(model.col_lower), np.abs(model.col_upper))
        self.last = None

    def lower_bound(self, col: int, sign: float, time_cap: float):
        """A sound lower bound on sign * x[col] over the model, or None."""
        h = self.h
        idx = np.array([col] if self.last is None or self.last == col else [self.last, col], dtype=np.int32)
        costs = np.array([sign] if len(idx) == 1 else [0.0, sign])
        h.changeColsCost(len(idx), idx, costs)
        self.last = col
        h.setOptionValue("time_limit", float(max(time_cap, 1e-3)))
        _run_highs(h)
        M = self.highspy.HighsModelStatus
        status = h.getModelStatus()
        if self.integer:
            info = h.getInfo()
            dual = float(info.mip_dual_bound)
            if status not in (M.kOptimal, M.kTimeLimit) or not np.isfinite(dual):
                return None
            return dual - MILP_PAD * max(1.0, abs(dual))
        if status != M.kOptimal:
            return None
        lam = np.asarray(h.getSolution().row_dual, dtype=np.float64)
        c = np.zeros(self.model.num_cols)
        c[col] = sign
        return self._dual_bound(c, lam)

    def _dual_bound(self, c: np.ndarray, lam: np.ndarray) -> float:
        """The weak-duality bound of the module doc for multipliers lam, padded for rounding."""
        m = self.model
        rl, ru = m.row_lower, m.row_upper
        # a multiplier on an infinite side would give -inf: such a row cannot be used that way
        lam = np.where((lam > 0) & ~np.isfinite(rl), 0.0, lam)
        lam = np.where((lam < 0) & ~np.isfinite(ru), 0.0, lam)
        row_part = np.where(lam > 0, lam * np.where(np.isfinite(rl), rl, 0.0),
                            lam * np.where(np.isfinite(ru), ru, 0.0))
        r = c - self.At @ lam
        col_part = np.minimum(r * m.col_lower, r * m.col_upper)
        bound = float(np.sum(row_part) + np.sum(col_part))
        if not np.isfinite(bound):
            return -np.inf
        row_mag = np.abs(lam) * np.where(np.isfinite(rl) | np.isfinite(ru),
                                         np.maximum(np.where(np.isfinite(rl), np.abs(rl), 0.0),
                                                    np.where(np.isfinite(ru), np.abs(ru), 0.0)), 0.0)
        # r's rounding error is at most gamma (|c| + |A|^T |lam|) per entry, times |x_j| <= col_mag
        r_mag = (np.abs(c) + self.absA.T @ np.abs(lam)) * self.col_mag
        terms = m.num_rows + m.num_cols + int(np.max(np.diff(self.A.indptr), initial=0)) + 8
        slack = 2 * terms * _EPS * (float(np.sum(row_mag)) + float(np.sum(r_mag)) + abs(bound)) + 1e-300
        return bound - slack
