"""Random multi-stream networks within bounds: `asnc evolve --random-init`'s initial population.

The header and the stems are the template's (the seed file: input size, depth, stems); the
blocks are drawn: a count per level 0..3, a width from the given choices (every level-3 block
one width, since the classifier averages heads of one width), a temporal dilation of 1, 2, 4
or 8, stride 2 from level 1 up (as AssembleNet halves the resolution per level), and 1 to
`max_inputs` inputs among the nodes of lower levels (stems included). A draw that fails
`asnc check` is drawn again.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ...dsl.ir import Block, Input, Network
from .mutations import DILATIONS, MAX_TRIES, MutationError, is_valid, without_comments

__all__ = ["RandomBounds", "random_network"]


@dataclass(frozen=True)
class RandomBounds:
    blocks_per_level: tuple[int, int] = (1, 2)  # inclusive
    filters: Sequence[int] = (8, 16, 32)
    max_inputs: int = 3

    def __post_init__(self) -> None:
        lo, hi = self.blocks_per_level
        if not 1 <= lo <= hi:
            raise ValueError(f"blocks per level must satisfy 1 <= min <= max, got {lo}, {hi}")
        if not self.filters or any(f < 1 for f in self.filters):
            raise ValueError(f"filters must be positive widths, got {list(self.filters)}")
        if self.max_inputs < 1:
            raise ValueError(f"max inputs must be >= 1, got {self.max_inputs}")


def random_network(template: Network, rng: random.Random, bounds: RandomBounds = RandomBounds(),
                   valid: Callable[[Network], bool] = is_valid) -> Network:
    """A random network with `template`'s header and stems; raises MutationError when no draw
    of `MAX_TRIES` checks (bounds that cannot fit the input size, e.g.)."""
    stems = [s.model_copy(deep=True) for s in template.stems]
    if not stems:
        raise ValueError("the template has no stem")
    for _ in range(MAX_TRIES):
        nodes: list = list(stems)
        lower = [s.name for s in stems]
        head_width = rng.choice(list(bounds.filters))
        for level in range(4):
            names = []
            for k in range(rng.randint(*bounds.blocks_per_level)):
                name = f"l{level}_{k}"
                sources = rng.sample(lower, rng.randint(1, min(bounds.max_inputs, len(lower))))
                nodes.append(Block(name=name, level=level,
                                   inputs=[Input(source=s) for s in sources],
                                   filters=head_width if level == 3 else
                                   rng.choice(list(bounds.filters)),
                                   dilation=rng.choice(DILATIONS), stride=1 if level == 0 else 2))
                names.append(name)
            lower += names
        net = without_comments(Network(header=template.header.model_copy(deep=True),
                                       nodes=nodes))
        if valid(net):
            return net
    raise MutationError(f"no random network within the bounds checks after {MAX_TRIES} draws")
