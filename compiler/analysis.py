"""Static shape, parameter and FLOP inference. No TensorFlow.

The counts are exact: they equal Keras `count_params()` of the lowered model, layer for
layer (SEMANTICS.md gives every formula). Batch norm counts four values per channel
(gamma and beta trainable, moving mean and variance not). FLOPs count two per
multiply-accumulate of every convolution and dense layer, for one clip (batch 1); the
Representation Flow layer is estimated per pixel and iteration (FLOW_FLOPS_PER_PIXEL).

Precondition: names resolve and the graph has no cycle (`validation.check` checks both first).
"""

from __future__ import annotations

import bisect
import heapq
import math
from dataclasses import asdict, dataclass, field

import networkx as nx

from ..dsl.ir import INTER_CHANNELS, Block, Network, Stem
from ..dsl.perf import paused_gc
from .graph import build_graph, node_level, stable_topological_order

__all__ = ["NodeStats", "NetworkStats", "CountRules", "analyse", "analyse_graph", "ShapeError",
           "resize_factor", "peer_candidates", "PeerTable", "fusion_target", "stem_width",
           "FLOW_PARAMS", "LITE_STEM_WIDTH", "LITE_HEAD_WIDTHS", "centre_tap_only"]

FLOW_PARAMS = 16  # fixed difference kernels (14 values) + lambda + tau, all non-trainable
FLOW_FLOPS_PER_PIXEL = 96  # per iteration, per frame pair: differences, divergence, updates
LITE_STEM_WIDTH = 24
LITE_HEAD_WIDTHS = (432, 2048)


class ShapeError(ValueError):
    """A node's inputs cannot be combined; `node` and `message` say which and why.

    `errors`: every such problem the analysis found, this one first. It goes on past a block
    it cannot fuse (skipping the blocks fed by it), so which problems are reported does not
    depend on the order in which independent blocks were declared.
    """

    def __init__(self, node: str, message: str, slot: int | None = None):
        super().__init__(message)
        self.node, self.message, self.slot = node, message, slot
        self.errors: list[ShapeError] = [self]


@dataclass(frozen=True)
class CountRules:
    """How the built model stores what these counts count. The reference form is the
    default; each backend pass that applied says what it changes (its `counting`, in
    `compiler.passes.backend`), so the counts never name a pass.

    Attributes:
        batchnorm_as_bias: a batch norm of C channels is C conv biases (not 4C values).
        edge_weight_variables: a multi-input sum block holds its k connection logits.
        padding_taps: a temporal conv whose dilation is at least the clip's frames keeps
            its off-centre taps, which read only zero padding (False: its centre tap only).
    """

    batchnorm_as_bias: bool = False
    edge_weight_variables: bool = True
    padding_taps: bool = True


@dataclass
class Count:
    trainable: int = 0
    non_trainable: int = 0
    flops: int = 0
    rules: CountRules = CountRules()

    def add(self, trainable: int = 0, non_trainable: int = 0, flops: int = 0) -> "Count":
        self.trainable += trainable
        self.non_trainable += non_trainable
        self.flops += flops
        return self

    def bn(self, channels: int, elements: int = 0) -> "Count":
        if self.rules.batchnorm_as_bias:
            return self.add(channels, 0)
        return self.add(2 * channels, 2 * channels)

    def conv(self, kernel_elems: int, c_in: int, c_out: int, out_positions: int) -> "Count":
        return self.add(kernel_elems * c_in * c_out, 0, 2 * kernel_elems * c_in * c_out *
                        out_positions)

    def dense(self, c_in: int, c_out: int, applications: int) -> "Count":
        return self.add(c_in * c_out + c_out, 0, 2 * c_in * c_out * applications)

    @property
    def total(self) -> int:
        return self.trainable + self.non_trainable


@dataclass
class NodeStats:
    name: str
    kind: str  # "stem" | "block" | "flow_layer" | "head"
    shape: tuple[int, int, int, int]  # (T, H, W, C); heads: (classes,) padded as (1, 1, 1, K)
    trainable: int
    non_trainable: int
    flops: int
    breakdown: dict[str, int] = field(default_factory=dict)  # params per part
    type: str = ""  # stem type or block module

    @property
    def params(self) -> int:
        return self.trainable + self.non_trainable

    def to_json(self) -> dict:
        d = asdict(self)
        d["shape"] = list(self.shape)
        d["params"] = self.params
        return d


