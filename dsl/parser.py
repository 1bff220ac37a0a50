"""`.asn` text -> IR.

lark parses with the grammar in `grammar.lark` (LALR, positions propagated); a
Transformer turns the tree into plain values carrying spans; `_Builder` turns those
into pydantic IR nodes, collecting every problem as a diagnostic instead of stopping
at the first. Syntax errors are classified by example snippets (lark's
`match_examples`), so the common mistakes get a message a person would write.
"""

from __future__ import annotations

import bisect
import math
import re
import threading
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

import lark
from lark import Lark, Token, Transformer
from pydantic import ValidationError

from .diagnostics import Diagnostics, DiagnosticError, Source, did_you_mean
from .ir import Block, Header, Input, Network, Span, Stem
from .perf import paused_gc
from .pyerrors import pydantic_diagnostics
from .textio import read_text

__all__ = ["parse", "parse_file", "SETTINGS"]

MAX_SYNTAX_ERRORS = 10


# Comments are collected by one permanent lexer callback into the list of the parse in
# progress (per thread). lark's contextual lexer builds each state's scanner lazily and keeps
# the callback it saw then, so swapping callbacks per parse would lose comments from the
# second parse in a process on.
_comment_sink = threading.local()


def _on_comment(tok: Token) -> Token:
    target = getattr(_comment_sink, "target", None)
    if target is not None:
        target.append(tok)
    return tok


@lru_cache(maxsize=1)
def _lark() -> Lark:
    grammar = resources.files(__package__).joinpath("grammar.lark").read_text()
    return Lark(grammar, parser="lalr", propagate_positions=True, maybe_placeholders=True,
                lexer_callbacks={"COMMENT": _on_comment})


# --- syntax errors -----------------------------------------------------------------------

class _MissingEquals(lark.exceptions.UnexpectedInput):
    label = "expected `=` after the node name"
    help = "write `stem r0 = rgb(dilation=4)` or `block b1 = bottleneck(level=0, filters=32) <- r0`"


class _MissingComma(lark.exceptions.UnexpectedInput):
    label = "expected `,` between inputs"
    help = "separate inputs with commas: `<- r0, r1 @0.5`"


class _MissingAt(lark.exceptions.UnexpectedInput):
    label = "a connection weight must follow `@`"
    help = "write the weight as `r0 @0.25`"


class _ArgColon(lark.exceptions.UnexpectedInput):
    label = "arguments are written `name=value`"
    help = "write `level=0`, not `level: 0` or `level 0`"


class _UnclosedHeader(lark.exceptions.UnexpectedInput):
    label = "the network header is not closed"
    help = "close the header with `}` before the first stem or block"


class _MissingArrow(lark.exceptions.UnexpectedInput):
    label = "expected `<-` before the block's inputs"
    help = "write the inputs after an arrow: `block b1 = bottleneck(level=0, filters=32) <- r0`"


class _EmptyWeight(lark.exceptions.UnexpectedInput):
    label = "`@` must be followed by a number"
    help = "write the weight after sigmoid, e.g. `r0 @0.25`"


class _UnclosedArgs(lark.exceptions.UnexpectedInput):
    label = "the argument list is not closed"
    help = "close the arguments with `)`"


class _HeaderSetting(lark.exceptions.UnexpectedInput):
    label = "header settings are written `name value`"
    help = "write e.g. `frames 32` or `size 224x224` inside the braces"


