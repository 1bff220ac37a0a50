"""Representation Flow layer: differentiable, unrolled TV-L1 optical flow.

Piergiovanni & Ryoo, "Representation Flow for Action Recognition" (CVPR 2019). Semantics follow
SEMANTICS.md, section "Representation Flow layer (flow stems)": same formulas, same fixed kernels,
same 16 counted non-trainable weights as the reference layer.

Two numerically equivalent modes:
- ``fused=False``: every difference is a ``tf.nn.conv2d`` with a fixed kernel (SAME, zero borders),
  as the reference computes it.
- ``fused=True``: the same differences written as shifts (slice + pad) and subtractions on
  [N, H, W] images, cheaper than single-channel convolutions with 2- or 3-tap kernels (with the
  +-1 and +-0.5 taps both round the same way), and the TV-L1 thresholding's nested selects as
  one clip (the same value in every branch; only a point exactly on a threshold may round to
  the neighbouring branch, whose value it equals there up to rounding). Measured: outputs
  within a few float32 ulps of the reference mode's.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

THETA = 0.3
LAMBDA = 0.15
TAU = 0.25
# The reference rebinds theta to |theta| + 1e-12 in build(); the constant is what it then uses.
THETA_EFF = abs(THETA) + 1e-12
EPS = 1e-12

# name -> (kernel shape [kh, kw, in, out], taps). Bottleneck 1 only, so in = out = 1.
_KERNELS = {
    "img_grad_x": ((1, 3, 1, 1), [-0.5, 0.0, 0.5]),
    "img_grad_y": ((3, 1, 1, 1), [-0.5, 0.0, 0.5]),
    "div_x": ((1, 2, 1, 1), [-1.0, 1.0]),
    "div_y": ((2, 1, 1, 1), [-1.0, 1.0]),
    "fwd_x": ((1, 2, 1, 1), [-1.0, 1.0]),
    "fwd_y": ((2, 1, 1, 1), [-1.0, 1.0]),
}


def _const_init(values):
    """Keras initializer returning fixed values (shape checked by reshape)."""

    def init(shape, dtype=None):
        return np.asarray(values, dtype="float32").reshape(shape)

    return init


# --- shifts by one pixel, zero filled (axis 1 = height, axis 2 = width, NHWC or NHW) ----------
def _shift(x, axis, forward):
    """x[j+1] (forward) or x[j-1] along `axis`, zero where that pixel is outside the image."""
    index = [slice(None)] * len(x.shape)
    pads = [[0, 0]] * len(x.shape)
    index[axis], pads[axis] = (slice(1, None), [0, 1]) if forward else (slice(None, -1), [1, 0])
    return tf.pad(x[tuple(index)], pads)


class RepresentationFlow(keras.layers.Layer):
    """TV-L1 flow between consecutive frames of a folded video.

    Input ``[B*T, H, W, C]`` (T = ``frames``, H and W static), output ``[B*T, H, W, 2]``: per clip
    the flow of the T-1 frame pairs, the last pair's flow repeated to give T frames.
    """

    def __init__(self, frames, iterations=40, bottleneck=1, fused=False, **kwargs):
        super().__init__(**kwargs)
        if isinstance(frames, bool) or not isinstance(frames, int) or frames < 2:
            raise ValueError(f"frames must be an int >= 2 (flow needs frame pairs), got {frames!r}")
        if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
            raise ValueError(f"iterations must be an int >= 1, got {iterations!r}")
        if bottleneck != 1:
            raise ValueError(f"bottleneck must be 1 (grey-level flow only), got {bottleneck!r}")
        self.frames = frames
        self.iterations = iterations
        self.bottleneck = bottleneck
        self.fused = bool(fused)

    def build(self, input_shape):
        if len(input_shape) != 4 or input_shape[1] is None or input_shape[2] is None:
            raise ValueError(
                f"RepresentationFlow needs [B*T, H, W, C] with static H and W, got {input_shape}"
            )
        # Same 16 non-trainable values in both modes, so count_params never depends on `fused`.
        def fixed(name, shape, values):
            return self.add_weight(
                name=name, shape=shape, initializer=_const_init(values), trainable=False
            )

        self.kernels = {name: fixed(name, shape, taps) for name, (shape, taps) in _KERNELS.items()}
        self.lam = fixed("lambda", (), LAMBDA)
        self.tau = fixed("tau", (), TAU)

    # --- differences -------------------------------------------------------------------------
    def _conv(self, x, name):
        return tf.nn.conv2d(x, tf.convert_to_tensor(self.kernels[name]), strides=1, padding="SAME")

    def _grad(self, x):
        """Central image gradients [-0.5, 0, 0.5] along x and y, zero border."""
        if self.fused:
            return (0.5 * (_shift(x, 2, True) - _shift(x, 2, False)),
                    0.5 * (_shift(x, 1, True) - _shift(x, 1, False)))
        return self._conv(x, "img_grad_x"), self._conv(x, "img_grad_y")

    def _forward(self, u):
        """Forward differences u[j+1] - u[j]; the last column/row gives -u (SAME pads one zero)."""
        if self.fused:
            return _shift(u, 2, True) - u, _shift(u, 1, True) - u
        return self._conv(u, "fwd_x"), self._conv(u, "fwd_y")

    def _div(self, p1, p2):
        """Divergence: shift p1 right / p2 down by one, then forward differences, summed."""
        if self.fused:
            # Equals p[j] - p[j-1] with the last column (row) of p treated as zero: both terms
            # are the same slice a = p[..., :-1], padded after or before.
            a1, a2 = p1[:, :, :-1], p2[:, :-1, :]
            return ((tf.pad(a1, [[0, 0], [0, 0], [0, 1]]) - tf.pad(a1, [[0, 0], [0, 0], [1, 0]]))
                    + (tf.pad(a2, [[0, 0], [0, 1], [0, 0]]) - tf.pad(a2, [[0, 0], [1, 0], [0, 0]])))
        return self._conv(_shift(p1, 2, False), "div_x") + self._conv(_shift(p2, 1, False), "div_y")

    def _tvl1_packed(self, gx, gy, g, rho_c, lt, tt):
        """The iterations on packed tensors: ``u = [u1, u2]``, ``px = [p11, p21]``,
        ``py = [p12, p22]``, each ``[2, N, H, W]`` (a leading axis broadcasts cheaply), so
        every difference, square root and update runs once for both flow components.

        The thresholding step is one clip: ``rho < -lt g`` means ``-rho/g > lt``, so the
        three branches are ``clip(rho/g, -lt, lt) * -grad``; where the gradient is 0 the
        product is 0, as the reference's fourth branch gives (only a ``rho/g`` on a threshold
        itself can round to the neighbouring branch, whose value it equals there).
        """
        grad = tf.stack([gx, gy])
        ngrad = -grad
        rho_c = rho_c + EPS
        u = tf.zeros_like(grad)
        px = py = u
        for _ in range(self.iterations):  # unrolled, as in the reference
            rho = rho_c + gx * u[0] + gy * u[1]
            c = tf.minimum(tf.maximum(rho / g, -lt), lt)
            ax, ay = px[:, :, :, :-1], py[:, :, :-1, :]
            div = ((tf.pad(ax, [[0, 0], [0, 0], [0, 0], [0, 1]])
                    - tf.pad(ax, [[0, 0], [0, 0], [0, 0], [1, 0]]))
                   + (tf.pad(ay, [[0, 0], [0, 0], [0, 1], [0, 0]])
                      - tf.pad(ay, [[0, 0], [0, 0], [1, 0], [0, 0]])))
            u = u + c * ngrad + THETA_EFF * div
            ux = tf.pad(u[:, :, :, 1:], [[0, 0], [0, 0], [0, 0], [0, 1]]) - u
            uy = tf.pad(u[:, :, 1:, :], [[0, 0], [0, 0], [0, 1], [0, 0]]) - u
            den = 1.0 + tt * tf.sqrt(ux * ux + uy * uy + EPS)
            px = (px + tt * ux) / den
            py = (py + tt * uy) / den
        return u

    # --- forward -----------------------------------------------------------------------------
    def call(self, inputs):
        t = self.frames
        h, w = inputs.shape[1], inputs.shape[2]
        # Bottleneck 1: grey. The fused mode drops the size-1 channel axis: ONNX Runtime broadcasts
        # scalars over [..., 1] tensors ~100x slower than over [N, H, W] (measured, ORT 1.32).
        x = tf.reduce_mean(tf.cast(inputs, tf.float32), axis=3, keepdims=not self.fused)
        image = [h, w] if self.fused else [h, w, 1]

        # Normalise to 0..255 over the whole tensor; a constant tensor is left as is.
        mx, mn = tf.reduce_max(x), tf.reduce_min(x)
        rng = mx - mn
        safe = tf.where(rng > 0, rng, tf.ones_like(rng))  # avoids 0/0 in the unused branch
        x = tf.where(rng > 0, 255.0 * (x - mn) / safe, x)

        # Frame pairs (t, t+1) of each clip, folded to [B*(T-1), H, W(, 1)].
        x = tf.reshape(x, [-1, t, *image])
        i1 = tf.reshape(x[:, :-1], [-1, *image])
        i2 = tf.reshape(x[:, 1:], [-1, *image])

        lt = self.lam * THETA_EFF
        tt = self.tau / THETA_EFF
        gx, gy = self._grad(i2)
        g = gx * gx + gy * gy + EPS
        lt_gx, lt_gy, lt_g = lt * gx, lt * gy, lt * g
        rho_c = i2 - i1
        has_grad = g > EPS

        if self.fused:
            u = self._tvl1_packed(gx, gy, g, rho_c, lt, tt)  # [2, B*(T-1), H, W]
            flow = tf.transpose(u, [1, 2, 3, 0])
            flow = tf.reshape(flow, [-1, t - 1, h, w, 2])
            flow = tf.concat([flow, flow[:, -1:]], axis=1)
            return tf.reshape(flow, [-1, h, w, 2])

        zeros = tf.zeros_like(i2)
        u1 = u2 = p11 = p12 = p21 = p22 = zeros
        for _ in range(self.iterations):  # unrolled, as in the reference
            rho = rho_c + gx * u1 + gy * u2 + EPS
            low = rho < -lt_g
            high = rho > lt_g
            mid = tf.logical_and(tf.logical_not(tf.logical_or(low, high)), has_grad)
            r = rho / g
            d1 = tf.where(low, lt_gx, tf.where(high, -lt_gx, tf.where(mid, -r * gx, zeros)))
            d2 = tf.where(low, lt_gy, tf.where(high, -lt_gy, tf.where(mid, -r * gy, zeros)))

            u1 = u1 + d1 + THETA_EFF * self._div(p11, p12)
            u2 = u2 + d2 + THETA_EFF * self._div(p21, p22)

            u1x, u1y = self._forward(u1)
            u2x, u2y = self._forward(u2)
            den1 = 1.0 + tt * tf.sqrt(u1x * u1x + u1y * u1y + EPS)
            den2 = 1.0 + tt * tf.sqrt(u2x * u2x + u2y * u2y + EPS)
            p11 = (p11 + tt * u1x) / den1
            p12 = (p12 + tt * u1y) / den1
            p21 = (p21 + tt * u2x) / den2
            p22 = (p22 + tt * u2y) / den2

        flow = tf.concat([u1, u2], axis=-1)
        flow = tf.reshape(flow, [-1, t - 1, h, w, 2])
        flow = tf.concat([flow, flow[:, -1:]], axis=1)  # repeat the last pair's flow: T frames
        return tf.reshape(flow, [-1, h, w, 2])

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[1], input_shape[2], 2 * self.bottleneck)

    def get_config(self):
        config = super().get_config()
        config.update(
            frames=self.frames,
            iterations=self.iterations,
            bottleneck=self.bottleneck,
            fused=self.fused,
        )
        return config
