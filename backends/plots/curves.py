"""Loss and accuracy per epoch, training and validation, side by side."""

from __future__ import annotations

from pathlib import Path

from matplotlib.ticker import MaxNLocator, PercentFormatter

from .files import new_figure, save_figure

__all__ = ["draw_curves"]


def _series(history: list[dict], key: str) -> tuple[list[int], list[float]]:
    pts = [(int(e["epoch"]), float(e[key])) for e in history if e.get(key) is not None]
    return [p[0] for p in pts], [p[1] for p in pts]


def draw_curves(history: list[dict], stem: str | Path, title: str = "") -> list[str]:
    """``stem.png``/``.svg``: the loss and accuracy of every epoch of ``history`` (entries of
    ``metrics.json``: ``epoch``, ``loss``, ``accuracy``, ``val_loss``, ``val_accuracy``)."""
    fig = new_figure(10, 4)
    axes = fig.subplots(1, 2)
    for ax, metric, label in ((axes[0], "loss", "loss (cross-entropy)"),
                              (axes[1], "accuracy", "accuracy")):
        for key, name, style in ((metric, "training", "-o"),
                                 (f"val_{metric}", "validation (1 centred clip)", "-s")):
            x, y = _series(history, key)
            if x:
                ax.plot(x, y, style, markersize=4, linewidth=1.6, label=name)
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(True, alpha=0.3)
        if metric == "accuracy":
            ax.set_ylim(-0.02, 1.02)
            ax.yaxis.set_major_formatter(PercentFormatter(1.0))
        else:
            ax.set_ylim(bottom=0)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="best", fontsize=9)
    fig.suptitle(title or "training curves")
    return save_figure(fig, stem)
