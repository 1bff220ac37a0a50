"""The `asnc` Typer application. Command modules add their commands to `app`; `main.py`
imports them and runs it."""

from __future__ import annotations

import typer

__all__ = ["app"]

app = typer.Typer(
    name="asnc",
    help="Compiler for AssembleNet-family multi-stream video networks.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
