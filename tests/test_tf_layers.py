"""Tests of the TensorFlow backend's Keras layers (conv, stems, blocks, fusion, heads).

Every layer also goes through the shared harness (tests/layer_harness.py), here and in
test_tf_lite_attention.py and test_repflow.py; `test_every_layer_has_a_harness_case` keeps
it so for new layers.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

from layer_harness import Static, analysed, check_layer, node_static  # noqa: E402

from asn.backends.tensorflow.layers import (  # noqa: E402
    BottleneckBlock,
    ConcatFusion,
    Conv3x3x3,
    FixedPaddingConv2D,
    FlowStem,
    MultiStreamHead,
    ObjectStem,
    RGBStem,
    ScaledSumFusion,
    SigmoidFusion,
    TemporalConv,
)

pytestmark = pytest.mark.tf

RNG = np.random.default_rng(0)


def rand(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


def built(layer, shape):
    layer.build(shape)
    return layer


def bn(c):
    return 4 * c


# ------------------------------------------------------------------------------------------
# Independent parameter formulas (SEMANTICS.md)
# ------------------------------------------------------------------------------------------
def block_params(c, f, m, n, temporal):
    total = 4 * f * c + bn(4 * f)  # projection shortcut
    for i in range(n):
        cin = c if i == 0 else 4 * f
        if temporal == "2plus1d" and i % 2 == 1:
            total += 3 * cin * f + bn(f)
        else:
            total += cin * f + bn(f)
        total += (27 if temporal == "3d" else 9) * f * m + bn(m)
        total += m * 4 * f + bn(4 * f)
    return total


# ------------------------------------------------------------------------------------------
# Numpy references
# ------------------------------------------------------------------------------------------
def np_conv2d_valid(x, k, s):
    """x [N, H, W, C] (already padded), k [kh, kw, C, F], VALID, stride s."""
    n, h, w, _ = x.shape
    kh, kw, _, f = k.shape
    oh, ow = (h - kh) // s + 1, (w - kw) // s + 1
    out = np.zeros((n, oh, ow, f), np.float64)
    for i in range(oh):
        for j in range(ow):
            patch = x[:, i * s : i * s + kh, j * s : j * s + kw, :]
            out[:, i, j, :] = np.einsum("nhwc,hwcf->nf", patch, k)
    return out


def np_conv3d(x, k, d, s):
    """x [B, T, H, W, C], k [3, 3, 3, C, F]; time: dilation d, d zero frames each side;
    space: pad 1/1, stride s."""
    xp = np.pad(x, [(0, 0), (d, d), (1, 1), (1, 1), (0, 0)])
    b, t = x.shape[:2]
    out = None
    for dt in range(3):
        frames = xp[:, dt * d : dt * d + t]
        y = np_conv2d_valid(frames.reshape(b * t, *frames.shape[2:]), k[dt], s)
        out = y if out is None else out + y
    return out.reshape(b, t, *out.shape[1:])


def np_temporal(x, k, frames, d):
    """x folded [B*T, h, w, C], k [kt, 1, C, F]; SAME zero frames, dilation d."""
    kt = k.shape[0]
    pad = (kt - 1) * d // 2
    u = x.reshape(-1, frames, *x.shape[1:])
    up = np.pad(u, [(0, 0), (pad, pad), (0, 0), (0, 0), (0, 0)])
    out = sum(
        np.einsum("bthwc,cf->bthwf", up[:, j * d : j * d + frames], k[j, 0]) for j in range(kt)
    )
    return out.reshape(-1, *out.shape[2:])


# ------------------------------------------------------------------------------------------
# Convolutions
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "k,s,h", [(7, 2, 16), (7, 2, 13), (3, 2, 8), (3, 2, 9), (1, 2, 9), (3, 1, 7)]
)
def test_fixed_padding_matches_pad_then_valid(k, s, h):
    layer = FixedPaddingConv2D(5, k, s, seed=1)
    x = rand(2, h, h + 1, 3)
    y = layer(x).numpy()
    kern = layer.kernel.numpy()
    if s == 1:
        ref = tf.nn.conv2d(x, kern, 1, "SAME").numpy()
    else:
        before = (k - 1) // 2
        after = k - 1 - before
        xp = tf.pad(x, [[0, 0], [before, after], [before, after], [0, 0]])
        ref = tf.nn.conv2d(xp, kern, s, "VALID").numpy()
    np.testing.assert_allclose(y, ref, atol=1e-5)
    assert y.shape == layer.compute_output_shape(x.shape)
    assert y.shape[1:3] == (math.ceil(h / s), math.ceil((h + 1) / s))
    assert layer.count_params() == k * k * 3 * 5


def test_fixed_padding_known_case():
    x = np.arange(16, dtype=np.float32).reshape(1, 4, 4, 1)
    layer = built(FixedPaddingConv2D(1, 3, 2), (None, 4, 4, 1))
    layer.kernel.assign(np.ones((3, 3, 1, 1), np.float32))
    a = x[0, :, :, 0]
    # Windows start at -1 (one zero row/column before): rows/cols {0,1} and {1,2,3}.
    expect = np.array(
        [[a[0:2, 0:2].sum(), a[0:2, 1:4].sum()], [a[1:4, 0:2].sum(), a[1:4, 1:4].sum()]]
    )
    np.testing.assert_allclose(layer(x).numpy()[0, :, :, 0], expect)
    same = tf.nn.conv2d(x, np.ones((3, 3, 1, 1), np.float32), 2, "SAME").numpy()[0, :, :, 0]
    assert not np.allclose(same, expect)  # TF SAME would pad 0 before, 1 after
    # k = 1, stride 2: plain subsampling from position 0.
    one = built(FixedPaddingConv2D(1, 1, 2), (None, 4, 4, 1))
    one.kernel.assign(np.full((1, 1, 1, 1), 2.0, np.float32))
    np.testing.assert_allclose(one(x).numpy()[0, :, :, 0], 2 * a[::2, ::2])


@pytest.mark.parametrize("k,d", [(3, 1), (3, 2), (5, 1), (5, 3)])
def test_temporal_conv_reference_and_init(k, d):
    frames = 4
    layer = TemporalConv(3, k, frames, dilation=d, seed=3)
    x = rand(2 * frames, 3, 2, 4)
    y = layer(x).numpy()
    np.testing.assert_allclose(y, np_temporal(x, layer.kernel.numpy(), frames, d), atol=1e-5)
    assert y.shape == layer.compute_output_shape(x.shape)
    assert layer.count_params() == k * 4 * 3
    wide = built(TemporalConv(64, k, frames, dilation=d, seed=3), (None, 2, 2, 64)).kernel.numpy()
    # VarianceScaling(fan_in) and the dilated TruncatedNormal(sqrt(2/(k*C))) differ by ~sqrt(2).
    ratio = wide.std() / math.sqrt(1.0 / (k * 64))
    assert (0.8 < ratio < 1.2) if d == 1 else (1.1 < ratio < 1.5)


@pytest.mark.parametrize(
    "layer_fn",
    [
        lambda: TemporalConv(3, 3, 3, dilation=1, seed=0),
        lambda: TemporalConv(3, 5, 3, dilation=2, seed=0),
        lambda: Conv3x3x3(3, 3, dilation=2, strides=2, seed=0),
    ],
)
def test_temporal_convs_do_not_mix_clips(layer_fn):
    layer = layer_fn()
    x = rand(6, 4, 4, 2)  # two clips of 3 frames
    y0 = layer(x).numpy()
    x2 = x.copy()
    x2[3:] += 10.0 * rand(3, 4, 4, 2)  # perturb clip 1 only
    y1 = layer(x2).numpy()
    np.testing.assert_array_equal(y0[:3], y1[:3])
    assert not np.allclose(y0[3:], y1[3:])


@pytest.mark.parametrize("d,s,h", [(1, 1, 5), (1, 2, 5), (2, 1, 4), (2, 2, 6), (3, 2, 5)])
def test_conv3x3x3_reference(d, s, h):
    frames = 4
    layer = Conv3x3x3(3, frames, dilation=d, strides=s, seed=2)
    x = rand(2 * frames, h, h, 2)
    y = layer(x).numpy()
    ref = np_conv3d(x.reshape(2, frames, h, h, 2), layer.kernel.numpy(), d, s)
    np.testing.assert_allclose(y, ref.reshape(y.shape), atol=1e-4)
    assert y.shape == layer.compute_output_shape(x.shape)
    assert layer.count_params() == 27 * 2 * 3


# ------------------------------------------------------------------------------------------
# Stems
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("width,dilation", [(4, 1), (8, 2), (25, 0), (32, -1)])
def test_stem_params_and_shapes(width, dilation):
    rgb = RGBStem(width, dilation, frames=2, seed=1)
    x = rand(4, 13, 16, 3)
    y = rgb(x)
    assert rgb.count_params() == 49 * 3 * width + 4 * width + 5 * width * width + 4 * width
    assert tuple(y.shape) == rgb.compute_output_shape(x.shape) == (4, 4, 4, width)
    assert rgb.temporal_conv.dilation == max(dilation, 1)

    flow = FlowStem(width, seed=1)
    y = flow(x[..., :2])
    assert flow.count_params() == 49 * 2 * width + 4 * width
    assert tuple(y.shape) == flow.compute_output_shape((4, 13, 16, 2)) == (4, 4, 4, width)


def test_object_stem():
    layer = ObjectStem(name="obj")
    x = rand(2, 9, 8, 5)
    y = layer(x).numpy()
    assert layer.count_params() == 0
    assert y.shape == layer.compute_output_shape(x.shape) == (2, 3, 2, 5)
    # TF SAME on 9 rows, window = stride = 4: 1 padded row before, 2 after; padding never wins.
    np.testing.assert_allclose(y[:, 0, 0], x[:, :3, :4].max(axis=(1, 2)))
    np.testing.assert_allclose(y[:, 2, 1], x[:, 7:, 4:].max(axis=(1, 2)))


# ------------------------------------------------------------------------------------------
# Blocks
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("temporal", ["2plus1d", "3d"])
@pytest.mark.parametrize(
    "c,f,m,n,s", [(8, 4, 8, 1, 1), (16, 4, 8, 2, 2), (6, 3, 5, 3, 1), (12, 2, 4, 4, 2)]
)
def test_block_params(temporal, c, f, m, n, s):
    layer = built(BottleneckBlock(f, m, n, 2, s, 2, temporal=temporal), (None, 8, 8, c))
    assert layer.count_params() == block_params(c, f, m, n, temporal)
    # one BN with gamma starting at zero per unit, the last one
    zero = [w for w in layer.weights if w.path.endswith("bn3/gamma")]
    assert len(zero) == n and all(np.all(w.numpy() == 0) for w in zero)


@pytest.mark.parametrize("temporal", ["2plus1d", "3d"])
@pytest.mark.parametrize("s,h", [(1, 6), (2, 7)])
def test_block_shapes_and_names(temporal, s, h):
    layer = BottleneckBlock(3, 4, 2, 2, s, 2, temporal=temporal, name="b6")
    x = rand(4, h, h, 5)
    y = layer(x, training=False).numpy()
    assert (
        y.shape
        == layer.compute_output_shape(x.shape)
        == (4, math.ceil(h / s), math.ceil(h / s), 12)
    )
    assert (y >= 0).all()
    paths = [w.path for w in layer.weights]
    assert all(p.startswith("b6/") for p in paths)
    assert ("b6/unit1_temporal_conv/kernel" in paths) == (temporal == "2plus1d")
    assert ("b6/unit0_conv3x3x3/kernel" in paths) == (temporal == "3d")


def test_block_training_call_updates_bn_stats():
    layer = BottleneckBlock(2, 4, 1, 1, 1, 2)
    layer(rand(4, 4, 4, 3), training=True)
    mean = next(w for w in layer.non_trainable_weights if w.path.endswith("unit0_bn1/moving_mean"))
    assert np.abs(mean.numpy()).sum() > 0


# ------------------------------------------------------------------------------------------
# Fusion
# ------------------------------------------------------------------------------------------
def test_sigmoid_fusion_given_weights():
    w = [0.25, 0.5, 0.9]
    layer = SigmoidFusion(3, weights=w, name="f")
    xs = [rand(2, 8, 8, 4), rand(2, 4, 4, 4), rand(2, 8, 8, 4)]
    y = layer(xs).numpy()
    assert layer.edge_logits.trainable is False
    assert layer.trainable_weights == []
    logits = -np.log(1.0 / np.asarray(w, np.float64) - 1.0)
    np.testing.assert_allclose(layer.edge_logits.numpy(), logits, rtol=1e-6)
    pooled = (
        tf.nn.max_pool2d(xs[0], 2, 2, "SAME").numpy(),
        tf.nn.max_pool2d(xs[2], 2, 2, "SAME").numpy(),
    )
    np.testing.assert_allclose(y, 0.25 * pooled[0] + 0.5 * xs[1] + 0.9 * pooled[1], atol=1e-5)
    assert layer.count_params() == 3


def test_sigmoid_fusion_learned_weights():
    layer = SigmoidFusion(2, seed=4)
    layer([rand(1, 4, 4, 3), rand(1, 4, 4, 3)])
    assert layer.edge_logits.trainable is True
    values = layer.edge_logits.numpy()
    assert values.shape == (2,) and np.all(np.abs(values) < 0.03) and np.any(values != 0)


def test_sigmoid_fusion_grouping():
    channels = [8, 16, 8, 4, 16]
    layer = SigmoidFusion(5, name="f")
    xs = [rand(2, 4, 4, c) for c in channels]
    y = layer(xs)
    assert tuple(y.shape) == layer.compute_output_shape([x.shape for x in xs]) == (2, 4, 4, 16)
    convs = [w for w in layer.weights if w.path.endswith("conv1x1/kernel")]
    assert sorted(tuple(w.shape) for w in convs) == [(1, 1, 4, 16), (1, 1, 8, 16)]
    assert layer.count_params() == 5 + 8 * 16 + 4 * 16
    # Each non-target group: ONE conv applied to the group's sum.
    gate = 1.0 / (1.0 + np.exp(-layer.edge_logits.numpy()))
    k8 = next(w for w in convs if w.shape[2] == 8).numpy()[0, 0]
    k4 = next(w for w in convs if w.shape[2] == 4).numpy()[0, 0]
    expect = (gate[0] * xs[0] + gate[2] * xs[2]) @ k8 + gate[1] * xs[1] + gate[4] * xs[4]
    expect += (gate[3] * xs[3]) @ k4
    np.testing.assert_allclose(y.numpy(), expect, atol=1e-4)


def test_sigmoid_fusion_exclude_from_target():
    layer = SigmoidFusion(2, exclude_from_target=[True, False])
    xs = [rand(2, 8, 8, 16), rand(2, 4, 4, 8)]
    assert tuple(layer(xs).shape) == (2, 4, 4, 8)
    assert layer.count_params() == 2 + 16 * 8
    with pytest.raises(ValueError, match="exclude_from_target"):
        SigmoidFusion(2, exclude_from_target=[True, True])


@pytest.mark.parametrize(
    "sizes,expect",
    [
        ([(16, 16), (8, 8), (4, 4)], (4, 4)),
        ([(7, 7), (4, 4)], (4, 4)),
        ([(8, 6), (4, 3)], (4, 3)),
        ([(4, 4), (1, 1)], (1, 1)),
    ],
)
def test_fusion_resize(sizes, expect):
    xs = [rand(2, h, w, 3) for h, w in sizes]
    for layer in (SigmoidFusion(len(xs)), ConcatFusion(len(xs))):
        y = layer(xs)
        assert tuple(y.shape[1:3]) == expect
        assert tuple(y.shape) == layer.compute_output_shape([x.shape for x in xs])


@pytest.mark.parametrize("sizes", [[(8, 8), (5, 5)], [(8, 8), (8, 4)], [(8, 8), (4, 2)]])
def test_fusion_incompatible_sizes(sizes):
    shapes = [(None, h, w, 3) for h, w in sizes]
    for layer in (SigmoidFusion(2), ConcatFusion(2)):
        with pytest.raises(ValueError, match="common size"):
            layer.build(shapes)


def test_concat_fusion():
    layer = ConcatFusion(3)
    xs = [rand(2, 4, 4, 4), rand(2, 8, 8, 6), rand(2, 4, 4, 1)]
    y = layer(xs).numpy()
    assert y.shape == (2, 4, 4, 11) and layer.count_params() == 0
    np.testing.assert_array_equal(y[..., :4], xs[0])
    np.testing.assert_array_equal(y[..., 4:10], tf.nn.max_pool2d(xs[1], 2, 2, "SAME").numpy())
    np.testing.assert_array_equal(y[..., 10:], xs[2])


@pytest.mark.parametrize(
    "ctor,match",
    [
        (lambda: SigmoidFusion(1), "num_inputs"),
        (lambda: ConcatFusion(1), "num_inputs"),
        (lambda: SigmoidFusion(2, weights=[0.5]), "weights"),
        (lambda: SigmoidFusion(2, weights=[0.5, 1.0]), "weights"),
        (lambda: SigmoidFusion(2, attention="cross"), "attention"),
        (lambda: SigmoidFusion(2, exclude_from_target=[True]), "exclude_from_target"),
        (lambda: BottleneckBlock(4, 8, 2, 1, 1, 2, temporal="2d"), "'2d'"),
        (lambda: BottleneckBlock(0, 8, 2, 1, 1, 2), "filters.*0"),
        (lambda: BottleneckBlock(4, 8, 2, 0, 1, 2), "dilation.*0"),
        (lambda: TemporalConv(4, 4, 2), "kernel_size.*4"),
        (lambda: RGBStem(8, 1, frames=0), "frames.*0"),
        (lambda: FlowStem(8, bn_epsilon=0.0), "bn_epsilon"),
        (lambda: MultiStreamHead(0, 2), "classes.*0"),
        (lambda: FixedPaddingConv2D(4, 3, seed=-1), "seed.*-1"),
    ],
)
def test_argument_errors(ctor, match):
    with pytest.raises(ValueError, match=match):
        ctor()


# ------------------------------------------------------------------------------------------
# Head
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("max_pool", [False, True])
def test_head_shapes_and_params(max_pool):
    head = MultiStreamHead(7, frames=3, max_pool_predictions=max_pool)
    xs = [rand(6, 2, 2, 8), rand(6, 1, 1, 8)]
    y = head(xs)
    assert tuple(y.shape) == (2, 7) == head.compute_output_shape([x.shape for x in xs])
    assert head.count_params() == 8 * 7 + 7
    with pytest.raises(ValueError, match="same width"):
        MultiStreamHead(7, frames=3).build([(6, 2, 2, 8), (6, 2, 2, 4)])


def test_head_math_by_hand():
    # One clip, T = 2, two streams; per-frame spatial means chosen by hand.
    f_a = np.array([[1.0, 0.0], [3.0, 2.0]])  # stream a, frames 0, 1
    f_b = np.array([[3.0, 2.0], [1.0, 4.0]])
    xs = [np.broadcast_to(f[:, None, None, :], (2, 2, 2, 2)).astype(np.float32) for f in (f_a, f_b)]
    kernel = np.array([[1.0, 2.0], [0.0, -1.0]], np.float32)
    bias = np.array([0.5, -0.5], np.float32)
    feats = (f_a + f_b) / 2  # [T, C]
    for max_pool in (False, True):
        head = built(
            MultiStreamHead(2, frames=2, max_pool_predictions=max_pool), [(2, 2, 2, 2)] * 2
        )
        head.classifier.kernel.assign(kernel)
        head.classifier.bias.assign(bias)
        y = head(xs).numpy()[0]
        if not max_pool:
            expect = feats.mean(axis=0) @ kernel + bias
        else:
            logits = feats @ kernel + bias  # [T, K]
            w = np.exp(logits / math.sqrt(2))
            w /= w.sum(axis=0, keepdims=True)
            expect = (w * logits).sum(axis=0)
        np.testing.assert_allclose(y, expect, rtol=1e-5)


# ------------------------------------------------------------------------------------------
# The shared harness (layer_harness): shapes, weights, config, seeds, for every layer
# ------------------------------------------------------------------------------------------
# Small networks whose nodes are the layers below; `asn.compiler.analysis` gives their figures.
# Four stems: width 128 // 4 = 32; 13x16 frames give 4x4 stem outputs (two ceil halvings).
NET = """network layers { depth [2, 2, 1, 1] frames 2 size 13x16 classes 3 objects 5 }
stem r = rgb(dilation=2)
stem r0 = rgb(dilation=0)
stem f = flow
stem o = object
block b0 = bottleneck(level=0, filters=4) <- r
block b1 = bottleneck3d(level=1, filters=4, stride=2, dilation=2) <- r0
block b2 = bottleneck(level=1, filters=4, stride=2, dilation=2) <- f
block b3 = bottleneck(level=3, filters=2) <- b1 @0.3, b2 @0.6, o @0.5, r @0.2
block b4 = bottleneck3d(level=3, filters=2) <- b1, b2, b0
heads b3, b4
"""
NET_MAX = NET.replace("objects 5", "objects 5 head_pool max")
# Two stems: width 64. Concatenation: 8 + 64 + 64 channels into `c`.
NET_CONCAT = """network concat { depth [1, 1, 1, 1] frames 2 size 16x16 classes 3 combine concat }
stem r = rgb
stem f = flow
block a = bottleneck(level=0, filters=2, stride=2) <- r
block c = bottleneck(level=3, filters=2) <- a, r, f
"""
NET_SELF = """network selfatt { depth [1, 1, 1, 1] frames 2 size 16x16 classes 3 attention self }
stem r = rgb
stem f = flow
block a = bottleneck(level=0, filters=2) <- r
block c = bottleneck(level=3, filters=2, stride=2) <- a @0.4, r @0.7, f @0.2
"""
NET_PEER = NET_SELF.replace("attention self", "attention peer")
B3_INPUTS = [(4, 2, 2, 16), (4, 2, 2, 16), (4, 4, 4, 5), (4, 4, 4, 32)]  # b1, b2, o, r
C_INPUTS = [(4, 4, 4, 8), (4, 4, 4, 64), (4, 4, 4, 64)]  # a, r, f of NET_SELF / NET_PEER


def fusion_static(text, node, shape, given_weights: int = 0, minus: int = 0) -> Static:
    """The fusion of `node`: the analysis' `fusion` part, of which the `given_weights`
    connection logits are non-trainable (SEMANTICS.md, "Connections into a block"); `minus`:
    parameters of that part that live in another layer (the peer candidates)."""
    total = analysed(text)[1].node(node).breakdown["fusion"] - minus
    return Static(shape, total - given_weights, given_weights)


def conv_static(shape, kernel_elems, c_in, bias=False) -> Static:
    """k*k*C*F (+ F with a bias): the convs' docstrings and SEMANTICS.md."""
    return Static(shape, kernel_elems * c_in * shape[-1] + (shape[-1] if bias else 0))


