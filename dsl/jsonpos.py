"""A JSON reader that remembers where every value starts.

`json.loads` gives values but no positions, and recurses (deep nesting raises
RecursionError). This reader is iterative, bounds the nesting depth, and returns a
map from each value's path (e.g. `("structure", 5, 1)`) to its line and column, so a
list-format error can point at the offending node.
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["load_with_positions", "JSONPosError", "MAX_DEPTH"]

MAX_DEPTH = 64

_TOKEN = re.compile(r"""
    (?P<ws>[ \t\r\n]+)
  | (?P<punct>[\[\]{}:,])
  | (?P<string>"(?:[^"\\\x00-\x1f]|\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4}))*")
  | (?P<number>-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?)
  | (?P<word>true|false|null|NaN|Infinity|-Infinity)
""", re.VERBOSE)
_WORDS = {"true": True, "false": False, "null": None, "NaN": float("nan"),
          "Infinity": float("inf"), "-Infinity": float("-inf")}


class JSONPosError(ValueError):
    def __init__(self, message: str, line: int, col: int):
        super().__init__(message)
        self.message, self.line, self.col = message, line, col


def _tokens(text: str):
    pos, line, line_start = 0, 1, 0
    end = (1, 1)  # just after the last token: where "unexpected end of input" points
    n = len(text)
    while pos < n:
        m = _TOKEN.match(text, pos)
        if m is None:
            raise JSONPosError(f"unexpected character `{text[pos]}`", line, pos - line_start + 1)
        kind = m.lastgroup
        if kind == "ws":
            chunk = m.group()
            nl = chunk.count("\n")
            if nl:
                line += nl
                line_start = pos + chunk.rindex("\n") + 1
        else:
            yield kind, m.group(), line, pos - line_start + 1
            end = (line, m.end() - line_start + 1)
        pos = m.end()
    yield "eof", "", end[0], end[1]


def load_with_positions(text: str) -> tuple[Any, dict[tuple, tuple[int, int]]]:
    """Parse JSON text; return (value, {path: (line, col)}). Raises JSONPosError."""
    positions: dict[tuple, tuple[int, int]] = {}
    # Stack frames: [container, path, expecting] where expecting drives the small state machine.
    stack: list[list] = []
    root: Any = None
    done = False
    key: str | None = None
    toks = _tokens(text)
    for kind, tok, line, col in toks:
        if done:
            if kind == "eof":
                return root, positions
            raise JSONPosError(f"unexpected `{tok}` after the end of the JSON value", line, col)
        if kind == "eof":
            raise JSONPosError("unexpected end of input", line, col)
        frame = stack[-1] if stack else None
        if frame is not None and isinstance(frame[0], dict) and frame[2] in ("key", "key_or_end"):
            if kind == "punct" and tok == "}" and frame[2] == "key_or_end":
                stack.pop()
                done = _after_value(stack)
                continue
            if kind != "string":
                raise JSONPosError(f"expected an object key, got `{tok}`", line, col)
            key = json.loads(tok)
            if key in frame[0]:  # json.loads keeps the last silently: ambiguous, refuse
                raise JSONPosError(f"duplicate key `{key}` in this object", line, col)
            frame[2] = "colon"
            continue
        if frame is not None and frame[2] == "colon":
            if tok != ":":
                raise JSONPosError(f"expected `:`, got `{tok}`", line, col)
            frame[2] = "value"
            continue
        if frame is not None and frame[2] == "sep":
            if tok == ",":
                frame[2] = "key" if isinstance(frame[0], dict) else "value"
                continue
            close = "}" if isinstance(frame[0], dict) else "]"
            if tok == close:
                stack.pop()
                done = _after_value(stack)
                continue
            raise JSONPosError(f"expected `,` or `{close}`, got `{tok}`", line, col)
        # A value is expected here.
        if frame is not None and isinstance(frame[0], list) and frame[2] == "value_or_end" \
                and tok == "]":
            stack.pop()
            done = _after_value(stack)
            continue
        if frame is None:
            path: tuple = ()
        elif isinstance(frame[0], dict):
            path = frame[1] + (key,)
        else:
            path = frame[1] + (len(frame[0]),)
        positions[path] = (line, col)
        if kind == "punct" and tok in "[{":
            if len(stack) >= MAX_DEPTH:
                raise JSONPosError(f"JSON is nested more than {MAX_DEPTH} levels deep", line, col)
            container: Any = [] if tok == "[" else {}
            _store(frame, container, key)
            if frame is None:
                root = container
            stack.append([container, path, "value_or_end" if tok == "[" else "key_or_end"])
            continue
        if kind == "string":
            value: Any = json.loads(tok)
        elif kind == "number":
            try:
                value = json.loads(tok)
            except ValueError:  # more digits than Python converts (sys.get_int_max_str_digits)
                raise JSONPosError(f"number `{tok[:20]}...` is too long ({len(tok)} "
                                   "characters)", line, col) from None
        elif kind == "word":
            value = _WORDS[tok]
        else:
            raise JSONPosError(f"unexpected `{tok}`", line, col)
        _store(frame, value, key)
        if frame is None:
            root = value
            done = True
        else:
            frame[2] = "sep"
    raise JSONPosError("unexpected end of input", 1, 1)  # pragma: no cover


def _store(frame: list | None, value: Any, key: str | None) -> None:
    if frame is None:
        return
    if isinstance(frame[0], dict):
        frame[0][key] = value
    else:
        frame[0].append(value)
    frame[2] = "sep"


def _after_value(stack: list[list]) -> bool:
    """After a container closes: the parent now expects a separator; no parent means done."""
    if not stack:
        return True
    stack[-1][2] = "sep"
    return False
