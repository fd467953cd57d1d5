"""`exactverify robustness NETWORK DATA`: Bastani et al.'s robustness metrics, exactly.

For every point of DATA (a `.npz` with arrays x, y, or a csv `label,p0,p1,...`), the pointwise
robustness rho (a proven bracket [lower, upper], equal when exact) in the chosen norm; then, per
--eps, the adversarial frequency (the fraction of correctly classified points with rho <= eps)
and severity (the mean rho over those). Misclassified points are listed separately. With
--baseline, Bastani's own estimate (the LP in the linear region of each point) is reported next to
it. See exactverify/robustness.py for the method and its guarantees.

Finished points are appended to a progress file (--resume; by default OUT.progress.jsonl when
--json OUT is given) as they come in, so an interrupted run picks up where it stopped; the file is
removed once the JSON report is written.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "robustness", help="exact pointwise robustness and adversarial frequency/severity over a dataset",
        description="Exact pointwise robustness rho (Bastani et al. 2016) of every point of DATA: the distance "
                    "from the point to the nearest input that some other class scores at least as high as the "
                    "label. Reports a proven bracket [lower, upper] per point (exact when they agree to "
                    "1e-6 max(1, rho)), a counterexample at the upper bound that re-checks in float64 and float32, and "
                    "per --eps the adversarial frequency and severity over the correctly classified points.")
    p.add_argument("network", help="ONNX (.onnx) or Marabou (.nnet) network")
    p.add_argument("data", help=".npz with arrays x and y, or csv rows 'label,p0,p1,...'")
    p.add_argument("--norm", choices=["inf", "1", "2"], default="inf", help="the norm of the radius (default inf)")
    p.add_argument("--domain", nargs=2, type=float, metavar=("LO", "HI"),
                   help="confine inputs to [LO, HI] (e.g. 0 1 for pixels)")
    p.add_argument("--eps", nargs="+", type=float, default=[], metavar="E",
                   help="radii at which to report adversarial frequency and severity")
    p.add_argument("--timeout", type=float, default=60.0, metavar="S", help="time limit per point (default 60)")
    p.add_argument("--workers", type=int, default=1, metavar="N", help="worker processes (default 1)")
    p.add_argument("--limit", type=int, metavar="N", help="only the first N points")
    p.add_argument("--scale", type=float, metavar="S", help="divide the inputs by S (e.g. 255 for 0..255 pixels)")
    p.add_argument("--json", metavar="OUT", help="write every point and the metrics as JSON")
    p.add_argument("--plot", metavar="PNG", help="plot the number of points with rho <= eps against eps")
    p.add_argument("--baseline", action="store_true",
                   help="also compute Bastani et al.'s estimate (LP in the linear region of each point)")
    p.add_argument("--resume", metavar="JSONL",
                   help="progress file: finished points are appended and not redone on a rerun "
                        "(default OUT.progress.jsonl with --json)")
    p.add_argument("--disjunction", choices=["per_class", "binary"], default="per_class",
                   help=argparse.SUPPRESS)  # the MILP formulation of the label change (for measurements)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(run=run_robustness)


def run_robustness(args) -> int:
    from ..loaders import load_network
    from ..core.files import json_default, write_atomic
    from ..core.errors import InputError
    from ..loaders.datasets import load_dataset
    from ..metrics.dataset import dataset_robustness, plot_metrics

    net = load_network(args.network)
    X, y = load_dataset(args.data, scale=args.scale, n_inputs=net.input_size, n_outputs=net.output_size)
    if args.limit is not None:
        if args.limit < 1:
            raise InputError(None, f"--limit must be at least 1, not {args.limit}")
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
    if args.timeout <= 0:
        raise InputError(None, f"--timeout must be positive, not {args.timeout:g}")
    for eps in args.eps:
        if not (eps >= 0 and math.isfinite(eps)):
            raise InputError(None, f"--eps values must be nonnegative, not {eps:g}")
    for out in (args.json, args.plot):
        if out and not Path(out).parent.exists():
            raise InputError(out, f"output directory {Path(out).parent} does not exist")
    resume = args.resume or (f"{args.json}.progress.jsonl" if args.json else None)

    report = dataset_robustness(net, X, y, norm=args.norm, domain=domain, eps_list=args.eps, timeout=args.timeout,
                                workers=args.workers, resume_path=resume, progress=not args.no_progress,
                                baseline=args.baseline, disjunction=args.disjunction)
    report["config"]["network"] = str(args.network)
    report["config"]["data"] = str(args.data)
    report["config"]["scale"] = args.scale
    print(format_report(report))
    if args.json:
        write_atomic(args.json, json.dumps(report, indent=1, default=json_default) + "\n")
        if not args.resume and os.path.exists(resume):
            os.unlink(resume)
    if args.plot:
        plot_metrics(report, args.plot)
    return 0


def format_report(report: dict) -> str:
    s = report["summary"]
    norm = report["config"]["norm"]
    lines = [f"points: {s['points']}  correctly classified: {s['correct']}  "
             f"misclassified: {len(s['misclassified'])}"
             + (f" (indices {', '.join(map(str, s['misclassified'][:20]))}{' ...' if len(s['misclassified']) > 20 else ''})"
                if s["misclassified"] else ""),
             f"rho (L{norm}): exact {s['exact']}, bounded {s['bounded']}, timeout {s['timeout']}; "
             f"median {s['median_seconds']:.2f} s per point" if s["median_seconds"] is not None else "no points"]
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


if __name__ == "__main__":  # pragma: no cover
    from .app import main
    sys.exit(main(["robustness", *sys.argv[1:]]))
