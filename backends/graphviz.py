"""Connectivity diagrams (`asnc viz`): a network as a `graphviz.Digraph`, rendered with `dot`.

Layout, left to right: a column per kind of node, each under its header (Stems, Level 0..3,
Classifier). Each node shows its name, module, filters, temporal dilation, stride, output shape
`T x H x W x C` (from `compiler.analysis`) and parameters. An edge is as wide as its connection
weight; a block of two or more inputs has an input cell (a port) per connection, which prints
the weight, and each edge ends at its own cell: where edges cross, no weight is read off the
wrong edge (mid-edge labels were, and head labels crowded where edges converge); learnable
edges are dotted. With a prune threshold / top-k, what `asnc opt -O2` with those
settings removes is drawn dashed grey (edges) or with a dashed outline (blocks it leaves dead),
and the title counts the pruned network. In `peer` attention mode, `peer_edges` draws the
peer-attention reads as a light bus per level: every node feeds the bus of the level above it,
and the bus feeds every block of its level (one edge per candidate and per block, not one per
pair). The caption below the drawing holds the title and a legend of what the picture uses.

Layout stability: the pruned picture is the unpruned one with other colours, styles, cell
texts (fixed-size cells) and caption, none of which takes part in dot's layout (the caption is
the graph label, below the drawing); so before and after have the same node positions,
measured from the top-left corner.
"""

from __future__ import annotations

import re
import shutil
from html import escape
from dataclasses import dataclass

import graphviz  # type: ignore[import-untyped]
import networkx as nx
from graphviz import ExecutableNotFound

from ..compiler.analysis import NetworkStats, PeerTable, analyse, analyse_graph
from ..compiler.graph import build_graph, reachable_to_heads
from ..dsl.ir import Block, Network, Stem
from .graphviz_caption import Caption, EdgeKey, NodeKey, html_caption

__all__ = ["to_graph", "to_dot", "render", "find_dot", "FORMATS", "HEAD_ID", "RenderError",
           "ExecutableNotFound"]

FORMATS = ("svg", "png", "pdf", "dot")
HEAD_ID = "@classifier"  # `@` cannot occur in a node name, so no clash
_STEM_ORDER = {"rgb": 0, "flow": 1, "object": 2}
_STEM_NAME = {"rgb": "RGB stem", "flow": "flow stem (RepFlow)", "object": "object stem"}
_STEM_FILL = {"rgb": "#f6d5d5", "flow": "#d5e5f6", "object": "#d8f0da"}
_LEVEL_FILL = ("#fdf2d0", "#f5e6c8", "#ecdcf2", "#dde4f4")
_HEAD_FILL = "#fff0b3"
_EDGE = "#333333"
_PRUNED = "#a0a0a0"
_PEER = "#9dbbd6"
_MODULES = {"bottleneck": "(2+1)D residual bottleneck", "bottleneck3d": "3x3x3 residual "
            "bottleneck", "lite": "inverted bottleneck (AssembleNet++lite)"}


class RenderError(RuntimeError):
    """`dot` failed; the message holds its stderr."""


def _count(n: int) -> str:
    if n >= 1_000_000:
        return f"{n / 1e6:.2f}M"
    if n >= 1_000:
        return f"{n / 1e3:.1f}K"
    return str(n)


def _shape(s: tuple) -> str:
    return "x".join(str(v) for v in s)


def _connections(net: Network) -> int:
    return sum(len(b.inputs) for b in net.blocks)


def _reach_without_peer(g: nx.DiGraph) -> set[str]:
    """The heads and their ancestors, in one backward search (ancestors per head made a
    network with many heads quadratic)."""
    keep = {h for h in g.graph["heads"] if h in g}
    stack = list(keep)
    while stack:
        for p in g.predecessors(stack.pop()):
            if p not in keep:
                keep.add(p)
                stack.append(p)
    return keep


