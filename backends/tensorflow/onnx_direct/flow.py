"""The Representation Flow layer (`repflow.RepresentationFlow`), both forms, op for op.

Input the folded NCHW clip ``[B*T, C, H, W]``, output the flow ``[B*T, 2, H, W]``. The
fused form (`repflow-slices`) works on ``[N, H, W]`` images with the flow components packed
on a leading axis, flattened with a guard column for its iterations (`_Fused`); the
reference form keeps a size-1 channel axis ``[N, 1, H, W]`` and takes every difference as
a Conv with the layer's fixed 2- or 3-tap kernel (SAME: for 2 taps no zero before, one
after). Loop invariants the TF graph recomputes per iteration (the negated thresholds,
``-rho/g`` shared by both components) are computed once: the same float32 values. Each
iteration is unrolled, as in the layer; the last one's dual update, which nothing reads, is
dropped with the graph's other unused nodes (`Graph.prune`).
"""

from __future__ import annotations

import numpy as np
from onnx import helper

from ..repflow import EPS, THETA_EFF, RepresentationFlow
from .graph import INT_MAX, Graph, UnsupportedLayer

__all__ = ["representation_flow"]

_F32 = np.float32


def representation_flow(g: Graph, layer: RepresentationFlow, x: str, shape) -> str:
    if layer.bottleneck != 1:
        raise UnsupportedLayer(layer.name, type(layer).__name__, "bottleneck != 1")
    _, h, w, _ = shape
    t = layer.frames
    fused = layer.fused
    # grey: the channel mean (kept as a size-1 channel axis in the reference form)
    x = g.reduce("ReduceMean", x, [1], keepdims=not fused)
    image = [h, w] if fused else [1, h, w]
    # normalise to 0..255 over the whole tensor; a constant tensor is left as is
    mx = g.reduce("ReduceMax", x, None, keepdims=False)
    mn = g.reduce("ReduceMin", x, None, keepdims=False)
    rng = g.op("Sub", [mx, mn])
    positive = g.op("Greater", [rng, g.const(0.0)])
    safe = g.op("Where", [positive, rng, g.const(1.0)])
    scaled = g.op("Div", [g.op("Mul", [g.const(255.0), g.op("Sub", [x, mn])]), safe])
    x = g.op("Where", [positive, scaled, x])
    # frame pairs (t, t+1) of each clip
    x = g.reshape(x, [-1, t, *image])
    i1 = g.reshape(g.slice(x, 1, 0, t - 1), [-1, *image])
    i2 = g.reshape(g.slice(x, 1, 1, INT_MAX), [-1, *image])

    lam, tau = _F32(layer.lam.numpy()), _F32(layer.tau.numpy())
    lt = _F32(lam * _F32(THETA_EFF))  # float32 arithmetic, as the layer's
    tt = _F32(tau / _F32(THETA_EFF))
    flow = (_Fused if fused else _Reference)(g, layer, t, h, w).run(i1, i2, lt, tt)
    # [B*(T-1), 2, H, W] -> per clip, the last pair's flow repeated: T frames
    flow = g.reshape(flow, [-1, t - 1, 2, h, w])
    flow = g.op("Concat", [flow, g.slice(flow, 1, -1, INT_MAX)], axis=1)
    return g.reshape(flow, [-1, 2, h, w])


class _Flow:
    rank = 3
    h_axis, w_axis = 1, 2

    def __init__(self, g: Graph, layer: RepresentationFlow, t: int, h: int, w: int):
        self.g, self.layer, self.t, self.h, self.w = g, layer, t, h, w

    def mul(self, a, b):
        return self.g.op("Mul", [a, b])

    def add(self, a, b):
        return self.g.op("Add", [a, b])

    def sub(self, a, b):
        return self.g.op("Sub", [a, b])

    def shift(self, x, axis, forward, rank=None):
        """x[j+1] (forward) or x[j-1] along ``axis``, zero outside the image."""
        g, rank = self.g, rank or self.rank
        if forward:
            return g.pad(g.slice(x, axis, 1, INT_MAX), rank, axis, 0, 1)
        return g.pad(g.slice(x, axis, 0, -1), rank, axis, 1, 0)

    def den(self, ax, ay, tt):
        """``1 + tt * sqrt(ax*ax + ay*ay + EPS)``."""
        g = self.g
        s = self.add(self.add(self.mul(ax, ax), self.mul(ay, ay)), g.const(EPS))
        return self.add(g.const(1.0), self.mul(g.const(tt), g.op("Sqrt", [s])))


