"""Convolutions, batch norms and SAME max-pools (`layers.conv`), and the bottleneck block
(`layers.blocks`), on folded NCHW tensors ``[B*T, C, h, w]``.

A Keras kernel is HWIO (DHWIO for the 3x3x3 conv); ONNX wants OIHW (OIDHW). TF's fixed
padding and SAME padding with stride 1 and an odd kernel are both zero padding of
``(k-1)//2`` before and the rest after, which Conv's ``pads`` attribute does exactly.
"""

from __future__ import annotations


from ..layers.blocks import BottleneckBlock
from ..layers.conv import Conv3x3x3, FixedPaddingConv2D, TemporalConv, fixed_padding
from .graph import Graph, UnsupportedLayer

__all__ = ["conv2d", "temporal_conv", "conv3x3x3", "batch_norm", "conv_bn", "max_pool_same",
           "bottleneck_block"]


def _bias(g: Graph, conv) -> list[str]:
    bias = getattr(conv, "bias", None)
    return [] if bias is None else [g.weight(bias.numpy(), bias.path)]


def conv2d(g: Graph, conv: FixedPaddingConv2D, x: str) -> str:
    """`FixedPaddingConv2D`: stride 1 SAME or the strided fixed padding, one Conv."""
    if type(conv) is not FixedPaddingConv2D:
        raise UnsupportedLayer(conv.name, type(conv).__name__, "not a FixedPaddingConv2D")
    k, s = conv.kernel_size, conv.strides
    before, after = fixed_padding(k)
    w = g.weight(conv.kernel.numpy().transpose(3, 2, 0, 1), conv.kernel.path)
    return g.op("Conv", [x, w, *_bias(g, conv)], kernel_shape=[k, k], strides=[s, s],
                pads=[before, before, after, after])


def _after(g: Graph, y: str, bn, relu: bool) -> str:
    y = batch_norm(g, bn, y)
    return g.op("Relu", [y]) if relu else y


def temporal_conv(g: Graph, conv: TemporalConv, x: str, shape, bn=None,
                  relu: bool = False) -> str:
    """`TemporalConv` (then ``bn`` and a ReLU if given). One tap: a 1x1 Conv as it is.
    Else: unfold to ``[B, C, T, h*w]``, a
    ``(k, 1)`` Conv with dilation ``(d, 1)`` and ``(k-1)*d/2`` zero frames each side
    (SAME), fold back.

    The unfold goes through channels-last (``[B*T, h, w, C]`` -> ``[B, T, h*w, C]`` ->
    ``[B, C, T, h*w]``) rather than one ``[B, T, C, h*w]`` -> ``[B, C, T, h*w]`` swap: each
    transpose then sits next to a Conv, where ONNX Runtime's blocked-layout pass absorbs it
    into the Conv's layout reorder (channels-last reorders; the swap would run as a
    Transpose of its own, measured 1.4% of AssembleNet-50's time). The batch norm and ReLU
    act per channel and per value, so they run on the Conv's own output, where ONNX
    Runtime fuses a batch norm into its Conv."""
    _, h, w, c = shape
    t, k, d, f = conv.frames, conv.kernel_size, conv.dilation, conv.filters
    if k == 1:  # one tap (`drop-padding-taps`): a pointwise conv on the folded clip
        kernel = g.weight(conv.kernel.numpy().transpose(3, 2, 0, 1), conv.kernel.path)
        return _after(g, g.op("Conv", [x, kernel, *_bias(g, conv)], kernel_shape=[1, 1]),
                      bn, relu)
    y = g.transpose(g.reshape(g.transpose(x, [0, 2, 3, 1]), [-1, t, h * w, c]), [0, 3, 1, 2])
    kernel = g.weight(conv.kernel.numpy().transpose(3, 2, 0, 1), conv.kernel.path)
    p = (k - 1) * d // 2
    y = g.op("Conv", [y, kernel, *_bias(g, conv)], kernel_shape=[k, 1], dilations=[d, 1],
             pads=[p, 0, p, 0])
    y = _after(g, y, bn, relu)
    y = g.reshape(g.transpose(y, [0, 2, 3, 1]), [-1, h, w, f])
    return g.transpose(y, [0, 3, 1, 2])


