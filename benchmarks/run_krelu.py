"""The k-ReLU relaxation against the single-neuron ones, on ERAN's 9x200 network and MNIST-FC 256x4.

    python benchmarks/run_krelu.py eran      # the 36 VNN-LIB specs: certified by ibp, crown, alpha-crown, lp, krelu2, krelu
    python benchmarks/run_krelu.py layers    # per layer: mean width and unstable count after lp and krelu tightening
    python benchmarks/run_krelu.py summary   # benchmarks/results/krelu.md from the JSONs

`eran`: for each spec, each method bounds every disjunct of the unsafe condition (here y_j >= y_label,
one row each) over the spec's box and certifies when every lower bound of A y - b is > 0: ibp, crown
and alpha-crown by their bounds on those rows, lp by the LP relaxation with alpha-CROWN's intermediate
bounds (a triangle per unstable ReLU), krelu2 / krelu by that LP plus the 2-ReLU / 3-ReLU facets of
every layer. A certified spec whose ground truth is sat would be a violation.

`layers`: the first IMAGES MNIST images at eps 0.03 on mnist-net_256x4: the intermediate bounds
after `tightened_bounds(..., "crown")`, `(..., "lp")` and `(..., "krelu")`, per ReLU layer: mean
width of the unstable neurons' bounds (over those unstable after lp) and the unstable count. (On
ERAN's 9x200, LP tightening of every unstable neuron takes hours on this machine: not run.)

The MNIST-FC 256x4 table (20 images, eps 0.02 0.03 0.04, with exact answers) is `exactverify validate`:

    exactverify validate ../shared/benchmarks/mnist_fc/onnx/mnist-net_256x4.onnx \\
        ../shared/benchmarks/data/mnist_test_first100.csv --scale 255 --domain 0 1 --eps 0.02 0.03 0.04 \\
        --methods ibp,crown,alpha-crown,lp,krelu2,krelu --limit 20 --timeout 60 \\
        --json benchmarks/results/krelu_mnist256x4.json --markdown benchmarks/results/krelu_mnist256x4.md
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SHARED = REPO.parent / "shared" / "benchmarks"
ERAN = SHARED / "eran_mnist_relu_9_200"
MNIST = SHARED / "mnist_fc" / "onnx" / "mnist-net_256x4.onnx"
DATA = SHARED / "data" / "mnist_test_first100.csv"
OUT = HERE / "results"
METHODS = ("ibp", "crown", "alpha-crown", "lp", "krelu2", "krelu")
IMAGES = 10
KRELU_K = {"krelu2": 2, "krelu": 3}


def row_lower_bounds(method: str, net, lo, hi, A, b, stop_at: float | None = None) -> np.ndarray:
    """Sound lower bounds on each row of A y - b over the box [lo, hi], by `method` (one bound pass,
    and for lp/krelu one relaxation, for all rows)."""
    from exactverify.bounds.crown import compute_bounds, crown_bounds, linear_objective_bounds
    from exactverify.bounds.krelu import network_cuts
    from exactverify.search.tightening import lp_lower_bounds

    if method == "ibp":
        return _interval_rows(net, compute_bounds(net, lo, hi, "interval"), A, b)
    alpha = "adaptive" if method == "crown" else "optimized"
    lb = crown_bounds(net, lo, hi, alpha=alpha)
    crown = linear_objective_bounds(net, lb, A, -b, alpha=alpha)[0]
    if method in ("crown", "alpha-crown"):
        return crown
    open_rows = np.flatnonzero(crown <= 0)  # rows the bounds already settle need no LP
    out = crown.copy()
    if len(open_rows):
        cuts = network_cuts(net, lb, KRELU_K[method]) if method in KRELU_K else ()
        # with `stop_at` (every row needed, b = 0 as in y_j - y_label <= 0): the first row the LP cannot
        # prove > stop_at decides "not certified", and the rows after it keep alpha-CROWN's bounds
        stop = stop_at if stop_at is not None and not np.any(b[open_rows]) else None
        # one rounding in the subtraction: one step down makes it a lower bound again
        lp = np.nextafter(lp_lower_bounds(net, lb, A[open_rows], cuts, stop_at=stop) - b[open_rows], -np.inf)
        out[open_rows] = np.maximum(crown[open_rows], lp)
    return out


def _interval_rows(net, lb, A, b):
    from exactverify.bounds.interval import affine_interval
    from exactverify.core.network import Affine
    return affine_interval(Affine(A, -b), lb.lower[-1], lb.upper[-1])[0]


def run_eran(methods) -> dict:
    from exactverify import load_network
    from exactverify.loaders.vnnlib import load_vnnlib
    from exactverify.metrics.bench import read_ground_truth, read_instances
    from exactverify.search.verifier import bounded_form

    truth = read_ground_truth(ERAN / "ground_truth.csv")
    rows = []
    net = None
    for inst in read_instances(ERAN / "instances.csv"):
        if net is None:
            net = bounded_form(load_network(inst.network))
        prop = load_vnnlib(inst.property)
        row = {"property": inst.property.name, "expected": truth.get((inst.network.name, inst.property.name), "")}
        for m in methods:
            t = time.perf_counter()
            certified = True
            for case in prop.cases:
                A = np.vstack([np.asarray(d.A, float) for d in case.disjuncts])
                b = np.concatenate([np.asarray(d.b, float) for d in case.disjuncts])
                single = all(len(d.b) == 1 for d in case.disjuncts)
                low = row_lower_bounds(m, net, case.lower, case.upper, A, b, stop_at=0.0 if single else None)
                start = 0
                for d in case.disjuncts:  # a disjunct is refuted when one of its rows can never hold
                    certified &= bool(np.any(low[start:start + len(d.b)] > 0))
                    start += len(d.b)
            row[m] = {"certified": certified, "seconds": round(time.perf_counter() - t, 3)}
        rows.append(row)
        print(row["property"], " ".join(f"{m}={'Y' if row[m]['certified'] else '-'}({row[m]['seconds']:.1f}s)"
                                        for m in methods), flush=True)
    return {"network": "eran_mnist_relu_9_200", "methods": list(methods), "rows": rows}


def run_layers() -> dict:
    from exactverify import load_network
    from exactverify.bounds.krelu import relu_inputs
    from exactverify.core.property import robustness_property
    from exactverify.loaders.datasets import load_dataset
    from exactverify.search.tightening import tightened_bounds

    boxes = []
    mnet = load_network(MNIST)
    X, y = load_dataset(DATA, scale=255, n_inputs=784, n_outputs=10)
    for i in range(IMAGES):
        case = robustness_property(X[i], 0.03, int(y[i]), 10, (0.0, 1.0)).cases[0]
        boxes.append(("mnist_256x4", f"image {i} eps 0.03", mnet.simplified(), case.lower, case.upper))
    out = []
    for name, what, net, lo, hi in boxes:
        rec = {"network": name, "box": what, "layers": []}
        res = {}
        for stage in ("crown", "lp", "krelu"):
            t = time.perf_counter()
            res[stage] = tightened_bounds(net, lo, hi, stage)
            rec[f"{stage}_seconds"] = round(time.perf_counter() - t, 2)
        for k in relu_inputs(net):
            unstable = (res["lp"].lower[k] < 0) & (res["lp"].upper[k] > 0)
            layer = {"layer": k}
            for stage in ("crown", "lp", "krelu"):
                lo_k, hi_k = res[stage].lower[k], res[stage].upper[k]
                layer[f"{stage}_unstable"] = int(np.sum((lo_k < 0) & (hi_k > 0)))
                layer[f"{stage}_mean_width"] = float(np.mean((hi_k - lo_k)[unstable])) if unstable.any() else None
            rec["layers"].append(layer)
        out.append(rec)
        print(name, what, {s: rec[f"{s}_seconds"] for s in ("crown", "lp", "krelu")},
              [(la["layer"], la["lp_unstable"], la["krelu_unstable"]) for la in rec["layers"]], flush=True)
    return {"boxes": out}


def summary() -> str:
    lines = []
    path = OUT / "krelu_eran.json"
    if path.exists():
        data = json.loads(path.read_text())
        rows, methods = data["rows"], data["methods"]
        lines += [f"ERAN mnist_relu_9_200, {len(rows)} specs (`{data.get('command', '')}` at {data.get('commit', '')}):", "",
                  "| method | certified | violations | median s | total s |", "|---|---:|---:|---:|---:|"]
        for m in methods:
            cert = [r for r in rows if r[m]["certified"]]
            viol = [r for r in cert if r["expected"] == "sat"]
            secs = [r[m]["seconds"] for r in rows]
            lines.append(f"| {m} | {len(cert)} | {len(viol)} | {np.median(secs):.2f} | {sum(secs):.1f} |")
        lines.append("")
    path = OUT / "krelu_layers.json"
    if path.exists():
        data = json.loads(path.read_text())
        lines += ["Per ReLU layer, over the neurons unstable after lp: mean bound width and unstable count "
                  "(crown / lp / krelu); the times are the whole tightening:", "",
                  "| network | box | layer | width crown | width lp | width krelu | unstable crown | lp | krelu | s lp | s krelu |",
                  "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        fmt = lambda v: "-" if v is None else f"{v:.4f}"  # noqa: E731
        for rec in data["boxes"]:
            for la in rec["layers"]:
                lines.append(f"| {rec['network']} | {rec['box']} | {la['layer']} | {fmt(la['crown_mean_width'])} | "
                             f"{fmt(la['lp_mean_width'])} | {fmt(la['krelu_mean_width'])} | {la['crown_unstable']} | "
                             f"{la['lp_unstable']} | {la['krelu_unstable']} | {rec['lp_seconds']} | {rec['krelu_seconds']} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["eran", "layers", "summary"])
    ap.add_argument("--methods", default=",".join(METHODS))
    args = ap.parse_args(argv)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                            text=True).stdout.strip()
    command = " ".join(["python", "benchmarks/run_krelu.py", *(argv if argv is not None else sys.argv[1:])])
    if args.what == "eran":
        data = run_eran([m for m in args.methods.split(",") if m])
    elif args.what == "layers":
        data = run_layers()
    else:
        text = summary()
        (OUT / "krelu.md").write_text(text)
        print(text)
        return 0
    data.update(command=command, commit=commit)
    (OUT / f"krelu_{args.what}.json").write_text(json.dumps(data, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
