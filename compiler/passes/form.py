"""The form a backend builds a network in: the set of backend passes that applied."""

from __future__ import annotations

from dataclasses import dataclass

from ..analysis import CountRules
from .registry import backend_pass_names, get_backend_pass

__all__ = ["LoweringForm"]


@dataclass(frozen=True)
class LoweringForm:
    """The backend passes a lowering applies, in pipeline order.

    Use the named forms: `LoweringForm.reference()` (`-O0`: the network as the reference
    builds it, no pass) and `LoweringForm.training()` (what `build_model` trains: the
    reference layers, the flow layer as slices); add a pass with `with_pass`. Names are
    checked against the registry, so a misspelt one fails at once.
    """

    applied: tuple[str, ...] = ()

    def __post_init__(self):
        for name in self.applied:
            get_backend_pass(name)
        order = backend_pass_names()
        if list(self.applied) != sorted(set(self.applied), key=order.index):
            raise ValueError(f"backend passes must be unique and in pipeline order "
                             f"({', '.join(order)}), got {list(self.applied)}")

    @classmethod
    def reference(cls) -> "LoweringForm":
        return cls(())

    @classmethod
    def training(cls) -> "LoweringForm":
        return cls(("repflow-slices",))

    def with_pass(self, name: str) -> "LoweringForm":
        order = backend_pass_names()
        get_backend_pass(name)
        return LoweringForm(tuple(sorted({*self.applied, name}, key=order.index)))

    def has(self, name: str) -> bool:
        """Whether pass ``name`` (a registered backend pass) applied."""
        get_backend_pass(name)
        return name in self.applied

    def count_rules(self) -> CountRules:
        """What the static counts of a model in this form count (each pass's `counting`)."""
        rules = CountRules()
        for name in self.applied:
            rules = get_backend_pass(name).counting(rules)
        return rules

    def to_json(self) -> list[str]:
        return list(self.applied)