@dataclass
class _Pruned:
    """What `asnc opt -O2` with the prune settings makes of the network."""

    net: Network
    stats: NetworkStats
    edges: set[tuple[str, str]]  # (src, dst) of every connection left
    nodes: set[str]
    how: str  # "w < 0.5", "outside each block's top 2"


def _prune(net: Network, threshold: float | None, top_k: int | None) -> _Pruned | None:
    if threshold is None and top_k is None:
        return None
    from ..compiler.passes import run_pipeline

    # `opt -O2` itself, so the picture and `asnc stats` of `opt`'s output count the same
    new, _ = run_pipeline(net, level=2, prune_threshold=threshold, prune_top_k=top_k)
    how = " or ".join(x for x in (f"w < {threshold}" if threshold is not None else "",
                                  f"outside each block's top {top_k}" if top_k is not None
                                  else "") if x)
    return _Pruned(new, analyse(new), {(i.source, b.name) for b in new.blocks for i in b.inputs},
                   {n.name for n in new.nodes}, how)


@dataclass(frozen=True)
class _Input:
    """How one connection is drawn: its edge's attributes, its input cell's text and colour
    (blocks with two or more inputs), and its legend kind."""

    edge: dict
    text: str
    color: str
    kind: str


def _inputs(ir: Block, pruned: _Pruned | None) -> list[_Input]:
    left = None if pruned is None else sum((i.source, ir.name) in pruned.edges
                                           for i in ir.inputs)
    out = []
    for inp in ir.inputs:
        w = inp.weight
        text = "learn" if w is None else f"{w:.2f}"
        if pruned is not None and (inp.source, ir.name) not in pruned.edges:
            out.append(_Input({"style": "dashed", "color": _PRUNED, "penwidth": "1.0"},
                              text, _PRUNED, "pruned"))
        elif len(ir.inputs) == 1 or left == 1:
            # a single input is passed on unweighted (pruning drops the weight of the last)
            out.append(_Input({"penwidth": "1.2", "color": _EDGE}, "", _EDGE, "single"))
        elif w is None:
            out.append(_Input({"style": "dotted", "penwidth": "1.4", "color": _EDGE}, text,
                              _EDGE, "learn"))
        else:
            out.append(_Input({"penwidth": f"{0.6 + 3.4 * w:.2f}", "color": _EDGE}, text,
                              _EDGE, "weighted"))
    return out


_EDGE_KEYS = {
    "weighted": EdgeKey("weighted", "━━━━", _EDGE, "connection weight w (width grows with "
                        "w; w is printed where the edge enters its block)"),
    "learn": EdgeKey("learn", "• • • •", _EDGE, "learnable weight (learn)"),
    "single": EdgeKey("single", "────", _EDGE, "single input (no weight)"),
}


def _node_label(lines: list[str], ports: list[tuple[str, str]] | None = None) -> str:
    """An HTML-like label: the name bold, the rest small. With `ports` ((text, colour) per
    input), a column of input cells on the left: each input's edge ends at its own cell,
    which prints its weight, so no weight can be read off another edge where edges cross.
    (Names are identifiers and the other lines are made here, but a user module is
    `"pkg.mod:Factory"`: escaped anyway.)"""
    head, rest = escape(lines[0]), "<BR/>".join(escape(x) for x in lines[1:])
    text = f'<B>{head}</B><BR/><FONT POINT-SIZE="9">{rest}</FONT>'
    if not ports:
        return f"<{text}>"
    # fixed-size cells: a pruned input keeps its cell's size, so the node keeps its own
    cells = [f'<TD PORT="i{k}" FIXEDSIZE="TRUE" WIDTH="30" HEIGHT="14" ALIGN="RIGHT">'
             + (f'<FONT POINT-SIZE="8" COLOR="{color}">{escape(t)}</FONT>' if t else "")
             + "</TD>" for k, (t, color) in enumerate(ports)]
    rows = [f'<TR>{cells[0]}<TD ROWSPAN="{len(cells)}" CELLPADDING="3">{text}</TD></TR>']
    rows += [f"<TR>{c}</TR>" for c in cells[1:]]
    return ('<<TABLE BORDER="0" CELLBORDER="0" CELLSPACING="0" CELLPADDING="0">'
            + "".join(rows) + "</TABLE>>")