# Each snippet ends in the mistake. LALR states differ with the stack depth, so a mistake
# is shown at each depth it occurs at: first or later argument, setting or input, with and
# without an argument list.
_SYNTAX_EXAMPLES: dict[type, list[str]] = {
    _MissingEquals: ["stem r0 rgb", "block b1 bottleneck(level=0) <- r0", "stem r0 (dilation=1)"],
    _MissingComma: ["block b = bottleneck(level=0) <- r0 r1", "block b = x <- r0 r1",
                    "block b = x <- r0 @0.5 r1", "block b = x(level=0) <- r0 @0.5 r1",
                    "block b = x <- r0, r1 r2", "block b = x(level=0) <- r0, r1 r2",
                    "block b = x <- r0, r1 @0.5 r2", "block b = x(level=0) <- r0, r1 @0.5 r2"],
    _MissingAt: ["block b = bottleneck(level=0) <- r0 0.5", "block b = x <- r0 0.5",
                 "block b = x <- r0, r1 0.25", "block b = x(level=0) <- r0, r1 0.25"],
    _ArgColon: ["stem r0 = rgb(dilation: 4)", "block b = bottleneck(level 0)",
                "block b = bottleneck(level: 0)", "stem r = rgb(dilation 4)",
                "block b = x(level=0, filters 8)", "block b = x(level=0, filters: 8)"],
    _UnclosedHeader: ["network n { depth 50 stem r0 = rgb", "network n { frames 4 block",
                      "network n { stem r0 = rgb", "network n {", "network n { depth 50"],
    _MissingArrow: ["block b = bottleneck(level=0, filters=32) r0", "block b = x r0"],
    _EmptyWeight: ["block b = x <- r0 @", "block b = x <- r0 @, r1", "block b = x <- r0 @ @",
                   "block b = x(level=0) <- r0 @", "block b = x(level=0) <- r0 @, r1",
                   "block b = x(level=0) <- r0 @ @", "block b = x <- r0, r1 @",
                   "block b = x <- r0, r1 @, r2", "block b = x(level=0) <- r0, r1 @",
                   "block b = x(level=0) <- r0, r1 @, r2"],
    _UnclosedArgs: ["block b = bottleneck(level=0 <- r0", "stem r0 = rgb(dilation=4 stem",
                    "block b = x(level=0, filters=8 <- r0"],
    _HeaderSetting: ["network n { depth = 50 }", "network n { depth: 50 }",
                     "network n { frames 4 depth = 50 }", "network n { frames 4 depth: 50 }"],
}


@lru_cache(maxsize=1)
def _examples() -> dict[type, list[str]]:
    # lark compares parser states including stack depth, which differs for the first statement
    # and the later ones: give every snippet both as a first statement and after a header.
    return {cls: snippets + ["network n { }\n" + s for s in snippets if not
                             s.startswith("network")]
            for cls, snippets in _SYNTAX_EXAMPLES.items()}


def _state_key(state: Any) -> Any:
    stack = getattr(state, "state_stack", None)
    return (len(stack), stack[-1]) if stack else state


def _what(err: lark.exceptions.UnexpectedInput) -> tuple[Any, frozenset | None, Any]:
    """(state, accepted tokens, offending token or character) of a syntax error."""
    accepts = None
    if isinstance(err, lark.exceptions.UnexpectedToken) and err.accepts is not None:
        accepts = frozenset(err.accepts)
    if isinstance(err, lark.exceptions.UnexpectedCharacters):
        found: Any = err.char
    else:
        found = getattr(err, "token", None)
    return _state_key(err.state), accepts, found


@lru_cache(maxsize=1)
def _example_errors() -> list[tuple[type, Any, frozenset | None, Any]]:
    """The error each snippet raises, parsed once: (class, state, accepts, found)."""
    out = []
    for cls, snippets in _examples().items():
        for snippet in snippets:
            try:
                _lark().parse(snippet)
            except lark.exceptions.UnexpectedInput as ut:
                out.append((cls, *_what(ut)))
    return out


