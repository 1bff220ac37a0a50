"""The TensorFlow parts of the backend passes: one module per pass, found by its name.

The TF-free part of a pass (`compiler.passes.backend`: does it apply, how it changes the
counts) is registered under a name; its rewrite is the function `rewrite` of the module
named like the pass, `-` written `_` (`fold-batchnorm` -> `fold_batchnorm.py`). A rewrite
takes a `RewriteStep` (the model before the pass, and the form that includes the pass) and
returns the model after it, with its weights, plus a JSON-able detail for the report. It
lowers the new form with ``placeholder=True`` (no random draws: it sets every weight itself,
and fails where one has no source) and never checks itself: `proofs.apply_backend_passes`
proves every one on random inputs.
Adding a pass: its TF-free class in `compiler/passes/backend.py`, its module here, tests.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable

from ....compiler.passes import LoweringForm, get_backend_pass
from ....dsl.ir import Network

__all__ = ["RewriteStep", "Rewrite", "rewrite_for"]


@dataclass(frozen=True)
class RewriteStep:
    """What a rewrite works from.

    Attributes:
        net: the network (after the graph passes).
        current: the `Lowered` model before the pass, with its (possibly trained) weights.
        form: the lowering form after the pass (the forms before it plus this pass).
        seed, batch: as the compile lowers with (`lower`).
    """

    net: Network
    current: Any  # a `lower.Lowered`
    form: LoweringForm
    seed: int = 0
    batch: int | None = None


Rewrite = Callable[[RewriteStep], "tuple[Any, dict]"]


def rewrite_for(name: str) -> Rewrite:
    """The rewrite of backend pass ``name`` (a registered one; else UnknownPassError)."""
    get_backend_pass(name)
    module = importlib.import_module(f"{__name__}.{name.replace('-', '_')}")
    return module.rewrite
