"""Tests for the Representation Flow layer (SEMANTICS.md, "Representation Flow layer")."""

import numpy as np
import pytest

pytestmark = pytest.mark.tf
tf = pytest.importorskip("tensorflow")
ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

from _onnx_graph import dead_nodes  # noqa: E402
from layer_harness import check_layer, node_static  # noqa: E402

from asn.backends.tensorflow.repflow import RepresentationFlow  # noqa: E402

THETA = 0.3 + 1e-12
LAMBDA, TAU, EPS = 0.15, 0.25, 1e-12


# --- independent NumPy reference, written from the spec's formulas (2-D images, one pair at a time)
def _grad_x(a):
    p = np.pad(a, ((0, 0), (1, 1)))  # [-0.5, 0, 0.5], zero border
    return 0.5 * p[:, 2:] - 0.5 * p[:, :-2]


def _fwd_x(a):
    return np.pad(a, ((0, 0), (0, 1)))[:, 1:] - a  # last column gives -a


def _div_x(p):
    # p[j] - p[j-1] inside (p[-1] = 0), -p[W-2] in the last column.
    d = np.empty_like(p)
    d[:, 0] = p[:, 0]
    d[:, 1:-1] = p[:, 1:-1] - p[:, :-2]
    d[:, -1] = -p[:, -2]
    return d


def _t(f):
    """Apply a column-wise (x) operator along rows (y) by transposing."""
    return lambda a: f(a.T).T


_grad_y, _fwd_y, _div_y = _t(_grad_x), _t(_fwd_x), _t(_div_x)


def tvl1_pair(i1, i2, iterations):
    lt, tt = LAMBDA * THETA, TAU / THETA
    gx, gy = _grad_x(i2), _grad_y(i2)
    g = gx**2 + gy**2 + EPS
    u1, u2, p11, p12, p21, p22 = (np.zeros_like(i1) for _ in range(6))
    for _ in range(iterations):
        rho = (i2 - i1) + gx * u1 + gy * u2 + EPS
        d1, d2 = np.zeros_like(i1), np.zeros_like(i1)
        for (r, c), value in np.ndenumerate(rho):
            if value < -lt * g[r, c]:
                d1[r, c], d2[r, c] = lt * gx[r, c], lt * gy[r, c]
            elif value > lt * g[r, c]:
                d1[r, c], d2[r, c] = -lt * gx[r, c], -lt * gy[r, c]
            elif g[r, c] > EPS:
                d1[r, c], d2[r, c] = -value / g[r, c] * gx[r, c], -value / g[r, c] * gy[r, c]
        u1 = u1 + d1 + THETA * (_div_x(p11) + _div_y(p12))
        u2 = u2 + d2 + THETA * (_div_x(p21) + _div_y(p22))
        for u, (pa1, pa2) in ((u1, (p11, p12)), (u2, (p21, p22))):
            ux, uy = _fwd_x(u), _fwd_y(u)
            den = 1 + tt * np.sqrt(ux**2 + uy**2 + EPS)
            pa1[...] = (pa1 + tt * ux) / den
            pa2[...] = (pa2 + tt * uy) / den
    return np.stack([u1, u2], axis=-1)


def reference_flow(video, frames, iterations):
    """video [B*T, H, W, C] -> [B*T, H, W, 2], following the spec step by step."""
    grey = video.mean(axis=-1)
    mx, mn = grey.max(), grey.min()
    if mx != mn:
        grey = 255 * (grey - mn) / (mx - mn)
    out = []
    for clip in grey.reshape(-1, frames, *grey.shape[1:]):
        flows = [tvl1_pair(clip[t], clip[t + 1], iterations) for t in range(frames - 1)]
        out.extend(flows + [flows[-1]])
    return np.stack(out)


