"""One entry point for every network source: ONNX files, .nnet files, torch modules."""

from __future__ import annotations

import os
import sys

from ..core.errors import InputError, require_file
from ..core.network import Network


def load_network(path_or_module, input_shape=None) -> Network:
    """Load a network from a `.onnx` / `.onnx.gz` / `.nnet` file or a torch module.

    `input_shape` is required for a torch module (see `from_torch`). For a file
    it is optional and, when given, must have as many elements as the file's
    input. The result has passed `Network.validate()`. Problems are InputErrors.
    """
    if _is_torch_module(path_or_module):
        if input_shape is None:
            raise InputError(None, "input_shape is required to load a torch module")
        from .torch_module import from_torch

        return from_torch(path_or_module, input_shape).validate()

    if not isinstance(path_or_module, (str, os.PathLike)):
        raise InputError(None, f"cannot load a network from a {type(path_or_module).__name__}; "
                               f"expected a .onnx or .nnet path or a torch module")
    path = require_file(path_or_module, "a network file")
    name = path.name.lower()
    if name.endswith(".onnx") or name.endswith(".onnx.gz"):
        from .onnx import load_onnx

        network = load_onnx(path)
    elif name.endswith(".nnet"):
        from .nnet import load_nnet

        network = load_nnet(path)
    else:
        raise InputError(path, f"unknown network file type '{path.suffix}' (expected .onnx, .onnx.gz or .nnet)")

    if input_shape is not None:
        expected = 1
        for d in input_shape:
            expected *= int(d)
        if expected != network.input_size:
            raise InputError(path, f"input_shape {list(input_shape)} has {expected} elements but the network "
                                   f"takes {network.input_size} inputs")
    return network.validate()


def _is_torch_module(obj) -> bool:
    # Without importing torch: if torch was never imported, obj cannot be a torch module.
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(obj, torch.nn.Module)
