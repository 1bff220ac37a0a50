"""Shared CLI plumbing: loading with overrides, printing diagnostics, exit codes."""

from __future__ import annotations

import os
import sys
import tempfile
from typing import Optional

from rich.console import Console

from ..dsl.diagnostics import Diagnostic, DiagnosticError, Source, render
from ..dsl.ir import Network
from ..dsl.loader import load_text
from ..dsl.textio import read_text

__all__ = ["err_console", "out", "load_checked", "apply_overrides", "print_diagnostics",
           "atomic_write", "EXIT_OK", "EXIT_BAD_INPUT", "EXIT_INTERNAL"]

EXIT_OK, EXIT_BAD_INPUT, EXIT_INTERNAL = 0, 1, 2
err_console = Console(stderr=True, highlight=False, soft_wrap=True)
out = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 160)


def print_diagnostics(diags: list[Diagnostic], source: Source | None) -> None:
    for d in diags:
        sys.stderr.write(render(d, source) + "\n")


def apply_overrides(net: Network, frames: Optional[int] = None,
                    size: Optional[tuple[int, int]] = None,
                    classes: Optional[int] = None) -> Network:
    """A copy of `net` with the input size / classes replaced (validated like the header)."""
    changes = {k: v for k, v in (("frames", frames), ("size", tuple(size) if size else None),
                                 ("classes", classes)) if v is not None}
    if not changes:
        return net
    from pydantic import ValidationError

    from ..dsl.diagnostics import Diagnostics
    from ..dsl.pyerrors import pydantic_diagnostics
    try:
        header = type(net.header).model_validate({**net.header.model_dump(), **changes})
    except ValidationError as exc:
        d = Diagnostics()
        pydantic_diagnostics(exc, d, lambda loc: None, "ASN012")
        for diag in d:
            diag.message = "command-line override " + diag.message
        raise DiagnosticError(d, None) from None
    # keep spans and comments so later diagnostics still point into the file
    header.span, header.attr_spans = net.header.span, net.header.attr_spans
    header.comments_before, header.comment_after = net.header.comments_before, \
        net.header.comment_after
    header.setting_comments = net.header.setting_comments
    return net.model_copy(update={"header": header})


def load_checked(path: str, frames=None, size=None, classes=None,
                 warnings: bool = True) -> tuple[Network, Source]:
    """Load, override, check. Raises DiagnosticError on any error; prints warnings."""
    from ..compiler.validation import check

    text = read_text(path)
    net = load_text(text, path)
    source = Source(path, text)
    net = apply_overrides(net, frames, size, classes)
    diags = check(net)
    if any(d.is_error for d in diags):
        raise DiagnosticError(diags, source)
    if warnings:
        print_diagnostics([d for d in diags if not d.is_error], source)
    return net, source


def atomic_write(path: str, data: str | bytes) -> None:
    """Write via a temporary file in the same directory and rename: never half a file."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".asnc-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data.encode() if isinstance(data, str) else data)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the usual file mode
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
