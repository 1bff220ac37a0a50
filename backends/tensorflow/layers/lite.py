"""AssembleNet++lite pieces: stem, inverted-bottleneck block, head.

Semantics: SEMANTICS.md, "AssembleNet++ ... / What asnc builds (the original's
semantics) / AssembleNet++lite".

The lite network is 5-D `[B, T, h, w, C]`; asnc passes folded `[B*T, h, w, C]`
between nodes, so each layer unfolds to 5-D (T = `frames`, static), runs 3-D
convolutions (kernels `[kt, kh, kw, C_in, F]`, as in the original) and folds
back. Temporal convs therefore never mix clips. Padding is TF "SAME" everywhere
(Keras "same" on TensorFlow), also for strided convs (smaller half before),
except the 1x1x1 strided shortcut, which just subsamples from 0 ("valid").
"""

import math

import keras
from keras import ops

from .bn_options import BatchNormOptions, apply_bn, build_chain
from .conv import check_int_received, strided_shape
from .initialisers import random

__all__ = ["InvertedBottleneckBlock", "LiteHead", "LiteStem"]

STEM_WIDTH = 24
HEAD_WIDTHS = (432, 2048)


def _check_input(layer, shape, channels=None):
    if len(shape) != 4 or (channels is not None and shape[-1] != channels):
        want = f"[B*T, h, w, {channels}]" if channels is not None else "[B*T, h, w, C]"
        raise ValueError(
            f"{type(layer).__name__} `{layer.name}` expects {want}. "
            f"Received shape: {tuple(shape)}"
        )


def _unfold(x, frames):
    return ops.reshape(x, (-1, frames) + tuple(x.shape[1:]))


def _fold(x):
    return ops.reshape(x, (-1,) + tuple(x.shape[2:]))


def _conv(filters, kernel, seed, name, strides=1, dilation=1, padding="same", init=None,
          use_bias=False):
    # Keras VarianceScaling defaults (scale 1, fan_in, truncated normal) unless told.
    # A bias only in the fold_bn form (the batch norm after it folded in).
    return keras.layers.Conv3D(
        filters,
        kernel,
        strides=strides,
        padding=padding,
        dilation_rate=(dilation, 1, 1),
        use_bias=use_bias,
        kernel_initializer=init or random(keras.initializers.VarianceScaling(seed=seed)),
        name=name,
    )


def _temporal_conv(filters, c_in, dilation, seed, name, use_bias=False):
    """3x1x1 conv, SAME over time; the original's init rule for dilated taps."""
    init = None
    if dilation > 1:
        std = math.sqrt(2.0 / (3 * c_in))
        init = random(keras.initializers.TruncatedNormal(0.0, std, seed=seed))
    return _conv(filters, (3, 1, 1), seed, name, dilation=dilation, init=init,
                 use_bias=use_bias)


