"""Fidelity of the TensorFlow lowering (backends/tensorflow/lower.py).

The lowered Keras model must be the network `asnc stats` describes: the same parameter
count and trainable split (and, for AssembleNet-50, the Model Garden's own figures in
golden.json), every node's output of the statically inferred shape, a forward pass that
runs, attention that reads what it should, given weights as fixed logits, and weights that
depend on the seed alone. Small inputs (4 frames at 64x64): counts do not depend on size.
"""

from __future__ import annotations

import gc

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

from _tfnets import (ATTENTION_NET, EXAMPLE_NAMES, example, learnable, parse,  # noqa: E402
                     randomise, split_counts, video, with_header)

from asn.backends.tensorflow.lower import build_model, lower  # noqa: E402
from asn.compiler.analysis import analyse  # noqa: E402
from asn.compiler.passes import LoweringForm  # noqa: E402
from asn.dsl.ir import Block, Stem  # noqa: E402

pytestmark = pytest.mark.tf


def _check_counts(net, model):
    st = analyse(net)
    trainable, non_trainable = split_counts(model)
    assert model.count_params() == st.total
    assert (trainable, non_trainable) == (st.trainable, st.non_trainable)
    return st


@pytest.fixture(scope="module", params=EXAMPLE_NAMES)
def published(request):
    net = example(request.param)
    model = build_model(net)
    yield request.param, net, model
    del model
    keras.backend.clear_session()
    gc.collect()


def test_example_counts_shapes_forward(published):
    """count_params == stats (split too); every node's shape; a forward pass with batch 2."""
    name, net, model = published
    st = _check_counts(net, model)
    T = net.header.frames
    feats = model.output["features"]
    assert list(feats) == [n.name for n in net.nodes]
    for node in net.nodes:
        t, h, w, c = st.node(node.name).shape
        assert tuple(feats[node.name].shape[1:]) == (h, w, c), node.name
        assert model.get_layer(node.name).name == node.name
    feeds = video(net, batch=2)
    out = model(feeds if len(feeds) > 1 else feeds["video"], training=False)
    logits = np.asarray(out["logits"])
    assert logits.shape == (2, net.header.classes)
    assert np.all(np.isfinite(logits))
    for node in net.nodes:
        t, h, w, c = st.node(node.name).shape
        assert tuple(out["features"][node.name].shape) == (2 * T, h, w, c), node.name


def test_example_inputs(published):
    name, net, model = published
    inputs = {t.name: tuple(t.shape) for t in model.inputs}
    T, (H, W) = net.header.frames, net.header.size
    want = {"video": (None, T, H, W, 3)}
    if any(isinstance(n, Stem) and n.type == "object" for n in net.nodes):
        want["object"] = (None, T, H, W, net.header.object_classes)  # folded in the model
    assert inputs == want
    has_flow = any(isinstance(n, Stem) and n.type == "flow" for n in net.nodes)
    if has_flow:
        flow = model.get_layer("repflow")
        assert flow.iterations == net.header.iterations
        assert sum(int(np.prod(v.shape)) for v in flow.weights) == 16


def test_given_weights_are_fixed_logits(published):
    name, net, model = published
    blocks = [b for b in net.blocks if len(b.inputs) > 1]
    assert blocks
    for b in blocks:
        layer = model.get_layer(f"{b.name}_fusion")
        if any(i.weight is None for i in b.inputs):  # the tutorial's `mid` learns them
            assert layer.edge_logits.trainable
            continue
        w = np.array([i.weight for i in b.inputs], dtype=np.float64)
        assert not layer.edge_logits.trainable
        np.testing.assert_allclose(np.asarray(layer.edge_logits.numpy()),
                                   (-np.log(1.0 / w - 1.0)).astype(np.float32), rtol=0,
                                   atol=1e-6)
        sig = 1.0 / (1.0 + np.exp(-np.asarray(layer.edge_logits.numpy(), np.float64)))
        np.testing.assert_allclose(sig, w, atol=1e-6)