def _classify(err: lark.exceptions.UnexpectedInput) -> type | None:
    """lark's `match_examples` (same state, same accepted tokens; the same token wins, then
    a token of the same type, then the first example in that state), with the examples
    parsed once instead of at every error. An unexpected character matches only an example
    with that same character: `$` where an input may end is no missing comma."""
    state, accepts, found = _what(err)
    by_char = isinstance(err, lark.exceptions.UnexpectedCharacters)
    candidate, typed = None, False
    for cls, ex_state, ex_accepts, ex_found in _example_errors():
        if ex_state != state:
            continue
        if accepts is not None and ex_accepts is not None and ex_accepts != accepts:
            continue
        if by_char or isinstance(ex_found, str) and not isinstance(ex_found, Token):
            if ex_found == found:
                return cls
            continue
        if isinstance(found, Token) and isinstance(ex_found, Token):
            if ex_found == found:
                return cls
            if ex_found.type == found.type and not typed:
                candidate, typed = cls, True
        if candidate is None:
            candidate = cls
    return candidate


def _syntax_diagnostic(err: lark.exceptions.UnexpectedInput, text: str, diags: Diagnostics
                       ) -> type | None:
    cls = _classify(err)
    line, col = getattr(err, "line", 1) or 1, getattr(err, "column", 1) or 1
    if line < 1 or col < 1:  # UnexpectedEOF has -1
        line, col = _end_position(text)
    width = 1
    if isinstance(err, lark.exceptions.UnexpectedToken):
        found = "end of input" if err.token.type == "$END" else f"`{err.token}`"
        width = max(1, len(str(err.token))) if err.token.type != "$END" else 1
        if err.token.type == "$END":
            line, col = _end_position(text)
        expected = _describe_expected(err.accepts or err.expected)
        message = f"unexpected {found}, expected {expected}"
    elif isinstance(err, lark.exceptions.UnexpectedCharacters):
        message = f"unexpected character `{text[err.pos_in_stream]}`"
        expected = _describe_expected(err.allowed or set())
        if expected:
            message += f", expected {expected}"
    else:  # UnexpectedEOF
        line, col = _end_position(text)
        message = "unexpected end of input"
    help = None
    if cls is not None:
        message = f"{cls.label}: {message}"
        help = cls.help
    diags.error("ASN002", message, Span(line=line, col=col, end_line=line, end_col=col + width),
                help=help)
    return cls


_TOKEN_WORDS = {
    "NAME": "a name", "INT": "an integer", "FLOAT": "a number", "DIMS": "a size like `224x224`",
    "STRING": "a quoted string", "LBRACE": "`{`", "RBRACE": "`}`", "LPAR": "`(`", "RPAR": "`)`",
    "LSQB": "`[`", "RSQB": "`]`", "COMMA": "`,`", "EQUAL": "`=`", "_ARROW": "`<-`", "AT": "`@`",
    "NETWORK": "`network`", "STEM": "`stem`", "BLOCK": "`block`", "HEADS": "`heads`",
    "$END": "end of input",
}


def _describe_expected(names: set[str]) -> str:
    words = sorted({_TOKEN_WORDS.get(n, f"`{n.lower()}`") for n in names})
    if not words:
        return "something else"
    if len(words) > 6:
        return "one of " + ", ".join(words[:6]) + ", ..."
    return words[0] if len(words) == 1 else "one of " + ", ".join(words)


def _end_position(text: str) -> tuple[int, int]:
    """Just after the last non-blank character (lines end at "\n", as lark counts them)."""
    lines = text.rstrip().split("\n")
    return len(lines), len(lines[-1]) + 1


_STATEMENT = re.compile(r"^[ \t]*(network|stem|block|heads)\b", re.M)


def _blank_statement(text: str, line: int, col: int) -> str:
    """Blank the statement holding (line, col), keeping positions, so parsing can go on."""
    offsets = [0]
    for ln in text.split("\n"):  # lark counts lines at "\n" only
        offsets.append(offsets[-1] + len(ln) + 1)
    pos = offsets[min(line, len(offsets)) - 1] + col - 1
    starts = [m.start(1) for m in _STATEMENT.finditer(text)]
    begin = max([s for s in starts if s <= pos], default=0)
    end = min([s for s in starts if s > pos], default=len(text))
    if end <= begin:
        return text
    chunk = re.sub(r"[^\n]", " ", text[begin:end])
    return text[:begin] + chunk + text[end:]


