"""`exactverify info NETWORK [PROPERTY]`: what exactverify makes of a network (and a property)."""

from __future__ import annotations

from . import options


def register(sub) -> None:
    """Add the `info` command to the subparsers `sub`."""
    p = sub.add_parser("info", help="describe a network (and a property)",
                       description="Load a network (and optionally a property) and print what exactverify sees.")
    options.add_network(p)
    options.add_property(p, optional=True)
    options.add_json(p)
    p.set_defaults(run=run)


def run(args) -> int:
    """Load the files, print one `key: value` line per fact, write --json."""
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
        options.write_json(args.json, info)
    return 0
