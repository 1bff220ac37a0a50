"""Bottleneck block group of the 4-D AssembleNet networks (SEMANTICS.md, "Blocks")."""

from __future__ import annotations

import keras
from keras import ops

from ....compiler.analysis import centre_tap_only
from .bn_options import BatchNormOptions, apply_bn, build_chain
from .conv import (
    Conv3x3x3,
    FixedPaddingConv2D,
    TemporalConv,
    check_bool,
    check_int,
    check_seed,
    derive_seed,
    static_shape4,
    strided_shape,
)

TEMPORAL_MODES = ("2plus1d", "3d")
_UNIT_CHAIN = ("first", "bn1", "middle", "bn2", "last", "bn3")  # a unit's sublayers, in order


@keras.saving.register_keras_serializable(package="asn")
class BottleneckBlock(BatchNormOptions, keras.layers.Layer):
    """A block: ``num_units`` bottleneck residual units, output ``4F`` channels.

    Unit 0 carries the stride s and a projection shortcut (1x1 conv to 4F, stride s, fixed
    padding, then BN, no ReLU), present even when s = 1 and the channels already match. Units 1..
    are stride 1 with identity shortcuts. Unit i:

    * ``temporal="2plus1d"`` (reference): first layer a temporal conv k3 (dilation d, F filters)
      when i is odd, a 1x1 conv (F) when i is even; + BN + ReLU. Then a 3x3 conv to ``inter``
      with the unit's stride (fixed padding when > 1) + BN + ReLU.
    * ``temporal="3d"`` (asnc): first layer always the 1x1 conv (F) + BN + ReLU; then a full 3x3x3
      conv to ``inter`` (temporal dilation d, the unit's spatial stride) + BN + ReLU.

    Then a 1x1 conv to 4F + BN with gamma starting at 0; add the shortcut; ReLU.

    Parameters, input width c, ``n = num_units``, ``m = inter``, ``n_odd = n // 2``:

    * shortcut: ``4Fc + 16F``; unit 0 first layer: ``Fc + 4F``;
    * every unit: ``m*4F + 16F`` (last 1x1 + BN) and ``4m`` (BN after the 3x3);
    * 2plus1d: 3x3 ``9Fm`` per unit; first layer of unit i >= 1: ``12F^2 + 4F`` (odd) or
      ``4F^2 + 4F`` (even). Total
      ``4Fc + 16F + Fc + 4F + n_odd*(12F^2 + 4F) + (n - 1 - n_odd)*(4F^2 + 4F)
      + n*(9Fm + 4m + 4Fm + 16F)``.
    * 3d: 3x3x3 ``27Fm`` per unit; first layer of unit i >= 1: ``4F^2 + 4F``. Total
      ``4Fc + 16F + Fc + 4F + (n - 1)*(4F^2 + 4F) + n*(27Fm + 4m + 4Fm + 16F)``.

    Args:
        filters: F (the block outputs 4F channels).
        inter: channels of the middle (3x3 or 3x3x3) conv, ``[64, 128, 256, 512][level]``.
        num_units: number of bottleneck units (``num_blocks[level]``).
        dilation: temporal dilation d >= 1 of the temporal / 3x3x3 convs.
        stride: spatial stride s of unit 0.
        frames: T, frames per clip (static).
        temporal: ``"2plus1d"`` (reference interleave) or ``"3d"``.
        seed: base seed; every conv gets a distinct derived seed.
        bn_momentum, bn_epsilon, fold_bn: batch-norm settings (``BatchNormOptions``); with
            ``fold_bn``, the inference form of `fold-batchnorm`.
        centre_taps: the form of `drop-padding-taps`: where ``dilation >= frames`` (every
            off-centre tap reads zero padding) the temporal convs hold their centre tap only
            (kernel 1, ``4F^2`` instead of ``12F^2``); else no change.

    Input shape: folded ``[B*T, h, w, c]``.
    Output shape: ``[B*T, ceil(h/s), ceil(w/s), 4F]``.
    """

    def __init__(
        self,
        filters,
        inter,
        num_units,
        dilation,
        stride,
        frames,
        temporal="2plus1d",
        seed=0,
        bn_momentum=0.99,
        bn_epsilon=1e-5,
        fold_bn=False,
        centre_taps=False,
        **kwargs,
    ):
        super().__init__(bn_momentum=bn_momentum, bn_epsilon=bn_epsilon, fold_bn=fold_bn,
                         **kwargs)
        self.filters = check_int("filters", filters)
        self.inter = check_int("inter", inter)
        self.num_units = check_int("num_units", num_units)
        self.dilation = check_int("dilation", dilation)
        self.stride = check_int("stride", stride)
        self.frames = check_int("frames", frames)
        if temporal not in TEMPORAL_MODES:
            raise ValueError(f"`temporal` must be one of {TEMPORAL_MODES}, got {temporal!r}")
        self.temporal = temporal
        self.seed = check_seed(seed)
        self.centre_taps = check_bool("centre_taps", centre_taps)
        taps = 1 if centre_taps and centre_tap_only(self.dilation, self.frames) else 3

        out = 4 * filters
        fold = self.fold_bn
        self.shortcut_conv = FixedPaddingConv2D(
            out, 1, stride, seed=derive_seed(seed, 0), use_bias=fold, name="unit0_shortcut_conv1x1"
        )
        self.shortcut_bn = self.batch_norm("unit0_shortcut_bn")
        # One dict of sublayers per unit (Keras tracks layers inside lists and dicts).
        self.units = []
        for i in range(num_units):
            s = stride if i == 0 else 1
            k = 1 + 3 * i  # derived-seed slots: k, k+1, k+2 for the unit's three convs
            if temporal == "2plus1d" and i % 2 == 1:
                first = TemporalConv(
                    filters,
                    taps,
                    frames,
                    dilation=dilation,
                    seed=derive_seed(seed, k),
                    use_bias=fold,
                    name=f"unit{i}_temporal_conv",
                )
            else:
                first = FixedPaddingConv2D(
                    filters, 1, 1, seed=derive_seed(seed, k), use_bias=fold,
                    name=f"unit{i}_conv1x1_in"
                )
            if temporal == "3d":
                middle = Conv3x3x3(
                    inter,
                    frames,
                    dilation=dilation,
                    strides=s,
                    seed=derive_seed(seed, k + 1),
                    use_bias=fold,
                    name=f"unit{i}_conv3x3x3",
                )
            else:
                middle = FixedPaddingConv2D(
                    inter, 3, s, seed=derive_seed(seed, k + 1), use_bias=fold,
                    name=f"unit{i}_conv3x3"
                )
            self.units.append(
                {
                    "first": first,
                    "bn1": self.batch_norm(f"unit{i}_bn1"),
                    "middle": middle,
                    "bn2": self.batch_norm(f"unit{i}_bn2"),
                    "last": FixedPaddingConv2D(
                        out, 1, 1, seed=derive_seed(seed, k + 2), use_bias=fold,
                        name=f"unit{i}_conv1x1_out"
                    ),
                    "bn3": self.batch_norm(f"unit{i}_bn3", zero_gamma=True),
                }
            )

    def build(self, input_shape):
        shape = static_shape4(input_shape, self.name)
        build_chain([self.shortcut_conv, self.shortcut_bn], shape)
        for unit in self.units:
            shape = build_chain([unit[k] for k in _UNIT_CHAIN], shape)

    def call(self, x, training=None):
        for i, unit in enumerate(self.units):
            if i == 0:
                shortcut = apply_bn(self.shortcut_bn, self.shortcut_conv(x), training)
            else:
                shortcut = x
            y = ops.relu(apply_bn(unit["bn1"], unit["first"](x), training))
            y = ops.relu(apply_bn(unit["bn2"], unit["middle"](y), training))
            y = apply_bn(unit["bn3"], unit["last"](y), training)
            x = ops.relu(y + shortcut)
        return x

    # -- exact rewrites (layers.folding) ------------------------------------------------------
    def conv_bn_pairs(self):
        pairs = [(self.shortcut_conv, self.shortcut_bn)]
        for u in self.units:
            pairs += [(u["first"], u["bn1"]), (u["middle"], u["bn2"]), (u["last"], u["bn3"])]
        return pairs

    def scale_output(self, s: float) -> None:
        """Make the block's output ``s`` (> 0) times what it was: every unit's residual stream
        carries the factor (ReLU commutes with it), and units after the first undo it on the
        way into their first conv."""
        from .folding import scale_kernel, scale_output

        scale_output(self.shortcut_conv, self.shortcut_bn, s)
        for i, u in enumerate(self.units):
            if i > 0:
                scale_kernel(u["first"], 1.0 / s)
            scale_output(u["last"], u["bn3"], s)

    def scale_input(self, t: float) -> None:
        """Compute on ``t`` times the input: only unit 0's two convs read the input."""
        from .folding import scale_kernel

        scale_kernel(self.shortcut_conv, t)
        scale_kernel(self.units[0]["first"], t)

    def compute_output_shape(self, input_shape):
        return strided_shape(input_shape, self.stride, 4 * self.filters)

    def get_config(self):
        config = super().get_config()
        config.update(
            filters=self.filters,
            inter=self.inter,
            num_units=self.num_units,
            dilation=self.dilation,
            stride=self.stride,
            frames=self.frames,
            temporal=self.temporal,
            seed=self.seed,
            centre_taps=self.centre_taps,
            **self.bn_config(),
        )
        return config
