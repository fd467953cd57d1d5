"""Two commits side by side on one benchmark suite: the same verdicts? the same times?

    python benchmarks/compare_commits.py 50adb5c HEAD acasxu
    python benchmarks/compare_commits.py 50adb5c HEAD mnist_fc --filter 256x2 --timeout 120

For a change that should not change behaviour (a refactor): each commit is checked out into a
temporary git worktree and runs `exactverify bench` on the suite at the same time as the other,
each on one worker process pinned to its own core (2 cores: one each), with one BLAS thread, so
that both see the same machine. Prints per side: decided, wrong, total and median time; then the
instances whose verdict or reason (box and domain counts) differ, and the median per-instance time
ratio. Writes both result csvs and a markdown summary to benchmarks/results/compare_<suite>.md.
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SHARED = REPO.parent / "shared" / "benchmarks"
SUITES = {
    "acasxu": ("acasxu/instances.csv", "acasxu/ground_truth.csv"),
    "mnist_fc": ("mnist_fc/instances_2022.csv", "mnist_fc/ground_truth_2022.csv"),
    "eran": ("eran_mnist_relu_9_200/instances.csv", "eran_mnist_relu_9_200/ground_truth.csv"),
}


def checkout(ref: str, where: Path, side: str) -> tuple[Path, str]:
    sha = subprocess.run(["git", "rev-parse", "--short", ref], cwd=REPO, capture_output=True, text=True,
                         check=True).stdout.strip()
    tree = where / f"{side}-{sha}"  # the same commit twice measures the noise
    subprocess.run(["git", "worktree", "add", "--detach", "-f", str(tree), sha], cwd=REPO, check=True,
                   capture_output=True)
    return tree, sha


def bench_command(tree: Path, suite: str, out: Path, args) -> list:
    # the command line moved from exactverify/cli.py to exactverify/cli/ (with python -m exactverify)
    module = "exactverify" if (tree / "exactverify" / "__main__.py").exists() else "exactverify.cli"
    instances, truth = SUITES[suite]
    cmd = [sys.executable, "-m", module, "bench", str(SHARED / instances), "--ground-truth", str(SHARED / truth),
           "--workers", "1", "--out", str(out), "--no-progress"]
    if args.filter:
        cmd += ["--filter", args.filter]
    if args.timeout:
        cmd += ["--timeout", str(args.timeout)]
    return cmd


def read_rows(path: Path) -> dict:
    with open(path, newline="") as f:
        return {(r["network"], r["property"]): r for r in csv.DictReader(f)}


def summary(rows: dict) -> dict:
    times = [float(r["seconds"]) for r in rows.values()]
    decided = [r for r in rows.values() if r["status"] in ("sat", "unsat")]
    return {"instances": len(rows), "decided": len(decided), "wrong": sum(r["agrees"] == "NO" for r in rows.values()),
            "total_s": round(sum(times), 1), "median_s": round(statistics.median(times), 3) if times else None,
            "max_s": round(max(times), 1) if times else None}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("before")
    parser.add_argument("after")
    parser.add_argument("suite", choices=sorted(SUITES))
    parser.add_argument("--filter", help="regex on 'network property' (as bench --filter)")
    parser.add_argument("--timeout", type=float, help="override every instance's timeout")
    args = parser.parse_args(argv)
    if not SHARED.is_dir():
        sys.exit(f"{SHARED} not found: the shared benchmarks must sit beside the repository")
    cores = sorted(os.sched_getaffinity(0))
    with tempfile.TemporaryDirectory(prefix="exactverify-compare-") as tmp:
        tmp = Path(tmp)
        sides = [checkout(ref, tmp, side) for ref, side in ((args.before, "a"), (args.after, "b"))]
        env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
        procs, outs = [], []
        t0 = time.perf_counter()
        for k, (tree, sha) in enumerate(sides):
            out = tmp / f"{k}-{sha}.csv"
            core = {cores[k % len(cores)]}
            procs.append(subprocess.Popen(bench_command(tree, args.suite, out, args), cwd=tree,
                                          env={**env, "PYTHONPATH": str(tree)},
                                          preexec_fn=lambda core=core: os.sched_setaffinity(0, core),
                                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
            outs.append(out)
        logs = [p.communicate()[0] for p in procs]
        wall = time.perf_counter() - t0
        for p, log in zip(procs, logs):
            if p.returncode != 0:
                print(log)
                sys.exit(f"bench exited {p.returncode}")
        rows = [read_rows(o) for o in outs]
        results = HERE / "results"
        for (tree, sha), o, side in zip(sides, outs, "ab"):
            (results / f"compare_{args.suite}_{side}_{sha}.csv").write_text(o.read_text())
        for tree, _ in sides:
            subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=REPO, capture_output=True)

    (_, sha_a), (_, sha_b) = sides
    sa, sb = summary(rows[0]), summary(rows[1])
    keys = sorted(set(rows[0]) | set(rows[1]))
    verdicts = [k for k in keys if rows[0].get(k, {}).get("status") != rows[1].get(k, {}).get("status")]
    reasons = [k for k in keys if k not in verdicts and rows[0][k]["reason"] != rows[1][k]["reason"]]
    ratios = [float(rows[1][k]["seconds"]) / max(float(rows[0][k]["seconds"]), 1e-9) for k in keys
              if k in rows[0] and k in rows[1]]
    lines = [f"## {args.suite}: {sha_a} against {sha_b}, side by side (one core each), "
             f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}", "",
             "```", f"python benchmarks/compare_commits.py {args.before} {args.after} {args.suite}"
             + (f" --filter '{args.filter}'" if args.filter else "")
             + (f" --timeout {args.timeout:g}" if args.timeout else ""), "```", "",
             "| commit | instances | decided | wrong | total s | median s | max s |", "|---|---|---|---|---|---|---|"]
    for sha, s in ((sha_a, sa), (sha_b, sb)):
        lines.append(f"| {sha} | {s['instances']} | {s['decided']} | {s['wrong']} | {s['total_s']} | {s['median_s']} | "
                     f"{s['max_s']} |")
    lines += ["", f"- verdicts that differ: {len(verdicts)}" + (f" ({', '.join(' '.join(k) for k in verdicts)})"
                                                              if verdicts else ""),
              f"- same verdict, different reason (box/domain counts): {len(reasons)}",
              f"- per-instance time ratio {sha_b}/{sha_a}: median {statistics.median(ratios):.3f}, "
              f"total {sb['total_s'] / max(sa['total_s'], 1e-9):.3f}" if ratios else "- no common instances",
              f"- wall {wall:.0f} s for both"]
    for k in reasons[:20]:
        lines.append(f"  - {' '.join(k)}: `{rows[0][k]['reason']}` / `{rows[1][k]['reason']}`")
    text = "\n".join(lines) + "\n"
    print(text)
    (HERE / "results" / f"compare_{args.suite}.md").write_text(text)
    return 1 if verdicts else 0


if __name__ == "__main__":
    sys.exit(main())
