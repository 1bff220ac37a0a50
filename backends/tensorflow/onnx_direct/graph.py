"""The graph builder the direct writer's emitters share: ONNX nodes named
``<scope>/n<k>_<Op>`` in emission order (the scope is the asnc scope of the Keras layer being
written, `onnx_scopes.layer_scopes`), outputs ``<node>:<j>``, weights as initializers named
by their Keras variable path, small constants (shapes, scalars) shared and named ``c<k>``.

Everything is a function of the model alone, so two writes give the same bytes.
"""

from __future__ import annotations

import contextlib

import numpy as np
from onnx import TensorProto, helper, numpy_helper

__all__ = ["Graph", "UnsupportedLayer", "INT_MAX"]

INT_MAX = np.iinfo(np.int64).max  # a Slice end meaning "to the end"
_SMALL = 16  # constants of at most this many values are shared by content


class UnsupportedLayer(Exception):
    """A layer (or a layer option) the direct writer has no emitter for."""

    def __init__(self, layer: str, kind: str, reason: str):
        super().__init__(f"{layer} ({kind}): {reason}")
        self.layer, self.kind, self.reason = layer, kind, reason


class Graph:
    """Nodes and initializers of one ONNX graph, written in order, for one opset."""

    def __init__(self, opset: int):
        self.opset = opset
        self.nodes: list = []
        self.initializers: list = []
        self._scope = ""
        self._shared: dict[tuple, str] = {}
        self._names: set[str] = set()

    @contextlib.contextmanager
    def scope(self, scope: str):
        outer, self._scope = self._scope, scope
        try:
            yield
        finally:
            self._scope = outer

    # -- nodes -------------------------------------------------------------------------------
    def op(self, op_type: str, inputs: list[str], output: str | None = None, **attrs) -> str:
        """One node with one output; ``output`` names it (a graph output), else
        ``<node>:0``."""
        k = len(self.nodes)
        name = f"{self._scope}/n{k}_{op_type}" if self._scope else f"n{k}_{op_type}"
        out = output or f"{name}:0"
        self.nodes.append(helper.make_node(op_type, list(inputs), [out], name=name, **attrs))
        return out

    def prune(self, outputs: list[str]) -> int:
        """Drop the nodes no graph output needs, and the initializers only they read; return
        how many nodes went. Emitters write each step whole, so some results go unused (the
        flow layer's last iteration updates its dual variables, which nothing reads):
        ONNX Runtime would run them all the same. The order of the rest is kept."""
        producer = {out: i for i, node in enumerate(self.nodes) for out in node.output}
        live: set[int] = set()
        stack = [producer[o] for o in outputs if o in producer]
        while stack:
            i = stack.pop()
            if i not in live:
                live.add(i)
                stack.extend(producer[t] for t in self.nodes[i].input if t in producer)
        dropped = len(self.nodes) - len(live)
        self.nodes = [node for i, node in enumerate(self.nodes) if i in live]
        read = {t for node in self.nodes for t in node.input}
        self.initializers = [t for t in self.initializers if t.name in read]
        return dropped

    # -- constants ---------------------------------------------------------------------------
    def weight(self, value: np.ndarray, name: str) -> str:
        """An initializer named ``name`` (a Keras variable path; made unique if it is not)."""
        base, k = name, 1
        while name in self._names:
            name, k = f"{base}_{k}", k + 1
        self._names.add(name)
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def const(self, value, dtype: type = np.float32) -> str:
        """A small constant (a scalar, a shape, axes), shared by every use of equal values."""
        arr = np.asarray(value, dtype=dtype)
        if arr.size > _SMALL:
            return self.weight(arr, f"c{len(self.initializers)}")
        key = (arr.dtype.str, arr.shape, arr.tobytes())
        name = self._shared.get(key)
        if name is None:
            name = f"c{len(self._shared)}"
            while name in self._names:
                name += "_"
            self._names.add(name)
            self.initializers.append(numpy_helper.from_array(arr, name))
            self._shared[key] = name
        return name

    def ints(self, values) -> str:
        return self.const(values, np.int64)

    # -- ops whose form depends on the opset ------------------------------------------------
    def reduce(self, op_type: str, x: str, axes: list[int] | None, keepdims: bool,
               output: str | None = None) -> str:
        """``op_type`` (ReduceMean, ReduceMax, ...) over ``axes`` (None: all). ReduceSum takes
        its axes as an input from opset 13, the others from opset 18."""
        keep = int(keepdims)
        if axes is None:
            return self.op(op_type, [x], output, keepdims=keep)
        if op_type == "ReduceSum" or self.opset >= 18:
            return self.op(op_type, [x, self.ints(axes)], output, keepdims=keep)
        return self.op(op_type, [x], output, axes=list(axes), keepdims=keep)

    def slice(self, x: str, axis: int, start: int, end: int) -> str:
        return self.op("Slice", [x, self.ints([start]), self.ints([end]), self.ints([axis])])

    def pad(self, x: str, rank: int, axis: int, before: int, after: int) -> str:
        """Zero padding of one axis."""
        pads = [0] * (2 * rank)
        pads[axis], pads[rank + axis] = before, after
        return self.op("Pad", [x, self.ints(pads)])

    def reshape(self, x: str, shape) -> str:
        return self.op("Reshape", [x, self.ints(list(shape))])

    def transpose(self, x: str, perm) -> str:
        return self.op("Transpose", [x], perm=list(perm))


def value_info(name: str, dims) -> object:
    """A float32 graph input or output; ``None`` dimensions become the symbolic ``batch``."""
    return helper.make_tensor_value_info(
        name, TensorProto.FLOAT, ["batch" if d is None else int(d) for d in dims])
