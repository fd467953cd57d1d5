"""`exactverify audit RESULTS_CSV`: check another tool's sat/unsat claims exactly (exactverify.metrics.audit).

Exit codes: 0 when no claim is wrong, 1 when some claim is WRONG, 2 on bad input.
"""

from __future__ import annotations

import argparse

from . import options

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
    """Add the `audit` command to the subparsers `sub`."""
    p = sub.add_parser("audit", help="check another tool's sat/unsat claims exactly",
                       description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("results", metavar="RESULTS_CSV")
    p.add_argument("--root", metavar="DIR", help="folder the csv's paths are relative to (default: the csv's folder)")
    options.add_timeout(p, per="claim")
    p.add_argument("--tool", metavar="NAME", help="with a long table: the tool whose rows to audit (nv_jl, NV.jl, ...)")
    p.add_argument("--year", metavar="Y", help="with a long table: the year of those rows")
    p.add_argument("--convert", type=options.output_file("--convert"), metavar="OUT_CSV",
                   help="only write the selected rows as a results csv (network,property,result,...) and exit")
    options.add_ground_truth(p)
    p.add_argument("--witnesses", metavar="DIR",
                   help="folder of published counterexamples <network>__<property>.txt (VNN-COMP format): one "
                        "that re-checks answers its instance sat without a search")
    options.add_json(p)
    options.add_markdown(p)
    options.add_workers(p, over="the claims", default=1)
    options.add_scheduler(p, over="the claims")
    options.add_resume(p, unit="claims")
    options.add_filter(p, unit="claims")
    p.add_argument("--only-problems", action="store_true", help="list only WRONG and undecided claims")
    options.add_progress(p, default=True)
    p.set_defaults(run=run)


def run(args) -> int:
    """Audit the claims, print the table, write --json and --markdown; 1 when some claim is WRONG."""
    from ..core.runtime import Interrupted
    from ..metrics.audit import audit, convert_long, format_markdown, format_table

    if args.convert:
        convert_long(args.results, args.tool, args.year, out=args.convert, root=args.root)
        print(f"wrote {args.convert}")
        return 0
    only = None
    if args.filter:
        rx = options.compile_filter(args.filter)
        only = lambda c: rx.search(f"{c.network} {c.property}") is not None  # noqa: E731
    runner = options.runner(args)
    progress_file = options.progress_file(args, args.json, args.markdown)
    try:
        report = audit(args.results, root=args.root, timeout=args.timeout, tool=args.tool, year=args.year,
                       workers=runner.workers, scheduler=runner.scheduler, ground_truth=args.ground_truth,
                       progress=args.progress, only=only, witnesses=args.witnesses, resume_path=progress_file)
    except Interrupted as stop:  # the finished claims are kept, the JSON marked as interrupted
        options.keep_finished(stop, (args.json, args.markdown),
                              lambda partial: _write(args, partial, format_markdown, interrupted=True), progress_file)
        raise
    print(format_table(report, all_rows=not args.only_problems))
    _write(args, report, format_markdown)
    options.drop_progress_file(args, progress_file)
    return 1 if report.wrong else 0


def _write(args, report, format_markdown, interrupted: bool = False) -> None:
    if args.json:
        data = report.as_dict()
        if interrupted:
            data["interrupted"] = True
        options.write_json(args.json, data)
    if args.markdown:
        from ..core.files import write_atomic
        write_atomic(args.markdown, format_markdown(report) + "\n")
