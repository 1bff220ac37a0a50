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

Eager calls and training unroll the iterations, as the reference does. A traced inference
graph (the SavedModel's, and so the TFLite file's) runs them as one ``tf.while_loop`` of
`ITERATIONS_PER_TRIP` unrolled iterations: the same ops and values in a graph 8x smaller at
40 iterations, which the compile traces, saves, loads and verifies faster (quickstart:
SavedModel phase 6.6 -> 4.9 s, verify 5.9 -> 3.9 s); TensorFlow and LiteRT run it as fast
(interleaved A/B: within +-2%, this machine's noise). The ONNX stays unrolled
(`unrolled_iterations`).
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
from collections.abc import Iterator

import keras
import numpy as np
import tensorflow as tf

THETA = 0.3
LAMBDA = 0.15
TAU = 0.25
# The reference rebinds theta to |theta| + 1e-12 in build(); the constant is what it then uses.
THETA_EFF = abs(THETA) + 1e-12
EPS = 1e-12

# Iterations in one trip of the traced inference graph's loop (`RepresentationFlow._iterate`).
ITERATIONS_PER_TRIP = 5

# Set while tracing a graph whose iterations must stay unrolled (`unrolled_iterations`).
_UNROLLED: contextvars.ContextVar[bool] = contextvars.ContextVar("asnc_repflow_unrolled",
                                                                 default=False)


# The outputs remembered while `memoised_outputs` is active (None: not active).
_MEMO: contextvars.ContextVar[dict | None] = contextvars.ContextVar("asnc_repflow_memo",
                                                                   default=None)


@contextlib.contextmanager
def memoised_outputs() -> Iterator[None]:
    """Inside, an eager inference call of a flow layer whose form, fixed values and input
    equal an earlier call's (the input compared value for value) returns that call's output
    instead of running the iterations again. The compile's proofs run every model on the
    same clips, and no pass after `repflow-slices` changes the flow layer, which is most of
    the ops of an eager forward pass (AssembleNet-50 at 4x64x64, batch 2: 0.2 s of slices,
    0.55 s in the reference form, a forward pass in all about 0.7-1 s)."""
    token = _MEMO.set({})
    try:
        yield
    finally:
        _MEMO.reset(token)


@contextlib.contextmanager
def unrolled_iterations() -> Iterator[None]:
    """Functions traced inside keep the flow layer's iterations unrolled, as eager and
    training calls do (tf2onnx's fallback conversion: with a While loop its lean and plain
    paths gave different bytes, and the direct writer's ONNX is unrolled)."""
    token = _UNROLLED.set(True)
    try:
        yield
    finally:
        _UNROLLED.reset(token)


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


# --- constants and one-pixel shifts (axis 1 = height, axis 2 = width, NHWC or NHW) ------------
class _Constants:
    """The constant tensors of one call, each made once: the slice bounds and paddings of
    every one-pixel shift and the scalars of the iteration. Written inline (``x[1:]``,
    ``tf.pad(x, [[0, 1]])``, ``THETA * x``), a traced graph holds a new Const per use in
    each of the 40 unrolled iterations (1,126 of the fused form's 2,861 ops); made once,
    the SavedModel traces and loads faster and every value is the same."""

    def __init__(self):
        self._made: dict = {}

    def _get(self, key, make):
        value = self._made.get(key)
        if value is None:
            value = self._made[key] = make()
        return value

    def scalar(self, value: float):
        return self._get(("scalar", value), lambda: tf.constant(value, tf.float32))

    def shift(self, x, axis, forward):
        """x[j+1] (forward) or x[j-1] along `axis`, zero where that pixel is outside the
        image (`axis` has a static size)."""
        rank = len(x.shape)

        def bounds():
            begin, size = [0] * rank, [-1] * rank
            pads = [[0, 0] for _ in range(rank)]
            size[axis] = int(x.shape[axis]) - 1
            begin[axis], pads[axis] = (1, [0, 1]) if forward else (0, [1, 0])
            return tf.constant(begin), tf.constant(size), tf.constant(pads)

        begin, size, pads = self._get(("shift", rank, axis, forward, int(x.shape[axis])),
                                      bounds)
        return tf.pad(tf.slice(x, begin, size), pads)

    def drop_last(self, x, axis):
        """``x`` without its last element along `axis` (static size)."""
        rank = len(x.shape)

        def bounds():
            size = [-1] * rank
            size[axis] = int(x.shape[axis]) - 1
            return tf.constant([0] * rank), tf.constant(size)

        begin, size = self._get(("drop", rank, axis, int(x.shape[axis])), bounds)
        return tf.slice(x, begin, size)

    def pad(self, x, axis, before, after):
        rank = len(x.shape)

        def paddings():
            pads = [[0, 0] for _ in range(rank)]
            pads[axis] = [before, after]
            return tf.constant(pads)

        return tf.pad(x, self._get(("pad", rank, axis, before, after), paddings))


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
    def _conv(self, x, kernels, name):
        return tf.nn.conv2d(x, kernels[name], strides=1, padding="SAME")

    def _grad(self, x, c: _Constants, kernels):
        """Central image gradients [-0.5, 0, 0.5] along x and y, zero border."""
        if self.fused:
            half = c.scalar(0.5)
            return (half * (c.shift(x, 2, True) - c.shift(x, 2, False)),
                    half * (c.shift(x, 1, True) - c.shift(x, 1, False)))
        return self._conv(x, kernels, "img_grad_x"), self._conv(x, kernels, "img_grad_y")

    def _forward(self, u, kernels):
        """Forward differences u[j+1] - u[j]; the last column/row gives -u (SAME pads one zero)."""
        return self._conv(u, kernels, "fwd_x"), self._conv(u, kernels, "fwd_y")

    def _div(self, p1, p2, c: _Constants, kernels):
        """Divergence: shift p1 right / p2 down by one, then forward differences, summed."""
        return (self._conv(c.shift(p1, 2, False), kernels, "div_x")
                + self._conv(c.shift(p2, 1, False), kernels, "div_y"))

    def _tvl1_packed(self, gx, gy, g, rho_c, lt, tt, c: _Constants, loop: bool):
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
        rho_c = rho_c + c.scalar(EPS)
        u = tf.zeros_like(grad)
        px = py = u
        lo, theta, one, eps = -lt, c.scalar(THETA_EFF), c.scalar(1.0), c.scalar(EPS)
        first, second = tf.constant(0), tf.constant(1)

        def iteration(u, px, py):
            # one single-output op each (TFLite's int8 converter keeps ops float by output
            # name, which a multi-output Unpack does not match)
            u0, u1 = tf.gather(u, first), tf.gather(u, second)
            rho = rho_c + gx * u0 + gy * u1
            clipped = tf.minimum(tf.maximum(rho / g, lo), lt)
            # p[j] - p[j-1] with the last column (row) of p as zero: the same slice a =
            # p[..., :-1] padded after or before
            ax, ay = c.drop_last(px, 3), c.drop_last(py, 2)
            div = ((c.pad(ax, 3, 0, 1) - c.pad(ax, 3, 1, 0))
                   + (c.pad(ay, 2, 0, 1) - c.pad(ay, 2, 1, 0)))
            u = u + clipped * ngrad + theta * div
            ux = c.shift(u, 3, True) - u
            uy = c.shift(u, 2, True) - u
            den = one + tt * tf.sqrt(ux * ux + uy * uy + eps)
            return u, (px + tt * ux) / den, (py + tt * uy) / den

        u, px, py = self._iterate(iteration, (u, px, py), loop)
        return u

    def _iterate(self, iteration, state: tuple, loop: bool) -> tuple:
        """``state = iteration(*state)``, ``iterations`` times: a Python loop (unrolled into
        the graph when traced), or with ``loop`` a `tf.while_loop` whose body is
        `ITERATIONS_PER_TRIP` unrolled iterations (the remainder unrolled before it). A
        traced graph of 5 iterations instead of 40 traces, saves and loads faster; 5 per
        trip keeps TensorFlow's per-trip cost (about 0.1 ms) near 0.5% of a run."""
        trips, rest = divmod(self.iterations, ITERATIONS_PER_TRIP)

        def unrolled(count, state):
            for _ in range(count):
                state = iteration(*state)
            return state

        if not loop or trips < 2:
            return unrolled(self.iterations, state)
        state = unrolled(rest, state)
        limit = tf.constant(trips)
        done = tf.while_loop(
            lambda i, *s: i < limit,
            lambda i, *s: (i + 1, *unrolled(ITERATIONS_PER_TRIP, s)),
            (tf.constant(0), *state), parallel_iterations=1, maximum_iterations=trips)
        return tuple(done[1:])

    # --- forward -----------------------------------------------------------------------------
    def call(self, inputs, training=None):
        memo = _MEMO.get()
        if memo is None or training or not tf.executing_eagerly():
            return self._flow(inputs, training)
        x = np.asarray(inputs)
        key = self._memo_key(x)
        hit = memo.get(key)
        if hit is not None and np.array_equal(hit[0], x):
            return hit[1]
        out = self._flow(inputs, training)
        memo[key] = (x.copy(), out)
        return out

    def _memo_key(self, x: np.ndarray) -> tuple:
        """Everything the output depends on: the form, the 16 fixed values and the input."""
        digest = hashlib.blake2b(digest_size=16)
        for v in self.weights:
            digest.update(np.asarray(v.numpy(), np.float32).tobytes())
        digest.update(np.ascontiguousarray(x).tobytes())
        return (self.fused, self.iterations, self.frames, self.bottleneck, x.shape, str(x.dtype),
                digest.hexdigest())

    def _flow(self, inputs, training=None):
        t = self.frames
        # Eager, in training and under `unrolled_iterations`, the iterations are unrolled as
        # in the reference; a traced inference graph (the SavedModel's) holds them as one
        # loop of the same ops.
        loop = not (tf.executing_eagerly() or training or _UNROLLED.get())
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

        c = _Constants()
        kernels = {} if self.fused else {  # read once, not once per use
            name: tf.convert_to_tensor(v) for name, v in self.kernels.items()}
        theta, eps = c.scalar(THETA_EFF), c.scalar(EPS)
        lt = self.lam * theta
        tt = self.tau / theta
        gx, gy = self._grad(i2, c, kernels)
        g = gx * gx + gy * gy + eps
        lt_gx, lt_gy, lt_g = lt * gx, lt * gy, lt * g
        rho_c = i2 - i1
        has_grad = g > eps

        if self.fused:
            u = self._tvl1_packed(gx, gy, g, rho_c, lt, tt, c, loop)  # [2, B*(T-1), H, W]
            flow = tf.transpose(u, [1, 2, 3, 0])
            flow = tf.reshape(flow, [-1, t - 1, h, w, 2])
            flow = tf.concat([flow, flow[:, -1:]], axis=1)
            return tf.reshape(flow, [-1, h, w, 2])

        zeros = tf.zeros_like(i2)
        u1 = u2 = p11 = p12 = p21 = p22 = zeros
        neg_lt_g, neg_lt_gx, neg_lt_gy = -lt_g, -lt_gx, -lt_gy
        one = c.scalar(1.0)

        def iteration(u1, u2, p11, p12, p21, p22):
            rho = rho_c + gx * u1 + gy * u2 + eps
            low = rho < neg_lt_g
            high = rho > lt_g
            mid = tf.logical_and(tf.logical_not(tf.logical_or(low, high)), has_grad)
            r = rho / g
            d1 = tf.where(low, lt_gx, tf.where(high, neg_lt_gx, tf.where(mid, -r * gx, zeros)))
            d2 = tf.where(low, lt_gy, tf.where(high, neg_lt_gy, tf.where(mid, -r * gy, zeros)))

            u1 = u1 + d1 + theta * self._div(p11, p12, c, kernels)
            u2 = u2 + d2 + theta * self._div(p21, p22, c, kernels)

            u1x, u1y = self._forward(u1, kernels)
            u2x, u2y = self._forward(u2, kernels)
            den1 = one + tt * tf.sqrt(u1x * u1x + u1y * u1y + eps)
            den2 = one + tt * tf.sqrt(u2x * u2x + u2y * u2y + eps)
            return (u1, u2, (p11 + tt * u1x) / den1, (p12 + tt * u1y) / den1,
                    (p21 + tt * u2x) / den2, (p22 + tt * u2y) / den2)

        u1, u2, *_ = self._iterate(iteration, (u1, u2, p11, p12, p21, p22), loop)

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
