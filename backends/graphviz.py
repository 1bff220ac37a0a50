"""Connectivity diagrams: a network as Graphviz DOT text (`asnc viz`). Pure Python.

The DOT text is built here, without the `graphviz` package; rendering to SVG, PNG or PDF calls
the `dot` program when it is on PATH (`render`). Layout, left to right: the stems (RGB, flow,
object), then one column per level 0..3, then the classifier. Each node shows its name, level,
module, filters, temporal dilation, stride and output shape `T x H x W x C` (from
`compiler.analysis`) and its parameters. Edges are as wide as their connection weight and
labelled with it; learnable edges are dotted (`learn`); edges that `prune-edges` would remove at
the given threshold / top-k are dashed grey; nodes that reach no head have a dashed outline. In
`peer` attention mode each block notes its peer candidates (or, with `peer_edges`, light dashed
edges come from every candidate). A legend cluster explains the styles.
"""

from __future__ import annotations

import shutil
import subprocess

import networkx as nx

from ..compiler.analysis import NetworkStats, PeerTable, analyse_graph
from ..compiler.graph import build_graph, reachable_to_heads
from ..dsl.ir import Block, Network, Stem

__all__ = ["to_dot", "render", "find_dot", "FORMATS", "HEAD_ID", "RenderError"]

FORMATS = ("svg", "png", "pdf", "dot")
HEAD_ID = "@classifier"  # `@` cannot occur in a node name, so no clash
_STEM_ORDER = {"rgb": 0, "flow": 1, "object": 2}
_STEM_FILL = {"rgb": "#f6d5d5", "flow": "#d5e5f6", "object": "#d8f0da"}
_LEVEL_FILL = ("#fdf2d0", "#f5e6c8", "#ecdcf2", "#dde4f4")
_PRUNED = "#9a9a9a"
_PEER = "#7fa7c9"


class RenderError(RuntimeError):
    """`dot` failed; the message holds its stderr."""


