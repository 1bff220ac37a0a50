"""Convolution building blocks shared by stems, blocks and fusions.

All tensors are folded channels-last ``[B*T, h, w, C]`` (float32, batch dynamic, h and w static).
Temporal and 3-D convs unfold the time axis internally, so frames of different clips never mix, and
fold back. No conv has a bias (SEMANTICS.md, "Padding rules").
"""

from __future__ import annotations

import contextlib
import math

import numpy as np

import keras
from keras import ops

from .initialisers import random

_SEED_RANGE = 2**31  # Keras seeds are 32-bit; keep derived seeds in the non-negative int32 range.


# ---------------------------------------------------------------------------------------------
# Argument checks and helpers
# ---------------------------------------------------------------------------------------------
def check_int(name: str, value, minimum: int = 1) -> int:
    """Return ``value`` if it is an int >= ``minimum`` (bools rejected), else raise ValueError."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"`{name}` must be an int >= {minimum}, got {value!r}")
    return value


def check_bool(name: str, value) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"`{name}` must be a bool, got {value!r}")
    return value


def check_seed(seed) -> int:
    return check_int("seed", seed, minimum=0)


def check_int_received(name: str, value, minimum: int) -> int:
    """``check_int`` with the message of the lite and attention layers (Keras's wording,
    ``Received: name=value``)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(
            f"`{name}` must be an integer >= {minimum}. Received: {name}={value!r}"
        )
    return value


def derive_seed(seed: int, k: int) -> int:
    """Seed of the k-th initialiser (or sublayer) of a layer built with ``seed``.

    Distinct for k = 0..999 under one seed, deterministic, and inside the 32-bit seed range.
    """
    return (seed * 1000 + k) % _SEED_RANGE


def static_shape4(shape, layer_name: str) -> tuple:
    """Check a folded ``[B*T, h, w, C]`` shape with static h, w, C and return it as a tuple."""
    shape = tuple(shape)
    if len(shape) != 4 or any(d is None for d in shape[1:]):
        raise ValueError(
            f"{layer_name}: expected a folded input [B*T, h, w, C] with static h, w, C, "
            f"got shape {shape}"
        )
    return shape


