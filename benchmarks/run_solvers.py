"""The same suites with each exact back end: HiGHS, CBC (through PuLP) and Z3.

    python benchmarks/run_solvers.py                      # every suite, every solver
    python benchmarks/run_solvers.py --timeout 60         # cap each instance at 60 s
    python benchmarks/run_solvers.py --solvers highs z3 --suites acasxu20

Suites (ground truth from ../shared/benchmarks): vnncomp2021_test, marabou_mnist_small
(instances csv derived as in run_core.py) and acasxu20, 20 ACAS Xu instances
(networks 1_1 .. 1_5, properties 1-4); and random51, the 51 random small networks
of the differential test (tests/solvers/test_solvers.py: thresholds just around the largest
sampled output, so most need the back end; no ground truth, only the solvers' mutual
agreement), run with `verify(..., attack_time=0)` directly. The shared suites go through
`exactverify.metrics.bench.run_instances(..., workers=1, verify_options={"solver": s})`, the
code path of `exactverify bench --solver s`. Per-run results go to
benchmarks/results/solvers_<suite>_<solver>.csv; the table (decided, agreeing with
the ground truth, wrong, total, median time per solver and suite) is printed and
written to benchmarks/results/solvers.md together with the command line.

Many instances are decided before any solver runs (bounds, cheap points, the
attack, input splitting with bounds); the `by ...` columns say which stage settled
each decided instance, so the comparison is not mistaken for more than it is.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from run_core import SHARED, marabou_instances_csv  # noqa: E402

ACAS20 = r"ACASXU_run2a_1_[1-5]_batch_2000\.onnx .*prop_[1-4]\.vnnlib$"
SUITES = {
    "vnncomp2021_test": dict(csv="vnncomp2021_test/test_instances.csv", truth="vnncomp2021_test/ground_truth.csv"),
    "marabou_mnist_small": dict(csv=None, truth="marabou_mnist_small/ground_truth.csv"),
    "acasxu20": dict(csv="acasxu/instances.csv", truth="acasxu/ground_truth.csv", pattern=ACAS20),
    "random51": None,  # tests/solvers/test_solvers.py's random threshold instances, run with verify directly
}
SOLVERS = ("highs", "cbc", "z3")


def run(suite: str, solver: str, results_dir: Path, timeout, progress: bool) -> dict:
    from exactverify.metrics.bench import run_instances

    spec = SUITES[suite]
    csv_path = SHARED / spec["csv"] if spec["csv"] else marabou_instances_csv(results_dir)
    t0 = time.perf_counter()
    report = run_instances(csv_path, ground_truth=SHARED / spec["truth"], timeout=timeout,
                           pattern=spec.get("pattern"), progress=progress, workers=1,
                           verify_options={"solver": solver})
    wall = time.perf_counter() - t0
    (results_dir / f"solvers_{suite}_{solver}.csv").write_text(report.to_csv())
    s = report.summary()
    how = [decided_by(r) for r in report.rows if r.status in ("sat", "unsat")]
    return {"suite": suite, "solver": solver, "instances": s["instances"], "decided": s["decided"],
            "sat": s["sat"], "unsat": s["unsat"], "timeout": s["timeout"], "unknown": s["unknown"],
            "error": s["error"], "agreeing": s["agreeing"], "wrong": s["wrong"],
            **{f"by_{k}": how.count(k) for k in ("bounds", "search", "split", "solver")},
            "median_s": round(statistics.median([r.seconds for r in report.rows]), 3) if report.rows else 0.0,
            "total_s": round(s["time_total_s"], 2), "wall_s": round(wall, 1),
            "verdicts": [r.status for r in report.rows]}


def run_random(solver: str, timeout) -> dict:
    """The 51 random threshold instances of tests/solvers/test_solvers.py (no ground truth; most need the back end)."""
    sys.path.insert(0, str(HERE.parent / "tests"))
    from test_solvers import threshold_instance

    from exactverify.search.verifier import verify

    rows, t0 = [], time.perf_counter()
    for seed in range(51):
        net, prop, _ = threshold_instance(seed)
        t = time.perf_counter()
        r = verify(net, prop, timeout=timeout or 30, solver=solver, attack_time=0)
        rows.append(type("Row", (), {"status": r.status, "reason": r.reason, "seconds": time.perf_counter() - t})())
    wall = time.perf_counter() - t0
    statuses = [r.status for r in rows]
    how = [decided_by(r) for r in rows if r.status in ("sat", "unsat")]
    times = [r.seconds for r in rows]
    return {"suite": "random51", "solver": solver, "instances": len(rows),
            "decided": statuses.count("sat") + statuses.count("unsat"), "sat": statuses.count("sat"),
            "unsat": statuses.count("unsat"), "timeout": statuses.count("timeout"),
            "unknown": statuses.count("unknown"), "error": 0, "agreeing": "n/a", "wrong": "n/a",
            **{f"by_{k}": how.count(k) for k in ("bounds", "search", "split", "solver")},
            "median_s": round(statistics.median(times), 3), "total_s": round(sum(times), 2),
            "wall_s": round(wall, 1), "verdicts": statuses}


def decided_by(row) -> str:
    """Which stage settled a decided instance, from its reason (the verifier's words; "MILP" also for z3)."""
    r = row.reason
    if "splitting" in r:
        return "split"  # boxes refuted by bounds, the rest by the back end (possibly none)
    if "MILP" in r or "(milp" in r:
        return "solver"
    if "(bounds;" in r:
        return "bounds"
    return "search"  # cheap points, the attack, the search in an input box


def table(rows: list) -> str:
    cols = [("suite", "suite"), ("solver", "solver"), ("decided", "decided"), ("agreeing", "agreeing"),
            ("wrong", "wrong"), ("instances", "total"), ("timeout", "timeout"), ("unknown", "unknown"),
            ("by_bounds", "by bounds"), ("by_search", "by search"), ("by_split", "by split"),
            ("by_solver", "by solver"), ("median_s", "median s"), ("total_s", "total s")]
    out = ["| " + " | ".join(h for _, h in cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        out.append("| " + " | ".join(str(r[k]) for k, _ in cols) + " |")
    return "\n".join(out)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suites", nargs="*", default=list(SUITES), choices=list(SUITES))
    parser.add_argument("--solvers", nargs="*", default=list(SOLVERS), choices=list(SOLVERS))
    parser.add_argument("--timeout", type=float, help="override every instance's timeout (s)")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    if not SHARED.is_dir():
        sys.exit(f"{SHARED} not found: the shared benchmarks must sit beside the repository")
    results_dir = HERE / "results"
    results_dir.mkdir(exist_ok=True)
    rows = []
    for suite in args.suites:
        for solver in args.solvers:
            if suite == "random51":
                r = run_random(solver, args.timeout)
            else:
                r = run(suite, solver, results_dir, args.timeout, not args.no_progress)
            print(f"{suite} {solver}: decided {r['decided']}/{r['instances']}, wrong {r['wrong']}, "
                  f"median {r['median_s']} s", flush=True)
            rows.append(r)
    # do the solvers agree with each other, instance by instance (where both decided)?
    disagreements = []
    for suite in args.suites:
        per = {r["solver"]: r["verdicts"] for r in rows if r["suite"] == suite}
        names = list(per)
        for k in range(len(per[names[0]]) if names else 0):
            decided = {s: per[s][k] for s in names if per[s][k] in ("sat", "unsat")}
            if len(set(decided.values())) > 1:
                disagreements.append(f"{suite} instance {k}: {decided}")
    cmd = "python benchmarks/run_solvers.py" + (" " + " ".join(argv if argv is not None else sys.argv[1:])).rstrip()
    text = "\n".join([
        "# Solver back ends on the shared suites",
        "",
        f"Command: `{cmd}` (workers 1, tightening crown).",
        f"Machine: {platform.machine()}, {platform.processor() or '?'}, python {platform.python_version()}, "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
        "",
        "decided = sat + unsat; agreeing / wrong = against the ground truth; total = instances; by bounds / "
        "by search / by split / by solver = which stage settled a decided instance (bounds over the whole box; "
        "cheap points, attack or search in an input box; input splitting, whose boxes are refuted by bounds "
        "or by the back end; the back end on the whole box). Only 'by solver' and part of 'by split' "
        "exercise the back end. median / total = seconds per instance. random51 has no ground truth "
        "(agreeing/wrong n/a): its check is the agreement line below.",
        "",
        table(rows),
        "",
        "Verdicts of the solvers on the same instance: "
        + ("all decided verdicts agree." if not disagreements else "DISAGREE on " + "; ".join(disagreements)),
        "",
    ])
    print(text)
    (results_dir / "solvers.md").write_text(text)
    (results_dir / "solvers.json").write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
