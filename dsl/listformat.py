"""The official AssembleNet list format <-> IR.

A structure is a list of nodes; a node's index is its name there.
  stem:  [stem_type, temporal_dilation]          (-1 RGB, -2 flow, -3 object)
  block: [level, [inputs], filters, dilation, stride(, 0)]
Weights: per node `[]` or `[[w_0, ..., w_k]]` (after sigmoid); an empty or absent whole
list means "learn them all". A file is a bare structure list or an object with
`structure`, `weights`, `depth`. asnc writes more keys that it reads back so the round trip
is lossless: `names`, `heads`, `network` (every header setting but `depth`), when a block's
module is not the one its filters imply (`bottleneck3d`, a user module) `modules` (per
node, null for the implied one), and when the nodes were declared in another order than
the structure's (a topological one) `order` (the structure index of each node, in
declaration order). `with_import_defaults` fills in the header settings a file does not give
(`asnc import`); an exported file gives them all, so it imports as it was.
"""

from __future__ import annotations

import json
import re
from typing import Any

import networkx as nx
from pydantic import ValidationError

from .diagnostics import DiagnosticError, Diagnostics, Source
from .ir import LITE_UNITS, STEM_LIST_CODES, Block, Header, Input, Network, Span, Stem
from .partial import HEADER_FIELDS, PartialNetwork, placeholder_header
from .pyerrors import pydantic_diagnostics

__all__ = ["load_list", "to_list", "is_list_format", "default_name",
           "with_import_defaults", "given_settings"]

_CODE_TO_STEM = {v: k for k, v in STEM_LIST_CODES.items()}
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_PREFIX = {"rgb": "r", "flow": "f", "object": "o"}


def default_name(index: int, node: list) -> str:
    """Names given to list-format nodes: r0/f2/o4 for stems, b5 for blocks (the index)."""
    if isinstance(node, list) and len(node) == 2 and _is_int(node[0]) and node[0] in _CODE_TO_STEM:
        return f"{_PREFIX[_CODE_TO_STEM[node[0]]]}{index}"
    return f"b{index}"


def is_list_format(data: Any) -> bool:
    return isinstance(data, list) or (isinstance(data, dict) and "structure" in data)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


