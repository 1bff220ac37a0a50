"""lark's parse tree -> the syntax tree: frozen dataclasses named after `grammar.lark`'s rules.

Each node keeps the source text's values (names as written, numbers converted) and its
`span`; the list rules (`start`, `args`, `inputs`) become tuples of nodes. Nothing is
checked here except what only the text can tell (an integer too long to convert);
`ir_builder` turns these nodes into IR.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Union

from lark import Token, Transformer, Tree
from lark.tree import Meta

from .diagnostics import Diagnostics
from .ir import Span

# Lists inside lists, at most (the language needs one level: `depth [3, 4, 6, 3]`); the same
# bound as the JSON reader's (`jsonpos.MAX_DEPTH`).
MAX_NESTING = 64
__all__ = [
    "MAX_NESTING", "NetworkNode", "SettingNode", "StemNode", "BlockNode", "CalleeNode", "ArgNode",
    "InputNode", "WeightNode", "HeadsNode", "IntNode", "FloatNode", "DimsNode", "WordNode",
    "StringNode", "ListNode", "Value", "Statement", "SyntaxTreeBuilder", "plain_value",
]


# --- values (`?value` and its aliases) ---------------------------------------------------

@dataclass(frozen=True, slots=True)
class IntNode:
    value: int
    span: Span


@dataclass(frozen=True, slots=True)
class FloatNode:
    value: float
    span: Span


@dataclass(frozen=True, slots=True)
class DimsNode:
    """`224x224`: (height, width)."""

    value: tuple[int, int]
    span: Span


@dataclass(frozen=True, slots=True)
class WordNode:
    """A bare name used as a value, e.g. `sigmoid`."""

    value: str
    span: Span


@dataclass(frozen=True, slots=True)
class StringNode:
    """A quoted string, without its quotes."""

    value: str
    span: Span


@dataclass(frozen=True, slots=True)
class ListNode:
    """`[v, ...]`; the span of `[]` written alone is line 1, column 1."""

    items: tuple[Value, ...]
    span: Span


Value = Union[IntNode, FloatNode, DimsNode, WordNode, StringNode, ListNode]


def plain_value(v: Value) -> Any:
    """The Python value of `v`: a list node as a list of plain values."""
    if isinstance(v, ListNode):
        return [plain_value(x) for x in v.items]
    return v.value


# --- statements and their parts ----------------------------------------------------------

def _joined(first: Span, last: Span) -> Span:
    # Made on demand (nothing reads it today): made eagerly, one per setting and argument,
    # these spans cost 1% of the parse.
    return Span(first.line, first.col, last.end_line, last.end_col)


@dataclass(frozen=True, slots=True)
class _NamedValue:
    name: str
    name_span: Span
    value: Value

    @property
    def span(self) -> Span:
        return _joined(self.name_span, self.value.span)


@dataclass(frozen=True, slots=True)
class SettingNode(_NamedValue):
    """`name value` inside the network header."""


@dataclass(frozen=True, slots=True)
class NetworkNode:
    """`network NAME { setting* }`."""

    name: str
    name_span: Span
    settings: tuple[SettingNode, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class ArgNode(_NamedValue):
    """`name=value` in an argument list."""


@dataclass(frozen=True, slots=True)
class StemNode:
    """`stem NAME = TYPE [(args)]`."""

    name: str
    name_span: Span
    type: str
    type_span: Span
    args: tuple[ArgNode, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class CalleeNode:
    """The module a block calls: a name, or a quoted `package.module:Factory`."""

    name: str
    span: Span


@dataclass(frozen=True, slots=True)
class WeightNode:
    """The token after `@`, as written; `span` is that token's, without the `@`."""

    text: str
    is_name: bool  # a NAME (`nan`, `inf`, or a mistake), not an INT or FLOAT
    span: Span


@dataclass(frozen=True, slots=True)
class InputNode:
    """`NAME [@weight]` in a block's input list."""

    source: str
    source_span: Span
    weight: WeightNode | None
    span: Span


@dataclass(frozen=True, slots=True)
class BlockNode:
    """`block NAME = callee [(args)] [<- inputs]`; `inputs` is None without the arrow."""

    name: str
    name_span: Span
    callee: CalleeNode
    args: tuple[ArgNode, ...]
    inputs: tuple[InputNode, ...] | None
    span: Span


@dataclass(frozen=True, slots=True)
class HeadsNode:
    """`heads NAME, ...`: the names and, in the same order, their spans."""

    names: tuple[str, ...]
    name_spans: tuple[Span, ...]
    span: Span


Statement = Union[NetworkNode, StemNode, BlockNode, HeadsNode]


# --- the transformer ---------------------------------------------------------------------

def _token_span(tok: Token) -> Span:
    t: Any = tok  # lark types a token's position as optional; the lexer's always have one
    return Span(t.line, t.column, t.end_line or t.line, t.end_column or t.column + len(t))


def _meta_span(meta: Meta) -> Span:
    return Span(meta.line, meta.column, meta.end_line, meta.end_column)


