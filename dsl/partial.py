"""What loaded of a network whose text has errors, so that one run reports every error.

A bad header value must not hide the block errors behind it. A loader that finds errors
still builds the network it can: each invalid header setting is replaced by its default
(a placeholder) and each node that does not load is left out. The loader raises its
diagnostics with this `PartialNetwork`; `compiler.validation.check_partial` then reports the
errors of the rest, leaving out every check that reads a placeholder or could be caused by a
node that was left out (so no error is spurious).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from .ir import Header, Network

__all__ = ["PartialNetwork", "placeholder_header", "HEADER_FIELDS"]

HEADER_FIELDS = frozenset(f for f in Header.model_fields if not Header.model_fields[f].exclude)


@dataclass(frozen=True)
class PartialNetwork:
    network: Network
    # header fields (IR names) holding a default in place of an invalid value; "heads" when
    # the explicit heads were invalid and the network falls back to the implied ones
    placeholders: frozenset[str] = frozenset()
    # names of the nodes that did not load (left out of `network`)
    dropped: frozenset[str] = frozenset()


def placeholder_header(fields: dict[str, Any], exc: Exception | None) -> tuple[Header,
                                                                                frozenset[str]]:
    """A Header of `fields` with each setting that `exc` (Header's validation error) names
    replaced by its default, and the set of those settings."""
    bad: set[str] = set()
    if isinstance(exc, ValidationError):
        for err in exc.errors(include_url=False):
            loc = err.get("loc", ())
            if not loc:  # a model-level error: nothing of the header can be trusted
                bad = set(HEADER_FIELDS)
                break
            bad.add(str(loc[0]))
    else:  # a TypeError of odd keys and the like
        bad = set(HEADER_FIELDS)
    kept = {k: v for k, v in fields.items() if k not in bad and k in HEADER_FIELDS}
    if not isinstance(kept.get("name"), str):
        kept["name"] = "network"
    try:
        return Header(**kept), frozenset(bad & HEADER_FIELDS)
    except (ValidationError, TypeError):  # a value valid alone, invalid with another
        return Header(name="network"), HEADER_FIELDS
