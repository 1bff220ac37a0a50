"""The `asnc` command line: runs `app` with asnc's exit codes (0 ok, 1 bad input, 2 bug).

Every command module adds its commands to `app` when imported; the order of the imports below
is the order of `asnc --help`. They import TensorFlow only inside the commands that need it,
so the front-end commands never load it.
"""

from __future__ import annotations

import functools
import sys
import traceback
from typing import Optional

import typer
from typer.exceptions import TyperException

from ..dsl.diagnostics import DiagnosticError
from . import cmd_frontend, cmd_compile, cmd_opt, cmd_viz  # noqa: F401 (commands)
from . import cmd_train, cmd_evolve, cmd_predict, cmd_eval, cmd_plot  # noqa: F401 (commands)
from .app import app
from .common import EXIT_BAD_INPUT, EXIT_INTERNAL, EXIT_OK, err_console, print_diagnostics

__all__ = ["main", "run"]


@functools.cache
def _command():
    """`app` as the click command it runs, built once per process: typer builds it anew on
    every call from the signatures of all the commands (35 of the 48 ms of an in-process
    `asnc export`), and the tests run hundreds of commands in one process. The
    command holds no state between runs (click makes a new context for each)."""
    return typer.main.get_command(app)


def main(argv: Optional[list[str]] = None) -> int:
    try:
        result = _command()(args=argv, standalone_mode=False, prog_name="asnc")
        if not isinstance(result, int):
            return EXIT_OK
        # click reports its own usage errors as 2; for asnc, 2 means an internal error
        return EXIT_BAD_INPUT if result == 2 else result
    except DiagnosticError as exc:
        if exc.diagnostics:
            print_diagnostics(exc.diagnostics, exc.source)
        return EXIT_BAD_INPUT
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        err_console.print("aborted")
        return EXIT_BAD_INPUT
    except TyperException as exc:  # usage errors: bad option, unknown command, ...
        show = getattr(exc, "show", None)
        if show is not None:
            show()
        else:
            err_console.print(f"asnc: {exc}")
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        return 130
    except Exception:  # anything else is our bug, never the user's
        err_console.print("asnc: internal error (please report it with this trace):")
        sys.stderr.write(traceback.format_exc())
        return EXIT_INTERNAL


def run() -> None:
    """The process entry point (the `asnc` script, ``python -m asn``, ``./asnc``): `main`, then
    exit. After a command that loaded TensorFlow, the exit skips the interpreter's teardown
    (``os._exit`` once stdout and stderr are flushed): tearing down TensorFlow's modules and
    objects took 1.3 s after a quickstart compile, and by then every output is written,
    closed and renamed into place (atomic writes) and nothing of asnc's runs at exit."""
    code = main()
    if "tensorflow" not in sys.modules:
        sys.exit(code)
    import logging
    import os

    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed or broken pipe: nothing left to say
            pass
    os._exit(code)


if __name__ == "__main__":  # `python -m asn.cli.main`, as the ./asnc launcher runs it
    run()