@dataclass
class NetworkStats:
    network: str
    nodes: list[NodeStats]
    frames: int
    size: tuple[int, int]
    classes: int
    _index: dict[str, int] | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def trainable(self) -> int:
        return sum(n.trainable for n in self.nodes)

    @property
    def non_trainable(self) -> int:
        return sum(n.non_trainable for n in self.nodes)

    @property
    def total(self) -> int:
        return self.trainable + self.non_trainable

    @property
    def flops(self) -> int:
        return sum(n.flops for n in self.nodes)

    def node(self, name: str) -> NodeStats:
        # an index, built on first use and again when `nodes` changed: a scan per call made
        # callers that look up every node quadratic
        index = self._index
        i = index.get(name, -1) if index is not None else -1
        if not (0 <= i < len(self.nodes) and self.nodes[i].name == name):
            index = self._index = {n.name: k for k, n in enumerate(self.nodes)}
            i = index.get(name, -1)
        if i < 0:
            raise KeyError(name)
        return self.nodes[i]

    def to_json(self) -> dict:
        return {
            "network": self.network,
            "input": {"frames": self.frames, "size": list(self.size), "classes": self.classes},
            "params": {"total": self.total, "trainable": self.trainable,
                       "non_trainable": self.non_trainable},
            "flops": self.flops,
            "nodes": [n.to_json() for n in self.nodes],
        }


