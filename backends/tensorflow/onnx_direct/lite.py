"""AssembleNet++lite (`layers.lite`): the stem, the inverted-bottleneck block and the head,
each on the unfolded NCDHW clip ``[B, C, T, h, w]`` (one unfold at the layer's start, one
fold at its end, as the Keras layers do), every conv a Keras ``Conv3D`` as an ONNX Conv.
"""

from __future__ import annotations

import math

import numpy as np

from ..layers.lite import HEAD_WIDTHS, InvertedBottleneckBlock, LiteHead, LiteStem
from .convs import batch_norm
from .graph import Graph, UnsupportedLayer

__all__ = ["lite_stem", "inverted_bottleneck_block", "lite_head"]


def _unfold(g: Graph, x: str, frames: int, shape) -> tuple[str, list[int]]:
    """``[B*T, C, h, w]`` -> ``[B, C, T, h, w]``; its static ``[C, T, h, w]``."""
    _, h, w, c = shape
    y = g.transpose(g.reshape(x, [-1, frames, c, h, w]), [0, 2, 1, 3, 4])
    return y, [int(c), frames, int(h), int(w)]


def _fold(g: Graph, y: str, dims: list[int]) -> str:
    c, _, h, w = dims
    return g.reshape(g.transpose(y, [0, 2, 1, 3, 4]), [-1, c, h, w])


def conv3d(g: Graph, conv, y: str, dims: list[int]) -> tuple[str, list[int]]:
    """A Keras ``Conv3D`` (channels last, "same" or "valid", no activation) on NCDHW.
    TF's SAME: ``max((out-1)*s + (k-1)*d + 1 - n, 0)`` zeros, the smaller half before."""
    if conv.data_format != "channels_last" or getattr(conv, "groups", 1) != 1 or \
            conv.activation.__name__ != "linear" or conv.padding not in ("same", "valid"):
        raise UnsupportedLayer(conv.name, "Conv3D", "only linear channels-last convs")
    kernel = conv.kernel.numpy()
    ks, strides, dilations = kernel.shape[:3], tuple(conv.strides), tuple(conv.dilation_rate)
    begin, end, out = [], [], []
    for n, k, s, d in zip(dims[1:], ks, strides, dilations):
        size = -(-n // s) if conv.padding == "same" else (n - (k - 1) * d - 1) // s + 1
        total = max((size - 1) * s + (k - 1) * d + 1 - n, 0) if conv.padding == "same" else 0
        begin.append(total // 2)
        end.append(total - total // 2)
        out.append(size)
    inputs = [y, g.weight(kernel.transpose(4, 3, 0, 1, 2), conv.kernel.path)]
    if conv.use_bias:
        inputs.append(g.weight(conv.bias.numpy(), conv.bias.path))
    y = g.op("Conv", inputs, kernel_shape=list(ks), strides=list(strides),
             dilations=list(dilations), pads=begin + end)
    return y, [int(kernel.shape[4]), *out]


def _conv_bn(g: Graph, conv, bn, y: str, dims, relu: bool):
    y, dims = conv3d(g, conv, y, dims)
    y = batch_norm(g, bn, y)
    return (g.op("Relu", [y]) if relu else y), dims


def lite_stem(g: Graph, stem: LiteStem, x: str, shape) -> str:
    y, dims = _unfold(g, x, stem.frames, shape)
    y, dims = _conv_bn(g, stem.conv_spatial, stem.bn_spatial, y, dims, relu=True)
    y, dims = _conv_bn(g, stem.conv_temporal, stem.bn_temporal, y, dims, relu=True)
    return _fold(g, y, dims)


def inverted_bottleneck_block(g: Graph, block: InvertedBottleneckBlock, x: str,
                              shape) -> str:
    """Per unit: conv + batch norm pairs with a ReLU after all but the last, the
    projection shortcut (first unit) or identity, the sum and a ReLU."""
    y, dims = _unfold(g, x, block.frames, shape)
    for unit in block.units:
        main, main_dims = y, dims
        pairs = list(zip(unit.main[0::2], unit.main[1::2]))
        for i, (conv, bn) in enumerate(pairs):
            main, main_dims = _conv_bn(g, conv, bn, main, main_dims, relu=i + 1 < len(pairs))
        shortcut = y
        if unit.proj is not None:
            shortcut, _ = _conv_bn(g, unit.proj[0], unit.proj[1], y, dims, relu=False)
        y, dims = g.op("Relu", [g.op("Add", [main, shortcut])]), main_dims
    return _fold(g, y, dims)


def lite_head(g: Graph, head: LiteHead, x: str, shape) -> str:
    """The two 1x1x1 convs, the mean over time and space (per frame with
    ``max_pool_predictions``: then the softmax-over-time pooling of the per-frame logits),
    the Dense. Dropout is the identity at inference."""
    from .attention import dense
    from .head import LOGITS

    t = head.frames
    y, dims = _unfold(g, x, t, shape)
    for conv, bn in zip(head.convs, head.bns):
        y, dims = _conv_bn(g, conv, bn, y, dims, relu=True)
    width = HEAD_WIDTHS[-1]
    if head.max_pool_predictions:  # [B, C, T, h, w] -> [B, T, C] -> [B*T, C]
        y = g.reduce("ReduceMean", y, [3, 4], keepdims=False)
        y = g.reshape(g.transpose(y, [0, 2, 1]), [-1, width])
    else:
        y = g.reduce("ReduceMean", y, [2, 3, 4], keepdims=False)
    logits = dense(g, head.classifier, y)
    if not head.max_pool_predictions:
        return g.op("Identity", [logits], LOGITS)
    logits = g.reshape(logits, [-1, t, head.classes])
    scaled = g.op("Div", [logits, g.const(np.float32(math.sqrt(t)))])
    weights = g.op("Softmax", [scaled], axis=1)
    return g.reduce("ReduceSum", g.op("Mul", [weights, logits]), [1], keepdims=False,
                    output=LOGITS)
