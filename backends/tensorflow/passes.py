"""The exact backend passes, each applied to a built model and proved on random inputs.

`apply_passes(net, reference, plan)` starts from the reference form (`-O0`: batch norms,
connection-weight multiplies, the flow layer's difference convolutions) and applies the passes
of ``plan`` one at a time, in pipeline order. A pass rebuilds the model in its form
(`lower(..., plan)`) and rewrites the weights of the model before it (so trained weights go
through too); then both models run on the same seeded random input and their logits must
agree within the tolerance, or `PassProofError` names the pass.

Also here: `stage_models`, the same proof for the graph passes (a network per changed
pass, lowered in the reference form with the surviving layers' weights), which measures the
deviation of an approximate pass instead of failing on it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from ...compiler.graph import build_graph
from ...compiler.passes.backend import LoweringPlan
from ...compiler.passes.edgefold import plan_edge_folding
from .layers.folding import bn_count, copy_matching, load_folded

__all__ = ["PassProof", "PassProofError", "apply_passes", "prove_stages", "logits_of",
           "transfer_by_name",
           "PROOF_TOLERANCE", "PROOF_BATCH"]

PROOF_TOLERANCE = 1e-4
PROOF_BATCH = 2


class PassProofError(Exception):
    """An exact pass changed the logits by more than the tolerance."""

    def __init__(self, name: str, diff: float, tolerance: float):
        super().__init__(f"pass `{name}` is not exact on this network: max |logit difference| "
                         f"{diff:.3g} > {tolerance:g} against the model before it (disable "
                         f"it with --disable-pass {name}, and report this)")
        self.name, self.diff, self.tolerance = name, diff, tolerance


@dataclass
class PassProof:
    """One pass checked: the largest logit difference against the model before it."""

    name: str
    exact: bool
    max_abs_diff: float
    max_abs_logit: float
    tolerance: float
    seconds: float
    detail: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return bool(np.isfinite(self.max_abs_diff)) and self.max_abs_diff <= self.tolerance

    def to_json(self) -> dict:
        return {"pass": self.name, "exact": self.exact, "max_abs_diff": self.max_abs_diff,
                "max_abs_logit": self.max_abs_logit,
                "tolerance": self.tolerance if self.exact else None,
                "ok": self.ok if self.exact else None, "seconds": round(self.seconds, 3),
                **self.detail}


def logits_of(model, feeds: dict) -> np.ndarray:
    x = feeds["video"] if len(feeds) == 1 else feeds
    y = model(x, training=False)["logits"]
    return np.asarray(y.numpy() if hasattr(y, "numpy") else y, dtype=np.float64)


def _diff(a: np.ndarray, b: np.ndarray) -> float:
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        return float("inf")
    return float(np.max(np.abs(a - b)))


def transfer_by_name(new_model, old_model) -> list[str]:
    """Copy every weight of ``old_model``'s layers into ``new_model``'s layer of the same name
    where all its weights match in path and shape; returns the layers that could not take
    them (new, or changed by the pass: they keep their seeded initial weights)."""
    old = {layer.name: layer for layer in old_model.layers}
    missed = []
    for layer in new_model.layers:
        if not layer.weights:
            continue
        src = old.get(layer.name)
        try:
            if src is None:
                raise ValueError("no such layer")
            copy_matching(layer, src)
        except ValueError:
            missed.append(layer.name)
    return missed


# -- the passes ------------------------------------------------------------------------------

def _repflow_slices(net, current, plan, seed, batch):
    from .lower import lower

    new = lower(net, seed=seed, batch=batch, plan=plan)
    missed = transfer_by_name(new.model, current.model)
    if missed:
        raise RuntimeError(f"repflow-slices: layers changed shape: {missed}")
    return new, {}


def _fold_batchnorm(net, current, plan, seed, batch):
    from .lower import lower

    new = lower(net, seed=seed, batch=batch, plan=plan)
    old = {layer.name: layer for layer in current.model.layers}
    folded = 0
    for layer in new.model.layers:
        ref = old[layer.name]
        if getattr(layer, "fold_bn", False):
            folded += load_folded(layer, ref)
        elif layer.weights:
            copy_matching(layer, ref)
    left = sum(bn_count(layer) for layer in new.model.layers)
    return new, {"batch_norms_folded": folded, "batch_norms_left": left}


def _fold_edge_weights(net, current, plan, seed, batch):
    from .lower import lower

    g = build_graph(net)
    model = current.model
    weights: dict[tuple[str, str], float] = {}
    for block, lname in current.fusions.items():
        logits = np.asarray(model.get_layer(lname).edge_logits.numpy(), dtype=np.float64)
        gates = 1.0 / (1.0 + np.exp(-logits))
        ir = g.nodes[block]["ir"]
        for inp, w in zip(ir.inputs, gates):
            weights[(inp.source, block)] = float(w)
    channels = {n: int(model.get_layer(n).output.shape[-1]) for n in g.nodes}
    edge_plan = plan_edge_folding(g, weights, channels)
    new = lower(net, seed=seed, batch=batch, plan=plan, edge_fold=edge_plan)
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


TRANSFORMS = {"repflow-slices": _repflow_slices, "fold-batchnorm": _fold_batchnorm,
              "fold-edge-weights": _fold_edge_weights}


def apply_passes(net, reference, plan: LoweringPlan, feeds: dict, *, seed: int = 0,
                 batch: int | None = None, tolerance: float = PROOF_TOLERANCE,
                 on_pass=None):
    """Apply the passes of ``plan`` to ``reference`` (a `Lowered` in the reference form,
    `LoweringPlan()`), proving each; returns ``(final Lowered, [PassProof])``.

    ``feeds``: the random inputs of the proofs. ``on_pass(name)`` is called before each
    pass. Raises `PassProofError` for a pass that changes the logits beyond ``tolerance``.
    """
    current, proofs = reference, []
    before = logits_of(reference.model, feeds)
    first = before
    done = LoweringPlan()
    for name in plan.passes():
        if on_pass is not None:
            on_pass(name)
        t0 = time.perf_counter()
        done = done.with_pass(name)
        new, detail = TRANSFORMS[name](net, current, done, seed, batch)
        after = logits_of(new.model, feeds)
        proof = PassProof(name, True, _diff(after, before), float(np.max(np.abs(before))),
                          tolerance, time.perf_counter() - t0, detail)
        proofs.append(proof)
        if not proof.ok:
            raise PassProofError(name, proof.max_abs_diff, tolerance)
        current, before = new, after
        del new
    if proofs:
        proofs[-1].detail["max_abs_diff_vs_reference"] = _diff(before, first)
    return current, proofs


def prove_stages(lowered, stages, feeds: dict, *, seed: int = 0, batch: int | None = None,
                 tolerance: float = PROOF_TOLERANCE):
    """Lower the network after each graph pass (`Reports.stages`) in the reference form,
    give it the weights of the model before it (by layer name), and compare the logits.

    An exact pass (dead-node elimination) must agree within ``tolerance``; an approximate
    one (edge pruning) has its deviation measured: ``max_abs_diff`` and
    ``relative_deviation`` (over the largest logit of the model before it). Returns
    ``(last Lowered, [PassProof])``.
    """
    from ...compiler.passes import get_pass
    from .lower import lower

    current, proofs = lowered, []
    before = logits_of(current.model, feeds)
    for name, stage_net in stages:
        t0 = time.perf_counter()
        new = lower(stage_net, seed=seed, batch=batch, plan=LoweringPlan())
        missed = transfer_by_name(new.model, current.model)
        after = logits_of(new.model, feeds)
        exact = get_pass(name).info.exact
        diff = _diff(after, before)
        scale = float(np.max(np.abs(before)))
        detail = {"layers_not_transferred": missed}
        if not exact:
            detail["relative_deviation"] = diff / scale if scale > 0 else float("inf")
            detail["note"] = ("approximate pass: deviation of the model after it from the "
                              "model before it, same input, same weights for surviving "
                              "layers")
        proof = PassProof(name, exact, diff, scale, tolerance, time.perf_counter() - t0,
                          detail)
        proofs.append(proof)
        if exact and not proof.ok:
            raise PassProofError(name, diff, tolerance)
        current, before = new, after
    return current, proofs
