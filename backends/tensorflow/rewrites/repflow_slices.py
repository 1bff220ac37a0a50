"""`repflow-slices`: the flow layer's fixed difference convolutions become slices.

The flow layer computes both forms from the same 16 values; its form is a flag its `call`
reads (`RepresentationFlow.fused`), so the rewrite sets that flag on the model before the
pass instead of building a second model: every other layer stays the very same object
with the same weights (the caller hands the model over, `proofs.Handover`).

With the proof's clips (`RewriteStep.feeds`) it also runs the flow layer in both forms on
the flow layer's input for those clips. Where the two outputs are bit for bit equal, the
model after the pass computes exactly the logits of the model before it (the one layer
that changed gives the same values to the same layers, and TensorFlow runs the same ops
on the same values the same way), so the proof needs no forward pass of the whole model:
the detail's ``flow_output_identical`` (and `SAME_LOGITS`) says so. Otherwise the proof
runs the model.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ..lower import model_input
from ..repflow import RepresentationFlow
from . import SAME_LOGITS, RewriteStep


def rewrite(step: RewriteStep):
    model = step.current.model
    flows = [layer for layer in model.layers if isinstance(layer, RepresentationFlow)]
    if len(flows) != 1:
        raise RuntimeError(f"repflow-slices: expected one flow layer, found {len(flows)}")
    layer = flows[0]
    identical = None
    if step.feeds is not None and not layer.fused:
        import keras

        probe = keras.Model(model.input, layer.input)  # the flow layer's input, nothing more
        x = probe(model_input(step.feeds))
        reference = np.asarray(layer(x))
        layer.fused = True
        identical = bool(np.array_equal(np.asarray(layer(x)), reference))
        del probe, x, reference
    layer.fused = True
    new = dataclasses.replace(step.current, form=step.form)
    if identical is None:
        return new, {}
    return new, {"flow_output_identical": identical, SAME_LOGITS: identical}
