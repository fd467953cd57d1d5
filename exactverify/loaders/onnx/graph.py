"""Walking an ONNX graph: the nodes the output needs, the supported operators and
attributes, the declared input and output shapes, and each node sent to its
folder (constant inputs only) or its lowering (onto the chain).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...core.errors import InputError
from ...core.network import Network
from .chain import Chain, LoweringError, prod
from .folding import FOLDERS
from .ops import LOWERED_OPS, LOWERINGS
from .proto import attribute_value, messages, to_array


# Attributes we understand for each lowered op. Anything else is refused rather
# than ignored: an unknown attribute may change what the op computes.
_KNOWN_ATTRS = {
    "Identity": set(), "Expand": set(), "Neg": set(), "Relu": set(), "MatMul": set(),
    "GlobalAveragePool": set(), "GlobalMaxPool": set(),
    "Dropout": {"ratio", "seed", "is_test"},
    "Reshape": {"shape", "allowzero"}, "Flatten": {"axis"}, "Squeeze": {"axes"}, "Unsqueeze": {"axes"},
    "Transpose": {"perm"}, "Slice": {"starts", "ends", "axes"}, "Gather": {"axis"},
    "Add": {"broadcast"}, "Sub": {"broadcast"}, "Mul": {"broadcast"}, "Div": {"broadcast"},
    "Gemm": {"alpha", "beta", "transA", "transB", "broadcast"},
    "Conv": {"auto_pad", "dilations", "group", "kernel_shape", "pads", "strides"},
    "BatchNormalization": {"epsilon", "momentum", "training_mode", "spatial", "is_test"},
    "AveragePool": {"auto_pad", "ceil_mode", "count_include_pad", "dilations", "kernel_shape", "pads", "strides"},
    "MaxPool": {"auto_pad", "ceil_mode", "dilations", "kernel_shape", "pads", "storage_order", "strides"},
    "ReduceMax": {"axes", "keepdims", "noop_with_empty_axes"},
}
_LEGACY_ATTRS = {"consumed_inputs"}  # an opset-1 memory hint with no effect on the result

_FLOAT_TYPES = {1, 11, 10, 16}  # TensorProto.FLOAT, DOUBLE, FLOAT16, BFLOAT16


class GraphLowering:
    """Lowers one ONNX model into a `Network`; problems are raised as InputError naming `path`."""

    def __init__(self, model, path: Path):
        """`model`: an onnx ModelProto."""
        self.model = model
        self.graph = model.graph
        self.path = path
        self.consts: dict[str, np.ndarray] = {}
        self.shapes: dict[str, tuple] = {}  # shapes of the dynamic tensors
        self.current: str = ""  # the dynamic tensor the chain has reached

    def fail(self, problem: str):
        """Raise `problem` as an InputError naming the file."""
        raise InputError(self.path, problem)

    def run(self) -> Network:
        """Fold the constants, lower the chain from the one input to the one output, and return the network."""
        graph = self.graph
        self._load_initializers()
        inp = self._dynamic_input()
        if len(graph.output) != 1:
            self.fail(f"the graph has {len(graph.output)} outputs; exactly one is supported")
        output = graph.output[0].name
        try:
            input_shape = _declared_input_shape(inp)
        except LoweringError as e:
            self.fail(str(e))
        self.shapes[inp.name] = input_shape
        self.current = inp.name

        nodes = self._needed_nodes(output)
        self._check_ops(nodes, inp.name)
        used = {name for node in nodes for name in node.input if name} | {output}
        self.chain = Chain(prod(input_shape))
        with np.errstate(all="ignore"):
            for node in nodes:
                try:
                    self._process(node, used)
                except LoweringError as e:
                    self.fail(f"{_describe(node)}: {e}")
                except Exception as e:  # a malformed node we did not anticipate
                    self.fail(f"{_describe(node)}: cannot be lowered ({one_line(e)})")

        if output not in self.shapes:
            self.fail(f"the output '{output}' does not depend on the input '{inp.name}'")
        if output != self.current:
            self.fail(f"the output '{output}' is not the end of the computation chain")
        output_shape = self.shapes[output]
        self._check_declared_output(graph.output[0], output_shape)
        opset = next((o.version for o in self.model.opset_import if o.domain in ("", "ai.onnx")), None)
        return Network(self.chain.finish(), tuple(input_shape), tuple(output_shape), str(self.path),
                       {"input_name": inp.name, "output_name": output, "opset": opset})

    # -- graph structure ----------------------------------------------------

    def _load_initializers(self):
        for init in self.graph.initializer:
            try:
                self.consts[init.name] = to_array(init)
            except Exception as e:
                self.fail(f"initializer '{init.name}' cannot be read ({one_line(e)})")
        if self.graph.sparse_initializer:
            self.fail("sparse initializers are not supported")

    def _dynamic_input(self):
        # Old exporters (IR 3, e.g. ACAS Xu) also list every initializer as a graph input.
        dynamic = [i for i in self.graph.input if i.name not in self.consts]
        if len(dynamic) != 1:
            names = ", ".join(f"'{i.name}'" for i in dynamic) or "none"
            self.fail(f"the graph has {len(dynamic)} inputs without initializers ({names}); "
                      f"exactly one network input is supported")
        return dynamic[0]

    def _needed_nodes(self, output: str) -> list:
        """The nodes the output depends on, in file order."""
        producer = {}
        for i, node in enumerate(self.graph.node):
            for name in node.output:
                if name in producer:
                    self.fail(f"tensor '{name}' is produced by more than one node")
                if name:
                    producer[name] = i
        needed, stack = set(), [output]
        while stack:
            i = producer.get(stack.pop())
            if i is not None and i not in needed:
                needed.add(i)
                stack.extend(name for name in self.graph.node[i].input if name)
        return [self.graph.node[i] for i in sorted(needed)]

    def _check_ops(self, nodes, input_name: str):
        """Check every tensor is defined before use, and report all unsupported operators at once."""
        defined = set(self.consts) | {input_name}
        dynamic = {input_name}
        unsupported = []
        for node in nodes:
            for name in node.input:
                if name and name not in defined:
                    self.fail(f"{_describe(node)} reads tensor '{name}', which is not defined before it")
            is_dynamic = node.op_type != "Shape" and any(name in dynamic for name in node.input)
            known = LOWERED_OPS if is_dynamic else FOLDERS
            if node.domain not in ("", "ai.onnx") or node.op_type not in known:
                op = node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}.{node.op_type}"
                unsupported.append(f"{op} ({_describe(node, with_op=False)})")
            if is_dynamic:
                dynamic.update(node.output)
            defined.update(node.output)
        if unsupported:
            self.fail(f"unsupported operator(s): {', '.join(unsupported)}. On the input-dependent path we "
                      f"support {', '.join(sorted(LOWERED_OPS))}")

    def _check_declared_output(self, value_info, shape: tuple):
        tt = value_info.type.tensor_type
        if not value_info.type.HasField("tensor_type") or not tt.HasField("shape"):
            return
        dims = [d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim]
        if len(dims) != len(shape) or any(d not in (None, 0, s) for d, s in zip(dims, shape)):
            declared = [d if d else "?" for d in dims]
            self.fail(f"the output '{value_info.name}' is declared with shape {declared} "
                      f"but the graph computes {list(shape)}")

    # -- nodes --------------------------------------------------------------

    def _process(self, node, used: set):
        dyn = [k for k, name in enumerate(node.input) if name in self.shapes]
        if node.op_type == "Shape" or not dyn:
            self._fold(node)
            return
        if len(dyn) > 1:
            names = " and ".join(f"'{node.input[k]}'" for k in dyn)
            raise LoweringError(f"combines two input-dependent tensors ({names}); graphs with branches "
                                f"(e.g. residual connections) are not supported, only a single chain")
        k = dyn[0]
        if node.input[k] != self.current:
            raise LoweringError(f"reads '{node.input[k]}' after the chain has moved on to '{self.current}'; "
                                f"graphs with branches (e.g. residual connections) are not supported, "
                                f"only a single chain")
        for extra in node.output[1:]:
            if extra in used:
                raise LoweringError(f"uses the secondary output '{extra}', which is not supported")
        attrs = _attributes(node)
        unknown = set(attrs) - _KNOWN_ATTRS[node.op_type] - _LEGACY_ATTRS
        if unknown:
            raise LoweringError(f"unsupported attribute(s) {', '.join(sorted(unknown))}")
        consts = [self.consts.get(name) if name else None for name in node.input]
        lower = LOWERINGS[node.op_type]
        out_shape = lower(self.chain, k, self.shapes[node.input[k]], consts, attrs)
        self.current = node.output[0]
        self.shapes[self.current] = tuple(int(d) for d in out_shape)

    def _fold(self, node):
        ins = []
        for name in node.input:
            if not name:
                ins.append(None)
            elif name in self.shapes:  # only Shape gets here: a zero-copy stand-in with the right shape
                ins.append(np.broadcast_to(np.float32(0), self.shapes[name]))
            else:
                ins.append(self.consts[name])
        outs = FOLDERS[node.op_type](ins, _attributes(node))
        for name, value in zip(node.output, outs):
            if name:
                self.consts[name] = np.asarray(value)


def _declared_input_shape(value_info) -> tuple:
    if not value_info.type.HasField("tensor_type"):
        raise LoweringError(f"input '{value_info.name}' is not a tensor")
    tt = value_info.type.tensor_type
    if tt.elem_type not in _FLOAT_TYPES:
        raise LoweringError(f"input '{value_info.name}' has element type "
                            f"{messages().TensorProto.DataType.Name(tt.elem_type)}; a float tensor is expected")
    if not tt.HasField("shape"):
        raise LoweringError(f"input '{value_info.name}' has no declared shape")
    dims = []
    for i, d in enumerate(tt.shape.dim):
        if d.HasField("dim_value") and d.dim_value > 0:
            dims.append(d.dim_value)
        elif i == 0:
            dims.append(1)  # a symbolic batch dimension: we verify one sample at a time
        else:
            raise LoweringError(f"dimension {i} of input '{value_info.name}' is "
                                f"{repr(d.dim_param) if d.dim_param else 'unknown'}; only the leading (batch) "
                                f"dimension may be symbolic")
    return tuple(dims)


def _describe(node, with_op: bool = True) -> str:
    if node.name:
        where = f"node '{node.name}'"
    else:
        where = f"unnamed node producing '{node.output[0] if node.output else '?'}'"
    return f"{node.op_type} {where}" if with_op else where


def _attributes(node) -> dict:
    out = {}
    tensor_proto = messages().TensorProto
    for a in node.attribute:
        v = attribute_value(a)
        if isinstance(v, bytes):
            v = v.decode()
        elif isinstance(v, tensor_proto):
            v = to_array(v)
        elif isinstance(v, list):
            v = [x.decode() if isinstance(x, bytes) else x for x in v]
        out[a.name] = v
    return out


def one_line(e: Exception) -> str:
    """An exception as one line for an error message: its type and its first 200 characters."""
    text = " ".join(str(e).split())
    if len(text) > 200:
        text = text[:200] + "..."
    return f"{type(e).__name__}: {text}" if text else type(e).__name__
