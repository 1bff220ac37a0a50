"""The Pareto front of accuracy (higher is better) against GFLOPs (lower is better)."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["pareto_front"]


def pareto_front(points: Sequence[tuple[int, float, float]]) -> list[int]:
    """The ids of the non-dominated `(id, accuracy, gflops)` points, by GFLOPs ascending.

    A point is dominated when another is at least as accurate and at most as costly, and
    strictly better in one of the two. Of exact duplicates the first is kept.
    """
    front: list[int] = []
    best_acc = float("-inf")
    # cheapest first; among equal cost, most accurate first
    for pid, acc, _gflops in sorted(points, key=lambda p: (p[2], -p[1])):
        if acc > best_acc:
            front.append(pid)
            best_acc = acc
    return front
