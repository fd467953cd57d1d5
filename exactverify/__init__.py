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

from .errors import InputError
from .network import Affine, MaxGroups, Network, ReLU
from .property import Case, OutputConstraint, Property
from .result import VerificationResult

__version__ = "0.1.0"

__all__ = [
    "load_network", "load_vnnlib", "verify", "InputError", "Network", "Affine", "ReLU", "MaxGroups",
    "Property", "Case", "OutputConstraint", "VerificationResult",
]


def load_network(path_or_module, input_shape=None) -> Network:
    """Load an ONNX file, a .nnet file, or a torch.nn.Module (with `input_shape`) into the IR."""
    from .loading import load_network as _load
    return _load(path_or_module, input_shape=input_shape)


def load_vnnlib(path, n_inputs=None, n_outputs=None) -> Property:
    """Parse a VNN-LIB property file into its normal form (a disjunction of cases)."""
    from .vnnlib import load_vnnlib as _load
    return _load(path, n_inputs=n_inputs, n_outputs=n_outputs)


def verify(network, prop, timeout: float = 60.0, **options) -> VerificationResult:
    """Decide whether some input of `prop` drives `network` into the unsafe output set."""
    from .verifier import verify as _verify
    return _verify(network, prop, timeout=timeout, **options)
