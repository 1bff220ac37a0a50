"""The documented JSON form: the IR's own pydantic serialisation (`asnc schema` prints it)."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from .diagnostics import DiagnosticError, Diagnostics, Source
from .ir import Network, Span
from .pyerrors import pydantic_diagnostics

__all__ = ["to_json_form", "load_json_form", "json_schema", "is_json_form"]


def is_json_form(data: Any) -> bool:
    return isinstance(data, dict) and "header" in data and "nodes" in data


def to_json_form(net: Network) -> dict:
    return net.model_dump(mode="json")


def json_schema() -> dict:
    schema = Network.model_json_schema()
    schema["title"] = "asnc network (JSON form)"
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema


def load_json_form(data: dict, positions: dict[tuple, tuple[int, int]], source: Source) -> Network:
    try:
        return Network.model_validate(data)
    except ValidationError as exc:
        diags = Diagnostics()

        def locate(loc: tuple) -> Span | None:
            # the deepest value on the way that the document has (skips union tags such as
            # the `stem` in ("nodes", 0, "stem", "type"))
            path: tuple = ()
            for part in loc:
                if path + (part,) in positions:
                    path += (part,)
            line, col = positions.get(path, (1, 1))
            return Span(line=line, col=col, end_line=line, end_col=col + 1)

        pydantic_diagnostics(exc, diags, locate, "ASN012")
        raise DiagnosticError(diags, source) from None