@pytest.mark.parametrize("name", [
    pytest.param(n, marks=pytest.mark.slow) if n == "assemblenet101" else n  # = -50's code
    for n in EXAMPLE_NAMES])
def test_learnable_weights_counts(name, golden):
    net = learnable(example(name))
    model = build_model(net)
    _check_counts(net, model)
    for b in net.blocks:
        if len(b.inputs) > 1:
            assert model.get_layer(f"{b.name}_fusion").edge_logits.trainable
    if name == "assemblenet50":
        _check_golden(golden, model, 400, "learnable_weights")
    del model
    keras.backend.clear_session()
    gc.collect()


def _check_golden(golden, model, classes, mode):
    """The Model Garden's own count_params (TF 2.20, tf_keras) for AssembleNet-50."""
    want = golden["assemblenet50"]["by_num_classes"][str(classes)][mode]
    trainable, non_trainable = split_counts(model)
    assert (model.count_params(), trainable, non_trainable) == (
        want["total"], want["trainable"], want["non_trainable"])


@pytest.mark.parametrize("mode", ["published_weights", "learnable_weights"])
def test_assemblenet50_golden_101_classes(golden, mode):
    net = example("assemblenet50", classes=101)
    if mode == "learnable_weights":
        net = learnable(net)
    model = build_model(net)
    _check_golden(golden, model, 101, mode)
    del model
    keras.backend.clear_session()
    gc.collect()


def test_assemblenet50_golden_400_classes(golden, published):
    name, net, model = published
    if name != "assemblenet50":
        pytest.skip("AssembleNet-50 only")
    _check_golden(golden, model, 400, "published_weights")
    # golden block shapes are at 224x224 (channels do not depend on the size); at 224x224
    # the static shapes equal them exactly
    shapes = golden["assemblenet50"]["block_shapes"]
    feats = model.output["features"]
    big = analyse(example("assemblenet50", frames=8, size=224))
    for i, node in enumerate(net.nodes):
        _, h, w, c = shapes[str(i)]
        assert feats[node.name].shape[-1] == c
        assert big.node(node.name).shape[1:] == (h, w, c)


# ---------------------------------------------------------------------------------------------
# Attention
# ---------------------------------------------------------------------------------------------
def _att(mode):
    return parse(ATTENTION_NET.format(mode=mode))


def _perturbed_logits(net, node="side"):
    """Logits before and after replacing `node`'s weights (random weights elsewhere)."""
    model = build_model(net)
    _check_counts(net, model)
    randomise(model, seed=1)
    x = video(net, batch=2, seed=3)["video"]
    before = np.asarray(model(x, training=False)["logits"], dtype=np.float64)
    side_before = np.asarray(model(x, training=False)["features"][node])
    layer = model.get_layer(node)
    rng = np.random.default_rng(7)
    layer.set_weights([np.asarray(w) + rng.normal(0, 0.5, np.shape(w)).astype(np.float32)
                       if "variance" not in v.path else np.asarray(w)
                       for v, w in zip(layer.weights, layer.get_weights())])
    out = model(x, training=False)
    assert not np.allclose(np.asarray(out["features"][node]), side_before)
    return model, before, np.asarray(out["logits"], dtype=np.float64)


def test_peer_attention_reads_candidates():
    """peer: a node that is no block's input still changes the logits (through candidates)."""
    model, before, after = _perturbed_logits(_att("peer"))
    assert np.max(np.abs(after - before)) > 1e-6
    names = {layer.name for layer in model.layers}
    # single-input blocks get their own attention layer; each block its candidates
    assert {"a_in0_attention", "c_in0_attention", "top_in0_attention", "d_fusion",
            "a_peer", "side_peer", "c_peer", "d_peer", "top_peer"} <= names


