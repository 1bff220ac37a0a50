"""Saving a matplotlib figure as PNG and SVG beside each other, atomically."""

from __future__ import annotations

import io
from pathlib import Path

from matplotlib.figure import Figure

from ...dsl.outputs import write_file

__all__ = ["save_figure", "new_figure"]

DPI = 150


def new_figure(width: float, height: float) -> Figure:
    """A figure on the Agg canvas (no pyplot: nothing global, nothing needs a display)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Figure, stem: str | Path) -> list[str]:
    """Write ``stem.png`` and ``stem.svg``; returns the paths. An OSError is a
    DiagnosticError (`dsl.outputs.write_file`)."""
    paths = []
    for fmt in ("png", "svg"):
        buf = io.BytesIO()
        # SVG: no creation date, so a redrawn picture of the same run is the same file.
        meta = {"Date": None} if fmt == "svg" else {"Software": "asnc (matplotlib)"}
        fig.savefig(buf, format=fmt, dpi=DPI, metadata=meta)
        path = f"{stem}.{fmt}"
        write_file(path, buf.getvalue())
        paths.append(path)
    return paths
