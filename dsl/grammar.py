"""The `.asn` grammar (`grammar.lark`, the data) loaded once into a lark LALR parser.

Positions are propagated to every tree node (`meta`), optional parts become `None`
(`maybe_placeholders`), and comments, which the grammar ignores, are collected on the way.
"""

from __future__ import annotations

import threading
from functools import lru_cache
from importlib import resources

from lark import Lark, Token, Tree

__all__ = ["asn_lark", "parse_tree"]

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
def asn_lark() -> Lark:
    """The parser for `grammar.lark`, built on first use."""
    grammar = resources.files(__package__).joinpath("grammar.lark").read_text()
    return Lark(grammar, parser="lalr", propagate_positions=True, maybe_placeholders=True,
                lexer_callbacks={"COMMENT": _on_comment})


def parse_tree(text: str) -> tuple[Tree, list[Token]]:
    """The parse tree of `text` and its comments, in source order.

    Raises lark's `UnexpectedInput` on a syntax error.
    """
    collected: list[Token] = []
    outer = getattr(_comment_sink, "target", None)
    _comment_sink.target = collected
    try:
        tree = asn_lark().parse(text)
    finally:
        _comment_sink.target = outer
    return tree, collected
