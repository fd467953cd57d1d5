"""Validating incomplete verifiers against exact answers.

For every data point x (with label c) and every radius eps, the exact question
is whether some x' in the ball of radius eps around x (L-inf, L1 or L2), clipped
to the input domain, makes some other class j score at least as high as c
(y_j >= y_c: a disjunction over j). `verify` answers it for L-inf balls, a ball
check (metrics/radius_ball.py) for L1 and L2 balls: `sat` with a re-checked
counterexample (the point is not robust), `unsat` with a proof (robust), or
`timeout`/`unknown`.

Each incomplete method answers the same question with "certified" or not
(or with a certified radius r, read as certified at eps when r >= eps).
Per method and eps the report gives:

- soundness violations: points the method certified that have a counterexample,
  each listed with the counterexample (which re-checks on the network);
- completeness: certified / truly robust (exact `unsat`);
- for radius-producing methods, the certified radius against the exact pointwise robustness.

Built-in methods (all certify when a sound lower bound on y_c - y_j is > 0 for
every j != c): `ibp` (interval bound propagation, the last affine layer folded
into the margins; for L1 and L2 over the L-inf box around the ball), `crown`
(CROWN-Ada backward bounds on the margins), `alpha-crown` (optimised lower
slopes), and `lipschitz` (a certified radius min_j margin_j / L_j from
`exactverify.bounds.lipschitz`, GloRo's certificate). For L1 and L2, crown and
alpha-crown bound over the ball itself (bounds/norm_ball.py) and also report the
largest radius they certify (bisection), for the radius comparison.
`lp` is the LP relaxation with alpha-CROWN's intermediate bounds, a triangle per
unstable ReLU (the best any single-neuron relaxation can do with those bounds,
the "convex barrier"), and `krelu2` / `krelu` the same LP with the facets of the
convex hull of groups of 2 / 3 ReLUs of each layer (bounds/krelu.py); both
bound the margins by the LP's padded dual (search/tightening.py), and for L1/L2
work over the L-inf box around the ball, as ibp does.

Your own method is a function `fn(network, x, eps)` (or `fn(network, x, eps, label)`)
returning a bool (certified) or a float (a certified radius):

    from exactverify.metrics.validate import validate
    report = validate(net, X, y, [0.01, 0.02], methods={"mine": fn, "crown": "crown"})
    print(report.format_table())

A method that takes no label certifies the network's own prediction; on
points the network misclassifies it is not asked (those points are
misclassified, hence not robust, anyway).
"""

from __future__ import annotations

import inspect
import math
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from ..bounds.norm_ball import NormBall
from ..bounds.padding import pad_lower
from ..core.errors import InputError
from ..core.journal import Journal
from ..core.runner import Runner, gather
from ..core.runtime import progress_bar
from ..core.property import linf_ball, robustness_property
from .norms import check_norm, domain_arrays, norm_distance, reach

BUILTIN = ("ibp", "crown", "alpha-crown", "lipschitz", "lp", "krelu2", "krelu")
KRELU_K = {"krelu2": 2, "krelu": 3}  # the group size of each k-ReLU method


class MethodUnavailable(Exception):
    """A built-in method whose module is not there (e.g. exactverify.bounds.lipschitz): skipped, with the reason."""


# ---------------------------------------------------------------- the exact side

# ---------------------------------------------------------------- built-in methods

