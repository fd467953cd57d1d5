"""`exactverify certify`: one-pass Lipschitz certificates (GloRo-style) for a whole data set.

    exactverify certify NETWORK DATA --eps E [--norm 2|inf] [--mode standard | topk K | affinity GROUPS]
                        [--scale S] [--json OUT] [--summary-only]

DATA is an `.npz` with arrays `x` (N x n_inputs, or any shape with that many
values per point) and `y` (N integer labels), or a csv whose rows are
`label,p0,p1,...`. Every input value is divided by S (`--scale 255` for 0..255
pixels). GROUPS for affinity: groups of class indices, classes separated by
commas, groups by spaces or semicolons (`--mode affinity 0,6 3,5,8` or
`--mode affinity "0,6;3,5,8"`), or a JSON file holding a list of lists.

Per point: the certificate (certified or not, predicted class, certified top
set); then the summary: clean accuracy, certified fraction, verified-robust
accuracy (VRA: certified and correct, where correct means the label is the
prediction for `standard` and the label lies in the certified top set for
`topk` and `affinity`), and the time: computing K once, the certification
pass, and a plain float64 forward pass of the batch for comparison (each the
best of three runs).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from ..core.errors import InputError
from . import options


def register(sub) -> None:
    """Add the `certify` command to the subparsers `sub`."""
    p = sub.add_parser(
        "certify", help="one-pass Lipschitz robustness certificates for a data set",
        description="Certify every point of DATA with the one-pass Lipschitz certificate (GloRo): standard, "
                    "relaxed top-K, or affinity robustness on the --norm ball of radius --eps. A certified point "
                    "is robust (the bound is sound); an uncertified one may or may not be.")
    options.add_network(p)
    options.add_data(p)
    options.add_eps(p, several=False, required=True)
    options.add_norm(p, choices=("2", "inf"), default="2")
    p.add_argument("--mode", nargs="+", default=["standard"], metavar="MODE",
                   help="standard (default) | topk K | affinity GROUPS (e.g. 'affinity 0,6 3,5,8')")
    options.add_scale(p)
    options.add_limit(p)
    options.add_json(p)
    p.add_argument("--summary-only", action="store_true", help="print the summary but not the per-point lines")
    p.set_defaults(run=run)


def run(args) -> int:
    """Certify every point, print the per-point lines and the summary, write --json."""
    import numpy as np

    from ..bounds.lipschitz import certify_batch, margin_lipschitz
    from ..loaders import load_network

    mode, k, groups = parse_mode(args.mode)
    net = load_network(args.network)
    X, labels = load_data(args.data, net.input_size, args.scale)
    if args.limit is not None:
        X, labels = X[:args.limit], labels[:args.limit]
    n_out = net.output_size
    if np.any(labels < 0) or np.any(labels >= n_out):
        raise InputError(args.data, f"labels must lie in 0..{n_out - 1} (the network has {n_out} outputs)")
    if groups is not None:
        bad = [c for g in groups for c in g if c < 0 or c >= n_out]
        if bad:
            raise InputError(None, f"--mode affinity: class {bad[0]} is outside 0..{n_out - 1}")

    t0 = time.perf_counter()
    K = margin_lipschitz(net, args.norm)
    k_seconds = time.perf_counter() - t0
    batch = certify_batch(net, X, args.eps, norm=args.norm, mode=mode, k=k, groups=groups, K=K)
    # timings: the best of three runs each, so that first-call overheads do not count
    cert_seconds = min([batch.seconds] + [certify_batch(net, X, args.eps, norm=args.norm, mode=mode, k=k,
                                                        groups=groups, K=K).seconds for _ in range(2)])
    fwd = forward_seconds(net, X)

    pred = batch.predicted
    correct = pred == labels
    vra_hits = batch.label_in_set(labels)  # standard: certified and predicted == label
    n = len(X)
    summary = {
        "network": str(args.network), "data": str(args.data), "points": n, "eps": args.eps, "norm": args.norm,
        "mode": mode, "k": k, "groups": groups,
        "clean_accuracy": float(correct.mean()) if n else 0.0,
        "certified_fraction": float(batch.certified.mean()) if n else 0.0,
        "vra": float(vra_hits.mean()) if n else 0.0,
        "certified_k_counts": {str(int(c)): int(v) for c, v in zip(*np.unique(batch.k[batch.certified],
                                                                             return_counts=True))},
        "lipschitz_seconds": k_seconds, "certify_seconds": cert_seconds, "forward_seconds": fwd,
        "certify_over_forward": cert_seconds / fwd if fwd > 0 else None,
        "max_margin_lipschitz": float(np.max(K)) if K.size else 0.0,
    }
    if not args.summary_only:
        print("index label predicted certified k top_set margin")
        for i in range(n):
            finite = batch.margins[i][np.isfinite(batch.margins[i])]
            m = float(finite.min()) if finite.size else float("inf")
            top = batch.top_set(i)
            ts = "-" if top is None else ",".join(map(str, top))
            print(f"{i} {labels[i]} {pred[i]} {'yes' if batch.certified[i] else 'no'} {batch.k[i]} {ts} {m:.6g}")
    print(format_summary(summary))
    if args.json:
        points = []
        for i in range(n):
            c = batch.point(i).as_dict()
            c.pop("seconds", None)
            points.append({"index": i, "label": int(labels[i]), **c, "vra": bool(vra_hits[i])})
        options.write_json(args.json, {"summary": summary, "points": points}, indent=1)
    return 0


def parse_mode(tokens) -> tuple:
    """(mode, k, groups) from the --mode tokens; InputError on bad input."""
    tokens = list(tokens)
    mode = tokens[0]
    rest = tokens[1:]
    if mode == "standard":
        if rest:
            raise InputError(None, f"--mode standard takes no argument (got {' '.join(rest)})")
        return "standard", None, None
    if mode == "topk":
        if len(rest) != 1:
            raise InputError(None, "--mode topk needs exactly one argument K, e.g. --mode topk 3")
        try:
            k = int(rest[0])
        except ValueError:
            raise InputError(None, f"--mode topk: K must be an integer, got {rest[0]!r}") from None
        if k < 1:
            raise InputError(None, f"--mode topk: K must be at least 1, got {k}")
        return "topk", k, None
    if mode == "affinity":
        if not rest:
            raise InputError(None, "--mode affinity needs GROUPS, e.g. --mode affinity 0,6 3,5,8")
        if len(rest) == 1 and Path(rest[0]).is_file():
            path = Path(rest[0])
            try:
                groups = json.loads(path.read_text())
            except (OSError, ValueError) as e:
                raise InputError(path, f"cannot read groups as JSON: {e}") from None
            if not isinstance(groups, list) or not all(isinstance(g, list) for g in groups):
                raise InputError(path, "groups must be a JSON list of lists of class indices")
            try:
                return "affinity", None, [[int(c) for c in g] for g in groups]
            except (TypeError, ValueError):
                raise InputError(path, "groups must be a JSON list of lists of class indices") from None
        groups = []
        for tok in rest:
            for part in tok.split(";"):
                part = part.strip()
                if not part:
                    continue
                try:
                    groups.append([int(c) for c in part.split(",") if c.strip() != ""])
                except ValueError:
                    raise InputError(None, f"--mode affinity: cannot read group {part!r} "
                                           f"(expected class indices separated by commas)") from None
        if not groups:
            raise InputError(None, "--mode affinity: no groups given")
        return "affinity", None, groups
    raise InputError(None, f"unknown --mode {mode!r} (choose standard, topk K or affinity GROUPS)")


def load_data(path, n_inputs: int, scale: float = 1.0):
    """(X (N x n_inputs) float64, labels (N,) int64) from an .npz or csv file; InputError on bad input."""
    from ..loaders.datasets import load_dataset
    return load_dataset(path, scale=scale, n_inputs=n_inputs)


def forward_seconds(net, X, repeats: int = 3) -> float:
    """The best of `repeats` plain float64 forward passes of the whole batch."""
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        net.forward(X)
        best = min(best, time.perf_counter() - t)
    return best


def format_summary(s: dict) -> str:
    """The summary lines printed after the per-point lines."""
    mode = s["mode"] + (f" {s['k']}" if s["mode"] == "topk" else "")
    if s["mode"] == "affinity":
        mode += " " + " ".join(",".join(map(str, g)) for g in s["groups"])
    ratio = s["certify_over_forward"]
    lines = [
        f"points: {s['points']}  eps: {s['eps']:g} (L{s['norm']})  mode: {mode}",
        f"clean accuracy: {100 * s['clean_accuracy']:.2f}%",
        f"certified: {100 * s['certified_fraction']:.2f}%",
        f"verified-robust accuracy (certified and correct): {100 * s['vra']:.2f}%",
        f"time: margin Lipschitz constants {s['lipschitz_seconds']:.4f} s (once), certification "
        f"{s['certify_seconds']:.4f} s, one forward pass {s['forward_seconds']:.4f} s"
        + (f" (ratio {ratio:.2f})" if ratio is not None else ""),
    ]
    return "\n".join(lines)
