"""Comments -> the IR nodes they belong to, so `asnc fmt` prints them where they were.

A comment belongs to the statement whose lines hold it, else to the next one. On that
statement's last line, right of where the statement starts, it is the statement's
`comment_after`; anywhere else it joins its `comments_before`. Inside the header, a comment
right of a setting belongs to that setting, one on the `network` line to the header, any
other to the setting after it (or the closing `}`). Comments after the last statement end
the file (`Network.comment_after`).
"""

from __future__ import annotations

import bisect
from typing import Protocol, Sequence

from lark import Token

from .ir import Network, Span

__all__ = ["attach_comments"]


class _Commented(Protocol):
    comments_before: list[str]
    comment_after: str | None


class _HeadsAnchor:
    """Stands in for the `heads` statement (a plain list in the IR) while comments attach."""

    def __init__(self, span: Span):
        self.span = span
        self.comments_before: list[str] = []
        self.comment_after: str | None = None


def attach_comments(net: Network, comments: Sequence[Token]) -> None:
    """Give each comment to the statement it precedes or ends the line of (in place)."""
    anchor = None
    if net.heads is not None and "heads" in net.attr_spans:
        anchor = _HeadsAnchor(net.attr_spans["heads"])
    candidates: list[tuple[Span | None, _Commented]] = [(net.header.span, net.header)]
    candidates += [(node.span, node) for node in net.nodes]
    if anchor is not None:
        candidates.append((anchor.span, anchor))
    placed = sorted(((span, s) for span, s in candidates if span is not None),
                    key=lambda pair: (pair[0].line, pair[0].col))
    spans = [span for span, _ in placed]
    statements = [s for _, s in placed]
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
    starts = [span.line for span in spans]
    ends = [span.end_line for span in spans]
    for tok in comments:
        text, line, column = str(tok).rstrip(), tok.line, tok.column
        assert line is not None and column is not None  # the lexer's tokens have positions
        after = bisect.bisect_right(starts, line)  # statements[after:] start below the line
        first = bisect.bisect_left(ends, line, 0, after)  # the first one reaching the line
        owner = statements[first] if first < after else None
        if owner is header:
            on_line = [k for k, sp in settings if sp.line == line and sp.col < column]
            if on_line:
                before, _ = header.setting_comments.get(on_line[-1], ([], None))
                header.setting_comments[on_line[-1]] = (before, text)
                continue
            if line == spans[first].line:
                header.comment_after = text
                continue
            following = next((k for k, sp in settings if sp.line > line), None)
            key = following or "}"
            before, _ = header.setting_comments.setdefault(key, ([], None))
            put(before, text, line)
            continue
        if owner is not None and line == spans[first].end_line and column > spans[first].col:
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