class _Bounds:
    """ibp / crown / alpha-crown certificates on the margins y_label - y_j."""

    def __init__(self, kind: str, domain, norm: str = "inf"):
        self.kind, self.domain, self.norm = kind, domain, norm
        self._net_of: dict = {}
        self._radius: dict = {}  # (network id, point bytes, label) -> certified radius (L1/L2)

    def _net(self, network):
        key = id(network)
        if key not in self._net_of:
            self._net_of[key] = (network, network.simplified())
        return self._net_of[key][1]

    def margin_lower(self, network, x, eps, label) -> np.ndarray:
        """Sound lower bounds on y_label - y_j over the ball, for every j != label."""
        from ..bounds.crown import crown_bounds, linear_objective_bounds
        from ..bounds.interval import affine_interval, interval_bounds
        from ..core.network import Affine
        net = self._net(network)
        x = np.asarray(x, dtype=np.float64).ravel()
        lo, hi = linf_ball(x, eps, self.domain)
        k = net.output_size
        others = [j for j in range(k) if j != label]
        c = np.zeros((len(others), k))
        c[np.arange(len(others)), label] = 1.0
        c[np.arange(len(others)), others] = -1.0
        if self.kind == "ibp":
            lb = interval_bounds(net, lo, hi)
            last = net.layers[-1]
            if isinstance(last, Affine):
                # fold the margins into the last affine map (elision): W_label - W_j
                w = last.dense_weight()
                cw, cb = c @ w, c @ last.bias
                plo, phi = lb.pre_activation(len(net.layers) - 1)
                low = affine_interval(Affine(cw, cb), plo, phi)[0]
                # c @ w rounds once per entry (a difference of two floats): pad by that, too (no products
                # summed, hence terms = 0)
                mag = (np.abs(w[label]) + np.abs(w[others])) @ np.maximum(np.abs(plo), np.abs(phi))
                mag = mag + np.abs(last.bias[label]) + np.abs(last.bias[others])
                return pad_lower(low, mag, 0)
            return affine_interval(Affine(c, np.zeros(len(others))), lb.lower[-1], lb.upper[-1])[0]
        if self.kind == "lp" or self.kind in KRELU_K:
            return self._lp_margin_lower(net, lo, hi, c)
        alpha = "optimized" if self.kind == "alpha-crown" else "adaptive"
        ball = NormBall(x, float(eps), self.norm) if self.norm != "inf" else None
        try:
            lb = crown_bounds(net, lo, hi, alpha=alpha, ball=ball)
        except NotImplementedError:
            lb = interval_bounds(net, lo, hi)
        return linear_objective_bounds(net, lb, c, 0.0, alpha=alpha)[0]

    def _lp_margin_lower(self, net, lo, hi, c) -> np.ndarray:
        """lp: the LP relaxation with alpha-CROWN's intermediate bounds (a triangle per unstable ReLU);
        krelu: the same LP with the k-ReLU facets of every ReLU layer. Never below alpha-CROWN's bound
        (which the LP dominates in exact arithmetic)."""
        from ..bounds.crown import crown_bounds, linear_objective_bounds
        from ..bounds.krelu import network_cuts
        from ..search.tightening import lp_lower_bounds
        lb = crown_bounds(net, lo, hi, alpha="optimized")
        out = linear_objective_bounds(net, lb, c, 0.0, alpha="optimized")[0]
        open_rows = np.flatnonzero(out <= 0)  # the margins alpha-CROWN proves need no LP
        if len(open_rows):
            cuts = network_cuts(net, lb, KRELU_K[self.kind]) if self.kind in KRELU_K else ()
            # the first margin the LP cannot prove positive decides "not certified": the rest keep alpha-CROWN's
            out[open_rows] = np.maximum(out[open_rows], lp_lower_bounds(net, lb, c[open_rows], cuts, stop_at=0.0))
        return out

    def __call__(self, network, x, eps, label):
        certified = bool(np.all(self.margin_lower(network, x, eps, label) > 0.0))
        if self.norm == "inf" or self.kind in ("ibp", "lp", *KRELU_K):
            return certified
        return {"certified": certified, "radius": self.radius(network, x, label)}

    def radius(self, network, x, label, iters: int = 20) -> float:
        """The largest L1/L2 radius (bisection, to 2^-iters of the domain's reach) at which the method certifies."""
        key = (id(network), np.asarray(x, dtype=np.float64).tobytes(), int(label))
        if key not in self._radius:
            from .radius_milp import largest_certified
            x = np.asarray(x, dtype=np.float64).ravel()
            # (validate asks L1/L2 questions only within a finite domain, so the reach is finite)
            self._radius[key] = largest_certified(
                lambda r: bool(np.all(self.margin_lower(network, x, r, label) > 0.0)),
                reach(x, *domain_arrays(self.domain, len(x)), self.norm), math.inf, iters=iters)
        return self._radius[key]


class _Lipschitz:
    """exactverify.bounds.lipschitz's one-pass certificate (margins against eps * K, rigorously padded), and
    the radius min_j margin_j / K[label, j] it implies, for the radius comparison."""

    def __init__(self, norm: str):
        from ..bounds import lipschitz
        self.mod = lipschitz
        self.norm = norm
        self._K: dict = {}

    def _k(self, network):
        key = id(network)
        if key not in self._K:
            self._K[key] = (network, np.asarray(self.mod.margin_lipschitz(network, self.norm), dtype=np.float64))
        return self._K[key][1]

    def radius(self, network, x, label) -> float:
        """min_j (y_label - y_j) / K[label, j] at x, in float64 (shrunk by a relative 1e-9): for the
        radius comparison; the certificate itself is lipschitz_certificate's."""
        K = self._k(network)
        y = network.forward(np.asarray(x, dtype=np.float64).ravel())
        best = math.inf
        for j in range(len(y)):
            if j == label:
                continue
            lj = float(K) if K.ndim == 0 else float(K[label, j]) if K.ndim == 2 else float(K[j])
            m = y[label] - y[j]
            if m <= 0:
                return 0.0
            best = min(best, m / lj if lj > 0 else math.inf)
        return best * (1.0 - 1e-9)

    def __call__(self, network, x, eps, label) -> dict:
        r = self.radius(network, x, label)
        cert_fn = getattr(self.mod, "lipschitz_certificate", None)
        if cert_fn is None:
            return {"certified": r > eps, "radius": r}
        cert = cert_fn(network, x, eps, norm=self.norm, K=self._k(network))
        # the certificate speaks about the predicted class: it certifies the label only when they agree
        ok = bool(getattr(cert, "certified", False)) and int(getattr(cert, "predicted", label)) == label
        return {"certified": ok, "radius": r}


