"""Static budgets: GFLOPs and parameters from `compiler.analysis` (exact, no TensorFlow), so an
individual over budget is rejected before it is ever trained."""

from __future__ import annotations

from dataclasses import dataclass

from ...dsl.ir import Network
from ..analysis import analyse

__all__ = ["Cost", "Budget", "cost"]


@dataclass(frozen=True)
class Cost:
    gflops: float  # per clip, 2 operations per multiply-accumulate (`asnc stats`)
    params: int  # trainable + non-trainable, equal to Keras count_params()


def cost(net: Network) -> Cost:
    stats = analyse(net)
    return Cost(stats.flops / 1e9, stats.total)


@dataclass(frozen=True)
class Budget:
    max_gflops: float | None = None
    max_params: int | None = None

    def violation(self, c: Cost) -> str | None:
        """Why `c` is over budget, or None."""
        if self.max_gflops is not None and c.gflops > self.max_gflops:
            return f"{c.gflops:.4g} GFLOPs is over the budget of {self.max_gflops:g}"
        if self.max_params is not None and c.params > self.max_params:
            return f"{c.params:,} parameters is over the budget of {self.max_params:,}"
        return None