def candidates_params(widths, p):
    return sum(c * p + p for c in widths)  # SEMANTICS.md, "Peer candidates"


def harness_cases():
    peer_minus = candidates_params([64, 64, 8], 64)  # candidates of `c`: r, f, a; P = 64
    return [
        # -- convolutions (not nodes: SEMANTICS.md formulas)
        pytest.param(lambda s: FixedPaddingConv2D(5, 7, 2, seed=s), [(2, 13, 14, 3)],
                     conv_static((2, 7, 7, 5), 49, 3), (), id="fixed-padding-k7-s2"),
        pytest.param(lambda s: FixedPaddingConv2D(5, 1, 2, seed=s), [(2, 9, 10, 3)],
                     conv_static((2, 5, 5, 5), 1, 3), (), id="fixed-padding-k1-s2"),
        pytest.param(lambda s: FixedPaddingConv2D(5, 3, 1, seed=s, use_bias=True),
                     [(2, 7, 8, 3)], conv_static((2, 7, 8, 5), 9, 3, bias=True), (),
                     id="fixed-padding-k3-s1-bias"),
        pytest.param(lambda s: TemporalConv(3, 3, 4, dilation=1, seed=s), [(8, 3, 2, 4)],
                     conv_static((8, 3, 2, 3), 3, 4), (), id="temporal-k3"),
        pytest.param(lambda s: TemporalConv(3, 5, 4, dilation=3, seed=s, use_bias=True),
                     [(8, 3, 2, 4)], conv_static((8, 3, 2, 3), 5, 4, bias=True), (),
                     id="temporal-k5-d3-bias"),
        pytest.param(lambda s: Conv3x3x3(3, 4, dilation=1, strides=1, seed=s), [(8, 5, 5, 2)],
                     conv_static((8, 5, 5, 3), 27, 2), (), id="conv3x3x3"),
        pytest.param(lambda s: Conv3x3x3(3, 4, dilation=2, strides=2, seed=s, use_bias=True),
                     [(8, 5, 6, 2)], conv_static((8, 3, 3, 3), 27, 2, bias=True), (),
                     id="conv3x3x3-d2-s2-bias"),
        # -- stems (nodes of NET; input 2 clips of 2 frames, 13x16)
        pytest.param(lambda s: RGBStem(32, 2, 2, seed=s), [(4, 13, 16, 3)],
                     node_static(NET, "r"), (), id="rgb-stem"),
        pytest.param(lambda s: RGBStem(32, 0, 2, seed=s), [(4, 13, 16, 3)],
                     node_static(NET, "r0"), (), id="rgb-stem-d0"),
        pytest.param(lambda s: RGBStem(32, 2, 2, seed=s, fold_bn=True), [(4, 13, 16, 3)],
                     node_static(NET, "r").folded(), (), id="rgb-stem-folded"),
        pytest.param(lambda s: FlowStem(32, seed=s), [(4, 13, 16, 2)],
                     node_static(NET, "f"), (), id="flow-stem"),
        pytest.param(lambda s: FlowStem(32, seed=s, fold_bn=True), [(4, 13, 16, 2)],
                     node_static(NET, "f").folded(), (), id="flow-stem-folded"),
        pytest.param(lambda s: ObjectStem(), [(4, 13, 16, 5)],
                     node_static(NET, "o"), (), id="object-stem"),
        # -- blocks (single-input nodes of NET: their figures are the block's)
        pytest.param(lambda s: BottleneckBlock(4, 64, 2, 1, 1, 2, seed=s), [(4, 4, 4, 32)],
                     node_static(NET, "b0"), (), id="bottleneck-2plus1d"),
        pytest.param(lambda s: BottleneckBlock(4, 128, 2, 2, 2, 2, seed=s), [(4, 4, 4, 32)],
                     node_static(NET, "b2"), (), id="bottleneck-2plus1d-s2-d2"),
        pytest.param(lambda s: BottleneckBlock(4, 128, 2, 2, 2, 2, temporal="3d", seed=s),
                     [(4, 4, 4, 32)], node_static(NET, "b1"), (), id="bottleneck-3d-s2-d2"),
        pytest.param(lambda s: BottleneckBlock(4, 64, 2, 1, 1, 2, seed=s, fold_bn=True),
                     [(4, 4, 4, 32)], node_static(NET, "b0").folded(), (),
                     id="bottleneck-2plus1d-folded"),
        pytest.param(lambda s: BottleneckBlock(4, 128, 2, 2, 2, 2, temporal="3d", seed=s,
                                               fold_bn=True),
                     [(4, 4, 4, 32)], node_static(NET, "b1").folded(), (),
                     id="bottleneck-3d-folded"),
        # -- fusions (the `fusion` part of multi-input nodes)
        pytest.param(lambda s: SigmoidFusion(4, weights=[0.3, 0.6, 0.5, 0.2],
                                             exclude_from_target=[False, False, True, False],
                                             seed=s),
                     [B3_INPUTS], fusion_static(NET, "b3", (4, 2, 2, 32), given_weights=4),
                     ("edge_logits",), id="sigmoid-fusion-given-groups-object"),
        pytest.param(lambda s: SigmoidFusion(3, seed=s),
                     [[(4, 2, 2, 16), (4, 2, 2, 16), (4, 4, 4, 16)]],
                     fusion_static(NET, "b4", (4, 2, 2, 16)), (), id="sigmoid-fusion-learned"),
        pytest.param(lambda s: ScaledSumFusion(4, [1.0, 0.5, 2.0, 1.0],
                                               exclude_from_target=[False, False, True, False],
                                               seed=s),
                     [B3_INPUTS], fusion_static(NET, "b3", (4, 2, 2, 32), minus=4), (),
                     id="scaled-sum-fusion"),
        pytest.param(lambda s: ConcatFusion(3), [[(4, 2, 2, 8), (4, 4, 4, 64), (4, 4, 4, 64)]],
                     fusion_static(NET_CONCAT, "c", (4, 2, 2, 136)), (), id="concat-fusion"),
        pytest.param(lambda s: SigmoidFusion(3, weights=[0.4, 0.7, 0.2], attention="self",
                                             seed=s),
                     [C_INPUTS], fusion_static(NET_SELF, "c", (4, 4, 4, 64), given_weights=3),
                     ("edge_logits",), id="sigmoid-fusion-self-attention"),
        pytest.param(lambda s: SigmoidFusion(3, weights=[0.4, 0.7, 0.2], attention="peer",
                                             seed=s),
                     [C_INPUTS, (4, 3, 64)],
                     fusion_static(NET_PEER, "c", (4, 4, 4, 64), given_weights=3,
                                   minus=peer_minus),
                     ("edge_logits",), id="sigmoid-fusion-peer-attention"),
        # -- heads
        pytest.param(lambda s: MultiStreamHead(3, 2, seed=s), [[(4, 2, 2, 8), (4, 2, 2, 8)]],
                     node_static(NET, "head"), (), id="head"),
        pytest.param(lambda s: MultiStreamHead(3, 2, max_pool_predictions=True, seed=s),
                     [[(4, 2, 2, 8), (4, 2, 2, 8)]], node_static(NET_MAX, "head"), (),
                     id="head-max-pool"),
    ]


