"""SavedModel / ONNX emission and `asnc compile` (backends/tensorflow/export.py).

TF and ONNX Runtime must compute the same logits for every example network (random weights,
so no residual branch is an identity), with the serving names `video` (`object`) ->
`logits`; the SavedModel stores exactly `count_params` floats; `asnc compile` works end to
end, writes atomically and is deterministic.

Every example is written by the direct ONNX writer (`onnx_direct`; tf2onnx, its fallback,
only writes networks with user modules: test_onnx_direct.py). Cost: tf2onnx
takes 20-60 s per published network on 2 cores, mostly proportional to the weights and to
the unrolled flow layer; the published networks are therefore converted with 2 flow
iterations (the flow layer's 40-iteration conversion is checked once, end to end on
the tutorial network); AssembleNet++-50 and ++lite with one residual unit per level (same
graph, stems, fusions, attention, heads; the full depth under `-m slow`), and
AssembleNet-101 (AssembleNet-50's graph with other widths) only under `-m slow`.
"""

from __future__ import annotations

import gc
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")
ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")
pytest.importorskip("tf2onnx")

from _onnx_graph import dead_nodes  # noqa: E402
from _tfnets import (ATTENTION_NET, example, parse, randomise, video,  # noqa: E402
                     with_header)
from conftest import EXAMPLES, ROOT  # noqa: E402

from asn.backends.tensorflow.compile import (CompileError, CompileOptions,  # noqa: E402
                                             compile_network)
from asn.backends.tensorflow.onnx_export import to_onnx  # noqa: E402
from asn.backends.tensorflow.savedmodel import (savedmodel_float_count,  # noqa: E402
                                                serving_function, write_savedmodel)
from asn.backends.tensorflow.lower import build_model  # noqa: E402
from asn.compiler.analysis import analyse  # noqa: E402

pytestmark = pytest.mark.tf

TOL = 1e-4


def _parity(net, batch=2, seed=0):
    model = build_model(net, seed=seed)
    randomise(model, seed=seed)
    fn, _ = serving_function(model, net)
    data = to_onnx(model, net)  # unrolled flow iterations; fn's trace has a While loop
    assert dead_nodes(onnx.load_from_string(data).graph) == []  # every node is needed
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    feeds = video(net, batch=batch, seed=seed + 1)
    got = session.run(["logits"], feeds)[0]
    want = fn(**{k: tf.constant(v) for k, v in feeds.items()})["logits"].numpy()
    keras_out = np.asarray(model(feeds if len(feeds) > 1 else feeds["video"],
                                 training=False)["logits"])
    names = ([i.name for i in session.get_inputs()], [o.name for o in session.get_outputs()])
    shapes = {i.name: i.shape for i in session.get_inputs()}
    del model, session
    keras.backend.clear_session()
    gc.collect()
    return got, want, keras_out, names, shapes


@pytest.mark.parametrize("name,depth", [
    ("assemblenet50", None),
    pytest.param("assemblenet101", None, marks=pytest.mark.slow),
    ("assemblenet_plus50", (1, 1, 1, 1)),
    pytest.param("assemblenet_plus50", None, marks=pytest.mark.slow),
    ("assemblenet_plus_lite", (1, 1, 1, 1)),
    pytest.param("assemblenet_plus_lite", None, marks=pytest.mark.slow),
    ("tutorial", None),
], ids=lambda v: "full" if v is None else "units1" if isinstance(v, tuple) else v)
def test_onnx_parity_examples(name, depth):
    net = example(name, frames=4, size=32, flow_iterations=2)
    if depth is not None:
        net = with_header(net, depth=depth)
    got, want, keras_out, (inputs, outputs), shapes = _parity(net)
    assert got.shape == want.shape == (2, net.header.classes)
    assert np.all(np.isfinite(want))
    diff = float(np.max(np.abs(got - want)))
    print(f"{name}: max |TF - ONNX| = {diff:.3g} (max |logit| {np.abs(want).max():.3g})")
    assert diff <= TOL
    np.testing.assert_allclose(keras_out, want, rtol=0, atol=1e-5)
    assert np.abs(want).max() > 1e-3  # the random weights reach the logits
    assert outputs == ["logits"]
    if name == "assemblenet_plus50":
        assert sorted(inputs) == ["object", "video"]
        assert shapes["object"] == ["batch", 4, 32, 32, 151]  # as video: folded in the model
    else:
        assert inputs == ["video"]
    assert shapes["video"][1:] == [4, 32, 32, 3]
    assert shapes["video"][0] == "batch"  # dynamic, and named


def _tiny(mode="none"):
    return parse(ATTENTION_NET.format(mode=mode))