def _q(text: str) -> str:
    """A DOT double-quoted string."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _count(n: int) -> str:
    if n >= 1_000_000:
        return f"{n / 1e6:.2f}M"
    if n >= 1_000:
        return f"{n / 1e3:.1f}K"
    return str(n)


def _shape(s: tuple) -> str:
    return "x".join(str(v) for v in s)


def _attrs(**kw) -> str:
    return "[" + ", ".join(f"{k}={_q(str(v)) if isinstance(v, str) else v}"
                           for k, v in kw.items() if v is not None) + "]"


def _weight_label(w: float) -> str:
    return f"{w:.2f}"


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


def to_dot(net: Network, prune_threshold: float | None = None, prune_top_k: int | None = None,
           peer_edges: bool = False, stats: NetworkStats | None = None) -> str:
    """The network as a DOT digraph.

    Parameters:
        net: a checked network.
        prune_threshold, prune_top_k: mark the edges `prune-edges` would remove with these
            settings (dashed grey); None for both marks none.
        peer_edges: in `peer` mode, draw an edge from every peer candidate (else a note per
            block).
        stats: `analyse(net)` if already computed.

    Returns:
        DOT text: one statement per node (`"name" [...]`) and per edge (`"src" -> "dst"`).
    """
    from ..compiler.passes import plan_pruning

    g = build_graph(net)
    stats = stats if stats is not None else analyse_graph(g)
    hdr = net.header
    live = reachable_to_heads(g)
    direct = _reach_without_peer(g)
    pruned: set[tuple[str, str]] = set()
    if prune_threshold is not None or prune_top_k is not None:
        plan, _ = plan_pruning(g, prune_threshold, prune_top_k, stats)
        pruned = {(e["src"], e["dst"]) for e in plan}
    peer = hdr.attention == "peer"
    peer_table = PeerTable(g) if peer else None
    head = next((n for n in stats.nodes if n.kind == "head"), None)
    flow = next((n for n in stats.nodes if n.kind == "flow_layer"), None)

    title = (f"{hdr.name}: {hdr.frames} frames at {hdr.size[0]}x{hdr.size[1]}, "
             f"{hdr.classes} classes; {_count(stats.total)} params, "
             f"{stats.flops / 1e9:.1f} GFLOPs; attention {hdr.attention}")
    if prune_threshold is not None or prune_top_k is not None:
        how = " and ".join(x for x in (
            f"weight < {prune_threshold}" if prune_threshold is not None else "",
            f"outside the top {prune_top_k}" if prune_top_k is not None else "") if x)
        title += f"; pruned ({how}): {len(pruned)} edges"
    lines = [
        f"digraph {_q(hdr.name)} {{",
        "  graph " + _attrs(rankdir="LR", newrank="true", ranksep="0.9", nodesep="0.25",
                            fontname="Helvetica", fontsize=12, label=title, labelloc="t"),
        "  node " + _attrs(shape="box", style="rounded,filled", fontname="Helvetica",
                           fontsize=10, margin="0.12,0.06"),
        "  edge " + _attrs(fontname="Helvetica", fontsize=9, arrowsize=0.7),
        "",
    ]
    order = sorted(g.nodes, key=lambda n: g.nodes[n]["index"])
    stems = sorted((n for n in order if isinstance(g.nodes[n]["ir"], Stem)),
                   key=lambda n: (_STEM_ORDER[g.nodes[n]["ir"].type], g.nodes[n]["index"]))
    columns: list[tuple[str, list[str]]] = [("stems", stems)]
    for level in sorted({g.nodes[n]["ir"].level for n in order
                         if isinstance(g.nodes[n]["ir"], Block)}):
        columns.append((f"level {level}", [n for n in order
                                           if isinstance(g.nodes[n]["ir"], Block)
                                           and g.nodes[n]["ir"].level == level]))

    for title_, names in columns:
        lines.append(f"  // {title_}")
        for n in names:
            ir = g.nodes[n]["ir"]
            s = stats.node(n)
            if isinstance(ir, Stem):
                kind = {"rgb": "RGB stem", "flow": "flow stem", "object": "object stem"}[ir.type]
                label = [n, kind + (f"  d={ir.dilation}" if ir.type == "rgb" else ""),
                         _shape(s.shape), f"{_count(s.params)} params"]
                if ir.type == "flow" and flow is not None:
                    label[1] = "flow stem (RepFlow)"
                fill = _STEM_FILL[ir.type]
            else:
                f = ir.filters if isinstance(ir.filters, int) else \
                    "[" + ",".join(str(x) for x in ir.filters) + "]"
                label = [n, f"level {ir.level}  {ir.module}",
                         f"F={f}  d={ir.dilation}  s={ir.stride}", _shape(s.shape),
                         f"{_count(s.params)} params"]
                if peer:
                    assert peer_table is not None
                    label.append(f"peer attention: {peer_table.count(n)} candidates")
                fill = _LEVEL_FILL[ir.level % len(_LEVEL_FILL)]
            dead = n not in live
            if dead:
                label.append("(reaches no head)")
            elif n not in direct:
                label.append("(read by peer attention only)")
            lines.append(f"  {_q(n)} " + _attrs(
                label="\n".join(label), fillcolor=fill,
                style="rounded,filled,dashed" if dead else None,
                fontcolor="#666666" if dead else None, tooltip=n))
        lines.append("  {rank=same; " + " ".join(_q(n) + ";" for n in names) + "}")
        lines.append("")

    if head is not None:
        pool = "softmax-over-time max" if hdr.head_pool == "max" else "mean"
        hl = ["classifier", f"{hdr.variant} head, pool {pool}", f"{hdr.classes} classes",
              f"{_count(head.params)} params"]
        lines.append(f"  {_q(HEAD_ID)} " + _attrs(label="\n".join(hl), shape="box",
                                                  style="filled", fillcolor="#fff0b3",
                                                  penwidth=1.5))
        lines.append(f"  {{rank=same; {_q(HEAD_ID)};}}")
        lines.append("")

    lines.append("  // connections")
    for n in order:
        ir = g.nodes[n]["ir"]
        if not isinstance(ir, Block):
            continue
        for inp in ir.inputs:
            src, w = inp.source, inp.weight
            if (src, n) in pruned:
                attrs = _attrs(label=_weight_label(w) + " (pruned)", style="dashed",
                               color=_PRUNED, fontcolor=_PRUNED, penwidth=1.0)
            elif len(ir.inputs) == 1:
                attrs = _attrs(penwidth=1.2)  # a single input is passed on unweighted
            elif w is None:
                attrs = _attrs(label="learn", style="dotted", penwidth=1.4)
            else:
                attrs = _attrs(label=_weight_label(w), penwidth=round(0.6 + 3.4 * w, 2))
            lines.append(f"  {_q(src)} -> {_q(n)} {attrs}")
    if head is not None:
        lines.append("  // heads")
        for h in g.graph["heads"]:
            lines.append(f"  {_q(h)} -> {_q(HEAD_ID)} " + _attrs(penwidth=1.5))
    if peer and peer_edges:
        lines.append("  // peer-attention reads (every node of a lower level)")
        for n in order:
            if isinstance(g.nodes[n]["ir"], Block):
                assert peer_table is not None  # the output itself is quadratic here
                for c in peer_table(n):
                    lines.append(f"  {_q(c)} -> {_q(n)} " + _attrs(
                        style="dashed", color=_PEER, arrowhead="empty", constraint="false",
                        penwidth=0.5))
    lines.append("")
    lines.extend(_legend(prune_threshold, prune_top_k, peer, peer_edges))
    lines.append("}")
    return "\n".join(lines) + "\n"


def _legend(threshold, top_k, peer: bool, peer_edges: bool) -> list[str]:
    rows: list[tuple[str, dict]] = [
        ("connection weight w (width grows with w)", {"penwidth": 2.3, "label": "0.50"}),
        ("learnable weight", {"style": "dotted", "label": "learn", "penwidth": 1.4}),
        ("single input (no weight)", {"penwidth": 1.2}),
    ]
    if threshold is not None or top_k is not None:
        what = " or ".join(x for x in (f"w < {threshold}" if threshold is not None else "",
                                       f"not in the top {top_k}" if top_k is not None else "")
                           if x)
        rows.append((f"pruned ({what}; a block keeps its strongest input)",
                     {"style": "dashed", "color": _PRUNED, "fontcolor": _PRUNED,
                      "label": "0.10 (pruned)"}))
    if peer and peer_edges:
        rows.append(("peer-attention read", {"style": "dashed", "color": _PEER,
                                             "arrowhead": "empty", "penwidth": 0.5}))
    out = ["  subgraph cluster_legend {",
           "    graph " + _attrs(label="legend", fontsize=11, style="rounded",
                                 color="#bbbbbb"),
           "    node " + _attrs(shape="point", width=0.05, label=""),
           ]
    for k, (text, attrs) in enumerate(rows):
        a, b = f"@legend{k}a", f"@legend{k}b"
        out.append(f"    {_q(a)}; {_q(b)} " + _attrs(shape="plaintext", style="", label=text,
                                                      fontsize=9, width=None))
        out.append(f"    {_q(a)} -> {_q(b)} " + _attrs(**attrs))
    notes = ["RGB stem", "flow stem", "object stem"]
    for k, (text, fill) in enumerate(zip(notes, _STEM_FILL.values())):
        out.append(f"    {_q(f'@legend_stem{k}')} " + _attrs(
            shape="box", style="rounded,filled", fillcolor=fill, label=text, fontsize=9,
            width=None))
    out.append(f"    {_q('@legend_dead')} " + _attrs(
        shape="box", style="rounded,filled,dashed", fillcolor="#ffffff", fontcolor="#666666",
        label="reaches no head\n(removed by -O1)", fontsize=9, width=None))
    if peer and not peer_edges:
        out.append(f"    {_q('@legend_peer')} " + _attrs(
            shape="plaintext", style="", label="peer attention: each block also reads\n"
            "every node of a lower level (its candidates)", fontsize=9, width=None))
    out.append("  }")
    return out


def find_dot() -> str | None:
    """The path of Graphviz's `dot` program, or None."""
    return shutil.which("dot")


def render(dot_text: str, fmt: str, dot: str | None = None) -> bytes:
    """Render DOT text in `fmt` (svg, png, pdf) with `dot`; returns the file's bytes.

    Raises:
        FileNotFoundError: no `dot` on PATH.
        RenderError: `dot` failed.
    """
    if fmt not in FORMATS or fmt == "dot":
        raise ValueError(f"render formats are svg, png and pdf, got `{fmt}`")
    dot = dot or find_dot()
    if dot is None:
        raise FileNotFoundError("Graphviz `dot` is not on PATH")
    proc = subprocess.run([dot, f"-T{fmt}"], input=dot_text.encode(), capture_output=True,
                          timeout=300)
    if proc.returncode != 0:
        raise RenderError(proc.stderr.decode(errors="replace").strip() or
                          f"dot exited with status {proc.returncode}")
    return proc.stdout
