"""`asnc evolve`'s `RUN/evolution.png` and `.svg`: fitness of every trial over time with the
best-so-far line, and held-out accuracy against GFLOPs with the Pareto front."""

from __future__ import annotations

from pathlib import Path

from matplotlib.ticker import MaxNLocator

from ...compiler.evolution.pareto import pareto_front
from .files import new_figure, save_figure

__all__ = ["draw_evolution"]


def draw_evolution(records: list[dict], stem: str | Path) -> list[str]:
    """Draw a run's journal records into ``stem.png`` and ``stem.svg``; returns the paths."""
    trials = sorted((r for r in records if r["status"] in ("done", "failed")),
                    key=lambda r: r["finished"])
    done = [r for r in trials if r["status"] == "done"]
    failed = [r for r in trials if r["status"] == "failed"]
    t0 = min((r["started"] for r in trials), default=0.0)
    fig = new_figure(11, 4.2)
    ax_t, ax_c = fig.subplots(1, 2)

    minutes = [(r["finished"] - t0) / 60 for r in done]
    ax_t.scatter(minutes, [r["fitness"] for r in done], s=22, color="tab:blue", alpha=0.7,
                 label="trial (held-out top-1)", zorder=3)
    if failed:
        ax_t.scatter([(r["finished"] - t0) / 60 for r in failed], [0.0] * len(failed),
                     marker="x", color="tab:red", label="failed trial", zorder=3)
    best_x, best_y, best = [], [], float("-inf")
    for x, r in zip(minutes, done):
        best = max(best, r["fitness"])
        best_x.append(x)
        best_y.append(best)
    if best_x:
        ax_t.step(best_x, best_y, where="post", color="tab:orange", lw=2, label="best so far")
    ax_t.set_xlim(left=0)
    ax_t.set_xlabel("time since the first trial started (min)")
    ax_t.set_ylabel("held-out top-1 accuracy")
    ax_t.set_ylim(-0.03, 1.03)
    ax_t.set_title(f"{len(trials)} trials ({len(failed)} failed)")
    ax_t.grid(alpha=0.3)
    ax_t.legend(loc="lower right", fontsize=8)

    ax_c.scatter([r["gflops"] for r in done], [r["fitness"] for r in done], s=22,
                 color="tab:blue", alpha=0.7, label="trial", zorder=3)
    by_id = {r["id"]: r for r in done}
    front = [by_id[i] for i in pareto_front([(r["id"], r["fitness"], r["gflops"])
                                            for r in done])]
    if front:
        ax_c.step([r["gflops"] for r in front], [r["fitness"] for r in front], where="post",
                  color="tab:green", lw=2, marker="o", label="Pareto front")
        for r in front:
            ax_c.annotate(str(r["id"]), (r["gflops"], r["fitness"]), fontsize=7,
                          xytext=(3, 3), textcoords="offset points")
    # a narrow GFLOPs range has long tick labels: few of them, so they never overlap
    ax_c.xaxis.set_major_locator(MaxNLocator(nbins=5))
    ax_c.set_xlabel("GFLOPs per clip")
    ax_c.set_ylabel("held-out top-1 accuracy")
    ax_c.set_ylim(-0.03, 1.03)
    ax_c.set_title("accuracy vs cost")
    ax_c.grid(alpha=0.3)
    ax_c.legend(loc="lower right", fontsize=8)

    return save_figure(fig, stem)