def _radius_of(r) -> float:
    """A certified or exact radius from whatever a function returned: a number, a dict, an object."""
    if isinstance(r, (int, float, np.floating, np.integer)):
        return float(r)
    if isinstance(r, dict):
        for k in ("radius", "certified_radius", "lower", "value"):
            if k in r:
                return float(r[k])
    for k in ("radius", "certified_radius", "lower", "value"):
        if hasattr(r, k):
            return float(getattr(r, k))
    if isinstance(r, (tuple, list)) and r:
        return float(r[0])
    raise TypeError(f"cannot read a radius from {type(r).__name__}")


def builtin_method(name: str, norm: str = "inf", domain=None):
    """The function of a built-in method; raises MethodUnavailable when its module is absent."""
    if name in ("ibp", "crown", "alpha-crown", "lp", *KRELU_K):
        return _Bounds(name, domain, norm)
    if name == "lipschitz":
        return _Lipschitz(norm)
    raise ValueError(f"unknown method {name!r} (built-in: {', '.join(BUILTIN)})")


def _takes_label(fn) -> bool:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return False
    params = list(sig.parameters.values())
    if any(p.kind == p.VAR_POSITIONAL for p in params) or "label" in sig.parameters:
        return True
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) >= 4


# ---------------------------------------------------------------- the report

@dataclass
class PointResult:
    """One point at one radius: the exact verdict, its counterexample if any, and every method's answer."""

    index: int  # row of X
    label: int
    predicted: int  # the network's argmax at the point
    eps: float
    exact: str = ""  # sat / unsat / timeout / unknown
    exact_reason: str = ""
    exact_seconds: float = 0.0
    counterexample: dict | None = None  # exact == sat: x, y, y_float32 (re-checked)
    ce_distance: float | None = None  # distance of the counterexample from the point, in the report's norm
    answers: dict = field(default_factory=dict)  # method -> {"certified", "radius", "seconds", "note"}


