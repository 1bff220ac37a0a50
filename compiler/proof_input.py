"""The input size `asnc compile` proves its passes at: the compile's own, or a smaller one
that meets every case the compile's size meets.

Why a smaller input can be as strong as the compile's own. An exact pass rewrites layer
forms and weights (`fold-batchnorm`, `fold-edge-weights`, `repflow-slices`) or the graph;
nothing it computes depends on the input size, so the network it produces has the same
layers and the same weights at every size. What the size changes is which *cases* the
network's spatial window ops meet. A window op along one axis (kernel k, stride s, padding
p_before and p_after, on n positions) computes every output position from k input
positions, some of which may be padding; call the numbers of taps that fall into the
padding before and after the input the position's *class*. Positions of one class compute
the same function of their window with the same taps zeroed, so a rewrite that changes
what some position computes changes it at every position of that class. If at a smaller
size every window op of the network has the same kernel, stride and padding and meets
exactly the same set of classes as at the compile size, every case in which a rewrite
could be wrong at the compile size occurs in the proof too, and a proof on random inputs
sees it. Frames and batch are kept as they are (temporal convolutions and the batch axis
are not reduced; `drop-padding-taps` depends on the frames, and the proof has the same),
and 1x1 convolutions, global pools, attention (spatial means) and dense layers have no
spatial classes.

Example: AssembleNet-50 at 224x224 is proved at 96x96, where each of its 5 stride-2 levels
has the same parity (so the same SAME paddings) and even the last level (3x3 instead of
7x7) still has a left border, an interior and a right border position for its 3x3 convs;
at 64x64 the last level is 2x2 (no interior position), so 64x64 compiles prove at 64x64.

Scope: the standard (4-D) variant built from the library's own modules, whose window ops
are listed here from SEMANTICS.md (`_Walk`). The lite variant and user modules (their
ops are not known here) prove at the compile size. The simulated node sizes must equal
`analysis.analyse`'s at both sizes, or the compile size is used (a list of ops here that
disagrees with the lowering's shapes proves nothing). `asnc compile --full-size-proofs`
keeps the compile's own size.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..dsl.ir import Block, Network, Stem
from .analysis import analyse, resize_factor
from .graph import build_graph, stable_topological_order

__all__ = ["ProofInput", "proof_input", "window_classes", "with_size", "SEARCH_LIMIT"]

SEARCH_LIMIT = 256  # sizes tried per axis (AssembleNet's 32x downsampling needs < 130)


def _ceil(a: int, b: int) -> int:
    return -(-a // b)


def window_classes(n: int, kernel: int, stride: int, before: int, after: int) -> frozenset:
    """The classes ``(taps in the padding before, taps in the padding after)`` that the
    output positions of a window op along one axis meet (n input positions)."""
    out = (n + before + after - kernel) // stride + 1
    if out < 1:
        return frozenset()

    def cls(i: int) -> tuple[int, int]:
        start = i * stride - before
        return min(kernel, max(0, -start)), min(kernel, max(0, start + kernel - n))

    # Positions before `left` reach the padding before, those from `right` on the padding
    # after (at most padding/stride + 1 each); any position between is of class (0, 0).
    left = min(out, _ceil(before, stride))
    right = max(left, min(out, (n - kernel + before) // stride + 1))
    found = {cls(i) for i in (*range(left), *range(right, out))}
    if right > left:
        found.add((0, 0))
    return frozenset(found)


def _same(n: int, kernel: int, stride: int) -> tuple[int, int]:
    """TF "SAME" padding (before, after) along one axis."""
    total = max((_ceil(n, stride) - 1) * stride + kernel - n, 0)
    return total // 2, total - total // 2


def _fixed(kernel: int) -> tuple[int, int]:
    """The reference's fixed padding of a strided conv (SEMANTICS.md, padding rules)."""
    return (kernel - 1) // 2, kernel - 1 - (kernel - 1) // 2


