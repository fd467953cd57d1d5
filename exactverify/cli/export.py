"""`exactverify export NETWORK PROPERTY --format lp|mps|smt2 -o FILE`: the encodings, for other solvers.

What is written is the problem `verify` hands its solver for one (case,
disjunct) over the case's whole input box: the simplified network, bounds
tightened as `--tightening` says (`exactverify.search.tightening.tightened_bounds`,
falling back to intervals where CROWN is unavailable, as `verify` does), then
`build_milp` (lp, mps: encodings/writers.py) or `build_smt` (smt2). (On
low-dimensional inputs `verify` may instead split the box and solve the same
encoding over sub-boxes; the exported whole-box problem has the same answer.)

One file per (case, disjunct). A property with a single (case, disjunct), or a
selection of one with `--case I --disjunct J`, is written to FILE itself;
otherwise FILE's name gets `.c{I}.d{J}` before its extension
(`toy.lp` -> `toy.c0.d0.lp`, `toy.c0.d1.lp`, ...). The written paths are
printed one per line.

Reading the answers: the property is `unsat` (safe) iff EVERY file is
infeasible (MILP) / unsat (SMT). A feasible file is a candidate counterexample
(its x columns / x variables), which `verify` would still re-check on the
network before saying `sat`.
"""

from __future__ import annotations

import time
from pathlib import Path

from . import options

FORMATS = ("lp", "mps", "smt2")


def register(sub) -> None:
    """Add the `export` command to the subparsers `sub`."""
    p = sub.add_parser(
        "export", help="write the MILP (lp, mps) or SMT (smt2) encoding for other solvers",
        description="Write the exact problem verify would solve for each (case, disjunct) of PROPERTY: the big-M "
                    "MILP as CPLEX LP or free MPS, or the SMT-LIB2 (QF_LRA) encoding. The property is unsat iff "
                    "every written problem is infeasible (unsat).")
    options.add_network(p)
    options.add_property(p)
    p.add_argument("--format", choices=FORMATS, required=True, help="lp, mps (MILP) or smt2 (SMT-LIB2)")
    p.add_argument("-o", "--output", type=options.output_file("-o/--output"), required=True, metavar="FILE",
                   help="output file; with several (case, disjunct) parts, FILE.c{I}.d{J}.EXT per part")
    options.add_tightening(p)
    options.add_timeout(p, per="instance, as for verify: lp and milp tightening use 30%% of it")
    p.add_argument("--case", type=int, metavar="I", help="only case I (0-based)")
    p.add_argument("--disjunct", type=int, metavar="J", help="only disjunct J (0-based) of each selected case")
    options.add_json(p)
    p.set_defaults(run=run)


def run(args) -> int:
    """Write one encoding per selected (case, disjunct), print the paths, write --json."""
    from ..core.files import write_atomic

    net, prop = options.load_instance(args)
    parts = select_parts(prop, args.case, args.disjunct, args.property)
    paths = output_paths(args.output, parts, len(parts) == 1)
    options.check_outputs(*paths, args.json)  # every destination before tightening and writing any
    stage = options.tightening(args)
    texts = export_texts(net, prop, args.format, parts, tightening=stage, timeout=args.timeout)
    for path, text in zip(paths, texts):
        write_atomic(path, text)
        print(path)
    if args.json:
        options.write_json(args.json, {
            "network": str(args.network), "property": str(args.property), "format": args.format,
            "tightening": stage, "timeout": args.timeout,
            "files": [{"case": ci, "disjunct": di, "path": path} for (ci, di), path in zip(parts, paths)]})
    return 0


def select_parts(prop, case=None, disjunct=None, source=None) -> list:
    """[(case index, disjunct index)] selected; InputError for indices that do not exist."""
    from ..core.errors import InputError

    if case is not None and not 0 <= case < len(prop.cases):
        raise InputError(source, f"--case {case}: the property has {len(prop.cases)} case(s)")
    cases = range(len(prop.cases)) if case is None else [case]
    parts = []
    for ci in cases:
        n = len(prop.cases[ci].disjuncts)
        if disjunct is not None:
            if not 0 <= disjunct < n:
                raise InputError(source, f"--disjunct {disjunct}: case {ci} has {n} disjunct(s)")
            parts.append((ci, disjunct))
        else:
            parts += [(ci, di) for di in range(n)]
    if not parts:
        raise InputError(source, "the property has no output disjunct to export")
    return parts


def output_paths(output, parts, single: bool) -> list:
    """The file of each part: FILE itself for a single part, else FILE with .c{I}.d{J} before its extension."""
    output = Path(output)
    if single:
        return [str(output)]
    return [str(output.with_name(f"{output.stem}.c{ci}.d{di}{output.suffix}")) for ci, di in parts]


def case_bounds(net, case, tightening: str = "crown", timeout: float = 60.0):
    """The bounds verify uses over the case box (simplified network), with its fallback to intervals."""
    from ..bounds.crown import compute_bounds
    from ..search.tightening import tightened_bounds

    deadline = time.perf_counter() + 0.3 * timeout
    try:
        return tightened_bounds(net, case.lower, case.upper, tightening, deadline=deadline)
    except NotImplementedError:  # CROWN not available for some layer
        return compute_bounds(net, case.lower, case.upper, "interval")


def export_models(network, prop, fmt: str, parts, tightening: str = "crown", timeout: float = 60.0) -> list:
    """The MilpModel (lp, mps) or SmtModel (smt2) of each (case, disjunct) in `parts`."""
    from ..encodings.milp import build_milp
    from ..encodings.smt import build_smt

    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r} (choose from {', '.join(FORMATS)})")
    net = network.simplified()  # what verify encodes
    bounds = {}
    models = []
    for ci, di in parts:
        case = prop.cases[ci]
        if ci not in bounds:
            bounds[ci] = case_bounds(net, case, tightening, timeout)
        build = build_smt if fmt == "smt2" else build_milp
        models.append(build(net, bounds[ci], case, case.disjuncts[di]))
    return models


def export_texts(network, prop, fmt: str, parts, tightening: str = "crown", timeout: float = 60.0) -> list:
    """The text of each part's file: the model in `fmt`, headed by comments saying what it is."""
    from ..encodings.writers import to_lp, to_mps

    models = export_models(network, prop, fmt, parts, tightening, timeout)
    texts = []
    for (ci, di), model in zip(parts, models):
        head = [f"exactverify export: network {network.source or '?'}, property {prop.source or '?'}",
                f"case {ci} of {len(prop.cases)}, disjunct {di} of {len(prop.cases[ci].disjuncts)}; "
                f"tightening {tightening}",
                "the property is unsat iff every exported (case, disjunct) problem is infeasible"]
        if fmt == "smt2":
            model.comments = head + model.comments
            texts.append(model.to_smtlib2())
        else:
            head += [f"{model.num_cols} columns ({model.num_binaries} binaries), {model.num_rows} rows; "
                     f"minimise s with s <= {model.tolerance!r} (the proof margin)"]
            texts.append(to_lp(model, head) if fmt == "lp" else to_mps(model, head))
    return texts