class LiteStem(BatchNormOptions, keras.layers.Layer):
    """Lite stem (RGB or flow): a strided 1x3x3 conv, then a 3x1x1 temporal conv.

    1x3x3 conv stride (1,2,2) -> BN -> ReLU -> 3x1x1 conv (dilation d) -> BN -> ReLU.

    Parameters: `9*c*W + 4*W + 3*W*W + 4*W` (W = width; c = 3: 2568, c = 2: 2352).

    Args:
        in_channels: c, 3 for the RGB stem, 2 for a flow stem.
        dilation: temporal dilation of the 3x1x1 conv; values < 1 mean 1.
        frames: T, frames per clip (static).
        width: output channels, 24 in the original.
        seed: base seed; convs use `seed*1000 + k`.
        bn_momentum, bn_epsilon, fold_bn: batch-norm settings (`BatchNormOptions`).
        **kwargs: base Layer arguments (`name`: the node's source name).

    Input shape:
        `[B*T, H, W, in_channels]`.

    Output shape:
        `[B*T, ceil(H/2), ceil(W/2), width]`.
    """

    def __init__(self, in_channels, dilation, frames, width=STEM_WIDTH, seed=0,
                 bn_momentum=0.99, bn_epsilon=1e-5, fold_bn=False, **kwargs):
        super().__init__(bn_momentum=bn_momentum, bn_epsilon=bn_epsilon, fold_bn=fold_bn,
                         **kwargs)
        self.in_channels = check_int_received("in_channels", in_channels, 1)
        if isinstance(dilation, bool) or not isinstance(dilation, int):
            raise ValueError(f"`dilation` must be an integer. Received: dilation={dilation!r}")
        self.dilation = dilation
        self.frames = check_int_received("frames", frames, 1)
        self.width = check_int_received("width", width, 1)
        self.seed = check_int_received("seed", seed, 0)
        self.conv_spatial = _conv(width, (1, 3, 3), seed * 1000, "conv_spatial", strides=(1, 2, 2),
                                  use_bias=self.fold_bn)
        self.bn_spatial = self.batch_norm("bn_spatial")
        self.conv_temporal = _temporal_conv(
            width, width, max(dilation, 1), seed * 1000 + 1, "conv_temporal",
            use_bias=self.fold_bn,
        )
        self.bn_temporal = self.batch_norm("bn_temporal")

    def build(self, input_shape):
        _check_input(self, input_shape, self.in_channels)
        build_chain(
            [self.conv_spatial, self.bn_spatial, self.conv_temporal, self.bn_temporal],
            (None, self.frames) + tuple(input_shape[1:]),
        )

    def call(self, x, training=None):
        y = _unfold(x, self.frames)
        y = ops.relu(apply_bn(self.bn_spatial, self.conv_spatial(y), training))
        y = ops.relu(apply_bn(self.bn_temporal, self.conv_temporal(y), training))
        return _fold(y)

    def conv_bn_pairs(self):
        return [(self.conv_spatial, self.bn_spatial), (self.conv_temporal, self.bn_temporal)]

    def compute_output_shape(self, input_shape):
        return strided_shape(input_shape, 2, self.width)

    def get_config(self):
        config = super().get_config()
        config.update(
            in_channels=self.in_channels, dilation=self.dilation, frames=self.frames,
            width=self.width, seed=self.seed, **self.bn_config(),
        )
        return config


class _InvertedBottleneckUnit(BatchNormOptions, keras.layers.Layer):
    """One lite unit on 5-D `[B, T, h, w, c]`; see `InvertedBottleneckBlock`."""

    def __init__(self, filters, dilation, stride, shortcut, seed, bn_momentum,
                 bn_epsilon, fold_bn=False, **kwargs):
        super().__init__(bn_momentum=bn_momentum, bn_epsilon=bn_epsilon, fold_bn=fold_bn,
                         **kwargs)
        f0, f1, f2 = filters
        self.filters = tuple(filters)
        self.dilation = dilation
        self.stride = stride
        self.shortcut = shortcut
        self.seed = seed
        bn = self.batch_norm

        s = (1, stride, stride)
        b = {"use_bias": self.fold_bn}
        self.main = [_conv(f0, 1, seed, "expand", **b), bn("expand_bn")]
        if stride > 1:
            # (2+1)D: strided spatial conv, then the temporal conv.
            self.main += [
                _conv(f1, (1, 3, 3), seed + 1, "conv_spatial", strides=s, **b),
                bn("conv_spatial_bn"),
                _temporal_conv(f1, f1, dilation, seed + 2, "conv_temporal", **b),
                bn("conv_temporal_bn"),
            ]
        else:
            # Full 3-D conv: VarianceScaling whatever the dilation (the original).
            self.main += [
                _conv(f1, 3, seed + 1, "conv_3d", dilation=dilation, **b),
                bn("conv_3d_bn"),
            ]
        self.main += [_conv(f2, 1, seed + 3, "project", **b), bn("project_bn", zero_gamma=True)]
        self.proj = None
        if shortcut:
            # 1x1x1 with stride: "valid" subsamples from index 0.
            self.proj = [
                _conv(f2, 1, seed + 4, "shortcut", strides=s, padding="valid", **b),
                bn("shortcut_bn"),
            ]

    def build(self, input_shape):
        if self.proj is None and input_shape[-1] != self.filters[2]:
            raise ValueError(
                f"unit `{self.name}` has an identity shortcut, so its input needs "
                f"{self.filters[2]} channels. Received shape: {tuple(input_shape)}"
            )
        build_chain(self.main, input_shape)
        if self.proj is not None:
            build_chain(self.proj, input_shape)

    def call(self, x, training=None):
        y = x
        # Layers alternate conv, BN; ReLU after every BN except the projection's.
        for i in range(0, len(self.main), 2):
            y = apply_bn(self.main[i + 1], self.main[i](y), training)
            if i + 2 < len(self.main):
                y = ops.relu(y)
        shortcut = x
        if self.proj is not None:
            shortcut = apply_bn(self.proj[1], self.proj[0](x), training)
        return ops.relu(y + shortcut)

    def conv_bn_pairs(self):
        pairs = list(zip(self.main[0::2], self.main[1::2]))
        return pairs + ([(self.proj[0], self.proj[1])] if self.proj is not None else [])

    def compute_output_shape(self, input_shape):
        return strided_shape(input_shape, self.stride, self.filters[2])

    def get_config(self):
        config = super().get_config()
        config.update(
            filters=self.filters, dilation=self.dilation, stride=self.stride,
            shortcut=self.shortcut, seed=self.seed, **self.bn_config(),
        )
        return config


