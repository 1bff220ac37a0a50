"""The input folds (`lower.FoldTime`) and the stems (`layers.stems`), NCHW inside."""

from __future__ import annotations

from ..layers.stems import FlowStem, ObjectStem, RGBStem
from .convs import conv_bn, conv_out_shape, max_pool_same
from .graph import Graph

__all__ = ["fold_time", "rgb_stem", "flow_stem", "object_stem"]


def fold_time(g: Graph, layer, x: str, shape) -> str:
    """``[B, T, H, W, C]`` -> ``[B*T, C, H, W]``: the fold and the one transpose to NCHW."""
    _, _, h, w, c = shape
    return g.transpose(g.reshape(x, [-1, h, w, c]), [0, 3, 1, 2])


def rgb_stem(g: Graph, stem: RGBStem, x: str, shape) -> str:
    y = conv_bn(g, stem.conv7x7, stem.bn1, x, shape, relu=True)
    shape = conv_out_shape(stem.conv7x7, shape)
    y = conv_bn(g, stem.temporal_conv, stem.bn2, y, shape, relu=True)
    return max_pool_same(g, y, conv_out_shape(stem.temporal_conv, shape), 3, 2)


def flow_stem(g: Graph, stem: FlowStem, x: str, shape) -> str:
    y = conv_bn(g, stem.conv7x7, stem.bn, x, shape, relu=True)
    return max_pool_same(g, y, conv_out_shape(stem.conv7x7, shape), 2, 2)


def object_stem(g: Graph, stem: ObjectStem, x: str, shape) -> str:
    return max_pool_same(g, x, shape, 4, 4)
