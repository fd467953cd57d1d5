"""The options that several commands share, each defined here once: one flag, one metavar, one help text.

A command adds them with `add_*(parser, ...)`. Where commands differ on purpose
(the default, or the unit a limit counts), the difference is an argument here,
so that `--timeout` or `--workers` means the same thing in every command.
The few helpers after the options turn shared option values into what the
commands pass on (`tightening`, `resolve_workers`, `compile_filter`), check
output paths before a long run, and write the `--json` file.

Values are checked as argparse reads them (the `type=` of each option), so a
bad value stops the run before any file is loaded and the message is the same
in every command: an `InputError` naming the option, the value and the problem,
which `exactverify.cli.app.main` prints as one line with exit code 2. Every
output option (`--out`, `--json`, `--markdown`, `--plot`, export's `-o`, ...)
is checked the same way, so that nothing is computed that cannot be written.

Nothing heavy is imported at module level: every command's parser is built for
`exactverify --help`.
"""

from __future__ import annotations

import argparse
import json
import math

# search.tightening.STAGES, copied because importing that module loads the bounds and solvers
# (tests/cli/test_cli.py checks that the two agree)
TIGHTENING = ("interval", "crown", "lp", "milp", "krelu")


# ---------------------------------------------------------------- value checks (argparse `type=`)

def _bad_value(flag: str, text: str, problem: str):
    from ..core.errors import InputError
    return InputError(None, f"{flag} {text}: {problem}")