@pytest.mark.parametrize("mode", ["self", "none"])
def test_self_and_no_attention_ignore_other_nodes(mode):
    model, before, after = _perturbed_logits(_att(mode))
    np.testing.assert_array_equal(after, before)
    names = {layer.name for layer in model.layers}
    assert not any(n.endswith("_peer") for n in names)
    assert ("c_in0_attention" in names) == (mode == "self")


def test_peer_candidates_order_and_width():
    net = _att("peer")
    model = build_model(net)
    peer = model.get_layer("d_peer")
    # below level 2: stems (level -1) r, q, then level 0 a, side, then level 1 c
    assert peer.num_candidates == 5
    assert peer.P == 64  # the widest candidate: the stems, 128 // 2 channels


def test_peer_mode_layer_level():
    """Zeroing one candidate node's tensor changes a peer fusion's output."""
    net = _att("peer")
    model = build_model(net)
    randomise(model, seed=2)
    x = video(net, batch=1, seed=4)["video"]
    feats = {k: np.asarray(v) for k, v in model(x, training=False)["features"].items()}
    cand = model.get_layer("d_peer")
    fusion = model.get_layer("d_fusion")
    order = ["r", "q", "a", "side", "c"]  # by level, then declaration order in a level
    inputs = [feats["c"], feats["a"]]
    base = np.asarray(fusion(inputs, candidates=cand([feats[n] for n in order])))
    zeroed = [np.zeros_like(feats[n]) if n == "side" else feats[n] for n in order]
    changed = np.asarray(fusion(inputs, candidates=cand(zeroed)))
    assert np.max(np.abs(changed - base)) > 0


# ---------------------------------------------------------------------------------------------
# Variants, seeds, names
# ---------------------------------------------------------------------------------------------
def test_determinism_by_seed():
    net = example("tutorial", size=32)
    a, b, c = build_model(net, seed=3), build_model(net, seed=3), build_model(net, seed=4)
    wa, wb, wc = a.get_weights(), b.get_weights(), c.get_weights()
    assert [v.path for v in a.weights] == [v.path for v in b.weights]
    assert all(np.array_equal(x, y) for x, y in zip(wa, wb))
    trainable = [i for i, v in enumerate(a.weights) if v.trainable and not any(
        k in v.path for k in ("gamma", "beta", "bias"))]  # constant initialisers
    assert all(not np.array_equal(wa[i], wc[i]) for i in trainable)
    # different nodes of the same shape do not start equal
    k1 = a.get_layer("low_rgb").units[0]["last"].kernel.numpy()
    k2 = a.get_layer("low_mix").units[0]["last"].kernel.numpy()
    assert k1.shape == k2.shape and not np.array_equal(k1, k2)


@pytest.mark.parametrize("changes", [
    {"head_pool": "max"},
    {"combine": "concat"},
    {"attention": "self"},
    {"attention": "peer"},
    {"bn_momentum": 0.9, "bn_epsilon": 1e-3},
], ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()))
def test_header_variants(changes):
    net = with_header(example("tutorial", size=32), **changes)
    model = build_model(net)
    st = _check_counts(net, model)
    out = model(video(net, batch=2)["video"], training=False)
    assert tuple(out["logits"].shape) == (2, net.header.classes)
    for n in st.nodes:
        if n.kind in ("stem", "block"):
            assert tuple(out["features"][n.name].shape[1:]) == n.shape[1:]
    if "bn_momentum" in changes:
        bn = model.get_layer("rgb").bn1
        assert (bn.momentum, bn.epsilon) == (0.9, 1e-3)


def test_bottleneck3d_and_batch():
    net = parse("""
network b3d { depth [1, 2, 1, 1] frames 3 size 32x32 classes 5 }
stem r = rgb
block a = bottleneck3d(level=0, filters=4, dilation=2) <- r
block b = bottleneck(level=1, filters=4, stride=2) <- a, r
block c = bottleneck3d(level=3, filters=8, stride=4) <- b
""")
    model = build_model(net, batch=2)
    _check_counts(net, model)
    assert tuple(model.inputs[0].shape) == (2, 3, 32, 32, 3)
    assert model.get_layer("a").temporal == "3d"
    out = model(video(net, batch=2)["video"], training=False)
    assert tuple(out["logits"].shape) == (2, 5)


