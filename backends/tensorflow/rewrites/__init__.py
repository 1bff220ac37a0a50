"""The TensorFlow parts of the backend passes: one module per pass, found by its name.

The TF-free part of a pass (`compiler.passes.backend`: does it apply, how it changes the
counts) is registered under a name; its rewrite is the function `rewrite` of the module
named like the pass, `-` written `_` (`fold-batchnorm` -> `fold_batchnorm.py`). A rewrite
takes a `RewriteStep` (the model before the pass, and the form that includes the pass) and
returns the model after it, with its weights, plus a JSON-able detail for the report. It
lowers the new form with ``placeholder=True`` (no random draws: it sets every weight itself,
and fails where one has no source; `fold_edge_weights`, whose fusions change class), or
changes the model it was handed in place where the layers stay and only their form and
weights change (`repflow_slices`, `fold_batchnorm`, `drop_padding_taps`: no model built,
the weights named and ordered as in the form built anew); `proofs.apply_backend_passes`
proves every one on
random inputs, by a forward pass of the whole model unless the rewrite has shown on those
inputs that the logits are bit for bit the same (`SAME_LOGITS`).
Adding a pass: its TF-free class in `compiler/passes/backend.py`, its module here, tests.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable

from ....compiler.passes import LoweringForm, get_backend_pass
from ....dsl.ir import Network

__all__ = ["RewriteStep", "Rewrite", "rewrite_for", "SAME_LOGITS"]

# A rewrite's detail key: True where the rewrite has shown, on `RewriteStep.feeds`, that the
# model after it computes bit for bit the logits of the model before it (its module says
# how), so the proof needs no forward pass of the whole model.
SAME_LOGITS = "same_logits_by_construction"


@dataclass(frozen=True)
class RewriteStep:
    """What a rewrite works from.

    Attributes:
        net: the network (after the graph passes).
        current: the `Lowered` model before the pass, with its (possibly trained) weights.
        form: the lowering form after the pass (the forms before it plus this pass).
        seed, batch: as the compile lowers with (`lower`).
        feeds: the proof's random clips (None: the rewrite does not look at them).
    """

    net: Network
    current: Any  # a `lower.Lowered`
    form: LoweringForm
    seed: int = 0
    batch: int | None = None
    feeds: dict | None = None


Rewrite = Callable[[RewriteStep], "tuple[Any, dict]"]


def rewrite_for(name: str) -> Rewrite:
    """The rewrite of backend pass ``name`` (a registered one; else UnknownPassError)."""
    get_backend_pass(name)
    module = importlib.import_module(f"{__name__}.{name.replace('-', '_')}")
    return module.rewrite
