"""pydantic validation errors -> asnc diagnostics, with the span of the offending value."""

from __future__ import annotations

from typing import Callable

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from .diagnostics import Diagnostics
from .ir import Span

__all__ = ["pydantic_diagnostics"]


def _describe(err: ErrorDetails) -> str:
    msg = err["msg"]
    # pydantic says "Value error, ..." for our own validators: keep just our words.
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    return msg[0].lower() + msg[1:] if msg else msg


def pydantic_diagnostics(exc: ValidationError, diags: Diagnostics,
                         locate: Callable[[tuple], Span | None], code: str,
                         names: dict[str, str] | None = None) -> None:
    """Add one diagnostic per pydantic error; `locate` maps an error's `loc` to a span."""
    names = names or {}
    seen: set[tuple] = set()
    for err in exc.errors(include_url=False):
        loc = tuple(err.get("loc", ()))
        # Union members each report; one message per location is enough.
        key = tuple(p for p in loc if not isinstance(p, str) or not p.startswith(("int", "tuple")))
        if key in seen:
            continue
        seen.add(key)
        # a discriminated union adds the tag after the list index: nodes.0.stem.type
        parts = [p for k, p in enumerate(key) if not _is_type_tag(p) and not (
            k > 0 and isinstance(key[k - 1], int) and p in ("stem", "block"))]
        field = ".".join(str(names.get(str(p), p)) for p in parts)
        value = err.get("input")
        shown = ""
        if isinstance(value, (int, float, str)):
            text = str(value) if not isinstance(value, int) or abs(value) < 10 ** 40 else \
                f"{str(value)[:20]}... ({len(str(value))} digits)"
            if text not in err["msg"]:  # our own messages already show the value
                shown = f" (got `{text if len(text) <= 60 else text[:57] + '...'}`)"
        prefix = f"invalid `{field}`: " if field else ""
        diags.error(code, f"{prefix}{_describe(err)}{shown}", locate(key))


def _is_type_tag(part: object) -> bool:
    return isinstance(part, str) and ("[" in part or part in ("int", "float", "str", "list",
                                                             "tuple", "function-after"))
