"""The `exactverify` command line.

Exit codes: 0 when the run completed, whatever the verdict; 2 on bad input
(one line on stderr naming the file and the problem, no traceback, and no output
file written); 1 from `audit` when some audited claim is WRONG, and otherwise
from genuine bugs, which do show a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

from ..core.errors import InputError
from ..core.files import json_default, write_atomic

DESCRIPTION = """\
Exact verification of small piecewise-linear (ReLU, max) neural networks.

A VNN-LIB property states the UNSAFE condition. Verdicts:
  sat      a counterexample exists; it is printed, and it was re-checked on the
           original network in float64 and float32 against every constraint
  unsat    no input meets the unsafe condition (the safety property holds),
           proven by a MILP solver (infeasible / dual bound) or by sound bounds
  timeout  the time limit ran out before a proof or counterexample was found
  unknown  no trustworthy answer (e.g. a solver point that did not re-check)
"""


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    try:
        return args.run(args)
    except InputError as e:
        print(f"exactverify: error: {e.message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("exactverify: interrupted", file=sys.stderr)
        return 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="exactverify", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("verify", help="decide one network/property instance",
                       description="Decide whether some input of PROPERTY drives NETWORK into the unsafe set. "
                                   "The first line on stdout is exactly one of: sat, unsat, timeout, unknown.")
    p.add_argument("network", help="ONNX (.onnx) or Marabou (.nnet) network")
    p.add_argument("property", help="VNN-LIB property file (states the unsafe condition)")
    p.add_argument("--timeout", type=float, default=60.0, metavar="S", help="time limit in seconds (default 60)")
    p.add_argument("--tightening", choices=["interval", "crown", "lp", "milp"], default="crown",
                   help="how far the per-neuron bounds (the big-M constants) are tightened before the MILP: "
                        "interval (IBP), crown (alpha-CROWN, default), lp or milp (per unstable neuron, "
                        "up to 30%% of the time limit); --json reports unstable ReLUs per layer per stage")
    p.add_argument("--bounds", choices=["interval", "crown"], help=argparse.SUPPRESS)  # the older name
    p.add_argument("--workers", type=int, default=0, metavar="N",
                   help="worker processes for an instance that one process does not decide within a few "
                        "seconds: its input box (or its disjuncts) cut into pieces (default: all cores)")
    add_solver_argument(p)
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="a progress line on stderr every 5 s of a long run (default: when stderr is a terminal)")
    p.add_argument("--out", metavar="RESULT", help="write the VNN-COMP result file (verdict, then the counterexample)")
    p.add_argument("--json", metavar="REPORT", help="write the whole result as JSON")
    p.set_defaults(run=run_verify)

    p = sub.add_parser("bench", help="run a VNN-COMP style instances csv",
                       description="Run every instance of a VNN-COMP instances csv (network,property,timeout; "
                                   "paths relative to the csv) and summarise. With --ground-truth, count verdicts "
                                   "that agree with and contradict the expected ones.")
    p.add_argument("instances", metavar="INSTANCES_CSV")
    p.add_argument("--ground-truth", metavar="CSV", help="csv with columns network, property, expected")
    p.add_argument("--out", metavar="RESULTS_CSV", help="write per-instance results as csv")
    p.add_argument("--json", metavar="REPORT", help="write per-instance results and the summary as JSON")
    p.add_argument("--timeout", type=float, metavar="S", help="override every instance's timeout")
    p.add_argument("--tightening", choices=["interval", "crown", "lp", "milp"], default="crown",
                   help="bound tightening stage, as for verify (default crown)")
    p.add_argument("--bounds", choices=["interval", "crown"], help=argparse.SUPPRESS)
    add_solver_argument(p)
    p.add_argument("--workers", type=int, default=0, metavar="N",
                   help="run instances on N worker processes (default: all cores; 1 runs them in this process)")
    p.add_argument("--filter", metavar="REGEX", help="only instances whose 'network property' matches REGEX")
    p.add_argument("--limit", type=int, metavar="N", help="only the first N instances (after --filter)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(run=run_bench)

    p = sub.add_parser("info", help="describe a network (and a property)",
                       description="Load a network (and optionally a property) and print what exactverify sees.")
    p.add_argument("network")
    p.add_argument("property", nargs="?")
    p.add_argument("--json", metavar="REPORT", help="write the description as JSON")
    p.set_defaults(run=run_info)

    for name in COMMAND_MODULES:
        _command_module(name).register(sub)
    return parser


def add_solver_argument(p) -> None:
    """`--solver` for every command that solves; the names come from the solver registry."""
    from ..solvers import SOLVERS
    p.add_argument("--solver", choices=SOLVERS, default="highs",
                   help=f"exact back end: {', '.join(SOLVERS)} (default highs)")


# Later commands live in their own modules (exactverify/commands/<name>.py), each with
# `register(subparsers)`; a module not written yet is simply absent.
COMMAND_MODULES = ("export", "robustness", "certify", "validate", "audit")


def _command_module(name: str):
    import importlib
    import importlib.util
    if importlib.util.find_spec(f"exactverify.cli.{name}") is None:
        return _Absent
    return importlib.import_module(f"exactverify.cli.{name}")


class _Absent:
    @staticmethod
    def register(sub):
        pass


def _version() -> str:
    from .._version import __version__
    return f"exactverify {__version__}"


# ---------------------------------------------------------------- verify

def run_verify(args) -> int:
    from ..loaders import load_network
    from ..loaders.vnnlib import load_vnnlib
    from ..search.verifier import verify

    net = load_network(args.network)
    prop = load_vnnlib(args.property)
    prop.validate(net)
    show = sys.stderr.isatty() if args.progress is None else args.progress
    from ..core.runtime import default_workers
    result = verify(net, prop, timeout=args.timeout, tightening=args.bounds or args.tightening,
                    solver=args.solver, progress=(lambda line: print(line, file=sys.stderr, flush=True)) if show else None,
                    workers=args.workers or default_workers())
    print(result.status)
    print(_summary_line(result), file=sys.stderr)
    if result.counterexample is not None:
        ce = result.counterexample
        print(f"  counterexample x = {_fmt_vec(ce.x)}")
        print(f"  network output y = {_fmt_vec(ce.y)}")
    if args.out:
        write_atomic(args.out, vnncomp_result_text(result))
    if args.json:
        write_atomic(args.json, json.dumps(result.as_dict(), indent=2, default=json_default) + "\n")
    return 0


def _summary_line(result) -> str:
    return f"{result.status}: {result.reason} ({result.seconds:.3f} s)"


def _fmt_vec(v, limit: int = 8) -> str:
    shown = ", ".join(f"{x:.6g}" for x in v[:limit])
    return f"[{shown}{', ...' if len(v) > limit else ''}] ({len(v)} values)"


def vnncomp_result_text(result) -> str:
    """The VNN-COMP result file: the verdict, then for sat ((X_0 v) ... (Y_0 v) ...)."""
    lines = [result.status]
    ce = result.counterexample
    if result.status == "sat" and ce is not None:
        items = [f"(X_{i} {float(v)!r})" for i, v in enumerate(ce.x)]
        items += [f"(Y_{j} {float(v)!r})" for j, v in enumerate(ce.y)]
        lines.append("(" + "\n ".join(items) + ")")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- bench

def run_bench(args) -> int:
    from ..metrics.bench import format_summary, run_instances

    report = run_instances(args.instances, ground_truth=args.ground_truth, timeout=args.timeout,
                           bounds=args.bounds or "crown", pattern=args.filter, limit=args.limit,
                           progress=not args.no_progress, workers=args.workers,
                           verify_options={"tightening": args.bounds or args.tightening, "solver": args.solver})
    print(format_summary(report))
    if args.out:
        write_atomic(args.out, report.to_csv())
    if args.json:
        write_atomic(args.json, json.dumps(report.as_dict(), indent=2, default=json_default) + "\n")
    return 0


# ---------------------------------------------------------------- info

def run_info(args) -> int:
    from ..loaders import load_network
    from ..loaders.vnnlib import load_vnnlib

    net = load_network(args.network)
    info = {"network": str(args.network), "layers": net.describe(), "inputs": net.input_size,
            "outputs": net.output_size, "relus": net.num_relus, "input_shape": list(net.input_shape)}
    if args.property:
        prop = load_vnnlib(args.property)
        prop.validate(net)
        info["property"] = str(args.property)
        info["cases"] = len(prop.cases)
        info["disjuncts"] = [len(c.disjuncts) for c in prop.cases]
    for k, v in info.items():
        print(f"{k}: {v}")
    if args.json:
        write_atomic(args.json, json.dumps(info, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