class _ListReader:
    def __init__(self, positions: dict[tuple, tuple[int, int]], diags: Diagnostics):
        self.positions = positions
        self.diags = diags
        self.placeholders: set[str] = set()  # header settings holding a default (`dsl.partial`)
        self.dropped: set[str] = set()  # nodes that did not load

    def at(self, path: tuple) -> Span | None:
        while path not in self.positions and path:
            path = path[:-1]
        if path not in self.positions:
            return None
        line, col = self.positions[path]
        return Span(line=line, col=col, end_line=line, end_col=col + 1)

    def error(self, code: str, message: str, path: tuple, help: str | None = None) -> None:
        self.diags.error(code, message, self.at(path), help=help)

    def read(self, data: Any, name: str) -> Network | None:
        root: tuple = ()
        if isinstance(data, dict):
            unknown = set(data) - {"structure", "weights", "depth", "names", "heads", "network",
                                   "modules", "order", "source", "_format"}
            for k in sorted(unknown):
                self.error("ASN004", f"unknown key `{k}` in a list-format file", (k,),
                           help="keys are: structure, weights, depth (and names, heads, "
                           "network, modules, order)")
            structure = data.get("structure")
            weights = data.get("weights")
            depth = data.get("depth", 50)
            names = data.get("names")
            heads = data.get("heads")
            settings = data.get("network") or {}
            modules = data.get("modules")
            order = data.get("order")
            root = ("structure",)
        else:
            structure, weights, depth, names, heads, settings = data, None, 50, None, None, {}
            modules = order = None
        if not isinstance(structure, list) or not structure:
            self.error("ASN004", "`structure` must be a non-empty list of nodes", root)
            return None
        if modules is not None and (not isinstance(modules, list) or len(modules) != len(
                structure) or not all(m is None or isinstance(m, str) for m in modules)):
            self.error("ASN004", "`modules` must list one module name (or null) per structure "
                       "node", ("modules",))
            modules = None
        if names is not None and (not isinstance(names, list) or len(names) != len(structure)
                                  or not all(isinstance(n, str) for n in names)):
            self.error("ASN004", "`names` must list one name per structure node", ("names",))
            names = None
        elif names is not None:
            for k, n in enumerate(names):
                if not _NAME.match(n):
                    self.error("ASN004", f"`{_short(n)}` is not a valid node name",
                               ("names", k), help="a name is a letter or `_` followed by "
                               "letters, digits and `_`")
                    names = None
                    break
        if order is not None and not (isinstance(order, list) and all(
                _is_int(k) for k in order) and sorted(order) == list(range(len(structure)))):
            self.error("ASN004", "`order` must list every structure index once (the "
                       "declaration order)", ("order",))
            order = None
        if not isinstance(settings, dict):
            self.error("ASN004", "`network` must be an object of header settings", ("network",))
            settings = {}
            self.placeholders.update(HEADER_FIELDS)  # whatever it meant is unknown
        header = self._header({"name": name, **settings, "depth": depth})
        header.span = self.at(root)  # "no head", "no stem": point at the structure
        if names is None:
            names = [default_name(i, node) for i, node in enumerate(structure)]
        nodes = []
        for i, node in enumerate(structure):
            nodes.append(self._node(i, node, root + (i,), names,
                                    modules[i] if modules is not None else None))
            if nodes[-1] is None:
                self.dropped.add(names[i])
        if weights is not None:
            self._weights(weights, nodes, ("weights",) if isinstance(data, dict) else ())
        if heads is not None:
            if not isinstance(heads, list) or not all(isinstance(h, str) for h in heads):
                self.error("ASN004", "`heads` must be a list of node names", ("heads",))
                heads = None
                self.placeholders.add("heads")
        if order is not None:
            nodes = [nodes[k] for k in order]
        net = Network(header=header, nodes=[n for n in nodes if n is not None], heads=heads)
        if heads is not None:
            spans = {"heads": self.at(("heads",))}
            for k, h in enumerate(heads):
                spans.setdefault(f"heads.{h}", self.at(("heads", k)))
            net.attr_spans.update({k: s for k, s in spans.items() if s is not None})
        return net

    def _header(self, fields: dict) -> Header:
        """The header; with errors, defaults stand in for the invalid settings."""
        try:
            return Header(**fields)
        except ValidationError as exc:
            def locate(loc: tuple) -> Span | None:
                if loc and loc[0] == "depth":
                    return self.at(("depth",))
                return self.at(("network",) + tuple(loc[:1]))
            pydantic_diagnostics(exc, self.diags, locate, "ASN010")
            header, bad = placeholder_header(fields, exc)
        except TypeError as exc:
            self.error("ASN010", f"invalid header settings: {exc}", ("network",))
            header, bad = placeholder_header(fields, exc)
        self.placeholders.update(bad)
        return header

    def _node(self, i: int, node: Any, path: tuple, names: list, module: str | None = None):
        if not isinstance(node, list) or not node:
            self.error("ASN004", f"node {i} must be a list, got `{_short(node)}`", path)
            return None
        name = names[i]
        if len(node) == 2:
            code, dil = node
            if not _is_int(code) or code not in _CODE_TO_STEM:
                self.error("ASN004", f"node {i}: stem type must be -1 (RGB), -2 (flow) or "
                           f"-3 (object), got `{_short(code)}`", path + (0,))
                return None
            if not _is_int(dil):
                self.error("ASN004", f"node {i}: temporal dilation must be an integer, got "
                           f"`{_short(dil)}`", path + (1,))
                return None
            stem = self._make(Stem, path, {"dilation": 1}, name=name,
                              type=_CODE_TO_STEM[code], dilation=dil)
            if stem is None:
                return None
            stem.span = self.at(path)
            stem.attr_spans = {"dilation": self.at(path + (1,))}
            return stem
        if len(node) not in (5, 6):
            self.error("ASN004", f"node {i} must be [stem_type, dilation] or [level, [inputs], "
                       f"filters, dilation, stride], got {len(node)} items", path)
            return None
        level, inputs, filters, dil, stride = node[:5]
        ok = True
        for k, (v, what) in enumerate([(level, "level"), (dil, "temporal dilation"),
                                       (stride, "spatial stride")]):
            if not _is_int(v):
                idx = (0, 3, 4)[k]
                self.error("ASN004", f"node {i}: {what} must be an integer, got `{_short(v)}`",
                           path + (idx,))
                ok = False
        if not isinstance(inputs, list) or not inputs or not all(_is_int(x) for x in inputs):
            self.error("ASN004", f"node {i}: inputs must be a non-empty list of node indexes, "
                       f"got `{_short(inputs)}`", path + (1,))
            ok = False
        else:
            for k, src in enumerate(inputs):
                if src >= i or src < 0:
                    what = "itself" if src == i else (f"node {src}, which comes later" if src > i
                                                      else f"node {src}")
                    self.error("ASN103" if src >= i else "ASN101",
                               f"node {i} reads {what}; inputs must be earlier nodes",
                               path + (1, k),
                               help="list-format nodes may only read nodes with smaller indexes")
                    ok = False
        if isinstance(filters, list) and len(filters) == 3 and all(_is_int(f) for f in filters):
            filters = tuple(filters)
        elif not _is_int(filters):
            self.error("ASN120", f"node {i}: filters must be an integer or three integers, got "
                       f"`{_short(filters)}`", path + (2,))
            ok = False
        if len(node) == 6 and node[5] != 0:
            self.error("ASN004", f"node {i}: the sixth item is padding and must be 0, got "
                       f"`{_short(node[5])}`", path + (5,))
            ok = False
        if not ok:
            return None
        src_names = [names[s] for s in inputs]
        extra = {"module": module} if module is not None else {}
        block = self._make(Block, path, {"level": 0, "inputs": 1, "filters": 2, "dilation": 3,
                                         "stride": 4}, name=name, level=level,
                           filters=filters, dilation=dil, stride=stride,
                           inputs=[Input(source=s) for s in src_names], **extra)
        if block is None:
            return None
        block.span = self.at(path)
        block.attr_spans = {k: self.at(path + (j,)) for j, k in
                            enumerate(("level", "inputs", "filters", "dilation", "stride"))}
        if module is not None:
            block.attr_spans["module"] = self.at(("modules", i))
        for k, inp in enumerate(block.inputs):
            inp.span = self.at(path + (1, k))
            inp.attr_spans = {"source": inp.span}
        return block

    def _make(self, cls, path: tuple, items: dict[str, int], **fields):
        """`cls(**fields)`, or None after reporting each invalid value at its list item."""
        try:
            return cls(**fields)
        except ValidationError as exc:
            def locate(loc: tuple) -> Span | None:
                if loc and loc[0] in items:
                    return self.at(path + (items[loc[0]],))
                return self.at(path)
            pydantic_diagnostics(exc, self.diags, locate, "ASN004")
            return None

    def _weights(self, weights: Any, nodes: list, path: tuple) -> None:
        if not isinstance(weights, list):
            self.error("ASN110", "`weights` must be a list (one entry per node)", path)
            return
        if not weights:  # "learn them all"
            return
        if len(weights) != len(nodes):
            self.error("ASN110", f"`weights` has {len(weights)} entries but the structure has "
                       f"{len(nodes)} nodes", path)
            return
        for i, (entry, node) in enumerate(zip(weights, nodes)):
            p = path + (i,)
            if node is None:
                continue
            if entry == []:
                continue
            if not (isinstance(entry, list) and len(entry) == 1 and isinstance(entry[0], list)):
                self.error("ASN110", f"weights of node {i} must be [] or [[w_0, ..., w_k]], got "
                           f"`{_short(entry)}`", p)
                continue
            values = entry[0]
            if isinstance(node, Stem):
                self.error("ASN110", f"node {i} is a stem and takes no connection weights", p)
                continue
            if len(values) != len(node.inputs):
                self.error("ASN110", f"node {i} has {len(node.inputs)} inputs but "
                           f"{len(values)} weights", p)
                continue
            bad = [k for k, w in enumerate(values)
                   if not isinstance(w, (int, float)) or isinstance(w, bool)]
            for k in bad:
                self.error("ASN111", f"weight {k} of node {i} must be a number, got "
                           f"`{_short(values[k])}`", p + (0, k))
            if bad:  # none, not some: the others would look like missing weights
                continue
            for k, (w, inp) in enumerate(zip(values, node.inputs)):
                inp.weight = float(w)
                inp.attr_spans["weight"] = self.at(p + (0, k))


