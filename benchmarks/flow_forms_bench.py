"""The Representation Flow layer alone in ONNX Runtime, in several exact ONNX forms (issue 14,
item 4): which form of one TV-L1 iteration runs fastest?

    .venv/bin/python benchmarks/flow_forms_bench.py [--frames 4] [--size 64 64]
        [--iterations 40] [--rounds 30] [--threads 1] [--forms image,channels,...]
        [--profile FORM]
    .venv/bin/python benchmarks/flow_forms_bench.py --in-network FORM [--network FILE]
        [--frames 4] [--size 64 64] [--profiles 6] [--rounds 30] [--threads 1]

Each form is one ONNX model of one flow layer (`repflow.RepresentationFlow`, bottleneck 1):
input the folded NCHW clip ``[B*T, 3, H, W]`` (B = 1), output the flow ``[B*T, 2, H, W]``;
everything before and after the iterations is `onnx_direct.flow.representation_flow`'s (the
form under test replaces its ``_Fused`` class for the one build). Printed per form: ONNX
nodes per iteration (the difference of two builds with 3 and 2 iterations, 2 frame pairs),
the largest absolute difference of its output from the current -O1 form's (``fused``) and
from the -O0 form's (``reference``) on two inputs (a textured pattern moving 1-2 pixels a
frame; uniform noise), and its latency in ONNX Runtime (``--threads`` intra-op threads,
default graph optimisations): median and min over ``--rounds`` rounds, each round running
every form once in turn (interleaved, the order rotating, so a shared machine's load falls
on all alike), and the ratio of medians and of mins to ``fused``. ``--profile FORM`` adds
ONNX Runtime's node profile of ``fused`` and of FORM by op type.

``--in-network FORM`` instead compiles ``--network`` (default AssembleNet-50) at -O1 twice,
each in a fresh process, with today's flow emission and with FORM's (the compile's TF vs
ONNX Runtime parity check covers it), then prints both files' node counts, their largest
logit difference, the flow layer's node time and share of node time (ONNX Runtime profiles,
alternating, as deploy_bench.py's) and the end-to-end latency (interleaved rounds).

The forms (``u`` the flow, ``p`` the dual variables, ``N`` = B*(T-1) frame pairs):

* ``fused``: today's -O1 emission (`flow._Fused`, `repflow-slices`): ``u``, ``px``, ``py``
  stacked ``[2, N, H*(W+1)]``, each image's rows flattened with a zero guard column after
  each (``gg`` 1 there, so ``rho/gg`` is finite and ``u`` stays 0 on the guards; ``px``/
  ``py`` kept zero where the divergence ignores them, as in ``channels``), so every shift
  by one pixel (x: 1, y: W+1 along the flat axis) is ONE Pad with a negative pad on the far
  side, a contiguous copy (ONNX Pad removes elements where a pad is negative); ``rho``, the
  u update and the squares' sum as variadic Sums, the threshold a Clip. Measured here as
  ``flat`` before it became the emission (the results file of 2026-12-06).
* ``reference``: today's -O0 emission (`flow._Reference`): single-channel difference Convs
  and nested Wheres.
* ``image``: the -O1 emission before that: the same operations on ``[2, N, H, W]``, every
  shift a Slice + Pad on the image axes.
* ``flat-pairs``: ``fused`` run on each frame pair alone, one chain after another (less
  data per node, T-1 times the nodes).
* ``channels``: ``u`` as ``[N, 2, H, W]``, ``p`` as ``[N, 4, H, W]`` (px1, py1, px2, py2)
  kept masked (the last column of px, the last row of py zero: their update multiplies by a
  constant ``tt * mask`` instead of ``tt``, so they stay zero from the zero start), every
  difference one grouped Conv with a fixed 2x2 kernel of +-1 taps and asymmetric pads: the
  forward differences of both components [N,2] -> [N,4] (group 2), the divergence's
  differences [N,4] -> [N,4] (group 4, depthwise) and their pair sums [N,4] -> [N,2] (1x1,
  group 2), the pair sums of squares plus EPS [N,4] -> [N,4] (1x1 group 2, ones, bias EPS:
  [s1, s1, s2, s2], so the denominator broadcasts over p's 4 channels). ``rho`` =
  Sum(rho_c, gx u1, gy u2) of a Mul and a Split; the threshold a Div and a Clip; the u
  update one Sum. Every Conv has two nonzero taps (+-1 or 1, 1) and zeros, so it rounds as
  the Sub or Add it replaces; MLAS adds the bias after the sum.
* ``channels-div4``: ``channels`` with the divergence one Conv of four taps [N,4] ->
  [N,2] (group 2): one node fewer. Its sum of four terms is in MLAS's order; in ONNX
  Runtime 1.32 on AVX2 that order gave (dx) + (dy), bit-identical, but nothing promises it.
* ``channels-dw3``: ``channels`` with the difference kernels as 3x3 (zeros around the
  taps, pads 1), for MLAS's depthwise 3x3 path.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

FORMS = ["fused", "reference", "image", "flat-pairs", "channels", "channels-div4", "channels-dw3"]


# --- the candidate forms ---------------------------------------------------------------------
def _candidates():
    from onnx import helper

    from asn.backends.tensorflow.onnx_direct import flow
    from asn.backends.tensorflow.repflow import EPS, THETA_EFF

    class Channels(flow._Flow):
        """u [N, 2, H, W], p [N, 4, H, W] masked, differences as grouped Convs."""

        k3 = False  # 3x3 kernels (pads 1) instead of 2x2 (asymmetric pads)
        div4 = False  # the divergence as one four-tap Conv

        def split(self, x, n, axis):
            g = self.g
            name = f"{g._scope}/n{len(g.nodes)}_Split" if g._scope else f"n{len(g.nodes)}_Split"
            outs = [f"{name}:{j}" for j in range(n)]
            attrs = {"num_outputs": n} if g.opset >= 18 else {}
            g.nodes.append(helper.make_node("Split", [x], outs, name=name, axis=axis, **attrs))
            return outs

        def kernel(self, taps, out_ch, in_ch, backward, name):
            """A fixed kernel [out, in, k, k] from ``{(o, i, dy, dx): value}``, (dy, dx) the
            offset from the output pixel: -1..0 (backward) or 0..1 (forward); with ``k3``
            centred in 3x3, else 2x2 (`conv` pads it on the matching sides)."""
            k, at = (3, 1) if self.k3 else (2, 1 if backward else 0)
            w = np.zeros((out_ch, in_ch, k, k), np.float32)
            for (o, i, dy, dx), v in taps.items():
                w[o, i, dy + at, dx + at] = v
            return self.g.weight(w, name)

        def conv(self, x, w, group, backward):
            if self.k3:
                k, pads = 3, [1, 1, 1, 1]
            else:  # the taps at offsets -1..0 (backward) or 0..1 (forward)
                k, pads = 2, [1, 1, 0, 0] if backward else [0, 0, 1, 1]
            return self.g.op("Conv", [x, w], kernel_shape=[k, k], pads=pads, group=group)

        def run(self, i1, i2, lt, tt):
            g, h, w = self.g, self.h, self.w
            half = g.const(0.5)
            # as _Fused computes them (the same float32 values), then on a channel axis
            gx = self.mul(half, self.sub(self.shift(i2, 2, True), self.shift(i2, 2, False)))
            gy = self.mul(half, self.sub(self.shift(i2, 1, True), self.shift(i2, 1, False)))
            gg = self.add(self.add(self.mul(gx, gx), self.mul(gy, gy)), g.const(EPS))
            rho_c = self.add(self.sub(i2, i1), g.const(EPS))
            axis1 = g.ints([1])
            gx, gy, gg, rho_c = (g.op("Unsqueeze", [t, axis1]) for t in (gx, gy, gg, rho_c))
            grad = g.op("Concat", [gx, gy], axis=1)  # [N, 2, H, W]
            ngrad = g.op("Neg", [grad])
            u = g.op("ConstantOfShape", [g.op("Shape", [grad])], value=flow._zero_tensor())
            p = g.op("Concat", [u, u], axis=1)  # zeros [N, 4, H, W]
            # forward differences: channel c of u -> (ux, uy) = channels 2c, 2c+1
            fwd = self.kernel({(o, 0, 0, 0): -1.0 for o in range(4)} | {
                (0, 0, 0, 1): 1.0, (1, 0, 1, 0): 1.0, (2, 0, 0, 1): 1.0, (3, 0, 1, 0): 1.0},
                4, 1, False, "flow_fwd")
            pair_w = ""  # the divergence's pair sums (not with div4)
            if self.div4:  # (px, py) of a component -> px[j] - px[j-1] + py[i] - py[i-1]
                div_w = self.kernel({(o, i, 0, 0): 1.0 for o in (0, 1) for i in (0, 1)} | {
                    (o, 0, 0, -1): -1.0 for o in (0, 1)} | {(o, 1, -1, 0): -1.0 for o in (0, 1)},
                    2, 2, True, "flow_div")
            else:  # px -> px[j] - px[j-1], py -> py[i] - py[i-1], then pair sums
                div_w = self.kernel({(o, 0, 0, 0): 1.0 for o in range(4)} | {
                    (0, 0, 0, -1): -1.0, (1, 0, -1, 0): -1.0, (2, 0, 0, -1): -1.0,
                    (3, 0, -1, 0): -1.0}, 4, 1, True, "flow_dxy")
                pair_w = g.weight(np.ones((2, 2, 1, 1), np.float32), "flow_pairs")
            sq_w = g.weight(np.ones((4, 2, 1, 1), np.float32), "flow_squares")
            eps_b = g.weight(np.full(4, EPS, np.float32), "flow_eps")  # added after the sum
            mask = np.ones((1, 4, h, w), np.float32)
            mask[:, 0::2, :, -1] = 0.0  # px: last column
            mask[:, 1::2, -1, :] = 0.0  # py: last row
            ttm = g.weight(np.float32(tt) * mask, "flow_tt_mask")
            lo, hi, theta, ttc = g.const(-lt), g.const(lt), g.const(THETA_EFF), g.const(tt)
            one = g.const(1.0)
            for _ in range(self.layer.iterations):
                a, b = self.split(g.op("Mul", [u, grad]), 2, 1)
                rho = g.op("Sum", [rho_c, a, b])
                c = g.op("Clip", [g.op("Div", [rho, gg]), lo, hi])
                if self.div4:
                    div = self.conv(p, div_w, 2, True)
                else:
                    div = g.op("Conv", [self.conv(p, div_w, 4, True), pair_w],
                               kernel_shape=[1, 1], group=2)
                u = g.op("Sum", [u, self.mul(c, ngrad), self.mul(theta, div)])
                d = self.conv(u, fwd, 2, False)  # [ux1, uy1, ux2, uy2]
                s = g.op("Conv", [self.mul(d, d), sq_w, eps_b], kernel_shape=[1, 1], group=2)
                den = self.add(one, self.mul(ttc, g.op("Sqrt", [s])))
                p = g.op("Div", [self.add(p, self.mul(ttm, d)), den])
            return u  # [N, 2, H, W]

    class Image(flow._Flow):
        """The -O1 emission before 2026-12-06: ``u``, ``px``, ``py`` stacked
        ``[2, N, H, W]``, every shift a Slice and a Pad on the image axes (41 nodes)."""

        def run(self, i1, i2, lt, tt):
            g = self.g
            half = g.const(0.5)
            gx = self.mul(half, self.sub(self.shift(i2, 2, True), self.shift(i2, 2, False)))
            gy = self.mul(half, self.sub(self.shift(i2, 1, True), self.shift(i2, 1, False)))
            gg = self.add(self.add(self.mul(gx, gx), self.mul(gy, gy)), g.const(EPS))
            rho_c = self.add(self.sub(i2, i1), g.const(EPS))
            axis0 = g.ints([0])
            grad = g.op("Concat", [g.op("Unsqueeze", [gx, axis0]),
                                   g.op("Unsqueeze", [gy, axis0])], axis=0)
            ngrad = g.op("Neg", [grad])
            u = g.op("ConstantOfShape", [g.op("Shape", [grad])],
                     value=flow._zero_tensor())
            px = py = u
            first, second = g.const(0, np.int64), g.const(1, np.int64)
            lo, hi, theta, ttc = g.const(-lt), g.const(lt), g.const(THETA_EFF), g.const(tt)
            for _ in range(self.layer.iterations):
                u0 = g.op("Gather", [u, first], axis=0)
                u1 = g.op("Gather", [u, second], axis=0)
                rho = self.add(self.add(rho_c, self.mul(gx, u0)), self.mul(gy, u1))
                c = g.op("Min", [g.op("Max", [g.op("Div", [rho, gg]), lo]), hi])
                ax, ay = g.slice(px, 3, 0, -1), g.slice(py, 2, 0, -1)
                div = self.add(self.sub(g.pad(ax, 4, 3, 0, 1), g.pad(ax, 4, 3, 1, 0)),
                               self.sub(g.pad(ay, 4, 2, 0, 1), g.pad(ay, 4, 2, 1, 0)))
                u = self.add(self.add(u, self.mul(c, ngrad)), self.mul(theta, div))
                ux = self.sub(self.shift(u, 3, True, rank=4), u)
                uy = self.sub(self.shift(u, 2, True, rank=4), u)
                den = self.den(ux, uy, tt)
                px = g.op("Div", [self.add(px, self.mul(ttc, ux)), den])
                py = g.op("Div", [self.add(py, self.mul(ttc, uy)), den])
            return g.transpose(u, [1, 0, 2, 3])  # [N, 2, H, W]

    class FlatPairs(flow._Fused):
        """``fused`` run on each frame pair alone (T-1 chains of [2, B, H*(W+1)] tensors, one
        after another): a third of the data per node at T = 4 (cache), T-1 times the nodes."""

        def run(self, i1, i2, lt, tt):
            g, h, w, pairs = self.g, self.h, self.w, self.t - 1
            i1, i2 = (g.reshape(x, [-1, pairs, h, w]) for x in (i1, i2))
            flows = []
            for k in range(pairs):
                a, b = (g.reshape(g.slice(x, 1, k, k + 1), [-1, h, w]) for x in (i1, i2))
                flows.append(g.op("Unsqueeze", [super().run(a, b, lt, tt), g.ints([1])]))
            return g.reshape(g.op("Concat", flows, axis=1), [-1, 2, h, w])

    class ChannelsDW3(Channels):
        k3 = True

    class ChannelsDiv4(Channels):
        div4 = True

    return {"image": Image, "flat-pairs": FlatPairs, "channels": Channels,
            "channels-div4": ChannelsDiv4, "channels-dw3": ChannelsDW3}


@contextlib.contextmanager
def _as_fused(cls):
    """`representation_flow` emitting ``cls`` where it emits ``_Fused`` (this build only)."""
    from asn.backends.tensorflow.onnx_direct import flow

    saved = flow._Fused
    flow._Fused = cls
    try:
        yield
    finally:
        flow._Fused = saved


def build(form: str, frames: int, h: int, w: int, iterations: int, opset: int = 17):
    """The ONNX model of one flow layer in ``form``: ``x`` [N, 3, H, W] -> ``flow``."""
    import onnx
    from onnx import TensorProto, helper

    from asn.backends.tensorflow.onnx_direct.flow import representation_flow
    from asn.backends.tensorflow.onnx_direct.graph import Graph
    from asn.backends.tensorflow.repflow import RepresentationFlow

    fused = form != "reference"
    layer = RepresentationFlow(frames, iterations=iterations, fused=fused)
    layer.build((None, h, w, 3))
    g = Graph(opset)
    ctx = _as_fused(_candidates()[form]) if form not in ("fused", "reference") else \
        contextlib.nullcontext()
    with ctx:
        y = representation_flow(g, layer, "x", (None, h, w, 3))
    g.op("Identity", [y], output="flow")
    graph = helper.make_graph(
        g.nodes, "flow", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, h, w])],
        [helper.make_tensor_value_info("flow", TensorProto.FLOAT, ["n", 2, h, w])],
        g.initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                              ir_version=8)
    onnx.checker.check_model(model, full_check=True)
    return model


def nodes_per_iteration(form: str) -> tuple[int, dict]:
    a = collections.Counter(n.op_type for n in build(form, 3, 8, 8, 3).graph.node)
    b = collections.Counter(n.op_type for n in build(form, 3, 8, 8, 2).graph.node)
    step = a - b
    return sum(step.values()), dict(sorted(step.items()))


def clip(frames: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    """A textured pattern moving by a pixel or two a frame, plus noise: [T, 3, H, W]."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h + 2 * frames, 0:w + 2 * frames].astype(np.float32)
    base = (np.sin(xx / 3.0) + np.cos(yy / 5.0) + 0.5 * np.sin((xx + yy) / 7.0))[None]
    base = np.repeat(base, 3, 0) * rng.uniform(0.5, 1.0, (3, 1, 1)).astype(np.float32)
    frames_ = [base[:, t:t + h, 2 * t:2 * t + w] for t in range(frames)]
    video = np.stack(frames_) + 0.05 * rng.standard_normal((frames, 3, h, w))
    return video.astype(np.float32)