def test_aux_names_dodge_node_names():
    net = parse("""
network names { depth [1, 1, 1, 1] frames 2 size 32x32 classes 2 }
stem repflow = rgb
stem fold = flow
block head = bottleneck(level=0, filters=4) <- repflow, fold
block head_fusion = bottleneck(level=3, filters=4, stride=2) <- head, fold
""")
    model = build_model(net)
    _check_counts(net, model)
    names = [layer.name for layer in model.layers]
    assert len(names) == len(set(names))
    for node in ("repflow", "fold", "head", "head_fusion"):
        assert node in names
    assert model.get_layer("repflow").__class__.__name__ == "RGBStem"


USER_MODULE = '''
import keras


class Pointwise:
    """A user block: one strided 1x1 conv to `filters` channels, no bias."""

    def __new__(cls, filters, level, stride, dilation, units, frames, seed, name):
        return keras.layers.Conv2D(filters, 1, strides=stride, use_bias=False, name=name,
                                   kernel_initializer=keras.initializers.GlorotUniform(seed))

    @staticmethod
    def asn_static(c_in, filters, level, stride, dilation, units, frames, height, width):
        return {"channels": filters, "height": -(-height // stride),
                "width": -(-width // stride), "trainable": c_in * filters,
                "non_trainable": 0, "flops": 0}


class Liar(Pointwise):
    @staticmethod
    def asn_static(c_in, filters, level, stride, dilation, units, frames, height, width):
        return {"channels": filters, "height": height, "width": width,
                "trainable": c_in * filters, "non_trainable": 0}
'''


def test_user_module(tmp_path, monkeypatch):
    (tmp_path / "asn_user_blocks.py").write_text(USER_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    text = """
network user {{ depth [1, 1, 1, 1] frames 2 size 32x32 classes 2 }}
stem r = rgb
block a = "asn_user_blocks:{cls}"(level=0, filters=6, stride=2) <- r
block top = bottleneck(level=3, filters=4, stride=2) <- a
"""
    net = parse(text.format(cls="Pointwise"))
    model = build_model(net)
    _check_counts(net, model)
    assert model.get_layer("a").__class__.__name__ == "Conv2D"
    from asn.compiler.usermodule import UserModuleError

    with pytest.raises(UserModuleError, match="asn_static says"):
        build_model(parse(text.format(cls="Liar")))


def test_lower_reports_layers_per_node():
    net = _att("peer")
    lowered = lower(net, form=LoweringForm.training())
    assert lowered.node_layers["d"] == ["d_peer", "d_fusion", "d"]
    assert lowered.node_layers["a"] == ["a_peer", "a_in0_attention", "a"]
    assert lowered.node_layers["r"] == ["r"]
    assert set(lowered.order) == {n.name for n in net.nodes}
    assert isinstance(net.node_map()["d"], Block)


def test_surviving_layers_keep_their_initial_weights_when_nodes_are_removed():
    """Seeds follow node names: removing a node (dead-node elimination, pruning) must not
    change the initial weights of the layers that remain."""
    from asn.dsl.parser import parse

    src = """network n { depth [1, 1, 1, 1] frames 2 size 32x32 classes 3 }
stem r0 = rgb
block a = bottleneck(level=0, filters=4) <- r0
{extra}block top = bottleneck(level=3, filters=4, stride=2) <- a
"""
    small = build_model(parse(src.replace("{extra}", "")), seed=3)
    big = build_model(parse(src.replace(
        "{extra}", "block dead = bottleneck(level=1, filters=4) <- a\n")), seed=3)
    for name in ("r0", "a", "top"):
        for w1, w2 in zip(small.get_layer(name).weights, big.get_layer(name).weights):
            assert np.array_equal(np.asarray(w1), np.asarray(w2)), (name, w1.path)