class InvertedBottleneckBlock(BatchNormOptions, keras.layers.Layer):
    """Lite block: `num_units` inverted-bottleneck units.

    The first unit carries the stride and a projection shortcut; the rest have
    stride 1 and identity shortcuts.

    Unit with input width c (later units: c = f2, identity shortcut):
      shortcut (first unit only): 1x1x1 conv to f2, stride (1,s,s) -> BN.  `c*f2 + 4*f2`
      expand: 1x1x1 conv to f0 -> BN -> ReLU.                               `c*f0 + 4*f0`
      stride > 1: 1x3x3 conv to f1, stride (1,s,s) -> BN -> ReLU,
                  3x1x1 conv to f1, dilation d -> BN -> ReLU.   `9*f0*f1 + 4*f1 + 3*f1*f1 + 4*f1`
      stride 1:   3x3x3 conv to f1, temporal dilation d -> BN -> ReLU.     `27*f0*f1 + 4*f1`
      project: 1x1x1 conv to f2 -> BN (gamma 0).                            `f1*f2 + 4*f2`
      output: ReLU(main + shortcut).

    Args:
        filters: (f0, f1, f2): expand, middle and output widths.
        num_units: units in the block (`[3, 5, 11, 7]` per level in the original).
        dilation: temporal dilation d >= 1.
        stride: spatial stride s >= 1 of the first unit.
        frames: T, frames per clip (static).
        seed: base seed; unit i's convs use `seed*1000 + 10*i + k`.
        bn_momentum, bn_epsilon, fold_bn: batch-norm settings (`BatchNormOptions`).
        **kwargs: base Layer arguments (`name`: the node's source name).

    Input shape:
        `[B*T, h, w, c]`.

    Output shape:
        `[B*T, ceil(h/s), ceil(w/s), f2]`.
    """

    def __init__(self, filters, num_units, dilation, stride, frames, seed=0,
                 bn_momentum=0.99, bn_epsilon=1e-5, fold_bn=False, **kwargs):
        super().__init__(bn_momentum=bn_momentum, bn_epsilon=bn_epsilon, fold_bn=fold_bn,
                         **kwargs)
        if (
            not isinstance(filters, (list, tuple))
            or len(filters) != 3
            or any(isinstance(f, bool) or not isinstance(f, int) or f < 1 for f in filters)
        ):
            raise ValueError(
                "`filters` must be three positive integers (f0, f1, f2). "
                f"Received: filters={filters!r}"
            )
        self.filters = tuple(filters)
        self.num_units = check_int_received("num_units", num_units, 1)
        self.dilation = check_int_received("dilation", dilation, 1)
        self.stride = check_int_received("stride", stride, 1)
        self.frames = check_int_received("frames", frames, 1)
        self.seed = check_int_received("seed", seed, 0)
        self.units = [
            _InvertedBottleneckUnit(
                self.filters, dilation, stride if i == 0 else 1, shortcut=(i == 0),
                seed=seed * 1000 + 10 * i, **self.bn_config(), name=f"unit{i}",
            )
            for i in range(num_units)
        ]

    def build(self, input_shape):
        _check_input(self, input_shape)
        build_chain(self.units, (None, self.frames) + tuple(input_shape[1:]))

    def call(self, x, training=None):
        y = _unfold(x, self.frames)
        for unit in self.units:
            y = unit(y, training=training)
        return _fold(y)

    def conv_bn_pairs(self):
        return [p for unit in self.units for p in unit.conv_bn_pairs()]

    def compute_output_shape(self, input_shape):
        return strided_shape(input_shape, self.stride, self.filters[2])

    def get_config(self):
        config = super().get_config()
        config.update(
            filters=self.filters, num_units=self.num_units, dilation=self.dilation,
            stride=self.stride, frames=self.frames, seed=self.seed, **self.bn_config(),
        )
        return config


