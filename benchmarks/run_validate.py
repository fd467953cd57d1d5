"""Incomplete verifiers against exact answers on MNIST (issue 7).

    python benchmarks/run_validate.py                  # mnist-net_256x2, first 25 images, eps 0.01 0.02
    python benchmarks/run_validate.py --limit 50 --eps 0.01 0.02 0.03
    python benchmarks/run_validate.py --network examples/digits_gloro.onnx --data examples/digits_gloro_test.npz

Runs `exactverify.metrics.validate` (the code path of `exactverify validate`) for IBP,
CROWN, alpha-CROWN and the Lipschitz certificate on the network from
../shared/benchmarks/mnist_fc/onnx with the first MNIST test images of
../shared/benchmarks/data/mnist_test_first100.csv (pixels / 255, balls clipped
to [0, 1]), and writes benchmarks/results/validate_<net>.{md,json} (and .png
with --plot).
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
sys.path.insert(0, str(HERE.parent))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--network", default=str(SHARED / "mnist_fc" / "onnx" / "mnist-net_256x2.onnx"))
    ap.add_argument("--data", default=str(SHARED / "data" / "mnist_test_first100.csv"))
    ap.add_argument("--scale", type=float, help="divide the data by this (default 255 for a csv, 1 for an .npz)")
    ap.add_argument("--limit", type=int, default=25)
    ap.add_argument("--eps", type=float, nargs="+", default=[0.01, 0.02])
    ap.add_argument("--methods", default="ibp,crown,alpha-crown,lipschitz")
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds per exact answer (default 120)")
    ap.add_argument("--radius", action="store_true", help="also compute exact pointwise robustness (slow)")
    ap.add_argument("--plot", action="store_true")
    ap.add_argument("--name", help="file stem under benchmarks/results (default validate_<network>)")
    args = ap.parse_args(argv)
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

    from exactverify import load_network
    from exactverify.core.files import json_default, write_atomic
    from exactverify.metrics.validate import load_data, validate

    net_path = Path(args.network)
    if not net_path.is_file():
        print(f"{net_path} is not present", file=sys.stderr)
        return 2
    net = load_network(net_path)
    scale = args.scale if args.scale else (1.0 if args.data.endswith(".npz") else 255.0)
    X, y = load_data(args.data, scale=scale, limit=args.limit)
    t = time.perf_counter()
    report = validate(net, X, y, args.eps, methods=args.methods.split(","), domain=(0.0, 1.0),
                      timeout=args.timeout, exact_radius=args.radius, progress=True)
    report.network = net_path.name
    print(report.format_table())
    stem = args.name or "validate_" + net_path.stem.replace("mnist-net_", "mnist").replace("-", "_")
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    cmd = "python benchmarks/run_validate.py " + " ".join(argv if argv is not None else sys.argv[1:])
    md = report.format_markdown()
    md += (f"\nData: the first {len(X)} images of `{Path(args.data).name}` (divided by {scale:g}), balls clipped to "
           f"[0, 1]. Produced by `{cmd.strip()}` in {time.perf_counter() - t:.0f} s on {platform.machine()}, "
           f"{os.cpu_count()} cores (one process).\n")
    write_atomic(out / f"{stem}.md", md)
    data = report.as_dict()
    data["command"] = cmd.strip()
    write_atomic(out / f"{stem}.json", json.dumps(data, indent=2, default=json_default) + "\n")
    if args.plot:
        report.plot(out / f"{stem}.png")
    print(f"wrote {out / (stem + '.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
