"""`exactverify verify NETWORK PROPERTY`: decide one instance; the first line on stdout is the verdict."""

from __future__ import annotations

import sys

from . import options


def register(sub) -> None:
    """Add the `verify` command to the subparsers `sub`."""
    p = sub.add_parser("verify", help="decide one network/property instance",
                       description="Decide whether some input of PROPERTY drives NETWORK into the unsafe set. "
                                   "The first line on stdout is exactly one of: sat, unsat, timeout, unknown. "
                                   "--json also reports the unstable ReLUs per layer after each tightening stage.")
    options.add_network(p)
    options.add_property(p)
    options.add_timeout(p, per="instance")
    options.add_tightening(p)
    options.add_workers(p, over="an instance that one process does not decide within a few seconds (its input "
                                "box, or its disjuncts, cut into pieces)", default=None)
    options.add_solver(p)
    options.add_progress(p, default=None)
    options.add_out(p, metavar="RESULT")
    options.add_json(p)
    p.set_defaults(run=run)


def run(args) -> int:
    """Verify the instance, print the verdict (and a counterexample), write --out and --json."""
    from ..search.verifier import verify

    net, prop = options.load_instance(args)
    show = sys.stderr.isatty() if args.progress is None else args.progress
    result = verify(net, prop, timeout=args.timeout, tightening=options.tightening(args), solver=args.solver,
                    progress=(lambda line: print(line, file=sys.stderr, flush=True)) if show else None,
                    workers=options.resolve_workers(args.workers))
    print(result.status)
    print(f"{result.status}: {result.reason} ({result.seconds:.3f} s)", file=sys.stderr)
    if result.counterexample is not None:
        ce = result.counterexample
        print(f"  counterexample x = {_fmt_vec(ce.x)}")
        print(f"  network output y = {_fmt_vec(ce.y)}")
    if args.out:
        from ..core.files import write_atomic
        write_atomic(args.out, vnncomp_result_text(result))
    if args.json:
        options.write_json(args.json, result.as_dict())
    return 0


def vnncomp_result_text(result) -> str:
    """The VNN-COMP result file: the verdict, then for sat ((X_0 v) ... (Y_0 v) ...)."""
    lines = [result.status]
    ce = result.counterexample
    if result.status == "sat" and ce is not None:
        items = [f"(X_{i} {float(v)!r})" for i, v in enumerate(ce.x)]
        items += [f"(Y_{j} {float(v)!r})" for j, v in enumerate(ce.y)]
        lines.append("(" + "\n ".join(items) + ")")
    return "\n".join(lines) + "\n"


def _fmt_vec(v, limit: int = 8) -> str:
    shown = ", ".join(f"{x:.6g}" for x in v[:limit])
    return f"[{shown}{', ...' if len(v) > limit else ''}] ({len(v)} values)"
