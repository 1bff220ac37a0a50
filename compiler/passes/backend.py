"""The exact passes a backend applies while lowering, and the plan it lowers with.

The front end does not run them: `run_pipeline` lists the enabled ones in
`Reports.backend_passes`; `lowering_plan` turns that list into a `LoweringPlan` (the
network's facts decide whether a pass applies at all), which the TensorFlow backend lowers
with and `asnc stats -O` counts with, so both agree. Each one is exact: the compile checks
every one on random inputs (`backends.tensorflow.passes`).

Pipeline order: `repflow-slices`, `fold-batchnorm`, `fold-edge-weights`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import ClassVar, Iterable

import networkx as nx

from .edgefold import edge_fold_blocker
from .manager import backend_pass

__all__ = ["REPFLOW_SLICES", "FOLD_BATCHNORM", "FOLD_EDGE_WEIGHTS", "BACKEND_ORDER",
           "LoweringPlan", "lowering_plan", "optimise", "Optimised"]

REPFLOW_SLICES = backend_pass(
    "repflow-slices", opt_level=1, exact=True,
    description="Representation Flow: the fixed 2- and 3-tap difference convolutions of its "
                "unrolled iterations become slices and subtractions (backend)")
FOLD_BATCHNORM = backend_pass(
    "fold-batchnorm", opt_level=1, exact=True,
    description="fold inference batch norms into the convolutions before them (backend)")
FOLD_EDGE_WEIGHTS = backend_pass(
    "fold-edge-weights", opt_level=1, exact=True,
    description="fold connection weights into the producers' and the blocks' convolutions; "
                "only edges off a spanning forest keep a constant multiply (backend)")

BACKEND_ORDER = ("repflow-slices", "fold-batchnorm", "fold-edge-weights")


@dataclass(frozen=True)
class LoweringPlan:
    """Which exact rewrites a lowering applies. All False: the reference form (`-O0`)."""

    repflow_slices: bool = False
    fold_batchnorm: bool = False
    fold_edge_weights: bool = False

    FIELDS: ClassVar[dict[str, str]] = {"repflow-slices": "repflow_slices", "fold-batchnorm": "fold_batchnorm",
              "fold-edge-weights": "fold_edge_weights"}

    def with_pass(self, name: str) -> "LoweringPlan":
        return replace(self, **{self.FIELDS[name]: True})

    def passes(self) -> list[str]:
        return [n for n in BACKEND_ORDER if getattr(self, self.FIELDS[n])]

    def to_json(self) -> dict:
        return asdict(self)


def lowering_plan(g: nx.DiGraph, enabled: Iterable[str]) -> tuple[LoweringPlan, dict[str, str]]:
    """The plan for the network of ``g`` with the backend passes ``enabled``, and, for each
    enabled pass that does not apply to it, why."""
    enabled = set(enabled)
    unknown = enabled - set(BACKEND_ORDER)
    if unknown:
        raise ValueError(f"not backend passes: {sorted(unknown)}")
    plan = LoweringPlan()
    skipped: dict[str, str] = {}
    for name in BACKEND_ORDER:
        if name not in enabled:
            continue
        reason = None
        if name == "repflow-slices" and not any(
                getattr(g.nodes[n]["ir"], "type", None) == "flow" for n in g.nodes):
            reason = "no flow stem, so no Representation Flow layer"
        elif name == "fold-edge-weights":
            reason = edge_fold_blocker(g)
            if reason is None and not any(len(getattr(g.nodes[n]["ir"], "inputs", ())) > 1
                                          for n in g.nodes):
                reason = "no block has two or more inputs"
        if reason is None:
            plan = plan.with_pass(name)
        else:
            skipped[name] = reason
    return plan, skipped


@dataclass
class Optimised:
    """What `optimise` returns: the network after the graph passes, their reports, and the
    lowering plan of the backend passes (with why an enabled one does not apply)."""

    network: object
    reports: list
    plan: LoweringPlan
    skipped: dict[str, str] = field(default_factory=dict)

    @property
    def stages(self) -> list:
        return list(getattr(self.reports, "stages", []))

    def stats(self):
        """Parameters and FLOPs of what the backend builds (`asnc stats -O`)."""
        from ..analysis import analyse

        return analyse(self.network, fold_bn=self.plan.fold_batchnorm,
                       fold_edges=self.plan.fold_edge_weights)

    def to_json(self) -> dict:
        ran = [r.to_json() for r in self.reports]
        for r in ran:
            if r.get("backend"):
                name = r["name"]
                r["notes"] = ([f"does not apply: {self.skipped[name]}"] if name in self.skipped
                              else ["applied by the backend, proved on random inputs"])
        return {"passes": ran, "backend_passes": self.plan.passes(),
                "backend_passes_skipped": dict(self.skipped)}


def optimise(net, level: int = 0, passes=None, disabled=(), prune_threshold=None,
             prune_top_k=None) -> Optimised:
    """`run_pipeline`, then the lowering plan of the backend passes it enabled."""
    from ..graph import build_graph
    from .manager import run_pipeline

    new, reports = run_pipeline(net, level=level, passes=passes, disabled=disabled,
                                prune_threshold=prune_threshold, prune_top_k=prune_top_k)
    plan, skipped = lowering_plan(build_graph(new), reports.backend_passes)
    return Optimised(new, reports, plan, skipped)
