"""The direct ONNX writer (`onnx_direct`, issue 12): the lowered Keras model written as ONNX
nodes, NCHW inside, without tf2onnx.

Facts checked: ONNX Runtime's logits equal the Keras model's (within 1e-5) for every layer
and form the writer covers (reference form with batch norms and difference-conv flow, the
-O1 form after all three backend passes, 2+1D and 3D blocks, strides, dilations, both flow
forms, sigmoid, scaled-sum and concat fusions with resizing and group convs, object stems,
max-pooled predictions, self and peer attention (on single inputs and inside fusions),
the lite variant's stems, blocks and head, dynamic and fixed batch, opsets 17 and 18); two
writes give the same bytes (also in another process with another hash seed); every node is
NCHW-native (one transpose of the input, Convs on NCHW); a network with a layer the writer
does not cover (a user module) is converted by tf2onnx, and the compile report says so.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("tf2onnx")

from _tfnets import ATTENTION_NET, example, parse, randomise, video, with_header  # noqa: E402
from conftest import ROOT  # noqa: E402

from asn.backends.tensorflow.layers import Conv3x3x3, TemporalConv  # noqa: E402
from asn.backends.tensorflow.compile import (CompileError, CompileOptions,  # noqa: E402
                                             compile_network)
from asn.backends.tensorflow.lower import lower  # noqa: E402
from asn.backends.tensorflow.onnx_direct import unsupported_layers  # noqa: E402
from asn.backends.tensorflow.onnx_export import export_onnx  # noqa: E402
from asn.backends.tensorflow.parity import random_inputs  # noqa: E402
from asn.backends.tensorflow.proofs import (apply_backend_passes,  # noqa: E402
                                            prove_graph_passes)
from asn.compiler.passes import LoweringForm, optimise  # noqa: E402

pytestmark = pytest.mark.tf

# rgb stems (one dilated) and a flow stem; 2+1D and 3D blocks, strides 2 and 4, temporal
# dilations; fusions that resize (max-pool) and join widths 16/32 (a group 1x1 conv).
FLOW_NET = """
network flownet { depth [2, 1, 1, 2] frames 3 size 32x32 classes 3 flow_iterations 2 }
stem r = rgb(dilation=2)
stem f = flow
block a = bottleneck(level=0, filters=4) <- r @0.4, f @0.7
block b = bottleneck3d(level=1, filters=8, stride=2, dilation=2) <- a @0.9, f @0.2
block c = bottleneck3d(level=2, filters=4, stride=2) <- b
block top = bottleneck(level=3, filters=8, stride=2, dilation=2) <- c @0.6, b @0.3, a @0.5
"""
# AssembleNet++'s object stem: excluded from the fusion's target width, pooled by 4.
OBJECT_NET = """
network objnet { depth [1, 1, 1, 1] frames 2 size 32x32 classes 4 objects 5 }
stem r = rgb
stem o = object
block a = bottleneck(level=0, filters=4) <- r @0.4, o @0.7
block top = bottleneck(level=3, filters=4, stride=2) <- a @0.8, o @0.5
"""
# concat fusions, max-pooled predictions over time
CONCAT_NET = """
network catnet { depth [1, 1, 1, 1] frames 3 size 32x32 classes 5 combine concat
                 head_pool max }
stem r = rgb
stem q = rgb(dilation=2)
block a = bottleneck(level=0, filters=4) <- r, q
block top = bottleneck(level=3, filters=4, stride=2) <- a, q
block top2 = bottleneck3d(level=3, filters=4, stride=2) <- a
"""
# the lite variant: strided (2+1)D and 3x3x3 units, dilations, a flow stem, fusions with
# peer attention, max-pooled predictions
LITE_NET = """
network lite { variant lite depth [2, 1, 1, 2] frames 3 size 16x16 classes 3 flow_iterations 2
               attention peer head_pool max }