# --- tree -> values with spans -----------------------------------------------------------

def _span(obj: Any) -> Span:
    if isinstance(obj, Token):
        return Span(obj.line, obj.column, obj.end_line or obj.line,
                    obj.end_column or obj.column + len(obj))
    return Span(obj.line, obj.column, obj.end_line, obj.end_column)


@dataclass
class Val:
    """A literal with its kind ("int", "float", "dims", "word", "string", "list") and span."""

    kind: str
    value: Any
    span: Span


class _ToValues(Transformer):
    """One method per rule or alias, called as `method(meta, children)`.

    `_call_userfunc` calls them directly: lark's `v_args(meta=True)` builds a wrapper per
    call and tokens are not visited, which made this pass as slow as the parse itself.
    """

    __visit_tokens__ = False

    def __init__(self, diags: Diagnostics):
        super().__init__(visit_tokens=False)
        self.diags = diags

    def _call_userfunc(self, tree, new_children=None):
        children = new_children if new_children is not None else tree.children
        return getattr(self, tree.data)(tree.meta, children)

    def _int(self, text: str, tok: Token) -> int:
        try:
            return int(text)
        except ValueError:  # more digits than Python converts (sys.get_int_max_str_digits)
            self.diags.error("ASN012", f"integer `{text[:20]}...` is too long ({len(text)} "
                             "digits)", _span(tok))
            return 0

    def int(self, meta, c):
        return Val("int", self._int(str(c[0]), c[0]), _span(c[0]))

    def float(self, meta, c):
        return Val("float", float(c[0]), _span(c[0]))

    def dims(self, meta, c):
        h, w = str(c[0]).split("x")
        return Val("dims", (self._int(h, c[0]), self._int(w, c[0])), _span(c[0]))

    def word(self, meta, c):
        return Val("word", str(c[0]), _span(c[0]))

    def string(self, meta, c):
        return Val("string", str(c[0])[1:-1], _span(c[0]))

    def list(self, meta, c):
        items = [v for v in c if v is not None]
        return Val("list", items, _span(meta) if not meta.empty else Span(line=1, col=1,
                                                                          end_line=1, end_col=1))

    def setting(self, meta, c):
        return (str(c[0]), _span(c[0]), c[1])

    def network(self, meta, c):
        return ("network", _span(meta), c[0], c[1:])

    def arg(self, meta, c):
        return (str(c[0]), _span(c[0]), c[1])

    def args(self, meta, c):
        return [a for a in c if a is not None]

    def callee(self, meta, c):
        tok = c[0]
        name = str(tok)[1:-1] if tok.type == "STRING" else str(tok)
        return (name, _span(tok))

    def stem(self, meta, c):
        return ("stem", _span(meta), c[0], (str(c[1]), _span(c[1])), c[2] or [])

    def weight(self, meta, c):
        return c[0]

    def input(self, meta, c):
        return (str(c[0]), _span(c[0]), c[1], _span(meta))

    def inputs(self, meta, c):
        return c

    def block(self, meta, c):
        return ("block", _span(meta), c[0], c[1], c[2] or [], c[3])

    def heads(self, meta, c):
        return ("heads", _span(meta), list(c))

    def start(self, meta, c):
        return c


# --- values -> IR ------------------------------------------------------------------------

