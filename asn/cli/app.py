"""The `asnc` Typer application. Command modules add their commands to `app`; `main.py`
imports them and runs it."""

from __future__ import annotations

import typer

from ..compiler.usermodule import user_module_imports

__all__ = ["app"]

app = typer.Typer(
    name="asnc",
    help="Compiler for AssembleNet-family multi-stream video networks.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _no_user_code(ctx: typer.Context) -> None:
    # Nothing runs that the user did not ask for: no command imports a user module unless it
    # was given --import-modules. Leaving this context restores the policy as it was, with
    # whatever the command set (in-process callers and tests see the library's default).
    ctx.with_resource(user_module_imports(False))
