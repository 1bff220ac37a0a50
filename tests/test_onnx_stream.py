"""`onnx_stream.stream_model` writes exactly the bytes protobuf's own encoder gives for the
whole model (the independent fact), one weight tensor at a time.

No TensorFlow: the models are built with `onnx.helper`; the direct writer's real output goes
through the same function in every compile test (`test_export`, `test_onnx_direct`).
"""

from __future__ import annotations

import hashlib
import io

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from asn.backends.tensorflow import onnx_stream
from asn.backends.tensorflow.onnx_stream import stream_model


def _model(weights: dict[str, np.ndarray], in_graph: dict[str, np.ndarray] | None = None):
    """y = x + sum of the weights (each broadcast to [2, 3]), with every optional field a
    real file has: doc strings, metadata, producer, value_info."""
    names = list(in_graph or {}) + list(weights)
    nodes, last = [], "x"
    for k, name in enumerate(names):
        reduced = f"r{k}"
        nodes.append(helper.make_node("ReduceSum", [name], [reduced], keepdims=0,
                                      name=f"n{k}_ReduceSum"))
        out = "y" if k == len(names) - 1 else f"s{k}"
        nodes.append(helper.make_node("Add", [last, reduced], [out], name=f"n{k}_Add"))
        last = out
    graph = helper.make_graph(
        nodes, "net", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])],
        initializer=[numpy_helper.from_array(v, k) for k, v in (in_graph or {}).items()],
        doc_string="graph doc",
        value_info=[helper.make_tensor_value_info("s0", TensorProto.FLOAT, ["batch", 3])]
        if len(names) > 1 else [])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                              ir_version=8, producer_name="asnc", doc_string="model doc")
    model.model_version = 3
    entry = model.metadata_props.add()
    entry.key, entry.value = "asnc.network", "net <&>"
    return model


def _whole(model, weights):
    full = onnx.ModelProto()
    full.CopyFrom(model)
    full.graph.initializer.extend(numpy_helper.from_array(v, k) for k, v in weights.items())
    return full.SerializeToString(deterministic=True)


def _streamed(model, weights):
    tensors = [numpy_helper.from_array(v, k) for k, v in weights.items()]
    out = io.BytesIO()
    digest = stream_model(model, tensors, out)
    assert tensors == []  # handed over: each tensor released once written
    return out.getvalue(), digest


WEIGHTS = {
    "big": np.random.default_rng(0).standard_normal((300, 200)).astype(np.float32),
    "tiny": np.float32([1.5]),
    "empty": np.zeros((0, 3), np.float32),
    "ints": np.arange(6, dtype=np.int64).reshape(2, 3).astype(np.float32),
}


def test_stream_equals_protobuf_and_runs():
    model = _model(WEIGHTS)
    data, digest = _streamed(model, WEIGHTS)
    assert data == _whole(model, WEIGHTS)
    assert digest == hashlib.sha256(data).hexdigest()
    onnx.checker.check_model(data, full_check=True)
    x = np.ones((2, 3), np.float32)
    got = ort.InferenceSession(data, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    want = x + sum(float(v.sum()) for v in WEIGHTS.values())
    assert np.allclose(got, want, atol=1e-3)  # float32 sums of 60,000 values


def test_tensors_appended_after_those_already_in_the_graph():
    first = {"a": np.float32([[1, 2, 3]]), "b": np.float32([4])}
    model = _model(WEIGHTS, in_graph=first)
    data, _ = _streamed(model, WEIGHTS)
    assert data == _whole(model, WEIGHTS)
    assert [t.name for t in onnx.load_from_string(data).graph.initializer] == \
        ["a", "b", *WEIGHTS]


def test_a_runtime_that_does_not_encode_in_field_order_gets_the_whole_encoding(monkeypatch):
    model = _model(WEIGHTS)
    monkeypatch.setattr(onnx_stream, "_split", lambda message, number: (b"", b"\x00"))
    data, digest = _streamed(model, WEIGHTS)
    assert data == _whole(model, WEIGHTS)
    assert digest == hashlib.sha256(data).hexdigest()


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 70), st.integers(1, 40)), min_size=0, max_size=5))
def test_any_tensor_sizes(shapes):
    # lengths around the varint boundaries (127/128 bytes, 16383/16384 bytes)
    weights = {f"w{k}": np.full((r, c), k + 0.5, np.float32) for k, (r, c) in enumerate(shapes)}
    model = _model(weights)
    data, _ = _streamed(model, weights)
    assert data == _whole(model, weights)


@pytest.mark.parametrize("n", [0, 1, 127, 128, 300, 16383, 16384, 2**21, 2**28 + 5])
def test_varint(n):
    from google.protobuf.internal import encoder

    want = bytearray()
    encoder._VarintEncoder()(want.extend, n, True)
    assert onnx_stream._varint(n) == bytes(want)
