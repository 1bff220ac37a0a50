"""AssembleNet++ attention layers and AssembleNet++lite stem, block and head.

Spec: SEMANTICS.md, "AssembleNet++ ... / What asnc builds (the original's semantics)".
Tiny shapes throughout; parameter formulas are written out here, independently of
the layers. Every layer also goes through the shared harness (tests/layer_harness.py).
"""

import math
import os

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

from layer_harness import Static, analysed, check_layer, node_static  # noqa: E402

from asn.backends.tensorflow.layers.attention import (  # noqa: E402
    PeerAttention,
    PeerCandidates,
    SelfAttention,
)
from asn.backends.tensorflow.layers.lite import (  # noqa: E402
    InvertedBottleneckBlock,
    LiteHead,
    LiteStem,
)

pytestmark = pytest.mark.tf

T = 3  # frames per clip


def rand(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype("float32")


def built(layer, *shapes):
    layer.build(*shapes)
    return layer


def sigmoid(v):
    return 1.0 / (1.0 + np.exp(-v))


def softmax(v, axis):
    e = np.exp(v - v.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


# ---------------------------------------------------------------- formulas (spec)


def stem_params(c, w=24):
    return 9 * c * w + 4 * w + 3 * w * w + 4 * w


def block_params(c, f, units, stride):
    f0, f1, f2 = f

    def unit(c_in, s, shortcut):
        n = c_in * f0 + 4 * f0 + f1 * f2 + 4 * f2
        n += 9 * f0 * f1 + 4 * f1 + 3 * f1 * f1 + 4 * f1 if s > 1 else 27 * f0 * f1 + 4 * f1
        return n + (c_in * f2 + 4 * f2 if shortcut else 0)

    return unit(c, stride, True) + (units - 1) * unit(f2, 1, False)


def head_params(c3, k):
    return c3 * 432 + 4 * 432 + 432 * 2048 + 4 * 2048 + 2048 * k + k


# ---------------------------------------------------------------- parameter counts


@pytest.mark.parametrize("c", [1, 3, 24])
def test_self_attention_params(c):
    assert built(SelfAttention(c), (None, 4, 4, c)).count_params() == c * c + c


@pytest.mark.parametrize("n,p,c", [(1, 3, 5), (4, 24, 12), (9, 68, 24)])
def test_peer_attention_params(n, p, c):
    layer = built(PeerAttention(c, n), (None, 4, 4, c), (None, n, p))
    assert layer.count_params() == n + p * c + c
    assert layer.z.trainable and any(w is layer.z for w in layer.trainable_weights)


def test_peer_candidates_params_mixed_widths():
    shapes = [(None, 8, 8, 2), (None, 8, 8, 24), (None, 4, 4, 5), (None, 2, 2, 12)]
    p = 24
    layer = built(PeerCandidates(p, len(shapes)), shapes)
    assert layer.count_params() == sum(s[-1] * p + p for s in shapes)
    assert layer.compute_output_shape(shapes) == (None, 4, p)


@pytest.mark.parametrize("c,expected", [(3, 2568), (2, 2352)])
def test_lite_stem_params(c, expected):
    stem = built(LiteStem(c, 1, T), (None, 16, 16, c))
    assert stem.count_params() == expected == stem_params(c)


@pytest.mark.parametrize(
    "c,f,units,d,s",
    [(24, (27, 27, 12), 3, 2, 2), (12, (6, 8, 5), 2, 1, 1), (5, (4, 4, 5), 1, 3, 1)],
)
def test_lite_block_params(c, f, units, d, s):
    block = built(InvertedBottleneckBlock(f, units, d, s, T), (None, 8, 8, c))
    assert block.count_params() == block_params(c, f, units, s)


@pytest.mark.parametrize("k", [1, 157])
def test_lite_head_params(k):
    head = built(LiteHead(k, T), (None, 2, 2, 192))
    assert head.count_params() == head_params(192, k) == 977600 + 2049 * k


def test_max_pool_predictions_and_dropout_add_no_params():
    a = built(LiteHead(7, T), (None, 2, 2, 16))
    b = built(LiteHead(7, T, max_pool_predictions=True, dropout=0.3), (None, 2, 2, 16))
    assert a.count_params() == b.count_params() == head_params(16, 7)


# ---------------------------------------------------------------- shapes


@pytest.mark.parametrize("hw,out", [((16, 16), (8, 8)), ((9, 14), (5, 7))])
def test_stem_shape(hw, out):
    stem = LiteStem(3, 2, T, name="s0")
    y = stem(rand(2 * T, *hw, 3))
    assert tuple(y.shape) == (2 * T, *out, 24)
    assert stem.compute_output_shape((2 * T, *hw, 3)) == (2 * T, *out, 24)


@pytest.mark.parametrize(
    "hw,s,out", [((8, 8), 2, (4, 4)), ((5, 7), 2, (3, 4)), ((6, 6), 1, (6, 6))]
)
def test_block_shape(hw, s, out):
    block = InvertedBottleneckBlock((4, 6, 5), 2, 1, s, T)
    y = block(rand(2 * T, *hw, 3))
    assert tuple(y.shape) == (2 * T, *out, 5)
    assert block.compute_output_shape((2 * T, *hw, 3)) == (2 * T, *out, 5)


def test_head_shape():
    for mpp in (False, True):
        head = LiteHead(6, T, max_pool_predictions=mpp)
        assert tuple(head(rand(2 * T, 3, 3, 8)).shape) == (2, 6)
        assert head.compute_output_shape((2 * T, 3, 3, 8)) == (2, 6)


def test_attention_shapes_symbolic():
    x = keras.Input((4, 4, 6))
    low = keras.Input((8, 8, 3))
    cands = PeerCandidates(6, 2)([low, x])
    assert tuple(cands.shape) == (None, 2, 6)
    assert tuple(PeerAttention(6, 2)(x, cands).shape) == (None, 4, 4, 6)
    assert tuple(SelfAttention(6)(x).shape) == (None, 4, 4, 6)


# ---------------------------------------------------------------- attention math


def test_self_attention_hand_case():
    x = rand(2, 2, 3, 2, seed=1)
    layer = built(SelfAttention(2), x.shape)
    kernel = np.array([[1.0, 0.0], [0.0, -2.0]], "float32")
    bias = np.array([0.5, 0.0], "float32")
    layer.gate.kernel.assign(kernel)
    layer.gate.bias.assign(bias)
    gate = sigmoid(x.mean(axis=(1, 2)) @ kernel + bias)  # per frame
    np.testing.assert_allclose(layer(x), x * gate[:, None, None, :], rtol=1e-5, atol=1e-6)


def test_peer_attention_hand_case():
    x = rand(2, 2, 2, 3, seed=2)
    cands = rand(2, 3, 2, seed=3)
    layer = built(PeerAttention(3, 3), x.shape, cands.shape)
    z = np.log(np.array([1.0, 2.0, 3.0], "float32"))  # softmax -> 1/6, 2/6, 3/6
    kernel = np.array([[0.5, -1.0, 0.0], [1.0, 0.25, -0.5]], "float32")
    bias = np.array([0.0, 0.1, -0.2], "float32")
    layer.z.assign(z)
    layer.gate.kernel.assign(kernel)
    layer.gate.bias.assign(bias)
    source = (cands * (np.array([1, 2, 3], "float32") / 6)[None, :, None]).sum(axis=1)
    gate = sigmoid(source @ kernel + bias)
    np.testing.assert_allclose(layer(x, cands), x * gate[:, None, None, :], rtol=1e-5, atol=1e-6)


def test_peer_candidates_order_and_values():
    xs = [rand(4, 4, 4, 2, seed=4), rand(4, 2, 2, 5, seed=5)]
    layer = PeerCandidates(3, 2)
    out = np.asarray(layer(xs))
    for n, (x, dense) in enumerate(zip(xs, layer.projections)):
        want = x.mean(axis=(1, 2)) @ np.asarray(dense.kernel) + np.asarray(dense.bias)
        np.testing.assert_allclose(out[:, n], want, rtol=1e-5, atol=1e-6)


def test_peer_attention_reads_candidates_self_attention_does_not():
    x_in, low_in = keras.Input((4, 4, 6)), keras.Input((4, 4, 2))
    cands = PeerCandidates(6, 2, seed=1)([low_in, x_in])
    peer = PeerAttention(6, 2, seed=2)(x_in, cands)
    own = SelfAttention(6, seed=3)(x_in)
    model = keras.Model([x_in, low_in], [peer, own])
    for w in model.weights:  # N(0, 0.01) gates are ~0.5 everywhere; make them matter
        w.assign(rand(*w.shape, seed=7))
    x, low = rand(2, 4, 4, 6, seed=8), rand(2, 4, 4, 2, seed=9)
    p0, s0 = model([x, low])
    p1, s1 = model([x, low + 1.0])
    assert np.abs(np.asarray(p1) - np.asarray(p0)).max() > 1e-3
    np.testing.assert_array_equal(s0, s1)


def test_peer_attention_z_gets_gradient():
    x, cands = rand(2, 2, 2, 3, seed=10), rand(2, 4, 5, seed=11)
    layer = PeerAttention(3, 4)
    layer(x, cands)
    layer.gate.kernel.assign(rand(5, 3, seed=12))
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(layer(x, cands) * x)
    grad = tape.gradient(loss, layer.z)
    assert grad is not None and np.abs(grad.numpy()).max() > 0


# ---------------------------------------------------------------- independence of frames and clips


@pytest.mark.parametrize("make", [lambda: SelfAttention(4), lambda: PeerCandidates(4, 1)])
def test_attention_is_per_frame(make):
    layer = make()
    x = rand(2 * T, 3, 3, 4, seed=13)
    call = layer if isinstance(layer, SelfAttention) else (lambda v: layer([v]))
    base = np.asarray(call(x))
    x2 = x.copy()
    x2[T + 1] += 5.0  # one frame of the second clip
    out = np.asarray(call(x2))
    changed = [i for i in range(2 * T) if not np.array_equal(out[i], base[i])]
    assert changed == [T + 1]


def frames_changed(layer, x, frame):
    """Indexes of the output frames that change when input frame `frame` changes."""
    x2 = x.copy()
    x2[frame] += 3.0
    a, b = np.asarray(layer(x, training=False)), np.asarray(layer(x2, training=False))
    return [i for i in range(len(a)) if np.abs(a[i] - b[i]).max() > 1e-6]


@pytest.mark.parametrize("dilation,reach", [(0, [0, 1]), (1, [0, 1]), (2, [0, 2])])
def test_stem_temporal_conv_dilation_and_clips(dilation, reach):
    frames = 4
    stem = LiteStem(3, dilation, frames)
    x = rand(2 * frames, 6, 6, 3, seed=14)
    assert frames_changed(stem, x, 0) == reach
    assert frames_changed(stem, x, frames) == [frames + r for r in reach]  # second clip


@pytest.mark.parametrize("stride", [1, 2])
def test_block_does_not_mix_clips(stride):
    block = built(InvertedBottleneckBlock((4, 4, 3), 2, 1, stride, T), (None, 6, 6, 3))
    for w in block.weights:  # gamma-0 projections would hide the main branch
        if w.name == "gamma":
            w.assign(np.ones(w.shape, "float32"))
    x = rand(2 * T, 6, 6, 3, seed=15)
    assert frames_changed(block, x, T) == [T, T + 1, T + 2]
    assert frames_changed(block, x, 0) == [0, 1, 2]


# ---------------------------------------------------------------- padding and head math


def test_stem_strided_conv_is_tf_same():
    """Even size, k = 3, s = 2: zero rows/columns after only (smaller half before)."""
    stem = LiteStem(3, 1, 1)
    x = np.abs(rand(1, 8, 8, 3, seed=16))
    stem(x)
    # Make the temporal conv an identity (centre tap) so the output shows the spatial conv.
    identity = np.zeros((3, 1, 1, 24, 24), "float32")
    identity[1, 0, 0] = np.eye(24)
    stem.conv_temporal.kernel.assign(identity)
    kernel = np.asarray(stem.conv_spatial.kernel)[0]
    ref = tf.nn.conv2d(x, kernel, 2, padding=[[0, 0], [0, 1], [0, 1], [0, 0]])
    scale = 1.0 / math.sqrt(1.0 + 1e-5)  # inference BN with fresh statistics
    want = np.maximum(np.maximum(np.asarray(ref) * scale, 0) * scale, 0)
    np.testing.assert_allclose(stem(x, training=False), want, rtol=1e-5, atol=1e-5)


def head_frame_logits(head, x):
    """Per-frame logits [B, T, K] from the head's own sublayers."""
    y = tf.reshape(x, (-1, head.frames) + x.shape[1:])
    for conv, bn in zip(head.convs, head.bns):
        y = tf.nn.relu(bn(conv(y), training=False))
    return np.asarray(head.classifier(tf.reduce_mean(y, axis=(2, 3))))


def test_head_max_pool_predictions_math():
    x = rand(2 * T, 3, 3, 8, seed=17)
    head = LiteHead(4, T, max_pool_predictions=True)
    head(x)
    head.classifier.kernel.assign(rand(2048, 4, seed=18))
    per_frame = head_frame_logits(head, x)
    weights = softmax(per_frame / math.sqrt(T), axis=1)
    want = (weights * per_frame).sum(axis=1)
    np.testing.assert_allclose(head(x, training=False), want, rtol=1e-4, atol=1e-4)
    # The plain head averages features over time; its Dense is linear, so that is
    # the mean of the per-frame logits.
    plain = LiteHead(4, T)
    plain(x)
    plain.set_weights(head.get_weights())
    np.testing.assert_allclose(
        plain(x, training=False), per_frame.mean(axis=1), rtol=1e-4, atol=1e-4
    )


def test_head_dropout_only_in_training():
    x = rand(2 * T, 2, 2, 8, seed=19)
    head = LiteHead(3, T, dropout=0.5)
    head(x)
    head.classifier.kernel.assign(rand(2048, 3, seed=20))
    np.testing.assert_array_equal(head(x, training=False), head(x, training=False))
    assert not np.allclose(head(x, training=True), head(x, training=False))


# ---------------------------------------------------------------- harness, saving, names, arguments


# The shared harness (layer_harness) on every layer of this file; figures from the analysis
# of a small lite network (its nodes, and the `fusion` part holding attention), otherwise
# the formulas above. Stems are 24 wide; 16x16 frames give 8x8 stem outputs.
LITE = """network lite { variant lite depth [3, 1, 2, 1] frames 3 size 16x16 classes 5 }
stem r = rgb(dilation=2)
stem f = flow
block a = lite(level=0, filters=[4, 5, 6], stride=2, dilation=2) <- r
block b = lite(level=2, filters=[4, 4, 6]) <- a
block c = lite(level=3, filters=[4, 4, 8], stride=2) <- b
"""
LITE_MAX = LITE.replace("classes 5", "classes 5 head_pool max")
LITE_SELF = LITE.replace("classes 5", "classes 5 attention self")
LITE_PEER = LITE.replace("classes 5", "classes 5 attention peer")
STEM_OUT = (2 * T, 8, 8, 24)


def attention_static(text, node, shape, minus=0):
    """The attention on the single input of `node`: its `fusion` part in the analysis, less
    `minus` (the peer candidates, a layer of their own)."""
    return Static(shape, analysed(text)[1].node(node).breakdown["fusion"] - minus)


def candidates_static(widths, p):
    return Static((2 * T, len(widths), p), sum(c * p + p for c in widths))  # SEMANTICS.md


def harness_cases():
    a_candidates = candidates_static([24, 24], 24)  # below `a`: the stems r and f; P = 24
    return [
        pytest.param(lambda s: LiteStem(3, 2, T, seed=s), [(2 * T, 16, 16, 3)],
                     node_static(LITE, "r"), (), id="lite-stem-rgb"),
        pytest.param(lambda s: LiteStem(2, 1, T, seed=s), [(2 * T, 16, 16, 2)],
                     node_static(LITE, "f"), (), id="lite-stem-flow"),
        pytest.param(lambda s: LiteStem(3, 2, T, seed=s, fold_bn=True), [(2 * T, 16, 16, 3)],
                     node_static(LITE, "r").folded(), (), id="lite-stem-folded"),
        pytest.param(lambda s: InvertedBottleneckBlock((4, 5, 6), 3, 2, 2, T, seed=s),
                     [STEM_OUT], node_static(LITE, "a"), (), id="lite-block-s2-d2"),
        pytest.param(lambda s: InvertedBottleneckBlock((4, 4, 6), 2, 1, 1, T, seed=s),
                     [(2 * T, 4, 4, 6)], node_static(LITE, "b"), (), id="lite-block-s1"),
        pytest.param(lambda s: InvertedBottleneckBlock((4, 4, 6), 2, 1, 1, T, seed=s,
                                                       fold_bn=True),
                     [(2 * T, 4, 4, 6)], node_static(LITE, "b").folded(), (),
                     id="lite-block-folded"),
        pytest.param(lambda s: LiteHead(5, T, seed=s), [(2 * T, 2, 2, 8)],
                     node_static(LITE, "head"), (), id="lite-head"),
        pytest.param(lambda s: LiteHead(5, T, max_pool_predictions=True, dropout=0.3, seed=s,
                                        fold_bn=True),
                     [(2 * T, 2, 2, 8)], node_static(LITE_MAX, "head").folded(), (),
                     id="lite-head-max-pool-dropout-folded"),
        pytest.param(lambda s: SelfAttention(24, seed=s), [STEM_OUT],
                     attention_static(LITE_SELF, "a", STEM_OUT), (), id="self-attention"),
        pytest.param(lambda s: PeerAttention(24, 2, seed=s), [STEM_OUT, (2 * T, 2, 24)],
                     attention_static(LITE_PEER, "a", STEM_OUT, minus=a_candidates.params), (),
                     id="peer-attention"),
        pytest.param(lambda s: PeerCandidates(24, 2, seed=s), [[STEM_OUT, STEM_OUT]],
                     a_candidates, (), id="peer-candidates"),
        pytest.param(lambda s: PeerCandidates(24, 3, seed=s),
                     [[STEM_OUT, STEM_OUT, (2 * T, 4, 4, 6)]], candidates_static([24, 24, 6], 24),
                     (), id="peer-candidates-mixed-widths"),
    ]


HARNESS_CASES = harness_cases()


@pytest.mark.parametrize("make,inputs,expected,constant", HARNESS_CASES)
def test_layer_harness(make, inputs, expected, constant):
    check_layer(make, inputs, expected, constant=constant)


def test_saved_keras_model_round_trip(tmp_path):
    video = keras.Input((8, 8, 3))
    x = LiteStem(3, 1, T, name="s0")(video)
    x = InvertedBottleneckBlock((4, 4, 6), 2, 2, 2, T, name="b1")(x)
    x = SelfAttention(6, name="att")(x)
    model = keras.Model(video, LiteHead(3, T, name="head")(x))
    randomise(model)
    model.save(tmp_path / "lite.keras")
    custom = {c.__name__: c for c in (LiteStem, InvertedBottleneckBlock, SelfAttention, LiteHead)}
    loaded = keras.models.load_model(tmp_path / "lite.keras", custom_objects=custom)
    x = rand(2 * T, 8, 8, 3, seed=24)
    np.testing.assert_allclose(loaded(x, training=False), model(x, training=False), rtol=1e-6)


def test_node_and_sublayer_names():
    block = built(InvertedBottleneckBlock((4, 4, 4), 2, 1, 2, T, name="b6"), (None, 4, 4, 4))
    paths = [w.path for w in block.weights]
    assert all(p.startswith("b6/unit") and p.count("/") == 3 for p in paths)
    assert "b6/unit0/shortcut/kernel" in paths and "b6/unit1/shortcut/kernel" not in paths


@pytest.mark.parametrize(
    "make,needle",
    [
        (lambda: SelfAttention(0), "channels=0"),
        (lambda: PeerAttention(4, 0), "num_candidates=0"),
        (lambda: PeerCandidates(True, 2), "P=True"),
        (lambda: LiteStem(3, 1.5, T), "dilation=1.5"),
        (lambda: LiteStem(3, 1, 0), "frames=0"),
        (lambda: InvertedBottleneckBlock((4, 4), 1, 1, 1, T), "filters=(4, 4)"),
        (lambda: InvertedBottleneckBlock((4, 4, 4), 1, 0, 1, T), "dilation=0"),
        (lambda: InvertedBottleneckBlock((4, 4, 4), 1, 1, 1, T, seed=-1), "seed=-1"),
        (lambda: LiteHead(10, T, dropout=1.0), "dropout=1.0"),
        (lambda: LiteHead(10, T, max_pool_predictions="yes"), "max_pool_predictions='yes'"),
    ],
)
def test_bad_arguments(make, needle):
    with pytest.raises(ValueError, match="Received") as info:
        make()
    assert needle in str(info.value)


@pytest.mark.parametrize(
    "layer,shapes",
    [
        (LiteStem(3, 1, T), [(None, 8, 8, 2)]),
        (SelfAttention(4), [(None, 2, 2, 5)]),
        (PeerAttention(4, 3), [(None, 2, 2, 4), (None, 2, 6)]),
        (PeerCandidates(4, 2), [[(None, 2, 2, 4)]]),
        (InvertedBottleneckBlock((4, 4, 4), 1, 1, 1, T), [(None, 8, 3)]),
    ],
)
def test_bad_input_shapes(layer, shapes):
    with pytest.raises(ValueError, match="Received"):
        layer.build(*shapes)


# ---------------------------------------------------------------- ONNX parity


def randomise(model):
    """Random weights so every branch and BN shows in the output; activations stay O(1)."""
    for i, w in enumerate(model.weights):
        v = rand(*w.shape, seed=100 + i)
        if len(w.shape) > 1:  # kernels: unit gain
            v /= math.sqrt(np.prod(w.shape[:-1]))
        elif "variance" in w.name:
            v = np.abs(v) * 0.3 + 0.5
        else:
            v = v * 0.3 + (1.0 if w.name == "gamma" else 0.0)
        w.assign(v)


def onnx_parity(model, inputs):
    tf2onnx = pytest.importorskip("tf2onnx")
    ort = pytest.importorskip("onnxruntime")
    signature = [tf.TensorSpec((None,) + x.shape[1:], tf.float32) for x in inputs]
    fn = tf.function(lambda *xs: model(list(xs) if len(xs) > 1 else xs[0], training=False))
    proto, _ = tf2onnx.convert.from_function(fn, input_signature=signature, opset=17)
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    got = session.run(None, dict(zip(names, inputs)))
    want = model(inputs if len(inputs) > 1 else inputs[0], training=False)
    want = want if isinstance(want, (list, tuple)) else [want]
    for g, w in zip(got, want):
        assert g.shape == tuple(w.shape)
        assert np.abs(g - np.asarray(w)).max() <= 1e-4


@pytest.mark.parametrize("max_pool_predictions", [False, True])
def test_onnx_lite_model(max_pool_predictions):
    frames = 4
    video = keras.Input((16, 16, 3))
    x = LiteStem(3, 2, frames, seed=1, name="s0")(video)
    x = InvertedBottleneckBlock((8, 8, 6), 2, 2, 2, frames, seed=2, name="b1")(x)
    x = InvertedBottleneckBlock((6, 6, 6), 1, 1, 1, frames, seed=3, name="b2")(x)
    logits = LiteHead(5, frames, max_pool_predictions, seed=4, name="head")(x)
    model = keras.Model(video, logits)
    randomise(model)
    onnx_parity(model, [rand(2 * frames, 16, 16, 3, seed=21)])


def test_onnx_attention_model():
    x_in, low_in = keras.Input((4, 4, 6)), keras.Input((8, 8, 3))
    cands = PeerCandidates(6, 2, seed=1, name="cands")([low_in, x_in])
    peer = PeerAttention(6, 2, seed=2, name="peer")(x_in, cands)
    own = SelfAttention(6, seed=3, name="self")(x_in)
    model = keras.Model([x_in, low_in], [peer, own])
    randomise(model)
    onnx_parity(model, [rand(2 * T, 4, 4, 6, seed=22), rand(2 * T, 8, 8, 3, seed=23)])