def _video(seed, clips=2, frames=3, h=12, w=10, c=3):
    rng = np.random.default_rng(seed)
    # Smooth-ish content moving by a pixel, plus noise: exercises all three step branches.
    base = rng.random((clips, 1, h + frames, w + frames, c))
    video = np.concatenate([base[:, :, t : t + h, t : t + w] for t in range(frames)], axis=1)
    video = video + 0.1 * rng.standard_normal(video.shape)
    return video.reshape(clips * frames, h, w, c).astype(np.float32)


def _scale_err(a, b):
    return np.abs(a - b).max() / max(np.abs(b).max(), 1.0)


@pytest.mark.parametrize("fused", [False, True])
@pytest.mark.parametrize("iterations", [1, 5])
def test_matches_numpy_reference(fused, iterations):
    video = _video(seed=iterations)
    out = RepresentationFlow(3, iterations=iterations, fused=fused)(video).numpy()
    ref = reference_flow(video.astype(np.float64), 3, iterations)
    assert out.shape == ref.shape == (6, 12, 10, 2)
    assert np.abs(ref).max() > 0.1  # the check is not vacuous
    assert _scale_err(out, ref) < 1e-4


def test_fused_equals_unfused():
    video = _video(seed=7, clips=1, frames=4, h=16, w=16)
    a = RepresentationFlow(4, iterations=10, fused=False)(video).numpy()
    b = RepresentationFlow(4, iterations=10, fused=True)(video).numpy()
    assert _scale_err(b, a) < 1e-6  # `repflow-slices` is exact: a few float32 ulps
    video = _video(seed=8, clips=2, frames=3, h=9, w=13)  # not square
    a = RepresentationFlow(3, iterations=6, fused=False)(video).numpy()
    b = RepresentationFlow(3, iterations=6, fused=True)(video).numpy()
    assert np.abs(a).max() > 0.1 and _scale_err(b, a) < 1e-6


def _direct_flow_graph(layer, image_shape, opset=17, prune=True):
    """The direct ONNX writer's flow layer (`onnx_direct.flow`, what `asnc compile` writes)
    as a model ``video`` [N, H, W, C] -> ``flow`` [N, H, W, 2] (NCHW inside: one transpose
    in, one out); ``prune``: without the nodes no output needs, as `write_model` writes."""
    from onnx import TensorProto, helper

    from asn.backends.tensorflow.onnx_direct.flow import representation_flow
    from asn.backends.tensorflow.onnx_direct.graph import Graph

    h, w, c = image_shape
    layer(np.zeros((layer.frames, h, w, c), np.float32))  # built: its 16 fixed values
    g = Graph(opset)
    y = representation_flow(g, layer, g.transpose("video", [0, 3, 1, 2]), (None, h, w, c))
    g.op("Transpose", [y], output="flow", perm=[0, 2, 3, 1])
    if prune:
        g.prune(["flow"])
    graph = helper.make_graph(
        g.nodes, "flow", [helper.make_tensor_value_info("video", TensorProto.FLOAT,
                                                        ["n", h, w, c])],
        [helper.make_tensor_value_info("flow", TensorProto.FLOAT, ["n", h, w, 2])],
        g.initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                              ir_version=8)
    onnx.checker.check_model(model, full_check=True)
    return model