@pytest.mark.parametrize("writer", ["direct", "tf2onnx"])
def test_onnx_bytes_do_not_depend_on_what_the_process_did_before(writer):
    """tf2onnx numbers unknown dimensions from a process-wide counter (`unk__<N>`); two
    conversions of one model in one process see two counter values, yet give one file
    (and so do two direct writes)."""
    net = _tiny()
    model = build_model(net)
    first, second = to_onnx(model, net, writer=writer), to_onnx(model, net, writer=writer)
    assert first == second
    dims = {v.name: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
            for v in [*onnx.load_from_string(first).graph.input,
                      *onnx.load_from_string(first).graph.output]}
    assert dims == {"video": ["batch", 2, 32, 32, 3], "logits": ["batch", 3]}


def test_savedmodel_signature_and_float_count(tmp_path):
    """An unreached node (`side`) is saved too: floats == count_params; names; values."""
    net = _tiny("none")
    model = build_model(net)
    randomise(model)
    write_savedmodel(model, net, str(tmp_path / "sm"))
    assert savedmodel_float_count(str(tmp_path / "sm")) == model.count_params() == \
        analyse(net).total
    loaded = tf.saved_model.load(str(tmp_path / "sm"))
    sig = loaded.signatures["serving_default"]
    _, inputs = sig.structured_input_signature
    assert {k: (v.shape.as_list(), v.dtype) for k, v in inputs.items()} == {
        "video": ([None, 2, 32, 32, 3], tf.float32)}
    assert list(sig.structured_outputs) == ["logits"]
    x = video(net, batch=3)["video"]
    got = sig(video=tf.constant(x))["logits"].numpy()
    np.testing.assert_allclose(got, np.asarray(model(x, training=False)["logits"]), atol=1e-6)
    assert len(loaded.model_variables) == len(model.weights)


def test_fixed_batch_and_object_signature(tmp_path):
    net = parse("""
network obj { depth [1, 1, 1, 1] frames 2 size 32x32 classes 3 objects 5 attention peer }
stem r = rgb
stem o = object
block a = bottleneck(level=0, filters=4) <- r @0.4, o @0.7
block top = bottleneck(level=3, filters=4, stride=4) <- a, o
""")
    model = build_model(net, batch=1)
    randomise(model)
    write_savedmodel(model, net, str(tmp_path / "sm"), batch=1)
    sig = tf.saved_model.load(str(tmp_path / "sm")).signatures["serving_default"]
    _, inputs = sig.structured_input_signature
    assert {k: v.shape.as_list() for k, v in inputs.items()} == {
        "video": [1, 2, 32, 32, 3], "object": [1, 2, 32, 32, 5]}
    data = to_onnx(model, net, batch=1)
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    assert {i.name: i.shape for i in session.get_inputs()} == {
        "video": [1, 2, 32, 32, 3], "object": [1, 2, 32, 32, 5]}
    feeds = video(net, batch=1)
    want = sig(**{k: tf.constant(v) for k, v in feeds.items()})["logits"].numpy()
    got = session.run(["logits"], feeds)[0]
    assert np.max(np.abs(got - want)) <= TOL


def test_opset_range():
    net = _tiny()
    model = build_model(net)
    with pytest.raises(CompileError, match="opset"):
        to_onnx(model, net, opset=13)


# ---------------------------------------------------------------------------------------------
# compile_network: atomic output, weights
# ---------------------------------------------------------------------------------------------
def _snapshot(path: Path) -> dict:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*"))
            if p.is_file()}


def test_compile_atomic_and_weights(tmp_path):
    net = _tiny("self")
    out = tmp_path / "out"
    first = compile_network(net, str(out), CompileOptions(seed=1))
    assert first.parity.ok and first.params == analyse(net).total
    report = json.loads((out / "report.json").read_text())
    assert report["params"]["savedmodel_floats"] == report["params"]["count_params"]
    assert set(report["timings_s"]) == {"build", "savedmodel", "onnx", "verify"}
    assert report["proofs"] == []  # no passes asked
    before = _snapshot(out)
    # a compile that fails after writing (parity can never hold at tolerance -1)
    with pytest.raises(CompileError, match="disagree"):
        compile_network(net, str(out), CompileOptions(seed=2, parity_tolerance=-1.0))
    assert _snapshot(out) == before
    assert sorted(os.listdir(tmp_path)) == ["out"]  # no temporary directory left
    # a directory that is not ours is never replaced
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("mine")
    with pytest.raises(CompileError, match="not written by"):
        compile_network(net, str(foreign))
    assert (foreign / "keep.txt").read_text() == "mine"
    # --weights: trained weights reach both artifacts
    model = build_model(net, seed=5)
    randomise(model, seed=5)
    weights = tmp_path / "trained.weights.h5"
    model.save_weights(str(weights))
    compile_network(net, str(out), CompileOptions(seed=1, weights=str(weights),
                                                  formats=("onnx",), verify=False))
    assert sorted(os.listdir(out)) == ["model.onnx", "report.json"]
    x = video(net, batch=2, seed=9)
    got = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"]) \
        .run(["logits"], x)[0]
    want = np.asarray(model(x["video"], training=False)["logits"])
    assert np.max(np.abs(got - want)) <= TOL
    with pytest.raises(CompileError, match="does not fit"):
        bad = tmp_path / "other.weights.h5"
        other = build_model(_tiny("peer"))
        other.save_weights(str(bad))
        compile_network(net, str(out), CompileOptions(weights=str(bad)))


