"""Exact pointwise robustness (Bastani et al. 2016) of the first 100 MNIST test images on mnist-net_256x2.

    python benchmarks/run_robustness.py [--timeout 60] [--workers 2] [--limit N]
    python benchmarks/run_robustness.py --retry --timeout 300 [--workers 2]
    python benchmarks/run_robustness.py --check-below [--verify-timeout 120]

L-inf, domain [0, 1], pixels scaled by 1/255. For every image: rho as a proven bracket (exact when
it closes to 1e-6 max(1, rho), i.e. 1e-6 absolute on this [0, 1] pixel scale), the time, and
Bastani's estimate (the LP in the linear region of the image); then phi and mu at eps 0.01, 0.02, 0.03, 0.05 and the ratio estimate / exact rho.
Writes benchmarks/results/robustness_mnist256x2.{json,md}. Interrupted runs resume from
benchmarks/results/robustness_mnist256x2.progress.jsonl (removed when the run completes).

--retry reruns the images of the finished run whose rho is not exact, with the new --timeout, and
merges the results (an exact rerun replaces the bracket; otherwise the two proven brackets are
intersected).

--check-below reads the JSON of a finished run and, for every image with an exact rho, runs
`exactverify verify` on the L-inf ball of radius 0.999 rho (expected: unsat) and re-checks the
counterexample at rho (float64 and float32 argmax, distance); the outcome is added to the JSON
and the markdown.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

from exactverify import load_network  # noqa: E402
from exactverify.core.files import json_default, write_atomic  # noqa: E402
from exactverify.loaders.datasets import load_dataset  # noqa: E402
from exactverify.metrics.dataset import dataset_robustness  # noqa: E402
from exactverify.metrics.radius import closed  # noqa: E402

SHARED = REPO.parent / "shared" / "benchmarks"
NETWORK = SHARED / "mnist_fc" / "onnx" / "mnist-net_256x2.onnx"
DATA = SHARED / "data" / "mnist_test_first100.csv"
EPS = [0.01, 0.02, 0.03, 0.05]
OUT = HERE / "results" / "robustness_mnist256x2"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds per image (default 60)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--limit", type=int, default=100)
    ap.add_argument("--no-baseline", action="store_true", help="skip Bastani's estimate")
    ap.add_argument("--check-below", action="store_true",
                    help="verify at 0.999 rho for every exact rho of the finished run (updates the results)")
    ap.add_argument("--verify-timeout", type=float, default=120.0)
    ap.add_argument("--retry", action="store_true",
                    help="rerun the images of the finished run whose rho is not exact, with --timeout, and merge")
    ap.add_argument("--out", metavar="STEM", help="results stem (default benchmarks/results/robustness_mnist256x2)")
    args = ap.parse_args(argv)
    global OUT
    if args.out:
        OUT = Path(args.out)
    if args.check_below:
        return check_below(args.verify_timeout, args.workers)
    if args.retry:
        return retry(args.timeout, args.workers, argv)

    net = load_network(NETWORK)
    X, y = load_dataset(DATA, scale=255, n_inputs=net.input_size, n_outputs=net.output_size)
    X, y = X[:args.limit], y[:args.limit]
    progress = Path(f"{OUT}.progress.jsonl")
    t0 = time.time()
    report = dataset_robustness(net, X, y, norm="inf", domain=(0.0, 1.0), eps_list=EPS, timeout=args.timeout,
                                workers=args.workers, resume_path=progress, baseline=not args.no_baseline)
    wall = time.time() - t0
    report["config"].update(network=str(NETWORK.relative_to(SHARED.parent.parent)) if NETWORK.is_relative_to(
        SHARED.parent.parent) else str(NETWORK), data=str(DATA.name), scale=255, workers=args.workers,
        machine=f"{platform.machine()}, {os.cpu_count()} cores (shared with other jobs)",
        command=" ".join(["python", "benchmarks/run_robustness.py", *(argv if argv is not None else sys.argv[1:])]),
        wall_seconds_this_run=round(wall, 1))
    write_atomic(f"{OUT}.json", json.dumps(report, indent=1, default=json_default) + "\n")
    write_atomic(f"{OUT}.md", markdown(report))
    progress.unlink(missing_ok=True)
    print(markdown(report))
    return 0


def _check_one(item):
    index, x0, label, rho, ce_x, timeout = item
    from exactverify import verify
    from exactverify.core.property import robustness_property
    net = load_network(NETWORK)
    t0 = time.time()
    res = verify(net, robustness_property(x0, 0.999 * rho, label, net.output_size, (0.0, 1.0)), timeout=timeout)
    x = np.asarray(ce_x)
    y64, y32 = net.forward(x), net.forward32(x)
    flips = bool(np.argmax(y64) != label and np.argmax(y32) != label and np.all((x >= 0) & (x <= 1)))
    return index, {"status": res.status, "seconds": round(time.time() - t0, 2),
                   "counterexample_rechecks": flips,
                   "counterexample_distance": float(np.max(np.abs(x - x0)))}


def check_below(timeout: float, workers: int) -> int:
    import multiprocessing as mp
    report = json.loads(Path(f"{OUT}.json").read_text())
    net = load_network(NETWORK)
    X, y = load_dataset(DATA, scale=255, n_inputs=net.input_size, n_outputs=net.output_size)
    items = [(p["index"], X[p["index"]], p["label"], p["radius"]["upper"], p["counterexample"]["x"], timeout)
             for p in report["points"] if p["status"] == "exact" and p["radius"]["upper"] is not None]
    results = {}
    with mp.get_context("spawn").Pool(max(1, workers)) as pool:
        for i, r in pool.imap_unordered(_check_one, items):
            results[i] = r
            print(i, r, flush=True)
    for p in report["points"]:
        if p["index"] in results:
            p["verify_below"] = results[p["index"]]
    statuses = [r["status"] for r in results.values()]
    report["summary"]["verify_below"] = {s: statuses.count(s) for s in sorted(set(statuses))}
    report["summary"]["counterexamples_recheck"] = sum(r["counterexample_rechecks"] for r in results.values())
    report["config"]["verify_below_timeout"] = timeout
    write_atomic(f"{OUT}.json", json.dumps(report, indent=1, default=json_default) + "\n")
    write_atomic(f"{OUT}.md", markdown(report))
    print(report["summary"]["verify_below"])
    return 0


def _merge(old: dict, new: dict) -> dict:
    """Two runs on one image: both brackets are proven, so their intersection is too."""
    if new["status"] == "exact":
        merged = {**new}
    else:
        lo = max(math.inf if r["radius"]["lower"] is None else r["radius"]["lower"] for r in (old, new))
        up_new = new["radius"]["upper"] is not None and (old["radius"]["upper"] is None
                                                        or new["radius"]["upper"] < old["radius"]["upper"])
        src = new if up_new else old
        up = src["radius"]["upper"]
        shut = up is not None and lo is not None and closed(lo, up)
        merged = {**src, "radius": {"lower": lo if math.isfinite(lo) else None, "upper": up},
                  "status": "exact" if shut else new["status"]}
    merged.update(bastani_estimate=old.get("bastani_estimate"), bastani_seconds=old.get("bastani_seconds"),
                  first_run_seconds=old["seconds"], seconds=new["seconds"])
    return merged


def retry(timeout: float, workers: int, argv) -> int:
    """Rerun the images whose rho is not exact with a longer time limit; merge into the results."""
    from exactverify.metrics.dataset import dataset_metrics, summarise
    report = json.loads(Path(f"{OUT}.json").read_text())
    net = load_network(NETWORK)
    X, y = load_dataset(DATA, scale=255, n_inputs=net.input_size, n_outputs=net.output_size)
    by_index = {p["index"]: p for p in report["points"]}
    todo = [i for i, p in sorted(by_index.items()) if p["status"] not in ("exact", "misclassified")]
    print(f"retrying {len(todo)} images with {timeout:g} s: {todo}", flush=True)
    t0 = time.time()
    sub = dataset_robustness(net, X[todo], y[todo], norm="inf", domain=(0.0, 1.0), timeout=timeout,
                             workers=workers, resume_path=Path(f"{OUT}.retry.jsonl"))
    for k, rec in enumerate(sub["points"]):
        i = todo[k]
        by_index[i] = _merge(by_index[i], {**rec, "index": i})
    points = [by_index[i] for i in sorted(by_index)]
    report["points"] = points
    report["metrics"] = dataset_metrics(points, EPS)
    report["summary"] = {**summarise(points), **{k: v for k, v in report["summary"].items()
                                                if k in ("verify_below", "counterexamples_recheck")}}
    report["config"].update(retry_timeout=timeout, retried=todo, retry_wall_seconds=round(time.time() - t0, 1),
                            retry_command=" ".join(["python", "benchmarks/run_robustness.py", *(argv or sys.argv[1:])]))
    write_atomic(f"{OUT}.json", json.dumps(report, indent=1, default=json_default) + "\n")
    write_atomic(f"{OUT}.md", markdown(report))
    Path(f"{OUT}.retry.jsonl").unlink(missing_ok=True)
    print(markdown(report))
    return 0


def float32_resolution(report: dict) -> np.ndarray | None:
    """Per exact image: the float32 spacing at the counterexample's binding pixels (those at distance
    rho from the image), over rho. A counterexample must re-check in float32, so it lies on the float32
    grid, and the upper end of a bracket can only move in steps of about this size: where it exceeds
    1e-6, "exact to 1e-6 relative" is finer than the grid the counterexamples live on."""
    X = None
    out = []
    for p in report["points"]:
        ce = p.get("counterexample")
        if p["status"] != "exact" or not ce:
            continue
        if X is None:
            X, _ = load_dataset(DATA, scale=255)
        x, x0, rho = np.asarray(ce["x"], dtype=np.float64), X[p["index"]], p["radius"]["upper"]
        binding = np.abs(x - x0) >= rho * (1 - 1e-4)
        out.append(np.max(np.spacing(np.abs(x[binding]).astype(np.float32)).astype(np.float64)) / rho)
    return np.array(out) if out else None


def markdown(report: dict) -> str:
    s, cfg = report["summary"], report["config"]
    pts = [p for p in report["points"] if p["status"] != "misclassified"]
    exact = [p for p in pts if p["status"] == "exact"]
    secs = [p["seconds"] for p in pts]
    lines = [
        "# Exact pointwise robustness: mnist-net_256x2, first 100 MNIST test images",
        "",
        f"L-inf, domain [0, 1], pixels / 255; per-image time limit {cfg['timeout']:g} s; "
        f"{cfg.get('workers', 1)} worker processes on {cfg.get('machine', '?')}.",
        f"Command: `{cfg.get('command', 'python benchmarks/run_robustness.py')}`",
        *([f"Then the {len(cfg['retried'])} images left inexact were rerun with a time limit of "
           f"{cfg['retry_timeout']:g} s each (`{cfg.get('retry_command')}`, {cfg.get('retry_wall_seconds')} s of "
           f"wall time); 'seconds' below is the rerun's time, and the two runs' brackets are intersected."]
          if cfg.get("retried") else []),
        "",
        f"- images: {s['points']}; correctly classified: {s['correct']}; misclassified (reported separately, "
        f"not in phi/mu): {len(s['misclassified'])} {s['misclassified']}",
        f"- rho exact (bracket closed to 1e-6 max(1, rho): 1e-6 absolute here): **{s['exact']} / {s['correct']}**; "
        f"bracket only (time limit): {s['timeout']}; bounded otherwise: {s['bounded']}",
        f"- time per image (rho only, without Bastani's LP): median {np.median(secs):.1f} s, "
        f"mean {np.mean(secs):.1f} s, max {np.max(secs):.1f} s; median over exact images "
        f"{np.median([p['seconds'] for p in exact]) if exact else float('nan'):.1f} s",
    ]
    if exact:
        rho = [p["radius"]["upper"] for p in exact]
        lines.append(f"- exact rho: median {np.median(rho):.5f}, min {np.min(rho):.5f}, max {np.max(rho):.5f}")
        res = float32_resolution(report)
        if res is not None:
            lines.append(f"- float32 grid at the counterexamples (spacing of float32 numbers at the pixels that are "
                         f"rho from the image, over rho): median {np.median(res):.2e}, min {np.min(res):.2e}, "
                         f"max {np.max(res):.2e}; above 1e-6 for {int(np.sum(res > 1e-6))} of {len(res)} images. "
                         f"Counterexamples re-check in float32, so they lie on this grid, and a bracket's upper end "
                         f"moves in steps of about this size: where it is above 1e-6, a bracket closed to 1e-6 of rho "
                         f"asks for a finer resolution than the grid has.")
    if s.get("verify_below"):
        vb = s["verify_below"]
        lines.append(f"- check of every exact rho (`verify` on the L-inf ball of radius 0.999 rho, "
                     f"{cfg.get('verify_below_timeout', 0):g} s each): "
                     + ", ".join(f"{k} {v}" for k, v in vb.items())
                     + f"; counterexamples at rho that re-check (argmax changes in float64 and float32, "
                       f"inside [0, 1]): {s['counterexamples_recheck']} of {sum(vb.values())}")
    lines += ["", "## Adversarial frequency and severity (over the correctly classified images)", "",
              "| eps | phi(eps) | mu(eps) | images with rho <= eps | undecided | Bastani estimate <= eps |",
              "|---|---|---|---|---|---|"]
    for m in report["metrics"]:
        fb = m["adversarial_frequency_bounds"]
        phi = f"{m['adversarial_frequency']:.3f}" if m["adversarial_frequency"] is not None else \
            f"[{fb[0]:.3f}, {fb[1]:.3f}]"
        sb = m["adversarial_severity_bounds"]
        mu = (f"{m['adversarial_severity']:.5f}" if m["adversarial_severity"] is not None else
              (f"{sb[1]:.5f} (of the decided)" if sb[1] is not None else "-"))
        bf = m.get("bastani_frequency")
        lines.append(f"| {m['eps']:g} | {phi} | {mu} | {m['count']} | {m['undecided']} | "
                     f"{'-' if bf is None else f'{bf:.3f}'} |")
    lines += ["", "A bracket [a, b] for phi means that images whose rho bracket contains eps were not decided "
                  "within the time limit; mu is then given over the images known to have rho <= eps.", ""]
    lines += ["## Bastani et al.'s estimate against the exact value", ""]
    found = s["bastani_found"]
    if s.get("bastani_ratio"):
        r = s["bastani_ratio"]
        lines.append(f"Estimate / exact rho over the {r['n']} images with both: median {r['median']:.3f}, "
                     f"min {r['min']:.3f}, max {r['max']:.3f}.")
    lines.append(f"The linear region of the image holds a misclassified point (so the estimate exists) for "
                 f"{found} of {s['correct']} images; for the rest the estimate is infinite.")
    for p in [p for p in pts if p.get("bastani_estimate") is not None]:
        r = p["radius"]
        lo_ratio = p["bastani_estimate"] / r["upper"] if r["upper"] else float("inf")
        hi_ratio = p["bastani_estimate"] / r["lower"] if r["lower"] else float("inf")
        ratio = f"= {lo_ratio:.2f}" if p["status"] == "exact" else f"in [{lo_ratio:.2f}, {hi_ratio:.2f}]"
        lines.append(f"- image {p['index']}: estimate {p['bastani_estimate']:.5f}, rho in [{r['lower']:.5f}, "
                     f"{r['upper']:.5f}] ({p['status']}): estimate / rho {ratio}")
    lines += ["", "## Per image", "", "| # | label | rho lower | rho upper | status | seconds | Bastani | verify at 0.999 rho |",
              "|---|---|---|---|---|---|---|---|"]
    for p in report["points"]:
        r = p["radius"]
        up = "-" if r["upper"] is None else f"{r['upper']:.7f}"
        lo = "inf" if r["lower"] is None else f"{r['lower']:.7f}"
        est = "-" if p.get("bastani_estimate") is None else f"{p['bastani_estimate']:.5f}"
        vb = p.get("verify_below")
        vbt = f"{vb['status']} ({vb['seconds']:.0f} s)" if vb else ""
        lines.append(f"| {p['index']} | {p['label']} | {lo} | {up} | {p['status']} | {p['seconds']:.1f} | {est} | {vbt} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
