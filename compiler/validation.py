"""Semantic checks over the IR and its DAG. Every problem becomes one diagnostic.

Order matters only to avoid cascades: names first (an unknown name would make every
later check noisy), then the graph (cycles), then values, then shapes and widths.
"""

from __future__ import annotations

import math
import re
from collections import Counter

import networkx as nx

from ..dsl.diagnostics import Diagnostic, DiagnosticError, Diagnostics, Suggester, did_you_mean
from ..dsl.ir import BLOCK_MODULES, Block, Network, Stem
from ..dsl.partial import PartialNetwork
from ..dsl.perf import paused_gc
from .analysis import ShapeError, analyse_graph
from .graph import build_graph, node_level, reachable_to_heads

__all__ = ["check", "check_partial", "with_independent_errors", "check_names", "MAX_LEVEL",
           "MAX_STRIDE", "MAX_DILATION"]

MAX_LEVEL = 3
MAX_STRIDE = 4
MAX_DILATION = 64
MAX_FILTERS = 65536
_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
_USER_MODULE = re.compile(rf"^{_IDENT}(\.{_IDENT})*:{_IDENT}$")  # package.module:Factory


def check(net: Network, *, refused_modules: str = "error") -> Diagnostics:
    """All errors and warnings for `net`, in source order where possible.

    `refused_modules`: what a user module that the import policy refuses to import gives
    ("error", or "note" for commands that only convert text and need no shapes).
    """
    with paused_gc():
        return _check(net, refused_modules)


def check_partial(partial: PartialNetwork) -> Diagnostics:
    """The errors of what loaded of a network whose text has errors (`dsl.partial`): every
    check that reads no placeholder setting and that a left-out node cannot have caused.
    Shapes and reachability read the whole header and every node: they wait for the fix."""
    with paused_gc():
        return _check(partial.network, placeholders=partial.placeholders,
                      dropped=partial.dropped, partial=True)


def with_independent_errors(exc: DiagnosticError) -> DiagnosticError:
    """`exc`, a loader's, with the errors of the part of the network that did load, in
    source order: a bad header value hides no block error behind it."""
    if exc.partial is None:
        return exc
    found = exc.diagnostics + list(check_partial(exc.partial))
    found.sort(key=lambda x: (x.span.line, x.span.col) if x.span else (math.inf, 0))
    return DiagnosticError(found, exc.source)


_NONE: frozenset[str] = frozenset()


def _check(net: Network, refused_modules: str = "error", placeholders: frozenset[str] = _NONE,
           dropped: frozenset[str] = _NONE, partial: bool = False) -> Diagnostics:
    d = Diagnostics()
    names_ok = check_names(net, d, dropped)
    g = build_graph(net) if names_ok else None  # the graph needs every name resolved
    acyclic = g is not None and _check_acyclic(g, d)
    _check_values(net, d, placeholders, dropped)  # per node and header: no names or edges
    if g is None or not acyclic:
        return d
    _check_network(net, g, d, placeholders, dropped)
    if d.has_errors or partial:
        return d
    _check_shapes(net, g, d, refused_modules)
    if not d.has_errors:
        _check_reach(net, g, d)
    return d


def check_names(net: Network, d: Diagnostics, dropped: frozenset[str] = frozenset()) -> bool:
    """Names declared once and every name used declared (a node in `dropped`, one that did
    not load, counts as declared: `check_partial`)."""
    seen: dict[str, Stem | Block] = {}
    ok = True
    for node in net.nodes:
        if node.name in seen:
            first = seen[node.name]
            d.error("ASN100", f"`{node.name}` is declared twice", node.where("name"),
                    notes=[f"first declared at line {first.span.line}"] if first.span
                    else [])
            ok = False
        else:
            seen[node.name] = node
    suggest = Suggester(seen)  # one for every unknown name: bounded work in all
    for node in net.blocks:
        if not node.inputs:  # the JSON form can say so; .asn and the list format cannot
            d.error("ASN011", f"block `{node.name}` has no inputs", node.where("name"),
                    help="a block reads at least one node")
            ok = False
        for inp in node.inputs:
            if inp.source in dropped:
                ok = False  # no graph: not all of its edges are known
            elif inp.source not in seen:
                d.error("ASN101", f"unknown input `{inp.source}` of block `{node.name}`",
                        inp.where("source"), help=suggest(inp.source))
                ok = False
        counts = Counter(i.source for i in node.inputs)  # linear in the inputs
        for s in (s for s, k in counts.items() if k > 1):
            d.error("ASN101", f"block `{node.name}` reads `{s}` more than once",
                    node.where("name"), help="list each input once")
            ok = False
    for head in net.heads or []:
        if head in dropped:
            ok = False
        elif head not in seen:
            d.error("ASN101", f"unknown head `{head}`", net.where(f"heads.{head}"),
                    help=suggest(head))
            ok = False
        elif isinstance(seen[head], Stem):
            d.error("ASN130", f"head `{head}` is a stem; heads must be blocks",
                    net.where(f"heads.{head}"))
            ok = False
    return ok