def test_onnx_nodes_per_iteration():
    """ONNX nodes of one unrolled iteration, as the direct writer emits them (a count the
    layer's code gives by hand; the flow layer's share of ONNX Runtime's time is measured
    by benchmarks/deploy_bench.py).

    Fused form (`repflow-slices`, u, px, py packed as [2, N, H*(W+1)]: flat rows, a zero
    guard column after each), 29: rho = rho_c + gx u0 + gy u1 (Mul u*grad, Split, Sum);
    the clip of rho / g (Div, Clip); the divergence of px, py (2 x (Pad shift, Sub), Add);
    u += c (-grad) + theta div (2 Mul, Sum); the forward differences ux, uy (2 x (Pad
    shift, Sub)); den = 1 + tt sqrt(ux^2 + uy^2 + eps) (2 Mul, Sum, Sqrt, Mul, Add); px,
    py = (p + tt d) / den (2 x Mul, Add, Div). 3+2+5+3+4+6+6 = 29. (The image layout,
    [2, N, H, W] with each shift a Slice and a Pad, had 41; the flat one is bit-identical,
    `test_onnx_fused_is_bit_identical_to_reference`.)

    Reference form, 70: rho (2 Mul, 3 Add); low, high (Less, Greater); mid (Or, Not, And);
    -rho/g (Div, Neg); d1, d2 (2 x Mul and 3 nested Where); u1, u2 += d + theta div,
    the divergence as two shifts (Slice, Pad) and two difference Convs summed (2 x 10);
    the 4 forward-difference Convs; den1, den2 (2 x 7); p11..p22 (4 x Mul, Add, Div).
    5+2+3+2+8+20+4+14+12 = 70. (tf2onnx's conversion of the same layer had 43 and 107.)
    """
    import collections

    def nodes(fused, iterations):
        layer = RepresentationFlow(3, iterations=iterations, fused=fused)
        model = _direct_flow_graph(layer, (8, 8, 3))
        return collections.Counter(n.op_type for n in model.graph.node)

    step = nodes(True, 3) - nodes(True, 2)
    assert sum(step.values()) == 29, step
    assert step == {"Mul": 8, "Split": 1, "Sum": 3, "Div": 3, "Clip": 1, "Pad": 4,
                    "Sub": 4, "Add": 4, "Sqrt": 1}
    step = nodes(False, 3) - nodes(False, 2)
    assert sum(step.values()) == 70, step
    assert step["Conv"] == 8 and step["Where"] == 6 and step["Sqrt"] == 2


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "reference"])
def test_onnx_drops_the_last_dual_update(fused):
    """After the last iteration only u is read: its p update is dead. The writer drops
    exactly it (`Graph.prune`), counted by hand from the layer's code: fused, ux and uy
    (2 x (Pad, Sub)), den (2 Mul, Sum, Sqrt, Mul, Add), px and py (2 x (Mul, Add, Div)): 16;
    reference, the 4 forward-difference Convs, den1 and den2 (2 x (2 Mul, 2 Add, Sqrt, Mul,
    Add)), p11..p22 (4 x (Mul, Add, Div)): 30. The output is bit-identical, and no node
    left is dead."""
    import collections

    layer = RepresentationFlow(3, iterations=3, fused=fused)
    whole = _direct_flow_graph(layer, (8, 9, 3), prune=False)
    pruned = _direct_flow_graph(layer, (8, 9, 3))
    dropped = (collections.Counter(n.op_type for n in whole.graph.node)
               - collections.Counter(n.op_type for n in pruned.graph.node))
    assert len(dead_nodes(whole.graph)) == sum(dropped.values())
    assert dropped == ({"Pad": 2, "Sub": 2, "Mul": 5, "Sum": 1, "Sqrt": 1, "Add": 3,
                        "Div": 2} if fused else
                       {"Conv": 4, "Mul": 10, "Add": 10, "Sqrt": 2, "Div": 4})
    assert dead_nodes(pruned.graph) == []
    assert {t.name for t in whole.graph.initializer} == {t.name for t in
                                                         pruned.graph.initializer}
    video = _video(seed=3, clips=2, frames=3, h=8, w=9)
    out = [ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
           .run(["flow"], {"video": video})[0] for m in (whole, pruned)]
    assert np.array_equal(out[0], out[1]) and np.abs(out[0]).max() > 0.1


