"""`fold-edge-weights`: where each connection weight goes when it is folded away.

A block with k >= 2 inputs computes ``F = sum_i w_i x_i`` (inputs of another channel count
summed per group and sent through that group's 1x1 conv first) and reads ``F`` only with
linear convs (unit 0's shortcut and first conv). Write ``w_e = s_p * y_c * r_e`` for the edge
``e`` from producer ``p`` into the input group ``c`` of a block:

* ``s_p`` scales the producer's output: a bottleneck block carries the factor along its
  residual stream (ReLU and max-pool commute with a positive factor), a stem puts it in its
  last conv;
* ``y_c`` is folded into what follows the sum: for the group that sets the width, into the
  block's first convs (``t_b``); for another group, into that group's 1x1 conv as well
  (``q = y_c / t_b``);
* ``r_e`` is what is left: a constant multiply in the fusion, 1 (no multiply) for every edge
  of a spanning forest of the producer / input-group graph.

A block with one input has ``w = 1`` (it must undo its producer's ``s_p``). Fixed at 1: object
stems and user or lite modules (nothing to scale) and the head's inputs (the head is left
as is), and a producer read by a fixed block with one input. The plan is exact in real
arithmetic; the compile checks it in float32 like every exact pass.

This module is the front end's half (no TensorFlow): the backend calls `plan_edge_folding`
with the weights its model really holds (sigmoid of the stored logits, trained or fixed).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Mapping

import networkx as nx

from ...dsl.ir import Block, Stem

__all__ = ["EdgeFoldPlan", "edge_fold_blocker", "plan_edge_folding", "SCALE_RANGE",
           "SCALABLE_MODULES"]

SCALABLE_MODULES = ("bottleneck", "bottleneck3d")
# A scale outside this range is not propagated (that edge keeps a multiply instead), so no
# intermediate tensor drifts towards float32 overflow or denormals.
SCALE_RANGE = (1e-4, 1e4)


def edge_fold_blocker(g: nx.DiGraph) -> str | None:
    """Why the pass cannot apply to this network, or None."""
    hdr = g.graph["network"]
    if hdr.variant == "lite":
        return "the lite variant's blocks keep their connection weights"
    if hdr.combine == "concat":
        return "concat fusion has no connection weights"
    if hdr.attention != "none":
        return (f"{hdr.attention} attention sits between the connection weights and the sum, "
                "and does not commute with a scale")
    return None


@dataclass
class EdgeFoldPlan:
    """Factors of `fold-edge-weights` (see the module docstring); 1 where absent."""

    producer_scale: dict[str, float] = field(default_factory=dict)
    input_scale: dict[str, float] = field(default_factory=dict)
    group_scale: dict[str, dict[int, float]] = field(default_factory=dict)
    residual: dict[str, list[float]] = field(default_factory=dict)
    folded_edges: int = 0
    remaining_edges: int = 0

    def to_json(self) -> dict:
        return {"folded_edges": self.folded_edges, "remaining_multiplies": self.remaining_edges,
                "scaled_producers": len(self.producer_scale),
                "scaled_blocks": len(self.input_scale)}


def _fixed_module(ir) -> bool:
    return isinstance(ir, Block) and ir.module not in SCALABLE_MODULES


def plan_edge_folding(g: nx.DiGraph, weights: Mapping[tuple[str, str], float],
                      channels: Mapping[str, int]) -> EdgeFoldPlan:
    """The factors for the network of ``g``.

    Parameters:
        g: the graph (`build_graph`) the backend lowers; `edge_fold_blocker(g)` must be None.
        weights: ``(source, block) -> weight`` (after the sigmoid, > 0) of every input of every
            block with k >= 2 inputs.
        channels: output channel count of every node.
    """
    blocker = edge_fold_blocker(g)
    if blocker is not None:
        raise ValueError(f"fold-edge-weights does not apply: {blocker}")
    irs = {n: g.nodes[n]["ir"] for n in g.nodes}
    order = sorted(g.nodes, key=lambda n: g.nodes[n]["index"])
    heads = set(g.graph.get("heads") or ())

    # Equations: one per edge, between a producer ("p", node) and an input group ("c", block,
    # width); value(p) * value(c) = w.
    edges: list[tuple[tuple, tuple, float]] = []
    fixed: dict[tuple, float] = {}
    for n in order:
        ir = irs[n]
        if (isinstance(ir, Stem) and ir.type == "object") or _fixed_module(ir) or n in heads:
            fixed[("p", n)] = 1.0
    for b in order:
        ir = irs[b]
        if not isinstance(ir, Block):
            continue
        preds = [inp.source for inp in ir.inputs]
        if len(preds) == 1:
            edges.append((("p", preds[0]), ("c", b, None), 1.0))
            if _fixed_module(ir):
                fixed[("c", b, None)] = 1.0
                fixed[("p", preds[0])] = 1.0  # nothing could undo its scale
            continue
        widths = [channels[p] for p in preds]
        excluded = [isinstance(irs[p], Stem) and irs[p].type == "object" for p in preds]
        target = max(c for c, e in zip(widths, excluded) if not e)
        for p, c in zip(preds, widths):
            w = float(weights[(p, b)])
            if not w > 0:
                raise ValueError(f"connection weight {p} -> {b} must be > 0, got {w}")
            edges.append((("p", p), ("c", b, None if c == target else c), w))
        if _fixed_module(ir):
            fixed[("c", b, None)] = 1.0

    adjacency: dict[tuple, list[int]] = {}
    for i, (u, v, _) in enumerate(edges):
        adjacency.setdefault(u, []).append(i)
        adjacency.setdefault(v, []).append(i)
    value: dict[tuple, float] = dict(fixed)
    tree: set[int] = set()
    lo, hi = SCALE_RANGE

    def spread(roots):
        queue = deque(roots)
        while queue:
            node = queue.popleft()
            for i in adjacency.get(node, ()):
                u, v, w = edges[i]
                other = v if node == u else u
                if other in value:
                    continue
                x = w / value[node]
                if not lo <= x <= hi:
                    continue
                value[other] = x
                tree.add(i)
                queue.append(other)

    spread([k for k in adjacency if k in fixed])
    for u, v, _ in edges:  # components without a fixed node: root at 1
        for node in (u, v):
            if node not in value:
                value[node] = 1.0
                spread([node])

    plan = EdgeFoldPlan()
    for n in order:
        s = value.get(("p", n), 1.0)
        if s != 1.0:
            plan.producer_scale[n] = s
    for b in order:
        ir = irs[b]
        if not isinstance(ir, Block):
            continue
        t = value[("c", b, None)]
        if t != 1.0:
            plan.input_scale[b] = t
        preds = [inp.source for inp in ir.inputs]
        if len(preds) == 1:
            continue
        groups: dict[int, float] = {}
        residual: list[float] = []
        for p in preds:
            k = next(k for k in adjacency[("p", p)] if edges[k][1][1] == b)
            _, group, w = edges[k]
            if group[2] is not None:
                groups[group[2]] = value[group] / t
            if k in tree:
                residual.append(1.0)
                plan.folded_edges += 1
            else:
                r = w / (value[("p", p)] * value[group])
                if abs(r - 1.0) <= 1e-12:  # a consistent cycle: rounding, not a weight
                    r = 1.0
                residual.append(r)
                if r == 1.0:
                    plan.folded_edges += 1
                else:
                    plan.remaining_edges += 1
        plan.residual[b] = residual
        if groups:
            plan.group_scale[b] = groups
    return plan
