"""`exactverify validate NETWORK DATA --eps E ...`: incomplete verifiers against exact answers (exactverify.metrics.validate).

Exit codes: 0 when the run completed (whatever it found; the report says it), 2 on bad input.
"""

from __future__ import annotations

import json

HELP = """\
For every point of DATA and every eps, each method's answer (certified or not)
next to the exact answer from verify on the L-inf ball (clipped to --domain):
is some other class j ever scored y_j >= y_label in it? Per method: soundness
violations (certified, but a re-checked counterexample exists; each is listed),
completeness (certified / truly robust) and, for radius-producing methods
(lipschitz), the certified radius against the exact pointwise robustness.
DATA is an .npz with arrays x and y, or a csv of rows label,p0,p1,... (pixels
divided by --scale). Methods: ibp, crown, alpha-crown, lipschitz.
"""


def register(sub) -> None:
    import argparse
    p = sub.add_parser("validate", help="check incomplete verifiers (IBP, CROWN, Lipschitz) against exact answers",
                       description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("network", help="ONNX (.onnx) or Marabou (.nnet) network")
    p.add_argument("data", metavar="DATA", help=".npz (x, y) or csv label,p0,p1,...")
    p.add_argument("--eps", type=float, nargs="+", required=True, metavar="E", help="radii of the L-inf balls")
    p.add_argument("--norm", default="inf", choices=["inf"], help="the ball's norm (L-inf; exact answers need it)")
    p.add_argument("--methods", default="ibp,crown,alpha-crown,lipschitz",
                   help="comma-separated: ibp, crown, alpha-crown, lipschitz (default: all)")
    p.add_argument("--domain", type=float, nargs=2, metavar=("LO", "HI"),
                   help="clip every ball to [LO, HI] in each input (e.g. 0 1 for images)")
    p.add_argument("--scale", type=float, default=1.0, metavar="S", help="divide csv pixel values by S (255 for MNIST)")
    p.add_argument("--limit", type=int, metavar="N", help="only the first N points")
    p.add_argument("--timeout", type=float, default=60.0, metavar="S",
                   help="seconds for each exact answer (default 60)")
    p.add_argument("--no-radius", action="store_true",
                   help="skip the exact pointwise robustness (the radius comparison) even for radius methods")
    p.add_argument("--json", metavar="OUT", help="write every answer and the summary as JSON")
    p.add_argument("--markdown", metavar="OUT", help="write a markdown summary (for a paper or a README)")
    p.add_argument("--plot", metavar="PNG", help="plot certified vs exact radius, or certified counts per eps")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(run=run)


def run(args) -> int:
    from pathlib import Path

    from ..loaders import load_network
    from ..core.files import json_default, write_atomic
    from ..core.errors import InputError
    from ..metrics.validate import BUILTIN, load_data, validate

    for out in (args.json, args.markdown, args.plot):
        if out and not Path(out).resolve().parent.is_dir():
            raise InputError(out, f"output directory {Path(out).resolve().parent} does not exist")
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in methods if m not in BUILTIN]
    if unknown or not methods:
        raise InputError(None, f"unknown method(s) {', '.join(unknown) or '(none)'}; choose from {', '.join(BUILTIN)}")
    if args.limit is not None and args.limit < 1:
        raise InputError(None, "--limit must be at least 1")
    if args.scale == 0:
        raise InputError(None, "--scale must not be 0")
    net = load_network(args.network)
    X, y = load_data(args.data, scale=args.scale, limit=args.limit)
    report = validate(net, X, y, args.eps, methods=methods, norm=args.norm, domain=args.domain,
                      timeout=args.timeout, exact_radius=False if args.no_radius else None,
                      progress=not args.no_progress)
    report.network = str(args.network)
    print(report.format_table())
    if args.json:
        write_atomic(args.json, json.dumps(report.as_dict(), indent=2, default=json_default) + "\n")
    if args.markdown:
        write_atomic(args.markdown, report.format_markdown())
    if args.plot:
        report.plot(args.plot)
        print(f"wrote {args.plot}")
    return 0