class _Fused(_Flow):
    """`RepresentationFlow._tvl1_packed`, the same float32 operations in the same order, on
    flat images: ``u``, ``px``, ``py`` are ``[2, N, H*(W+1)]``, each image's rows laid end
    to end with a zero guard column after each row. A one-pixel shift is then one Pad with
    a negative pad on the far side (x: 1 element, y: W+1), a contiguous copy, where the
    image layout needed a Slice and a Pad on the last axis (the layer's slowest nodes in
    ONNX Runtime). The guards stay zero: the gradient there is 0 and ``g`` 1. ``px`` (last
    column) and ``py`` (last row) are kept zero where the layer's divergence ignores them,
    by their ``tt`` factor being 0 there. Bit-identical to the image layout and to the
    reference form in ONNX Runtime (`benchmarks/flow_forms_bench.py`, tests/test_repflow);
    29 nodes an iteration, not 41: the flow layer's ONNX Runtime node time 1.29-1.35x
    lower inside AssembleNet-50 (benchmarks/results/2026-12-06-flow_forms.txt)."""

    def flat(self, x, value=0.0):
        """``[..., H, W]`` -> ``[..., H*(W+1)]``, the guard column filled with ``value``."""
        g = self.g
        x = g.op("Pad", [x, g.ints([0, 0, 0, 0, 0, 1]), g.const(value)])
        return g.reshape(x, [0, self.h * (self.w + 1)])

    def flat_shift(self, x, k):
        """``x[j+k]`` along the flat last axis (``k`` < 0: ``x[j-|k|]``), zero outside."""
        return self.g.op("Pad", [x, self.g.ints([0, 0, -k, 0, 0, k])])

    def split2(self, x):
        """The two halves of ``x`` along axis 0 (one Split node)."""
        g = self.g
        k = len(g.nodes)
        name = f"{g._scope}/n{k}_Split" if g._scope else f"n{k}_Split"
        outs = [f"{name}:0", f"{name}:1"]
        attrs = {"num_outputs": 2} if g.opset >= 18 else {}
        g.nodes.append(helper.make_node("Split", [x], outs, name=name, axis=0, **attrs))
        return outs

    def run(self, i1, i2, lt, tt):
        g, h, w = self.g, self.h, self.w
        row = w + 1  # a flat row: W pixels and the guard
        half = g.const(0.5)
        gx = self.mul(half, self.sub(self.shift(i2, 2, True), self.shift(i2, 2, False)))
        gy = self.mul(half, self.sub(self.shift(i2, 1, True), self.shift(i2, 1, False)))
        gg = self.add(self.add(self.mul(gx, gx), self.mul(gy, gy)), g.const(EPS))
        rho_c = self.add(self.sub(i2, i1), g.const(EPS))
        # guards: gradient 0 (u stays 0 there), g 1 (rho / g is then finite)
        gx, gy, rho_c, gg = self.flat(gx), self.flat(gy), self.flat(rho_c), self.flat(gg, 1.0)
        axis0 = g.ints([0])
        grad = g.op("Concat", [g.op("Unsqueeze", [gx, axis0]),
                               g.op("Unsqueeze", [gy, axis0])], axis=0)  # [2, N, L]
        ngrad = g.op("Neg", [grad])
        u = g.op("ConstantOfShape", [g.op("Shape", [grad])], value=_zero_tensor())
        px = py = u
        # tt where the divergence reads p, 0 elsewhere (tt * 1 is tt exactly)
        keep_x = np.ones((h, row), np.float32)
        keep_x[:, w - 1:] = 0.0  # px: the last column and the guard
        keep_y = np.ones((h, row), np.float32)
        keep_y[h - 1, :] = 0.0  # py: the last row
        keep_y[:, w] = 0.0  # and the guard
        ttx = g.weight((_F32(tt) * keep_x).reshape(1, 1, -1), f"{self.layer.name}/tt_x")
        tty = g.weight((_F32(tt) * keep_y).reshape(1, 1, -1), f"{self.layer.name}/tt_y")
        lo, hi, theta = g.const(-lt), g.const(lt), g.const(THETA_EFF)
        one, eps, ttc = g.const(1.0), g.const(EPS), g.const(tt)
        for _ in range(self.layer.iterations):
            # Sum adds its inputs left to right: (rho_c + gx u0) + gy u1, as the layer
            a, b = self.split2(g.op("Mul", [u, grad]))
            rho = g.op("Sum", [rho_c, a, b])
            c = g.op("Clip", [g.op("Div", [rho, gg]), lo, hi])
            div = self.add(self.sub(px, self.flat_shift(px, -1)),
                           self.sub(py, self.flat_shift(py, -row)))
            u = g.op("Sum", [u, self.mul(c, ngrad), self.mul(theta, div)])
            ux = self.sub(self.flat_shift(u, 1), u)
            uy = self.sub(self.flat_shift(u, row), u)
            den = self.add(one, self.mul(ttc, g.op(
                "Sqrt", [g.op("Sum", [self.mul(ux, ux), self.mul(uy, uy), eps])])))
            px = g.op("Div", [self.add(px, self.mul(ttx, ux)), den])
            py = g.op("Div", [self.add(py, self.mul(tty, uy)), den])
        u = g.reshape(u, [2, -1, h, row])
        return g.transpose(g.slice(u, 3, 0, w), [1, 0, 2, 3])  # [N, 2, H, W]


