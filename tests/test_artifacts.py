"""Artifacts people can read (issue 17): ONNX node names keep the asnc scope (Netron's search
finds a block's nodes), both artifacts carry the same metadata, the `object` input is 5-D
like `video` with a named `batch` axis, the SavedModel has a `serve` endpoint that
`keras.layers.TFSMLayer` calls, and `--serving-layout` writes TF Serving's layout.

One small AssembleNet++ network (object stem, peer attention; written by the direct ONNX
writer, whose names come from the model alone; tf2onnx, the fallback, merged the peer
layers' equal pools, the case where a scope could depend on the process) compiled at -O1,
then once more, in another process, for the bytes.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("tf2onnx")

from _tfnets import parse, video  # noqa: E402
from conftest import ROOT  # noqa: E402

import asn  # noqa: E402
from asn.backends.tensorflow.compile import (CompileError, CompileOptions,  # noqa: E402
                                             compile_network)
from asn.compiler.passes import optimise  # noqa: E402
from asn.dsl.printer import format_network  # noqa: E402

pytestmark = pytest.mark.tf

NET = """
network obj { depth [1, 1, 1, 1] frames 2 size 32x32 classes 3 objects 5 attention peer }
stem r = rgb
stem o = object
block a = bottleneck(level=0, filters=4) <- r @0.4, o @0.7
block b = bottleneck(level=1, filters=4, stride=2) <- a
block top = bottleneck(level=3, filters=4, stride=2) <- b @0.8, o @0.5, a @0.3
"""
NAME = re.compile(r"^(?:[A-Za-z_][A-Za-z0-9_]*/){0,2}n\d+_[A-Za-z]+$")


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    net = parse(NET)
    out = tmp_path_factory.mktemp("art") / "out"
    options = CompileOptions(seed=0, serving_layout=True, serving_version=3)
    result = compile_network(net, str(out), options, optimise(net, level=1))
    assert result.parity is not None and result.parity.ok
    return net, out, result


def _dims(value_info):
    return [d.dim_param or d.dim_value for d in value_info.type.tensor_type.shape.dim]


def test_onnx_node_names_keep_the_scope(compiled):
    net, out, _ = compiled
    model = onnx.load(str(out / "model.onnx"))
    names = [n.name for n in model.graph.node]
    assert all(NAME.match(n) for n in names), [n for n in names if not NAME.match(n)]
    scopes = {n.rsplit("/", 1)[0] for n in names if "/" in n}
    assert {node.name for node in net.nodes} <= {s.split("/")[0] for s in scopes}
    assert {"head", "fold", "top/peer", "a/fusion"} <= scopes
    print("scopes:", sorted(scopes), "e.g.", names[:3], names[-3:])


def test_onnx_dims_and_metadata(compiled):
    net, out, result = compiled
    model = onnx.load(str(out / "model.onnx"))
    g = model.graph
    assert {v.name: _dims(v) for v in [*g.input, *g.output]} == {
        "video": ["batch", 2, 32, 32, 3], "object": ["batch", 2, 32, 32, 5],
        "logits": ["batch", 3]}
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta == result.report["metadata"]
    assert meta["network"] == "obj"
    assert meta["source_sha256"] == hashlib.sha256(format_network(net).encode()).hexdigest()
    assert meta["opt_level"] == "-O1"
    assert meta["passes"].split(",")[0] == "dead-node-elimination"
    assert "fold-batchnorm" in meta["passes"].split(",")
    assert meta["input.video"] == "NTHWC float32 [batch, 2, 32, 32, 3]"
    assert meta["input.object"] == "NTHWC float32 [batch, 2, 32, 32, 5]"
    assert meta["classes"] == "3" and meta["weights"] == "initialised from seed 0"
    assert meta["asnc_version"] == asn.__version__
    assert (model.producer_name, model.producer_version, model.model_version) == (
        "asnc", asn.__version__, 3)
    assert model.doc_string.startswith("obj: ")
    print(json.dumps(meta, indent=1))


def test_savedmodel_metadata_object_input_and_tfsmlayer(compiled):
    net, out, result = compiled
    sm = out / "saved_model"
    meta = result.report["metadata"]
    assert json.loads((sm / "assets.extra" / "asnc.json").read_text()) == meta
    loaded = tf.saved_model.load(str(sm))
    assert {k: v.numpy().decode() for k, v in loaded.asnc_metadata().items()} == meta
    sig = loaded.signatures["serving_default"]
    _, inputs = sig.structured_input_signature
    assert {k: v.shape.as_list() for k, v in inputs.items()} == {
        "video": [None, 2, 32, 32, 3], "object": [None, 2, 32, 32, 5]}
    feeds = video(net, batch=3, seed=4)
    want = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"]) \
        .run(["logits"], feeds)[0]
    got = sig(**{k: tf.constant(v) for k, v in feeds.items()})["logits"].numpy()
    assert np.max(np.abs(got - want)) <= 1e-4
    layer = keras.layers.TFSMLayer(str(sm))  # default endpoint `serve`, positional dict
    via_keras = layer({k: tf.constant(v) for k, v in feeds.items()})["logits"]
    np.testing.assert_allclose(np.asarray(via_keras), got, atol=1e-6)


def test_serving_layout(compiled):
    from tensorflow.python.tools import saved_model_utils  # what saved_model_cli reads with

    net, out, result = compiled
    serving = out / "serving" / "obj" / "3"
    assert result.report["serving"]["path"] == os.path.join("serving", "obj", "3")
    assert sorted(os.listdir(out)) == ["model.onnx", "report.json", "saved_model", "serving"]
    assert os.listdir(out / "serving" / "obj") == ["3"]
    index = os.path.join("variables", "variables.index")
    assert os.path.samefile(serving / index, out / "saved_model" / index)  # hard links
    meta_graph = saved_model_utils.get_meta_graph_def(str(serving), "serve")
    assert set(meta_graph.signature_def["serving_default"].inputs) == {"video", "object"}
    sig = tf.saved_model.load(str(serving)).signatures["serving_default"]
    feeds = video(net, batch=1, seed=2)
    assert sig(**{k: tf.constant(v) for k, v in feeds.items()})["logits"].shape == (1, 3)
    with pytest.raises(CompileError, match="serving-layout needs the savedmodel"):
        CompileOptions(serving_layout=True, formats=("onnx",))
    with pytest.raises(CompileError, match="serving-version"):
        CompileOptions(serving_version=0)


def test_onnx_bytes_deterministic_with_scopes(compiled, tmp_path):
    """Another process with another string hash seed (set order must not reach the
    file): the same bytes, scopes included."""
    net, out, _ = compiled
    again = tmp_path / "again"
    script = (
        "import sys; sys.path.insert(0, 'tests')\n"
        "from _tfnets import parse\n"
        "from test_artifacts import NET\n"
        "from asn.backends.tensorflow.compile import CompileOptions, compile_network\n"
        "from asn.compiler.passes import optimise\n"
        "net = parse(NET)\n"
        f"compile_network(net, {str(again)!r}, CompileOptions(seed=0, formats=('onnx',), "
        "verify=False, serving_version=3), optimise(net, level=1))\n")
    env = {**os.environ, "PYTHONHASHSEED": "12345", "TF_CPP_MIN_LOG_LEVEL": "2"}
    r = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert (again / "model.onnx").read_bytes() == (out / "model.onnx").read_bytes()
