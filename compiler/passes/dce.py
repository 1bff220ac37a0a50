"""Dead-node elimination (exact, -O1).

A node is dead when no head can be reached from it (`compiler.graph.reachable_to_heads`,
which counts the peer-attention reads of `peer` mode: there every block reads every node of a
lower level, so only nodes at or above the heads' level can be dead). The reference builds
every node and counts its parameters, but a dead node cannot change the logits, so removing it
keeps the function.

Why this is exact, node by node:
- a dead node is never an input (nor a peer candidate) of a live node, so no live block's
  inputs, fusion, attention or channel widths change;
- stems are the exception: every RGB and flow stem is `128 // (number of stems)` wide, so
  removing a dead stem would change the other stems (and everything after them). A dead stem is
  removed only when the width stays the same (always in the lite variant, whose stems are 24
  wide); otherwise it is kept and reported with the reason;
- without flow stems the Representation Flow layer goes too (it only feeds flow stems);
- without object stems the `objects` setting is dropped (the model then takes no object input);
- the heads stay the same nodes (dead nodes are never heads; if the default heads would change,
  they are written out explicitly).
"""

from __future__ import annotations

import networkx as nx

from ...dsl.ir import Block, Stem
from ..analysis import analyse_graph, stem_width
from ..graph import reachable_to_heads
from .context import PassContext
from .registry import graph_pass
from .report import PassReport

__all__ = ["dead_node_elimination", "eliminate_dead_nodes"]

NAME = "dead-node-elimination"


def _implicit_heads(g: nx.DiGraph) -> list[str]:
    """The heads a network without a `heads` statement would get from these nodes."""
    hdr = g.graph["network"]
    order = sorted(g.nodes, key=lambda n: g.nodes[n]["index"])
    level3 = [n for n in order if isinstance(g.nodes[n]["ir"], Block)
              and g.nodes[n]["ir"].level == 3]
    return level3[:1] if hdr.variant == "lite" else level3


def _removable_stems(g: nx.DiGraph, dead_stems: list[str]) -> tuple[list[str], dict[str, str]]:
    """The dead stems whose removal keeps the stem width; the others with the reason."""
    hdr = g.graph["network"]
    stems = [g.nodes[n]["ir"] for n in g.nodes if isinstance(g.nodes[n]["ir"], Stem)]
    width = stem_width(hdr, stems)
    # Flow stems first: removing the last one also removes the Representation Flow layer.
    order = sorted(dead_stems, key=lambda n: (g.nodes[n]["ir"].type != "flow",
                                              g.nodes[n]["index"]))
    remove: list[str] = []
    for k in range(len(order), 0, -1):
        left = [s for s in stems if s.name not in order[:k]]
        if stem_width(hdr, left) == width:
            remove = order[:k]
            break
    kept = {}
    for n in dead_stems:
        if n not in remove:
            left = [s for s in stems if s.name not in remove and s.name != n]
            kept[n] = (f"does not reach a head, but removing it would change the stem width "
                       f"128 // {len(stems)} = {width} to 128 // {len(left)} = "
                       f"{stem_width(hdr, left)}, and so every other stem")
    return remove, kept


def eliminate_dead_nodes(g: nx.DiGraph, before=None) -> tuple[nx.DiGraph, list[dict],
                                                               list[dict], list[str]]:
    """Remove dead nodes from a copy of `g`.

    Parameters:
        g: the graph (not modified).
        before: `analyse_graph(g)` if already computed (for the removed nodes' numbers).

    Returns:
        `(new graph, removed_nodes, kept_nodes, notes)` as in `PassReport`.
    """
    live = reachable_to_heads(g)
    order = sorted(g.nodes, key=lambda n: g.nodes[n]["index"])
    dead = [n for n in order if n not in live]
    new = g.copy()
    if not dead:
        return new, [], [], []
    before = before if before is not None else analyse_graph(g)
    dead_stems = [n for n in dead if isinstance(g.nodes[n]["ir"], Stem)]
    remove_stems, kept = _removable_stems(g, dead_stems)
    remove = [n for n in dead if n not in kept]
    new.remove_nodes_from(remove)
    notes: list[str] = []
    removed = []
    for n in remove:
        s = before.node(n)
        removed.append({"name": n, "kind": s.kind, "type": s.type, "params": s.params,
                        "flops": s.flops})
    had_flow = any(g.nodes[n]["ir"].type == "flow" for n in g.nodes
                   if isinstance(g.nodes[n]["ir"], Stem))
    stems_left = [new.nodes[n]["ir"] for n in new.nodes if isinstance(new.nodes[n]["ir"], Stem)]
    if had_flow and not any(s.type == "flow" for s in stems_left):
        flow = next((s for s in before.nodes if s.kind == "flow_layer"), None)
        if flow is not None:
            removed.append({"name": flow.name, "kind": flow.kind, "type": flow.type,
                            "params": flow.params, "flops": flow.flops})
        notes.append("no flow stem is left: the Representation Flow layer is removed too")
    hdr = new.graph["network"]
    if hdr.object_classes is not None and not any(s.type == "object" for s in stems_left) \
            and any(s.type == "object" for s in (g.nodes[n]["ir"] for n in g.nodes)
                    if isinstance(s, Stem)):
        spans = {k: v for k, v in hdr.attr_spans.items() if k != "object_classes"}
        comments = {k: v for k, v in hdr.setting_comments.items() if k != "object_classes"}
        new.graph["network"] = hdr.model_copy(update={"object_classes": None,
                                                      "attr_spans": spans,
                                                      "setting_comments": comments})
        notes.append("no object stem is left: the `objects` setting is dropped (the model "
                     "takes no object input)")
    if new.graph.get("explicit_heads") is None and _implicit_heads(new) != list(g.graph["heads"]):
        new.graph["explicit_heads"] = list(g.graph["heads"])
        notes.append("the default heads would change: they are written out with `heads`")
    new.graph["heads"] = list(g.graph["heads"])
    kept_nodes = [{"name": n, "reason": r} for n, r in kept.items()]
    return new, removed, kept_nodes, notes


@graph_pass(NAME, opt_level=1, exact=True,
            description="remove blocks and stems that do not reach a head")
def dead_node_elimination(g: nx.DiGraph, ctx: PassContext) -> tuple[nx.DiGraph, PassReport]:
    """Remove blocks and stems from which no head can be reached (exact)."""
    new, removed, kept, notes = eliminate_dead_nodes(g, ctx.stats(g))
    return new, PassReport(NAME, True, removed_nodes=removed, kept_nodes=kept, notes=notes)
