"""Bastani et al.'s metrics over a data set: rho for every point, adversarial frequency phi(eps) and
severity mu(eps), a summary and the paper's figure.

`dataset_robustness` runs points on worker processes, appends each finished point to a jsonl
file (resume), and summarises phi and mu per eps over the correctly classified points (the
denominator; misclassified points are reported separately, as the paper does).
"""

from __future__ import annotations

import math
import time

import numpy as np

from ..core.journal import Journal
from ..core.network import Network
from ..core.runner import Runner, gather
from ..core.runtime import progress_bar
from .bastani import bastani_estimate
from .norms import check_norm
from .radius import closed, pointwise_robustness
from .radius_attack import flip_margin

_WORKER: dict = {}


def _worker_init(network, options):
    _WORKER["network"] = network
    _WORKER["options"] = options


def _point_record(network, index: int, x, label: int, options: dict) -> dict:
    """One dataset point: rho (for a correctly classified point) and Bastani's estimate."""
    t0 = time.perf_counter()
    y0 = network.forward(x)
    predicted = int(np.argmax(y0))
    correct = predicted == int(label) and flip_margin(y0, int(label))[0] < 0
    rec = {"index": int(index), "label": int(label), "predicted": predicted}
    est, hints = None, []
    if options.get("baseline") and correct:
        try:
            est, pt = bastani_estimate(network, x, int(label), options["norm"], options["domain"], return_point=True)
            if pt is not None:
                hints.append(pt)
        except Exception:
            est = None
    t_est = time.perf_counter() - t0
    if correct:
        r = pointwise_robustness(network, x, label, norm=options["norm"], domain=options["domain"],
                                 timeout=options["timeout"], disjunction=options.get("disjunction", "per_class"),
                                 hints=hints, bastani=False if options.get("baseline") else None)
        d = r.as_dict()
        keep = ("milps", "nodes", "unstable", "crown_lower", "attack_upper", "upper_source", "l2_cuts",
                "classes_open", "classes_skipped", "robust_on_domain", "checks", "check_log", "check_seconds",
                "region_lps")
        stats = {k: v for k, v in r.stats.items() if k in keep}
        if stats.get("attack_upper") is not None and not math.isfinite(stats["attack_upper"]):
            stats["attack_upper"] = None
        rec.update(radius={"lower": d["lower"], "upper": d["upper"]}, status=r.status,
                   counterexample=r.counterexample, seconds=r.seconds, stats=stats)
    else:
        # rho = 0: x itself is misclassified (reported separately, not counted in the metrics)
        rec.update(radius={"lower": 0.0, "upper": 0.0}, status="misclassified", counterexample=None,
                   seconds=time.perf_counter() - t0, stats={})
    rec["bastani_estimate"] = est
    rec["bastani_seconds"] = t_est if options.get("baseline") else None
    return rec


def _run_point(item):
    index, x, label = item
    return _point_record(_WORKER["network"], index, x, label, _WORKER["options"])


def _config(network: Network, norm, domain, timeout, n_points) -> dict:
    return {"network": str(network.source) if network.source else None, "inputs": network.input_size,
            "norm": norm, "domain": None if domain is None else [float(domain[0]), float(domain[1])],
            "timeout": float(timeout), "points": int(n_points)}


def dataset_robustness(network: Network, X, y, norm: str = "inf", domain=None, eps_list=(), timeout: float = 60.0,
                       workers: int = 1, resume_path=None, progress: bool = True, baseline: bool = False,
                       disjunction: str = "per_class", scheduler: str | None = None) -> dict:
    """rho for every point of (X, y) and Bastani's phi and mu per eps; see the module docstring.

    The points run on `workers` local processes, or on the Dask cluster at `scheduler`
    (core/runner.py). Finished points are appended to `resume_path` (a core.journal.Journal) as
    they come in; points already in that file are not recomputed. Returns a dict with `points` (sorted by index), `metrics` (one entry
    per eps) and `summary`. On Ctrl-C (or SIGTERM under the command line) the workers are stopped
    and `Interrupted` is raised; the finished points are in `resume_path`.
    """
    norm = check_norm(norm)
    X = np.asarray(X, dtype=np.float64).reshape(len(X), -1)
    y = np.asarray(y, dtype=np.int64).ravel()
    config = _config(network, norm, domain, timeout, len(X))
    journal = Journal(resume_path, config, key="index", match=("inputs", "norm", "domain")) if resume_path else None
    records = {i: r for i, r in (journal.finished if journal else {}).items() if i < len(X)}
    options = {"norm": norm, "domain": None if domain is None else (float(domain[0]), float(domain[1])),
               "timeout": float(timeout), "baseline": bool(baseline), "disjunction": disjunction}
    todo = [(i, X[i], int(y[i])) for i in range(len(X)) if i not in records]
    runner = Runner(max(1, int(workers or 1)), scheduler)
    bar = progress_bar(len(X), progress, unit="pt", initial=len(records))
    gather(runner, _run_point, todo, records, len(X), "points", journal, bar, _worker_init, (network, options),
           note=lambda done: f"exact {sum(r['status'] == 'exact' for r in done.values())}")
    points = [records[i] for i in sorted(records)]
    return {"config": config, "points": points, "metrics": dataset_metrics(points, eps_list),
            "summary": summarise(points)}


