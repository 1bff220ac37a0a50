"""Connections into a block (`layers.fusion`): sigmoid-weighted sums, their `fold-edge-weights`
form (scaled sums) and concat, on NCHW inputs (channels on axis 1)."""

from __future__ import annotations

import numpy as np

from ..layers.fusion import ConcatFusion, ScaledSumFusion, SigmoidFusion
from .convs import conv2d, max_pool_same
from .graph import Graph, UnsupportedLayer

__all__ = ["sigmoid_fusion", "scaled_sum_fusion", "concat_fusion"]


def _resized(g: Graph, layer, xs: list[str], shapes) -> list[str]:
    """Every input max-pooled (window = stride = its factor, SAME) to the common size."""
    return [x if r is None else max_pool_same(g, x, s, r, r)
            for x, s, r in zip(xs, shapes, layer._factors)]


def _sum_groups(g: Graph, layer, xs: list[str], shapes) -> str:
    """Inputs summed per channel count (in input order), each non-target group's sum
    through its 1x1 conv, then the groups summed in order of first appearance."""
    sums: dict[int, str] = {}
    for x, s in zip(xs, shapes):
        c = int(s[-1])
        sums[c] = x if c not in sums else g.op("Add", [sums[c], x])
    out = None
    for c, conv in zip(layer._groups, layer._group_convs):
        y = sums[c] if conv is None else conv2d(g, conv, sums[c])
        out = y if out is None else g.op("Add", [out, y])
    assert out is not None
    return out


def sigmoid_fusion(g: Graph, layer: SigmoidFusion, xs: list[str], shapes,
                   candidates: str | None = None) -> str:
    """Input i times ``sigmoid(edge_logits)[i]`` (then its attention layer, if any); the
    gate is computed here by TF's own sigmoid (the values the SavedModel computes), a
    constant of the inference graph."""
    from keras import ops

    from .attention import attend

    if (candidates is None) == (layer.attention == "peer"):
        raise UnsupportedLayer(layer.name, type(layer).__name__,
                               "peer candidates without peer attention, or the reverse")
    gate = np.asarray(ops.convert_to_numpy(ops.sigmoid(layer.edge_logits)), np.float32)
    xs = [g.op("Mul", [x, g.const(gate[i])])
          for i, x in enumerate(_resized(g, layer, xs, shapes))]
    if layer.attention is not None:
        xs = [attend(g, att, x, s, candidates)
              for x, s, att in zip(xs, shapes, layer._attention_layers)]
    return _sum_groups(g, layer, xs, shapes)


def scaled_sum_fusion(g: Graph, layer: ScaledSumFusion, xs: list[str], shapes) -> str:
    """Input i times ``scales[i]`` where that is not 1."""
    xs = [x if scale == 1.0 else g.op("Mul", [x, g.const(scale)])
          for x, scale in zip(_resized(g, layer, xs, shapes), layer.scales)]
    return _sum_groups(g, layer, xs, shapes)


def concat_fusion(g: Graph, layer: ConcatFusion, xs: list[str], shapes) -> str:
    return g.op("Concat", _resized(g, layer, xs, shapes), axis=1)
