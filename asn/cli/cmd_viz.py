"""`asnc viz`: draw the connectivity of a network (Graphviz DOT, rendered with `dot`)."""

from __future__ import annotations

import os
import sys
from typing import Optional, Tuple

import typer

from .app import app
from .common import EXIT_BAD_INPUT, allow_user_modules, atomic_write, err_console, load_checked
from .options import ClassesOpt, FramesOpt, ImportModulesOpt, SizeOpt

__all__ = ["viz"]


@app.command()
def viz(
    file: str = typer.Argument(..., help="A network file."),
    output: Optional[str] = typer.Option(None, "-o", "--output", help="graph.svg, .png, .pdf "
                                         "or .dot (default: DOT text on stdout)."),
    prune_threshold: Optional[float] = typer.Option(
        None, "--prune-threshold", min=0.0, max=1.0,
        help="Draw the edges `prune-edges` would remove at this threshold dashed grey."),
    top_k: Optional[int] = typer.Option(None, "--top-k", min=1, help="Also mark inputs "
                                        "outside each block's top K as pruned."),
    peer_edges: bool = typer.Option(False, "--peer-edges", help="peer mode: draw an edge "
                                    "from every peer candidate (default: a note per block)."),
    frames: Optional[int] = FramesOpt,
    size: Optional[Tuple[int, int]] = SizeOpt,
    classes: Optional[int] = ClassesOpt,
    import_modules: bool = ImportModulesOpt,
) -> None:
    """Draw stems, blocks by level and the classifier, with weighted connections."""
    from ..backends.graphviz import FORMATS, ExecutableNotFound, RenderError, render, to_graph

    fmt = None
    if output:
        ext = os.path.splitext(output)[1].lower().lstrip(".")
        fmt = "dot" if ext == "gv" else ext
        if fmt not in FORMATS:
            raise typer.BadParameter(f"the output must end in .svg, .png, .pdf or .dot, got "
                                     f"`{output}`")
    allow_user_modules(import_modules)
    net, _ = load_checked(file, frames, size, classes)
    graph = to_graph(net, prune_threshold, top_k, peer_edges)
    text = graph.source
    if output is None:
        sys.stdout.write(text)
        return
    if fmt == "dot":
        atomic_write(output, text)
        err_console.print(f"wrote {output}")
        return
    assert fmt is not None  # set from the output's extension
    try:
        data = render(graph, fmt)
    except ExecutableNotFound:  # graphviz's own error: no `dot` on PATH
        dot_path = os.path.splitext(output)[0] + ".dot"
        atomic_write(dot_path, text)
        err_console.print(f"Graphviz `dot` is not installed, so {output} was not rendered; "
                          f"wrote {dot_path} instead. Render it with\n"
                          f"  dot -T{fmt} {dot_path} -o {output}\n"
                          "after installing Graphviz (e.g. `apt-get install graphviz`, "
                          "`brew install graphviz`).")
        return
    except RenderError as exc:
        err_console.print(f"asnc: dot failed to render {output}: {exc}")
        raise typer.Exit(EXIT_BAD_INPUT) from None
    atomic_write(output, data)
    err_console.print(f"wrote {output}")