# ---------------------------------------------------------------------------------------------
# The command line, end to end (each run is a fresh process, as a user would run it)
# ---------------------------------------------------------------------------------------------
def _asnc(*args, cwd=None):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run([sys.executable, "-m", "asn.cli.main", *args], cwd=cwd or ROOT,
                          capture_output=True, text=True, env=env, timeout=600)


def test_cli_compile_tutorial(tmp_path):
    tutorial = str(EXAMPLES / "tutorial.asn")
    out = tmp_path / "tut"
    r = _asnc("compile", tutorial, "-o", str(out), "--frames", "4", "--size", "32", "32")
    assert r.returncode == 0, r.stderr
    assert sorted(os.listdir(out)) == ["model.onnx", "report.json", "saved_model"]
    report = json.loads((out / "report.json").read_text())
    stats = report["stats"]
    assert report["params"]["count_params"] == stats["params"]["total"] == \
        report["params"]["savedmodel_floats"]
    assert report["parity"]["ok"] and report["parity"]["max_abs_diff"] <= TOL
    assert report["passes"]["level"] == 1
    assert report["signature"]["inputs"] == {"video": [None, 4, 32, 32, 3]}
    assert set(report["timings_s"]) == {"build", "passes", "savedmodel", "onnx", "verify"}
    # -O1: every backend pass applied and proved against the model before it
    assert [p["pass"] for p in report["proofs"]] == ["repflow-slices", "fold-batchnorm",
                                                    "fold-edge-weights"]
    assert all(p["ok"] and p["max_abs_diff"] <= 1e-4 for p in report["proofs"])
    assert "parity" in r.stdout and "parameters" in r.stdout
    before = _snapshot(out)

    # a second compile in another process: the same ONNX bytes
    again = tmp_path / "again"
    r2 = _asnc("compile", tutorial, "-o", str(again), "--frames", "4", "--size", "32", "32",
               "--format", "onnx", "--no-verify")
    assert r2.returncode == 0, r2.stderr
    assert (again / "model.onnx").read_bytes() == before["model.onnx"]
    # the report's hash is the file's (the compile streams the file, never holds it whole)
    assert report["onnx_sha256"] == hashlib.sha256(before["model.onnx"]).hexdigest()
    assert json.loads((again / "report.json").read_text())["parity"] is None

    # bad input: exit 1, a message, the existing output untouched
    r3 = _asnc("compile", tutorial, "-o", str(out), "--weights", str(tmp_path / "nope.h5"))
    assert r3.returncode == 1 and "does not exist" in r3.stderr
    bad = tmp_path / "bad.asn"
    bad.write_text("network bad { depth 50 }\nstem r = rgb\nblock b = bottleneck(level=3, "
                   "filters=4) <- q\n")
    r4 = _asnc("compile", str(bad), "-o", str(out))
    assert r4.returncode == 1 and "ASN101" in r4.stderr
    r5 = _asnc("compile", tutorial, "-o", str(out), "--format", "coreml")
    assert r5.returncode == 1
    assert _snapshot(out) == before


@pytest.mark.parametrize("user_setting", [None, True, False])
def test_graph_as_stored_restores_the_optimiser_setting(user_setting):
    """The parity check runs the SavedModel without grappler and leaves TensorFlow's
    optimiser options as it found them, also when the check raises."""
    from asn.backends.tensorflow.parity import graph_as_stored

    key = "disable_meta_optimizer"
    before = tf.config.optimizer.get_experimental_options().get(key, False)
    try:
        if user_setting is not None:
            tf.config.optimizer.set_experimental_options({key: user_setting})
        expected = tf.config.optimizer.get_experimental_options().get(key, False)
        with graph_as_stored():
            assert tf.config.optimizer.get_experimental_options()[key] is True
        assert tf.config.optimizer.get_experimental_options().get(key, False) == expected
        with pytest.raises(RuntimeError), graph_as_stored():
            raise RuntimeError("a failing check")
        assert tf.config.optimizer.get_experimental_options().get(key, False) == expected
    finally:
        tf.config.optimizer.set_experimental_options({key: before})