def test_traced_ops_per_iteration():
    """TF ops one unrolled iteration adds to a traced training graph: only the
    iteration's arithmetic, no constants re-made per iteration (the slice bounds, paddings,
    scalars and kernel reads are made once per call). Fused, 43: the 41 operations of
    `test_onnx_nodes_per_iteration`'s image form, with u[0], u[1] as two Gathers whose axis
    is a Const each. Reference, 71: the ONNX form's 70 and one Neg more (TF negates
    r = rho/g once per component; the ONNX emission once)."""
    import collections

    import tensorflow as tf

    def ops(fused, iterations):
        layer = RepresentationFlow(3, iterations=iterations, fused=fused)
        layer.build((None, 8, 8, 3))
        fn = tf.function(lambda x: layer(x, training=True), autograph=False,  # unrolled
                         input_signature=[tf.TensorSpec([None, 8, 8, 3])])
        graph = fn.get_concrete_function().graph
        return collections.Counter(op.type for op in graph.get_operations())

    fused = ops(True, 3) - ops(True, 2)
    assert fused == {"AddV2": 10, "Mul": 9, "Sub": 4, "RealDiv": 3, "Pad": 6, "Slice": 4,
                     "GatherV2": 2, "Const": 2, "Maximum": 1, "Minimum": 1, "Sqrt": 1}
    reference = ops(False, 3) - ops(False, 2)
    assert sum(reference.values()) == 71 and reference["Conv2D"] == 8
    assert "Const" not in reference and "ReadVariableOp" not in reference


@pytest.mark.parametrize("fused", [False, True])
def test_traced_inference_is_one_loop_of_the_same_values(fused):
    """A traced inference call (the SavedModel's) holds the iterations as one While loop
    of `ITERATIONS_PER_TRIP` iterations per trip, the remainder unrolled before it: the
    graph does not grow with the trips, and its output is the eager (unrolled) output."""
    import tensorflow as tf

    from asn.backends.tensorflow.repflow import ITERATIONS_PER_TRIP, unrolled_iterations

    def traced(iterations, unrolled=False):
        layer = RepresentationFlow(3, iterations=iterations, fused=fused)
        layer.build((None, 12, 10, 3))
        fn = tf.function(lambda x: layer(x, training=False), autograph=False,
                         input_signature=[tf.TensorSpec([None, 12, 10, 3])])
        if unrolled:
            with unrolled_iterations():
                return layer, fn.get_concrete_function()
        return layer, fn.get_concrete_function()

    def ops(fn):
        return [op.type for op in fn.graph.get_operations()]

    def loops(fn):
        return ops(fn).count("While") + ops(fn).count("StatelessWhile")

    k = ITERATIONS_PER_TRIP
    assert loops(traced(8 * k)[1]) == 1
    assert len(ops(traced(8 * k)[1])) == len(ops(traced(16 * k)[1]))
    # the remainder is unrolled before the loop (the values are checked below)
    assert loops(traced(8 * k + 3)[1]) == 1
    assert len(ops(traced(8 * k + 3)[1])) > len(ops(traced(8 * k)[1]))
    assert loops(traced(8 * k, unrolled=True)[1]) == 0  # tf2onnx's trace
    assert loops(traced(k + 1)[1]) == 0  # a single trip is not worth a loop
    layer, fn = traced(8 * k + 3)
    x = tf.constant(_video(2, 3, 3, 12, 10))
    eager = layer(x).numpy()
    np.testing.assert_allclose(fn(x).numpy(), eager, rtol=0, atol=1e-4)
    assert np.max(np.abs(eager)) > 0.1


# The shared harness (layer_harness): shapes (also with the batch unknown), the 16 fixed
# non-trainable values of the analysis' flow node, config round trip, determinism.
FLOW_NET = """network flow { depth [1, 1, 1, 1] frames 3 size 12x10 classes 2 }
stem f = flow
block b = bottleneck(level=3, filters=2) <- f
"""
HARNESS_CASES = [
    pytest.param(lambda s, fused=fused: RepresentationFlow(3, iterations=2, fused=fused,
                                                           name="flow"),
                 [(6, 12, 10, 3)], node_static(FLOW_NET, "repflow"), (),
                 id=f"fused={fused}")
    for fused in (False, True)
]


