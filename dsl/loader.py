"""One entry point for every surface form: `.asn` text, the JSON form, the list format."""

from __future__ import annotations

import json
import os

from .diagnostics import DiagnosticError, Diagnostics, Source
from .ir import Network, Span
from .jsonform import is_json_form, load_json_form
from .jsonpos import JSONPosError, load_with_positions
from .listformat import is_list_format, load_list
from .parser import parse
from .textio import read_text

__all__ = ["load", "load_text", "network_name_from_path", "surface_form"]


def network_name_from_path(path: str) -> str:
    stem = os.path.splitext(os.path.basename(path))[0] or "network"
    name = "".join(c if c.isalnum() or c == "_" else "_" for c in stem)
    return name if name and (name[0].isalpha() or name[0] == "_") else f"n_{name}"


def _looks_like_json(text: str) -> bool:
    return text.lstrip()[:1] in ("[", "{") and not text.lstrip().startswith("network")


def load_text(text: str, path: str = "<input>", name: str | None = None,
              pick: str | None = None) -> Network:
    """Load any surface form from text; raises DiagnosticError with every problem found."""
    if not (path.endswith(".json") or _looks_like_json(text)):
        return parse(text, path)
    source = Source(path, text)
    try:
        data, positions = load_with_positions(text)
    except JSONPosError as exc:
        d = Diagnostics()
        d.error("ASN003", f"invalid JSON: {exc.message}",
                Span(line=exc.line, col=exc.col, end_line=exc.line, end_col=exc.col + 1))
        raise DiagnosticError(d, source) from None
    if pick is not None:
        data, positions = _pick(data, positions, pick, source)
    if is_json_form(data):
        return load_json_form(data, positions, source)
    if is_list_format(data):
        return load_list(data, positions, source, name or network_name_from_path(path))
    d = Diagnostics()
    named = _named_structures(data)
    if named:
        d.error("ASN004", "this file holds several structures: " + ", ".join(named),
                Span(line=1, col=1, end_line=1, end_col=2),
                help=f"choose one with `--pick {named[0]}`")
        raise DiagnosticError(d, source)
    d.error("ASN004", "JSON is neither the asnc JSON form (`header`, `nodes`) nor the list "
            "format (a structure list, or an object with `structure`)",
            Span(line=1, col=1, end_line=1, end_col=2))
    raise DiagnosticError(d, source)


def surface_form(text: str, path: str = "<input>") -> str:
    """Which form `load_text` reads `text` as: "asn", "json" (the JSON form) or "list" (the
    list format); for text that loads (`fmt` rewrites a file in its own form)."""
    if not (path.endswith(".json") or _looks_like_json(text)):
        return "asn"
    try:
        data = json.loads(text)
    except ValueError:
        return "list"
    return "json" if is_json_form(data) else "list"


def load(path: str, name: str | None = None) -> Network:
    return load_text(read_text(path), path, name)


def _named_structures(data) -> list[str]:
    if not isinstance(data, dict):
        return []
    return [k for k, v in data.items() if isinstance(v, dict) and "structure" in v]


def _pick(data, positions: dict, pick: str, source: Source):
    named = _named_structures(data)
    if pick not in named:
        d = Diagnostics()
        d.error("ASN004", f"no structure named `{pick}` in this file",
                Span(line=1, col=1, end_line=1, end_col=2),
                help=("structures: " + ", ".join(named)) if named else None)
        raise DiagnosticError(d, source)
    sub = {k[1:]: v for k, v in positions.items() if k[:1] == (pick,)}
    return data[pick], sub