class _Reference(_Flow):
    """The layer's unfused loop on ``[N, 1, H, W]``: differences as fixed-kernel Convs, the
    thresholding as nested selects."""

    rank = 4
    h_axis, w_axis = 2, 3

    def conv(self, x, name):
        """``tf.nn.conv2d(x, kernel, padding="SAME")`` with the layer's fixed kernel."""
        kernel = self.layer.kernels[name]
        kh, kw = int(kernel.shape[0]), int(kernel.shape[1])
        cache = self.__dict__.setdefault("_kernels", {})
        if name not in cache:  # one initializer per kernel, read by every iteration
            cache[name] = self.g.weight(kernel.numpy().transpose(3, 2, 0, 1), kernel.path)
        w = cache[name]
        pads = [(kh - 1) // 2, (kw - 1) // 2, kh - 1 - (kh - 1) // 2, kw - 1 - (kw - 1) // 2]
        return self.g.op("Conv", [x, w], kernel_shape=[kh, kw], pads=pads)

    def div(self, p1, p2):
        return self.add(self.conv(self.shift(p1, self.w_axis, False), "div_x"),
                        self.conv(self.shift(p2, self.h_axis, False), "div_y"))

    def run(self, i1, i2, lt, tt):
        g = self.g
        gx, gy = self.conv(i2, "img_grad_x"), self.conv(i2, "img_grad_y")
        gg = self.add(self.add(self.mul(gx, gx), self.mul(gy, gy)), g.const(EPS))
        ltc = g.const(lt)
        lt_gx, lt_gy, lt_g = self.mul(ltc, gx), self.mul(ltc, gy), self.mul(ltc, gg)
        neg_lt_gx, neg_lt_gy = g.op("Neg", [lt_gx]), g.op("Neg", [lt_gy])
        neg_lt_g = g.op("Neg", [lt_g])
        rho_c = self.sub(i2, i1)
        has_grad = g.op("Greater", [gg, g.const(EPS)])
        zeros = g.op("ConstantOfShape", [g.op("Shape", [i2])], value=_zero_tensor())
        u1 = u2 = p11 = p12 = p21 = p22 = zeros
        eps, theta, ttc = g.const(EPS), g.const(THETA_EFF), g.const(tt)
        for _ in range(self.layer.iterations):
            rho = self.add(self.add(self.add(rho_c, self.mul(gx, u1)), self.mul(gy, u2)), eps)
            low = g.op("Less", [rho, neg_lt_g])
            high = g.op("Greater", [rho, lt_g])
            mid = g.op("And", [g.op("Not", [g.op("Or", [low, high])]), has_grad])
            neg_r = g.op("Neg", [g.op("Div", [rho, gg])])
            d1 = g.op("Where", [low, lt_gx, g.op("Where", [high, neg_lt_gx, g.op(
                "Where", [mid, self.mul(neg_r, gx), zeros])])])
            d2 = g.op("Where", [low, lt_gy, g.op("Where", [high, neg_lt_gy, g.op(
                "Where", [mid, self.mul(neg_r, gy), zeros])])])
            u1 = self.add(self.add(u1, d1), self.mul(theta, self.div(p11, p12)))
            u2 = self.add(self.add(u2, d2), self.mul(theta, self.div(p21, p22)))
            u1x, u1y = self.conv(u1, "fwd_x"), self.conv(u1, "fwd_y")
            u2x, u2y = self.conv(u2, "fwd_x"), self.conv(u2, "fwd_y")
            den1, den2 = self.den(u1x, u1y, tt), self.den(u2x, u2y, tt)
            p11 = g.op("Div", [self.add(p11, self.mul(ttc, u1x)), den1])
            p12 = g.op("Div", [self.add(p12, self.mul(ttc, u1y)), den1])
            p21 = g.op("Div", [self.add(p21, self.mul(ttc, u2x)), den2])
            p22 = g.op("Div", [self.add(p22, self.mul(ttc, u2y)), den2])
        return g.op("Concat", [u1, u2], axis=1)  # [N, 2, H, W]


def _zero_tensor():
    from onnx import numpy_helper

    return numpy_helper.from_array(np.zeros(1, np.float32), "zero")