@dataclass
class ValidationReport:
    """Every method's answers next to the exact ones, per point and radius, with the settings used."""

    network: str  # the network's source, or "network"
    n_points: int
    eps: list  # the radii, ascending
    norm: str  # "inf", "1" or "2": the norm of every ball
    domain: list | None  # [lo, hi] every ball is clipped to, or None
    methods: list  # names of the methods that ran (unavailable ones left out)
    unavailable: dict = field(default_factory=dict)  # method -> why it was skipped
    rows: list = field(default_factory=list)  # PointResult, one per (point, eps)
    exact_radius: dict = field(default_factory=dict)  # point index -> exact pointwise robustness
    timeout: float = 60.0  # seconds per exact verify call
    seconds: float = 0.0  # wall time of the whole validation

    # ------------------------------------------------------------ figures

    def stats(self, method: str, eps: float) -> dict:
        """One method's figures at one eps: points certified and truly robust, completeness, violations, mean time."""
        rows = [r for r in self.rows if r.eps == eps and method in r.answers]
        asked = [r for r in rows if r.answers[method]["certified"] is not None]
        cert = [r for r in asked if r.answers[method]["certified"]]
        robust = [r for r in rows if r.exact == "unsat"]
        viol = [r for r in cert if r.exact == "sat"]
        cert_robust = [r for r in cert if r.exact == "unsat"]
        times = [r.answers[method]["seconds"] for r in asked]
        return {
            "points": len(rows), "asked": len(asked), "certified": len(cert),
            "truly_robust": len(robust), "not_robust": sum(r.exact == "sat" for r in rows),
            "exact_undecided": sum(r.exact not in ("sat", "unsat") for r in rows),
            "certified_and_robust": len(cert_robust),
            "completeness": (len(cert_robust) / len(robust)) if robust else None,
            "violations": len(viol),
            "certified_unchecked": sum(r.exact not in ("sat", "unsat") for r in cert),
            "violation_points": [r.index for r in viol],
            "mean_seconds": float(np.mean(times)) if times else 0.0,
        }

    def violations(self) -> list:
        """(method, PointResult) for every certificate that a counterexample refutes."""
        out = []
        for m in self.methods:
            for r in self.rows:
                a = r.answers.get(m)
                if a and a["certified"] and r.exact == "sat":
                    out.append((m, r))
        return out

    def radius_stats(self, method: str) -> dict | None:
        """Certified radius against the exact pointwise robustness, for a radius-producing method."""
        pairs = []
        for idx, exact in self.exact_radius.items():
            radii = [r.answers[method]["radius"] for r in self.rows
                     if r.index == idx and method in r.answers and r.answers[method].get("radius") is not None]
            if radii and exact is not None:
                pairs.append((idx, float(radii[0]), exact))
        if not pairs:
            return None
        exact = [(i, c, e) for i, c, e in pairs if e.get("status", "exact") == "exact"]
        ratios = [c / e["radius"] for _, c, e in exact if e["radius"] > 0]
        over = [(i, c, e) for i, c, e in pairs if e.get("upper") is not None and c > e["upper"]]
        return {"points": len(pairs), "exact_points": len(exact),
                "median_ratio": float(np.median(ratios)) if ratios else None,
                "min_ratio": float(np.min(ratios)) if ratios else None,
                "max_ratio": float(np.max(ratios)) if ratios else None,
                "radius_violations": [{"index": i, "certified": c, "exact_upper": e["upper"]} for i, c, e in over],
                "pairs": [{"index": i, "certified": c, "exact": e["radius"], "status": e.get("status", "")}
                          for i, c, e in pairs]}

    def radius_methods(self) -> list:
        """The methods that returned a certified radius on some row."""
        return [m for m in self.methods
                if any(r.answers.get(m, {}).get("radius") is not None for r in self.rows)]

    def summary(self) -> dict:
        """`stats` for every method and eps, keyed by method, then by eps written with %g."""
        return {m: {f"{e:g}": self.stats(m, e) for e in self.eps} for m in self.methods}

    def as_dict(self) -> dict:
        """The report as JSON-ready data: the settings, summary, radius comparison, exact radii and every row."""
        return {"network": self.network, "points": self.n_points, "eps": self.eps, "norm": self.norm,
                "domain": self.domain, "methods": self.methods, "unavailable": self.unavailable,
                "timeout_s": self.timeout, "seconds": round(self.seconds, 3), "summary": self.summary(),
                "radius": {m: self.radius_stats(m) for m in self.radius_methods()},
                "exact_radius": {str(k): v for k, v in self.exact_radius.items()},
                "rows": [asdict(r) for r in self.rows]}

    # ------------------------------------------------------------ text

    def _exact_line(self, eps) -> str:
        rows = [r for r in self.rows if r.eps == eps]
        c = {s: sum(r.exact == s for r in rows) for s in ("unsat", "sat", "timeout", "unknown")}
        return f"eps {eps:g}: exact robust {c['unsat']}, not robust {c['sat']}" + \
               (f", undecided {c['timeout'] + c['unknown']}" if c["timeout"] + c["unknown"] else "")

    def format_table(self) -> str:
        """The terminal report: exact counts per eps, a line per method and eps, radius ratios, violations."""
        mis = len({r.index for r in self.rows if r.label != r.predicted})
        lines = [f"validate {self.network}: {self.n_points} points ({mis} misclassified), L-{self.norm} balls"
                 + (f" clipped to [{self.domain[0]:g}, {self.domain[1]:g}]" if self.domain else "")
                 + f", exact answers by {'verify' if self.norm == 'inf' else 'ball checks'} (timeout {self.timeout:g} s)"]
        for e in self.eps:
            lines.append("  " + self._exact_line(e))
        for m, why in self.unavailable.items():
            lines.append(f"  method {m} skipped: {why}")
        lines.append("")
        head = f"{'method':<14} {'eps':>8} {'certified':>9} {'robust':>7} {'complete':>9} {'VIOLATIONS':>10} " \
               f"{'unchecked':>9} {'time/pt':>9}"
        lines.append(head)
        lines.append("-" * len(head))
        for m in self.methods:
            for e in self.eps:
                s = self.stats(m, e)
                comp = "-" if s["completeness"] is None else f"{100 * s['completeness']:.0f}%"
                lines.append(f"{m:<14} {e:>8g} {s['certified']:>9} {s['truly_robust']:>7} {comp:>9} "
                             f"{s['violations']:>10} {s['certified_unchecked']:>9} {_fmt_s(s['mean_seconds']):>9}")
        lines.append("")
        lines.append("certified: points the method certified; robust: points exact verification proves robust; "
                     "complete: certified and robust / robust; VIOLATIONS: certified but a re-checked "
                     "counterexample exists; unchecked: certified where the exact answer timed out")
        for m in self.radius_methods():
            rs = self.radius_stats(m)
            if rs:
                lines.append(f"radius {m}: certified / exact radius over {rs['exact_points']} points with an exact radius "
                             f"(of {rs['points']}): median "
                             f"{_fmt_ratio(rs['median_ratio'])}, min {_fmt_ratio(rs['min_ratio'])}, max "
                             f"{_fmt_ratio(rs['max_ratio'])}; certified radius above the exact one: "
                             f"{len(rs['radius_violations'])}")
        viol = self.violations()
        if viol:
            lines.append("")
            lines.append(f"SOUNDNESS VIOLATIONS: {len(viol)}")
            for m, r in viol:
                lines.append("  " + _violation_text(m, r))
        return "\n".join(lines)

    def format_markdown(self) -> str:
        """The report as Markdown for a paper or a README: the same tables, notes and soundness violations."""
        mis = len({r.index for r in self.rows if r.label != r.predicted})
        out = [f"## Incomplete verifiers against exact answers: `{self.network}`", ""]
        out.append(f"{self.n_points} points ({mis} misclassified), L-{self.norm} balls"
                   + (f" clipped to [{self.domain[0]:g}, {self.domain[1]:g}]" if self.domain else "")
                   + f". Exact answers from exactverify ({'verify' if self.norm == 'inf' else 'ball checks'}, "
                     f"{self.timeout:g} s per point and radius): "
                   + "; ".join(self._exact_line(e) for e in self.eps) + ".")
        out.append("")
        out.append("| method | eps | certified | truly robust | completeness | soundness violations | time / point |")
        out.append("|---|---:|---:|---:|---:|---:|---:|")
        for m in self.methods:
            for e in self.eps:
                s = self.stats(m, e)
                comp = "–" if s["completeness"] is None else f"{100 * s['completeness']:.0f}%"
                v = f"**{s['violations']}**" if s["violations"] else "0"
                out.append(f"| {m} | {e:g} | {s['certified']} | {s['truly_robust']} | {comp} | {v} | "
                           f"{_fmt_s(s['mean_seconds'])} |")
        out.append("")
        out.append("*Completeness* is certified-and-robust over truly robust; a *soundness violation* is a point "
                   "the method certified where exact verification found a counterexample that re-checks on the "
                   "network in float64 and float32.")
        if self.unavailable:
            out.append("")
            out.append("Skipped: " + "; ".join(f"{m} ({why})" for m, why in self.unavailable.items()) + ".")
        rms = [(m, self.radius_stats(m)) for m in self.radius_methods()]
        rms = [(m, rs) for m, rs in rms if rs]
        if rms:
            out.append("")
            out.append("| method | points with exact radius | certified / exact radius: median | min | max | radius above exact |")
            out.append("|---|---:|---:|---:|---:|---:|")
            for m, rs in rms:
                out.append(f"| {m} | {rs['exact_points']} of {rs['points']} | {_fmt_ratio(rs['median_ratio'])} | "
                           f"{_fmt_ratio(rs['min_ratio'])} | {_fmt_ratio(rs['max_ratio'])} | "
                           f"{len(rs['radius_violations'])} |")
        viol = self.violations()
        if viol:
            out.append("")
            out.append("### Soundness violations")
            out.append("")
            for m, r in viol:
                out.append("- " + _violation_text(m, r))
        out.append("")
        return "\n".join(out)

    def plot(self, path) -> None:
        """Certified radius against exact radius (when known), else per-method certified counts per eps."""
        try:
            import matplotlib
            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError as e:
            raise InputError(path, f"--plot needs matplotlib ({e}); pip install matplotlib")
        rms = [(m, self.radius_stats(m)) for m in self.radius_methods()]
        rms = [(m, rs) for m, rs in rms if rs]
        if rms:
            fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
            ax = axes[0]
            top = 0.0
            for m, rs in rms:
                ex = [p["exact"] for p in rs["pairs"]]
                ce = [p["certified"] for p in rs["pairs"]]
                ax.scatter(ex, ce, s=14, label=m)
                top = max(top, max(ex + ce))
            ax.plot([0, top], [0, top], "k--", lw=1, label="certified = exact")
            ax.set_xlabel(f"exact pointwise robustness (L-{self.norm} radius)")
            ax.set_ylabel("certified radius")
            ax.set_title("certified vs exact radius, one point per input")
            ax.legend(fontsize=8)
            ax = axes[1]
        else:
            fig, ax = plt.subplots(figsize=(7, 4.5))
        width = 0.8 / max(1, len(self.methods))
        xs = np.arange(len(self.eps))
        for k, m in enumerate(self.methods):
            st = [self.stats(m, e) for e in self.eps]
            ax.bar(xs + k * width, [s["certified"] for s in st], width, label=m)
            for i, s in enumerate(st):
                if s["violations"]:
                    ax.text(xs[i] + k * width, s["certified"], f"{s['violations']} unsound", color="red",
                            ha="center", va="bottom", fontsize=7, rotation=90)
        robust = [self.stats(self.methods[0], e)["truly_robust"] if self.methods else 0 for e in self.eps]
        for i, r in enumerate(robust):
            ax.hlines(r, xs[i] - width / 2, xs[i] + width * (len(self.methods) - 0.5), colors="k",
                      label="truly robust (exact)" if i == 0 else None)
        ax.set_xticks(xs + width * (len(self.methods) - 1) / 2)
        ax.set_xticklabels([f"eps {e:g}" for e in self.eps])
        ax.set_ylabel("points certified")
        ax.set_title(f"{self.n_points} points")
        ax.legend(fontsize=8, loc="best", framealpha=0.7)
        fig.tight_layout()
        fig.savefig(str(path), dpi=120)
        plt.close(fig)


