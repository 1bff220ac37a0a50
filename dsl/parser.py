"""`.asn` text -> IR, in four steps, each in its own module.

1. `grammar`: lark parses with `grammar.lark` (LALR, positions propagated), collecting the
   comments; `syntax_recovery` reports each syntax error (worded by `syntax_errors`) and
   goes on after it, so one run shows every broken statement.
2. `syntax_tree`: the parse tree becomes frozen nodes named after the grammar's rules, each
   with its span.
3. `ir_builder`: those become pydantic IR nodes, every problem collected as a diagnostic
   (with errors, what did load goes with them: `partial`).
4. `comments`: each comment goes to the IR node it belongs to, so `fmt` keeps it.
"""

from __future__ import annotations

from .comments import attach_comments
from .diagnostics import DiagnosticError, Diagnostics, Source
from .ir import Network
from .ir_builder import build_network
from .partial import PartialNetwork
from .perf import paused_gc
from .syntax_recovery import parse_tree_reporting
from .syntax_tree import SyntaxTreeBuilder

__all__ = ["parse"]


def parse(text: str, path: str = "<input>") -> Network:
    """Parse `.asn` text into a Network, or raise DiagnosticError with every problem."""
    diags = Diagnostics()
    with paused_gc():
        net, partial = _network(text, diags)
    if net is None:
        raise DiagnosticError(diags, Source(path, text), partial)
    return net


def _network(text: str, diags: Diagnostics) -> tuple[Network | None, PartialNetwork | None]:
    # A function of its own, so that the parse tree and the syntax tree are freed when it
    # returns, before the collector resumes: its first run would walk them all (at 5,000
    # nodes, a seventh of the parse time).
    parsed = parse_tree_reporting(text, diags)
    if parsed is None:
        return None, None
    tree, comments = parsed
    statements = SyntaxTreeBuilder(diags).transform(tree)
    if diags.has_errors:
        return None, None
    net, partial = build_network(statements, diags)
    if net is None:
        return None, partial
    attach_comments(net, comments)
    return net, None