@pytest.mark.parametrize("make,inputs,expected,constant", HARNESS_CASES)
def test_layer_harness(make, inputs, expected, constant):
    flow = check_layer(make, inputs, expected, constant=constant).layer
    assert expected.non_trainable == 16 and not flow.trainable_weights  # SEMANTICS.md


@pytest.mark.parametrize("fused", [False, True])
def test_functional_model_and_finite_gradient(fused):
    import keras

    model = keras.Sequential([keras.Input((8, 8, 3)), RepresentationFlow(2, 3, fused=fused)])
    assert model.output_shape == (None, 8, 8, 2) and model.count_params() == 16
    for video in (tf.constant(_video(1, 2, 2, 8, 8)), tf.zeros((2, 8, 8, 3))):  # also max == min
        with tf.GradientTape() as tape:
            tape.watch(video)
            loss = tf.reduce_sum(model(video) ** 2)
        assert np.isfinite(tape.gradient(loss, video).numpy()).all()


@pytest.mark.parametrize("fused", [False, True])
def test_constant_video_gives_zero_flow(fused):
    # max == min, so no normalisation; the zero border gives I2 a gradient at the edges, where the
    # only residual is rho = 1e-12: the flow is zero up to ~1e-12.
    video = np.full((4, 8, 8, 3), 0.7, np.float32)
    out = RepresentationFlow(4, iterations=5, fused=fused)(video).numpy()
    assert np.abs(out).max() < 1e-9
    assert np.all(RepresentationFlow(2, iterations=3, fused=fused)(np.zeros((2, 4, 4, 1))) == 0)


@pytest.mark.parametrize("fused", [False, True])
def test_last_frame_repeats_previous_flow(fused):
    video = _video(seed=3, clips=2, frames=4, h=8, w=8)
    out = RepresentationFlow(4, iterations=3, fused=fused)(video).numpy().reshape(2, 4, 8, 8, 2)
    np.testing.assert_array_equal(out[:, 3], out[:, 2])
    assert not np.array_equal(out[:, 1], out[:, 2])


@pytest.mark.parametrize("fused", [False, True])
def test_one_iteration_by_hand(fused):
    # One row, three pixels; I1 = [255, 0, 0], I2 = [0, 255, 0] (already 0..255).
    # I2's x-gradient is [127.5, 0, -127.5], y-gradient 0 (one row), rho = I2 - I1 = [-255, 255, 0].
    # Pixel 0: |rho| <= lt*g = 0.045 * 127.5^2, so u1 = -(rho/g)*gx = 255*127.5/127.5^2 = 2.
    # Pixel 1: g = 1e-12, rho > lt*g, step -lt*gx = 0. Pixel 2: rho ~ 1e-12, step ~ 0.
    video = np.array([[255, 0, 0], [0, 255, 0]], np.float32).reshape(2, 1, 3, 1)
    out = RepresentationFlow(2, iterations=1, fused=fused)(video).numpy()
    np.testing.assert_allclose(out[..., 0], [[[2, 0, 0]], [[2, 0, 0]]], atol=1e-6)
    np.testing.assert_allclose(out[..., 1], 0, atol=1e-6)


def _onnx_session(layer, sample_shape):
    model = _direct_flow_graph(layer, sample_shape[1:])
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return lambda video: sess.run(None, {"video": video})[0]


@pytest.mark.parametrize("fused", [False, True])
def test_onnx_parity(fused):
    video = _video(seed=11, clips=2, frames=3, h=8, w=8)
    layer = RepresentationFlow(3, iterations=2, fused=fused)
    run = _onnx_session(layer, video.shape)
    got, expected = run(video), layer(video).numpy()
    assert got.shape == expected.shape
    assert _scale_err(got, expected) < 1e-4
    # The batch stays dynamic in the exported graph: one clip also runs (min/max then differ).
    assert _scale_err(run(video[:3]), layer(video[:3]).numpy()) < 1e-4


