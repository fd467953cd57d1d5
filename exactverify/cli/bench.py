"""`exactverify bench INSTANCES_CSV`: run a VNN-COMP style instances csv and summarise the verdicts."""

from __future__ import annotations

from . import options


def register(sub) -> None:
    """Add the `bench` command to the subparsers `sub`."""
    p = sub.add_parser("bench", help="run a VNN-COMP style instances csv",
                       description="Run every instance of a VNN-COMP instances csv (network,property,timeout; "
                                   "paths relative to the csv) and summarise. With --ground-truth, count verdicts "
                                   "that agree with and contradict the expected ones.")
    p.add_argument("instances", metavar="INSTANCES_CSV")
    options.add_ground_truth(p)
    options.add_out(p, metavar="RESULTS_CSV")
    options.add_json(p)
    options.add_timeout(p, per="instance", default=None, default_text="each instance's own, from the csv")
    options.add_tightening(p)
    options.add_solver(p)
    options.add_workers(p, over="the instances", default=None)
    options.add_scheduler(p, over="the instances")
    options.add_resume(p, unit="instances")
    options.add_filter(p, unit="instances")
    options.add_limit(p, unit="instances (after --filter)")
    options.add_progress(p, default=True)
    p.set_defaults(run=run)


def run(args) -> int:
    """Run the instances, print the summary, write --out (csv) and --json."""
    from ..core.runtime import Interrupted
    from ..metrics.bench import format_summary, run_instances

    if args.filter:
        options.compile_filter(args.filter)  # a bad pattern is bad input, not a crash inside the run
    runner = options.runner(args)
    progress_file = options.progress_file(args, args.out, args.json)

    def stream(finished):  # the csv holds every finished instance, whole, as each one ends
        if args.out:
            from ..core.files import write_atomic
            write_atomic(args.out, finished.to_csv())

    try:
        report = run_instances(args.instances, ground_truth=args.ground_truth, timeout=args.timeout,
                               bounds=args.bounds or "crown", pattern=args.filter, limit=args.limit,
                               progress=args.progress, workers=runner.workers, scheduler=runner.scheduler,
                               verify_options={"tightening": options.tightening(args), "solver": args.solver},
                               resume_path=progress_file, on_progress=stream)
    except Interrupted as stop:  # the finished instances are kept, the JSON marked as interrupted
        options.keep_finished(stop, (args.out, args.json), lambda partial: _write(args, partial, interrupted=True),
                              progress_file)
        raise
    print(format_summary(report))
    _write(args, report)
    options.drop_progress_file(args, progress_file)
    return 0


def _write(args, report, interrupted: bool = False) -> None:
    if args.out:
        from ..core.files import write_atomic
        write_atomic(args.out, report.to_csv())
    if args.json:
        data = report.as_dict()
        if interrupted:
            data["interrupted"] = True
        options.write_json(args.json, data)
