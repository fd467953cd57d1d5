"""End-to-end runs of the exact verification core on the shared VNN-COMP suites.

    python benchmarks/run_core.py                # every suite below
    python benchmarks/run_core.py acasxu12       # one suite
    python benchmarks/run_core.py acasxu coav mnist_fc_2022 eran   # the issue-3 suites

Each suite is run through `exactverify bench`'s machinery (the same code path as
the CLI), against the ground truth in ../shared/benchmarks. Per-instance results
go to benchmarks/results/<suite>.csv, and a summary table is printed (paste it
into BENCHMARKS.md with the machine it came from).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SHARED = HERE.parent.parent / "shared" / "benchmarks"

# ACAS Xu properties 1-4 on the 12 networks 1_1 .. 2_3
ACAS12 = r"ACASXU_run2a_(1_[1-9]|2_[1-3])_batch_2000\.onnx .*prop_[1-4]\.vnnlib$"

SUITES = {
    "vnncomp2021_test": dict(csv="vnncomp2021_test/test_instances.csv", truth="vnncomp2021_test/ground_truth.csv"),
    "marabou_mnist_small": dict(csv=None, truth="marabou_mnist_small/ground_truth.csv"),
    "acasxu12": dict(csv="acasxu/instances.csv", truth="acasxu/ground_truth.csv", pattern=ACAS12),
    "acasxu": dict(csv="acasxu/instances.csv", truth="acasxu/ground_truth.csv"),
    "mnist_fc_2022": dict(csv="mnist_fc/instances_2022.csv", truth="mnist_fc/ground_truth_2022.csv"),
    "coav": dict(csv=None, truth=None),
    "eran": dict(csv="eran_mnist_relu_9_200/instances.csv", truth="eran_mnist_relu_9_200/ground_truth.csv"),
}
DEFAULT = ["vnncomp2021_test", "marabou_mnist_small", "acasxu12"]


def marabou_instances_csv(results_dir: Path) -> Path:
    """marabou_mnist_small ships a ground-truth csv but no instances csv: derive one (timeout 300 s)."""
    import csv
    path = results_dir / "marabou_mnist_small_instances.csv"
    rows = list(csv.DictReader(open(SHARED / "marabou_mnist_small" / "ground_truth.csv")))
    base = SHARED / "marabou_mnist_small"
    with open(path, "w") as f:
        for r in rows:
            # relative to the csv, as VNN-COMP csvs are, so the file does not depend on this checkout's path
            net, prop = (os.path.relpath(base / r[k], results_dir) for k in ("network", "property"))
            f.write(f"{net},{prop},300\n")
    return path


def coav_instances_csv() -> Path:
    """CollisionAvoidance ships as one tarball: unpack it once into benchmarks/.cache (git-ignored)."""
    import tarfile
    dest = HERE / ".cache"
    csv_path = dest / "coav" / "instances.csv"
    if not csv_path.is_file():
        dest.mkdir(exist_ok=True)
        with tarfile.open(SHARED / "coav" / "coav.tar.xz") as tar:
            members = tar.getmembers()
            for m in members:  # the tarball is third-party: refuse anything that would land outside dest
                if not (m.isfile() or m.isdir()) or m.name.startswith("/") or ".." in Path(m.name).parts:
                    sys.exit(f"coav.tar.xz: unexpected member {m.name!r}")
            tar.extractall(dest, members=members)
    return csv_path


def run_suite(name: str, results_dir: Path, timeout=None, progress=True, workers=1, tightening="crown") -> dict:
    from exactverify.metrics.bench import format_summary, run_instances

    spec = SUITES[name]
    if name == "coav":
        csv_path = coav_instances_csv()
    else:
        csv_path = SHARED / spec["csv"] if spec["csv"] else marabou_instances_csv(results_dir)
    truth = SHARED / spec["truth"] if spec["truth"] else None
    t0 = time.perf_counter()
    report = run_instances(csv_path, ground_truth=truth, timeout=timeout,
                           pattern=spec.get("pattern"), progress=progress, workers=workers,
                           verify_options={"tightening": tightening})
    wall = time.perf_counter() - t0
    (results_dir / f"{name}.csv").write_text(report.to_csv())
    (results_dir / f"{name}.json").write_text(json.dumps(report.as_dict(), indent=1) + "\n")
    print(f"== {name}  (wall {wall:.1f} s, {workers} worker(s), tightening {tightening})")
    print(format_summary(report))
    return {"suite": name, "wall_s": round(wall, 2), "workers": workers, **report.summary()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("suites", nargs="*", help=f"any of {', '.join(SUITES)} (default: {' '.join(DEFAULT)})")
    parser.add_argument("--timeout", type=float, help="override every instance's timeout")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--workers", type=int, default=1,
                        help="worker processes (default 1: per-instance times are then undisturbed by each other)")
    parser.add_argument("--tightening", default="crown", choices=["interval", "crown", "lp", "milp"])
    args = parser.parse_args(argv)
    unknown = [s for s in args.suites if s not in SUITES]
    if unknown:
        parser.error(f"unknown suite(s) {unknown}; choose from {list(SUITES)}")
    if not SHARED.is_dir():
        sys.exit(f"{SHARED} not found: the shared benchmarks must sit beside the repository")
    results_dir = HERE / "results"
    results_dir.mkdir(exist_ok=True)
    rows = [run_suite(s, results_dir, args.timeout, not args.no_progress, args.workers, args.tightening)
            for s in (args.suites or DEFAULT)]
    print(f"\nmachine: {platform.machine()}, {platform.processor() or '?'}, python {platform.python_version()}")
    cols = ["suite", "wall_s", "workers", "instances", "decided", "sat", "unsat", "timeout", "unknown", "error", "agreeing", "wrong",
            "sat_onnxruntime_rechecked", "time_total_s", "time_median_s", "time_max_s"]
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for r in rows:
        print("| " + " | ".join(str(r[c]) for c in cols) + " |")


if __name__ == "__main__":
    main()
