"""Going on after a syntax error, so one run reports every broken statement.

After each error the statement holding it is blanked (positions kept) and the text parsed
again, up to `MAX_SYNTAX_ERRORS` times. It stops after an error at the end of the input,
after one whose class says the rest cannot be read (an unclosed header), and when blanking
changes nothing.
"""

from __future__ import annotations

import re

import lark
from lark import Token, Tree

from .diagnostics import Diagnostics
from .grammar import parse_tree
from .syntax_errors import syntax_diagnostic

__all__ = ["MAX_SYNTAX_ERRORS", "parse_tree_reporting"]

MAX_SYNTAX_ERRORS = 10


def parse_tree_reporting(text: str, diags: Diagnostics) -> tuple[Tree, list[Token]] | None:
    """The parse tree of `text` and its comments, or None after adding every syntax error
    found to `diags` (ASN002, one per broken statement)."""
    attempt = text
    for errors_so_far in range(MAX_SYNTAX_ERRORS):
        try:
            parsed = parse_tree(attempt)
        except lark.exceptions.UnexpectedInput as err:
            hint = syntax_diagnostic(err, text, diags)
            line, col = getattr(err, "line", 1) or 1, getattr(err, "column", 1) or 1
            if isinstance(err, lark.exceptions.UnexpectedEOF) or (
                isinstance(err, lark.exceptions.UnexpectedToken) and err.token.type == "$END"
            ):
                break
            if hint is not None and not hint.recoverable:
                break
            blanked = _blank_statement(attempt, line, col)
            if blanked == attempt:
                break
            attempt = blanked
        else:
            return parsed if errors_so_far == 0 else None
    return None


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