def _ceil(a: int, b: int) -> int:
    return -(-a // b)


def stem_width(net_header, stems: list[Stem]) -> int:
    if net_header.variant == "lite":
        return LITE_STEM_WIDTH
    return 128 // max(1, len(stems))


def resize_factor(h: int, h_min: int) -> int:
    """The max-pool window and stride that brings height h down to h_min (height decides)."""
    return (h + 1) // h_min


def fusion_target(channels: list[int], excluded: list[bool]) -> int | None:
    """L_c: the widest input that is not excluded (object stems), or None."""
    widths = [c for c, ex in zip(channels, excluded) if not ex]
    return max(widths) if widths else None


class PeerTable:
    """Every block's peer candidates from one sort of the graph's nodes: a block's candidates
    are a prefix of that order, so a count costs a bisection and the list its own length (a
    sort per block made drawing a 5,000-block peer network quadratic)."""

    def __init__(self, g: nx.DiGraph):
        self._g = g
        self._order = sorted(g.nodes, key=lambda n: (node_level(g.nodes[n]["ir"]),
                                                     g.nodes[n]["index"]))
        self._levels = [node_level(g.nodes[n]["ir"]) for n in self._order]

    def count(self, block: str) -> int:
        return bisect.bisect_left(self._levels, self._g.nodes[block]["ir"].level)

    def __call__(self, block: str) -> list[str]:
        return self._order[:self.count(block)]


def peer_candidates(g: nx.DiGraph, block: str) -> list[str]:
    """Every node below the block's level (stems included), by level then declaration index.
    For many blocks of one graph, make one `PeerTable`."""
    return PeerTable(g)(block)


def centre_tap_only(dilation: int, frames: int) -> bool:
    """Whether a temporal conv of kernel 3, dilation ``dilation``, SAME over ``frames``
    frames reads real frames with its centre tap only: frame t's other taps are t-d and
    t+d, both outside 0..T-1 for every t exactly when d >= T."""
    return dilation >= frames


def _bottleneck(c: Count, c_in: int, filters: int, inter: int, units: int, stride: int,
                t: int, h: int, w: int, three_d: bool, dilation: int = 1) -> tuple[int, int]:
    """A (2+1)D (or 3-D) bottleneck block group; returns the output (h, w)."""
    out_c = 4 * filters
    taps = 3 if c.rules.padding_taps or not centre_tap_only(dilation, t) else 1
    ho, wo = _ceil(h, stride), _ceil(w, stride)
    pos_in, pos_out = t * h * w, t * ho * wo
    # unit 0's projection shortcut: 1x1, stride s, to 4F
    c.conv(1, c_in, out_c, pos_out).bn(out_c)
    for i in range(units):
        cin = c_in if i == 0 else out_c
        first_pos = pos_in if i == 0 else pos_out
        if i % 2 == 1 and not three_d:
            c.conv(taps, cin, filters, first_pos).bn(filters)  # temporal conv, kernel 3
        else:
            c.conv(1, cin, filters, first_pos).bn(filters)
        c.conv(27 if three_d else 9, filters, inter, pos_out).bn(inter)
        c.conv(1, inter, out_c, pos_out).bn(out_c)
    return ho, wo


def _inverted_bottleneck(c: Count, c_in: int, f: tuple[int, int, int], units: int, stride: int,
                         t: int, h: int, w: int) -> tuple[int, int]:
    f0, f1, f2 = f
    ho, wo = _ceil(h, stride), _ceil(w, stride)
    pos_in, pos_out = t * h * w, t * ho * wo
    c.conv(1, c_in, f2, pos_out).bn(f2)  # shortcut, first unit only
    for i in range(units):
        cin = c_in if i == 0 else f2
        s = stride if i == 0 else 1
        c.conv(1, cin, f0, pos_in if i == 0 else pos_out).bn(f0)
        if s > 1:
            c.conv(9, f0, f1, pos_out).bn(f1)
            c.conv(3, f1, f1, pos_out).bn(f1)
        else:
            c.conv(27, f0, f1, pos_out).bn(f1)
        c.conv(1, f1, f2, pos_out).bn(f2)
    return ho, wo


def _user_module(block: Block, c_in: int, units: int, t: int, h: int, w: int):
    from .usermodule import static_info  # imports the user's package, never TensorFlow itself
    return static_info(block, c_in, units, (t, h, w))


def analyse(net: Network, rules: CountRules = CountRules()) -> NetworkStats:
    return analyse_graph(build_graph(net), rules)


def analyse_graph(g: nx.DiGraph, rules: CountRules = CountRules()) -> NetworkStats:
    """Per-node shapes, parameters and FLOPs; raises ShapeError where inputs cannot fuse.

    `rules`: the figures of the reference form by default; `LoweringForm.count_rules()`
    gives those of a model built with backend passes applied.
    """
    with paused_gc():
        return _analyse_graph(g, rules)


def _analyse_graph(g: nx.DiGraph, rules: CountRules) -> NetworkStats:
    hdr = g.graph["network"]
    T, (H, W), K = hdr.frames, hdr.size, hdr.classes
    irs = {n: g.nodes[n]["ir"] for n in g.nodes}
    stems = [ir for ir in irs.values() if isinstance(ir, Stem)]
    S = stem_width(hdr, stems)
    mode = hdr.attention
    shapes: dict[str, tuple[int, int, int, int]] = {}
    stats: dict[str, NodeStats] = {}
    extra: list[NodeStats] = []
    peer = mode == "peer" and hdr.combine != "concat"
    # peer attention: per level, (count, sum, max) of the channels of the nodes analysed so far;
    # the order below analyses every node of a lower level before each block
    widths_by_level: dict[int, list[int]] = {}

    if any(s.type == "flow" for s in stems):
        extra.append(NodeStats("repflow", "flow_layer", (T, H, W, 2), 0, FLOW_PARAMS,
                               FLOW_FLOPS_PER_PIXEL * hdr.iterations * max(T - 1, 0) * H * W,
                               {"fixed": FLOW_PARAMS}, "representation_flow"))

    errors: list[ShapeError] = []
    for name in (_peer_order(g) if peer else stable_topological_order(g)):
        ir = irs[name]
        if not isinstance(ir, Stem) and any(i.source not in shapes for i in ir.inputs):
            continue  # an input of this block could not be fused: nothing to check here
        try:
            shapes[name], stats[name] = _analyse_node(
                name, ir, hdr, S, shapes, irs, rules, widths_by_level, peer)
        except ShapeError as exc:
            errors.append(exc)
    if errors:
        errors[0].errors = errors
        raise errors[0]

    heads = g.graph["heads"]
    if heads:
        extra.append(_head(hdr, [shapes[h] for h in heads], K, T, rules))
    ordered = [stats[n] for n in sorted(stats, key=lambda n: g.nodes[n]["index"])]
    flow = [e for e in extra if e.kind == "flow_layer"]
    head = [e for e in extra if e.kind == "head"]
    return NetworkStats(hdr.name, flow + ordered + head, T, (H, W), K)


def _analyse_node(name: str, ir, hdr, S: int, shapes: dict[str, tuple[int, int, int, int]],
                  irs: dict, rules: CountRules, widths_by_level: dict[int, list[int]],
                  peer: bool) -> tuple[tuple[int, int, int, int], NodeStats]:
    """One node's output shape and figures from its inputs' shapes (`_analyse_graph`);
    raises ShapeError where its inputs cannot be fused."""
    T, (H, W) = hdr.frames, hdr.size
    units, mode = hdr.units, hdr.attention
    c = Count(rules=rules)
    if isinstance(ir, Stem):
        shape = _stem(c, ir, hdr, S, T, H, W)
        if peer:
            _count_width(widths_by_level, node_level(ir), shape[3])
        return shape, NodeStats(name, "stem", shape, c.trainable, c.non_trainable, c.flops,
                                {"stem": c.total}, ir.type)
    preds = [inp.source for inp in ir.inputs]
    in_shapes = [shapes[p] for p in preds]
    breakdown: dict[str, int] = {}
    # -- connection fusion
    h_min = min(s[1] for s in in_shapes)
    w_min = min(s[2] for s in in_shapes)
    for slot, (p, s) in enumerate(zip(preds, in_shapes)):
        if (s[1], s[2]) != (h_min, w_min):
            r = resize_factor(s[1], h_min)
            got = (_ceil(s[1], r), _ceil(s[2], r))
            if got != (h_min, w_min):
                raise ShapeError(name, f"input `{p}` ({s[1]}x{s[2]}) cannot be max-pooled "
                                 f"to {h_min}x{w_min}: a window of {r} gives "
                                 f"{got[0]}x{got[1]}", slot)
    fc = Count(rules=rules)
    channels = [s[3] for s in in_shapes]
    k = len(preds)
    if mode != "none" and hdr.combine != "concat":
        _attention(fc, ir.level, in_shapes, widths_by_level, mode, T)
    if k == 1:
        c_in = channels[0]
    elif hdr.combine == "concat":
        c_in = sum(channels)
    else:
        learn = any(inp.weight is None for inp in ir.inputs)
        if rules.edge_weight_variables:
            fc.add(k if learn else 0, 0 if learn else k)
        excluded = [isinstance(irs[p], Stem) and irs[p].type == "object" for p in preds]
        lc = fusion_target(channels, excluded)
        if lc is None:
            raise ShapeError(name, "every input is an object stem: no channel count to "
                             "fuse to")
        for width in dict.fromkeys(channels):  # groups in order of first appearance
            if width != lc:
                fc.conv(1, width, lc, T * h_min * w_min)
        c_in = lc
    breakdown["fusion"] = fc.total
    c.add(fc.trainable, fc.non_trainable, fc.flops)
    # -- the block itself
    bc = Count(rules=rules)
    L = ir.level
    if ir.module in ("bottleneck", "bottleneck3d"):
        ho, wo = _bottleneck(bc, c_in, ir.filters, INTER_CHANNELS[L], units[L], ir.stride, T,
                             h_min, w_min, ir.module == "bottleneck3d", ir.dilation)
        c_out = 4 * ir.filters
    elif ir.module == "lite":
        ho, wo = _inverted_bottleneck(bc, c_in, ir.filters, units[L], ir.stride, T, h_min,
                                      w_min)
        c_out = ir.filters[2]
    else:
        info = _user_module(ir, c_in, units[L], T, h_min, w_min)
        ho, wo, c_out = info.height, info.width, info.channels
        bc.add(info.trainable, info.non_trainable, info.flops)
    breakdown["block"] = bc.total
    c.add(bc.trainable, bc.non_trainable, bc.flops)
    shape = (T, ho, wo, c_out)
    if peer:
        _count_width(widths_by_level, L, c_out)
    return shape, NodeStats(name, "block", shape, c.trainable, c.non_trainable, c.flops,
                            breakdown, ir.module)


def _stem(c: Count, ir: Stem, hdr, S: int, T: int, H: int, W: int):
    if ir.type == "object":
        return (T, _ceil(H, 4), _ceil(W, 4), hdr.object_classes or 0)
    c_in = 3 if ir.type == "rgb" else 2
    if hdr.variant == "lite":
        h, w = _ceil(H, 2), _ceil(W, 2)
        c.conv(9, c_in, S, T * h * w).bn(S)
        c.conv(3, S, S, T * h * w).bn(S)
        return (T, h, w, S)
    h, w = _ceil(H, 2), _ceil(W, 2)
    c.conv(49, c_in, S, T * h * w).bn(S)
    if ir.type == "rgb":
        c.conv(5, S, S, T * h * w).bn(S)
    return (T, _ceil(h, 2), _ceil(w, 2), S)


def _count_width(widths_by_level: dict[int, list[int]], level: int, channels: int) -> None:
    agg = widths_by_level.setdefault(level, [0, 0, 0])  # count, sum, max
    agg[0] += 1
    agg[1] += channels
    agg[2] = max(agg[2], channels)


def _attention(fc: Count, level: int, in_shapes, widths_by_level: dict[int, list[int]],
               mode: str, T: int) -> None:
    """Self- or peer-attention on every connection of the block (AssembleNet++).

    Peer: every node of a lower level (`peer_candidates`) is projected to P channels, the
    widest candidate, by a dense layer fresh per block; each connection then has one logit
    per candidate and a dense layer from P to its own width. The per-level totals make this
    O(levels) per block instead of O(nodes).
    """
    if mode == "self":
        for s in in_shapes:
            fc.dense(s[3], s[3], T)
        return
    below = [agg for lvl, agg in widths_by_level.items() if lvl < level]
    count = sum(a[0] for a in below)
    if not count:
        return
    total = sum(a[1] for a in below)
    P = max(a[2] for a in below)
    # sum over candidates of dense(c_n, P): c_n * P weights + P biases, 2 c_n P T flops
    fc.add(P * total + P * count, 0, 2 * total * P * T)
    for s in in_shapes:
        fc.add(count)  # the softmax logits z, one per candidate
        fc.dense(P, s[3], T)


def _peer_order(g: nx.DiGraph) -> list[str]:
    """A topological order in which, as peer attention needs, every block also comes after
    every node of a lower level (its peer candidates); among the nodes free to go next, the
    earliest declared. Raises ShapeError when a lower level depends on a block."""
    ir = {n: g.nodes[n]["ir"] for n in g}
    index = {n: g.nodes[n]["index"] for n in g}
    level = {n: node_level(ir[n]) for n in g}
    indegree = {n: g.in_degree(n) for n in g}
    remaining: dict[int, int] = {}
    for lvl in level.values():
        remaining[lvl] = remaining.get(lvl, 0) + 1
    levels = sorted(remaining)
    li = 0
    frontier: float = levels[0] if levels else 0  # every level below it is done
    ready: list[tuple[int, str]] = []
    parked: dict[int, list[str]] = {}  # level -> blocks waiting for lower levels

    def offer(n: str) -> None:
        if isinstance(ir[n], Block) and level[n] > frontier:
            parked.setdefault(level[n], []).append(n)
        else:
            heapq.heappush(ready, (index[n], n))

    for n in g:
        if indegree[n] == 0:
            offer(n)
    order: list[str] = []
    while ready:
        _, n = heapq.heappop(ready)
        order.append(n)
        remaining[level[n]] -= 1
        for succ in g.successors(n):
            indegree[succ] -= 1
            if indegree[succ] == 0:
                offer(succ)
        while li < len(levels) and remaining[levels[li]] == 0:
            li += 1
        new: float = levels[li] if li < len(levels) else math.inf
        if new > frontier:
            frontier = new
            for lvl in sorted(k for k in parked if k <= frontier):
                for m in parked.pop(lvl):
                    heapq.heappush(ready, (index[m], m))
    if len(order) != len(g):
        placed = set(order)
        stuck = min((n for n in g if n not in placed), key=lambda n: index[n])
        raise ShapeError(stuck, "peer attention needs every node of a lower level first, "
                         "but one of them depends on this block")
    return order


def _head(hdr, head_shapes: list, K: int, T: int, rules: CountRules) -> NodeStats:
    c = Count(rules=rules)
    C = head_shapes[0][3]
    per_frame = hdr.head_pool == "max"
    if hdr.variant == "lite":
        _, h, w, _ = head_shapes[0]
        a, b = LITE_HEAD_WIDTHS
        c.conv(1, C, a, T * h * w).bn(a)
        c.conv(1, a, b, T * h * w).bn(b)
        c.dense(b, K, T if per_frame else 1)
        width = b
    else:
        c.dense(C, K, T if per_frame else 1)
        width = C
    return NodeStats("head", "head", (1, 1, 1, K), c.trainable, c.non_trainable, c.flops,
                     {"head": c.total, "features": width}, hdr.variant)


