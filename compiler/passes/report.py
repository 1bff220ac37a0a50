"""What a pass did (`PassReport`) and what a pipeline run did (`Reports`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .form import LoweringForm

__all__ = ["PassReport", "Reports"]


@dataclass
class PassReport:
    """What one pass did. Every field is JSON-serialisable (`to_json`).

    `removed_nodes`: `{name, kind, type, params, flops}` of each removed node (its numbers
    before the pass). `removed_edges`: `{src, dst, weight}`. `kept_nodes`: `{name, reason}`
    for nodes the pass could have removed but did not. `skipped_edges`: `{src, dst, reason}`.
    `dropped_weights`: `{block, src, weight}` of weights dropped because the block was left
    with one input. For a backend pass, `applied` says whether it applies to the network and
    `notes` why not. The parameter and FLOP totals of the whole network (as the backend
    builds it) before and after the pass are filled by the pass manager
    (`instrument.StatsInstrument`), never by the pass.
    """

    name: str
    exact: bool
    backend: bool = False
    applied: bool = True
    removed_nodes: list[dict] = field(default_factory=list)
    removed_edges: list[dict] = field(default_factory=list)
    kept_nodes: list[dict] = field(default_factory=list)
    skipped_edges: list[dict] = field(default_factory=list)
    dropped_weights: list[dict] = field(default_factory=list)
    params_before: int | None = None
    params_after: int | None = None
    flops_before: int | None = None
    flops_after: int | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        """Whether the pass changed the *network* (a graph pass removed something)."""
        return bool(self.removed_nodes or self.removed_edges or self.dropped_weights)

    def to_json(self) -> dict:
        return asdict(self)


class Reports(list):
    """The reports of one pipeline run, in run order (a plain list of `PassReport`).

    `stages` holds `(pass name, network after it)` for every graph pass that changed the
    network (filled by `run_pipeline`): the compile proves each one on its own. `form` is
    the lowering form of the backend passes that apply (set by `Sequential`).
    """

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.stages: list = []
        self.form: LoweringForm | None = None

    @property
    def backend_passes(self) -> list[str]:
        """The backend passes that apply, in pipeline order."""
        return [r.name for r in self if r.backend and r.applied]

    @property
    def backend_passes_skipped(self) -> dict[str, str]:
        """Enabled backend passes that do not apply, and why."""
        return {r.name: r.notes[0] for r in self if r.backend and not r.applied}

    def to_json(self) -> list[dict]:
        return [r.to_json() for r in self]