@pytest.mark.parametrize("clips,frames,h,w,iterations", [(2, 3, 8, 8, 6), (1, 4, 9, 13, 10),
                                                        (1, 8, 32, 32, 40)])
def test_onnx_fused_is_bit_identical_to_reference(clips, frames, h, w, iterations):
    """`repflow-slices` as the direct writer emits it (flat rows, guard column, Sum, Clip)
    against the reference form's emission (difference Convs, nested Wheres), both run in
    ONNX Runtime: the same float32 values (the layer's TF forms differ by a few ulps, the
    ONNX emissions not at all; the issue's bar is 1e-6)."""
    moving = _video(seed=13, clips=clips, frames=frames, h=h, w=w)
    noise = np.random.default_rng(14).random(moving.shape, dtype=np.float32)
    for seed, video in ((13, moving), (14, noise)):
        fused = _onnx_session(RepresentationFlow(frames, iterations=iterations, fused=True),
                              video.shape)(video)
        ref = _onnx_session(RepresentationFlow(frames, iterations=iterations, fused=False),
                            video.shape)(video)
        assert np.abs(ref).max() > 0.1, seed  # the flow is not trivially zero
        assert np.array_equal(fused, ref), (seed, float(np.abs(fused - ref).max()))


@pytest.mark.slow
@pytest.mark.parametrize("fused", [False, True])
def test_onnx_parity_full_size(fused):
    # The networks' setting: 40 iterations, 8 frames.
    video = _video(seed=12, clips=1, frames=8, h=32, w=32)
    layer = RepresentationFlow(8, iterations=40, fused=fused)
    assert _scale_err(_onnx_session(layer, video.shape)(video), layer(video).numpy()) < 1e-4


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"frames": 3, "bottleneck": 2}, "bottleneck"),
        ({"frames": 3, "iterations": 0}, "iterations"),
        ({"frames": 1}, "frames"),
        ({"frames": 3, "iterations": 2.5}, "iterations"),
    ],
)
def test_constructor_errors(kwargs, name):
    with pytest.raises(ValueError, match=name):
        RepresentationFlow(**kwargs)


def test_needs_static_spatial_size():
    with pytest.raises(ValueError, match="static H and W"):
        RepresentationFlow(3).build((None, None, 8, 3))


def test_memoised_outputs_reuse_only_an_identical_call():
    """Inside `memoised_outputs`, an eager inference call returns the remembered output only
    where the form, the fixed values and every input value are the same; otherwise, and
    outside, it computes (the output a fresh layer computes, bit for bit)."""
    from asn.backends.tensorflow import repflow

    rng = np.random.default_rng(4)
    x = rng.random((4, 12, 10, 3), dtype=np.float32)
    layer = RepresentationFlow(2, iterations=3, fused=True)
    plain = np.asarray(layer(x))
    assert layer(x) is not layer(x)  # no memo outside
    with repflow.memoised_outputs():
        first = layer(tf.constant(x))
        assert layer(tf.constant(x.copy())) is first  # the same values: remembered
        np.testing.assert_array_equal(np.asarray(first), plain)
        other = x.copy()
        other[3, 11, 9, 2] += 1.0  # one value differs: computed again
        changed = layer(other)
        assert changed is not first
        np.testing.assert_array_equal(np.asarray(changed),
                                      np.asarray(RepresentationFlow(2, 3, fused=True)(other)))
        layer.fused = False  # another form: computed again
        assert layer(x) is not first
        layer.fused = True
        layer.tau.assign(0.5)  # another fixed value: computed again
        assert layer(x) is not first
        layer.tau.assign(repflow.TAU)
        assert layer(x) is first
        assert layer(x, training=True) is not first  # training never reads the memo
    assert layer(x) is not first