def _fmt_s(s: float) -> str:
    return f"{1000 * s:.1f} ms" if s < 1 else f"{s:.2f} s"


def _fmt_ratio(r) -> str:
    return "-" if r is None else f"{r:.3f}"


def _violation_text(method: str, r: PointResult) -> str:
    ce = r.counterexample or {}
    y = np.asarray(ce.get("y", []))
    x = np.asarray(ce.get("x", []))
    j = ""
    if len(y):
        others = [k for k in range(len(y)) if k != r.label]
        jj = max(others, key=lambda k: y[k])
        j = f"; y_{jj} = {y[jj]:.6g} >= y_{r.label} = {y[r.label]:.6g}"
    cert = r.answers[method]
    how = f"certified radius {cert['radius']:.6g}" if cert.get("radius") is not None else "certified"
    shown = ", ".join(f"{v:.6g}" for v in x[:6]) + (", ..." if len(x) > 6 else "")
    return (f"{method} eps {r.eps:g} point {r.index} (label {r.label}): {how}, but x' = [{shown}] "
            f"(distance {r.ce_distance:.4g}){j}")


# ---------------------------------------------------------------- running

def validate(network, X, y, eps_list, methods=("ibp", "crown"), norm: str = "inf", domain=None,
             timeout: float = 60.0, exact_radius: bool | None = None, progress: bool = False,
             verify_options=None, workers: int = 1, scheduler: str | None = None,
             resume_path=None) -> ValidationReport:
    """Every method's answer next to the exact one, for every point of X (labels y) and every eps.

    methods: names of built-in methods (see BUILTIN), or a dict name -> function
    or built-in name (see the module docstring). A built-in method whose module
    is missing is skipped and named in `report.unavailable`. domain: (lo, hi)
    that every ball is clipped to, or None. exact_radius: compute the exact
    pointwise robustness of each point for radius-producing methods (default: when there are any).
    The points run on `workers` local processes or on the Dask cluster at `scheduler` (your own
    methods must then be module-level functions, which travel by reference); finished points are
    appended to `resume_path` (a core.journal.Journal), and those it holds are not redone.
    """
    t0 = time.perf_counter()
    try:
        norm = check_norm(norm)
    except ValueError as e:
        raise InputError(None, str(e))
    if norm != "inf" and domain is None:
        raise InputError(None, f"L{norm} balls need a bounded --domain (the ball checks bound over the domain box)")
    X = np.asarray(X, dtype=np.float64).reshape(len(X), -1)
    y = np.asarray(y).astype(int).ravel()
    if len(X) != len(y):
        raise InputError(None, f"{len(X)} points but {len(y)} labels")
    if X.shape[1] != network.input_size:
        raise InputError(network.source, f"the data has {X.shape[1]} values per point but the network takes "
                                         f"{network.input_size} inputs")
    k = network.output_size
    if len(y) and (y.min() < 0 or y.max() >= k):
        raise InputError(None, f"labels must lie in 0..{k - 1} (the network has {k} outputs)")
    eps_list = sorted({float(e) for e in eps_list})
    if not eps_list or min(eps_list) < 0:
        raise InputError(None, "give at least one eps >= 0")
    if domain is not None:
        domain = (float(domain[0]), float(domain[1]))
        if domain[0] > domain[1]:
            raise InputError(None, f"empty domain [{domain[0]:g}, {domain[1]:g}]")
    if isinstance(methods, str):
        methods = [m.strip() for m in methods.split(",") if m.strip()]
    if not isinstance(methods, dict):
        methods = {m: m for m in methods}
    fns, unavailable = _method_functions(methods, norm, domain)
    report = ValidationReport(network.source or "network", len(X), eps_list, norm,
                              list(domain) if domain else None, list(fns), unavailable, timeout=float(timeout))
    config = {"network": str(report.network), "inputs": network.input_size, "norm": norm, "domain": report.domain,
              "eps": eps_list, "methods": report.methods, "timeout": float(timeout), "exact_radius": exact_radius}
    journal = Journal(resume_path, config, key="index") if resume_path else None
    points = {i: r for i, r in (journal.finished if journal else {}).items() if i < len(X)}
    todo = [(i, X[i], int(y[i])) for i in range(len(X)) if i not in points]
    settings = {"norm": norm, "domain": domain, "eps": eps_list, "timeout": float(timeout),
                "exact_radius": exact_radius, "verify_options": verify_options or {}}
    runner = Runner(max(1, int(workers or 1)), scheduler)
    bar = progress_bar(len(X), progress, unit="pt", initial=len(points))
    gather(runner, _run_point, todo, points, len(X), "points", journal, bar, _point_init,
           (network, {n: methods[n] for n in fns}, settings))
    for i in sorted(points):
        report.rows += [PointResult(**row) for row in points[i]["rows"]]
        if points[i]["exact_radius"] is not None:
            report.exact_radius[i] = points[i]["exact_radius"]
    report.seconds = time.perf_counter() - t0
    return report