class LiteHead(BatchNormOptions, keras.layers.Layer):
    """Lite classifier on the first level-3 node: 1x1x1 convs to 432 and 2048, pool, Dense.

    Parameters: `C3*432 + 4*432 + 432*2048 + 4*2048 + 2048*K + K`
    (`977600 + 2049*K` for C3 = 192).

    Args:
        classes: K, number of classes.
        frames: T, frames per clip (static).
        max_pool_predictions: if True, classify every frame and combine the
            per-frame logits with, per class, softmax over time of `logits/sqrt(T)`.
        dropout: drop rate before the Dense; None or 0: no dropout.
        seed: base seed; convs and Dense use `seed*1000 + k`.
        bn_momentum, bn_epsilon, fold_bn: batch-norm settings (`BatchNormOptions`).
        **kwargs: base Layer arguments.

    Input shape:
        `[B*T, h, w, C3]`.

    Output shape:
        `[B, K]` logits (no softmax).
    """

    def __init__(self, classes, frames, max_pool_predictions=False, dropout=None, seed=0,
                 bn_momentum=0.99, bn_epsilon=1e-5, fold_bn=False, **kwargs):
        super().__init__(bn_momentum=bn_momentum, bn_epsilon=bn_epsilon, fold_bn=fold_bn,
                         **kwargs)
        self.classes = check_int_received("classes", classes, 1)
        self.frames = check_int_received("frames", frames, 1)
        if not isinstance(max_pool_predictions, bool):
            raise ValueError(
                "`max_pool_predictions` must be a bool. "
                f"Received: max_pool_predictions={max_pool_predictions!r}"
            )
        if dropout is not None and not (
            isinstance(dropout, (int, float)) and not isinstance(dropout, bool)
            and 0 <= dropout < 1
        ):
            raise ValueError(
                f"`dropout` must be None or a rate in [0, 1). Received: dropout={dropout!r}"
            )
        self.seed = check_int_received("seed", seed, 0)
        self.max_pool_predictions = max_pool_predictions
        self.dropout = dropout
        base = seed * 1000
        self.convs = [_conv(f, 1, base + i, f"conv{f}", use_bias=self.fold_bn)
                      for i, f in enumerate(HEAD_WIDTHS)]
        self.bns = [self.batch_norm(f"bn{f}") for f in HEAD_WIDTHS]
        self.drop = None
        if dropout:
            self.drop = keras.layers.Dropout(dropout, seed=base + 2, name="dropout")
        self.classifier = keras.layers.Dense(
            classes,
            kernel_initializer=random(keras.initializers.RandomNormal(0.0, 0.01, seed=base + 3)),
            bias_initializer="zeros",
            name="classifier",
        )

    def build(self, input_shape):
        _check_input(self, input_shape)
        shape = (None, self.frames) + tuple(input_shape[1:])
        for conv, bn in zip(self.convs, self.bns):
            shape = build_chain([conv, bn], shape)
        self.classifier.build((None, HEAD_WIDTHS[-1]))

    def call(self, x, training=None):
        y = _unfold(x, self.frames)
        for conv, bn in zip(self.convs, self.bns):
            y = ops.relu(apply_bn(bn, conv(y), training))
        if self.max_pool_predictions:
            # Per frame: [B*T, 2048] (a 2-D Dense input exports cleanly to ONNX).
            y = ops.reshape(ops.mean(y, axis=(2, 3)), (-1, HEAD_WIDTHS[-1]))
        else:
            y = ops.mean(y, axis=(1, 2, 3))  # [B, 2048]
        if self.drop is not None:
            y = self.drop(y, training=training)
        logits = self.classifier(y)
        if not self.max_pool_predictions:
            return logits
        logits = ops.reshape(logits, (-1, self.frames, self.classes))
        weights = ops.softmax(logits / math.sqrt(self.frames), axis=1)
        return ops.sum(weights * logits, axis=1)

    def compute_output_shape(self, input_shape):
        b = input_shape[0]
        return (None if b is None else b // self.frames, self.classes)

    def conv_bn_pairs(self):
        return list(zip(self.convs, self.bns))

    def get_config(self):
        config = super().get_config()
        config.update(
            classes=self.classes, frames=self.frames,
            max_pool_predictions=self.max_pool_predictions, dropout=self.dropout,
            seed=self.seed, **self.bn_config(),
        )
        return config