def session(model, threads: int, profile: str | None = None):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    if profile:
        options.enable_profiling = True
        options.profile_file_prefix = profile
    return ort.InferenceSession(model.SerializeToString(), options,
                                providers=["CPUExecutionProvider"])


def op_profile(model, x, threads: int, runs: int = 10) -> dict:
    """ONNX Runtime node time by op type (us per run)."""
    sess = session(model, threads, os.path.join(tempfile.mkdtemp(), "ort"))
    for _ in range(runs):
        sess.run(None, {"x": x})
    with open(sess.end_profiling()) as fh:
        events = json.load(fh)
    by_op: dict[str, float] = collections.defaultdict(float)
    count: dict[str, int] = collections.defaultdict(int)
    for e in events:
        if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time"):
            op = e["args"]["op_name"]
            by_op[op] += float(e["dur"]) / runs
            count[op] += 1
    return {op: (by_op[op], count[op] // runs) for op in sorted(by_op, key=lambda o: -by_op[o])}


def _compile_with(form: str, out: str, file: str, frames: int, size) -> int:
    """`asnc compile FILE -O1` with the flow layer's -O1 emission replaced by ``form``
    (this process only; the compile's TF-vs-ORT parity check covers it)."""
    from asn.cli.main import main as asnc

    ctx = _as_fused(_candidates()[form]) if form != "fused" else contextlib.nullcontext()
    with ctx:
        return asnc(["compile", file, "-o", out, "--frames", str(frames), "--size",
                     *map(str, size), "-O", "1"])


def _flow_share(path: str, feeds: dict, threads: int) -> tuple[float, float]:
    """ONNX Runtime node time of the flow layer (scope ``repflow``) and of all nodes, ms a
    run: deploy_bench.py's profile."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from deploy_bench import _flow_profile

    prof = _flow_profile(path, feeds, threads)
    return prof["flow_ms"], prof["node_ms"]


def in_network(a) -> int:
    """Compile FILE twice (today's -O1 flow emission and ``a.in_network``'s), each in a
    fresh process, then profile and time both model.onnx files in turn."""
    import subprocess

    import onnx
    import onnxruntime as ort

    tmp = tempfile.mkdtemp(prefix="flow-forms-")
    forms = ["fused", a.in_network]
    for f in forms:
        t0 = time.perf_counter()
        rc = subprocess.call([sys.executable, __file__, "--compile-with", f,
                              os.path.join(tmp, f), "--network", a.network,
                              "--frames", str(a.frames), "--size", *map(str, a.size)],
                             stdout=subprocess.DEVNULL)
        if rc:
            print(f"compile with {f} failed ({rc})")
            return rc
        print(f"# compiled {a.network} -O1 with the {f} flow emission: "
              f"{time.perf_counter() - t0:.0f} s")
    paths = {f: os.path.join(tmp, f, "model.onnx") for f in forms}
    reports = {f: json.loads(Path(tmp, f, "report.json").read_text()) for f in forms}
    shape = reports["fused"]["signature"]["inputs"]["video"]
    feeds = {"video": np.random.default_rng(0).random([1, *shape[1:]], dtype=np.float32)}
    options = ort.SessionOptions()
    options.intra_op_num_threads = a.threads
    sessions = {f: ort.InferenceSession(p, options, providers=["CPUExecutionProvider"])
                for f, p in paths.items()}
    logits = {f: np.asarray(s.run(None, feeds)[0]) for f, s in sessions.items()}
    for f in forms:
        nodes = [n.name for n in onnx.load(paths[f]).graph.node]
        parity = reports[f]["parity"]
        print(f"# {f}: {len(nodes)} ONNX nodes, flow layer "
              f"{sum(1 for n in nodes if n.startswith('repflow'))}; compile parity "
              f"{'ok' if parity['ok'] else 'FAILED'} ({json.dumps(parity)[:120]})")
    print(f"# max |logit diff| {a.in_network} vs fused (ORT, batch 1): "
          f"{np.abs(logits[a.in_network] - logits['fused']).max():.2e}")
    shares: dict[str, list[tuple[float, float]]] = {f: [] for f in forms}
    for r in range(a.profiles):  # alternate the order
        for f in (forms if r % 2 == 0 else forms[::-1]):
            shares[f].append(_flow_share(paths[f], feeds, a.threads))
    times: dict[str, list[float]] = {f: [] for f in forms}
    for r in range(a.rounds + 1):
        for f in (forms if r % 2 == 0 else forms[::-1]):
            t0 = time.perf_counter()
            sessions[f].run(None, feeds)
            if r:
                times[f].append(time.perf_counter() - t0)
    print(f"\n{'form':<10}{'flow ms':>9}{'nodes ms':>10}{'flow share':>12}   (medians of "
          f"{a.profiles} profiles of 5 runs)   {'e2e median ms':>14}{'min ms':>8}")
    for f in forms:
        fl = statistics.median(x for x, _ in shares[f])
        tot = statistics.median(t for _, t in shares[f])
        share = statistics.median(x / t for x, t in shares[f])
        print(f"{f:<10}{fl:>9.2f}{tot:>10.2f}{100 * share:>11.1f}%{'':>36}"
              f"{1e3 * statistics.median(times[f]):>14.2f}{1e3 * min(times[f]):>8.2f}")
    f = a.in_network
    flow_ms = {k: statistics.median(x for x, _ in v) for k, v in shares.items()}
    e2e = {k: statistics.median(v) for k, v in times.items()}
    print(f"fused / {f}: flow layer {flow_ms['fused'] / flow_ms[f]:.2f}x, end to end "
          f"(median) {e2e['fused'] / e2e[f]:.2f}x, "
          f"(min) {min(times['fused']) / min(times[f]):.2f}x")
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--frames", type=int, default=4)
    p.add_argument("--size", type=int, nargs=2, default=(64, 64))
    p.add_argument("--iterations", type=int, default=40)
    p.add_argument("--rounds", type=int, default=30)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--forms", default=",".join(FORMS))
    p.add_argument("--profile", help="a form whose ORT op profile to print (with fused's)")
    p.add_argument("--in-network", metavar="FORM",
                   help="instead: compile --network -O1 with today's flow emission and with "
                        "FORM, and profile and time both model.onnx files in turn")
    p.add_argument("--network", default=str(ROOT / "examples" / "assemblenet50.asn"))
    p.add_argument("--profiles", type=int, default=6, help="profiles each (--in-network)")
    p.add_argument("--compile-with", nargs=2, metavar=("FORM", "OUT"), help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.compile_with:
        form, out = a.compile_with
        return _compile_with(form, out, a.network, a.frames, a.size)
    if a.in_network:
        return in_network(a)
    forms = a.forms.split(",")
    for f in ("fused", "reference"):
        if f not in forms:
            forms.insert(0, f)
    h, w = a.size
    x = clip(a.frames, h, w)
    models = {f: build(f, a.frames, h, w, a.iterations) for f in forms}
    sessions = {f: session(m, a.threads) for f, m in models.items()}
    outs = {f: np.asarray(s.run(None, {"x": x})[0]) for f, s in sessions.items()}
    # a second input for the differences: noise (every step branch, large gradients)
    noise = np.random.default_rng(1).random(x.shape, dtype=np.float32)
    outs2 = {f: np.asarray(s.run(None, {"x": noise})[0]) for f, s in sessions.items()}
    print(f"# one flow layer: B=1, T={a.frames}, {h}x{w}, {a.iterations} iterations; ONNX "
          f"Runtime {__import__('onnxruntime').__version__}, {a.threads} thread(s), "
          f"{a.rounds} interleaved rounds; max |flow| {np.abs(outs['fused']).max():.3f} (pattern), "
          f"{np.abs(outs2['fused']).max():.3f} (noise)")
    times: dict[str, list[float]] = {f: [] for f in forms}
    for r in range(a.rounds + 1):
        order = forms[r % len(forms):] + forms[:r % len(forms)]
        for f in order:
            t0 = time.perf_counter()
            sessions[f].run(None, {"x": x})
            if r:  # round 0 warms up
                times[f].append(time.perf_counter() - t0)
    med0, min0 = statistics.median(times["fused"]), min(times["fused"])
    print(f"{'form':<17}{'nodes/it':>9}{'vs fused':>10}{'vs ref':>10}{'median ms':>11}"
          f"{'min ms':>9}{'fused/form med':>16}{'min':>7}")
    for f in forms:
        n, _ = nodes_per_iteration(f)
        d_f = max(np.abs(o[f] - o["fused"]).max() for o in (outs, outs2))
        d_r = max(np.abs(o[f] - o["reference"]).max() for o in (outs, outs2))
        med, mn = statistics.median(times[f]), min(times[f])
        print(f"{f:<17}{n:>9}{d_f:>10.2e}{d_r:>10.2e}{1e3 * med:>11.2f}{1e3 * mn:>9.2f}"
              f"{med0 / med:>16.2f}{min0 / mn:>7.2f}")
    for f in forms:
        print(f"# {f}: {nodes_per_iteration(f)[1]}, {len(models[f].graph.node)} nodes in all")
    if a.profile:
        for f in ("fused", a.profile):
            prof = op_profile(models[f], x, a.threads)
            total = sum(t for t, _ in prof.values())
            print(f"\n# ORT node time by op type, {f}: {total / 1e3:.2f} ms a run")
            for op, (t, n) in prof.items():
                print(f"{op:<14}{n:>6} nodes{t / 1e3:>9.3f} ms{100 * t / total:>7.1f}%"
                      f"{t / n:>9.1f} us/node")
    return 0


if __name__ == "__main__":
    sys.exit(main())
