"""The public facade: the functions a researcher calls, each a thin door into the layer that does
the work. `exactverify/__init__.py` re-exports these lazily, so `import exactverify` stays cheap.

    from exactverify import load_network, load_vnnlib, verify
    result = verify(load_network("net.onnx"), load_vnnlib("prop.vnnlib"), timeout=60)
"""

from __future__ import annotations

from .core.network import Network
from .core.property import Property
from .core.result import VerificationResult


def load_network(path_or_module, input_shape=None) -> Network:
    """Load an ONNX file, a .nnet file, or a torch.nn.Module (with `input_shape`) into the IR."""
    from .loaders import load_network as _load
    return _load(path_or_module, input_shape=input_shape)


def load_vnnlib(path, n_inputs=None, n_outputs=None) -> Property:
    """Parse a VNN-LIB property file into its normal form (a disjunction of cases).

    n_inputs, n_outputs: the sizes the property must declare; n_inputs may also be the network the
    property is for (`load_vnnlib("prop.vnnlib", net)`), which gives both."""
    from .loaders.vnnlib import load_vnnlib as _load
    if hasattr(n_inputs, "input_size") and hasattr(n_inputs, "output_size"):
        n_inputs, n_outputs = n_inputs.input_size, n_inputs.output_size
    return _load(path, n_inputs=n_inputs, n_outputs=n_outputs)


def load_dataset(path, scale: float = 1.0, limit: int | None = None):
    """(X, y) from a .npz (arrays x and y) or a csv of rows `label,p0,p1,...` (pixels times `scale`)."""
    from .loaders.datasets import load_dataset as _load
    return _load(path, scale=scale, limit=limit)


def verify(network, prop, timeout: float = 60.0, **options) -> VerificationResult:
    """Decide whether some input of `prop` drives `network` into the unsafe output set."""
    from .search.verifier import verify as _verify
    return _verify(network, prop, timeout=timeout, **options)


def pointwise_robustness(network, x0, label=None, norm: str = "inf", **options):
    """Bastani et al.'s pointwise robustness rho(x0) as a bracket [lower, upper], exact when closed."""
    from .metrics.radius import pointwise_robustness as _rho
    return _rho(network, x0, label=label, norm=norm, **options)


def dataset_robustness(network, X, y, norm: str = "inf", **options) -> dict:
    """rho for every point of a data set, and adversarial frequency and severity per eps."""
    from .metrics.dataset import dataset_robustness as _run
    return _run(network, X, y, norm=norm, **options)


def validate(network, X, y, eps_list, methods=("ibp", "crown"), **options):
    """Each incomplete method's answer next to the exact one, for every point and eps."""
    from .metrics.validate import validate as _validate
    return _validate(network, X, y, eps_list, methods=methods, **options)