def dataset_metrics(points: list, eps_list) -> list:
    """phi(eps) and mu(eps) over the correctly classified points.

    adversarial_frequency = #{rho <= eps} / #correct; adversarial_severity = mean rho over those.
    A bound of None in a record is infinite (upper None: no counterexample found; lower None: no
    point of the domain is misclassified). Where a point's bracket [lower, upper] straddles eps, phi is only known within
    `adversarial_frequency_bounds` and both values are None; mu uses each counted point's upper
    bound (its rho when exact) and `adversarial_severity_bounds` its lower and upper bounds.
    `bastani_frequency` counts the points whose Bastani estimate is <= eps (the estimate is >= rho,
    so this never exceeds the true frequency).
    """
    correct = [p for p in points if p.get("status") != "misclassified"]
    n = len(correct)
    out = []
    for eps in eps_list:
        eps = float(eps)
        up = [p["radius"]["upper"] for p in correct]
        lo = [p["radius"]["lower"] if p["radius"]["lower"] is not None else math.inf for p in correct]
        sure = [k for k in range(n) if up[k] is not None and up[k] <= eps]
        maybe = [k for k in range(n) if lo[k] <= eps and not (up[k] is not None and up[k] <= eps)]
        entry = {"eps": eps, "points": n, "count": len(sure), "undecided": len(maybe),
                 "adversarial_frequency": (len(sure) / n if n else None) if not maybe else None,
                 "adversarial_frequency_bounds": [len(sure) / n if n else None,
                                                  (len(sure) + len(maybe)) / n if n else None],
                 "adversarial_severity": (float(np.mean([up[k] for k in sure])) if sure else None)
                 if not maybe else None,
                 "adversarial_severity_bounds": [float(np.mean([lo[k] for k in sure])) if sure else None,
                                                 float(np.mean([up[k] for k in sure])) if sure else None]}
        est = [p.get("bastani_estimate") for p in correct]
        if any(e is not None for e in est):
            hits = [e for e in est if e is not None and e <= eps]
            entry["bastani_frequency"] = len(hits) / n if n else None
            entry["bastani_severity"] = float(np.mean(hits)) if hits else None
        out.append(entry)
    return out


def summarise(points: list) -> dict:
    """Counts by status, solve times and the Bastani/exact ratio over a run's point records."""
    correct = [p for p in points if p.get("status") != "misclassified"]
    secs = [p["seconds"] for p in correct]
    ratios = [p["bastani_estimate"] / p["radius"]["upper"] for p in correct
              if p.get("status") == "exact" and p.get("bastani_estimate") is not None and p["radius"]["upper"]]
    return {"points": len(points), "correct": len(correct),
            "misclassified": [p["index"] for p in points if p.get("status") == "misclassified"],
            "exact": sum(1 for p in correct if p["status"] == "exact"),
            "bounded": sum(1 for p in correct if p["status"] == "bounded"),
            "timeout": sum(1 for p in correct if p["status"] == "timeout"),
            "median_seconds": float(np.median(secs)) if secs else None,
            "total_seconds": float(np.sum([p["seconds"] for p in points])) if points else 0.0,
            "bastani_found": sum(1 for p in correct if p.get("bastani_estimate") is not None),
            "bastani_ratio": ({"median": float(np.median(ratios)), "min": float(np.min(ratios)),
                               "max": float(np.max(ratios)), "n": len(ratios)} if ratios else None)}


def plot_metrics(report: dict, path, eps_max: float | None = None) -> None:
    """The paper's figure: the number of points with rho <= eps against eps (exact, and Bastani's estimate)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    correct = [p for p in report["points"] if p.get("status") != "misclassified"]
    up = np.array([p["radius"]["upper"] if p["radius"]["upper"] is not None else np.inf for p in correct])
    lo = np.array([p["radius"]["lower"] if p["radius"]["lower"] is not None else np.inf for p in correct])
    est = np.array([p["bastani_estimate"] if p.get("bastani_estimate") is not None else np.inf for p in correct])
    finite = np.concatenate([up[np.isfinite(up)], est[np.isfinite(est)]])
    top = eps_max or (float(np.max(finite)) * 1.05 if len(finite) else 1.0)
    grid = np.linspace(0, top, 400)
    fig, ax = plt.subplots(figsize=(6, 4))
    exact_all = all(closed(l, u) for l, u in zip(lo, up))
    ax.plot(grid, [(up <= e).sum() for e in grid], label="exact rho (exactverify)" if exact_all
            else "rho upper bound (exactverify)")
    if not exact_all:
        ax.plot(grid, [(lo <= e).sum() for e in grid], "--", label="rho lower bound (exactverify)")
    if np.isfinite(est).any():
        ax.plot(grid, [(est <= e).sum() for e in grid], ":", label="Bastani et al. estimate (linear region)")
    ax.set_xlabel(f"eps (L{report['config']['norm']})")
    ax.set_ylabel("points with rho <= eps")
    ax.set_title(f"{len(correct)} correctly classified points")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