HARNESS_CASES = harness_cases()


@pytest.mark.parametrize("make,inputs,expected,constant", HARNESS_CASES)
def test_layer_harness(make, inputs, expected, constant):
    check_layer(make, inputs, expected, constant=constant)


def test_sigmoid_fusion_config_keeps_arguments():
    given = SigmoidFusion(2, weights=[0.2, 0.7], attention=None, exclude_from_target=[False, True])
    assert SigmoidFusion.from_config(given.get_config()).edge_weights == [0.2, 0.7]


def test_every_layer_has_a_harness_case():
    """Every Keras layer of backends/tensorflow (layers/ and repflow.py) goes through the
    harness; the lite and attention layers' cases are in test_tf_lite_attention.py, the flow
    layer's in test_repflow.py."""
    import importlib
    import inspect
    import pkgutil

    import test_repflow
    import test_tf_lite_attention

    from asn.backends.tensorflow import layers as package

    modules = [importlib.import_module(f"{package.__name__}.{m.name}")
               for m in pkgutil.iter_modules(package.__path__)]
    modules.append(importlib.import_module("asn.backends.tensorflow.repflow"))
    layers = {obj for module in modules for name, obj in vars(module).items()
              if inspect.isclass(obj) and issubclass(obj, keras.layers.Layer)
              and obj.__module__ == module.__name__ and not name.startswith("_")}
    cases = HARNESS_CASES + test_tf_lite_attention.HARNESS_CASES + test_repflow.HARNESS_CASES
    covered = {type(case.values[0](0)) for case in cases}
    assert len(layers) >= 16 and not layers - covered, sorted(c.__name__ for c in layers - covered)