def ceil_div(n, stride: int):
    """``ceil(n / stride)``: a size after a stride; None for an unknown size."""
    return None if n is None else -(-n // stride)


def strided_shape(input_shape, stride: int, channels: int) -> tuple:
    """``input_shape`` (channels last) after a spatial stride: h and w (axes -3 and -2)
    become ``ceil(. / stride)``, the channel axis ``channels``; leading axes are kept."""
    *lead, h, w, _ = tuple(input_shape)
    return (*lead, ceil_div(h, stride), ceil_div(w, stride), channels)


def fixed_padding(kernel_size: int) -> tuple[int, int]:
    """Zero padding (before, after) of a strided conv: (k-1)//2 before, the rest after."""
    before = (kernel_size - 1) // 2
    return before, kernel_size - 1 - before


def variance_scaling(seed: int):
    # Keras defaults: scale 1, fan_in, truncated normal (SEMANTICS.md, "Initialisers").
    return random(keras.initializers.VarianceScaling(seed=seed))


def batch_norm(name: str, momentum: float = 0.99, epsilon: float = 1e-5, zero_gamma: bool = False):
    """BatchNormalization over channels (axis -1); gamma starts at 0 when ``zero_gamma``.

    Holds 4 values per channel (gamma, beta trainable; moving mean, moving variance not).
    """
    return keras.layers.BatchNormalization(
        axis=-1,
        momentum=momentum,
        epsilon=epsilon,
        gamma_initializer="zeros" if zero_gamma else "ones",
        beta_initializer="zeros",
        moving_mean_initializer="zeros",
        moving_variance_initializer="ones",
        name=name,
    )


@contextlib.contextmanager
def parent_scope(variable):
    """The name scopes ``variable``'s layer was built in: a weight its layer adds inside
    gets the path it would have had from the layer's build (``<scopes>/<layer>/<name>``)."""
    with contextlib.ExitStack() as stack:
        for part in variable.path.split("/")[:-2]:
            stack.enter_context(keras.name_scope(part, deduplicate=False))
        yield


def add_bias(layer, filters: int):
    """The per-channel bias of a conv built with ``use_bias`` (a folded batch norm), else None."""
    if not layer.use_bias:
        return None
    return layer.add_weight(name="bias", shape=(filters,), initializer="zeros")


def with_bias(y, bias):
    # tf.nn.bias_add, not `+`: tf2onnx makes Conv -> BiasAdd one Conv with a bias input.
    if bias is None:
        return y
    import tensorflow as tf

    return tf.nn.bias_add(y, bias)


# ---------------------------------------------------------------------------------------------
# Layers
# ---------------------------------------------------------------------------------------------
@keras.saving.register_keras_serializable(package="asn")
class FixedPaddingConv2D(keras.layers.Layer):
    """k x k 2-D conv, no bias, with the reference's padding rule.

    Stride 1: TF "SAME". Stride s > 1: zero pad ``(k-1)//2`` before and ``k-1-(k-1)//2`` after on h
    and w, then a VALID conv (output ``ceil(h/s)``); for k = 1 that is no padding, the stride just
    subsamples from position 0. Kernel initialiser: VarianceScaling defaults.

    Args:
        filters: output channels F.
        kernel_size: square kernel size k.
        strides: spatial stride s.
        seed: seed of the kernel initialiser.

    Input shape: ``[N, h, w, C]``.
    Output shape: ``[N, ceil(h/s), ceil(w/s), F]``.
    Parameters: ``k*k*C*F`` (+ ``F`` with ``use_bias``: a batch norm folded into the conv).
    """

    def __init__(self, filters, kernel_size, strides=1, seed=0, use_bias=False, **kwargs):
        super().__init__(**kwargs)
        self.filters = check_int("filters", filters)
        self.kernel_size = check_int("kernel_size", kernel_size)
        self.strides = check_int("strides", strides)
        self.seed = check_seed(seed)
        self.use_bias = check_bool("use_bias", use_bias)

    def build(self, input_shape):
        channels = input_shape[-1]
        if channels is None:
            raise ValueError(
                f"{self.name}: the channel axis must be static, got {tuple(input_shape)}"
            )
        k = self.kernel_size
        self.kernel = self.add_weight(
            name="kernel",
            shape=(k, k, channels, self.filters),
            initializer=variance_scaling(self.seed),
        )
        self.bias = add_bias(self, self.filters)

    def call(self, x):
        if self.strides == 1:
            return with_bias(ops.conv(x, self.kernel, strides=1, padding="same"), self.bias)
        before, after = fixed_padding(self.kernel_size)
        if before or after:
            x = ops.pad(x, [[0, 0], [before, after], [before, after], [0, 0]])
        return with_bias(ops.conv(x, self.kernel, strides=self.strides, padding="valid"),
                         self.bias)

    def compute_output_shape(self, input_shape):
        return strided_shape(input_shape, self.strides, self.filters)

    def get_config(self):
        config = super().get_config()
        config.update(
            filters=self.filters, kernel_size=self.kernel_size, strides=self.strides,
            seed=self.seed, use_bias=self.use_bias,
        )
        return config


@keras.saving.register_keras_serializable(package="asn")
class TemporalConv(keras.layers.Layer):
    """Convolution over time only: kernel ``(k, 1)`` on the unfolded ``[B, T, h*w, C]``, no bias.

    Stride 1, SAME with zero frames: the effective kernel ``(k-1)*d+1`` is odd, so ``(k-1)*d/2``
    zero frames on each side. Unfolding first keeps clips apart. Initialiser: VarianceScaling
    defaults when d == 1; TruncatedNormal(0, sqrt(2 / (k*C))) when d > 1 (the reference's rule).

    Args:
        filters: output channels F.
        kernel_size: temporal kernel k (odd; the networks use 3 and 5).
        frames: T, frames per clip (static).
        dilation: temporal dilation d >= 1.
        seed: seed of the kernel initialiser.

    Input shape: folded ``[B*T, h, w, C]``.
    Output shape: ``[B*T, h, w, F]``.
    Parameters: ``k*C*F`` (+ ``F`` with ``use_bias``).
    """

    def __init__(self, filters, kernel_size, frames, dilation=1, seed=0, use_bias=False,
                 **kwargs):
        super().__init__(**kwargs)
        self.filters = check_int("filters", filters)
        self.kernel_size = check_int("kernel_size", kernel_size)
        if kernel_size % 2 == 0:
            raise ValueError(f"`kernel_size` must be odd (SAME over time), got {kernel_size!r}")
        self.dilation = check_int("dilation", dilation)
        self.frames = check_int("frames", frames)
        self.seed = check_seed(seed)
        self.use_bias = check_bool("use_bias", use_bias)

    def build(self, input_shape):
        channels = static_shape4(input_shape, self.name)[-1]
        k = self.kernel_size
        if self.dilation == 1:
            init = variance_scaling(self.seed)
        else:
            init = random(keras.initializers.TruncatedNormal(
                mean=0.0, stddev=math.sqrt(2.0 / (k * channels)), seed=self.seed
            ))
        self.kernel = self.add_weight(
            name="kernel", shape=(k, 1, channels, self.filters), initializer=init
        )
        self.bias = add_bias(self, self.filters)

    def call(self, x):
        _, h, w, channels = x.shape
        if self.kernel_size == 1:  # one tap mixes channels only: no frames to unfold
            return with_bias(ops.conv(x, self.kernel, strides=1, padding="valid"), self.bias)
        y = ops.reshape(x, (-1, self.frames, h * w, channels))
        y = ops.conv(y, self.kernel, strides=1, padding="same", dilation_rate=(self.dilation, 1))
        return with_bias(ops.reshape(y, (-1, h, w, self.filters)), self.bias)

    def keep_centre_tap(self) -> None:
        """Become the centre tap alone (kernel 1) in place, for `drop-padding-taps`: where
        ``dilation >= frames`` the other taps read only zero padding, so this computes the
        same values. The kernel (and bias) are replaced by new variables of the same paths,
        in the same order, so the model's weights keep their names."""
        if self.kernel_size == 1:
            return
        if self.dilation < self.frames:
            raise ValueError(f"{self.name}: dilation {self.dilation} < {self.frames} frames, "
                             "its off-centre taps read real frames")
        old = [v for v in (self.kernel, self.bias) if v is not None]
        values = [np.asarray(v.numpy()) for v in old]
        centre = self.kernel_size // 2
        values[0] = np.ascontiguousarray(values[0][centre:centre + 1])
        scope = parent_scope(self.kernel)
        for v in old:
            self._untrack_variable(v)
        self.kernel_size = 1
        self._tracker.unlock()
        try:
            with scope:
                new = [self.add_weight(name=v.name, shape=x.shape, initializer="zeros",
                                       trainable=v.trainable) for v, x in zip(old, values)]
            self.kernel = new[0]
            self.bias = new[1] if self.bias is not None else None
        finally:
            self._tracker.lock()
        for v, x in zip(new, values):
            v.assign(x)

    def compute_output_shape(self, input_shape):
        return (*tuple(input_shape)[:3], self.filters)

    def get_config(self):
        config = super().get_config()
        config.update(
            filters=self.filters,
            kernel_size=self.kernel_size,
            dilation=self.dilation,
            frames=self.frames,
            seed=self.seed,
            use_bias=self.use_bias,
        )
        return config


@keras.saving.register_keras_serializable(package="asn")
class Conv3x3x3(keras.layers.Layer):
    """Full 3x3x3 conv (asnc's 3-D block variant), no bias, on the unfolded ``[B, T, h, w, C]``.

    Time: dilation d, stride 1, ``d`` zero frames each side (SAME). Space: stride s with the fixed
    padding rule (1 before, 1 after for k = 3, which is also SAME when s = 1). Initialiser:
    VarianceScaling defaults whatever d (like the lite network's 3x3x3 conv).

    TF has no conv with both a dilation > 1 and a stride > 1, so in that case the conv runs with
    stride 1 and the result is subsampled from position 0: exactly the strided VALID conv.

    Args:
        filters: output channels F.
        frames: T, frames per clip (static).
        dilation: temporal dilation d >= 1.
        strides: spatial stride s.
        seed: seed of the kernel initialiser.

    Input shape: folded ``[B*T, h, w, C]``.
    Output shape: ``[B*T, ceil(h/s), ceil(w/s), F]``.
    Parameters: ``27*C*F`` (+ ``F`` with ``use_bias``).
    """

    def __init__(self, filters, frames, dilation=1, strides=1, seed=0, use_bias=False,
                 **kwargs):
        super().__init__(**kwargs)
        self.filters = check_int("filters", filters)
        self.dilation = check_int("dilation", dilation)
        self.strides = check_int("strides", strides)
        self.frames = check_int("frames", frames)
        self.seed = check_seed(seed)
        self.use_bias = check_bool("use_bias", use_bias)

    def build(self, input_shape):
        channels = static_shape4(input_shape, self.name)[-1]
        self.kernel = self.add_weight(
            name="kernel",
            shape=(3, 3, 3, channels, self.filters),
            initializer=variance_scaling(self.seed),
        )
        self.bias = add_bias(self, self.filters)

    def call(self, x):
        _, h, w, channels = x.shape
        d, s = self.dilation, self.strides
        y = ops.reshape(x, (-1, self.frames, h, w, channels))
        y = ops.pad(y, [[0, 0], [d, d], [1, 1], [1, 1], [0, 0]])
        if d > 1 and s > 1:
            y = ops.conv(y, self.kernel, strides=1, padding="valid", dilation_rate=(d, 1, 1))
            y = y[:, :, ::s, ::s, :]
        else:
            y = ops.conv(
                y, self.kernel, strides=(1, s, s), padding="valid", dilation_rate=(d, 1, 1)
            )
        return with_bias(ops.reshape(y, (-1, ceil_div(h, s), ceil_div(w, s), self.filters)),
                         self.bias)

    def compute_output_shape(self, input_shape):
        return strided_shape(input_shape, self.strides, self.filters)

    def get_config(self):
        config = super().get_config()
        config.update(
            filters=self.filters,
            dilation=self.dilation,
            strides=self.strides,
            frames=self.frames,
            seed=self.seed,
            use_bias=self.use_bias,
        )
        return config
