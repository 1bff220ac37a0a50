"""Facts about an ONNX graph that tests check independently of the writer."""

from __future__ import annotations


def dead_nodes(graph) -> list:
    """Nodes from which no graph output can be reached (found here, not by the writer)."""
    wanted = {o.name for o in graph.output}
    live: list = []
    for node in reversed(graph.node):  # a topological order, walked backwards
        if wanted & set(node.output):
            live.append(node.name)
            wanted |= set(node.input)
    return [n for n in graph.node if n.name not in live]
