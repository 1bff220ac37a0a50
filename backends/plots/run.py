"""The pictures of a run directory, drawn after every epoch and by `asnc plot RUN`."""

from __future__ import annotations

from pathlib import Path

from .connections import draw_connection_heatmap, draw_connection_trajectories
from .curves import draw_curves

__all__ = ["draw_run", "CURVES", "TRAJECTORIES", "HEATMAP"]

CURVES, TRAJECTORIES, HEATMAP = "curves", "connections", "connection_weights"


def draw_run(run: str | Path, history: list[dict], inputs: dict[str, list[str]],
             order: list[str] | None = None, title: str = "") -> list[str]:
    """``RUN/curves.png``/``.svg``; with learnable connection weights in ``history`` (a
    search), also ``RUN/connections`` (trajectories) and ``RUN/connection_weights`` (the
    last epoch's weights as a heat map). Returns the paths written."""
    run = Path(run)
    if not history:
        return []
    paths = draw_curves(history, run / CURVES, title)
    last = history[-1].get("connections") or {}
    learned = {b: w for b, w in last.items() if b in inputs}
    if learned:
        epochs = f"epoch {history[-1]['epoch']}"
        paths += draw_connection_trajectories(history, inputs, run / TRAJECTORIES,
                                              f"{title}: connection weights over training"
                                              if title else "")
        paths += draw_connection_heatmap(learned, inputs, run / HEATMAP,
                                         f"{title}: learned connection weights ({epochs})"
                                         if title else "", order)
    return paths