def to_graph(net: Network, prune_threshold: float | None = None,
             prune_top_k: int | None = None, peer_edges: bool = False,
             stats: NetworkStats | None = None) -> graphviz.Digraph:
    """The network as a `graphviz.Digraph` (see the module docstring for what it draws).

    Parameters:
        net: a checked network.
        prune_threshold, prune_top_k: draw what `asnc opt -O2` with these settings removes
            (dashed grey) and title the pruned network; None for both prunes nothing.
        peer_edges: in `peer` mode, draw the peer-attention reads (else the caption notes
            them).
        stats: `analyse(net)` if already computed.
    """
    g = build_graph(net)
    stats = stats if stats is not None else analyse_graph(g)
    hdr = net.header
    live = reachable_to_heads(g)
    direct = _reach_without_peer(g)
    pruned = _prune(net, prune_threshold, prune_top_k)
    peer = hdr.attention == "peer"
    head = next((n for n in stats.nodes if n.kind == "head"), None)
    used_nodes: dict[str, NodeKey] = {}
    used_edges: set[str] = set()
    inputs: dict[str, list[_Input]] = {}

    dot = graphviz.Digraph(hdr.name, graph_attr={
        "rankdir": "LR", "newrank": "true", "ranksep": "1.1", "nodesep": "0.3",
        "fontname": "Helvetica", "labelloc": "b", "labeljust": "l"},
        node_attr={"shape": "box", "style": "rounded,filled", "fontname": "Helvetica",
                   "fontsize": "11", "margin": "0.1,0.05"},
        edge_attr={"arrowsize": "0.7"})

    order = sorted(g.nodes, key=lambda n: g.nodes[n]["index"])
    stems = sorted((n for n in order if isinstance(g.nodes[n]["ir"], Stem)),
                   key=lambda n: (_STEM_ORDER[g.nodes[n]["ir"].type], g.nodes[n]["index"]))
    levels = sorted({g.nodes[n]["ir"].level for n in order if isinstance(g.nodes[n]["ir"], Block)})
    columns: list[tuple[str, list[str]]] = [("Stems", stems)] + [
        (f"Level {lv}", [n for n in order if isinstance(g.nodes[n]["ir"], Block)
                         and g.nodes[n]["ir"].level == lv]) for lv in levels]
    if head is not None:
        columns.append(("Classifier", [HEAD_ID]))

    # Column headers: a plaintext node per column, chained by invisible edges so that they
    # sit on one line; each is its column's last node, which LR puts on top (a test checks)
    header_ids = [f"@column{k}" for k in range(len(columns))]
    for hid, (_, names) in zip(header_ids, columns):
        col = graphviz.Digraph()  # anonymous: `{rank=same ...}`
        col.attr(rank="same")
        for n in names:
            if n == HEAD_ID:
                assert head is not None
                pool = "softmax-over-time max" if hdr.head_pool == "max" else "mean"
                col.node(HEAD_ID, _node_label(
                    ["classifier", f"{hdr.variant} head, pool {pool}",
                     f"{hdr.classes} classes", f"{_count(head.params)} params"]),
                    style="filled", fillcolor=_HEAD_FILL, penwidth="1.5")
                continue
            ir = g.nodes[n]["ir"]
            ins = _inputs(ir, pruned) if isinstance(ir, Block) else []
            inputs[n] = ins
            col.node(n, **_node_attrs(g, n, ins, stats, live, direct, pruned, used_nodes))
        col.node(hid)
        dot.subgraph(col)

    for hid, (title, _) in zip(header_ids, columns):
        dot.node(hid, f"<<B>{title}</B>>", shape="plaintext", style="", fontsize="13")
    for a, b in zip(header_ids, header_ids[1:]):
        dot.edge(a, b, style="invis")
    for n in order:
        ir = g.nodes[n]["ir"]
        if not isinstance(ir, Block):
            continue
        ported = len(ir.inputs) > 1
        for slot, (inp, how) in enumerate(zip(ir.inputs, inputs[n])):
            used_edges.add(how.kind)
            dot.edge(inp.source, f"{n}:i{slot}:w" if ported else n, **how.edge)
    if head is not None:
        for h in g.graph["heads"]:
            dot.edge(h, HEAD_ID, penwidth="1.5", color=_EDGE)
    if peer and peer_edges:
        _peer_bus(dot, g, columns, levels)
        used_edges.add("peer")

    dot.attr(label=html_caption(_caption(net, stats, pruned, used_nodes, used_edges, peer)))
    return dot