# ------------------------------------------------------------------------------------------
# ONNX export of a tiny network
# ------------------------------------------------------------------------------------------
def test_onnx_export_matches_keras():
    tf2onnx = pytest.importorskip("tf2onnx")
    ort = pytest.importorskip("onnxruntime")
    frames = 2
    video = keras.Input((16, 16, 3), name="video")
    stem = RGBStem(4, 2, frames, seed=1, name="stem")(video)
    b1 = BottleneckBlock(2, 4, 2, 2, 2, frames, seed=2, name="b1")(stem)
    b2 = BottleneckBlock(2, 4, 2, 2, 2, frames, temporal="3d", seed=3, name="b2")(stem)
    fused = SigmoidFusion(2, weights=[0.3, 0.6], seed=4, name="b3_fusion")([b1, stem])
    b3 = BottleneckBlock(2, 4, 1, 1, 1, frames, seed=5, name="b3")(fused)
    logits = MultiStreamHead(5, frames, max_pool_predictions=True, seed=6, name="head")([b2, b3])
    model = keras.Model(video, logits)
    # Random BN statistics and gammas, so no branch is an identity or zero.
    rng = np.random.default_rng(1)
    model.set_weights(
        [
            (
                rng.uniform(0.5, 1.5, w.shape)
                if "variance" in v.path
                else rng.normal(0, 0.5, w.shape)
            ).astype(np.float32)
            if "/bn" in v.path or "_bn/" in v.path
            else w
            for v, w in zip(model.weights, model.get_weights())
        ]
    )

    @tf.function
    def infer(x):
        return model(x, training=False)

    spec = [tf.TensorSpec((None, 16, 16, 3), tf.float32, name="video")]
    proto, _ = tf2onnx.convert.from_function(infer, input_signature=spec, opset=17)
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    x = rand(2 * frames, 16, 16, 3)
    ref = model(x, training=False).numpy()
    got = session.run(None, {session.get_inputs()[0].name: x})[0]
    assert got.shape == ref.shape == (2, 5)
    assert np.abs(got - ref).max() <= 1e-4
