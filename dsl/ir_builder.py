"""The syntax tree -> pydantic IR, collecting every problem as a diagnostic.

Settings and arguments are checked against the tables below (name known, given once, value
of an accepted kind) before the IR models validate the rest; each IR node gets its `span`
and the span of every attribute written in the text (`attr_spans`).
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence, TypeVar

from pydantic import ValidationError

from .diagnostics import Diagnostics, did_you_mean
from .ir import Block, Header, Input, Network, Span, Stem
from .partial import HEADER_FIELDS, PartialNetwork, placeholder_header
from .pyerrors import pydantic_diagnostics
from .syntax_tree import (
    ArgNode, BlockNode, DimsNode, FloatNode, HeadsNode, InputNode, IntNode, ListNode,
    NetworkNode, Statement, StemNode, Value, WeightNode, WordNode, plain_value,
)

N = TypeVar("N", Stem, Block)

__all__ = ["build_network", "SETTINGS", "BLOCK_ARGS", "STEM_ARGS"]

_Kinds = tuple[type[Value], ...]

# Header settings: .asn key -> (IR field, accepted value kinds, description).
SETTINGS: dict[str, tuple[str, _Kinds, str]] = {
    "depth": ("depth", (IntNode, ListNode),
              "a named depth (26, 38, 50, 68, 77, 101) or four unit counts"),
    "frames": ("frames", (IntNode,), "an integer"),
    "size": ("size", (DimsNode, IntNode), "a size like `224x224`"),
    "classes": ("classes", (IntNode,), "an integer"),
    "combine": ("combine", (WordNode,), "`sigmoid` or `concat`"),
    "attention": ("attention", (WordNode,), "`none`, `self` or `peer`"),
    "objects": ("object_classes", (IntNode,), "the number of object classes"),
    "head_pool": ("head_pool", (WordNode,), "`mean` or `max`"),
    "bn_momentum": ("bn_momentum", (FloatNode, IntNode), "a number"),
    "bn_epsilon": ("bn_epsilon", (FloatNode, IntNode), "a number"),
    "variant": ("variant", (WordNode,), "`standard` or `lite`"),
    "flow_iterations": ("flow_iterations", (IntNode,), "an integer"),
}
_FIELD_TO_SETTING = {v[0]: k for k, v in SETTINGS.items()}
# Block and stem arguments: name -> accepted value kinds (described by _KIND_WORDS).
BLOCK_ARGS: dict[str, _Kinds] = {"level": (IntNode,), "filters": (IntNode, ListNode),
                                 "dilation": (IntNode,), "stride": (IntNode,)}
STEM_ARGS: dict[str, _Kinds] = {"dilation": (IntNode,)}
_KIND_WORDS: dict[_Kinds, str] = {
    (IntNode,): "an integer",
    (IntNode, ListNode): "an integer or a list of three integers",
}
_STEM_TYPES = ("rgb", "flow", "object")  # the values of `Stem.type`


def build_network(statements: Sequence[Statement], diags: Diagnostics
                  ) -> tuple[Network | None, PartialNetwork | None]:
    """The Network the statements declare, or (None, what loaded of it) after adding its
    problems to `diags` (`dsl.partial`: the errors of the rest are still reported)."""
    builder = _Builder(diags)
    net = builder.build(statements)
    if not diags.has_errors:
        return net, None
    if net is None:
        return None, None
    return None, PartialNetwork(net, frozenset(builder.placeholders), frozenset(builder.dropped))


class _Builder:
    def __init__(self, diags: Diagnostics):
        self.diags = diags
        self.placeholders: set[str] = set()  # header fields holding a default (`dsl.partial`)
        self.dropped: set[str] = set()  # nodes that did not load

    def build(self, statements: Sequence[Statement]) -> Network | None:
        header: Header | None = None
        nodes: list[Stem | Block] = []
        heads: HeadsNode | None = None
        for st in statements:
            if isinstance(st, NetworkNode):
                if header is not None:
                    self.diags.error("ASN010", "the network header is declared twice", st.span,
                                     help="keep one `network NAME { ... }` header")
                    continue
                header = self._header(st)
            elif isinstance(st, StemNode):
                stem = self._stem(st)
                if stem is not None:
                    nodes.append(stem)
                else:
                    self.dropped.add(st.name)
            elif isinstance(st, BlockNode):
                block = self._block(st)
                if block is not None:
                    nodes.append(block)
                else:
                    self.dropped.add(st.name)
            else:
                if heads is not None:
                    self.diags.error("ASN010", "`heads` is declared twice", st.span,
                                     help="list every head in one `heads` statement")
                    continue
                heads = st
        if header is None:
            if not self.diags.has_errors:
                self.diags.error("ASN010", "missing `network NAME { ... }` header",
                                 Span(line=1, col=1, end_line=1, end_col=2),
                                 help="start the file with e.g. `network mynet { depth 50 }`")
                return None
            # other errors come first; check the nodes against a header of defaults
            header = Header(name="network")
            self.placeholders.update(HEADER_FIELDS)
        net = Network(header=header, nodes=nodes,
                      heads=list(heads.names) if heads is not None else None)
        if heads is not None:
            net.attr_spans["heads"] = heads.span
            net.attr_spans.update({f"heads.{k}": v for k, v in zip(heads.names,
                                                                    heads.name_spans)})
        return net

    def _check_kind(self, key: str, val: Value, kinds: _Kinds, what: str, code: str) -> bool:
        if isinstance(val, kinds):
            return True
        self.diags.error(code, f"`{key}` expects {what}, got `{plain_value(val)}`", val.span)
        return False

    def _header(self, st: NetworkNode) -> Header:
        data: dict[str, Any] = {"name": st.name}
        spans: dict[str, Span] = {"name": st.name_span}
        seen: dict[str, Span] = {}
        for setting in st.settings:
            key, key_span, val = setting.name, setting.name_span, setting.value
            if key not in SETTINGS:
                self.diags.error("ASN010", f"unknown setting `{key}`", key_span,
                                 help=did_you_mean(key, SETTINGS) or
                                 "settings are: " + ", ".join(SETTINGS))
                continue
            if key in seen:
                self.diags.error("ASN010", f"setting `{key}` is given twice", key_span,
                                 notes=[f"first given at line {seen[key].line}"])
                continue
            seen[key] = key_span
            field, kinds, what = SETTINGS[key]
            if not self._check_kind(key, val, kinds, what, "ASN010"):
                self.placeholders.add(field)
                continue
            value = plain_value(val)
            if key == "size" and isinstance(val, IntNode):
                value = (value, value)
            if key == "depth" and isinstance(val, ListNode):
                if len(value) != 4 or not all(isinstance(v, int) for v in value):
                    self.diags.error("ASN010", "`depth` as a list needs four integers "
                                     f"(units per level), got `{value}`", val.span)
                    self.placeholders.add(field)
                    continue
                value = tuple(value)
            data[field] = value
            spans[field] = val.span
        try:
            header = Header(**data)
        except ValidationError as exc:
            pydantic_diagnostics(exc, self.diags, lambda loc: spans.get(str(loc[0])) if loc
                                 else st.span, "ASN010", names=_FIELD_TO_SETTING)
            # defaults stand in for the invalid values, so the blocks are still checked
            header, bad = placeholder_header(data, exc)
            self.placeholders.update(bad)
            spans = {k: v for k, v in spans.items() if k not in bad}
        header.span = st.span
        header.attr_spans = spans
        return header

    def _args(self, args: Sequence[ArgNode], allowed: Mapping[str, _Kinds], what: str,
              code: str) -> tuple[dict[str, Any], dict[str, Span]]:
        data: dict[str, Any] = {}
        spans: dict[str, Span] = {}
        for arg in args:
            key, val = arg.name, arg.value
            if key not in allowed:
                self.diags.error(code, f"unknown {what} argument `{key}`", arg.name_span,
                                 help=did_you_mean(key, allowed) or
                                 "arguments are: " + ", ".join(allowed))
                continue
            if key in data:
                self.diags.error(code, f"argument `{key}` is given twice", arg.name_span)
                continue
            if not self._check_kind(key, val, allowed[key], _KIND_WORDS[allowed[key]], code):
                continue
            data[key] = plain_value(val)
            spans[key] = val.span
        return data, spans

    def _stem(self, st: StemNode) -> Stem | None:
        data, spans = self._args(st.args, STEM_ARGS, "stem", "ASN011")
        if st.type not in _STEM_TYPES:
            self.diags.error("ASN011", f"unknown stem type `{st.type}`", st.type_span,
                             help=did_you_mean(st.type, _STEM_TYPES) or
                             "stem types are `rgb`, `flow` and `object`")
            return None
        spans.update(name=st.name_span, type=st.type_span)
        return self._node(Stem, st.span, spans, name=st.name, type=st.type, **data)

    def _block(self, st: BlockNode) -> Block | None:
        data, spans = self._args(st.args, BLOCK_ARGS, "block", "ASN011")
        spans.update(name=st.name_span, module=st.callee.span)
        if st.inputs is None:
            self.diags.error("ASN011", f"block `{st.name}` has no inputs", st.name_span,
                             help="connect it with `<- NAME, ...` after the module")
            return None
        given = {arg.name for arg in st.args}  # given but invalid: reported already
        for required in ("level", "filters"):
            if required not in given:
                self.diags.error("ASN011", f"block `{st.name}` needs `{required}=...`",
                                 st.callee.span)
        if "level" not in data or "filters" not in data:
            return None
        filters = data["filters"]
        if isinstance(filters, list):
            if not all(isinstance(f, int) for f in filters) or len(filters) not in (1, 3):
                self.diags.error("ASN120", f"`filters` must be one integer or three "
                                 f"(lite: [expand, middle, out]), got `{filters}`",
                                 spans["filters"])
                return None
            data["filters"] = filters[0] if len(filters) == 1 else tuple(filters)
        ins = []
        for inp in st.inputs:
            node_in = self._input(inp)
            if node_in is None:
                return None
            ins.append(node_in)
        return self._node(Block, st.span, spans, name=st.name, module=st.callee.name,
                          inputs=ins, **data)

    def _node(self, cls: type[N], span: Span, spans: dict[str, Span], **fields: Any) -> N | None:
        """``cls(**fields)`` with its spans, or None with pydantic's complaints as ASN011."""
        try:
            node = cls(**fields)
        except ValidationError as exc:
            pydantic_diagnostics(exc, self.diags, lambda loc: spans.get(str(loc[0])) if loc
                                 else span, "ASN011")
            return None
        node.span, node.attr_spans = span, spans
        return node

    def _input(self, inp: InputNode) -> Input | None:
        w = None
        if inp.weight is not None:
            w = self._weight(inp.weight)
            if w is None:
                return None
        node_in = Input(source=inp.source, weight=w)
        node_in.span = inp.span
        node_in.attr_spans = {"source": inp.source_span}
        if inp.weight is not None:
            node_in.attr_spans["weight"] = inp.weight.span
        return node_in

    def _weight(self, weight: WeightNode) -> float | None:
        text = weight.text.lower()
        if weight.is_name:
            if text in ("nan", "inf", "infinity"):
                return math.nan if text == "nan" else math.inf
            self.diags.error("ASN111", f"connection weight must be a number, got "
                             f"`{weight.text}`", weight.span)
            return None
        return float(text)
