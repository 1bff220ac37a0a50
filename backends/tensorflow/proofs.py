"""Every pass proved on random inputs: the model before it and the model after it run on
the same seeded clips, and an exact pass must keep the logits within the tolerance.

`prove_graph_passes(lowered, stages, feeds)`: the network after each graph pass that changed
it, lowered in the reference form with the surviving layers' weights (by name); an
approximate pass (edge pruning) has its deviation measured instead of failing.

`apply_backend_passes(net, reference, form, feeds)`: starting from the reference form
(`-O0`: batch norms, connection-weight multiplies, the flow layer's difference
convolutions), each backend pass of ``form`` in pipeline order: its rewrite
(`rewrites.rewrite_for`) builds the model in the form with the pass and moves the weights
of the model before it (trained weights go through too); `PassProofError` names a pass that
changes the logits beyond the tolerance.
"""

from __future__ import annotations

import gc
import time
from dataclasses import dataclass, field

import numpy as np

from ...compiler.passes import LoweringForm, get_pass
from .layers.folding import transfer_by_name
from .lower import lower, model_input
from .rewrites import SAME_LOGITS, RewriteStep, rewrite_for

__all__ = ["Handover", "PassProof", "PassProofError", "apply_backend_passes",
           "prove_graph_passes", "logits_of", "rebuild_at", "PROOF_TOLERANCE"]

PROOF_TOLERANCE = 1e-4


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


class Handover:
    """A `Lowered` given to the proofs with no other reference kept by the caller, so each
    model is freed as soon as the one after it is built and proved: a compile holds two
    models at a time, not the reference form besides (AssembleNet-50: 143 MiB of weights
    and a Keras graph each). ``chain = Handover(lowered); del lowered``."""

    def __init__(self, lowered):
        self._lowered = lowered

    def take(self):
        lowered, self._lowered = self._lowered, None
        if lowered is None:
            raise RuntimeError("a Handover is taken once")
        return lowered


def _taken(lowered):
    return lowered.take() if isinstance(lowered, Handover) else lowered


def _drop() -> None:
    # Keras models are reference cycles (layers <-> nodes): only the collector frees them.
    gc.collect()


def logits_of(model, feeds: dict) -> np.ndarray:
    y = model(model_input(feeds), training=False)["logits"]
    return np.asarray(y.numpy() if hasattr(y, "numpy") else y, dtype=np.float64)


def _diff(a: np.ndarray, b: np.ndarray) -> float:
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        return float("inf")
    return float(np.max(np.abs(a - b)))


def apply_backend_passes(net, reference, form: LoweringForm, feeds: dict, *, seed: int = 0,
                         batch: int | None = None, tolerance: float = PROOF_TOLERANCE,
                         on_pass=None, before: np.ndarray | None = None):
    """Apply the passes of ``form`` to ``reference`` (a `Lowered` in the reference form),
    proving each; returns ``(final Lowered, [PassProof])``.

    ``feeds``: the random inputs of the proofs; ``before``: ``reference``'s logits on them
    when the caller has them already (`prove_graph_passes` does). ``on_pass(name)`` is
    called before each pass. Raises `PassProofError` for a pass that changes the logits
    beyond ``tolerance``.
    """
    current, proofs = _taken(reference), []
    del reference
    if before is None:
        before = logits_of(current.model, feeds)
    first = before
    done = LoweringForm.reference()
    for name in form.applied:
        if on_pass is not None:
            on_pass(name)
        t0 = time.perf_counter()
        done = done.with_pass(name)
        new, detail = rewrite_for(name)(RewriteStep(net, current, done, seed, batch, feeds))
        current = new  # the model before it is not needed any more: free it first
        del new
        _drop()
        if detail.get(SAME_LOGITS) is True:
            after = before  # shown bit for bit on these clips by the rewrite (its module)
        else:
            after = logits_of(current.model, feeds)
        proof = PassProof(name, True, _diff(after, before), float(np.max(np.abs(before))),
                          tolerance, time.perf_counter() - t0, detail)
        proofs.append(proof)
        if not proof.ok:
            raise PassProofError(name, proof.max_abs_diff, tolerance)
        before = after
    if proofs:
        proofs[-1].detail["max_abs_diff_vs_reference"] = _diff(before, first)
    return current, proofs


def prove_graph_passes(lowered, stages, feeds: dict, *, seed: int = 0,
                       batch: int | None = None, tolerance: float = PROOF_TOLERANCE):
    """Lower the network after each graph pass (`Reports.stages`) in the reference form,
    give it the weights of the model before it (by layer name), and compare the logits.

    An exact pass (dead-node elimination) must agree within ``tolerance``; an approximate
    one (edge pruning) has its deviation measured: ``max_abs_diff`` and
    ``relative_deviation`` (over the largest logit of the model before it). Returns
    ``(last Lowered, [PassProof], its logits on feeds)``; the logits are None when there
    are no stages (nothing ran).
    """
    current, proofs = _taken(lowered), []
    del lowered
    if not stages:
        return current, proofs, None
    before = logits_of(current.model, feeds)
    for name, stage_net in stages:
        t0 = time.perf_counter()
        new = lower(stage_net, seed=seed, batch=batch, form=LoweringForm.reference())
        missed = transfer_by_name(new.model, current.model)
        current = new  # the model before it is not needed any more: free it first
        del new
        _drop()
        after = logits_of(current.model, feeds)
        exact = get_pass(name).info.exact
        diff = _diff(after, before)
        scale = float(np.max(np.abs(before)))
        detail: dict = {"layers_not_transferred": missed}
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
        before = after
    return current, proofs, before


def rebuild_at(net, proved, *, seed: int = 0, batch: int | None = None):
    """The proved model (a `Lowered`, or a `Handover` of one, built at the proofs' smaller
    input size) built again from ``net`` at ``net``'s own size: the same form, the same
    edge-folding plan, every weight copied. Raises RuntimeError where the two differ in
    anything but the input size: a layer, its configuration, or a weight not carried."""
    proved = _taken(proved)
    new = lower(net, seed=seed, batch=batch, form=proved.form, edge_fold=proved.edge_fold,
                placeholder=True)
    old_layers, new_layers = proved.model.layers, new.model.layers
    if [layer.name for layer in old_layers] != [layer.name for layer in new_layers]:
        raise RuntimeError("internal error: the model at the compile size has other layers "
                           "than the proved one")
    for a, b in zip(old_layers, new_layers):
        if type(a) is not type(b) or _config(a) != _config(b):
            raise RuntimeError(f"internal error: layer `{a.name}` is configured differently "
                               "at the compile size")
    missed = transfer_by_name(new.model, proved.model)
    if missed:
        raise RuntimeError(f"internal error: weights not carried to the compile size: {missed}")
    for a, b in zip(proved.model.weights, new.model.weights):
        if a.path != b.path or not np.array_equal(np.asarray(a), np.asarray(b)):
            raise RuntimeError(f"internal error: weight `{b.path}` differs from the proved one")
    del proved
    _drop()
    return new


def _config(layer) -> dict:
    # An input layer records its shape: the one thing allowed to differ.
    config = dict(layer.get_config())
    config.pop("batch_shape", None)
    config.pop("batch_input_shape", None)
    return config