def _to_int(text: str, tok: Token, diags: Diagnostics) -> int:
    try:
        return int(text)
    except ValueError:  # more digits than Python converts (sys.get_int_max_str_digits)
        diags.error("ASN012", f"integer `{text[:20]}...` is too long ({len(text)} digits)",
                    _token_span(tok))
        return 0


class SyntaxTreeBuilder(Transformer):
    """One method per rule or alias of `grammar.lark`, called as `method(meta, children)`;
    `transform(tree)` returns the statements, in source order.

    Terminals are converted by the value aliases (each holds exactly one terminal), not
    visited. Methods are called directly, children before parents, in one plain recursion:
    lark's `v_args(meta=True)` builds a wrapper per call, which made this pass as slow as
    the parse itself, and its walk (a generator per tree) takes 1.6 times as long as this.
    """

    __visit_tokens__ = False

    def __init__(self, diags: Diagnostics):
        super().__init__(visit_tokens=False)
        self.diags = diags
        self._methods: dict[str, Callable[[Meta, list[Any]], Any]] = {}

    def _transform_tree(self, tree: Tree, lists: int = 0) -> Any:
        # `lists`: how many list values enclose this tree. Past MAX_NESTING the value is
        # reported, not descended into: 500 nested lists overflowed Python's stack here.
        if tree.data == "list":
            lists += 1
            if lists > MAX_NESTING:
                span = _meta_span(tree.meta)
                self.diags.error("ASN012", f"value is nested more than {MAX_NESTING} levels "
                                 "deep", Span(span.line, span.col, span.line, span.col + 1),
                                 help="a value is a number, a name or a flat list")
                return ListNode((), span)
        children = [self._transform_tree(c, lists) if isinstance(c, Tree) else c
                    for c in tree.children]
        method = self._methods.get(tree.data)
        if method is None:
            method = self._methods[tree.data] = getattr(self, tree.data)
        return method(tree.meta, children)

    def start(self, meta: Meta, c: list[Statement]) -> tuple[Statement, ...]:
        return tuple(c)

    def network(self, meta: Meta, c: list[Any]) -> NetworkNode:
        return NetworkNode(str(c[0]), _token_span(c[0]), tuple(c[1:]), _meta_span(meta))

    def setting(self, meta: Meta, c: list[Any]) -> SettingNode:
        return SettingNode(str(c[0]), _token_span(c[0]), c[1])

    def stem(self, meta: Meta, c: list[Any]) -> StemNode:
        return StemNode(str(c[0]), _token_span(c[0]), str(c[1]), _token_span(c[1]), c[2] or (),
                        _meta_span(meta))

    def block(self, meta: Meta, c: list[Any]) -> BlockNode:
        return BlockNode(str(c[0]), _token_span(c[0]), c[1], c[2] or (), c[3], _meta_span(meta))

    def callee(self, meta: Meta, c: list[Token]) -> CalleeNode:
        tok = c[0]
        return CalleeNode(str(tok)[1:-1] if tok.type == "STRING" else str(tok), _token_span(tok))

    def args(self, meta: Meta, c: list[ArgNode | None]) -> tuple[ArgNode, ...]:
        return tuple([a for a in c if a is not None])

    def arg(self, meta: Meta, c: list[Any]) -> ArgNode:
        return ArgNode(str(c[0]), _token_span(c[0]), c[1])

    def inputs(self, meta: Meta, c: list[InputNode]) -> tuple[InputNode, ...]:
        return tuple(c)

    def input(self, meta: Meta, c: list[Any]) -> InputNode:
        return InputNode(str(c[0]), _token_span(c[0]), c[1], _meta_span(meta))

    def weight(self, meta: Meta, c: list[Token]) -> WeightNode:
        return WeightNode(str(c[0]), c[0].type == "NAME", _token_span(c[0]))

    def heads(self, meta: Meta, c: list[Token]) -> HeadsNode:
        return HeadsNode(tuple(str(t) for t in c), tuple(_token_span(t) for t in c),
                         _meta_span(meta))

    # the `?value` aliases, named after the Python types they make (hence last in the class)

    def int(self, meta: Meta, c: list[Token]) -> IntNode:
        return IntNode(_to_int(str(c[0]), c[0], self.diags), _token_span(c[0]))

    def float(self, meta: Meta, c: list[Token]) -> FloatNode:
        return FloatNode(float(c[0]), _token_span(c[0]))

    def dims(self, meta: Meta, c: list[Token]) -> DimsNode:
        h, w = str(c[0]).split("x")
        return DimsNode((_to_int(h, c[0], self.diags), _to_int(w, c[0], self.diags)),
                        _token_span(c[0]))

    def word(self, meta: Meta, c: list[Token]) -> WordNode:
        return WordNode(str(c[0]), _token_span(c[0]))

    def string(self, meta: Meta, c: list[Token]) -> StringNode:
        return StringNode(str(c[0])[1:-1], _token_span(c[0]))

    def list(self, meta: Meta, c: list[Value | None]) -> ListNode:
        items = tuple([v for v in c if v is not None])
        return ListNode(items, _meta_span(meta) if not meta.empty else Span(line=1, col=1,
                                                                             end_line=1, end_col=1))
