"""IR -> networkx DAG.

Nodes are keyed by name and carry `ir` (the Stem/Block) and `index` (declaration
order). An edge `src -> dst` carries `slot` (its position among dst's inputs) and
`weight` (after sigmoid, or None: learnable). Precondition: names are unique and every
input names a declared node (`validation.check_names` reports the rest first).
"""

from __future__ import annotations

import networkx as nx

from ..dsl.ir import Block, Network, Stem

__all__ = ["build_graph", "stable_topological_order", "stem_level", "node_level",
           "reachable_to_heads"]

# Stems sit below level 0, in the order AssembleNet++ lists peer candidates.
_STEM_LEVEL = {"object": -3, "flow": -2, "rgb": -1}


def stem_level(stem: Stem) -> int:
    return _STEM_LEVEL[stem.type]


def node_level(node: Stem | Block) -> int:
    return stem_level(node) if isinstance(node, Stem) else node.level


def build_graph(net: Network) -> nx.DiGraph:
    g: nx.DiGraph = nx.DiGraph(network=net.header, heads=net.head_names(), explicit_heads=net.heads)
    for index, node in enumerate(net.nodes):
        g.add_node(node.name, ir=node, index=index)
    for node in net.nodes:
        if isinstance(node, Block):
            for slot, inp in enumerate(node.inputs):
                g.add_edge(inp.source, node.name, slot=slot, weight=inp.weight)
    return g


def stable_topological_order(g: nx.DiGraph) -> list[str]:
    """Topological order that keeps declaration order wherever the edges allow it."""
    return list(nx.lexicographical_topological_sort(g, key=lambda n: g.nodes[n]["index"]))


def reachable_to_heads(g: nx.DiGraph) -> set[str]:
    """Every node from which some head can be reached (heads included), peer edges counted.

    One backward search from all heads at once, linear in the graph: the edges peer attention
    adds (in `peer` mode every block reads, through its peer candidates, every node of a lower
    level) are followed without being built, by keeping every node below the highest level of
    a block reached so far.
    """
    peer = g.graph["network"].attention == "peer"
    by_level = sorted(g.nodes, key=lambda n: node_level(g.nodes[n]["ir"])) if peer else []
    covered = 0  # by_level[:covered] are kept already
    keep: set[str] = set()
    stack = [h for h in g.graph["heads"] if h in g]
    keep.update(stack)
    while stack:
        n = stack.pop()
        for p in g.predecessors(n):
            if p not in keep:
                keep.add(p)
                stack.append(p)
        ir = g.nodes[n]["ir"]
        if peer and isinstance(ir, Block):
            while covered < len(by_level) and node_level(g.nodes[by_level[covered]]["ir"]) \
                    < ir.level:
                m = by_level[covered]
                covered += 1
                if m not in keep:
                    keep.add(m)
                    stack.append(m)
    return keep