def conv3x3x3(g: Graph, conv: Conv3x3x3, x: str, shape, bn=None, relu: bool = False) -> str:
    """`Conv3x3x3` (then ``bn`` and a ReLU, as for `temporal_conv`) on ``[B, C, T, h, w]``:
    time dilation d with d zero frames each side, space stride s with one zero each side
    (ONNX Conv takes a dilation and a stride at once: TF's stride-1-then-subsample is the
    same strided VALID conv)."""
    _, h, w, c = shape
    t, d, s, f = conv.frames, conv.dilation, conv.strides, conv.filters
    y = g.transpose(g.reshape(x, [-1, t, c, h, w]), [0, 2, 1, 3, 4])
    kernel = g.weight(conv.kernel.numpy().transpose(4, 3, 0, 1, 2), conv.kernel.path)
    y = g.op("Conv", [y, kernel, *_bias(g, conv)], kernel_shape=[3, 3, 3],
             dilations=[d, 1, 1], strides=[1, s, s], pads=[d, 1, 1, d, 1, 1])
    y = _after(g, y, bn, relu)
    return g.reshape(g.transpose(y, [0, 2, 1, 3, 4]), [-1, f, -(-h // s), -(-w // s)])


def batch_norm(g: Graph, bn, x: str) -> str:
    """Inference batch norm (moving statistics), or ``x`` where it was folded (None)."""
    if bn is None:
        return x
    if not (bn.center and bn.scale) or bn.axis not in (-1, 3):
        raise UnsupportedLayer(bn.name, "BatchNormalization", "only channel batch norms "
                               "with gamma and beta")
    params = [g.weight(v.numpy(), v.path)
              for v in (bn.gamma, bn.beta, bn.moving_mean, bn.moving_variance)]
    return g.op("BatchNormalization", [x, *params], epsilon=float(bn.epsilon))


def conv_bn(g: Graph, conv, bn, x: str, shape, relu: bool) -> str:
    """One conv of any of the three kinds, its batch norm, and a ReLU if asked."""
    if type(conv) is TemporalConv:
        return temporal_conv(g, conv, x, shape, bn, relu)
    if type(conv) is Conv3x3x3:
        return conv3x3x3(g, conv, x, shape, bn, relu)
    return _after(g, conv2d(g, conv, x), bn, relu)


def conv_out_shape(conv, shape) -> tuple:
    return tuple(conv.compute_output_shape(tuple(shape)))


def max_pool_same(g: Graph, x: str, shape, k: int, s: int) -> str:
    """TF's SAME max-pool: output ``ceil(n/s)``, ``max((out-1)*s + k - n, 0)`` padding with
    the smaller half before; padded positions never win (nor do they in ONNX MaxPool)."""
    _, h, w, _ = shape
    pads = []
    for n in (h, w):
        total = max((-(-n // s) - 1) * s + k - n, 0)
        pads.append((total // 2, total - total // 2))
    return g.op("MaxPool", [x], kernel_shape=[k, k], strides=[s, s],
                pads=[pads[0][0], pads[1][0], pads[0][1], pads[1][1]])


def bottleneck_block(g: Graph, block: BottleneckBlock, x: str, shape) -> str:
    """`BottleneckBlock.call`: per unit, the projection (unit 0) or identity shortcut, three
    conv + batch norm steps (ReLU after the first two), the sum and a ReLU."""
    shape = tuple(shape)
    for i, unit in enumerate(block.units):
        if i == 0:
            shortcut = conv_bn(g, block.shortcut_conv, block.shortcut_bn, x, shape, relu=False)
        else:
            shortcut = x
        y = conv_bn(g, unit["first"], unit["bn1"], x, shape, relu=True)
        mid_shape = conv_out_shape(unit["first"], shape)
        y = conv_bn(g, unit["middle"], unit["bn2"], y, mid_shape, relu=True)
        y = conv_bn(g, unit["last"], unit["bn3"], y, conv_out_shape(unit["middle"], mid_shape),
                    relu=False)
        x = g.op("Relu", [g.op("Add", [y, shortcut])])
        shape = conv_out_shape(unit["last"], conv_out_shape(unit["middle"], mid_shape))
    return x
