"""`repflow-slices`: the flow layer's fixed difference convolutions become slices.

The new model differs only in the Representation Flow layer's form (`fused=True`), which
holds the same 16 values; every layer therefore takes its weights by name unchanged.
"""

from __future__ import annotations

from ..lower import lower
from ..layers.folding import transfer_by_name
from . import RewriteStep


def rewrite(step: RewriteStep):
    new = lower(step.net, seed=step.seed, batch=step.batch, form=step.form, placeholder=True)
    missed = transfer_by_name(new.model, step.current.model)
    if missed:
        raise RuntimeError(f"repflow-slices: layers changed shape: {missed}")
    return new, {}