stem r = rgb(dilation=2)
stem f = flow
block a = lite(level=0, filters=[4, 4, 6], dilation=2) <- r, f
block b = lite(level=2, filters=[4, 4, 6], stride=2) <- a, f
block c = lite(level=3, filters=[4, 4, 8], stride=2) <- b, a
"""
# a user module (tests/netgen.py's Pointwise): no emitter, tf2onnx writes it
USER_NET = """
network user { depth [1, 1, 1, 1] frames 2 size 32x32 classes 2 }
stem r = rgb
block a = "netgen:Pointwise"(level=0, filters=6, stride=2) <- r
block top = bottleneck(level=3, filters=4, stride=2) <- a
"""
SELF_NET = ATTENTION_NET.format(mode="self")
PEER_NET = ATTENTION_NET.format(mode="peer")
TOL = 1e-5


def _reference(net, batch=None, seed=0):
    lowered = lower(net, form=LoweringForm.reference(), seed=seed, batch=batch)
    randomise(lowered.model, seed=seed)
    return lowered


def _optimised(net, batch=None, seed=0):
    """The -O1 model as `compile_network` makes it: graph passes proved, then every
    backend pass applied (repflow-slices, fold-batchnorm, fold-edge-weights)."""
    opt = optimise(net, level=1)
    feeds = random_inputs(net, batch or 2, seed)
    lowered, _, _ = prove_graph_passes(_reference(net, batch, seed), opt.stages, feeds,
                                    seed=seed, batch=batch)
    lowered, proofs = apply_backend_passes(opt.network, lowered, opt.form, feeds, seed=seed,
                                           batch=batch)
    return opt.network, lowered, [p.to_json()["pass"] for p in proofs]


def _check_parity(model, net, batch=None, opset=17, clips=2):
    result = export_onnx(model, net, batch=batch, opset=opset)
    assert result.writer == "direct"
    session = ort.InferenceSession(result.data, providers=["CPUExecutionProvider"])
    feeds = video(net, batch=batch or clips, seed=3)
    got = session.run(["logits"], feeds)[0]
    want = np.asarray(model(feeds if len(feeds) > 1 else feeds["video"],
                            training=False)["logits"])
    assert got.shape == want.shape == (batch or clips, net.header.classes)
    assert np.abs(want).max() > 1e-3  # the random weights reach the logits
    diff = float(np.abs(got - want).max())
    print(f"{net.header.name}: max |Keras - ORT| = {diff:.3g}")
    assert diff <= TOL
    return result.data


@pytest.mark.parametrize("text", [FLOW_NET, OBJECT_NET, CONCAT_NET, SELF_NET, PEER_NET,
                                  LITE_NET],
                         ids=["flow", "object", "concat", "self", "peer", "lite"])
def test_reference_form_parity(text):
    """-O0: batch norms, the flow layer's difference convolutions, sigmoid gates."""
    net = parse(text)
    model = _reference(net).model
    data = _check_parity(model, net)
    ops = {n.op_type for n in onnx.load_from_string(data).graph.node}
    assert "BatchNormalization" in ops
    if "flow" in net.header.name:
        assert {"Where", "Less", "Not"} <= ops  # the reference thresholding


@pytest.mark.parametrize("text,passes", [
    (FLOW_NET, ["repflow-slices", "fold-batchnorm", "fold-edge-weights"]),
    (OBJECT_NET, ["fold-batchnorm", "fold-edge-weights"]),
    (CONCAT_NET, ["fold-batchnorm"]),
    (PEER_NET, ["fold-batchnorm"]),
    (LITE_NET, ["repflow-slices", "fold-batchnorm"]),
], ids=["flow", "object", "concat", "peer", "lite"])
def test_optimised_form_parity(text, passes):
    """-O1: folded convs with biases, scaled-sum fusions, the flow layer as slices."""
    net, lowered, applied = _optimised(parse(text))
    assert applied == passes
    data = _check_parity(lowered.model, net)
    ops = {n.op_type for n in onnx.load_from_string(data).graph.node}
    assert "BatchNormalization" not in ops


