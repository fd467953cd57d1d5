"""`robustness` on the first 100 MNIST test images (mnist-net_256x2, L-inf, domain [0, 1]): the local
process pool against a local Dask cluster of as many worker processes, side by side, in one run.

    python benchmarks/run_cluster.py [--workers 2] [--timeout 120] [--limit 100]

The same command line runs twice: `--workers N`, then `--scheduler ADDRESS` of a LocalCluster of N
worker processes with one thread each, started here (what `dask scheduler` and
`dask worker --nworkers N --nthreads 1` would start). Writes
benchmarks/results/cluster_mnist256x2.{md,json}: wall times, and whether the two runs give the same
rho for every image (the same status and brackets; exact values equal to 1e-6 max(1, rho)).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SHARED = REPO.parent / "shared" / "benchmarks"
NETWORK = SHARED / "mnist_fc" / "onnx" / "mnist-net_256x2.onnx"
DATA = SHARED / "data" / "mnist_test_first100.csv"
OUT = HERE / "results" / "cluster_mnist256x2"
TOLERANCE = 1e-6  # the exactness tolerance of metrics.radius (EXACT_RTOL)


def robustness(extra, timeout: float, limit: int, json_out: Path) -> float:
    """Run the command line once; its wall time, process start included."""
    json_out.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "exactverify", "robustness", str(NETWORK), str(DATA), "--scale", "255",
           "--domain", "0", "1", "--timeout", str(timeout), "--limit", str(limit), "--eps", "0.01", "0.02", "0.03",
           "0.05", "--json", str(json_out), "--no-progress", *map(str, extra)]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def same_rho(a: dict, b: dict) -> bool:
    if a["status"] != b["status"]:
        return False
    for k in ("lower", "upper"):
        x, y = a["radius"][k], b["radius"][k]
        if (x is None) != (y is None):
            return False
        if x is not None and abs(x - y) > TOLERANCE * max(1.0, abs(x)):
            return False
    return True


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=120.0)
    ap.add_argument("--limit", type=int, default=100)
    args = ap.parse_args(argv)
    from distributed import LocalCluster

    runs = {}
    runs["local pool"] = robustness(["--workers", args.workers], args.timeout, args.limit, Path(f"{OUT}_local.json"))
    t0 = time.perf_counter()
    with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True, dashboard_address=":0",
                      silence_logs=40) as cluster:
        started = time.perf_counter() - t0
        runs["Dask cluster"] = robustness(["--scheduler", cluster.scheduler_address], args.timeout, args.limit,
                                          Path(f"{OUT}_dask.json"))
    points = {name: json.loads(Path(f"{OUT}_{tag}.json").read_text())["points"]
              for name, tag in (("local pool", "local"), ("Dask cluster", "dask"))}
    local, dask = points["local pool"], points["Dask cluster"]
    differ = [p["index"] for p, q in zip(local, dask) if p["index"] != q["index"] or not same_rho(p, q)]
    exact = {name: sum(p["status"] == "exact" for p in pts) for name, pts in points.items()}
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                            text=True).stdout.strip()
    result = {"command": " ".join(["python", "benchmarks/run_cluster.py", *(argv or sys.argv[1:])]),
              "commit": commit, "machine": f"{platform.machine()}, {os.cpu_count()} cores",
              "workers": args.workers, "timeout_s": args.timeout, "images": len(local),
              "wall_seconds": {k: round(v, 1) for k, v in runs.items()},
              "cluster_start_seconds": round(started, 1), "exact": exact, "differing_images": differ}
    Path(f"{OUT}.json").write_text(json.dumps(result, indent=1) + "\n")
    md = [f"`{result['command']}` at {commit} ({result['machine']}; {args.workers} workers each, "
          f"--timeout {args.timeout:g} s per image)", "",
          "| runner | images | exact | wall s |", "|---|---:|---:|---:|"]
    md += [f"| {name} | {len(points[name])} | {exact[name]} | {runs[name]:.1f} |" for name in runs]
    md += ["", f"Images whose rho differs between the two runs: {len(differ)}"
           + (f" ({', '.join(map(str, differ))})" if differ else "")
           + f". The LocalCluster took {started:.1f} s to start (not in the Dask wall time)."]
    Path(f"{OUT}.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
