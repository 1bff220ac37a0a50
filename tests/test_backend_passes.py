"""The exact backend passes: fold-batchnorm per layer kind against the batch norm's formula,
the scale hooks of fold-edge-weights, the whole chain on small networks (random batch-norm
statistics, so folding is not trivially the identity), a broken pass caught by the compile's
proof, the pruned model's deviation report, and the exported graphs per level."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

pytestmark = pytest.mark.tf
pytest.importorskip("tensorflow")
import keras  # noqa: E402
from _tfnets import example, parse, randomise, video, with_header  # noqa: E402

from asn.backends.tensorflow import proofs  # noqa: E402
from asn.backends.tensorflow.compile import (CompileError, CompileOptions,  # noqa: E402
                                             compile_network)
from asn.backends.tensorflow.rewrites import fold_batchnorm as fold_batchnorm_rewrite  # noqa: E402,E501
from asn.backends.tensorflow.layers import (BottleneckBlock, FlowStem,  # noqa: E402
                                            InvertedBottleneckBlock, LiteHead, LiteStem,
                                            RGBStem)
from asn.backends.tensorflow.layers.folding import bn_count, load_folded  # noqa: E402
from asn.backends.tensorflow.lower import lower  # noqa: E402
from asn.compiler.passes import LoweringForm, optimise  # noqa: E402

ONNX_ONLY = CompileOptions(formats=("onnx",), verify=False)

LAYERS = {
    "bottleneck": (lambda **k: BottleneckBlock(4, 8, 3, 2, 2, 2, **k), (4, 8, 8, 6)),
    "bottleneck3d": (lambda **k: BottleneckBlock(4, 8, 2, 2, 1, 2, temporal="3d", **k),
                     (4, 8, 8, 6)),
    "rgb_stem": (lambda **k: RGBStem(8, 2, 2, **k), (4, 16, 16, 3)),
    "flow_stem": (lambda **k: FlowStem(8, **k), (4, 16, 16, 2)),
    "lite_stem": (lambda **k: LiteStem(3, 1, 2, width=8, **k), (4, 16, 16, 3)),
    "lite_block": (lambda **k: InvertedBottleneckBlock((8, 8, 6), 2, 1, 2, 2, **k),
                   (4, 8, 8, 5)),
    "lite_head": (lambda **k: LiteHead(3, 2, **k), (4, 4, 4, 6)),
}


def _bn_by_formula(layer, x):
    """The reference layer's output with every batch norm evaluated by hand: run it with its
    batch norms' call replaced by gamma * (x - mean) / sqrt(var + eps) + beta."""
    originals = []
    for sub in layer._flatten_layers(include_self=False, recursive=True):
        if isinstance(sub, keras.layers.BatchNormalization):
            def manual(t, training=None, mask=None, _bn=sub):
                return (_bn.gamma * (t - _bn.moving_mean)
                        / keras.ops.sqrt(_bn.moving_variance + _bn.epsilon) + _bn.beta)
            originals.append((sub, sub.call))
            sub.call = manual
    try:
        return layer(x, training=False).numpy()
    finally:
        for sub, call in originals:
            sub.call = call


def _twins(kind, fold, seed):
    """(input, the reference layer with random batch-norm statistics, its fold_bn=fold twin)."""
    make, shape = LAYERS[kind]
    x = np.random.default_rng(seed).random(shape, dtype=np.float32)
    ref = make(name="n")
    ref(x)
    randomise(ref, seed)
    twin = make(name="n", fold_bn=fold)
    twin(x)
    return x, ref, twin


@pytest.mark.parametrize("kind", sorted(LAYERS))
def test_fold_batchnorm_per_layer(kind):
    x, ref, folded = _twins(kind, True, 1)
    n = load_folded(folded, ref)
    assert n == bn_count(ref) > 0 and bn_count(folded) == 0
    assert not any(isinstance(s, keras.layers.BatchNormalization)
                   for s in folded._flatten_layers(include_self=False, recursive=True))
    want = _bn_by_formula(ref, x)
    got = folded(x, training=False).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    # parameters: 4C per batch norm became C biases
    bn_values = sum(int(np.prod(v.shape)) for s in ref._flatten_layers(include_self=False)
                    if isinstance(s, keras.layers.BatchNormalization) for v in s.weights)
    assert ref.count_params() - folded.count_params() == 3 * bn_values // 4