def test_fixed_batch_opset18_and_one_clip():
    net = parse(OBJECT_NET)
    model = _reference(net, batch=1).model
    data = _check_parity(model, net, batch=1, opset=18)
    graph = onnx.load_from_string(data)
    assert graph.opset_import[0].version == 18
    dims = {v.name: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
            for v in [*graph.graph.input, *graph.graph.output]}
    assert dims == {"video": [1, 2, 32, 32, 3], "object": [1, 2, 32, 32, 5],
                    "logits": [1, 4]}


def test_dynamic_batch_runs_any_batch_and_full_flow_iterations():
    """The dynamic model runs batches 1 and 3; the flow layer at 10 iterations (the
    normalisation's min/max differ per batch)."""
    net = with_header(parse(FLOW_NET), flow_iterations=10)
    model = _reference(net).model
    _check_parity(model, net, clips=1)
    data = _check_parity(model, net, clips=3)
    dims = [d.dim_param or d.dim_value
            for d in onnx.load_from_string(data).graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", 3, 32, 32, 3]


def test_example_network_at_o1():
    """examples/assemblenet50.asn's graph, one unit per level, as `compile -O1` writes it."""
    net = with_header(example("assemblenet50", frames=4, size=32, flow_iterations=2),
                      depth=(1, 1, 1, 1))
    net, lowered, applied = _optimised(net)
    assert applied == ["repflow-slices", "fold-batchnorm", "fold-edge-weights"]
    _check_parity(lowered.model, net)


NAME = re.compile(r"^(?:[A-Za-z_][A-Za-z0-9_]*/){0,2}n\d+_[A-Za-z]+$")


def test_bytes_names_and_layout():
    net = parse(FLOW_NET)
    model = _reference(net).model
    first, second = export_onnx(model, net).data, export_onnx(model, net).data
    assert first == second
    proto = onnx.load_from_string(first)
    onnx.checker.check_model(proto, full_check=True)
    nodes = proto.graph.node
    assert all(NAME.match(n.name) for n in nodes), [n.name for n in nodes][:5]
    scopes = {n.name.rsplit("/", 1)[0] for n in nodes}
    assert {"fold", "repflow", "r", "f", "a", "a/fusion", "top", "top/fusion", "head"} <= \
        scopes
    # NCHW-native: the clip is transposed once (NHWC -> NCHW); the other Transposes are
    # the unfolds of the temporal convs (4 each: through channels-last, next to the Conv)
    # and of the 3x3x3 convs (2 each); (the reference flow form needs none: its two flow
    # components are concatenated on the channel axis).
    transposes = [n for n in nodes if n.op_type == "Transpose"]
    assert transposes[0].name.startswith("fold/")
    assert [list(a.ints) for a in transposes[0].attribute] == [[0, 3, 1, 2]]
    assert sum(n.name.startswith("fold/") for n in transposes) == 1
    temporal = sum(isinstance(layer, TemporalConv) for layer in model._flatten_layers())
    cubic = sum(isinstance(layer, Conv3x3x3) for layer in model._flatten_layers())
    assert (temporal, cubic) == (3, 2)  # r, unit 1 of a and of top; b and c (one unit each)
    assert len(transposes) == 1 + 4 * temporal + 2 * cubic
    inits = {t.name: t for t in proto.graph.initializer}
    k = model.get_layer("r").conv7x7.kernel
    conv = next(n for n in nodes if n.op_type == "Conv" and n.name.startswith("r/"))
    assert conv.input[1] == k.path and list(inits[k.path].dims) == [
        k.shape[3], k.shape[2], k.shape[0], k.shape[1]]  # HWIO -> OIHW
    # the values are the layer's own: the initializers hold every weight the logits need
    assert {v.path for v in model.get_layer("a").weights} <= set(inits)


def test_bytes_in_another_process(tmp_path):
    net = parse(OBJECT_NET)
    model = _reference(net).model
    here = export_onnx(model, net).data
    script = ("import sys; sys.path.insert(0, 'tests')\n"
              "from _tfnets import parse, randomise\n"
              "from test_onnx_direct import OBJECT_NET, _reference\n"
              "from asn.backends.tensorflow.onnx_export import export_onnx\n"
              "net = parse(OBJECT_NET)\n"
              f"open({str(tmp_path / 'm.onnx')!r}, 'wb').write("
              "export_onnx(_reference(net).model, net).data)\n")
    env = {**os.environ, "PYTHONHASHSEED": "4321", "TF_CPP_MIN_LOG_LEVEL": "2"}
    r = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert (tmp_path / "m.onnx").read_bytes() == here


def test_openvino_runs_the_direct_file():
    ov = pytest.importorskip("openvino")
    net = parse(FLOW_NET)
    model = _reference(net).model
    data = export_onnx(model, net).data
    compiled = ov.Core().compile_model(ov.Core().read_model(data, b""), "CPU")
    feeds = video(net, batch=2, seed=5)
    got = compiled(feeds)[compiled.output("logits")]
    want = np.asarray(model(feeds["video"], training=False)["logits"])
    assert np.abs(got - want).max() <= 1e-4


def test_unsupported_layers_fall_back_to_tf2onnx(tmp_path):
    """A user module's layer has no emitter: tf2onnx writes that file, and the compile
    report names the layer that made it."""
    user = parse(USER_NET)
    model = _reference(user).model
    reasons = unsupported_layers(model)
    assert [(r.layer, r.kind) for r in reasons] == [("a", "Conv2D")]
    assert unsupported_layers(_reference(parse(LITE_NET)).model) == []

    result = export_onnx(model, user)
    assert result.writer == ("tf2onnx (fallback: a (Conv2D): no direct ONNX emitter for "
                             "this layer class)")
    with pytest.raises(CompileError, match="direct ONNX writer cannot write a "):
        export_onnx(model, user, writer="direct")
    assert export_onnx(_reference(parse(OBJECT_NET)).model, parse(OBJECT_NET),
                       writer="tf2onnx").writer == "tf2onnx"

    out = tmp_path / "user"
    compiled = compile_network(user, str(out), CompileOptions(formats=("onnx",)))
    assert compiled.parity is not None and compiled.parity.ok
    assert json.loads((out / "report.json").read_text())["onnx_writer"] == result.writer


def test_compile_report_says_direct(tmp_path):
    net = parse(CONCAT_NET)
    out = tmp_path / "cat"
    result = compile_network(net, str(out), CompileOptions(formats=("onnx",)),
                             optimise(net, level=1))
    assert result.parity is not None and result.parity.max_abs_diff <= 1e-5
    assert json.loads((out / "report.json").read_text())["onnx_writer"] == "direct"


def test_cli_onnx_writer_option(tmp_path, capsys):
    """`asnc compile --onnx-writer tf2onnx` has tf2onnx write the file (it still passes the
    parity check), the report says so in both places; an unknown writer is a usage error."""
    from asn.cli.main import main

    src = tmp_path / "cat.asn"
    src.write_text(CONCAT_NET)
    out = tmp_path / "out"
    assert main(["compile", str(src), "-o", str(out), "--format", "onnx",
                 "--onnx-writer", "tf2onnx"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["onnx_writer"] == "tf2onnx" and report["options"]["onnx_writer"] == "tf2onnx"
    assert report["parity"]["ok"]
    capsys.readouterr()
    assert main(["compile", str(src), "-o", str(tmp_path / "bad"), "--onnx-writer",
                 "keras2onnx"]) == 1
    assert "keras2onnx" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()
    with pytest.raises(CompileError, match="--onnx-writer takes auto, direct, tf2onnx"):
        CompileOptions(onnx_writer="onnxmltools")
