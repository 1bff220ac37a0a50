"""The documented JSON form: the IR's own pydantic serialisation (`asnc schema` prints it)."""

from __future__ import annotations

from typing import Any

from pydantic import TypeAdapter, ValidationError

from .diagnostics import DiagnosticError, Diagnostics, Source
from .ir import Block, Header, Network, Node, Span
from .partial import PartialNetwork, placeholder_header
from .pyerrors import pydantic_diagnostics

__all__ = ["to_json_form", "load_json_form", "json_schema", "is_json_form"]


def is_json_form(data: Any) -> bool:
    return isinstance(data, dict) and "header" in data and "nodes" in data


def to_json_form(net: Network) -> dict:
    return net.model_dump(mode="json")


def json_schema() -> dict:
    schema = Network.model_json_schema()
    schema["title"] = "asnc network (JSON form)"
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema


def load_json_form(data: dict, positions: dict[tuple, tuple[int, int]], source: Source) -> Network:
    try:
        net = Network.model_validate(data)
    except ValidationError as exc:
        diags = Diagnostics()

        def locate(loc: tuple) -> Span | None:
            # the deepest value on the way that the document has (skips union tags such as
            # the `stem` in ("nodes", 0, "stem", "type"))
            path: tuple = ()
            for part in loc:
                if path + (part,) in positions:
                    path += (part,)
            line, col = positions.get(path, (1, 1))
            return Span(line=line, col=col, end_line=line, end_col=col + 1)

        pydantic_diagnostics(exc, diags, locate, "ASN012")
        partial = _partial(data, positions)
        raise DiagnosticError(diags, source, partial) from None
    _place(net, positions)
    return net


def _span(positions: dict[tuple, tuple[int, int]], path: tuple) -> Span | None:
    if path not in positions:
        return None
    line, col = positions[path]
    return Span(line=line, col=col, end_line=line, end_col=col + 1)


def _place(net: Network, positions: dict[tuple, tuple[int, int]],
           index: list[int] | None = None) -> None:
    """Give each IR node the span of its JSON value (and of each of its fields), so that the
    checks point into the document. `index`: each node's position in `nodes` (default: its
    own)."""
    def spans_of(path: tuple, fields) -> dict[str, Span]:
        found = ((f, _span(positions, path + (f,))) for f in fields)
        return {f: sp for f, sp in found if sp is not None}

    # The header's own span only: its `attr_spans` say which settings the text writes out
    # (`printer`), and the JSON form writes them all.
    net.header.span = _span(positions, ("header",))
    for k, node in enumerate(net.nodes):
        path = ("nodes", index[k] if index is not None else k)
        node.span = _span(positions, path)
        node.attr_spans = spans_of(path, type(node).model_fields)
        if isinstance(node, Block):
            for j, inp in enumerate(node.inputs):
                inp.span = _span(positions, path + ("inputs", j))
                inp.attr_spans = spans_of(path + ("inputs", j), ("source", "weight"))
    if net.heads is not None:
        at = _span(positions, ("heads",))
        if at is not None:
            net.attr_spans["heads"] = at
        for j, h in enumerate(net.heads):
            at = _span(positions, ("heads", j))
            if at is not None:
                net.attr_spans.setdefault(f"heads.{h}", at)


_NODE: TypeAdapter = TypeAdapter(Node)
_HEADS: TypeAdapter = TypeAdapter(list[str] | None)


def _partial(data: Any, positions: dict[tuple, tuple[int, int]]) -> PartialNetwork | None:
    """What of an invalid JSON form loads (`dsl.partial`): a header of the valid settings
    (defaults for the others), the nodes that validate, the heads if valid."""
    if not isinstance(data, dict) or not isinstance(data.get("nodes"), list):
        return None
    fields = data.get("header")
    fields = fields if isinstance(fields, dict) else {}
    try:
        header, placeholders = Header(**fields), frozenset[str]()
    except (ValidationError, TypeError) as exc:
        header, placeholders = placeholder_header(fields, exc)
    nodes, index, dropped = [], [], set()
    for k, item in enumerate(data["nodes"]):
        try:
            nodes.append(_NODE.validate_python(item))
            index.append(k)
        except ValidationError:
            name = item.get("name") if isinstance(item, dict) else None
            if isinstance(name, str):
                dropped.add(name)
    try:
        heads = _HEADS.validate_python(data.get("heads"))
    except ValidationError:
        heads, placeholders = None, placeholders | {"heads"}
    net = Network(header=header, nodes=nodes, heads=heads)
    _place(net, positions, index)
    return PartialNetwork(net, placeholders, frozenset(dropped))