def _short(v: Any) -> str:
    text = repr(v) if not isinstance(v, str) else v
    return text if len(text) <= 40 else text[:37] + "..."


def load_list(data: Any, positions: dict, source: Source, name: str) -> Network:
    diags = Diagnostics()
    reader = _ListReader(positions, diags)
    net = reader.read(data, name)
    if diags.has_errors or net is None:
        partial = PartialNetwork(net, frozenset(reader.placeholders),
                                 frozenset(reader.dropped)) if net is not None else None
        raise DiagnosticError(diags, source, partial)
    return net


def with_import_defaults(net: Network, text: str, name: str | None = None,
                         attention: str | None = None, objects: int | None = None,
                         lite: bool | None = None, pick: str | None = None) -> Network:
    """`net`, loaded from `text` (its structure `pick`, if given), with the header settings
    `asnc import` gives it.

    A bare structure carries no header settings, so an import fills in the ones the file
    does not give (`given_settings`) from the structure, unless given (the arguments; None
    means "default"). A file `asnc export --to list` wrote gives every setting, a JSON-form
    or `.asn` file too: those import as they are.

    - `name`: the network name;
    - `attention`: `peer` for an AssembleNet++ structure (an object stem or a lite block) whose
      header says `none` (the AssembleNet++ paper's model, SEMANTICS.md), else as loaded;
    - `objects` (`object_classes`): 151 (ADE-20k, the reference's default) when the
      structure has an object stem and the header gives none;
    - `lite` (the variant): lite when the header says so or every block is a lite block;
      a lite network whose file gives no `depth` gets the unit counts `LITE_UNITS` (the
      AssembleNet++lite run script has no depth table).
    """
    given = given_settings(text, pick)
    hdr = net.header
    has_objects = any(isinstance(n, Stem) and n.type == "object" for n in net.nodes)
    blocks = net.blocks
    plus = has_objects or any(b.module == "lite" for b in blocks)
    update: dict[str, Any] = {}
    if name:
        update["name"] = name
    if attention is not None:
        update["attention"] = attention
    elif "attention" not in given and plus and hdr.attention == "none":
        update["attention"] = "peer"
    if objects is not None:
        update["object_classes"] = objects
    elif "object_classes" not in given and hdr.object_classes is None and has_objects:
        update["object_classes"] = 151
    if lite is None:
        lite = hdr.variant == "lite" or ("variant" not in given and bool(blocks) and all(
            b.module == "lite" for b in blocks))
    update["variant"] = "lite" if lite else "standard"
    if lite and isinstance(hdr.depth, int) and "depth" not in given:
        update["depth"] = LITE_UNITS
    try:
        header = type(hdr).model_validate({**hdr.model_dump(), **update})
    except ValidationError as exc:  # an import option's value (`--name 1x`, `--objects 0`)
        d = Diagnostics()
        pydantic_diagnostics(exc, d, lambda loc: None, "ASN012")
        for diag in d:
            diag.message = "import option " + diag.message
        raise DiagnosticError(d, None) from None
    return net.model_copy(update={"header": header})


