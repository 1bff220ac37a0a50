"""The confusion matrix of an evaluation: true class (rows) x predicted class (columns).

Colour is the share of the true class's videos (a row sums to 1; square-root scale, so a
confusion of a few percent shows), so small classes read as well as large ones; counts are
printed in the cells up to 30 classes. The figure grows with
the class count (a fixed cell of about 0.14 inch and a 6-point class name at 101 classes),
so every class name on both axes stays legible in the PNG at its 150 dpi and in the SVG.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
from matplotlib.colors import PowerNorm

from .files import new_figure, save_figure

__all__ = ["draw_confusion"]

COUNTS_UP_TO = 30  # classes; beyond, the cells are too small for numbers


def draw_confusion(confusion, classes: list[str], stem: str | Path, title: str = ""
                   ) -> list[str]:
    m = np.asarray(confusion, np.float64)
    c = len(classes)
    if m.shape != (c, c):
        raise ValueError(f"confusion matrix of shape {m.shape} for {c} classes")
    rows = m.sum(axis=1, keepdims=True)
    share = np.divide(m, rows, out=np.zeros_like(m), where=rows > 0)
    longest = max(len(n) for n in classes)
    if c <= COUNTS_UP_TO:
        cell, font = 0.42, 9.0
    else:
        cell, font = 0.14, 6.0
    label_in = longest * font * 0.55 / 72 + 0.4  # room for the longest name
    side = c * cell
    width = max(side + label_in + 2.2, 5.0)
    fig = new_figure(width, side + label_in + 1.0)
    ax = fig.add_subplot()
    # A square-root colour scale: a confusion of 3% of a class is visible, not near-white.
    image = ax.imshow(share, cmap="Blues", norm=PowerNorm(0.5, vmin=0, vmax=1),
                      interpolation="nearest")
    ax.set_xticks(range(c), classes, rotation=90, fontsize=font)
    ax.set_yticks(range(c), classes, fontsize=font)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    if c > COUNTS_UP_TO:  # a light grid guides the eye along a row of tiny cells
        ax.set_xticks(np.arange(c + 1) - 0.5, minor=True)
        ax.set_yticks(np.arange(c + 1) - 0.5, minor=True)
        ax.grid(which="minor", color="#dddddd", linewidth=0.3)
        ax.tick_params(which="minor", length=0)
        ax.tick_params(which="major", length=2, width=0.4)
    else:
        for r in range(c):
            for col in range(c):
                if m[r, col]:
                    ax.text(col, r, f"{int(m[r, col])}", ha="center", va="center",
                            fontsize=font, color="white" if share[r, col] > 0.5 else "black")
    bar = fig.colorbar(image, ax=ax, shrink=min(1.0, 6 / max(side, 1e-9)) if side > 6 else 1.0)
    bar.set_ticks([0, 0.05, 0.2, 0.5, 1.0])
    bar.set_label("share of the true class's videos\n(square-root colour scale)")
    # wrapped to the figure's width (10-point text: about 12 characters an inch)
    ax.set_title(textwrap.fill(title or "confusion matrix", max(30, int(width * 11))),
                 fontsize=10)
    return save_figure(fig, stem)