# Header settings: .asn key -> (IR field, accepted value kinds, description).
SETTINGS: dict[str, tuple[str, tuple[str, ...], str]] = {
    "depth": ("depth", ("int", "list"), "a named depth (26, 38, 50, 68, 77, 101) or four unit counts"),
    "frames": ("frames", ("int",), "an integer"),
    "size": ("size", ("dims", "int"), "a size like `224x224`"),
    "classes": ("classes", ("int",), "an integer"),
    "combine": ("combine", ("word",), "`sigmoid` or `concat`"),
    "attention": ("attention", ("word",), "`none`, `self` or `peer`"),
    "objects": ("object_classes", ("int",), "the number of object classes"),
    "head_pool": ("head_pool", ("word",), "`mean` or `max`"),
    "bn_momentum": ("bn_momentum", ("float", "int"), "a number"),
    "bn_epsilon": ("bn_epsilon", ("float", "int"), "a number"),
    "variant": ("variant", ("word",), "`standard` or `lite`"),
    "flow_iterations": ("flow_iterations", ("int",), "an integer"),
}
_FIELD_TO_SETTING = {v[0]: k for k, v in SETTINGS.items()}
BLOCK_ARGS = {"level": ("int",), "filters": ("int", "list"), "dilation": ("int",),
              "stride": ("int",)}
STEM_ARGS = {"dilation": ("int",)}


def _plain(v: Val) -> Any:
    if v.kind == "list":
        return [_plain(x) for x in v.value]
    return v.value


class _Builder:
    def __init__(self, diags: Diagnostics):
        self.diags = diags

    def build(self, items: list) -> Network | None:
        header: Header | None = None
        nodes: list = []
        heads: list[str] | None = None
        heads_span: Span | None = None
        head_spans: dict[str, Span] = {}
        for item in items:
            kind = item[0]
            if kind == "network":
                if header is not None:
                    self.diags.error("ASN010", "the network header is declared twice", item[1],
                                     help="keep one `network NAME { ... }` header")
                    continue
                header = self._header(item)
            elif kind == "stem":
                node = self._stem(item)
                if node is not None:
                    nodes.append(node)
            elif kind == "block":
                node = self._block(item)
                if node is not None:
                    nodes.append(node)
            elif kind == "heads":
                if heads is not None:
                    self.diags.error("ASN010", "`heads` is declared twice", item[1],
                                     help="list every head in one `heads` statement")
                    continue
                heads = [str(t) for t in item[2]]
                heads_span = item[1]
                head_spans = {str(t): _span(t) for t in item[2]}
        if header is None:
            if not self.diags.has_errors:
                self.diags.error("ASN010", "missing `network NAME { ... }` header",
                                 Span(line=1, col=1, end_line=1, end_col=2),
                                 help="start the file with e.g. `network mynet { depth 50 }`")
            return None
        if self.diags.has_errors:
            return None
        net = Network(header=header, nodes=nodes, heads=heads)
        if heads_span is not None:
            net.attr_spans["heads"] = heads_span
            net.attr_spans.update({f"heads.{k}": v for k, v in head_spans.items()})
        return net

    def _check_kind(self, key: str, val: Val, kinds: tuple[str, ...], what: str, code: str) -> bool:
        if val.kind in kinds:
            return True
        shown = val.value if val.kind != "list" else _plain(val)
        self.diags.error(code, f"`{key}` expects {what}, got `{shown}`", val.span)
        return False

    def _header(self, item) -> Header | None:
        _, span, name_tok, settings = item
        data: dict[str, Any] = {"name": str(name_tok)}
        spans: dict[str, Span] = {"name": _span(name_tok)}
        seen: dict[str, Span] = {}
        for key, key_span, val in settings:
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
                continue
            value = _plain(val)
            if key == "size" and val.kind == "int":
                value = (value, value)
            if key == "depth" and val.kind == "list":
                if len(value) != 4 or not all(isinstance(v, int) for v in value):
                    self.diags.error("ASN010", "`depth` as a list needs four integers "
                                     f"(units per level), got `{value}`", val.span)
                    continue
                value = tuple(value)
            data[field] = value
            spans[field] = val.span
        try:
            header = Header(**data)
        except ValidationError as exc:
            pydantic_diagnostics(exc, self.diags, lambda loc: spans.get(str(loc[0])) if loc
                                 else span, "ASN010", names=_FIELD_TO_SETTING)
            return None
        header.span = span
        header.attr_spans = spans
        return header

    def _args(self, args, allowed: dict[str, tuple[str, ...]], what: str, code: str):
        data: dict[str, Any] = {}
        spans: dict[str, Span] = {}
        for key, key_span, val in args:
            if key not in allowed:
                self.diags.error(code, f"unknown {what} argument `{key}`", key_span,
                                 help=did_you_mean(key, allowed) or
                                 "arguments are: " + ", ".join(allowed))
                continue
            if key in data:
                self.diags.error(code, f"argument `{key}` is given twice", key_span)
                continue
            if not self._check_kind(key, val, allowed[key], _KIND_WORDS[allowed[key]], code):
                continue
            data[key] = _plain(val)
            spans[key] = val.span
        return data, spans

    def _stem(self, item) -> Stem | None:
        _, span, name_tok, (stype, stype_span), args = item
        data, spans = self._args(args, STEM_ARGS, "stem", "ASN011")
        if stype not in ("rgb", "flow", "object"):
            self.diags.error("ASN011", f"unknown stem type `{stype}`", stype_span,
                             help=did_you_mean(stype, ("rgb", "flow", "object")) or
                             "stem types are `rgb`, `flow` and `object`")
            return None
        spans.update(name=_span(name_tok), type=stype_span)
        try:
            node = Stem(name=str(name_tok), type=stype, **data)
        except ValidationError as exc:
            pydantic_diagnostics(exc, self.diags, lambda loc: spans.get(str(loc[0])) if loc
                                 else span, "ASN011")
            return None
        node.span, node.attr_spans = span, spans
        return node

    def _block(self, item) -> Block | None:
        _, span, name_tok, (module, module_span), args, inputs = item
        data, spans = self._args(args, BLOCK_ARGS, "block", "ASN011")
        spans.update(name=_span(name_tok), module=module_span)
        if inputs is None:
            self.diags.error("ASN011", f"block `{name_tok}` has no inputs", _span(name_tok),
                             help="connect it with `<- NAME, ...` after the module")
            return None
        for required in ("level", "filters"):
            if required not in data:
                self.diags.error("ASN011", f"block `{name_tok}` needs `{required}=...`",
                                 module_span)
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
        for src, src_span, weight, in_span in inputs:
            w = None
            if weight is not None:
                w = self._weight(weight)
                if w is None:
                    return None
            node_in = Input(source=src, weight=w)
            node_in.span = in_span
            node_in.attr_spans = {"source": src_span}
            if weight is not None:
                node_in.attr_spans["weight"] = _span(weight)
            ins.append(node_in)
        try:
            node = Block(name=str(name_tok), module=module, inputs=ins, **data)
        except ValidationError as exc:
            pydantic_diagnostics(exc, self.diags, lambda loc: spans.get(str(loc[0])) if loc
                                 else span, "ASN011")
            return None
        node.span, node.attr_spans = span, spans
        return node

    def _weight(self, tok: Token) -> float | None:
        text = str(tok).lower()
        if tok.type == "NAME":
            if text in ("nan", "inf", "infinity"):
                return math.nan if text == "nan" else math.inf
            self.diags.error("ASN111", f"connection weight must be a number, got `{tok}`",
                             _span(tok))
            return None
        return float(text)


