"""`fold-edge-weights`: connection weights move into the convolutions around them.

`compiler.passes.edgefold.plan_edge_folding` (pure Python) chooses the factors from the
model's current connection weights; here the fusions become `ScaledSumFusion` layers
(residual scales of the plan), each input group's 1x1 conv takes its group's scale, and
producers and blocks scale their outputs and inputs as the plan says.
"""

from __future__ import annotations

import numpy as np

from ....compiler.graph import build_graph
from ....compiler.passes.edgefold import plan_edge_folding
from ..layers.folding import copy_matching
from ..lower import lower
from . import RewriteStep


def rewrite(step: RewriteStep):
    g = build_graph(step.net)
    model = step.current.model
    weights: dict[tuple[str, str], float] = {}
    for block, lname in step.current.fusions.items():
        logits = np.asarray(model.get_layer(lname).edge_logits.numpy(), dtype=np.float64)
        gates = 1.0 / (1.0 + np.exp(-logits))
        ir = g.nodes[block]["ir"]
        for inp, w in zip(ir.inputs, gates):
            weights[(inp.source, block)] = float(w)
    channels = {n: int(model.get_layer(n).output.shape[-1]) for n in g.nodes}
    edge_plan = plan_edge_folding(g, weights, channels)
    new = lower(step.net, seed=step.seed, batch=step.batch, form=step.form, edge_fold=edge_plan,
                placeholder=True)
    old = {layer.name: layer for layer in model.layers}
    fusion_block = {lname: b for b, lname in new.fusions.items()}
    for layer in new.model.layers:
        ref = old[layer.name]
        if layer.name in fusion_block:
            q = edge_plan.group_scale.get(fusion_block[layer.name], {})
            ref_convs = ref.group_convs()
            for c, conv in layer.group_convs().items():
                conv.kernel.assign((np.asarray(ref_convs[c].kernel.numpy(), np.float64)
                                    * q.get(c, 1.0)).astype(np.float32))
        elif layer.weights:
            copy_matching(layer, ref)
    for node, s in edge_plan.producer_scale.items():
        new.model.get_layer(node).scale_output(s)
    for block, t in edge_plan.input_scale.items():
        new.model.get_layer(block).scale_input(t)
    return new, edge_plan.to_json()