def _check_acyclic(g: nx.DiGraph, d: Diagnostics) -> bool:
    if nx.is_directed_acyclic_graph(g):  # fast; find_cycle is 50x slower on a big DAG
        return True
    try:
        cycle = nx.find_cycle(g)
    except nx.NetworkXNoCycle:
        return True
    names = [u for u, _ in cycle]
    first = g.nodes[names[0]]["ir"]
    d.error("ASN102", "connections form a cycle: " + " -> ".join(names + [names[0]]),
            first.where("name"), help="a block may only read nodes that do not depend on it")
    return False


def _check_values(net: Network, d: Diagnostics, placeholders: frozenset[str] = _NONE,
                  dropped: frozenset[str] = _NONE) -> None:
    hdr = net.header
    # a check that reads a header setting holding a placeholder is left out (`check_partial`)
    known = {f: f not in placeholders
             for f in ("object_classes", "variant", "combine", "attention", "frames")}
    for node in net.nodes:
        if isinstance(node, Stem):
            if node.type == "object" and hdr.object_classes is None and known["object_classes"]:
                d.error("ASN140", f"object stem `{node.name}` needs the number of object "
                        "classes", node.where("type"),
                        help="add e.g. `objects 151` to the network header")
            if node.type == "object" and hdr.variant == "lite" and known["variant"]:
                d.error("ASN140", "the lite network takes no object stems", node.where("type"))
            continue
        if not 0 <= node.level <= MAX_LEVEL:
            d.error("ASN121", f"level {node.level} of `{node.name}` is out of range 0..3",
                    node.where("level"))
        if not 1 <= node.stride <= MAX_STRIDE:
            d.error("ASN121", f"stride {node.stride} of `{node.name}` is out of range "
                    f"1..{MAX_STRIDE}", node.where("stride"))
        if not 1 <= node.dilation <= MAX_DILATION:
            d.error("ASN121", f"temporal dilation {node.dilation} of `{node.name}` is out of "
                    f"range 1..{MAX_DILATION}", node.where("dilation"))
        _check_module(node, d)
        _check_weights(node, d)
    if not net.stems and not dropped:
        d.error("ASN130", "the network has no stem", hdr.span,
                help="add e.g. `stem r0 = rgb` to read the video")
    if hdr.combine == "concat" and hdr.attention != "none" and known["combine"] and \
            known["attention"]:
        d.error("ASN140", f"attention `{hdr.attention}` needs the `sigmoid` combine method",
                hdr.where("attention"), help="attention is an AssembleNet++ feature; use "
                "`combine sigmoid` or `attention none`")
    if hdr.object_classes is not None and not any(s.type == "object" for s in net.stems) \
            and not dropped:
        d.warning("ASN140", "`objects` is set but the network has no object stem",
                  hdr.where("object_classes"))
    if hdr.frames < 2 and any(s.type == "flow" for s in net.stems) and known["frames"]:
        d.error("ASN150", "flow stems need at least 2 frames", hdr.where("frames"))


def _check_module(node: Block, d: Diagnostics) -> None:
    f = node.filters
    if node.module not in BLOCK_MODULES and not _USER_MODULE.match(node.module):
        d.error("ASN120", f"unknown block module `{node.module}`", node.where("module"),
                help=did_you_mean(node.module, BLOCK_MODULES) or
                "built-in modules are bottleneck, bottleneck3d and lite; a user module is "
                "named \"package.module:Factory\"")
        return
    if node.module == "lite" and isinstance(f, int):
        d.error("ASN120", f"the lite module needs three filter widths [expand, middle, out], "
                f"got `{f}`", node.where("filters"))
    elif node.module in ("bottleneck", "bottleneck3d") and not isinstance(f, int):
        d.error("ASN120", f"module `{node.module}` takes one filter count, got "
                f"`{list(f)}`", node.where("filters"),
                help="three widths are for the lite module: write `lite(...)`")
    widths = [f] if isinstance(f, int) else list(f)
    if any(not 1 <= x <= MAX_FILTERS for x in widths):
        d.error("ASN121", f"filters of `{node.name}` must be between 1 and {MAX_FILTERS}",
                node.where("filters"))


def _check_weights(node: Block, d: Diagnostics) -> None:
    given = [i for i in node.inputs if i.weight is not None]
    if len(node.inputs) == 1 and given:
        d.error("ASN110", f"block `{node.name}` has one input; a single input takes no "
                "connection weight", given[0].where("weight"), help="remove the `@` weight")
        return
    if given and len(given) != len(node.inputs):
        missing = next(i for i in node.inputs if i.weight is None)
        d.error("ASN110", f"block `{node.name}` gives weights for {len(given)} of its "
                f"{len(node.inputs)} inputs", missing.where("source"),
                help="give every input a weight, or none to learn them")
    for inp in given:
        w = inp.weight
        assert w is not None  # `given` holds the inputs with a weight
        if not math.isfinite(w):
            d.error("ASN111", f"connection weight of `{inp.source}` is {w}; it must be a "
                    "finite number in (0, 1)", inp.where("weight"))
        elif not 0.0 < w < 1.0:
            d.error("ASN111", f"connection weight {w} of `{inp.source}` is outside (0, 1)",
                    inp.where("weight"), help="weights are the values after the sigmoid")


