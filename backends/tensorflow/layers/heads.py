"""Classifier of the 4-D networks
(SEMANTICS.md, "Heads"; the reference's ``multi_stream_heads``)."""

from __future__ import annotations

import math

import keras
from keras import ops

from .conv import check_int, check_seed, static_shape4
from .initialisers import random


@keras.saving.register_keras_serializable(package="asn")
class MultiStreamHead(keras.layers.Layer):
    """Logits from every level-3 block.

    Each input: global average pool over space -> ``[B*T, C]`` -> ``[B, T, C]`` (C of the first
    input, so all inputs must have the same width) -> mean over time. Several inputs: sum / count.
    Then one Dense to ``classes`` with bias (kernel N(0, 0.01), bias 0). No softmax, no dropout.

    With ``max_pool_predictions``: no mean over time; the Dense runs per frame ->
    ``[B, T, classes]``; for every class, the per-frame logits are weighted by
    ``softmax_t(logits / sqrt(T))`` and summed over time.

    Args:
        classes: number of classes K.
        frames: T, frames per clip (static).
        max_pool_predictions: the softmax-over-time pooling above instead of the time mean.
        seed: seed of the Dense kernel initialiser.

    Input shape: list of one or more ``[B*T, h_i, w_i, C]`` (a single tensor is accepted too).
    Output shape: ``[B, K]`` logits.
    Parameters: ``C*K + K``.
    """

    def __init__(self, classes, frames, max_pool_predictions=False, seed=0, **kwargs):
        super().__init__(**kwargs)
        self.classes = check_int("classes", classes)
        self.frames = check_int("frames", frames)
        if not isinstance(max_pool_predictions, bool):
            raise ValueError(f"`max_pool_predictions` must be a bool, got {max_pool_predictions!r}")
        self.max_pool_predictions = max_pool_predictions
        self.seed = check_seed(seed)
        self.classifier = keras.layers.Dense(
            classes,
            use_bias=True,
            kernel_initializer=random(keras.initializers.RandomNormal(mean=0.0, stddev=0.01,
                                                                    seed=seed)),
            bias_initializer="zeros",
            name="classifier",
        )

    @staticmethod
    def _shape_list(input_shape):
        if (
            isinstance(input_shape, (list, tuple))
            and input_shape
            and isinstance(input_shape[0], (list, tuple))
        ):
            return [tuple(s) for s in input_shape]
        return [tuple(input_shape)]

    def build(self, input_shape):
        shapes = [static_shape4(s, self.name) for s in self._shape_list(input_shape)]
        widths = [s[3] for s in shapes]
        if len(set(widths)) != 1:
            raise ValueError(
                f"{self.name}: all level-3 inputs must have the same width, got widths {widths}"
            )
        self.classifier.build((None, widths[0]))

    def call(self, inputs):
        if not isinstance(inputs, (list, tuple)):
            inputs = [inputs]
        t = self.frames
        channels = inputs[0].shape[-1]
        feats = None
        for x in inputs:
            f = ops.reshape(ops.mean(x, axis=(1, 2)), (-1, t, channels))
            if not self.max_pool_predictions:
                f = ops.mean(f, axis=1)
            feats = f if feats is None else feats + f
        feats = feats / float(len(inputs))
        logits = self.classifier(feats)  # [B, K], or [B, T, K] per frame
        if not self.max_pool_predictions:
            return logits
        weights = ops.softmax(logits / math.sqrt(t), axis=1)
        return ops.sum(weights * logits, axis=1)

    def compute_output_shape(self, input_shape):
        folded = self._shape_list(input_shape)[0][0]
        return (None if folded is None else folded // self.frames, self.classes)

    def get_config(self):
        config = super().get_config()
        config.update(
            classes=self.classes,
            frames=self.frames,
            max_pool_predictions=self.max_pool_predictions,
            seed=self.seed,
        )
        return config
