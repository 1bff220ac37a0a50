"""The classifier (`layers.heads.MultiStreamHead`): the graph output ``logits``."""

from __future__ import annotations

import math

import numpy as np

from ..layers.heads import MultiStreamHead
from .graph import Graph

__all__ = ["LOGITS", "multi_stream_head"]

LOGITS = "logits"


def multi_stream_head(g: Graph, head: MultiStreamHead, xs: list[str], shapes) -> str:
    """Per input: the spatial mean ``[B*T, C]`` as ``[B, T, C]``, its time mean unless
    predictions are max-pooled; the inputs' mean; the Dense; with ``max_pool_predictions``
    the per-frame logits weighted by ``softmax_t(logits / sqrt(T))`` and summed over time."""
    if isinstance(xs, str):  # called on one tensor rather than a list of one
        xs, shapes = [xs], [shapes]
    t = head.frames
    channels = int(shapes[0][-1])
    feats = None
    for x in xs:
        f = g.reshape(g.op("GlobalAveragePool", [x]), [-1, t, channels])
        if not head.max_pool_predictions:
            f = g.reduce("ReduceMean", f, [1], keepdims=False)
        feats = f if feats is None else g.op("Add", [feats, f])
    assert feats is not None
    if len(xs) > 1:  # (a division by 1 is exact: left out)
        feats = g.op("Div", [feats, g.const(float(len(xs)))])
    dense = head.classifier
    kernel = g.weight(dense.kernel.numpy(), dense.kernel.path)
    bias = g.weight(dense.bias.numpy(), dense.bias.path)
    last = None if head.max_pool_predictions else LOGITS
    logits = g.op("Add", [g.op("MatMul", [feats, kernel]), bias], last)
    if not head.max_pool_predictions:
        return logits
    scaled = g.op("Div", [logits, g.const(np.float32(math.sqrt(t)))])
    weights = g.op("Softmax", [scaled], axis=1)
    return g.reduce("ReduceSum", g.op("Mul", [weights, logits]), [1], keepdims=False,
                    output=LOGITS)
