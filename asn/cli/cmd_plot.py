"""`asnc plot RUN`: redraw a run directory's pictures from its history (no TensorFlow)."""

from __future__ import annotations

import json
import os

import typer

from .app import app
from .common import EXIT_BAD_INPUT, err_console

__all__ = ["plot"]

# As backends.tensorflow.train / checkpoints write them (not imported: that loads TensorFlow).
METRICS, HISTORY, NETWORK = "metrics.json", os.path.join("checkpoints", "history.json"), \
    "net.asn"


def _fail(path: str, message: str) -> typer.Exit:
    err_console.print(f"{path}: error: {message}")
    return typer.Exit(EXIT_BAD_INPUT)


def _history(run: str) -> list[dict]:
    """The per-epoch history: `metrics.json` of a finished run, else the checkpoints' (a run
    still training, or one that stopped)."""
    from ..dsl.textio import read_bounded

    for name in (METRICS, HISTORY):
        path = os.path.join(run, name)
        if not os.path.isfile(path):
            continue
        try:
            value = json.loads(read_bounded(path))
        except Exception as exc:  # bounded read errors, bad JSON
            raise _fail(path, f"cannot read it ({type(exc).__name__})") from None
        history = value.get("history") if isinstance(value, dict) else value
        if not isinstance(history, list) or not all(
                isinstance(e, dict) and isinstance(e.get("epoch"), int) for e in history):
            raise _fail(path, "no per-epoch history in it")
        return history
    raise _fail(run, f"not a run directory (no {METRICS} and no {HISTORY})")


@app.command()
def plot(run: str = typer.Argument(..., metavar="RUN", help="A training or search run "
                                   "directory.")) -> None:
    """Redraw RUN/curves.png/.svg (loss and accuracy per epoch) and, for a search, the
    connection-weight trajectories and heat map."""
    from ..backends.plots import draw_run
    from ..dsl.loader import load

    if not os.path.isdir(run):
        raise _fail(run, "no such run directory")
    history = _history(run)
    if not history:
        raise _fail(run, "the run has no finished epoch yet")
    inputs: dict[str, list[str]] = {}
    order: list[str] = []
    title = os.path.basename(os.path.normpath(run))
    net_path = os.path.join(run, NETWORK)
    if os.path.isfile(net_path):
        net = load(net_path)  # a DiagnosticError is reported by main
        inputs = {b.name: [i.source for i in b.inputs] for b in net.blocks}
        order = [n.name for n in net.nodes]
        title = net.header.name
    for path in draw_run(run, history, inputs, order, title):
        err_console.print(f"wrote {path}")
