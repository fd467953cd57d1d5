"""Exact pointwise robustness in L1, L2 and L-inf: the digits networks of examples/ and MNIST 256x2.

    python benchmarks/run_radii.py --run digits_standard:2 digits_standard:1 ... [--timeout 30] [--limit 100]
    python benchmarks/run_radii.py --run digits_gloro:2 --timeout 120 --tag _t120   # a second timeout, its own file
    python benchmarks/run_radii.py            # the summary and the figure from the finished runs

A run is `exactverify robustness NETWORK DATA --norm N --domain 0 1 --timeout T --limit L --json OUT`
(one process, one core), its JSON in benchmarks/results/radii/<name>_L<norm><tag>.json. The summary
(benchmarks/results/radii/summary.md) gives per network and norm: the points, how many are exact,
bounded or timed out, the median / 90th percentile / largest time per point, and how many of the
counterexamples at the upper bounds re-check here again (strict flip in float64 and float32, inside
the domain, at the reported distance). The figure (radii_bastani.png) is Bastani et al.'s: the
number of points with rho <= eps against eps, one panel per norm, one curve per network (dashed: the
lower bounds where a point is not exact), from each network's run over all its points with the most
exact points (the 600 s runs for the digits networks in L2).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
OUT = HERE / "results" / "radii"
SHARED = REPO.parent / "shared" / "benchmarks"
NETWORKS = {  # name: (network, data, --scale)
    "digits_standard": (REPO / "examples" / "digits_standard.onnx", REPO / "examples" / "digits_test.npz", None),
    "digits_gloro": (REPO / "examples" / "digits_gloro.onnx", REPO / "examples" / "digits_test.npz", None),
    "mnist256x2": (SHARED / "mnist_fc" / "onnx" / "mnist-net_256x2.onnx", SHARED / "data" / "mnist_test_first100.csv",
                   255),
}


def run(name: str, norm: str, timeout: float, limit: int, tag: str = "") -> Path:
    net, data, scale = NETWORKS[name]
    out = OUT / f"{name}_L{norm}{tag}.json"
    cmd = ["exactverify", "robustness", str(net), str(data), "--norm", norm, "--domain", "0", "1",
           "--timeout", str(timeout), "--limit", str(limit), "--no-progress", "--json", str(out)]
    if scale:
        cmd += ["--scale", str(scale)]
    print(" ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return out


def recheck(network, p: dict, x0, norm: str) -> bool:
    """The counterexample at the upper bound: a strict flip in float64 and float32, in [0, 1], at distance <= upper."""
    from exactverify.metrics.norms import norm_distance
    ce = p.get("counterexample")
    if not ce:
        return False
    x = np.asarray(ce["x"], dtype=np.float64)
    if np.any(x < 0) or np.any(x > 1) or not np.array_equal(x.astype(np.float32).astype(np.float64), x):
        return False
    for y in (network.forward(x), network.forward32(x).astype(np.float64)):
        if not max(y[j] for j in range(len(y)) if j != p["label"]) > y[p["label"]]:
            return False
    return norm_distance(x, x0, norm) <= p["radius"]["upper"] * (1 + 1e-12)


def result_files(name: str, norm: str):
    """The runs' JSON files of one network and norm, the untagged one first: (tag, path)."""
    stem = f"{name}_L{norm}"
    paths = sorted(OUT.glob(f"{stem}*.json"), key=lambda p: (len(p.name), p.name))
    tags = [(p.name[len(stem):-len(".json")], p) for p in paths]
    return [(tag, p) for tag, p in tags if not tag or tag.startswith("_")]