def _number(flag: str, ok, problem: str, name: str):
    def check(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        # nan compares false with everything: a nan timeout would remove the time limit
        if not (math.isfinite(value) and ok(value)):
            raise _bad_value(flag, text, problem)
        return value
    check.__name__ = name
    return check


def finite_number(flag: str):
    """An argparse `type=` for `flag`: a finite float (nan and inf are refused)."""
    return _number(flag, lambda v: True, "must be a finite number", "finite number")


def positive_number(flag: str):
    """An argparse `type=` for `flag`: a finite float > 0 (nan, inf, 0 and below are refused)."""
    return _number(flag, lambda v: v > 0, "must be a finite number > 0", "positive number")


def count(flag: str):
    """An argparse `type=` for `flag`: a whole number >= 1."""
    def check(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = 0
        if value < 1:
            raise _bad_value(flag, text, "must be a whole number >= 1")
        return value
    check.__name__ = "count"
    return check


def output_file(flag: str, appended: bool = False):
    """An argparse `type=` for the output option `flag`: a path that can be written (see `core.files.output_problem`)."""
    def check(text: str) -> str:
        from ..core.files import output_problem
        problem = output_problem(text, appended)
        if problem:
            raise _bad_value(flag, text, problem)
        return text
    check.__name__ = "output file"
    return check


def plot_file(flag: str = "--plot"):
    """An argparse `type=` for `--plot`: an output file, and matplotlib installed to draw it."""
    def check(text: str) -> str:
        import importlib.util  # find_spec does not import matplotlib: --plot stays cheap to read
        if importlib.util.find_spec("matplotlib") is None:
            raise _bad_value(flag, text, 'needs matplotlib, which is not installed: pip install "exactverify[plot]"')
        return output_file(flag)(text)
    check.__name__ = "plot file"
    return check


def scheduler_address(text: str) -> str:
    """An argparse `type=` for `--scheduler`: an address, and dask.distributed installed to reach it."""
    from ..core.runner import scheduler_problem
    problem = scheduler_problem(text)
    if problem:
        raise _bad_value("--scheduler", text, problem)
    return text


# ---------------------------------------------------------------- inputs

def add_network(p) -> None:
    """The NETWORK positional argument."""
    p.add_argument("network", metavar="NETWORK", help="ONNX (.onnx) or Marabou (.nnet) network")


def add_property(p, optional: bool = False) -> None:
    """The PROPERTY positional argument (optional for `info`)."""
    p.add_argument("property", metavar="PROPERTY", nargs="?" if optional else None,
                   help="VNN-LIB property file (states the unsafe condition)")


def add_data(p) -> None:
    """The DATA positional argument: labelled points."""
    p.add_argument("data", metavar="DATA", help=".npz with arrays x and y, or a csv of rows label,p0,p1,...")


def add_scale(p, default: float | None = 1.0) -> None:
    """`--scale S`: divide every input value of DATA by S."""
    p.add_argument("--scale", type=positive_number("--scale"), default=default, metavar="S",
                   help="divide every input value by S, e.g. 255 for 0..255 pixels (default: values as stored)")


def add_limit(p, unit: str = "points") -> None:
    """`--limit N`: only the first N items (points, instances) of the input."""
    p.add_argument("--limit", type=count("--limit"), metavar="N", help=f"only the first N {unit}")


def add_filter(p, unit: str) -> None:
    """`--filter REGEX`: only the items whose 'network property' matches."""
    p.add_argument("--filter", metavar="REGEX", help=f"only {unit} whose 'network property' matches REGEX")


def add_ground_truth(p) -> None:
    """`--ground-truth CSV`: expected answers to compare with."""
    p.add_argument("--ground-truth", metavar="CSV",
                   help="csv with columns network, property, expected: count the answers that agree with it "
                        "and those that contradict it")


# ---------------------------------------------------------------- the question asked

def add_eps(p, several: bool, required: bool) -> None:
    """`--eps E` (or `--eps E [E ...]`): the radius of the ball around each point."""
    if several:
        p.add_argument("--eps", type=positive_number("--eps"), nargs="+", required=required,
                       default=None if required else [], metavar="E",
                       help="radii of the --norm balls around each point")
    else:
        p.add_argument("--eps", type=positive_number("--eps"), required=required, metavar="E",
                       help="radius of the --norm ball around each point")


def add_norm(p, choices: tuple, default: str) -> None:
    """`--norm`: the norm of the balls; each command offers the norms it can answer for."""
    p.add_argument("--norm", choices=choices, default=default,
                   help=f"the norm of the ball: {', '.join(choices)} (default {default})")


def add_domain(p) -> None:
    """`--domain LO HI`: the box every input lives in."""
    p.add_argument("--domain", type=finite_number("--domain"), nargs=2, metavar=("LO", "HI"),
                   help="the input domain: every input value lies in [LO, HI] and every ball is clipped to it "
                        "(e.g. 0 1 for pixels)")


# ---------------------------------------------------------------- how it is answered

def add_timeout(p, per: str, default: float | None = 60.0, default_text: str | None = None) -> None:
    """`--timeout S`: the time limit in seconds for each exact question (`per` names it)."""
    shown = f": {default_text}" if default_text else f" {default:g}"
    p.add_argument("--timeout", type=positive_number("--timeout"), default=default, metavar="S",
                   help=f"time limit in seconds per {per} (default{shown})")


def add_tightening(p) -> None:
    """`--tightening T` (and its older, hidden name `--bounds`): how the big-M bounds are tightened."""
    p.add_argument("--tightening", choices=TIGHTENING, default="crown",
                   help="how far the per-neuron bounds (the big-M constants) are tightened before the MILP: "
                        "interval (IBP), crown (alpha-CROWN, default), lp or milp (per unstable neuron, "
                        "up to 30%% of the time limit), or krelu (lp, each LP with the 3-ReLU facets of the "
                        "layers below; the facets also go into every MILP)")
    p.add_argument("--bounds", choices=["interval", "crown"], help=argparse.SUPPRESS)


def add_solver(p) -> None:
    """`--solver`: the exact back end; the names come from the solver registry."""
    from ..solvers import SOLVERS  # a light module: the back ends load on first use
    p.add_argument("--solver", choices=SOLVERS, default="highs",
                   help=f"exact back end: {', '.join(SOLVERS)} (default highs)")


def add_workers(p, over: str, default: int | None) -> None:
    """`--workers N`: worker processes (N >= 1); the default None means one per core."""
    shown = ": one per core" if default is None else f" {default}"
    p.add_argument("--workers", type=count("--workers"), default=default, metavar="N",
                   help=f"worker processes for {over}; 1: all in this process (default{shown})")


def add_scheduler(p, over: str) -> None:
    """`--scheduler ADDRESS`: run the batch on a Dask cluster (core/runner.py) instead of local processes."""
    p.add_argument("--scheduler", type=scheduler_address, metavar="ADDRESS",
                   help=f"run {over} on the Dask cluster whose scheduler is at ADDRESS (e.g. tcp://10.0.0.5:8786) "
                        'instead of --workers local processes; needs pip install "exactverify[cluster]"; '
                        "the files named must be visible to the workers")


def add_resume(p, unit: str) -> None:
    """`--resume JSONL`: the progress file (core/journal.py) that finished tasks stream to and a rerun skips."""
    p.add_argument("--resume", type=output_file("--resume", appended=True), metavar="JSONL",
                   help=f"progress file: finished {unit} are appended as they end, and a rerun with the same file "
                        "skips them (default: OUT.progress.jsonl beside the --json or --out file OUT, removed "
                        "once the report is written)")


def add_progress(p, default: bool | None) -> None:
    """`--progress/--no-progress`: progress on stderr; None shows it when stderr is a terminal."""
    shown = "when stderr is a terminal" if default is None else ("on" if default else "off")
    # the default is set apart: BooleanOptionalAction would append its own "(default: True)" to the help
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help=f"progress on stderr (default: {shown})")
    p.set_defaults(progress=default)


# ---------------------------------------------------------------- outputs

def add_json(p) -> None:
    """`--json OUT`: the whole result as JSON, which every command offers."""
    p.add_argument("--json", type=output_file("--json"), metavar="OUT", help="write the whole result as JSON to OUT")


def add_out(p, metavar: str) -> None:
    """`--out FILE`: the result in VNN-COMP's own format."""
    p.add_argument("--out", type=output_file("--out"), metavar=metavar,
                   help="write the result in VNN-COMP's format: for one instance the result file (the verdict, "
                        "then a counterexample), for several a csv with one row per instance")


def add_markdown(p) -> None:
    """`--markdown OUT`: a summary table in markdown."""
    p.add_argument("--markdown", type=output_file("--markdown"), metavar="OUT",
                   help="write a markdown summary (for a paper or a README)")


def add_plot(p, what: str) -> None:
    """`--plot PNG`: a figure of the results (needs matplotlib)."""
    p.add_argument("--plot", type=plot_file(), metavar="PNG",
                   help=f'plot {what} (needs matplotlib: pip install "exactverify[plot]")')


# ---------------------------------------------------------------- shared option values

def tightening(args) -> str:
    """The tightening stage asked for, `--bounds` (the older name) winning as it always did."""
    return args.bounds or args.tightening


def resolve_workers(n: int | None) -> int:
    """The number of worker processes for `--workers n`: None (the option's default) means one per core."""
    if n is None:
        from ..core.runtime import default_workers
        return default_workers()
    return n


def runner(args):
    """The core.runner.Runner of `--workers` and `--scheduler`; with a scheduler, checked to answer before any work."""
    from ..core.runner import Runner, check_scheduler
    scheduler = getattr(args, "scheduler", None)
    if scheduler:
        check_scheduler(scheduler)
    return Runner(resolve_workers(args.workers), scheduler)


def progress_file(args, *outputs) -> str | None:
    """The progress file of a batch run: `--resume`, else the first given output + ".progress.jsonl", else None."""
    if args.resume:
        return args.resume
    first = next((o for o in outputs if o), None)
    return f"{first}.progress.jsonl" if first else None


def drop_progress_file(args, path) -> None:
    """Remove the default progress file once the report holds everything (a --resume file is the user's: kept)."""
    import os
    if path and not args.resume and os.path.exists(path):
        os.unlink(path)


def compile_filter(pattern: str):
    """The compiled `--filter` pattern; InputError when it is not a regular expression."""
    import re

    from ..core.errors import InputError
    try:
        return re.compile(pattern)
    except re.error as e:
        raise InputError(None, f"--filter {pattern!r} is not a regular expression ({e})") from None


def check_outputs(*paths) -> None:
    """InputError unless every given output path can be written (see `core.files.output_problem`); None entries are skipped."""
    from ..core.errors import InputError
    from ..core.files import output_problem
    for out in paths:
        problem = out and output_problem(out)
        if problem:
            raise InputError(out, problem)


def write_json(path, data, indent: int = 2) -> None:
    """Write `data` as JSON to `path` whole or not at all (numpy values and result objects included)."""
    from ..core.files import json_default, write_atomic
    write_atomic(path, json.dumps(data, indent=indent, default=json_default) + "\n")


def load_instance(args):
    """The network and the property of a command's NETWORK PROPERTY arguments, the property checked
    against the network's shapes (an InputError, one line and exit 2, when they do not fit)."""
    from ..loaders import load_network
    from ..loaders.vnnlib import load_vnnlib
    net = load_network(args.network)
    prop = load_vnnlib(args.property)
    prop.validate(net)
    return net, prop


def keep_finished(stop, outputs, write, progress_file=None) -> None:
    """After an interrupted batch (`stop`, an `Interrupted`): `write(stop.partial)` what had finished to the
    given outputs, whole (further interrupts ignored meanwhile), and say where in the line printed, with
    the progress file a rerun resumes from."""
    from ..core.runtime import ignoring_interrupts
    outputs = [p for p in outputs if p]
    finished = stop.partial is not None and stop.partial.rows
    kept = []
    if finished and outputs:
        with ignoring_interrupts():
            write(stop.partial)
        kept.append("finished ones written to " + " and ".join(outputs))
    if finished and progress_file:
        kept.append(f"progress in {progress_file}; run again to resume")
    stop.kept = "; ".join(kept)
