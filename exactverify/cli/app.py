"""The `exactverify` command line: the top-level parser and the dispatch to one module per command.

Exit codes: 0 when the run completed, whatever the verdict; 2 on bad input
(one line on stderr naming the file or option and the problem, no traceback, and
no output file written; option values and output paths are checked before any
work starts); 130 when Ctrl-C or SIGTERM stopped the run (one line saying how much
had finished; what had finished is kept, every worker is stopped); 1 from `audit`
when some audited claim is WRONG, and otherwise from genuine bugs, which do show a
traceback.
"""

from __future__ import annotations

import argparse
import sys

from ..core.errors import InputError
from ..core.runtime import Interrupted, ignoring_interrupts, interrupts_as_keyboard
from . import audit, bench, certify, export, info, robustness, validate, verify

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

# in the order `exactverify --help` lists them
COMMANDS = (verify, bench, info, export, robustness, certify, validate, audit)


def main(argv=None) -> int:
    """Run the command line on `argv` (default: sys.argv[1:]) and return the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except InputError as e:  # an option value or output path refused as it is read (options.py), before any work
        print(f"exactverify: error: {e.message}", file=sys.stderr)
        return 2
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    try:
        with interrupts_as_keyboard():  # SIGTERM stops a run as Ctrl-C does: workers stopped, one line, 130
            return args.run(args)
    except InputError as e:
        print(f"exactverify: error: {e.message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        return _interrupted(e)
    except Exception as e:
        # a Ctrl-C that landed in a C extension's import, say, comes out as ImportError("initialization
        # failed") from KeyboardInterrupt: an interrupt all the same
        if not _from_interrupt(e):
            raise
        return _interrupted(e)


def _interrupted(e: BaseException) -> int:
    with ignoring_interrupts():  # a second Ctrl-C now would only add a traceback
        line = e.line() if isinstance(e, Interrupted) else "interrupted"
        print(f"exactverify: {line}", file=sys.stderr, flush=True)
    return 130


def _from_interrupt(e: BaseException) -> bool:
    seen = set()
    while e is not None and id(e) not in seen:
        if isinstance(e, KeyboardInterrupt):
            return True
        seen.add(id(e))
        e = e.__cause__ or e.__context__
    return False


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every command's subparser."""
    from .._version import __version__

    parser = argparse.ArgumentParser(prog="exactverify", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"exactverify {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        command.register(sub)
    return parser


if __name__ == "__main__":
    sys.exit(main())
