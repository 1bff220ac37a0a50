"""The `asnc` Typer application. Command modules add their commands to `app`; `main.py`
imports them and runs it."""

from __future__ import annotations

import typer

from ..compiler.usermodule import user_module_imports
from .readable import ReadableGroup, ReadableTyper

__all__ = ["app"]

app = ReadableTyper(
    name="asnc",
    cls=ReadableGroup,  # readable metavars in --help (`readable.py`)
    help="Compiler for AssembleNet-family multi-stream video networks.",
    no_args_is_help=True,
    add_completion=True,  # typer's --install-completion / --show-completion
    pretty_exceptions_enable=False,
    # every command inherits these from the group's context
    context_settings={"help_option_names": ["-h", "--help"]},
)


def version() -> str:
    """The installed package's version (pyproject.toml's)."""
    from .. import __version__
    return __version__


def _print_version(value: bool) -> None:
    if value:
        print(f"asnc {version()}")
        raise typer.Exit()


@app.callback()
def _no_user_code(
    ctx: typer.Context,
    show_version: bool = typer.Option(False, "--version", is_eager=True,
                                      callback=_print_version, help="Print the version and "
                                      "exit."),
) -> None:
    # Nothing runs that the user did not ask for: no command imports a user module unless it
    # was given --import-modules. Leaving this context restores the policy as it was, with
    # whatever the command set (in-process callers and tests see the library's default).
    ctx.with_resource(user_module_imports(False))
