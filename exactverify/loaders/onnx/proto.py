"""ONNX messages without the `onnx` package's Python helpers, for start-up time.

`import onnx` also imports onnx.helper, whose dtype tables import ml_dtypes: 0.15 to 0.9 s, where
`exactverify verify` on a small instance should take 0.3 s in all. Reading a model needs only the
protobuf classes that onnx generates (onnx/onnx_ml_pb2.py, which imports google.protobuf alone),
so those are loaded by themselves when `onnx` is not imported yet, and the few helpers the loader
used (tensor to array, attribute value, element type to numpy dtype) are here for the common
element types. Anything else (external data, segments, bfloat16 and the float8/int4 types, a
big-endian machine) goes to onnx's own helpers, as before, so that what is read never changes.

When `onnx` is imported later in the same process, it registers the same generated file in the
same protobuf pool, which protobuf accepts, and its classes are these classes.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np

_MESSAGES = None  # the module whose ModelProto, TensorProto, AttributeProto the loader uses


def messages():
    """A module with onnx's ModelProto, TensorProto and AttributeProto: onnx's generated code alone, or onnx."""
    global _MESSAGES
    if _MESSAGES is None:
        _MESSAGES = _generated_module()
    return _MESSAGES


def _generated_module():
    if "onnx" not in sys.modules:
        try:
            spec = importlib.util.find_spec("onnx")  # finds the package without running its __init__
            folder = Path(spec.submodule_search_locations[0])
            # onnx_pb.py names the generated module this build of onnx uses (onnx_ml_pb2 or onnx_pb2);
            # loading another one than onnx will would clash in the protobuf pool
            if "from .onnx_ml_pb2 import *" in (folder / "onnx_pb.py").read_text():
                gen = importlib.util.spec_from_file_location("_exactverify_onnx_ml_pb2", folder / "onnx_ml_pb2.py")
                module = importlib.util.module_from_spec(gen)
                gen.loader.exec_module(module)
                module.ModelProto, module.TensorProto, module.AttributeProto  # noqa: B018 (present, or onnx)
                return module
        except Exception:  # another layout of the onnx package: use it whole
            pass
    import onnx
    return onnx


def parse_model(data: bytes):
    """A ModelProto from the bytes of an ONNX file (its external data not loaded), as onnx.load_model_from_string."""
    model = messages().ModelProto()
    decoded = model.ParseFromString(data)
    if decoded is not None and decoded != len(data):  # the check onnx's deserializer makes
        from google.protobuf.message import DecodeError
        raise DecodeError(f"Protobuf decoding consumed too few bytes: {decoded} out of {len(data)}")
    return model


def uses_external_data(model) -> bool:
    """Whether some tensor of the model (initializers, node attributes, subgraphs) keeps its data in another file."""
    external = messages().TensorProto.EXTERNAL
    stack = [model.graph]
    while stack:
        graph = stack.pop()
        tensors = list(graph.initializer)
        for node in graph.node:
            for a in node.attribute:
                tensors += [a.t, *a.tensors] if a.HasField("t") else list(a.tensors)
                stack += ([a.g] if a.HasField("g") else []) + list(a.graphs)
        if any(t.HasField("data_location") and t.data_location == external for t in tensors):
            return True
    return False


# element type -> numpy dtype, for the types read here; the others go to onnx.helper
_NP_DTYPES = {1: np.float32, 2: np.uint8, 3: np.int8, 4: np.uint16, 5: np.int16, 6: np.int32, 7: np.int64,
              9: np.bool_, 10: np.float16, 11: np.float64, 12: np.uint32, 13: np.uint64}
# where onnx stores each type when not as raw_data (helper.tensor_dtype_to_field) and as what
_STORAGE = {1: ("float_data", np.float32), 11: ("double_data", np.float64), 7: ("int64_data", np.int64),
            12: ("uint64_data", np.uint64), 13: ("uint64_data", np.uint64)}
_SIXTEEN_BITS = {4, 5, 10}  # uint16, int16, float16: bit patterns in int32_data


def np_dtype(elem_type: int) -> np.dtype:
    """The numpy dtype of an ONNX element type, as onnx.helper.tensor_dtype_to_np_dtype."""
    if elem_type in _NP_DTYPES:
        return np.dtype(_NP_DTYPES[elem_type])
    from onnx import helper
    return helper.tensor_dtype_to_np_dtype(elem_type)


def to_array(tensor) -> np.ndarray:
    """A TensorProto's values as a numpy array, as onnx.numpy_helper.to_array returns them."""
    dt = tensor.data_type
    if (dt not in _NP_DTYPES or tensor.HasField("segment") or sys.byteorder != "little"
            or (tensor.HasField("data_location") and tensor.data_location == messages().TensorProto.EXTERNAL)):
        from onnx import numpy_helper
        return numpy_helper.to_array(tensor)
    dtype = np.dtype(_NP_DTYPES[dt])
    dims = tuple(tensor.dims)
    if tensor.HasField("raw_data"):
        return np.frombuffer(tensor.raw_data, dtype=dtype).reshape(dims)
    if dt in _SIXTEEN_BITS:
        return np.array(tensor.int32_data, dtype=np.int32).view(np.uint32).astype(np.uint16).reshape(dims).view(dtype)
    if dt == 9:  # bool: bytes in int32_data
        return np.array(tensor.int32_data, dtype=np.int32).view(np.uint32).astype(np.uint8).view(dtype).reshape(dims)
    field, storage = _STORAGE.get(dt, ("int32_data", np.int32))
    return np.asarray(getattr(tensor, field), dtype=storage).astype(dtype).reshape(dims)


def attribute_value(a):
    """An AttributeProto's value, as onnx.helper.get_attribute_value."""
    A = messages().AttributeProto
    if a.ref_attr_name:
        raise ValueError(f"Cannot get value of reference attribute: {a}")
    single = {A.FLOAT: "f", A.INT: "i", A.STRING: "s", A.TENSOR: "t", A.SPARSE_TENSOR: "sparse_tensor",
              A.GRAPH: "g", A.TYPE_PROTO: "tp"}
    several = {A.FLOATS: "floats", A.INTS: "ints", A.STRINGS: "strings", A.TENSORS: "tensors",
               A.SPARSE_TENSORS: "sparse_tensors", A.GRAPHS: "graphs", A.TYPE_PROTOS: "type_protos"}
    if a.type in single:
        return getattr(a, single[a.type])
    if a.type in several:
        return list(getattr(a, several[a.type]))
    if a.type == A.UNDEFINED:
        return None
    raise ValueError(f"Unsupported ONNX attribute: {a}")
