"""`exactverify robustness NETWORK DATA`: Bastani et al.'s robustness metrics, exactly.

For every point of DATA (a `.npz` with arrays x, y, or a csv `label,p0,p1,...`), the pointwise
robustness rho (a proven bracket [lower, upper], equal when exact) in the chosen norm; then, per
--eps, the adversarial frequency (the fraction of correctly classified points with rho <= eps)
and severity (the mean rho over those). Misclassified points are listed separately. With
--baseline, Bastani's own estimate (the LP in the linear region of each point) is reported next to
it. See exactverify/metrics/radius.py for the method and its guarantees.

The points run on --workers local processes or on a Dask cluster (--scheduler). Finished points
are appended to a progress file (--resume; by default OUT.progress.jsonl when --json OUT is
given) as they come in, so an interrupted run picks up where it stopped; the default file is
removed once the JSON report is written.
"""

from __future__ import annotations

import argparse

from . import options


def register(sub) -> None:
    """Add the `robustness` command to the subparsers `sub`."""
    p = sub.add_parser(
        "robustness", help="exact pointwise robustness and adversarial frequency/severity over a dataset",
        description="Exact pointwise robustness rho (Bastani et al. 2016) of every point of DATA: the distance "
                    "from the point to the nearest input that some other class scores at least as high as the "
                    "label. Reports a proven bracket [lower, upper] per point (exact when they agree to "
                    "1e-6 max(1, rho)), a counterexample at the upper bound that re-checks in float64 and float32, and "
                    "per --eps the adversarial frequency and severity over the correctly classified points.")
    options.add_network(p)
    options.add_data(p)
    options.add_norm(p, choices=("inf", "1", "2"), default="inf")
    options.add_domain(p)
    options.add_eps(p, several=True, required=False)
    options.add_timeout(p, per="point")
    options.add_workers(p, over="the points", default=1)
    options.add_scheduler(p, over="the points")
    options.add_limit(p)
    options.add_scale(p, default=None)  # None, not 1: "forgot --scale?" is only suggested when it was not given
    options.add_json(p)
    options.add_plot(p, what="the number of points with rho <= eps against eps")
    p.add_argument("--baseline", action="store_true",
                   help="also compute Bastani et al.'s estimate (LP in the linear region of each point)")
    options.add_resume(p, unit="points")
    p.add_argument("--disjunction", choices=["per_class", "binary"], default="per_class",
                   help=argparse.SUPPRESS)  # the MILP formulation of the label change (for measurements)
    options.add_progress(p, default=True)
    p.set_defaults(run=run)


def run(args) -> int:
    """Bracket rho for every point, print the report, write --json and --plot."""
    from ..core.errors import InputError
    from ..loaders import load_network
    from ..loaders.datasets import load_dataset
    from ..metrics.dataset import dataset_robustness, plot_metrics

    net = load_network(args.network)
    X, y = load_dataset(args.data, scale=args.scale, n_inputs=net.input_size, n_outputs=net.output_size)
    if args.limit is not None:
        X, y = X[:args.limit], y[:args.limit]
    domain = None
    if args.domain is not None:
        lo, hi = args.domain
        if not lo <= hi:
            raise InputError(None, f"--domain {lo:g} {hi:g} is empty")
        outside = (X < lo) | (X > hi)
        if outside.any():
            i = int(outside.any(axis=1).argmax())
            raise InputError(args.data, f"point {i} lies outside --domain {lo:g} {hi:g}"
                                        f"{' (forgot --scale?)' if args.scale is None else ''}")
        domain = (lo, hi)
    runner = options.runner(args)
    resume = options.progress_file(args, args.json)
    report = dataset_robustness(net, X, y, norm=args.norm, domain=domain, eps_list=args.eps, timeout=args.timeout,
                                workers=runner.workers, scheduler=runner.scheduler, resume_path=resume,
                                progress=args.progress, baseline=args.baseline, disjunction=args.disjunction)
    report["config"]["network"] = str(args.network)
    report["config"]["data"] = str(args.data)
    report["config"]["scale"] = args.scale
    print(format_report(report))
    if args.json:
        options.write_json(args.json, report, indent=1)
        options.drop_progress_file(args, resume)
    if args.plot:
        plot_metrics(report, args.plot)
    return 0


def format_report(report: dict) -> str:
    """The lines printed at the end of a run: counts, rho's status, and per eps the metrics."""
    s = report["summary"]
    norm = report["config"]["norm"]
    lines = [f"points: {s['points']}  correctly classified: {s['correct']}  "
             f"misclassified: {len(s['misclassified'])}"
             + (f" (indices {', '.join(map(str, s['misclassified'][:20]))}{' ...' if len(s['misclassified']) > 20 else ''})"
                if s["misclassified"] else ""),
             f"rho (L{norm}): exact {s['exact']}, bounded {s['bounded']}, timeout {s['timeout']}; "
             f"median {s['median_seconds']:.2f} s per point" if s["median_seconds"] is not None else "no points"]
    if len(report["points"]) <= _LIST_POINTS:
        lines += [_point_line(p) for p in report["points"]]
    if s.get("bastani_ratio"):
        r = s["bastani_ratio"]
        lines.append(f"Bastani estimate / exact rho: median {r['median']:.3f}, min {r['min']:.3f}, max {r['max']:.3f} "
                     f"({r['n']} points; {s['bastani_found']} of {s['correct']} have an estimate)")
    for m in report["metrics"]:
        freq = m["adversarial_frequency"]
        sev = m["adversarial_severity"]
        fb = m["adversarial_frequency_bounds"]
        ftxt = f"{freq:.3f}" if freq is not None else (f"in [{fb[0]:.3f}, {fb[1]:.3f}]" if fb[0] is not None else "-")
        stxt = f"{sev:.5f}" if sev is not None else "-"
        extra = ""
        if "bastani_frequency" in m:
            extra = f"  (Bastani estimate: frequency {m['bastani_frequency']:.3f})"
        undecided = f", {m['undecided']} undecided" if m["undecided"] else ""
        lines.append(f"eps {m['eps']:g}: adversarial frequency {ftxt} ({m['count']}/{m['points']}{undecided}), "
                     f"severity {stxt}{extra}")
    return "\n".join(lines)



_LIST_POINTS = 20  # runs of at most this many points list every point's rho


def _point_line(p: dict) -> str:
    """One point's rho: its value when exact, else its proven bracket."""
    head = f"  point {p['index']} (label {p['label']})"
    if p["status"] == "misclassified":
        return f"{head}: misclassified (predicted {p['predicted']})"
    lo, up = p["radius"]["lower"], p["radius"]["upper"]
    fmt = lambda v: "inf" if v is None else f"{v:.7g}"  # noqa: E731
    what = f"rho = {fmt(up)}" if p["status"] == "exact" else f"rho in [{fmt(lo)}, {fmt(up)}]"
    return f"{head}: {what} ({p['status']}, {p['seconds']:.2f} s)"