def summary_rows():
    from exactverify import load_network
    from exactverify.loaders.datasets import load_dataset
    rows = []
    for name, (net_path, data, scale) in NETWORKS.items():
        files = [(n, f) for n in ("inf", "2", "1") for f in result_files(name, n)]
        if not files:
            continue
        net = load_network(net_path)  # once per network, for all its runs' re-checks
        X, _ = load_dataset(data, scale=scale or 1.0)
        for norm, (tag, path) in files:
            rep = json.loads(path.read_text())
            pts = [p for p in rep["points"] if p["status"] != "misclassified"]
            secs = np.array([p["seconds"] for p in pts])
            exact = [p for p in pts if p["status"] == "exact"]
            ok = sum(recheck(net, p, X[p["index"]], norm) for p in pts if p.get("counterexample"))
            rows.append({"name": name, "norm": norm, "tag": tag, "points": len(rep["points"]), "correct": len(pts),
                         "exact": len(exact), "bounded": sum(p["status"] == "bounded" for p in pts),
                         "timeout": sum(p["status"] == "timeout" for p in pts),
                         "median_s": float(np.median(secs)), "p90_s": float(np.percentile(secs, 90)),
                         "max_s": float(secs.max()), "counterexamples": sum(bool(p.get("counterexample")) for p in pts),
                         "rechecked": int(ok), "timeout_s": rep["config"]["timeout"], "points_data": pts})
    return rows


def write_summary(rows) -> None:
    lines = ["| network | norm | timeout s | points (correct) | exact | bounded | timeout | median s | p90 s | max s | "
             "counterexamples re-checked |", "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['name']} | L{r['norm']} | {r['timeout_s']:g} | {r['points']} ({r['correct']}) | "
                     f"{r['exact']} | {r['bounded']} | "
                     f"{r['timeout']} | {r['median_s']:.2f} | {r['p90_s']:.2f} | {r['max_s']:.2f} | "
                     f"{r['rechecked']} of {r['counterexamples']} |")
    (OUT / "summary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def _most_exact(rows, norm: str):
    """Per network, its run in this norm over all the points (not a first-N run) with the most exact
    points, the shortest timeout among equals: the figure shows rho itself wherever some run found it."""
    best = {}
    for r in rows:
        if r["norm"] != norm:
            continue
        full = max(q["points"] for q in rows if q["name"] == r["name"] and q["norm"] == norm)
        key = (r["exact"], -r["timeout_s"])
        if r["points"] == full and (r["name"] not in best or key > best[r["name"]][0]):
            best[r["name"]] = (key, r)
    return [r for _, r in best.values()]


def plot(rows) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    norms = [n for n in ("inf", "2", "1") if any(r["norm"] == n for r in rows)]
    fig, axes = plt.subplots(1, len(norms), figsize=(5 * len(norms), 4), squeeze=False)
    for ax, norm in zip(axes[0], norms):
        for r in _most_exact(rows, norm):
            up = np.array([p["radius"]["upper"] if p["radius"]["upper"] is not None else np.inf
                           for p in r["points_data"]])
            lo = np.array([p["radius"]["lower"] if p["radius"]["lower"] is not None else np.inf
                           for p in r["points_data"]])
            finite = up[np.isfinite(up)]
            grid = np.linspace(0, (finite.max() if len(finite) else 1.0) * 1.05, 400)
            line, = ax.plot(grid, [(up <= e).sum() for e in grid],
                            label=f"{r['name']} ({r['exact']} exact, {r['timeout_s']:g} s a point)")
            if r["exact"] < r["correct"]:
                ax.plot(grid, [(lo <= e).sum() for e in grid], "--", color=line.get_color(), lw=0.8)
        ax.set_xlabel(f"eps (L{norm})")
        ax.set_ylabel("points with rho <= eps")
        ax.set_title(f"L{norm}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(OUT / "radii_bastani.png", dpi=110)
    plt.close(fig)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", nargs="*", metavar="NAME:NORM", default=None,
                    help=f"runs to do first (names: {', '.join(NETWORKS)}; norms inf, 1, 2)")
    ap.add_argument("--timeout", type=float, default=30.0)
    ap.add_argument("--limit", type=int, default=100)
    ap.add_argument("--tag", default="", help="suffix of the runs' JSON files, e.g. _t120 (starts with _)")
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    for item in args.run or []:
        name, norm = item.split(":")
        run(name, norm, args.timeout, args.limit, args.tag)
    rows = summary_rows()
    write_summary(rows)
    if rows:
        plot(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