def _method_functions(methods: dict, norm: str, domain) -> tuple:
    """({name: function}, {name: why unavailable}) for the methods asked for (built-in names or functions)."""
    fns, unavailable = {}, {}
    for name, m in methods.items():
        if isinstance(m, str):
            try:
                fns[name] = builtin_method(m, norm, domain)
            except MethodUnavailable as e:
                unavailable[name] = str(e)
            except ValueError as e:
                raise InputError(None, str(e))
        elif callable(m):
            fns[name] = m
        else:
            raise InputError(None, f"method {name!r} is neither a built-in name nor a function")
    return fns, unavailable


_POINT: dict = {}  # per worker process: what every point of one validation shares


def _point_init(network, methods: dict, settings: dict) -> None:
    fns, _ = _method_functions(methods, settings["norm"], settings["domain"])
    _POINT.update(network=network, fns=fns, takes_label={name: _takes_label(fn) for name, fn in fns.items()},
                  **settings)


def _run_point(item) -> dict:
    """One point at every eps: the exact answers, every method's answers, and (for radius methods) its
    exact pointwise robustness; {"index", "rows" (PointResult dicts), "exact_radius" (or None)}."""
    from ..core.check import check_point
    from ..search.verifier import verify

    i, x, label = item
    network, norm, domain, timeout = _POINT["network"], _POINT["norm"], _POINT["domain"], _POINT["timeout"]
    predicted = int(np.argmax(network.forward(x)))
    if norm == "inf":
        exact = _exact_answers(network, x, label, _POINT["eps"], domain, timeout, _POINT["verify_options"],
                               verify, check_point)
    else:
        exact = _exact_ball_answers(network, x, label, _POINT["eps"], norm, domain, timeout)
    rows = []
    for eps in _POINT["eps"]:
        row = PointResult(i, label, predicted, eps, **exact[eps])
        if row.counterexample is not None:
            row.ce_distance = norm_distance(np.asarray(row.counterexample["x"]), x, norm)
        for name, fn in _POINT["fns"].items():
            row.answers[name] = _ask(fn, _POINT["takes_label"][name], network, x, eps, label, predicted)
        rows.append(row)
    radius = None
    if _POINT["exact_radius"] is not False and any(a.get("radius") is not None for r in rows
                                                   for a in r.answers.values()):
        from .radius import pointwise_robustness
        radius = _exact_radius_entry(pointwise_robustness(network, x, label=label, norm=norm, domain=domain,
                                                          timeout=timeout))
    return {"index": int(i), "rows": [asdict(r) for r in rows], "exact_radius": radius}


