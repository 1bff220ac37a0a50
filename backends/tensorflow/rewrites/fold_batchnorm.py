"""`fold-batchnorm`: every inference batch norm becomes the bias of the conv before it.

Layers built in this form (`fold_bn=True`) list their `(conv, None)` pairs in the order the
reference form lists its `(conv, batch norm)` pairs; `layers.folding.load_folded` folds
each pair (the formula is in that module's docstring).
"""

from __future__ import annotations

from ..layers.folding import bn_count, copy_matching, load_folded
from ..lower import lower
from . import RewriteStep


def rewrite(step: RewriteStep):
    new = lower(step.net, seed=step.seed, batch=step.batch, form=step.form, placeholder=True)
    old = {layer.name: layer for layer in step.current.model.layers}
    folded = 0
    for layer in new.model.layers:
        ref = old[layer.name]
        if getattr(layer, "fold_bn", False):
            folded += load_folded(layer, ref)
        elif layer.weights:
            copy_matching(layer, ref)
    left = sum(bn_count(layer) for layer in new.model.layers)
    return new, {"batch_norms_folded": folded, "batch_norms_left": left}