def _check_network(net: Network, g: nx.DiGraph, d: Diagnostics,
                   placeholders: frozenset[str] = _NONE, dropped: frozenset[str] = _NONE
                   ) -> None:
    hdr = net.header
    heads = net.head_names()
    if dropped or "heads" in placeholders:
        heads = heads or [""]  # a left-out node may be the head: no "no head" error
    if not heads:
        d.error("ASN130", "the network has no head: no level-3 block and no `heads`", hdr.span,
                help="add a level-3 block or a `heads NAME` statement")
        return
    if hdr.variant == "lite" and len(heads) > 1 and "variant" not in placeholders:
        d.error("ASN140", "the lite head reads exactly one node", net.where("heads"),
                help="list one node in `heads`")
    if hdr.attention == "peer" and "attention" not in placeholders:
        for b, late in _peer_conflicts(net, g):
            d.error("ASN140", f"peer attention of `{b.name}` needs `{late}` (a lower "
                    "level) but that node depends on it", b.where("name"),
                    help="peer candidates are every node of a lower level; a lower level "
                    "may not read a higher one in peer mode")


def _peer_conflicts(net: Network, g: nx.DiGraph) -> list[tuple[Block, str]]:
    """Blocks with a peer candidate (a node of a lower level) that depends on them, each with
    the first such candidate in `peer_candidates` order.

    The lowest level among each node's descendants, one pass in reverse topological order,
    finds the blocks (linear; a has_path per candidate pair was cubic); only those few are
    searched for the candidate to name.
    """
    level = {n: node_level(g.nodes[n]["ir"]) for n in g}
    lowest: dict[str, float] = {}  # lowest level among the node's descendants
    for n in reversed(list(nx.topological_sort(g))):
        lowest[n] = min((min(level[s], lowest[s]) for s in g.successors(n)), default=math.inf)
    out = []
    for b in net.blocks:
        if not 0 <= b.level <= MAX_LEVEL or lowest[b.name] >= b.level:
            continue
        late = [n for n in nx.descendants(g, b.name) if level[n] < b.level]
        out.append((b, min(late, key=lambda n: (level[n], g.nodes[n]["index"]))))
    return out


def _check_shapes(net: Network, g: nx.DiGraph, d: Diagnostics,
                  refused_modules: str = "error") -> None:
    try:
        stats = analyse_graph(g)
    except ShapeError as found:
        for exc in found.errors:
            node = g.nodes[exc.node]["ir"]
            resize = exc.slot is not None  # else: no channel count to fuse to
            span = node.inputs[exc.slot].where("source") if resize else node.where("name")
            d.error("ASN122" if resize else "ASN123", f"block `{exc.node}`: {exc.message}",
                    span, help="inputs are max-pooled to the smallest size with a window of "
                    "(height + 1) // smallest height" if resize else None)
        return
    except Exception as exc:  # a user module failed its static description
        from .usermodule import ImportRefused, UserModuleError
        if not isinstance(exc, UserModuleError):
            raise
        node = g.nodes[exc.node]["ir"]
        if isinstance(exc, ImportRefused) and refused_modules == "note":
            d.append(Diagnostic("note", "ASN120", "shapes and parameters are not checked: "
                                "this command does not import user modules (block "
                                f"`{exc.node}` uses `{node.module}`)", node.where("module")))
        else:
            d.error("ASN120", exc.message, node.where("module"))
        return
    heads = net.head_names()
    by_name = {n.name: n for n in stats.nodes}
    if net.header.variant != "lite":
        widths = {h: by_name[h].shape[3] for h in heads}
        first = heads[0]
        for h in heads[1:]:
            if widths[h] != widths[first]:
                node = g.nodes[h]["ir"]
                d.error("ASN123", f"head `{h}` has {widths[h]} channels but `{first}` has "
                        f"{widths[first]}; the classifier averages heads of one width",
                        node.where("filters"))
    for n in stats.nodes:
        if n.kind == "block" and min(n.shape[1:3]) < 1:
            d.error("ASN150", f"`{n.name}` has no pixels left", g.nodes[n.name]["ir"].span)


def _check_reach(net: Network, g: nx.DiGraph, d: Diagnostics) -> None:
    keep = reachable_to_heads(g)
    for node in net.nodes:
        if node.name not in keep:
            d.warning("ASN131", f"`{node.name}` does not reach any head; it is built and "
                      "counted but cannot change the logits", node.where("name"),
                      help="`asnc compile -O1` removes it (dead-node elimination)")
