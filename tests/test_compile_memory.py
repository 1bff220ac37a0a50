"""Compile speed and memory (issue 12), checked by behaviour, never by a clock:

* the lean tf2onnx conversion (`onnx_export._lean_convert`: TF's freezing without the
  frozen function, tf2onnx's optimisers without a proto sync after each) gives the bytes
  that tf2onnx's own `from_function` gives, and is the path `to_onnx` takes when tf2onnx
  writes the file (a layer the direct writer does not cover, or `writer="tf2onnx"`);
* memory grows with the network, not with the passes: the peak RSS of an `-O1` compile
  with every proof against that of building the model once, each measured in a fresh
  process (the kernel's `ru_maxrss`). The issue's goal is 1.5x, which the check holds:
  measured 1.3x with the direct ONNX writer (tf2onnx's conversion peaked at 1.8x, in
  grappler's constant folding; the code before issue 12 exceeded 2x).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

tf = pytest.importorskip("tensorflow")
tf2onnx = pytest.importorskip("tf2onnx")

from _tfnets import parse  # noqa: E402
from conftest import ROOT  # noqa: E402

from asn.backends.tensorflow import onnx_export  # noqa: E402
from asn.backends.tensorflow.lower import build_model  # noqa: E402
from asn.backends.tensorflow.repflow import unrolled_iterations  # noqa: E402
from asn.backends.tensorflow.savedmodel import serving_function  # noqa: E402

pytestmark = pytest.mark.tf

# A flow stem (the unrolled flow layer: most of tf2onnx's nodes), a fusion, a dead-free
# graph whose -O1 runs repflow-slices, fold-batchnorm and fold-edge-weights.
FLOW_NET = """
network lean { depth [1, 1, 1, 1] frames 2 size 32x32 classes 3 flow_iterations 2 }
stem r = rgb
stem f = flow
block a = bottleneck(level=0, filters=4) <- r @0.4, f @0.7
block b = bottleneck(level=1, filters=4, stride=2) <- a @0.9, f @0.2
block top = bottleneck(level=3, filters=4, stride=2) <- b @0.8, a @0.3
"""


def _canonical_bytes(proto, net, model) -> bytes:
    onnx_export._canonicalise(proto, net.header.name, onnx_export.layer_scopes(model, net),
                              model.name)
    return proto.SerializeToString(deterministic=True)


def test_lean_conversion_gives_tf2onnx_bytes(monkeypatch):
    net = parse(FLOW_NET)
    model = build_model(net)
    fn, signature = serving_function(model, net)
    with unrolled_iterations():  # as `to_onnx` traces it: no While loop
        lean = onnx_export._lean_convert(tf2onnx, fn, signature, 17)  # raises if it cannot
        plain = tf2onnx.convert.from_function(fn, input_signature=signature, opset=17)[0]
    assert _canonical_bytes(lean, net, model) == _canonical_bytes(plain, net, model)
    assert "TF2ONNX_CATCH_ERRORS" not in os.environ  # the conversion left it as it was
    assert not [n for n in lean.graph.node if n.op_type == "Loop"]

    calls = []  # and tf2onnx's path in to_onnx is the lean one, not its fallback
    real = onnx_export._lean_convert
    monkeypatch.setattr(onnx_export, "_lean_convert",
                        lambda *a: calls.append(1) or real(*a))
    monkeypatch.setattr(tf2onnx.convert, "from_function",
                        lambda *a, **k: pytest.fail("fell back to from_function"))
    fn.get_concrete_function()  # a trace with the loop already there (the SavedModel's)
    data = onnx_export.to_onnx(model, net, writer="tf2onnx")
    assert calls == [1]
    import onnx
    assert "Loop" not in {n.op_type for n in onnx.load_from_string(data).graph.node}


# The memory check's network: few nodes (a fast compile) but wide blocks, so that its 8.8 M
# weights, not TensorFlow's own footprint, are what a copy per pass would multiply.
WIDE_NET = """
network wide { depth [1, 1, 1, 1] frames 2 size 32x32 classes 10 }
stem r = rgb
block a = bottleneck(level=0, filters=64) <- r
block b = bottleneck(level=1, filters=128, stride=2) <- a
block c = bottleneck(level=2, filters=256, stride=2) <- b @0.6, a @0.5
block top = bottleneck(level=3, filters=512, stride=2) <- c @0.8, b @0.3
"""

MEMORY_BOUND = 1.5  # the goal (see the module docstring)

_CHILD = textwrap.dedent("""
    import json, os, sys, tempfile

    def peak_mib():  # this process image's own high-water mark (VmHWM, per address space)
        with open("/proc/self/status") as fh:
            line = next(l for l in fh if l.startswith("VmHWM:"))
        return int(line.split()[1]) / 1024

    from asn.dsl.loader import load_text
    from asn.compiler.passes import LoweringForm, optimise
    net = load_text(sys.argv[2], "<memory>")
    import tensorflow as tf
    if sys.argv[1] == "build":
        from asn.backends.tensorflow.lower import lower
        from asn.backends.tensorflow.parity import random_inputs
        model = lower(net, form=LoweringForm.reference()).model
        model(random_inputs(net, 2, 0)["video"], training=False)
        print(json.dumps({"params": int(model.count_params()), "peak_mib": peak_mib()}))
    else:
        from asn.backends.tensorflow.compile import compile_network
        with tempfile.TemporaryDirectory() as tmp:
            r = compile_network(net, os.path.join(tmp, "out"), optimised=optimise(net, level=1))
            print(json.dumps({"params": r.params, "proofs": r.report["proofs"],
                              "parity": r.parity.max_abs_diff, "peak_mib": peak_mib()}))
""")


def _peak_rss(mode: str, tmp_path) -> tuple[float, dict]:
    """Peak RSS (MiB) of a fresh process that builds or compiles WIDE_NET, and its report.

    The child reads its own VmHWM: `ru_maxrss` of a child counts the address space it
    was forked (or vforked) from, so under pytest it reported the test process's peak
    (2 GB with TensorFlow loaded) for both children and the ratio was 1.0 whatever the
    compile did. VmHWM belongs to the address space `exec` made: the child's alone."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.run([sys.executable, "-c", _CHILD, mode, WIDE_NET], cwd=ROOT,
                          capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    return report["peak_mib"], report


def test_compile_memory_within_bound_of_one_build(tmp_path):
    build, built = _peak_rss("build", tmp_path)
    compile_, compiled = _peak_rss("compile", tmp_path)
    assert compiled["params"] < built["params"]  # -O1 folded the batch norms
    assert [p["pass"] for p in compiled["proofs"]] == ["fold-batchnorm", "fold-edge-weights"]
    assert all(p["ok"] for p in compiled["proofs"]) and compiled["parity"] <= 1e-4
    print(f"peak RSS: build once {build:.0f} MiB, -O1 compile with proofs {compile_:.0f} MiB "
          f"({compile_ / build:.2f}x)")
    assert compile_ <= MEMORY_BOUND * build
