"""Stems of the 4-D AssembleNet networks (SEMANTICS.md, "Stems" and "Object stem")."""

from __future__ import annotations

import keras
from keras import ops

from .bn_options import BatchNormOptions, apply_bn, build_chain
from .conv import (
    FixedPaddingConv2D,
    TemporalConv,
    check_int,
    check_seed,
    derive_seed,
    static_shape4,
    strided_shape,
)


def _conv7x7(width, seed, fold_bn):
    """The 7x7 conv, stride 2 (fixed padding), both stems start with."""
    return FixedPaddingConv2D(width, 7, 2, seed=derive_seed(seed, 0), use_bias=fold_bn,
                              name="conv7x7")


def _stem_output_shape(input_shape, width):
    """The 7x7 conv's stride 2, then the max-pool's stride 2."""
    return strided_shape(strided_shape(input_shape, 2, width), 2, width)


@keras.saving.register_keras_serializable(package="asn")
class RGBStem(BatchNormOptions, keras.layers.Layer):
    """RGB stem: 7x7 conv s2 -> BN -> ReLU -> temporal conv k5 -> BN -> ReLU -> 3x3 max-pool s2.

    The 7x7 conv uses fixed padding (3 before, 3 after); the temporal conv is SAME with zero frames;
    the max-pool is SAME. A dilation < 1 is treated as 1 (the reference's rule).

    Args:
        width: stem width S (``128 // number of stems`` in the reference networks).
        dilation: temporal dilation of the temporal conv (values < 1 mean 1).
        frames: T, frames per clip (static).
        seed: base seed; the two convs use derived seeds.
        bn_momentum, bn_epsilon, fold_bn: batch-norm settings (``BatchNormOptions``).

    Input shape: folded ``[B*T, H, W, C]`` (C = 3 for RGB).
    Output shape: ``[B*T, ceil(ceil(H/2)/2), ceil(ceil(W/2)/2), S]``.
    Parameters: ``49*C*S + 4S + 5*S*S + 4S`` (C = 3: ``147S + 8S + 5S^2``).
    """

    def __init__(
        self, width, dilation, frames, seed=0, bn_momentum=0.99, bn_epsilon=1e-5, fold_bn=False,
        **kwargs
    ):
        super().__init__(bn_momentum=bn_momentum, bn_epsilon=bn_epsilon, fold_bn=fold_bn,
                         **kwargs)
        self.width = check_int("width", width)
        if isinstance(dilation, bool) or not isinstance(dilation, int):
            raise ValueError(f"`dilation` must be an int, got {dilation!r}")
        self.dilation = dilation
        self.frames = check_int("frames", frames)
        self.seed = check_seed(seed)
        self.conv7x7 = _conv7x7(width, seed, self.fold_bn)
        self.bn1 = self.batch_norm("bn1")
        self.temporal_conv = TemporalConv(
            width,
            5,
            frames,
            dilation=max(dilation, 1),
            seed=derive_seed(seed, 1),
            use_bias=self.fold_bn,
            name="temporal_conv",
        )
        self.bn2 = self.batch_norm("bn2")

    def build(self, input_shape):
        build_chain([self.conv7x7, self.bn1, self.temporal_conv, self.bn2],
                    static_shape4(input_shape, self.name))

    def call(self, x, training=None):
        x = ops.relu(apply_bn(self.bn1, self.conv7x7(x), training))
        # BN runs on the folded tensor, after the temporal conv has folded back.
        x = ops.relu(apply_bn(self.bn2, self.temporal_conv(x), training))
        return ops.max_pool(x, pool_size=3, strides=2, padding="same")

    # -- exact rewrites (layers.folding)
    def conv_bn_pairs(self):
        return [(self.conv7x7, self.bn1), (self.temporal_conv, self.bn2)]

    def scale_output(self, s: float) -> None:
        """Output ``s`` (> 0) times larger: ReLU and max-pool commute with the factor."""
        from .folding import scale_output

        scale_output(self.temporal_conv, self.bn2, s)

    def compute_output_shape(self, input_shape):
        return _stem_output_shape(input_shape, self.width)

    def get_config(self):
        config = super().get_config()
        config.update(
            width=self.width,
            dilation=self.dilation,
            frames=self.frames,
            seed=self.seed,
            **self.bn_config(),
        )
        return config


@keras.saving.register_keras_serializable(package="asn")
class FlowStem(BatchNormOptions, keras.layers.Layer):
    """Flow stem: 7x7 conv s2 (fixed padding) -> BN -> ReLU -> 2x2 max-pool s2 SAME.

    Reads the Representation Flow output. There is no temporal conv, so no dilation and no frames.

    Args:
        width: stem width S.
        seed: seed of the conv initialiser (derived).
        bn_momentum, bn_epsilon, fold_bn: batch-norm settings (``BatchNormOptions``).

    Input shape: folded ``[B*T, H, W, C]`` (C = 2: the flow's u1, u2).
    Output shape: ``[B*T, ceil(ceil(H/2)/2), ceil(ceil(W/2)/2), S]``.
    Parameters: ``49*C*S + 4S`` (C = 2: ``98S + 4S``).
    """

    def __init__(self, width, seed=0, bn_momentum=0.99, bn_epsilon=1e-5, fold_bn=False,
                 **kwargs):
        super().__init__(bn_momentum=bn_momentum, bn_epsilon=bn_epsilon, fold_bn=fold_bn,
                         **kwargs)
        self.width = check_int("width", width)
        self.seed = check_seed(seed)
        self.conv7x7 = _conv7x7(width, seed, self.fold_bn)
        self.bn = self.batch_norm("bn")

    def build(self, input_shape):
        build_chain([self.conv7x7, self.bn], static_shape4(input_shape, self.name))

    def call(self, x, training=None):
        x = ops.relu(apply_bn(self.bn, self.conv7x7(x), training))
        return ops.max_pool(x, pool_size=2, strides=2, padding="same")

    # -- exact rewrites (layers.folding)
    def conv_bn_pairs(self):
        return [(self.conv7x7, self.bn)]

    def scale_output(self, s: float) -> None:
        from .folding import scale_output

        scale_output(self.conv7x7, self.bn, s)

    def compute_output_shape(self, input_shape):
        return _stem_output_shape(input_shape, self.width)

    def get_config(self):
        config = super().get_config()
        config.update(width=self.width, seed=self.seed, **self.bn_config())
        return config


@keras.saving.register_keras_serializable(package="asn")
class ObjectStem(keras.layers.Layer):
    """Object stem (AssembleNet++): one 4x4 max-pool, stride 4, SAME. No parameters.

    Input shape: folded segmentation ``[B*T, H, W, N_obj]``.
    Output shape: ``[B*T, ceil(H/4), ceil(W/4), N_obj]``.
    Parameters: 0.
    """

    def build(self, input_shape):
        static_shape4(input_shape, self.name)

    def call(self, x):
        return ops.max_pool(x, pool_size=4, strides=4, padding="same")

    def compute_output_shape(self, input_shape):
        return strided_shape(input_shape, 4, tuple(input_shape)[-1])