_KIND_WORDS = {
    ("int",): "an integer",
    ("int", "list"): "an integer or a list of three integers",
}


# --- entry points ------------------------------------------------------------------------

def parse(text: str, path: str = "<input>") -> Network:
    """Parse `.asn` text into a Network, or raise DiagnosticError with every problem."""
    with paused_gc():
        return _parse(text, path)


def _parse(text: str, path: str) -> Network:
    source = Source(path, text)
    diags = Diagnostics()
    comments: list[Token] = []
    tree = None
    attempt = text
    for _ in range(MAX_SYNTAX_ERRORS):
        try:
            tree = _parse_with_comments(attempt, comments)
            break
        except lark.exceptions.UnexpectedInput as err:
            cls = _syntax_diagnostic(err, text, diags)
            line, col = getattr(err, "line", 1) or 1, getattr(err, "column", 1) or 1
            if isinstance(err, lark.exceptions.UnexpectedEOF) or (
                isinstance(err, lark.exceptions.UnexpectedToken) and err.token.type == "$END"
            ):
                break
            if cls is _UnclosedHeader:  # every later statement would read as a setting
                break
            blanked = _blank_statement(attempt, line, col)
            if blanked == attempt:
                break
            attempt = blanked
            comments.clear()
    if diags.has_errors:
        raise DiagnosticError(diags, source)
    items = _ToValues(diags).transform(tree)
    if diags.has_errors:
        raise DiagnosticError(diags, source)
    net = _Builder(diags).build(items)
    if diags.has_errors or net is None:
        raise DiagnosticError(diags, source)
    _attach_comments(net, comments)
    return net


