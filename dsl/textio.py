"""Reading source files safely: binary, empty, huge or mis-encoded input is a diagnostic."""

from __future__ import annotations

import codecs
import os

from .diagnostics import Diagnostic, DiagnosticError, Source
from .ir import Span

__all__ = ["read_text", "check_text", "MAX_BYTES"]

# Far above any real network (a 5,000-node file is ~0.5 MB), far below a memory problem.
MAX_BYTES = 32 * 1024 * 1024


def _fail(path: str, message: str, help: str | None = None, span: Span | None = None,
          text: str = "") -> DiagnosticError:
    return DiagnosticError([Diagnostic("error", "ASN001", message, span, help)],
                           Source(path, text))


def read_text(path: str) -> str:
    """The file's text, or DiagnosticError (never OSError or UnicodeError) explaining why not."""
    try:
        size = os.path.getsize(path)
        if size > MAX_BYTES:
            raise _fail(path, f"file is too large ({size} bytes; the limit is {MAX_BYTES})")
        with open(path, "rb") as fh:
            data = fh.read()
    except DiagnosticError:
        raise
    except IsADirectoryError:
        raise _fail(path, "is a directory, not a file") from None
    except FileNotFoundError:
        raise _fail(path, "no such file") from None
    except OSError as exc:
        raise _fail(path, f"cannot read file: {exc.strerror or exc}") from None
    return check_text(data, path)


def check_text(data: bytes | str, path: str = "<input>") -> str:
    if isinstance(data, str):
        text = data
        if len(text) > MAX_BYTES:
            raise _fail(path, f"input is too large ({len(text)} characters)")
    else:
        if len(data) > MAX_BYTES:
            raise _fail(path, f"input is too large ({len(data)} bytes)")
        if b"\x00" in data:
            raise _fail(path, "file is binary, not text", "give a .asn, JSON or list-format file")
        bom = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
        body = data[bom:]
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            # point at the bad byte: line and column in the text as far as it decodes
            before = body[:exc.start].decode("utf-8", errors="replace")
            line = before.count("\n") + 1
            col = len(before) - (before.rfind("\n") + 1) + 1
            shown = body.decode("utf-8", errors="replace")
            raise _fail(path, f"file is not UTF-8 text (invalid byte 0x{body[exc.start]:02x} at "
                        f"offset {bom + exc.start})", "save the file as UTF-8",
                        Span(line=line, col=col, end_line=line, end_col=col + 1), shown) \
                from None
    if "\x00" in text:
        raise _fail(path, "input contains NUL characters, not text")
    if not text.strip():
        raise _fail(path, "file is empty", "a network needs at least a `network` header, "
                    "a stem and a block")
    return text
