"""Aging (regularized) evolution (Real et al., AAAI 2019), the selection AssembleNet uses.

A population of at most N individuals, kept in the order they joined. Each step samples S
of them at random; the fittest of the sample is the parent; its child joins when its trial
finishes and the oldest member leaves, whatever its fitness (aging), so no lucky early
individual stays forever.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["Member", "AgingPopulation"]


@dataclass(frozen=True)
class Member:
    id: int
    fitness: float


class AgingPopulation:
    """At most `size` members, oldest first."""

    def __init__(self, size: int, members: Iterable[Member] = ()) -> None:
        if size < 1:
            raise ValueError(f"population size must be >= 1, got {size}")
        self.size = size
        self._members: deque[Member] = deque()
        for m in members:
            self.add(m)

    def __len__(self) -> int:
        return len(self._members)

    @property
    def members(self) -> list[Member]:
        return list(self._members)

    def add(self, member: Member) -> Member | None:
        """Add `member` as the youngest; return the oldest if it had to leave."""
        self._members.append(member)
        if len(self._members) > self.size:
            return self._members.popleft()
        return None

    def select_parent(self, rng: random.Random, sample: int) -> Member:
        """The fittest of `sample` members drawn at random without replacement (ties: the
        younger, which carries the newer architecture)."""
        if not self._members:
            raise ValueError("the population is empty")
        if sample < 1:
            raise ValueError(f"sample size must be >= 1, got {sample}")
        drawn = rng.sample(range(len(self._members)), min(sample, len(self._members)))
        best = max(drawn, key=lambda k: (self._members[k].fitness, k))
        return self._members[best]