def _node_attrs(g: nx.DiGraph, n: str, ins: list[_Input], stats: NetworkStats, live: set[str],
                direct: set[str], pruned: _Pruned | None, used: dict[str, NodeKey]) -> dict:
    ir = g.nodes[n]["ir"]
    s = stats.node(n)
    if isinstance(ir, Stem):
        lines = [n, _STEM_NAME[ir.type] + (f"  d={ir.dilation}" if ir.type == "rgb" else ""),
                 _shape(s.shape), f"{_count(s.params)} params"]
        fill = _STEM_FILL[ir.type]
        used.setdefault(ir.type, NodeKey(ir.type, ir.type, fill, _STEM_NAME[ir.type]))
    else:
        f = ir.filters if isinstance(ir.filters, int) else \
            "[" + ",".join(str(x) for x in ir.filters) + "]"
        lines = [n, f"{ir.module}  F={f}  d={ir.dilation}  s={ir.stride}", _shape(s.shape),
                 f"{_count(s.params)} params"]
        fill = _LEVEL_FILL[ir.level % len(_LEVEL_FILL)]
        used.setdefault("module:" + ir.module, NodeKey(
            "module-" + re.sub(r"\W", "_", ir.module), ir.module, "#ffffff",
            _MODULES.get(ir.module, "user module")))
    # the notes come from the network as written, in both pictures: a label that grew
    # under pruning would move the nodes
    if n not in live:
        lines.append("(reaches no head)")
        used.setdefault("dead", NodeKey("dead", "dead", "#ffffff",
                                        "reaches no head (-O1 removes it)", dashed=True))
    elif n not in direct:
        lines.append("(read by peer attention only)")
    removed = pruned is not None and n not in pruned.nodes and n in live
    if removed:
        used.setdefault("removed", NodeKey("removed", "removed", "#ffffff", "removed by "
                                           "pruning (reaches no head after it)", dashed=True))
    faded = n not in live or removed
    ports = [(i.text, i.color) for i in ins] if len(ins) > 1 else []
    return {"label": _node_label(lines, ports), "fillcolor": "#f4f4f4" if removed else fill,
            "style": "rounded,filled,dashed" if faded else None,
            "fontcolor": "#666666" if faded else None, "tooltip": n}


def _peer_bus(dot: graphviz.Digraph, g: nx.DiGraph, columns: list[tuple[str, list[str]]],
              levels: list[int]) -> None:
    """A bus per level: every node of the column before it feeds it, the bus before it
    feeds it, and it feeds every block of its level; so every peer candidate of a block
    (every node of a lower level) reaches it along the bus, in edges linear in the network."""
    prev_bus = None
    for k, lv in enumerate(levels):
        bus = f"@peer{lv}"
        dot.node(bus, "", shape="point", width="0.06", color=_PEER, tooltip=f"peer-attention "
                 f"candidates of level {lv}")
        style = {"color": _PEER, "penwidth": "0.6", "arrowhead": "none"}
        if prev_bus is not None:
            dot.edge(prev_bus, bus, **style)
        for src in columns[k][1]:  # column k is the one before level `lv`
            dot.edge(src, bus, **style)
        for dst in columns[k + 1][1]:
            dot.edge(bus, dst, color=_PEER, penwidth="0.6", arrowhead="empty",
                     arrowsize="0.5")
        prev_bus = bus


