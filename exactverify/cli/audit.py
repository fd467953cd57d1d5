"""`exactverify audit RESULTS_CSV`: check another tool's sat/unsat claims exactly (exactverify.metrics.audit).

Exit codes: 0 when no claim is wrong, 1 when some claim is WRONG, 2 on bad input.
"""

from __future__ import annotations

import json

HELP = """\
Check every sat/unsat claim of a results csv exactly and classify it as
confirmed, WRONG (with a re-checked counterexample, or the unsat proof) or
undecided. The csv has a header naming at least network, property and result,
or is headerless in the VNN-COMP layout network,property,prepare_time,result,run_time.
Results holds/unsat/safe claim unsat, violated/sat/unsafe claim sat; others
(timeout, unknown, error) are skipped. A long table with year and tool columns
(shared/benchmarks/*/results_all_tools_long.csv) is narrowed with --tool/--year.
Exit status: 0 no claim wrong, 1 some claim WRONG, 2 bad input.
"""


def register(sub) -> None:
    import argparse
    p = sub.add_parser("audit", help="check another tool's sat/unsat claims exactly",
                       description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("results", metavar="RESULTS_CSV")
    p.add_argument("--root", metavar="DIR", help="folder the csv's paths are relative to (default: the csv's folder)")
    p.add_argument("--timeout", type=float, default=60.0, metavar="S", help="seconds per claim (default 60)")
    p.add_argument("--tool", metavar="NAME", help="with a long table: the tool whose rows to audit (nv_jl, NV.jl, ...)")
    p.add_argument("--year", metavar="Y", help="with a long table: the year of those rows")
    p.add_argument("--convert", metavar="OUT_CSV",
                   help="only write the selected rows as a results csv (network,property,result,...) and exit")
    p.add_argument("--ground-truth", metavar="CSV",
                   help="csv with network, property, expected: also compare claims and exact answers with it")
    p.add_argument("--witnesses", metavar="DIR",
                   help="folder of published counterexamples <network>__<property>.txt (VNN-COMP format): one "
                        "that re-checks answers its instance sat without a search")
    p.add_argument("--json", metavar="OUT", help="write the whole audit as JSON")
    p.add_argument("--markdown", metavar="OUT", help="write a markdown summary (for a paper or a README)")
    p.add_argument("--workers", type=int, default=1, metavar="N", help="worker processes (default 1)")
    p.add_argument("--filter", metavar="REGEX", help="only claims whose 'network property' matches REGEX")
    p.add_argument("--only-problems", action="store_true", help="list only WRONG and undecided claims")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(run=run)


def run(args) -> int:
    import re
    from pathlib import Path

    from ..metrics.audit import audit, convert_long, format_markdown, format_table
    from ..core.files import json_default, write_atomic
    from ..core.errors import InputError

    if args.convert:
        convert_long(args.results, args.tool, args.year, out=args.convert, root=args.root)
        print(f"wrote {args.convert}")
        return 0
    for out in (args.json, args.markdown):
        if out and not Path(out).resolve().parent.is_dir():
            raise InputError(out, f"output directory {Path(out).resolve().parent} does not exist")
    only = None
    if args.filter:
        try:
            rx = re.compile(args.filter)
        except re.error as e:
            raise InputError(None, f"--filter {args.filter!r} is not a regular expression ({e})")
        only = lambda c: rx.search(f"{c.network} {c.property}") is not None  # noqa: E731
    report = audit(args.results, root=args.root, timeout=args.timeout, tool=args.tool, year=args.year,
                   workers=args.workers, ground_truth=args.ground_truth, progress=not args.no_progress, only=only,
                   witnesses=args.witnesses)
    print(format_table(report, all_rows=not args.only_problems))
    if args.json:
        write_atomic(args.json, json.dumps(report.as_dict(), indent=2, default=json_default) + "\n")
    if args.markdown:
        write_atomic(args.markdown, format_markdown(report) + "\n")
    return 1 if report.wrong else 0
