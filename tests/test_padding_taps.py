"""`drop-padding-taps`: a temporal conv whose dilation is at least the clip's frames reads
real frames with its centre tap only (the other taps fall in the zero padding), so it
becomes a pointwise conv. Checked against the formula (one matrix product per position),
on a whole network's chain and proof, in the static counts, and in the ONNX graph (no
unfold transposes left around those convs) against ONNX Runtime."""

from __future__ import annotations

import collections
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

pytestmark = pytest.mark.tf
pytest.importorskip("tensorflow")
from _tfnets import parse, randomise, video  # noqa: E402

from asn.backends.tensorflow import proofs  # noqa: E402
from asn.backends.tensorflow.compile import CompileOptions, compile_network  # noqa: E402
from asn.backends.tensorflow.layers.conv import TemporalConv  # noqa: E402
from asn.backends.tensorflow.lower import lower  # noqa: E402
from asn.compiler.analysis import centre_tap_only  # noqa: E402
from asn.compiler.passes import LoweringForm, optimise  # noqa: E402


@pytest.mark.parametrize("frames,dilation", [(1, 1), (2, 2), (2, 5), (4, 4), (3, 8)])
def test_centre_tap_is_the_conv_where_the_other_taps_read_padding(frames, dilation):
    """Every output frame is the centre tap's channel mix of the same frame plus the bias:
    the formula by hand, the 3-tap conv before and the 1-tap conv after."""
    rng = np.random.default_rng(frames * 10 + dilation)
    conv = TemporalConv(5, 3, frames, dilation=dilation, use_bias=True, name="t")
    x = rng.normal(size=(2 * frames, 3, 4, 6)).astype(np.float32)
    conv(x)
    kernel = rng.normal(size=(3, 1, 6, 5)).astype(np.float32)
    bias = rng.normal(size=(5,)).astype(np.float32)
    conv.kernel.assign(kernel)
    conv.bias.assign(bias)
    before = np.asarray(conv(x))
    paths = [v.path for v in conv.weights]
    conv.keep_centre_tap()
    after = np.asarray(conv(x))
    by_hand = np.einsum("nhwc,cf->nhwf", x.astype(np.float64), kernel[1, 0]) + bias
    np.testing.assert_allclose(before, by_hand, atol=1e-5)
    np.testing.assert_allclose(after, by_hand, atol=1e-5)
    np.testing.assert_allclose(after, before, atol=1e-6)
    assert [v.path for v in conv.weights] == paths  # the same names, in the same order
    assert conv.kernel.shape == (1, 1, 6, 5) and conv.count_params() == 6 * 5 + 5
    assert conv.get_config()["kernel_size"] == 1


@pytest.mark.parametrize("frames,dilation", [(2, 1), (4, 2), (4, 3), (8, 4)])
def test_taps_that_read_frames_are_kept(frames, dilation):
    """d < T: frame 0's tap t+d (or frame T-1's t-d) is a real frame, so the rewrite refuses
    and the pass's condition says no."""
    assert not centre_tap_only(dilation, frames)
    conv = TemporalConv(5, 3, frames, dilation=dilation, name="t")
    conv(np.zeros((frames, 2, 2, 3), np.float32))
    with pytest.raises(ValueError, match="read real frames"):
        conv.keep_centre_tap()
    assert conv.kernel.shape == (3, 1, 3, 5)


# Level 1 has 2 units (unit 1 holds a temporal conv); `wide` has dilation 2 = frames, `near`
# dilation 1, so only `wide`'s temporal conv changes.
TAPS = """
network taps {
  depth [1, 2, 1, 1]
  frames 2
  size 32x32
  classes 5
}
stem r = rgb
block a = bottleneck(level=0, filters=4) <- r
block wide = bottleneck(level=1, filters=4, stride=2, dilation=2) <- a
block near = bottleneck(level=1, filters=4, dilation=1) <- a
block top = bottleneck(level=3, filters=8, stride=2) <- wide @0.6, near @0.4
"""


def test_chain_applies_it_to_the_dilated_block_only():
    net = parse(TAPS)
    o = optimise(net, level=1)
    assert o.form.has("drop-padding-taps")
    ref = lower(o.network, seed=0, form=LoweringForm.reference())
    randomise(ref.model, 0)
    feeds = video(o.network, 2, seed=1)
    want = proofs.logits_of(ref.model, feeds)
    final, done = proofs.apply_backend_passes(o.network, ref, o.form, feeds)
    proof = {p.name: p for p in done}["drop-padding-taps"]
    assert proof.ok and proof.detail["temporal_convs"] == 1
    assert proof.detail["blocks"] == ["wide"]
    got = proofs.logits_of(final.model, feeds)
    assert np.max(np.abs(want)) > 1e-2
    np.testing.assert_allclose(got, want, atol=1e-5)
    wide, near = final.model.get_layer("wide"), final.model.get_layer("near")
    assert wide.units[1]["first"].kernel_size == 1 and wide.get_config()["centre_taps"]
    assert near.units[1]["first"].kernel_size == 3
    # the static count: 2 of 3 taps of a 16 -> 4 conv gone, and it is the model's count
    assert o.stats().total == optimise(net, level=1, disabled=["drop-padding-taps"]
                                       ).stats().total - 2 * 16 * 4
    assert final.model.count_params() == o.stats().total
    # the form built directly (a compile at a larger size than its proof) is the same model
    direct = lower(o.network, seed=0, form=final.form, edge_fold=final.edge_fold,
                   placeholder=True)
    assert [(v.path, tuple(v.shape)) for v in direct.model.weights] == \
        [(v.path, tuple(v.shape)) for v in final.model.weights]
    assert direct.model.get_layer("wide").get_config() == wide.get_config()


def test_onnx_has_a_pointwise_conv_and_matches_tf(tmp_path):
    """The compiled ONNX: the changed conv is a 1x1 Conv on the folded clip, so its unfold
    and fold-back (2 Transposes, a Reshape, 2 Transposes... 4 Transposes and 2 Reshapes)
    are gone; ONNX Runtime matches TensorFlow (the compile's parity check)."""
    import onnx

    net = parse(TAPS)
    counts, kernels = {}, {}
    for key, disabled in (("with", []), ("without", ["drop-padding-taps"])):
        o = optimise(net, level=1, disabled=disabled)
        out = tmp_path / key
        result = compile_network(net, str(out), CompileOptions(formats=("onnx",)), o)
        assert result.report["parity"]["ok"]
        m = onnx.load(str(out / "model.onnx"))
        counts[key] = collections.Counter(n.op_type for n in m.graph.node)
        kernels[key] = collections.Counter(tuple(t.dims) for t in m.graph.initializer)
    assert counts["without"]["Transpose"] - counts["with"]["Transpose"] == 4
    assert counts["without"]["Reshape"] - counts["with"]["Reshape"] == 2
    assert counts["without"]["Conv"] == counts["with"]["Conv"]
    # OIHW kernels: `wide`'s temporal (4, 16, 3, 1) is now a (4, 16, 1, 1); `near`'s stays
    assert kernels["without"][(4, 16, 3, 1)] == 2 and kernels["with"][(4, 16, 3, 1)] == 1
    assert kernels["with"][(4, 16, 1, 1)] == kernels["without"][(4, 16, 1, 1)] + 1
