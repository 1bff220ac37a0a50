"""Reading source files safely: binary, empty, huge or mis-encoded input is a diagnostic."""

from __future__ import annotations

import os

from .diagnostics import Diagnostic, DiagnosticError, Source

__all__ = ["read_text", "check_text", "MAX_BYTES"]

# Far above any real network (a 5,000-node file is ~0.5 MB), far below a memory problem.
MAX_BYTES = 32 * 1024 * 1024


def _fail(path: str, message: str, help: str | None = None) -> DiagnosticError:
    return DiagnosticError([Diagnostic("error", "ASN001", message, None, help)], Source(path, ""))


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
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise _fail(path, f"file is not UTF-8 text (invalid byte at offset {exc.start})") \
                from None
    if "\x00" in text:
        raise _fail(path, "input contains NUL characters, not text")
    if not text.strip():
        raise _fail(path, "file is empty", "a network needs at least a `network` header, "
                    "a stem and a block")
    return text
