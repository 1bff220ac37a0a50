"""Stems of the 4-D AssembleNet networks (SEMANTICS.md, "Stems" and "Object stem")."""

from __future__ import annotations

import keras
from keras import ops

from .conv import (
    FixedPaddingConv2D,
    TemporalConv,
    apply_bn,
    bn_unless_folded,
    check_bn_args,
    check_bool,
    check_int,
    check_seed,
    derive_seed,
    static_shape4,
)


def _ceil_div(n, s):
    return None if n is None else -(-n // s)


@keras.saving.register_keras_serializable(package="asn")
class RGBStem(keras.layers.Layer):
    """RGB stem: 7x7 conv s2 -> BN -> ReLU -> temporal conv k5 -> BN -> ReLU -> 3x3 max-pool s2.

    The 7x7 conv uses fixed padding (3 before, 3 after); the temporal conv is SAME with zero frames;
    the max-pool is SAME. A dilation < 1 is treated as 1 (the reference's rule).

    Args:
        width: stem width S (``128 // number of stems`` in the reference networks).
        dilation: temporal dilation of the temporal conv (values < 1 mean 1).
        frames: T, frames per clip (static).
        seed: base seed; the two convs use derived seeds.
        bn_momentum, bn_epsilon: batch-norm settings.

    Input shape: folded ``[B*T, H, W, C]`` (C = 3 for RGB).
    Output shape: ``[B*T, ceil(ceil(H/2)/2), ceil(ceil(W/2)/2), S]``.
    Parameters: ``49*C*S + 4S + 5*S*S + 4S`` (C = 3: ``147S + 8S + 5S^2``).
    """

    def __init__(
        self, width, dilation, frames, seed=0, bn_momentum=0.99, bn_epsilon=1e-5, fold_bn=False,
        **kwargs
    ):
        super().__init__(**kwargs)
        self.fold_bn = check_bool("fold_bn", fold_bn)
        self.width = check_int("width", width)
        if isinstance(dilation, bool) or not isinstance(dilation, int):
            raise ValueError(f"`dilation` must be an int, got {dilation!r}")
        self.dilation = dilation
        self.frames = check_int("frames", frames)
        self.seed = check_seed(seed)
        self.bn_momentum, self.bn_epsilon = check_bn_args(bn_momentum, bn_epsilon)
        fold = self.fold_bn
        self.conv7x7 = FixedPaddingConv2D(width, 7, 2, seed=derive_seed(seed, 0), use_bias=fold,
                                          name="conv7x7")
        self.bn1 = bn_unless_folded(fold, "bn1", self.bn_momentum, self.bn_epsilon)
        self.temporal_conv = TemporalConv(
            width,
            5,
            frames,
            dilation=max(dilation, 1),
            seed=derive_seed(seed, 1),
            use_bias=fold,
            name="temporal_conv",
        )
        self.bn2 = bn_unless_folded(fold, "bn2", self.bn_momentum, self.bn_epsilon)

    def build(self, input_shape):
        input_shape = static_shape4(input_shape, self.name)
        self.conv7x7.build(input_shape)
        shape = self.conv7x7.compute_output_shape(input_shape)
        self.temporal_conv.build(shape)
        for bn in (self.bn1, self.bn2):
            if bn is not None:
                bn.build(shape)

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
        b, h, w, _ = tuple(input_shape)
        return (b, _ceil_div(_ceil_div(h, 2), 2), _ceil_div(_ceil_div(w, 2), 2), self.width)

    def get_config(self):
        config = super().get_config()
        config.update(
            width=self.width,
            dilation=self.dilation,
            frames=self.frames,
            seed=self.seed,
            bn_momentum=self.bn_momentum,
            bn_epsilon=self.bn_epsilon,
            fold_bn=self.fold_bn,
        )
        return config


@keras.saving.register_keras_serializable(package="asn")
class FlowStem(keras.layers.Layer):
    """Flow stem: 7x7 conv s2 (fixed padding) -> BN -> ReLU -> 2x2 max-pool s2 SAME.

    Reads the Representation Flow output. There is no temporal conv, so no dilation and no frames.

    Args:
        width: stem width S.
        seed: seed of the conv initialiser (derived).
        bn_momentum, bn_epsilon: batch-norm settings.

    Input shape: folded ``[B*T, H, W, C]`` (C = 2: the flow's u1, u2).
    Output shape: ``[B*T, ceil(ceil(H/2)/2), ceil(ceil(W/2)/2), S]``.
    Parameters: ``49*C*S + 4S`` (C = 2: ``98S + 4S``).
    """

    def __init__(self, width, seed=0, bn_momentum=0.99, bn_epsilon=1e-5, fold_bn=False,
                 **kwargs):
        super().__init__(**kwargs)
        self.fold_bn = check_bool("fold_bn", fold_bn)
        self.width = check_int("width", width)
        self.seed = check_seed(seed)
        self.bn_momentum, self.bn_epsilon = check_bn_args(bn_momentum, bn_epsilon)
        self.conv7x7 = FixedPaddingConv2D(width, 7, 2, seed=derive_seed(seed, 0),
                                          use_bias=self.fold_bn, name="conv7x7")
        self.bn = bn_unless_folded(self.fold_bn, "bn", self.bn_momentum, self.bn_epsilon)

    def build(self, input_shape):
        input_shape = static_shape4(input_shape, self.name)
        self.conv7x7.build(input_shape)
        if self.bn is not None:
            self.bn.build(self.conv7x7.compute_output_shape(input_shape))

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
        b, h, w, _ = tuple(input_shape)
        return (b, _ceil_div(_ceil_div(h, 2), 2), _ceil_div(_ceil_div(w, 2), 2), self.width)

    def get_config(self):
        config = super().get_config()
        config.update(
            width=self.width,
            seed=self.seed,
            bn_momentum=self.bn_momentum,
            bn_epsilon=self.bn_epsilon,
            fold_bn=self.fold_bn,
        )
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
        b, h, w, c = tuple(input_shape)
        return (b, _ceil_div(h, 4), _ceil_div(w, 4), c)
