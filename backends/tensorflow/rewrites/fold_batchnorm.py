"""`fold-batchnorm`: every inference batch norm becomes the bias of the conv before it.

The model before the pass changes in place (`layers.folding.fold_in_place`, the formula is
in that module's docstring): each layer that has batch norms takes the form it is built in
with ``fold_bn=True`` (its convs with a bias, no batch norm), with the same layers, weight
names and weight order as that form built anew; no second model is built.
"""

from __future__ import annotations

import dataclasses

from ..layers.bn_options import BatchNormOptions
from ..layers.folding import bn_count, fold_in_place
from . import RewriteStep


def rewrite(step: RewriteStep):
    model = step.current.model
    folded = 0
    for layer in model.layers:
        if isinstance(layer, BatchNormOptions) and not layer.fold_bn:
            folded += fold_in_place(layer)
    left = sum(bn_count(layer) for layer in model.layers)
    new = dataclasses.replace(step.current, form=step.form)
    return new, {"batch_norms_folded": folded, "batch_norms_left": left}
