"""Which passes run, with which settings: the `PassContext`, entered with `with`."""

from __future__ import annotations

import threading
from typing import Iterable

import networkx as nx

from ..analysis import CountRules, NetworkStats, analyse_graph

__all__ = ["PassContext", "DEFAULT_PRUNE_THRESHOLD"]

DEFAULT_PRUNE_THRESHOLD = 0.2

_local = threading.local()


class PassContext:
    """Which passes run and with which settings; enter it with `with` to make it current.

    Parameters:
        opt_level: run every registered pass whose `opt_level` is at most this (0: none).
        required: names that run whatever the level (an explicit `--passes` list).
        disabled: names that never run, even when required or chosen by the level.
        prune_threshold: `prune-edges` removes weights below it (after sigmoid).
        prune_top_k: `prune-edges` keeps at most this many inputs per block.

    Example:
        >>> with PassContext(opt_level=1, disabled=["dead-node-elimination"]):
        ...     g2, reports = Sequential(pipeline_for_level(1))(g)
    """

    def __init__(self, opt_level: int = 0, required: Iterable[str] = (),
                 disabled: Iterable[str] = (), prune_threshold: float | None = None,
                 prune_top_k: int | None = None):
        if not isinstance(opt_level, int) or isinstance(opt_level, bool):
            raise TypeError(f"opt_level must be an int, got {type(opt_level).__name__}")
        if opt_level < 0:
            raise ValueError(f"opt_level must be >= 0, got {opt_level}")
        self.opt_level = opt_level
        self.required = _names(required, "required")
        self.disabled = _names(disabled, "disabled")
        if prune_threshold is not None:
            if not isinstance(prune_threshold, (int, float)) or isinstance(prune_threshold, bool):
                raise TypeError("prune_threshold must be a float, got "
                                f"{type(prune_threshold).__name__}")
            if not 0.0 <= float(prune_threshold) <= 1.0:
                raise ValueError(f"prune_threshold must be in [0, 1], got {prune_threshold}")
            prune_threshold = float(prune_threshold)
        if prune_top_k is not None:
            if not isinstance(prune_top_k, int) or isinstance(prune_top_k, bool):
                raise TypeError(f"prune_top_k must be an int, got {type(prune_top_k).__name__}")
            if prune_top_k < 1:
                raise ValueError(f"prune_top_k must be >= 1, got {prune_top_k}")
        self.prune_threshold = prune_threshold
        self.prune_top_k = prune_top_k
        self._stats: dict[tuple[int, CountRules], tuple[nx.DiGraph, NetworkStats]] = {}

    def stats(self, g: nx.DiGraph, rules: CountRules = CountRules()) -> NetworkStats:
        """`analyse_graph(g, rules)`, computed once per graph: passes never mutate a graph,
        so the pass before, the pass itself and the manager's instrument share one count."""
        key = (id(g), rules)
        hit = self._stats.get(key)
        if hit is None or hit[0] is not g:
            hit = (g, analyse_graph(g, rules))  # holding g keeps its id from being reused
            self._stats[key] = hit
        return hit[1]

    def enabled(self, info) -> bool:
        """Whether the pass of `PassInfo` ``info`` runs under this context."""
        if info.name in self.disabled:
            return False
        return info.name in self.required or info.opt_level <= self.opt_level

    @staticmethod
    def current() -> "PassContext":
        stack = getattr(_local, "stack", None)
        return stack[-1] if stack else PassContext()

    def __enter__(self) -> "PassContext":
        if not hasattr(_local, "stack"):
            _local.stack = []
        _local.stack.append(self)
        return self

    def __exit__(self, *exc) -> None:
        _local.stack.pop()


def _names(values: Iterable[str], what: str) -> frozenset[str]:
    if isinstance(values, str):
        raise TypeError(f"{what} must be a list of pass names, got the string {values!r}")
    out = []
    for v in values:
        if not isinstance(v, str):
            raise TypeError(f"{what} must hold pass names (str), got {type(v).__name__}")
        out.append(v)
    return frozenset(out)
