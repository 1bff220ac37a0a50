"""Shared CLI plumbing: loading with overrides, printing diagnostics, exit codes."""

from __future__ import annotations

import sys
from dataclasses import replace
from typing import Callable, Optional

from rich.console import Console

from ..dsl.diagnostics import Diagnostic, DiagnosticError, Source, render
from ..dsl.ir import Network
from ..dsl.loader import load_text
from ..dsl.outputs import write_file
from ..dsl.textio import read_text

__all__ = ["err_console", "out", "load_network", "load_checked", "apply_overrides",
           "print_diagnostics", "atomic_write", "allow_user_modules", "EXIT_OK",
           "EXIT_BAD_INPUT", "EXIT_INTERNAL"]

EXIT_OK, EXIT_BAD_INPUT, EXIT_INTERNAL = 0, 1, 2
# Paths, names and messages printed here are the user's text: with markup and emoji off, no
# string is ever read as rich markup (`[/]` in a path crashed rich) or `:emoji:` codes, so no
# call site has to remember to escape. Styling is given explicitly (`style=`, `Text`).
err_console = Console(stderr=True, highlight=False, soft_wrap=True, markup=False,
                      emoji=False)
out = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 160,
              markup=False, emoji=False)


# A file with 90,000 unknown names would print 90,000 diagnostics: show the first ones (a
# reader fixes those first), then count the rest. `check --json` still lists every one.
MAX_SHOWN_DIAGNOSTICS = 50


def print_diagnostics(diags: list[Diagnostic], source: Source | None,
                      limit: int | None = None) -> None:
    limit = MAX_SHOWN_DIAGNOSTICS if limit is None else limit
    for d in diags[:limit]:
        sys.stderr.write(render(d, source) + "\n")
    rest = diags[limit:]
    if rest:
        errors = sum(1 for d in rest if d.is_error)
        others = len(rest) - errors
        parts = [f"{n} more {what}{'s' * (n != 1)}" for n, what in
                 ((errors, "error"), (others, "warning")) if n]
        sys.stderr.write(f"... and {' and '.join(parts)} (not shown; `asnc check --json` "
                         "lists every one)\n")


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


def load_network(text: str, path: str, name: str | None = None, pick: str | None = None,
                 adjust: Callable[[Network], Network] | None = None) -> Network:
    """`load_text`, whose DiagnosticError also holds the errors of the part of the network
    that loaded: a header error hides no block error behind it (`dsl/partial.py`). `adjust`:
    what the command does to the network before checking it (`import`'s defaults)."""
    from ..compiler.validation import with_independent_errors

    try:
        return load_text(text, path, name, pick=pick)
    except DiagnosticError as exc:
        if exc.partial is not None and adjust is not None:
            exc.partial = replace(exc.partial, network=adjust(exc.partial.network))
        raise with_independent_errors(exc) from None


def load_checked(path: str, frames=None, size=None, classes=None,
                 warnings: bool = True, refused_modules: str = "error"
                 ) -> tuple[Network, Source]:
    """Load, override, check. Raises DiagnosticError on any error; prints warnings.

    `refused_modules`: "note" for commands that need no shapes (see `validation.check`).
    """
    from ..compiler.validation import check

    text = read_text(path)
    net = load_network(text, path)
    source = Source(path, text)
    net = apply_overrides(net, frames, size, classes)
    diags = check(net, refused_modules=refused_modules)
    if any(d.is_error for d in diags):
        raise DiagnosticError(diags, source)
    if warnings:
        print_diagnostics([d for d in diags if not d.is_error], source)
    return net, source


def allow_user_modules(allowed: bool) -> None:
    """For the rest of the running command, user modules may be imported iff `allowed`.

    The app's callback refuses them for every command and restores the policy when the
    command ends (`app.py`); commands with `--import-modules` call this with its value.
    """
    from ..compiler.usermodule import set_imports_allowed
    set_imports_allowed(allowed)


def atomic_write(path: str, data: str | bytes) -> None:
    """Write an output file: `dsl.outputs.write_file` (atomic, keeps mode and links, never
    replaces a device; an OSError is a DiagnosticError)."""
    write_file(path, data)