def _caption(net: Network, stats: NetworkStats, pruned: _Pruned | None,
             used_nodes: dict[str, NodeKey], used_edges: set[str], peer: bool) -> Caption:
    hdr = net.header
    title = (f"{hdr.name}: {hdr.frames} frames at {hdr.size[0]}x{hdr.size[1]}, "
             f"{hdr.classes} classes")
    counts = (f"{stats.total:,} params, {stats.flops / 1e9:.3f} GFLOPs, "
              f"{_connections(net)} connections")
    c = Caption(title)
    if pruned is None:
        c.subtitle.append(counts + f"; attention {hdr.attention}")
    else:
        p = pruned
        c.title += f", pruned ({p.how})"
        c.subtitle.append(f"pruned: {p.stats.total:,} params, {p.stats.flops / 1e9:.3f} "
                          f"GFLOPs, {_connections(p.net)} connections; attention "
                          f"{hdr.attention}")
        gone_c, gone_n = _connections(net) - _connections(p.net), len(net.nodes) - len(p.nodes)
        c.subtitle.append(f"as written: {counts}; pruning removes {gone_c} "
                          f"connection{'s' * (gone_c != 1)} and {gone_n} "
                          f"node{'s' * (gone_n != 1)}")
    order = ("rgb", "flow", "object")
    c.nodes = [used_nodes[k] for k in order if k in used_nodes]
    c.nodes += [v for k, v in used_nodes.items() if k.startswith("module:")]
    c.nodes += [used_nodes[k] for k in ("dead", "removed") if k in used_nodes]
    c.edges = [_EDGE_KEYS[k] for k in ("weighted", "learn", "single") if k in used_edges]
    if "pruned" in used_edges:
        assert pruned is not None
        c.edges.append(EdgeKey("pruned", "– – – –", _PRUNED, f"removed by pruning ({pruned.how};"
                               " a block keeps its strongest input), or with its block"))
    if "peer" in used_edges:
        c.edges.append(EdgeKey("peer", "────▷", _PEER, "peer-attention read, along the bus "
                               "of each level"))
    if peer:
        # candidates of the network drawn (the pruned one may have lost nodes)
        drawn = net if pruned is None else pruned.net
        table = PeerTable(build_graph(drawn))
        per_level: dict[int, int] = {}
        for b in drawn.blocks:
            per_level.setdefault(b.level, table.count(b.name))
        c.notes.append("peer attention: each block attends over every node of a lower level ("
                       + ", ".join(f"level {lv}: {n}" for lv, n in sorted(per_level.items()))
                       + " candidates)")
    return c


def to_dot(net: Network, prune_threshold: float | None = None, prune_top_k: int | None = None,
           peer_edges: bool = False, stats: NetworkStats | None = None) -> str:
    """`to_graph(...)` as DOT text."""
    return to_graph(net, prune_threshold, prune_top_k, peer_edges, stats).source


def find_dot() -> str | None:
    """The path of Graphviz's `dot` program, or None."""
    return shutil.which("dot")


def render(graph: graphviz.Digraph | str, fmt: str) -> bytes:
    """Render a graph (or DOT text) in `fmt` (svg, png, pdf, or any `dot -T` format such as
    json or plain) with `dot`; returns the file's bytes.

    Raises:
        ExecutableNotFound: no `dot` on PATH (graphviz's own error).
        RenderError: `dot` failed.
    """
    if fmt == "dot":
        raise ValueError("DOT text needs no rendering: use `to_dot`")
    source = graph if isinstance(graph, graphviz.Digraph) else graphviz.Source(graph)
    try:
        out = source.pipe(format=fmt, quiet=True)
    except graphviz.CalledProcessError as exc:
        stderr = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) \
            else str(exc.stderr or "")
        raise RenderError(stderr.strip() or f"dot exited with status {exc.returncode}") \
            from None
    assert isinstance(out, bytes)
    return out