@pytest.mark.parametrize("kind", sorted(LAYERS))
def test_fold_in_place_is_the_folded_twin(kind):
    """`fold_in_place` turns the reference layer into exactly the layer built with
    ``fold_bn=True`` and folded from it (`load_folded`): the same weights by path, shape,
    order and value, the same configuration, no batch norm left, the same output."""
    from asn.backends.tensorflow.layers.folding import fold_in_place

    x, ref, twin = _twins(kind, True, 3)
    n = load_folded(twin, ref)
    want = twin(x, training=False).numpy()
    assert fold_in_place(ref) == n > 0
    assert [(v.path, tuple(v.shape)) for v in ref.weights] == \
        [(v.path, tuple(v.shape)) for v in twin.weights]
    for a, b in zip(ref.weights, twin.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert ref.get_config() == twin.get_config() and bn_count(ref) == 0
    assert not any(isinstance(s, keras.layers.BatchNormalization)
                   for s in ref._flatten_layers(include_self=False, recursive=True))
    np.testing.assert_array_equal(ref(x, training=False).numpy(), want)


@pytest.mark.parametrize("kind,fold", [("bottleneck", False), ("bottleneck", True),
                                       ("bottleneck3d", True), ("rgb_stem", False),
                                       ("flow_stem", True)])
def test_scale_hooks(kind, fold):
    x, ref, layer = _twins(kind, fold, 2)
    load_folded(layer, ref) if fold else layer.set_weights(ref.get_weights())
    base = layer(x, training=False).numpy()
    layer.scale_output(3.5)
    np.testing.assert_allclose(layer(x, training=False).numpy(), 3.5 * base,
                               rtol=1e-4, atol=1e-5)
    if hasattr(layer, "scale_input"):
        layer.scale_input(0.25)  # now computes on 1/0.25 = 4x smaller inputs
        np.testing.assert_allclose(layer(x / 0.25, training=False).numpy(), 3.5 * base,
                                   rtol=1e-4, atol=1e-5)


SMALL = """
network small {{
  depth [1, 1, 1, 1]
  frames 2
  size 32x32
  classes 5
  flow_iterations 2
{extra}}}
stem r = rgb
stem f = flow
stem q = rgb(dilation=2)
block a = bottleneck(level=0, filters=4) <- r @0.3, f @0.6, q @0.8
block b = bottleneck3d(level=1, filters=4, stride=2) <- a @0.5, r @0.15, f @0.9
block c = bottleneck(level=1, filters=4, stride=2) <- a @0.4, q @0.7
block d = bottleneck(level=2, filters=8, stride=2) <- b @0.6, c @0.3, a @0.5
block top = bottleneck(level=3, filters=8, stride=2) <- d @0.5, c @0.9
"""


def _chain(net, seed=0):
    o = optimise(net, level=1)
    ref = lower(o.network, seed=seed, form=LoweringForm.reference())
    randomise(ref.model, seed)
    feeds = video(o.network, 2, seed)
    final, done = proofs.apply_backend_passes(o.network, ref, o.form, feeds, seed=seed)
    return o, ref, final, done, feeds


@pytest.mark.parametrize("net", [
    pytest.param(lambda: parse(SMALL.format(extra="")), id="small-standard"),
    pytest.param(lambda: example("tutorial", frames=2, size=32, flow_iterations=2),
                 id="tutorial"),
    pytest.param(lambda: with_header(example("assemblenet_plus_lite", frames=2, size=32),
                                     depth=[1, 1, 1, 1], flow_iterations=2), id="lite"),
])
def test_chain_is_exact_and_counts_match_stats(net):
    net = net()
    o, ref, final, done, feeds = _chain(net)
    assert [p.name for p in done] == list(o.form.applied)
    for p in done:
        assert p.ok and p.max_abs_diff <= 1e-4, p.to_json()
    want = proofs.logits_of(ref.model, feeds)
    got = proofs.logits_of(final.model, feeds)
    assert np.max(np.abs(want)) > 1e-2  # not a trivially zero network
    np.testing.assert_allclose(got, want, atol=1e-4)
    assert final.model.count_params() == o.stats().total
    assert not any(isinstance(s, keras.layers.BatchNormalization)
                   for s in final.model._flatten_layers(include_self=False, recursive=True))


def test_edge_fold_leaves_no_multiply_on_a_tree():
    net = parse(SMALL.format(extra=""))
    o, ref, final, done, _ = _chain(net)
    detail = done[-1].detail
    assert done[-1].name == "fold-edge-weights"
    assert detail["folded_edges"] + detail["remaining_multiplies"] == 13
    fusions = [final.model.get_layer(n) for n in final.fusions.values()]
    constant = sum(s != 1.0 for f in fusions for s in f.scales)
    assert constant == detail["remaining_multiplies"]
    assert not any("edge_logits" in v.path for v in final.model.weights)


def test_broken_pass_fails_the_compile_naming_it(tmp_path, monkeypatch):
    good = fold_batchnorm_rewrite.rewrite

    def off_by_a_bit(step):
        new, detail = good(step)
        conv = new.model.get_layer("top").units[0]["last"]
        conv.bias.assign(conv.bias.numpy() + 0.5)
        return new, detail

    monkeypatch.setattr(fold_batchnorm_rewrite, "rewrite", off_by_a_bit)
    net = parse(SMALL.format(extra=""))
    out = tmp_path / "out"
    with pytest.raises(CompileError, match="fold-batchnorm"):
        compile_network(net, str(out), ONNX_ONLY, optimise(net, level=1))
    assert not out.exists()


def test_pruned_deviation_reported_and_dce_proved(tmp_path):
    net = parse(SMALL.format(extra="") + "block dead = bottleneck(level=1, filters=4) <- a\n")
    o = optimise(net, level=2)
    names = [name for name, _ in o.stages]
    assert names == ["dead-node-elimination", "prune-edges"]
    result = compile_network(net, str(tmp_path / "out"), ONNX_ONLY, o)
    assert result.report["passes"]["level"] == 2
    proofs = {p["pass"]: p for p in result.report["proofs"]}
    assert proofs["dead-node-elimination"]["ok"] and \
        proofs["dead-node-elimination"]["max_abs_diff"] == 0.0
    prune = proofs["prune-edges"]
    assert prune["exact"] is False and prune["ok"] is None
    assert 0 < prune["max_abs_diff"] < float("inf") and prune["relative_deviation"] > 0
    assert result.params == o.stats().total


def test_exported_graph_per_level(tmp_path):
    """-O0 exports the flow layer's difference convolutions and one multiply per connection;
    -O1 exports neither. The -O0 SavedModel computes every batch norm (one `Rsqrt` of
    `var + eps` each), the -O1 one none; so does the ONNX model (the direct writer emits
    one BatchNormalization per batch norm the model still has)."""
    import collections

    import onnx
    from tensorflow.core.protobuf import saved_model_pb2

    net = parse(SMALL.format(extra=""))
    counts, rsqrt = {}, {}
    for level in (0, 1):
        o = optimise(net, level=level)
        out = tmp_path / f"o{level}"
        compile_network(net, str(out), CompileOptions(), o)
        m = onnx.load(str(out / "model.onnx"))
        counts[level] = collections.Counter(n.op_type for n in m.graph.node)
        sm = saved_model_pb2.SavedModel()
        sm.ParseFromString((out / "saved_model" / "saved_model.pb").read_bytes())
        graph = sm.meta_graphs[0].graph_def
        rsqrt[level] = sum(n.op == "Rsqrt" for f in graph.library.function for n in f.node_def)
    # SMALL as written: 5 blocks of one unit (projection + 3 convs, a batch norm each) and
    # 3 stems (rgb: 2 convs, flow: 1, rgb: 2): 5 * 4 + 2 + 1 + 2 = 25 batch norms
    assert rsqrt == {0: 25, 1: 0}
    assert (counts[0]["BatchNormalization"], counts[1]["BatchNormalization"]) == (25, 0)
    # -O0 also has the flow layer's fixed difference convolutions
    assert counts[0]["Conv"] > counts[1]["Conv"]
    assert counts[0]["Mul"] > counts[1]["Mul"]
    assert sum(counts[1].values()) < sum(counts[0].values())


def test_trained_weights_survive_every_pass(tmp_path):
    """Weights saved from the training form load into the reference model; after dead-node
    elimination and all folds the exported ONNX computes the trained model's logits."""
    import onnxruntime as ort

    from asn.backends.tensorflow.lower import build_model

    net = parse(SMALL.format(extra="") + "block dead = bottleneck(level=1, filters=4) <- a\n")
    trained = build_model(net, seed=5)
    randomise(trained, seed=5)
    path = tmp_path / "w.weights.h5"
    trained.save_weights(str(path))
    o = optimise(net, level=1)
    assert "dead" not in {n.name for n in o.network.nodes}
    out = tmp_path / "out"
    result = compile_network(net, str(out), CompileOptions(weights=str(path), seed=0,
                                                           formats=("onnx",), verify=False), o)
    assert [p["pass"] for p in result.report["proofs"]] == [
        "dead-node-elimination", "repflow-slices", "fold-batchnorm", "fold-edge-weights"]
    feeds = video(net, 2, seed=9)
    want = proofs.logits_of(trained, feeds)
    got = ort.InferenceSession(str(out / "model.onnx"),
                               providers=["CPUExecutionProvider"]).run(["logits"], feeds)[0]
    assert np.max(np.abs(want)) > 1e-2
    np.testing.assert_allclose(got, want, atol=1e-4)


def test_no_identity_fusion_resize_or_projection_is_emitted():
    """A block left with one input by pruning has no fusion layer; inputs of the same size
    and width get no max-pool and no 1x1 projection (at every level)."""
    net = parse("""
network ids {
  depth [1, 1, 1, 1]
  frames 2
  size 32x32
  classes 3
}
stem r = rgb
stem q = rgb(dilation=2)
block a = bottleneck(level=0, filters=8) <- r @0.9, q @0.1
block b = bottleneck(level=0, filters=8) <- r @0.5, q @0.5
block top = bottleneck(level=3, filters=8, stride=4) <- a @0.5, b @0.5
""")
    o2 = optimise(net, level=2)
    a_inputs = next(n for n in o2.network.nodes if n.name == "a").inputs
    assert [i.source for i in a_inputs] == ["r"]
    low = lower(o2.network, form=LoweringForm.reference())
    assert "a" not in low.fusions and "a_fusion" not in {x.name for x in low.model.layers}
    for level in (0, 1):
        o = optimise(net, level=level)
        lo = lower(o.network, form=LoweringForm.reference())
        for block in ("b", "top"):
            fusion = lo.model.get_layer(lo.fusions[block])
            assert fusion._factors == [None, None] and fusion.group_convs() == {}


def test_chain_with_user_module_object_stem_and_learnable_weights(tmp_path, monkeypatch):
    """Fixed points of fold-edge-weights: a user block (nothing to scale, in or out) and an
    object stem; connection weights left to learn are folded from the values the model
    holds."""
    from test_lower import USER_MODULE

    (tmp_path / "asn_user_blocks_fold.py").write_text(USER_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    net = parse("""
network fixed {
  depth [1, 1, 1, 1]
  frames 2
  size 32x32
  classes 3
  attention none
  objects 5
  flow_iterations 2
}
stem r = rgb
stem f = flow
stem o = object
block u = "asn_user_blocks_fold:Pointwise"(level=0, filters=16) <- r, f
block a = bottleneck(level=0, filters=4) <- r, f, o
block b = bottleneck(level=1, filters=4, stride=2) <- u, a, o
block top = bottleneck(level=3, filters=8, stride=2) <- b, a
""")
    assert all(i.weight is None for n in net.nodes for i in getattr(n, "inputs", []))
    o, ref, final, done, _ = _chain(net, seed=3)
    assert o.form.has("fold-edge-weights")
    assert all(p.ok for p in done), [p.to_json() for p in done]
    assert final.model.count_params() == o.stats().total
    assert not any("edge_logits" in v.path for v in final.model.weights)


@pytest.mark.parametrize("net", [
    pytest.param(lambda: parse(SMALL.format(extra="")), id="small-standard"),
    pytest.param(lambda: with_header(example("assemblenet_plus_lite", frames=2, size=32),
                                     depth=[1, 1, 1, 1], flow_iterations=2), id="lite"),
])
def test_placeholder_build_draws_nothing_and_keeps_fixed_values(net):
    """A rewrite's build (`placeholder=True`) has zeros where a build draws random weights,
    the same fixed values elsewhere (batch-norm variances, the flow layer's kernels), the
    same variables; and it leaves the next ordinary build's seeded values unchanged."""
    net = net()
    o = optimise(net, level=1)
    seeded = lower(o.network, seed=3, form=LoweringForm.reference())
    empty = lower(o.network, seed=3, form=LoweringForm.reference(), placeholder=True)
    again = lower(o.network, seed=3, form=LoweringForm.reference())
    pairs = list(zip(seeded.model.weights, empty.model.weights, again.model.weights))
    assert len(pairs) == len(seeded.model.weights) == len(empty.model.weights)
    drawn = 0
    for s, e, a in pairs:
        assert s.path == e.path and s.shape == e.shape
        np.testing.assert_array_equal(a.numpy(), s.numpy())
        s_val, e_val = s.numpy(), e.numpy()
        if np.array_equal(s_val, e_val):
            continue
        assert not np.any(e_val), s.path  # a random draw became zeros, nothing else changed
        assert np.unique(s_val).size > 1, s.path  # and it was a random draw
        drawn += s_val.size
    kernels = sum(int(np.prod(v.shape)) for v in seeded.model.weights if "kernel" in v.path)
    assert drawn >= kernels - 16  # every conv and dense kernel but the flow layer's fixed 16


def test_rewrites_set_every_weight_of_their_placeholder_build():
    """The chain from a randomised reference gives a final model with no all-zero kernel
    (each one came from the model before it, none kept its placeholder zeros)."""
    net = parse(SMALL.format(extra=""))
    _, _, final, _, _ = _chain(net)
    for v in final.model.weights:
        if "kernel" in v.path:
            assert np.any(v.numpy()), v.path


# ---------------------------------------------------------------------------------------------
# Proofs at a smaller input that meets the same border cases (`compiler.proof_input`)
# ---------------------------------------------------------------------------------------------
def _small_at(size: int):
    return with_header(parse(SMALL.format(extra="")), size=(size, size))


@pytest.fixture(scope="module")
def trained_small_128(tmp_path_factory):
    """SMALL at 128x128 and a weights file of it with every weight random (at its initial
    weights each unit's last batch norm has gamma 0, so the last level sees its input only
    through the strided 1x1 shortcut: every other position would not reach the logits)."""
    from asn.backends.tensorflow.lower import build_model

    net = _small_at(128)
    trained = build_model(net, seed=3)
    randomise(trained, seed=3)
    path = tmp_path_factory.mktemp("w") / "w.weights.h5"
    trained.save_weights(str(path))
    return net, trained, str(path)


def test_reduced_proofs_write_the_same_artifacts_as_full_size_ones(tmp_path, trained_small_128):
    """SMALL at 128x128 proves at 96x96; with trained weights, the ONNX file is byte for
    byte the one a compile proving at 128x128 writes, and computes the trained model."""
    import onnxruntime as ort

    net, trained, path = trained_small_128
    reports = {}
    for full in (False, True):
        out = tmp_path / f"full{full}"
        options = CompileOptions(weights=path, formats=("onnx",), verify=False,
                                 full_size_proofs=full)
        reports[full] = compile_network(net, str(out), options, optimise(net, level=1)).report
    reduced, full = reports[False], reports[True]
    assert reduced["proof_input"]["size"] == [96, 96] and reduced["proof_input"]["reduced"]
    assert full["proof_input"]["size"] == [128, 128] and not full["proof_input"]["reduced"]
    assert "resize" in reduced["timings_s"] and "resize" not in full["timings_s"]
    assert [p["pass"] for p in reduced["proofs"]] == [p["pass"] for p in full["proofs"]]
    assert all(p["ok"] for p in reduced["proofs"])
    assert reduced["onnx_sha256"] == full["onnx_sha256"]
    feeds = video(net, 2, seed=4)
    want = proofs.logits_of(trained, feeds)
    got = ort.InferenceSession(str(tmp_path / "fullFalse" / "model.onnx"),
                               providers=["CPUExecutionProvider"]).run(["logits"], feeds)[0]
    assert np.max(np.abs(want)) > 1e-2
    np.testing.assert_allclose(got, want, atol=1e-4)


@pytest.mark.parametrize("where", ["last column", "first row", "centre"])
def test_reduced_proof_catches_a_rewrite_wrong_in_one_border_case(tmp_path, monkeypatch, where,
                                                                  trained_small_128):
    """A flow layer rewrite that is wrong at one kind of position only (a border column, a
    border row, one interior pixel) fails the compile's proof at the reduced size: each kind
    of position the compile size has is there in the proof and reaches the logits. (The
    error is large, 1000 against flow values of 1-10: the global pools dilute an error at
    one position, +1 in one column moves the logits ~1e-6 at 96x96 and ~5e-7 at 128x128,
    below the proofs' 1e-4 at either size.)"""
    from asn.backends.tensorflow.repflow import RepresentationFlow

    right = RepresentationFlow.call

    def call_off(self, x, *args, **kwargs):  # the fused form, wrong at one kind of position
        y = right(self, x, *args, **kwargs)
        if not self.fused:
            return y
        h, w = int(y.shape[1]), int(y.shape[2])
        mask = np.zeros((h, w), np.float32)
        if where == "last column":
            mask[:, -1] = 1
        elif where == "first row":
            mask[0, :] = 1
        else:
            mask[h // 2, w // 2] = 1
        return y + keras.ops.convert_to_tensor(1000.0 * mask[None, :, :, None])

    monkeypatch.setattr(RepresentationFlow, "call", call_off)
    net, _, path = trained_small_128
    options = CompileOptions(weights=path, formats=("onnx",), verify=False)
    with pytest.raises(CompileError, match="repflow-slices") as caught:
        compile_network(net, str(tmp_path / "out"), options, optimise(net, level=1))
    assert "max |logit difference|" in str(caught.value)


def test_repflow_slices_in_place_gives_the_same_logits_it_claims():
    """The repflow-slices rewrite changes the flow layer's form in place and checks the
    layer's output on the proof clips; where it reports them bit-identical, a forward pass
    of the whole model gives bit-identical logits, and the proof skips that pass."""
    from asn.backends.tensorflow.rewrites import SAME_LOGITS, RewriteStep, repflow_slices

    net = parse(SMALL.format(extra=""))
    o = optimise(net, level=1)
    ref = lower(o.network, seed=0, form=LoweringForm.reference())
    randomise(ref.model, 0)
    feeds = video(o.network, 2, seed=1)
    before = proofs.logits_of(ref.model, feeds)
    assert not ref.model.get_layer("repflow").fused
    form = LoweringForm.reference().with_pass("repflow-slices")
    new, detail = repflow_slices.rewrite(RewriteStep(o.network, ref, form, feeds=feeds))
    assert new.model is ref.model and new.form == form and new.model.get_layer("repflow").fused
    assert detail == {"flow_output_identical": True, SAME_LOGITS: True}
    after = proofs.logits_of(new.model, feeds)
    assert np.array_equal(after, before) and np.max(np.abs(before)) > 1e-2
    # without the clips it only changes the form (the proof then runs the model)
    again = lower(o.network, seed=0, form=LoweringForm.reference())
    _, plain = repflow_slices.rewrite(RewriteStep(o.network, again, form))
    assert plain == {} and again.model.get_layer("repflow").fused