class _Walk:
    """Every spatial window op of a standard network at one input size, as
    ``(where, op, axis, kernel, stride, before, after, classes)``, and each node's (h, w)."""

    def __init__(self, net: Network, size: tuple[int, int], order: list[str]):
        self.ops: list[tuple] = []
        self.sizes: dict[str, tuple[int, int]] = {}
        nodes = {n.name: n for n in net.nodes}
        H, W = size
        stems = [n for n in net.nodes if isinstance(n, Stem)]
        if any(s.type == "flow" for s in stems):
            # the flow layer at full resolution: 3-tap image gradients (SAME), 2-tap forward
            # differences (SAME: zero after), the divergence's shifted 2-tap differences
            for op, k, pads in (("gradient", 3, None), ("forward", 2, None),
                                ("divergence", 2, (1, 0))):
                self._window("repflow", op, (H, W), k, 1, pads)
        for name in order:  # stable topological order, the same at every size
            ir = nodes[name]
            if isinstance(ir, Stem):
                self.sizes[name] = self._stem(name, ir, (H, W))
            else:
                self.sizes[name] = self._block(name, ir)

    def _window(self, where, op, hw, k, s, pads=None, fixed=False) -> tuple[int, int]:
        out = []
        for axis, n in enumerate(hw):
            before, after = pads if pads is not None else (_fixed(k) if fixed else
                                                            _same(n, k, s))
            self.ops.append((where, op, axis, k, s, before, after,
                             window_classes(n, k, s, before, after)))
            out.append((n + before + after - k) // s + 1)
        return out[0], out[1]

    def _stem(self, name: str, ir: Stem, hw) -> tuple[int, int]:
        if ir.type == "object":
            return self._window(name, "pool", hw, 4, 4)
        hw = self._window(name, "conv7", hw, 7, 2, fixed=True)
        return self._window(name, "pool", hw, 3 if ir.type == "rgb" else 2, 2)

    def _block(self, name: str, ir: Block) -> tuple[int, int]:
        ins = [self.sizes[i.source] for i in ir.inputs]
        h_min, w_min = min(s[0] for s in ins), min(s[1] for s in ins)
        if len(ins) == 1:
            hw = ins[0]
        else:
            pooled = []
            for slot, (h, w) in enumerate(ins):
                if (h, w) != (h_min, w_min):
                    r = resize_factor(h, h_min)
                    h, w = self._window(name, f"fusion{slot}", (h, w), r, r)
                pooled.append((h, w))
            hw = pooled[0]
        s = ir.stride
        # unit 0: its 3x3 conv and 1x1 shortcut carry the stride; the other units' 3x3
        # convs are stride 1, SAME, on the block's output size
        if s > 1:
            out = self._window(name, "conv3", hw, 3, s, fixed=True)
            self._window(name, "shortcut", hw, 1, s, fixed=True)
        else:
            out = self._window(name, "conv3", hw, 3, 1)
        self._window(name, "conv3 (units 1..)", out, 3, 1)
        return out


@dataclass(frozen=True)
class ProofInput:
    """Where the proofs run: ``size`` (h, w) and why (``reason``, for the report)."""

    size: tuple[int, int]
    compile_size: tuple[int, int]
    reason: str

    @property
    def reduced(self) -> bool:
        return self.size != self.compile_size

    def to_json(self) -> dict:
        return {"size": list(self.size), "compile_size": list(self.compile_size),
                "reduced": self.reduced, "reason": self.reason}


def with_size(net: Network, size: tuple[int, int]) -> Network:
    """``net`` with another input size (the same nodes)."""
    header = net.header.model_copy(update={"size": tuple(size)})
    return net.model_copy(update={"header": header})


def _unsupported(net: Network) -> str | None:
    if net.header.variant != "standard":
        return f"the {net.header.variant} variant's window ops are not listed here"
    for node in net.nodes:
        if isinstance(node, Block) and node.module not in ("bottleneck", "bottleneck3d"):
            return f"block `{node.name}` uses module `{node.module}`"
    return None


def proof_input(net: Network) -> ProofInput:
    """The smallest input size (frames and batch unchanged) whose window ops meet the same
    classes as ``net``'s own size (module docstring), or ``net``'s own size."""
    h, w = net.header.size
    size = (int(h), int(w))
    why_not = _unsupported(net)
    if why_not is not None:
        return ProofInput(size, size, f"the compile size ({why_not})")
    order = stable_topological_order(build_graph(net))  # the same at every size
    target = _Walk(net, size, order)
    if not _agrees(net, target):
        return ProofInput(size, size, "the compile size (the window ops listed here do not "
                                      "give the lowering's node sizes)")
    want = target.ops
    # each axis on its own first (the fusion's window follows the height), then together
    h = next((c for c in range(1, min(h, SEARCH_LIMIT + 1))
              if _Walk(net, (c, w), order).ops == want), h)
    w = next((c for c in range(1, min(w, SEARCH_LIMIT + 1))
              if _Walk(net, (h, c), order).ops == want), w)
    found = _Walk(net, (h, w), order)
    if (h, w) == size or found.ops != want or not _agrees(with_size(net, (h, w)), found):
        return ProofInput(size, size, "the compile size (no smaller size meets the same "
                                      "window cases)")
    return ProofInput((h, w), size, "the smallest size at which every spatial window op "
                                    "has the same kernel, stride and padding and meets the "
                                    "same border cases as at the compile size")


def _agrees(net: Network, walk: _Walk) -> bool:
    stats = analyse(net)
    return all(tuple(stats.node(n).shape[1:3]) == hw for n, hw in walk.sizes.items())
