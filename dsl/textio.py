"""Reading source files safely: binary, empty, huge or mis-encoded input is a diagnostic.

Every input file goes through `read_text` (text) or `regular_file_problem` (binary inputs:
weights, videos): the size limit is enforced while reading, never from the size the file
system reports (0 for /dev/zero and pipes), and nothing can block forever.
"""

from __future__ import annotations

import codecs
import errno
import os
import select
import stat
import time

from .diagnostics import Diagnostic, DiagnosticError, Source
from .ir import Span

__all__ = ["read_text", "read_bounded", "check_text", "regular_file_problem", "MAX_BYTES",
           "PIPE_TIMEOUT_S"]

# Far above any real network (a 5,000-node file is ~0.5 MB), far below a memory problem.
MAX_BYTES = 32 * 1024 * 1024
# A pipe or FIFO must deliver its next bytes within this many seconds (a FIFO that nobody
# writes to would otherwise block the reader forever).
PIPE_TIMEOUT_S = 10.0
_CHUNK = 1 << 20


def _fail(path: str, message: str, help: str | None = None, span: Span | None = None,
          text: str = "") -> DiagnosticError:
    return DiagnosticError([Diagnostic("error", "ASN001", message, span, help)],
                           Source(path, text))


def _mode_problem(mode: int) -> str | None:
    """Why a file of this mode is not read as an input, or None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "is a directory, not a file"
    if stat.S_ISCHR(mode):  # /dev/zero, /dev/urandom, a terminal: endless or interactive
        return "is a character device, not a regular file"
    if stat.S_ISBLK(mode):
        return "is a block device, not a regular file"
    if stat.S_ISSOCK(mode):
        return "is a socket, not a regular file"
    if stat.S_ISFIFO(mode):
        return "is a pipe (FIFO), not a regular file"
    return "is not a regular file"


def regular_file_problem(path: str) -> str | None:
    """Why `path` cannot be read as a binary input (weights, a video), or None: it must be an
    existing regular file (a device or FIFO could be endless or block forever)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return "no such file"
    except OSError as exc:
        return f"cannot read file: {exc.strerror or exc}"
    return _mode_problem(st.st_mode)


def _read_regular(fd: int, limit: int) -> bytes:
    """At most `limit` bytes (the caller asks for one more than it accepts)."""
    parts: list[bytes] = []
    got = 0
    while got < limit:
        chunk = os.read(fd, min(_CHUNK, limit - got))
        if not chunk:
            break
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)


def _read_pipe(fd: int, limit: int, path: str) -> bytes:
    """Like `_read_regular`, for a non-blocking pipe: each read waits at most PIPE_TIMEOUT_S
    for data (a FIFO with no writer never gets any: Linux reports it neither readable nor
    hung up until a writer has come and gone)."""
    parts: list[bytes] = []
    got = 0
    poller = select.poll()
    poller.register(fd, select.POLLIN | select.POLLHUP | select.POLLERR)
    while got < limit:
        deadline = time.monotonic() + PIPE_TIMEOUT_S
        while not poller.poll(max(0.0, deadline - time.monotonic()) * 1000):
            if time.monotonic() >= deadline:
                raise _fail(path, f"no data arrived within {PIPE_TIMEOUT_S:g} s (a pipe or "
                            "FIFO that nothing writes to?)",
                            "write the network to a regular file and pass that")
        try:
            chunk = os.read(fd, min(_CHUNK, limit - got))
        except BlockingIOError:
            continue
        if not chunk:
            break
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)


def read_bounded(path: str) -> bytes:
    """The bytes of `path`, read through one bounded reader: at most MAX_BYTES + 1 bytes are
    ever read, a pipe times out, and devices, directories and sockets are refused. Raises
    DiagnosticError (never OSError) explaining why not."""
    limit = MAX_BYTES
    try:
        # O_NONBLOCK: opening a FIFO with no writer returns at once instead of blocking
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise _fail(path, "no such file") from None
    except IsADirectoryError:
        raise _fail(path, "is a directory, not a file") from None
    except OSError as exc:
        if exc.errno == errno.ENXIO:  # a socket, or a device without a driver
            raise _fail(path, "is not a regular file") from None
        raise _fail(path, f"cannot read file: {exc.strerror or exc}") from None
    try:
        st = os.fstat(fd)
        pipe = stat.S_ISFIFO(st.st_mode)  # also `/dev/stdin` when stdin is a pipe
        problem = None if pipe else _mode_problem(st.st_mode)
        if problem is not None:
            raise _fail(path, problem, "give a .asn, JSON or list-format file")
        if not pipe:
            if st.st_size > limit:  # known too large: refuse without reading
                raise _fail(path, f"file is too large ({st.st_size} bytes; the limit is "
                            f"{limit})")
            os.set_blocking(fd, True)
        data = _read_pipe(fd, limit + 1, path) if pipe else _read_regular(fd, limit + 1)
    except OSError as exc:
        raise _fail(path, f"cannot read file: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    if len(data) > limit:
        raise _fail(path, f"file is too large (more than {limit} bytes, the limit)")
    return data


def read_text(path: str) -> str:
    """The file's text, or DiagnosticError (never OSError or UnicodeError) explaining why not."""
    return check_text(read_bounded(path), path)


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