def given_settings(text: str, pick: str | None = None) -> set[str]:
    """The header fields a file gives: of a list-format file, its `network` object's keys
    and a top-level `depth`; of any other form (JSON form, `.asn` text), every field."""
    every = set(Header.model_fields)
    try:
        data = json.loads(text)  # load_text read it already: no deeper than jsonpos allows
    except ValueError:
        return every
    if pick is not None and isinstance(data, dict):
        data = data.get(pick)
    if isinstance(data, list):
        return set()
    if not isinstance(data, dict) or "structure" not in data or "header" in data:
        return every
    settings = data.get("network")
    keys = set(settings) if isinstance(settings, dict) else set()
    # the reader takes `depth` from the top level only
    return (keys - {"depth"}) | ({"depth"} if "depth" in data else set())


def to_list(net: Network) -> dict:
    """The official list format for `net`, plus what the list cannot express, for a lossless
    round trip: `names`, `heads`, `network` (every header setting, so that no import default
    replaces one), `modules` and `order` where needed.

    Nodes are written in declaration order when that order already has every input
    before its reader, otherwise in a stable topological order (and `order` restores it).
    """
    order = _list_order(net)
    index = {n.name: k for k, n in enumerate(order)}
    structure: list = []
    weights: list = []
    any_weight = False
    for node in order:
        if isinstance(node, Stem):
            structure.append([STEM_LIST_CODES[node.type], node.dilation])
            weights.append([])
            continue
        filters = node.filters if isinstance(node.filters, int) else list(node.filters)
        structure.append([node.level, [index[i.source] for i in node.inputs], filters,
                          node.dilation, node.stride, 0])
        if node.weighted:
            weights.append([[i.weight for i in node.inputs]])
            any_weight = True
        else:
            weights.append([])
    settings = {k: v for k, v in net.header.model_dump(mode="json").items() if k != "depth"}
    out: dict[str, Any] = {
        "structure": structure,
        "weights": weights if any_weight else [],
        "depth": net.header.depth if isinstance(net.header.depth, int) else list(
            net.header.depth),
        "names": [n.name for n in order],
        "network": settings,
    }
    if net.heads is not None:
        out["heads"] = list(net.heads)
    modules = [n.module if isinstance(n, Block) and n.module != _implied_module(n.filters)
               else None for n in order]
    if any(m is not None for m in modules):
        out["modules"] = modules
    position = {id(n): k for k, n in enumerate(order)}
    declared = [position[id(n)] for n in net.nodes]
    if declared != list(range(len(declared))):
        out["order"] = declared
    return out


