"""A profile of hard MNIST-FC / ERAN instances through `verify` (issue 14): time per stage, the bound
refinement layer by layer (unstable ReLUs before and after, domains, domains per second), and the
progress lines with their times (refuted disjuncts and open domains over time).

    OPENBLAS_NUM_THREADS=1 python benchmarks/profile_refine.py                    # the two default instances
    OPENBLAS_NUM_THREADS=1 python benchmarks/profile_refine.py NET.onnx PROP.vnnlib [--timeout 300]

Writes benchmarks/results/profile_refine.md and .json.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
SHARED = HERE.parent.parent / "shared" / "benchmarks"

DEFAULT = [
    ("mnist_fc/onnx/mnist-net_256x6.onnx", "mnist_fc/vnnlib_2022/prop_1_0.03.vnnlib"),
    ("mnist_fc/onnx/mnist-net_256x4.onnx", "mnist_fc/vnnlib_2022/prop_6_0.03.vnnlib"),
]


def profile(net_path: str, prop_path: str, timeout: float) -> dict:
    from exactverify.api import load_network, load_vnnlib, verify

    net = load_network(net_path)
    prop = load_vnnlib(prop_path)
    lines = []
    start = time.perf_counter()
    res = verify(net, prop, timeout=timeout, workers=1,
                 progress=lambda line: lines.append((round(time.perf_counter() - start, 2), line)))
    refined = res.bounds.get("refined", [])
    return {"network": Path(net_path).name, "property": Path(prop_path).name, "status": res.status,
            "reason": res.reason, "seconds": round(res.seconds, 2), "timings": res.timings,
            "unstable_crown": res.bounds["stages"][0][-1]["unstable"] if res.bounds.get("stages") else None,
            "refined": refined, "stats": res.stats, "progress": lines}


def markdown(rows: list, commit: str) -> str:
    out = [f"# Profile of hard instances (commit {commit}, {platform.processor() or platform.machine()})", "",
           "Command: `OPENBLAS_NUM_THREADS=1 python benchmarks/profile_refine.py`", ""]
    for r in rows:
        out += [f"## {r['network']} {r['property']}: {r['status']} in {r['seconds']} s", "", r["reason"], "",
                "| stage | seconds |", "|---|---|"]
        out += [f"| {k} | {v:.2f} |" for k, v in r["timings"].items() if v > 0.005]
        out += ["", f"Unstable ReLUs per layer after alpha-CROWN: {r['unstable_crown']}", "",
                "| refined layer | unstable | made stable | domains | seconds | domains/s | unstable per layer after |",
                "|---|---|---|---|---|---|---|"]
        for case in r["refined"]:
            for layer in case["layers"]:
                rate = layer["domains"] / layer["seconds"] if layer["seconds"] else 0
                out.append(f"| {layer['layer']} | {layer['unstable']} | {layer['stabilised']} | {layer['domains']} | "
                           f"{layer['seconds']} | {rate:,.0f} | {layer['unstable_after']} |")
        out += ["", "Progress (seconds since start, line):", "", "```"]
        out += [f"{t:7.2f}  {line}" for t, line in r["progress"]]
        out += ["```", ""]
    return "\n".join(out)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", nargs="*", help="NET PROP pairs (default: two hard MNIST-FC instances)")
    parser.add_argument("--timeout", type=float, default=300.0)
    args = parser.parse_args(argv)
    if len(args.paths) % 2:
        parser.error("give network and property paths in pairs")
    pairs = (list(zip(args.paths[0::2], args.paths[1::2])) if args.paths
             else [(str(SHARED / n), str(SHARED / p)) for n, p in DEFAULT])
    import exactverify.search.verifier as verifier
    verifier._PROGRESS_SECONDS = 2.0  # a line every 2 s: the profile's time series
    rows = [profile(n, p, args.timeout) for n, p in pairs]
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=HERE).stdout.strip()
    out = HERE / "results" / "profile_refine"
    out.with_suffix(".json").write_text(json.dumps(rows, indent=1, default=str))
    out.with_suffix(".md").write_text(markdown(rows, commit))
    print(out.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
