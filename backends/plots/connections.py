"""Connection weights of a one-shot search: their trajectories and the learned values."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from matplotlib.ticker import MaxNLocator

from .files import new_figure, save_figure

__all__ = ["draw_connection_trajectories", "draw_connection_heatmap"]


def _learned_blocks(history: list[dict], inputs: dict[str, list[str]]) -> list[str]:
    seen: list[str] = []
    for entry in history:
        for block in entry.get("connections", {}):
            if block not in seen and block in inputs:
                seen.append(block)
    order = list(inputs)
    return sorted(seen, key=order.index)


def draw_connection_trajectories(history: list[dict], inputs: dict[str, list[str]],
                                 stem: str | Path, title: str = "") -> list[str]:
    """One panel per target block, one line per input: the weight (after the sigmoid) at the
    end of each epoch. ``inputs``: block -> its input names, in order."""
    blocks = _learned_blocks(history, inputs)
    if not blocks:
        raise ValueError("the history has no learnable connection weights")
    cols = min(3, len(blocks))
    rows = math.ceil(len(blocks) / cols)
    fig = new_figure(4.2 * cols, 3.0 * rows + 0.6)
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    for ax, block in zip(axes, blocks):
        names = inputs[block]
        for i, name in enumerate(names):
            pts = [(int(e["epoch"]), e["connections"][block][i]) for e in history
                   if block in e.get("connections", {})]
            ax.plot([p[0] for p in pts], [p[1] for p in pts], "-o", markersize=3,
                    linewidth=1.5, label=name)
        ax.set_title(f"into {block}", fontsize=10)
        ax.set_ylim(0, 1)
        ax.set_xlabel("epoch")
        ax.set_ylabel("weight (sigmoid)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8, loc="best", title="input", title_fontsize=8)
    for ax in axes[len(blocks):]:
        ax.set_visible(False)
    fig.suptitle(title or "connection weights over training")
    return save_figure(fig, stem)


def draw_connection_heatmap(weights: dict[str, list[float]], inputs: dict[str, list[str]],
                            stem: str | Path, title: str = "",
                            order: list[str] | None = None) -> list[str]:
    """Target blocks (rows) x input nodes (columns, in ``order``: the network's node order,
    stems first), the learned weight printed in each cell; an empty cell is not a
    connection."""
    blocks = [b for b in inputs if b in weights]
    if not blocks:
        raise ValueError("no learned connection weights to draw")
    sources: list[str] = []
    for b in blocks:
        for s in inputs[b]:
            if s not in sources:
                sources.append(s)
    if order is not None:
        rank = {n: i for i, n in enumerate(order)}
        sources.sort(key=lambda s: rank.get(s, len(rank)))
    grid = np.full((len(blocks), len(sources)), np.nan)
    for r, b in enumerate(blocks):
        for name, w in zip(inputs[b], weights[b]):
            grid[r, sources.index(name)] = w
    fig = new_figure(max(4.5, 0.9 * len(sources) + 2.5), max(2.5, 0.55 * len(blocks) + 1.6))
    ax = fig.add_subplot()
    cmap = _cmap()
    image = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, vmin=0, vmax=1, aspect="auto")
    for r in range(len(blocks)):
        for c in range(len(sources)):
            if not np.isnan(grid[r, c]):
                v = grid[r, c]
                ax.text(c, r, f"{v:.2f}", ha="center", va="center", fontsize=9,
                        color="white" if abs(v - 0.5) > 0.3 else "black")
    ax.set_xticks(range(len(sources)), sources, rotation=45, ha="right")
    ax.set_yticks(range(len(blocks)), blocks)
    ax.set_xlabel("input")
    ax.set_ylabel("target block")
    ax.set_xticks(np.arange(len(sources) + 1) - 0.5, minor=True)
    ax.set_yticks(np.arange(len(blocks) + 1) - 0.5, minor=True)
    ax.grid(which="minor", color="white", linewidth=1.5)
    ax.tick_params(which="minor", length=0)
    fig.colorbar(image, ax=ax, label="weight (sigmoid; 0.5: where training starts)")
    ax.set_title(title or "learned connection weights")
    return save_figure(fig, stem)


def _cmap():
    import matplotlib

    # Diverging around 0.5, where every learnable weight starts (logit 0): blue grew, red
    # shrank; grey is no connection.
    return matplotlib.colormaps["RdBu"].with_extremes(bad="#dddddd")
