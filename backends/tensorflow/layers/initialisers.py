"""Seeded random initialisers, or zeros while a rewrite builds a model it then fills.

A backend rewrite (`rewrites/`) lowers the network again in its new form and then sets every
weight from the model before it (it fails if one has no source), so the random draws of
that build are thrown away: on AssembleNet-50, 37 M truncated normals, about 2.5 s of CPU
per build. Inside `placeholder_weights()` each random initialiser built through `random`
is Zeros instead; fixed values (batch norm ones, given connection weights, the flow layer's
kernels) are built as usual, and outside the context nothing changes (same seeds, same
values).
"""

from __future__ import annotations

import contextlib
import contextvars
from typing import Iterator

import keras

__all__ = ["placeholder_weights", "random"]

_PLACEHOLDER = contextvars.ContextVar("asn_placeholder_weights", default=False)


@contextlib.contextmanager
def placeholder_weights() -> Iterator[None]:
    """Layers built inside get zeros where they would draw random initial weights."""
    token = _PLACEHOLDER.set(True)
    try:
        yield
    finally:
        _PLACEHOLDER.reset(token)


def random(initialiser):
    """``initialiser`` (a seeded random one), or Zeros inside `placeholder_weights`."""
    return keras.initializers.Zeros() if _PLACEHOLDER.get() else initialiser
