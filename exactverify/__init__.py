"""exactverify: exact answers about small piecewise-linear neural networks.

    from exactverify import load_network, load_vnnlib, verify
    net = load_network("net.onnx")
    prop = load_vnnlib("prop.vnnlib")
    result = verify(net, prop, timeout=60)
    result.status          # "sat", "unsat", "timeout" or "unknown"
    result.counterexample  # for "sat": x, y (float64) and y_float32, re-checked

`sat` is only ever returned with a counterexample that re-checks on the
original network in float64 and float32; `unsat` only from a solver proof
(infeasible status or proven dual bound) or from sound, outward-padded bounds.
"""

from ._version import __version__
from .core.errors import InputError
from .core.network import Affine, MaxGroups, Network, ReLU
from .core.property import Case, OutputConstraint, Property
from .core.result import VerificationResult

_API = ("load_network", "load_vnnlib", "load_dataset", "verify", "pointwise_robustness", "dataset_robustness",
        "validate")

__all__ = [*_API, "InputError", "Network", "Affine", "ReLU", "MaxGroups", "Property", "Case", "OutputConstraint",
           "VerificationResult", "__version__"]


def __getattr__(name):
    # the facade's functions load their layers on first use: `import exactverify` stays cheap
    if name in _API:
        from . import api
        return getattr(api, name)
    raise AttributeError(f"module 'exactverify' has no attribute {name!r}")