def to_list_as_given(net: Network, text: str) -> list | dict:
    """`fmt`'s canonical list format of the list-format file `text` that loaded as `net`.

    `to_list(net)`, but keeping the header settings the file left out out (so that
    `import` still applies its defaults to them) and a bare structure list bare (it can
    only have held what a bare list expresses).
    """
    out = to_list(net)
    given = given_settings(text)
    if not given and text.lstrip().startswith("["):
        return out["structure"]
    out["network"] = {k: v for k, v in out["network"].items() if k in given}
    if not out["network"]:
        del out["network"]
    if "depth" not in given:
        del out["depth"]
    return out


def _implied_module(filters) -> str:
    """The module a list-format node gets from its filters alone."""
    return "bottleneck" if isinstance(filters, int) else "lite"


def _list_order(net: Network) -> list:
    """The nodes in a stable topological order: each time, the earliest declared node whose
    inputs are all placed (declaration order itself when it has every input before its
    reader); `compiler.graph.stable_topological_order` is the same networkx order on the
    compiler's graph."""
    index = {n.name: k for k, n in enumerate(net.nodes)}
    g: nx.DiGraph = nx.DiGraph()
    g.add_nodes_from(index)
    g.add_edges_from((i.source, b.name) for b in net.blocks for i in b.inputs)
    if len(g) != len(index) or not nx.is_directed_acyclic_graph(g):
        raise ValueError(f"network `{net.header.name}` has a cycle or an unknown input; "
                         "check it first")
    return [net.nodes[index[n]] for n in nx.lexicographical_topological_sort(g, key=index.get)]