def _ask(fn, takes_label, network, x, eps, label, predicted) -> dict:
    if not takes_label and predicted != label:
        return {"certified": None, "radius": None, "seconds": 0.0, "note": "misclassified: not asked"}
    t = time.perf_counter()
    ans = fn(network, x.copy(), eps, label) if takes_label else fn(network, x.copy(), eps)
    secs = time.perf_counter() - t
    if ans is None:
        return {"certified": False, "radius": None, "seconds": secs, "note": ""}
    if isinstance(ans, (bool, np.bool_)):
        return {"certified": bool(ans), "radius": None, "seconds": secs, "note": ""}
    if isinstance(ans, dict) and "certified" in ans:
        r = ans.get("radius")
        return {"certified": bool(ans["certified"]), "radius": None if r is None else float(r), "seconds": secs,
                "note": str(ans.get("note", ""))}
    r = _radius_of(ans)
    return {"certified": bool(r >= eps), "radius": r, "seconds": secs, "note": ""}


def _exact_answers(network, x, label, eps_list, domain, timeout, options, verify, check_point) -> dict:
    """verify at every eps, largest first: robust at eps implies robust at every smaller eps, and a
    counterexample inside a smaller ball answers that ball too."""
    out = {}
    proven_at = None
    ce_x = None
    for eps in sorted(eps_list, reverse=True):
        prop = robustness_property(x, eps, label, network.output_size, domain)
        if proven_at is not None:
            out[eps] = {"exact": "unsat", "exact_reason": f"implied: robust at eps {proven_at:g}",
                        "exact_seconds": 0.0, "counterexample": None}
            continue
        if ce_x is not None:
            ce = check_point(network, prop, ce_x)
            if ce is not None:
                out[eps] = {"exact": "sat", "exact_reason": "counterexample of a larger eps lies in this ball",
                            "exact_seconds": 0.0, "counterexample": ce.as_dict()}
                continue
        t = time.perf_counter()
        res = verify(network, prop, timeout=timeout, **options)
        entry = {"exact": res.status, "exact_reason": res.reason, "exact_seconds": time.perf_counter() - t,
                 "counterexample": None}
        if res.counterexample is not None:
            entry["counterexample"] = res.counterexample.as_dict()
            ce_x = np.asarray(res.counterexample.x)
        if res.status == "unsat":
            proven_at = eps
        out[eps] = entry
    return out


