"""Syntax errors as a person would describe them, chosen by example (lark's `match_examples`).

`SYNTAX_EXAMPLES` maps each `SyntaxHint` to malformed snippets that end in its
mistake. A failed parse is matched against the errors those snippets raise (same parser
state, same accepted tokens, then the offending token) to pick the hint, whose label
prefixes lark's "unexpected X, expected Y" and whose help says how to fix it. With no match
the diagnostic is lark's own words, never swallowed. Every snippet is also a test case
(tests/test_diagnostics.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any, cast

import lark
from lark import Token

from .diagnostics import Diagnostics
from .grammar import asn_lark
from .ir import Span

__all__ = ["SYNTAX_EXAMPLES", "SyntaxHint", "classify", "syntax_diagnostic"]


@dataclass(frozen=True)
class SyntaxHint:
    """A kind of syntax mistake: `label` prefixes the message, `help` says how to fix it,
    `recoverable` whether parsing may go on after blanking the statement with the mistake.
    (lark's `match_examples` pattern: the hint is only a label for a parser state, never
    raised, so it is a value, not an exception class.)"""

    label: str
    help: str
    recoverable: bool = True


MissingEquals = SyntaxHint(
    "expected `=` after the node name",
    "write `stem r0 = rgb(dilation=4)` or `block b1 = bottleneck(level=0, filters=32) <- r0`")
MissingComma = SyntaxHint("expected `,` between inputs",
                          "separate inputs with commas: `<- r0, r1 @0.5`")
MissingAt = SyntaxHint("a connection weight must follow `@`", "write the weight as `r0 @0.25`")
ArgColon = SyntaxHint("arguments are written `name=value`",
                      "write `level=0`, not `level: 0` or `level 0`")
UnclosedHeader = SyntaxHint("the network header is not closed",
                            "close the header with `}` before the first stem or block",
                            recoverable=False)  # every later statement would read as a setting
MissingArrow = SyntaxHint(
    "expected `<-` before the block's inputs",
    "write the inputs after an arrow: `block b1 = bottleneck(level=0, filters=32) <- r0`")
EmptyWeight = SyntaxHint("`@` must be followed by a number",
                         "write the weight after sigmoid, e.g. `r0 @0.25`")
UnclosedArgs = SyntaxHint("the argument list is not closed", "close the arguments with `)`")
HeaderSetting = SyntaxHint("header settings are written `name value`",
                           "write e.g. `frames 32` or `size 224x224` inside the braces")


# Each snippet ends in the mistake. LALR states differ with the stack depth, so a mistake
# is shown at each depth it occurs at: first or later argument, setting or input, with and
# without an argument list.
SYNTAX_EXAMPLES: dict[SyntaxHint, list[str]] = {
    MissingEquals: ["stem r0 rgb", "block b1 bottleneck(level=0) <- r0", "stem r0 (dilation=1)"],
    MissingComma: ["block b = bottleneck(level=0) <- r0 r1", "block b = x <- r0 r1",
                   "block b = x <- r0 @0.5 r1", "block b = x(level=0) <- r0 @0.5 r1",
                   "block b = x <- r0, r1 r2", "block b = x(level=0) <- r0, r1 r2",
                   "block b = x <- r0, r1 @0.5 r2", "block b = x(level=0) <- r0, r1 @0.5 r2"],
    MissingAt: ["block b = bottleneck(level=0) <- r0 0.5", "block b = x <- r0 0.5",
                "block b = x <- r0, r1 0.25", "block b = x(level=0) <- r0, r1 0.25"],
    ArgColon: ["stem r0 = rgb(dilation: 4)", "block b = bottleneck(level 0)",
               "block b = bottleneck(level: 0)", "stem r = rgb(dilation 4)",
               "block b = x(level=0, filters 8)", "block b = x(level=0, filters: 8)"],
    UnclosedHeader: ["network n { depth 50 stem r0 = rgb", "network n { frames 4 block",
                     "network n { stem r0 = rgb", "network n {", "network n { depth 50"],
    MissingArrow: ["block b = bottleneck(level=0, filters=32) r0", "block b = x r0"],
    EmptyWeight: ["block b = x <- r0 @", "block b = x <- r0 @, r1", "block b = x <- r0 @ @",
                  "block b = x(level=0) <- r0 @", "block b = x(level=0) <- r0 @, r1",
                  "block b = x(level=0) <- r0 @ @", "block b = x <- r0, r1 @",
                  "block b = x <- r0, r1 @, r2", "block b = x(level=0) <- r0, r1 @",
                  "block b = x(level=0) <- r0, r1 @, r2"],
    UnclosedArgs: ["block b = bottleneck(level=0 <- r0", "stem r0 = rgb(dilation=4 stem",
                   "block b = x(level=0, filters=8 <- r0"],
    HeaderSetting: ["network n { depth = 50 }", "network n { depth: 50 }",
                    "network n { frames 4 depth = 50 }", "network n { frames 4 depth: 50 }"],
}


# --- classifying an error ----------------------------------------------------------------

# (state, accepted tokens, offending token or character) of one syntax error
_ErrorKey = tuple[Any, "frozenset[str] | None", Any]


@lru_cache(maxsize=1)
def _examples() -> dict[SyntaxHint, list[str]]:
    # lark compares parser states including stack depth, which differs for the first statement
    # and the later ones: give every snippet both as a first statement and after a header.
    return {hint: snippets + ["network n { }\n" + s for s in snippets if not
                             s.startswith("network")]
            for hint, snippets in SYNTAX_EXAMPLES.items()}


def _state_key(state: Any) -> Any:
    stack = getattr(state, "state_stack", None)
    return (len(stack), stack[-1]) if stack else state


def _error_key(err: lark.exceptions.UnexpectedInput) -> _ErrorKey:
    accepts = None
    if isinstance(err, lark.exceptions.UnexpectedToken) and err.accepts is not None:
        accepts = frozenset(err.accepts)
    if isinstance(err, lark.exceptions.UnexpectedCharacters):
        found: Any = err.char
    else:
        found = getattr(err, "token", None)
    return _state_key(err.state), accepts, found


@lru_cache(maxsize=1)
def _example_errors() -> list[tuple[SyntaxHint, _ErrorKey]]:
    """The error each snippet raises, parsed once: (class, its key)."""
    out = []
    for hint, snippets in _examples().items():
        for snippet in snippets:
            try:
                asn_lark().parse(snippet)
            except lark.exceptions.UnexpectedInput as ut:
                out.append((hint, _error_key(ut)))
    return out


def classify(err: lark.exceptions.UnexpectedInput) -> SyntaxHint | None:
    """lark's `match_examples` (same state, same accepted tokens; the same token wins, then
    a token of the same type, then the first example in that state), with the examples
    parsed once instead of at every error. An unexpected character matches only an example
    with that same character: `$` where an input may end is no missing comma."""
    state, accepts, found = _error_key(err)
    by_char = isinstance(err, lark.exceptions.UnexpectedCharacters)
    candidate, typed = None, False
    for hint, (ex_state, ex_accepts, ex_found) in _example_errors():
        if ex_state != state:
            continue
        if accepts is not None and ex_accepts is not None and ex_accepts != accepts:
            continue
        if by_char or isinstance(ex_found, str) and not isinstance(ex_found, Token):
            if ex_found == found:
                return hint
            continue
        if isinstance(found, Token) and isinstance(ex_found, Token):
            if ex_found == found:
                return hint
            if ex_found.type == found.type and not typed:
                candidate, typed = hint, True
        if candidate is None:
            candidate = hint
    return candidate


# --- the diagnostic ----------------------------------------------------------------------

def syntax_diagnostic(err: lark.exceptions.UnexpectedInput, text: str, diags: Diagnostics
                      ) -> SyntaxHint | None:
    """Add the ASN002 error for `err` (raised parsing `text`) to `diags`; return its class."""
    hint = classify(err)
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
        message = f"unexpected character `{text[cast(int, err.pos_in_stream)]}`"
        expected = _describe_expected(err.allowed or set())
        if expected:
            message += f", expected {expected}"
    else:  # UnexpectedEOF
        line, col = _end_position(text)
        message = "unexpected end of input"
    help = None
    if hint is not None:
        message = f"{hint.label}: {message}"
        help = hint.help
    diags.error("ASN002", message, Span(line=line, col=col, end_line=line, end_col=col + width),
                help=help)
    return hint


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