def _parse_with_comments(text: str, comments: list[Token]):
    collected: list[Token] = []
    outer = getattr(_comment_sink, "target", None)
    _comment_sink.target = collected
    try:
        tree = _lark().parse(text)
    finally:
        _comment_sink.target = outer
    comments.extend(collected)
    return tree


class _HeadsAnchor:
    """Stands in for the `heads` statement (a plain list in the IR) while comments attach."""

    def __init__(self, span: Span):
        self.span = span
        self.comments_before: list[str] = []
        self.comment_after: str | None = None


def _attach_comments(net: Network, comments: list[Token]) -> None:
    """Give each comment to the statement it precedes or ends the line of, so `fmt` keeps it."""
    anchor = None
    if net.heads is not None and "heads" in net.attr_spans:
        anchor = _HeadsAnchor(net.attr_spans["heads"])
    statements = [net.header] + list(net.nodes) + ([anchor] if anchor is not None else [])
    statements = [s for s in statements if s.span is not None]
    statements.sort(key=lambda s: (s.span.line, s.span.col))
    header = net.header
    settings = sorted(((k, v) for k, v in header.attr_spans.items() if k != "name"),
                      key=lambda kv: (kv[1].line, kv[1].col))
    trailing: list[str] = []
    last_line: dict[int, int] = {}  # id(comment list) -> line of its last comment

    def put(target: list[str], text: str, line: int) -> None:
        # a blank line between two comments of one group is kept as an empty entry
        prev = last_line.get(id(target))
        if prev is not None and line > prev + 1:
            target.append("")
        target.append(text)
        last_line[id(target)] = line

    # Statements do not overlap, so their start and end lines both ascend: bisect, rather
    # than scan every statement for every comment.
    starts = [s.span.line for s in statements]
    ends = [s.span.end_line for s in statements]
    for tok in comments:
        text, line = str(tok).rstrip(), tok.line
        after = bisect.bisect_right(starts, line)  # statements[after:] start below the line
        first = bisect.bisect_left(ends, line, 0, after)  # the first one reaching the line
        owner = statements[first] if first < after else None
        if owner is header:
            on_line = [k for k, sp in settings if sp.line == line and sp.col < tok.column]
            if on_line:
                before, _ = header.setting_comments.get(on_line[-1], ([], None))
                header.setting_comments[on_line[-1]] = (before, text)
                continue
            if line == header.span.line:
                header.comment_after = text
                continue
            nxt = next((k for k, sp in settings if sp.line > line), None)
            key = nxt or "}"
            before, tail = header.setting_comments.setdefault(key, ([], None))
            put(before, text, line)
            continue
        if owner is not None and line == owner.span.end_line and tok.column > owner.span.col:
            owner.comment_after = text
            continue
        if owner is not None:
            put(owner.comments_before, text, line)
            continue
        nxt = statements[after] if after < len(statements) else None
        put(trailing if nxt is None else nxt.comments_before, text, line)
    net.comment_after = "\n".join(trailing) if trailing else None
    if anchor is not None:
        net.heads_comments = (anchor.comments_before, anchor.comment_after)


def parse_file(path: str) -> Network:
    text = read_text(path)
    return parse(text, path)