def _exact_ball_answers(network, x, label, eps_list, norm, domain, timeout) -> dict:
    """`_exact_answers` for L1/L2 balls: a ball check (metrics/radius_ball.py) at every eps, largest
    first, with the same implications; one checker, so a counterexample found at one eps (the nearest
    re-checked one so far) answers every eps it lies within."""
    from ..search.verifier import bounded_form
    from .radius_attack import Best, as_counterexample
    from .radius_ball import BallChecker
    x = np.asarray(x, dtype=np.float64).ravel()
    dlo, dhi = domain_arrays(domain, len(x))
    best = Best()
    checker = BallChecker(network, bounded_form(network), x, label, norm, dlo, dhi, best)
    out, proven_at = {}, None
    for eps in sorted(eps_list, reverse=True):
        if proven_at is not None:
            out[eps] = {"exact": "unsat", "exact_reason": f"implied: robust at eps {proven_at:g}",
                        "exact_seconds": 0.0, "counterexample": None}
            continue
        t = time.perf_counter()
        status = "sat" if best.upper <= eps else checker.check(eps, time.perf_counter() + timeout)[0]
        reason = {"sat": "a re-checked counterexample within the ball", "unsat": "ball check: no flip in the ball",
                  "timeout": "time limit", "unknown": "ball check left domains open"}[status]
        out[eps] = {"exact": status, "exact_reason": reason, "exact_seconds": time.perf_counter() - t,
                    "counterexample": as_counterexample(best.point) if status == "sat" else None}
        if status == "unsat":
            proven_at = eps
    return out


def _exact_radius_entry(res) -> dict:
    """{"radius", "lower", "upper", "status"} from pointwise_robustness's answer (a RadiusResult, a dict or
    a number). radius is rho where it is exact, else the proven lower bound."""
    def get(name):
        if isinstance(res, dict):
            return res.get(name)
        return getattr(res, name, None)
    if isinstance(res, (int, float, np.floating)):
        return {"radius": float(res), "lower": float(res), "upper": float(res), "status": "exact"}
    lower, upper, status = get("lower"), get("upper"), get("status") or ""
    if lower is None:
        r = _radius_of(res)
        return {"radius": r, "lower": r, "upper": r, "status": status or "exact"}
    upper = None if upper is None or not math.isfinite(float(upper)) else float(upper)
    radius = upper if status == "exact" and upper is not None else float(lower)
    return {"radius": radius, "lower": float(lower), "upper": upper, "status": status}


# ---------------------------------------------------------------- data

def load_data(path, scale: float = 1.0, limit: int | None = None):
    """(X, y) from a .npz (arrays x and y) or a csv of rows label,p0,p1,... (see exactverify.loaders.datasets)."""
    from ..loaders.datasets import load_dataset
    return load_dataset(path, scale=scale, limit=limit)
