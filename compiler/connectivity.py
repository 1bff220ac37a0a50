"""Source-to-source helpers for the one-shot connectivity search. No TensorFlow.

`connect_all` makes a search space (every block reads every node of a lower level, the
AssembleNet paper's), `clear_weights` makes given connection weights learnable again,
and `with_weights` writes learned weights back into the IR so the printer can emit them.
Every function returns a new `Network` and leaves its argument alone; comments and
spans travel with the copied nodes.

Precondition: the network passed `validation.check` (names resolve, no cycle).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import networkx as nx

from ..dsl.ir import Block, Input, Network
from .graph import build_graph, node_level

__all__ = ["ConnectReport", "connect_all", "clear_weights", "learnable_blocks", "with_weights",
           "rounded_weight", "LEARNED_DIGITS"]

# Significant digits of a learned weight in a written `.asn`: readable, and far below what
# moves a logit (a rounding error of 5e-7 relative in a gate; float32 itself is 6e-8).
LEARNED_DIGITS = 6


class ConnectReport:
    """What `connect_all` did: edges added per block and edges skipped (they closed a cycle)."""

    def __init__(self) -> None:
        self.added: dict[str, list[str]] = {}
        self.skipped: list[tuple[str, str]] = []

    @property
    def edges_added(self) -> int:
        return sum(len(v) for v in self.added.values())

    def __repr__(self) -> str:
        return f"ConnectReport(added={self.edges_added}, skipped={len(self.skipped)})"


def _copy(net: Network) -> Network:
    # model_copy(deep=True) keeps the fields excluded from serialisation (spans, comments).
    return net.model_copy(deep=True)


def connect_all(net: Network) -> tuple[Network, ConnectReport]:
    """Every block also reads every node of a strictly lower level; all weights removed.

    Levels are the blocks' `level`; stems sit below level 0 (`graph.node_level`), so every
    block reads every stem. Existing inputs stay first, in their order; new ones follow in
    declaration order. An edge that would close a cycle (possible only when the source
    already has a block reading a higher level) is skipped and listed in the report.
    Returns ``(new network, report)``.
    """
    new = _copy(net)
    g = build_graph(new)
    report = ConnectReport()
    for block in new.blocks:
        have = {i.source for i in block.inputs}
        added = []
        for node in new.nodes:
            if node.name in have or node.name == block.name:
                continue
            if not node_level(node) < block.level:
                continue
            if nx.has_path(g, block.name, node.name):
                report.skipped.append((node.name, block.name))
                continue
            block.inputs.append(Input(source=node.name))
            g.add_edge(node.name, block.name)
            added.append(node.name)
        if added:
            report.added[block.name] = added
    return clear_weights(new), report


def clear_weights(net: Network) -> Network:
    """A copy with every connection weight set to None (learnable)."""
    new = _copy(net)
    for block in new.blocks:
        for inp in block.inputs:
            inp.weight = None
    return new


def learnable_blocks(net: Network) -> list[str]:
    """Blocks whose connection weights training learns: two or more inputs, no weights given.

    With ``combine concat`` there are no connection weights at all, so none.
    """
    if net.header.combine != "sigmoid":
        return []
    return [b.name for b in net.blocks if len(b.inputs) >= 2 and not b.weighted]


def with_weights(net: Network, weights: Mapping[str, Sequence[float]]) -> Network:
    """A copy with ``weights[block]`` (values after the sigmoid, in input order) written in.

    Blocks not in ``weights`` keep their inputs as they are. Raises ValueError for an
    unknown block, a single-input block, a count that does not match the block's inputs,
    or a value outside (0, 1).
    """
    new = _copy(net)
    blocks: dict[str, Block] = {b.name: b for b in new.blocks}
    for name, values in weights.items():
        if name not in blocks:
            raise ValueError(f"no block `{name}` in network `{net.header.name}`")
        block = blocks[name]
        if len(block.inputs) < 2:
            raise ValueError(f"block `{name}` has one input; a single input takes no weight")
        if len(values) != len(block.inputs):
            raise ValueError(f"block `{name}` has {len(block.inputs)} inputs, got "
                             f"{len(values)} weights")
        for inp, w in zip(block.inputs, values):
            w = float(w)
            if not 0.0 < w < 1.0:
                raise ValueError(f"weight {w!r} of `{inp.source}` -> `{name}` is outside (0, 1)")
            inp.weight = w
    return new


def rounded_weight(w: float, digits: int = LEARNED_DIGITS) -> float:
    """``w`` in (0, 1) to ``digits`` significant digits, with more digits where fewer would
    round onto 0 or 1 (a sigmoid saturating in float32), so the result stays a valid weight."""
    for d in range(digits, 18):
        r = float(f"{w:.{d}g}")
        if 0.0 < r < 1.0:
            return r
    return float(w)
