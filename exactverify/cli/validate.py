"""`exactverify validate NETWORK DATA --eps E ...`: incomplete verifiers against exact answers (exactverify.metrics.validate).

Exit codes: 0 when the run completed (whatever it found; the report says it), 2 on bad input.
"""

from __future__ import annotations

import argparse

from . import options

HELP = """\
For every point of DATA and every eps, each method's answer (certified or not)
next to the exact answer on the ball of --norm (L-inf: verify; L1, L2: a ball
check by branch and bound over the ball), clipped to --domain: is some other
class j ever scored y_j >= y_label in it? Per method: soundness violations
(certified, but a re-checked counterexample exists; each is listed),
completeness (certified / truly robust) and, for radius-producing methods
(lipschitz; crown and alpha-crown in L1/L2), the certified radius against the
exact pointwise robustness in the same norm.
DATA is an .npz with arrays x and y, or a csv of rows label,p0,p1,... (pixels
divided by --scale). Methods: ibp, crown, alpha-crown, lipschitz, lp (the
LP relaxation with a triangle per unstable ReLU: the single-neuron convex
barrier), krelu2 and krelu (that LP plus the facets of the convex hull of
groups of 2 or 3 ReLUs: past the barrier); lp and krelu run over the L-inf
box around an L1/L2 ball.
"""


def register(sub) -> None:
    """Add the `validate` command to the subparsers `sub`."""
    p = sub.add_parser("validate", help="check incomplete verifiers (IBP, CROWN, Lipschitz) against exact answers",
                       description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    options.add_network(p)
    options.add_data(p)
    options.add_eps(p, several=True, required=True)
    options.add_norm(p, choices=("inf", "1", "2"), default="inf")
    p.add_argument("--methods", default="ibp,crown,alpha-crown,lipschitz",
                   help="comma-separated: ibp, crown, alpha-crown, lipschitz, lp, krelu2, krelu "
                        "(default: ibp,crown,alpha-crown,lipschitz)")
    options.add_domain(p)
    options.add_scale(p)
    options.add_limit(p)
    options.add_timeout(p, per="exact answer")
    p.add_argument("--no-radius", action="store_true",
                   help="skip the exact pointwise robustness (the radius comparison) even for radius methods")
    options.add_json(p)
    options.add_markdown(p)
    options.add_plot(p, what="certified vs exact radius, or certified counts per eps")
    options.add_workers(p, over="the points", default=1)
    options.add_scheduler(p, over="the points")
    options.add_resume(p, unit="points")
    options.add_progress(p, default=True)
    p.set_defaults(run=run)


def run(args) -> int:
    """Answer every point and eps with each method and exactly, print the table, write the reports."""
    from ..core.errors import InputError
    from ..loaders import load_network
    from ..metrics.validate import BUILTIN, load_data, validate

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in methods if m not in BUILTIN]
    if unknown or not methods:
        raise InputError(None, f"unknown method(s) {', '.join(unknown) or '(none)'}; choose from {', '.join(BUILTIN)}")
    net = load_network(args.network)
    X, y = load_data(args.data, scale=args.scale, limit=args.limit)
    runner = options.runner(args)
    progress_file = options.progress_file(args, args.json, args.markdown)
    report = validate(net, X, y, args.eps, methods=methods, norm=args.norm, domain=args.domain,
                      timeout=args.timeout, exact_radius=False if args.no_radius else None,
                      progress=args.progress, workers=runner.workers, scheduler=runner.scheduler,
                      resume_path=progress_file)
    report.network = str(args.network)
    print(report.format_table())
    if args.json:
        options.write_json(args.json, report.as_dict())
    if args.markdown:
        from ..core.files import write_atomic
        write_atomic(args.markdown, report.format_markdown())
    if args.plot:
        report.plot(args.plot)
        print(f"wrote {args.plot}")
    options.drop_progress_file(args, progress_file)
    return 0
