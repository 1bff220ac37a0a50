"""Connections into a block with k >= 2 inputs (SEMANTICS.md, "Connections into a block" and
the AssembleNet++ "Fusion into a block"). A single input needs no fusion layer: the lowering passes
it on.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from .conv import (FixedPaddingConv2D, ceil_div, check_int, check_seed, derive_seed,
                   static_shape4)
from .initialisers import random

ATTENTION_MODES = (None, "self", "peer")


def resize_plan(shapes, layer_name: str):
    """Common spatial size of folded inputs and the max-pool factor of each input.

    The target is the smallest h and the smallest w. An input of another size is max-pooled with
    window = stride = ``(h + 1) // h_min`` (h alone decides), SAME; afterwards its size must be the
    target, else ValueError.

    Returns:
        ``(h_min, w_min, factors)``; ``factors[i]`` is None for an input already of the target
        size.
    """
    shapes = [static_shape4(s, layer_name) for s in shapes]
    h_min = min(s[1] for s in shapes)
    w_min = min(s[2] for s in shapes)
    factors = []
    for i, (_, h, w, _) in enumerate(shapes):
        if (h, w) == (h_min, w_min):
            factors.append(None)
            continue
        r = (h + 1) // h_min
        pooled = (ceil_div(h, r), ceil_div(w, r))
        if pooled != (h_min, w_min):
            raise ValueError(
                f"{layer_name}: input {i} of size {h}x{w} max-pooled by {r} gives "
                f"{pooled[0]}x{pooled[1]}, not the common size {h_min}x{w_min}; "
                f"input sizes {[(s[1], s[2]) for s in shapes]}"
            )
        factors.append(r)
    return h_min, w_min, factors


def _as_shape_list(inputs_shape, num_inputs: int, layer_name: str):
    if (
        not isinstance(inputs_shape, (list, tuple))
        or not inputs_shape
        or not isinstance(inputs_shape[0], (list, tuple))
    ):
        raise ValueError(
            f"{layer_name}: expected a list of {num_inputs} input shapes, got {inputs_shape!r}"
        )
    if len(inputs_shape) != num_inputs:
        raise ValueError(
            f"{layer_name}: built for num_inputs={num_inputs}, "
            f"called with {len(inputs_shape)} inputs"
        )
    return [tuple(s) for s in inputs_shape]


def _build_groups(layer, batch, channels):
    """Input groups by channel count, in order of first appearance, and each group's 1x1
    conv to the target width (None for the target group). Seeds and names are shared by
    ``SigmoidFusion`` and ``ScaledSumFusion``, so a pass can move weights between them."""
    groups = list(dict.fromkeys(channels))
    convs = []
    for g, c in enumerate(groups):
        if c == layer._target:
            convs.append(None)
            continue
        conv = FixedPaddingConv2D(
            layer._target, 1, 1, seed=derive_seed(layer.seed, 200 + g), name=f"group{g}_conv1x1"
        )
        conv.build((batch, layer._h, layer._w, c))
        convs.append(conv)
    return groups, convs


def _sum_groups(sums, groups, convs):
    out = None
    for c, conv in zip(groups, convs):
        y = sums[c] if conv is None else conv(sums[c])
        out = y if out is None else out + y
    return out


def _group_conv_map(layer) -> dict:
    return {c: conv for c, conv in zip(layer._groups, layer._group_convs) if conv is not None}


def _target_width(layer, channels) -> int:
    """``L_c``: the largest channel count among the inputs not excluded from the target."""
    excluded = layer.exclude_from_target or [False] * layer.num_inputs
    return max(c for c, e in zip(channels, excluded) if not e)


def _fused_shape(layer, inputs_shape):
    shapes = _as_shape_list(inputs_shape, layer.num_inputs, layer.name)
    h, w, _ = resize_plan(shapes, layer.name)
    return (shapes[0][0], h, w, _target_width(layer, [s[3] for s in shapes]))


def _pool(x, factor):
    return (
        x if factor is None else ops.max_pool(x, pool_size=factor, strides=factor, padding="same")
    )


@keras.saving.register_keras_serializable(package="asn")
class SigmoidFusion(keras.layers.Layer):
    """Sigmoid-weighted fusion of k >= 2 folded inputs (combine method ``sigmoid``).

    Steps:
      1. resize every input to the smallest h and w (max-pool, see ``resize_plan``);
      2. multiply input i by ``sigmoid(a_i)``; ``a`` is ONE length-k variable (``edge_logits``):
         non-trainable logits ``-log(1/w_i - 1)`` of the given ``weights``, or trainable from
         TruncatedNormal(0, 0.01) when ``weights`` is None;
      3. if ``attention`` is set, pass every weighted input through its own attention layer
         (``SelfAttention`` or ``PeerAttention`` of ``layers.attention``);
      4. group inputs by channel count (order of first appearance) and sum each group;
      5. ``L_c`` = the largest channel count among inputs not excluded by ``exclude_from_target``;
         every group of another channel count gets ONE 1x1 conv (no bias) on its sum, to ``L_c``;
      6. sum all groups.

    Args:
        num_inputs: k >= 2.
        weights: None (learn) or k floats strictly in (0, 1), the weights after the sigmoid.
        attention: None, ``"self"`` or ``"peer"``.
        exclude_from_target: None or k bools; True marks an input (an object stem) that cannot set
            ``L_c``. It is still resized, weighted and grouped.
        seed: base seed (edge logits, attention layers and 1x1 convs get derived seeds).

    Call: ``layer(inputs, candidates=None)``; ``inputs``: k tensors ``[B*T, h_i, w_i, C_i]``;
    ``candidates`` ``[B*T, N, P]``, required with ``attention="peer"`` and refused otherwise.

    Input shape: list of k ``[B*T, h_i, w_i, C_i]``.
    Output shape: ``[B*T, min h_i, min w_i, L_c]``.
    Parameters: ``k + sum over non-target groups of c_g * L_c`` (+ the attention layers').
    """

    def __init__(
        self, num_inputs, weights=None, attention=None, exclude_from_target=None, seed=0, **kwargs
    ):
        super().__init__(**kwargs)
        self.num_inputs = check_int("num_inputs", num_inputs, minimum=2)
        if weights is not None:
            if not isinstance(weights, (list, tuple)) or len(weights) != num_inputs:
                raise ValueError(
                    f"`weights` must be None or a list of {num_inputs} floats, got {weights!r}"
                )
            for w in weights:
                if isinstance(w, bool) or not isinstance(w, (int, float)) or not 0.0 < w < 1.0:
                    raise ValueError(
                        f"`weights` must lie strictly between 0 and 1, got {weights!r}"
                    )
            weights = [float(w) for w in weights]
        self.edge_weights = weights
        if attention not in ATTENTION_MODES:
            raise ValueError(f"`attention` must be one of {ATTENTION_MODES}, got {attention!r}")
        self.attention = attention
        if exclude_from_target is not None:
            if (
                not isinstance(exclude_from_target, (list, tuple))
                or len(exclude_from_target) != num_inputs
                or not all(isinstance(e, bool) for e in exclude_from_target)
            ):
                raise ValueError(
                    f"`exclude_from_target` must be None or a list of {num_inputs} bools, "
                    f"got {exclude_from_target!r}"
                )
            if all(exclude_from_target):
                raise ValueError(
                    "`exclude_from_target` leaves no input to set the target width, "
                    f"got {exclude_from_target!r}"
                )
            exclude_from_target = list(exclude_from_target)
        self.exclude_from_target = exclude_from_target
        self.seed = check_seed(seed)

    def build(self, inputs_shape, candidates_shape=None):
        shapes = _as_shape_list(inputs_shape, self.num_inputs, self.name)
        self._h, self._w, self._factors = resize_plan(shapes, self.name)
        channels = [s[3] for s in shapes]
        self._target = _target_width(self, channels)

        if self.edge_weights is None:
            init = random(keras.initializers.TruncatedNormal(
                mean=0.0, stddev=0.01, seed=derive_seed(self.seed, 0)
            ))
        else:
            w = np.asarray(self.edge_weights, dtype=np.float64)
            init = keras.initializers.Constant((-np.log(1.0 / w - 1.0)).astype(np.float32))
        self.edge_logits = self.add_weight(
            name="edge_logits",
            shape=(self.num_inputs,),
            initializer=init,
            trainable=self.edge_weights is None,
        )

        self._attention_layers = []
        if self.attention is not None:
            self._build_attention(shapes[0][0], channels, candidates_shape)

        self._groups, self._group_convs = _build_groups(self, shapes[0][0], channels)

    def _build_attention(self, batch, channels, candidates_shape):
        # Imported here so that this module works before/without the attention module.
        from .attention import PeerAttention, SelfAttention

        if self.attention == "peer" and (
            candidates_shape is None or len(candidates_shape) != 3 or candidates_shape[1] is None
        ):
            raise ValueError(
                f"{self.name}: attention='peer' needs `candidates` [B*T, N, P] with static N, "
                f"got shape {candidates_shape}"
            )
        for i, c in enumerate(channels):
            seed = derive_seed(self.seed, 100 + i)
            shape = (batch, self._h, self._w, c)  # attention sees the resized input
            if self.attention == "self":
                layer = SelfAttention(c, seed=seed, name=f"input{i}_attention")
                layer.build(shape)
            else:
                layer = PeerAttention(c, candidates_shape[1], seed=seed, name=f"input{i}_attention")
                layer.build(shape, tuple(candidates_shape))
            self._attention_layers.append(layer)

    def call(self, inputs, candidates=None):
        if (candidates is None) == (self.attention == "peer"):
            raise ValueError(
                f"{self.name}: `candidates` must be given exactly when attention='peer' "
                f"(attention={self.attention!r})"
            )
        gate = ops.sigmoid(self.edge_logits)
        sums = {}
        for i, x in enumerate(inputs):
            x = _pool(x, self._factors[i]) * gate[i]
            if self._attention_layers:
                att = self._attention_layers[i]
                x = att(x, candidates) if self.attention == "peer" else att(x)
            c = x.shape[-1]
            sums[c] = x if c not in sums else sums[c] + x
        return _sum_groups(sums, self._groups, self._group_convs)

    def group_convs(self) -> dict[int, object]:
        """Channel count of each group -> its 1x1 conv (only groups that have one)."""
        return _group_conv_map(self)

    def compute_output_shape(self, inputs_shape, candidates_shape=None):
        return _fused_shape(self, inputs_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            num_inputs=self.num_inputs,
            weights=self.edge_weights,
            attention=self.attention,
            exclude_from_target=self.exclude_from_target,
            seed=self.seed,
        )
        return config


@keras.saving.register_keras_serializable(package="asn")
class ConcatFusion(keras.layers.Layer):
    """Concat fusion of k >= 2 folded inputs (combine method ``concat``, AssembleNet only).

    Inputs are resized like ``SigmoidFusion`` (max-pool to the smallest h and w), then concatenated
    on channels in input order. No weights.

    Args:
        num_inputs: k >= 2.

    Input shape: list of k ``[B*T, h_i, w_i, C_i]``.
    Output shape: ``[B*T, min h_i, min w_i, sum C_i]``.
    Parameters: 0.
    """

    def __init__(self, num_inputs, **kwargs):
        super().__init__(**kwargs)
        self.num_inputs = check_int("num_inputs", num_inputs, minimum=2)

    def build(self, inputs_shape):
        shapes = _as_shape_list(inputs_shape, self.num_inputs, self.name)
        self._h, self._w, self._factors = resize_plan(shapes, self.name)

    def call(self, inputs):
        return ops.concatenate([_pool(x, r) for x, r in zip(inputs, self._factors)], axis=-1)

    def compute_output_shape(self, inputs_shape):
        shapes = _as_shape_list(inputs_shape, self.num_inputs, self.name)
        h, w, _ = resize_plan(shapes, self.name)
        return (shapes[0][0], h, w, sum(s[3] for s in shapes))

    def get_config(self):
        config = super().get_config()
        config.update(num_inputs=self.num_inputs)
        return config


@keras.saving.register_keras_serializable(package="asn")
class ScaledSumFusion(keras.layers.Layer):
    """``SigmoidFusion`` without attention after `fold-edge-weights`: constant input scales.

    The connection weights are folded into the layers around the fusion (see
    ``compiler.passes.edgefold``); what they could not absorb is left as ``scales``, Python
    floats multiplied in only where they are not 1. Steps 1, 4, 5 and 6 of ``SigmoidFusion``
    are unchanged (same group convs, same names and seeds); no ``edge_logits`` variable.

    Args:
        num_inputs: k >= 2.
        scales: k positive floats.
        exclude_from_target: as for ``SigmoidFusion``.
        seed: base seed of the group convs (as ``SigmoidFusion``'s).

    Parameters: ``sum over non-target groups of c_g * L_c``.
    """

    def __init__(self, num_inputs, scales, exclude_from_target=None, seed=0, **kwargs):
        super().__init__(**kwargs)
        self.num_inputs = check_int("num_inputs", num_inputs, minimum=2)
        if not isinstance(scales, (list, tuple)) or len(scales) != num_inputs or any(
                isinstance(s, bool) or not isinstance(s, (int, float)) or not s > 0
                for s in scales):
            raise ValueError(f"`scales` must be {num_inputs} positive floats, got {scales!r}")
        self.scales = [float(s) for s in scales]
        if exclude_from_target is not None and (
                not isinstance(exclude_from_target, (list, tuple))
                or len(exclude_from_target) != num_inputs or all(exclude_from_target)):
            raise ValueError(f"bad `exclude_from_target` {exclude_from_target!r}")
        self.exclude_from_target = (list(exclude_from_target)
                                    if exclude_from_target is not None else None)
        self.seed = check_seed(seed)

    def build(self, inputs_shape):
        shapes = _as_shape_list(inputs_shape, self.num_inputs, self.name)
        self._h, self._w, self._factors = resize_plan(shapes, self.name)
        channels = [s[3] for s in shapes]
        self._target = _target_width(self, channels)
        self._groups, self._group_convs = _build_groups(self, shapes[0][0], channels)

    def group_convs(self) -> dict[int, object]:
        """Channel count of each group -> its 1x1 conv (only groups that have one)."""
        return _group_conv_map(self)

    def call(self, inputs):
        sums = {}
        for i, x in enumerate(inputs):
            x = _pool(x, self._factors[i])
            if self.scales[i] != 1.0:
                x = x * self.scales[i]
            c = x.shape[-1]
            sums[c] = x if c not in sums else sums[c] + x
        return _sum_groups(sums, self._groups, self._group_convs)

    def compute_output_shape(self, inputs_shape):
        return _fused_shape(self, inputs_shape)

    def get_config(self):
        config = super().get_config()
        config.update(num_inputs=self.num_inputs, scales=self.scales,
                      exclude_from_target=self.exclude_from_target, seed=self.seed)
        return config
