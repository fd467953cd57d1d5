"""The bound-tightening stages measured against each other (issue 3).

    python benchmarks/run_tightening.py                  # ACAS Xu and MNIST-FC boxes
    python benchmarks/run_tightening.py --milp-budget 60

For each input box (the whole box of a property), bounds are computed up to
the last stage (interval -> CROWN -> LP -> MILP; see exactverify/search/tightening.py)
and the report gives, per stage, the unstable ReLUs left in each layer and the
time the stage took. The MILP stage gets `--milp-budget` seconds per box (and
at most 1 s per neuron); where it runs out, the neurons it did not reach keep
their LP bounds, and the table says how many solves it made.
Writes benchmarks/results/tightening.md and .json.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
SHARED = HERE.parent.parent / "shared" / "benchmarks"

BOXES = [
    ("acasxu", "acasxu/onnx/ACASXU_run2a_1_1_batch_2000.onnx", "acasxu/vnnlib/prop_1.vnnlib"),
    ("acasxu", "acasxu/onnx/ACASXU_run2a_1_1_batch_2000.onnx", "acasxu/vnnlib/prop_3.vnnlib"),
    ("acasxu", "acasxu/onnx/ACASXU_run2a_4_2_batch_2000.onnx", "acasxu/vnnlib/prop_2.vnnlib"),
    ("acasxu", "acasxu/onnx/ACASXU_run2a_3_3_batch_2000.onnx", "acasxu/vnnlib/prop_9.vnnlib"),
    ("mnist_fc", "mnist_fc/onnx/mnist-net_256x2.onnx", "mnist_fc/vnnlib_2022/prop_6_0.03.vnnlib"),
    ("mnist_fc", "mnist_fc/onnx/mnist-net_256x4.onnx", "mnist_fc/vnnlib_2022/prop_0_0.05.vnnlib"),
    ("mnist_fc", "mnist_fc/onnx/mnist-net_256x6.onnx", "mnist_fc/vnnlib_2022/prop_1_0.03.vnnlib"),
]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--milp-budget", type=float, default=30.0, metavar="S",
                        help="seconds for the LP and MILP stages per box (default 30)")
    args = parser.parse_args(argv)

    from exactverify import load_network, load_vnnlib
    from exactverify.search.tightening import TighteningReport, tightened_bounds

    rows = []
    for suite, net_path, prop_path in BOXES:
        net = load_network(SHARED / net_path).simplified()
        case = load_vnnlib(SHARED / prop_path).cases[0]
        report = TighteningReport()
        tightened_bounds(net, case.lower, case.upper, "milp", deadline=time.perf_counter() + args.milp_budget,
                         report=report)
        for st in report.stages:
            rows.append({"suite": suite, "network": Path(net_path).name, "property": Path(prop_path).name, **st})
            print(f"{Path(net_path).name:36s} {Path(prop_path).name:22s} {st['stage']:8s} "
                  f"unstable {sum(st['unstable']):4d} {st['unstable']}  {st['seconds']:8.3f} s  "
                  f"{st['solves']} solves", flush=True)

    out = HERE / "results"
    out.mkdir(exist_ok=True)
    (out / "tightening.json").write_text(json.dumps(rows, indent=1) + "\n")
    lines = [f"Bound tightening stages, MILP budget {args.milp_budget:g} s per box; "
             f"{platform.machine()}, python {platform.python_version()}", "",
             "| network | property | stage | unstable ReLUs (per layer) | total | seconds | solves |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['network']} | {r['property']} | {r['stage']} | {r['unstable']} | {sum(r['unstable'])} "
                     f"| {r['seconds']:.3f} | {r['solves']} |")
    (out / "tightening.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {out / 'tightening.md'}")


if __name__ == "__main__":
    main()
