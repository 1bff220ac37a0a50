"""Keras 3 layers of the TensorFlow backend.

Tensors are folded channels-last ``[B*T, h, w, C]``; every network node is one composite Layer
named after the node. ``attention`` and ``lite`` live in their own modules (imported by their
users; they are re-exported here too).
"""

from .attention import PeerAttention, PeerCandidates, SelfAttention
from .blocks import BottleneckBlock
from .conv import (
    Conv3x3x3,
    FixedPaddingConv2D,
    TemporalConv,
    batch_norm,
    derive_seed,
    fixed_padding,
)
from .fusion import ConcatFusion, ScaledSumFusion, SigmoidFusion, resize_plan
from .heads import MultiStreamHead
from .lite import InvertedBottleneckBlock, LiteHead, LiteStem
from .stems import FlowStem, ObjectStem, RGBStem

__all__ = [
    "BottleneckBlock",
    "ConcatFusion",
    "Conv3x3x3",
    "FixedPaddingConv2D",
    "FlowStem",
    "InvertedBottleneckBlock",
    "LiteHead",
    "LiteStem",
    "MultiStreamHead",
    "ObjectStem",
    "PeerAttention",
    "PeerCandidates",
    "RGBStem",
    "SelfAttention",
    "ScaledSumFusion",
    "SigmoidFusion",
    "TemporalConv",
    "batch_norm",
    "derive_seed",
    "fixed_padding",
    "resize_plan",
]
