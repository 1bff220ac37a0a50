"""AssembleNet++ connection attention: peer candidates, self- and peer-attention.

Semantics: SEMANTICS.md, "AssembleNet++ ... / What asnc builds (the original's
semantics)", parts "Peer candidates" and "Attention on one connection".

Every tensor is folded `[B*T, h, w, C]`. Attention works per frame (a mean over
the two spatial axes, a scale broadcast over them), so the folded layout gives
the same values as the lite network's 5-D `[B, T, h, w, C]`; frames and clips
never mix.
"""

import keras
from keras import ops

from .conv import check_int_received
from .initialisers import random

__all__ = ["PeerCandidates", "PeerAttention", "SelfAttention"]


def _dense(units, seed, name):
    # Attention Dense layers: kernel N(0, 0.01) (not truncated), bias 0.
    return keras.layers.Dense(
        units,
        kernel_initializer=random(keras.initializers.RandomNormal(0.0, 0.01, seed=seed)),
        bias_initializer="zeros",
        name=name,
    )


def _check_folded(layer, what, shape):
    if len(shape) != 4:
        raise ValueError(
            f"{type(layer).__name__} `{layer.name}`: {what} must be 4-D "
            f"[B*T, h, w, C]. Received shape: {tuple(shape)}"
        )


def _scale_channels(x, logits):
    # sigmoid gate per frame and channel, broadcast over h and w.
    gate = ops.sigmoid(logits)
    return x * ops.expand_dims(ops.expand_dims(gate, 1), 1)


class PeerCandidates(keras.layers.Layer):
    """Peer-attention candidates of one block: one P-wide vector per lower node.

    Each `below` node is averaged over its two spatial axes and mapped by its
    own Dense (C_n -> P, with bias). Parameters: `sum_n (C_n*P + P)`.

    Args:
        P: width of every candidate (the largest channel count in `below`).
        num_candidates: number of `below` nodes, N.
        seed: base seed; Dense n uses `seed*1000 + n`.
        **kwargs: base Layer arguments (`name`: the block's source name).

    Call arguments:
        inputs: list of the N `below` node tensors, in softmax-logit order.

    Input shape:
        list of N tensors `[B*T, h_n, w_n, C_n]` (sizes and widths may differ).

    Output shape:
        `[B*T, N, P]`, candidates stacked in list order.
    """

    def __init__(self, P, num_candidates, seed=0, **kwargs):
        super().__init__(**kwargs)
        self.P = check_int_received("P", P, 1)
        self.num_candidates = check_int_received("num_candidates", num_candidates, 1)
        self.seed = check_int_received("seed", seed, 0)
        self.projections = [
            _dense(P, seed * 1000 + n, f"cand{n}") for n in range(num_candidates)
        ]

    def build(self, input_shape):
        if not isinstance(input_shape, (list, tuple)) or len(input_shape) != self.num_candidates:
            raise ValueError(
                f"PeerCandidates `{self.name}` expects a list of {self.num_candidates} "
                f"tensors. Received: {input_shape!r}"
            )
        for shape, dense in zip(input_shape, self.projections):
            _check_folded(self, "every candidate", shape)
            dense.build((shape[0], shape[-1]))

    def call(self, inputs):
        vectors = [
            dense(ops.mean(x, axis=(1, 2))) for x, dense in zip(inputs, self.projections)
        ]
        return ops.stack(vectors, axis=1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], self.num_candidates, self.P)

    def get_config(self):
        config = super().get_config()
        config.update(P=self.P, num_candidates=self.num_candidates, seed=self.seed)
        return config


class SelfAttention(keras.layers.Layer):
    """Self-attention on one connection: `x * sigmoid(Dense(mean_hw(x)))`.

    Parameters: `C*C + C`.

    Args:
        channels: C, the channel count of x.
        seed: base seed; the Dense kernel uses `seed*1000`.
        **kwargs: base Layer arguments.

    Call arguments:
        x: the (resized, weighted) connection tensor.

    Input shape:
        `[B*T, h, w, C]`.

    Output shape:
        same as the input.
    """

    def __init__(self, channels, seed=0, **kwargs):
        super().__init__(**kwargs)
        self.channels = check_int_received("channels", channels, 1)
        self.seed = check_int_received("seed", seed, 0)
        self.gate = _dense(channels, seed * 1000, "gate")

    def build(self, input_shape):
        _check_folded(self, "x", input_shape)
        if input_shape[-1] != self.channels:
            raise ValueError(
                f"SelfAttention `{self.name}` was built for channels={self.channels}. "
                f"Received input shape: {tuple(input_shape)}"
            )
        self.gate.build((input_shape[0], self.channels))

    def call(self, x):
        return _scale_channels(x, self.gate(ops.mean(x, axis=(1, 2))))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(channels=self.channels, seed=self.seed)
        return config


class PeerAttention(keras.layers.Layer):
    """Peer-attention on one connection, with its own trainable softmax logits z.

    `source = sum_n softmax(z)_n * cand_n`; then `x * sigmoid(Dense(source))`.
    Parameters: `N + P*C + C`.

    Args:
        channels: C, the channel count of x.
        num_candidates: N, the number of peer candidates (length of z).
        seed: base seed; z uses `seed*1000`, the Dense kernel `seed*1000 + 1`.
        **kwargs: base Layer arguments.

    Call arguments:
        x: the (resized, weighted) connection tensor.
        candidates: the block's `PeerCandidates` output.

    Input shape:
        x `[B*T, h, w, C]`, candidates `[B*T, N, P]`.

    Output shape:
        same as x.
    """

    def __init__(self, channels, num_candidates, seed=0, **kwargs):
        super().__init__(**kwargs)
        self.channels = check_int_received("channels", channels, 1)
        self.num_candidates = check_int_received("num_candidates", num_candidates, 1)
        self.seed = check_int_received("seed", seed, 0)
        self.gate = _dense(channels, seed * 1000 + 1, "gate")

    def build(self, x_shape, candidates_shape):
        _check_folded(self, "x", x_shape)
        if x_shape[-1] != self.channels:
            raise ValueError(
                f"PeerAttention `{self.name}` was built for channels={self.channels}. "
                f"Received x shape: {tuple(x_shape)}"
            )
        if len(candidates_shape) != 3 or candidates_shape[1] != self.num_candidates:
            raise ValueError(
                f"PeerAttention `{self.name}` expects candidates [B*T, "
                f"{self.num_candidates}, P]. Received shape: {tuple(candidates_shape)}"
            )
        self.z = self.add_weight(
            shape=(self.num_candidates,),
            initializer=random(keras.initializers.TruncatedNormal(0.0, 0.01,
                                                                 seed=self.seed * 1000)),
            trainable=True,
            name="z",
        )
        self.gate.build((candidates_shape[0], candidates_shape[2]))

    def call(self, x, candidates):
        mix = ops.softmax(self.z, axis=0)
        source = ops.sum(candidates * mix[None, :, None], axis=1)
        return _scale_channels(x, self.gate(source))

    def compute_output_shape(self, x_shape, candidates_shape):
        return tuple(x_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            channels=self.channels, num_candidates=self.num_candidates, seed=self.seed
        )
        return config
