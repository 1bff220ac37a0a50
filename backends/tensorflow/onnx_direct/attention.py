"""AssembleNet++ connection attention (`layers.attention`) on NCHW inputs: peer candidates,
self-attention and peer attention, also inside a sigmoid fusion.

Per frame, a channel gate ``sigmoid(Dense(.))`` scales x (broadcast over h and w). The
peer mix ``softmax(z)`` is a constant of the inference graph, computed here by TF's own
softmax (the values the SavedModel computes).
"""

from __future__ import annotations

import numpy as np

from ..layers.attention import PeerAttention, PeerCandidates, SelfAttention
from .graph import Graph, UnsupportedLayer

__all__ = ["dense", "peer_candidates", "self_attention", "peer_attention", "attend"]


def dense(g: Graph, layer, x: str) -> str:
    """A Keras Dense with bias on ``[N, C]`` (no activation)."""
    if getattr(layer, "activation", None) is not None and \
            layer.activation.__name__ != "linear":
        raise UnsupportedLayer(layer.name, "Dense", "an activation")
    kernel = g.weight(layer.kernel.numpy(), layer.kernel.path)
    y = g.op("MatMul", [x, kernel])
    if layer.bias is None:
        return y
    return g.op("Add", [y, g.weight(layer.bias.numpy(), layer.bias.path)])


def _spatial_mean(g: Graph, x: str, channels: int) -> str:
    """``mean over h, w``: ``[N, C, h, w]`` -> ``[N, C]``."""
    return g.reshape(g.op("GlobalAveragePool", [x]), [-1, channels])


def _scale_channels(g: Graph, x: str, logits: str, channels: int) -> str:
    gate = g.reshape(g.op("Sigmoid", [logits]), [-1, channels, 1, 1])
    return g.op("Mul", [x, gate])


def peer_candidates(g: Graph, layer: PeerCandidates, xs: list[str], shapes) -> str:
    """``[N, num_candidates, P]``: each lower node's spatial mean through its Dense."""
    axis1 = g.ints([1])
    vectors = [g.op("Unsqueeze", [dense(g, d, _spatial_mean(g, x, int(s[-1]))), axis1])
               for x, s, d in zip(xs, shapes, layer.projections)]
    return vectors[0] if len(vectors) == 1 else g.op("Concat", vectors, axis=1)


def self_attention(g: Graph, layer: SelfAttention, x: str, shape) -> str:
    c = int(shape[-1])
    return _scale_channels(g, x, dense(g, layer.gate, _spatial_mean(g, x, c)), c)


def peer_attention(g: Graph, layer: PeerAttention, x: str, shape, candidates: str) -> str:
    """``source = sum_n softmax(z)_n cand_n`` through the gate Dense."""
    from keras import ops

    mix = np.asarray(ops.convert_to_numpy(ops.softmax(layer.z, axis=0)), np.float32)
    weighted = g.op("Mul", [candidates, g.const(mix.reshape(1, -1, 1))])
    source = g.reduce("ReduceSum", weighted, [1], keepdims=False)
    c = int(shape[-1])
    return _scale_channels(g, x, dense(g, layer.gate, source), c)


def attend(g: Graph, layer, x: str, shape, candidates: str | None) -> str:
    """``layer`` (self or peer attention) on one connection."""
    if type(layer) is SelfAttention:
        return self_attention(g, layer, x, shape)
    if type(layer) is PeerAttention and candidates is not None:
        return peer_attention(g, layer, x, shape, candidates)
    raise UnsupportedLayer(layer.name, type(layer).__name__, "no direct ONNX emitter")
