"""The pass manager: run the passes a `PassContext` enables, with instruments around each.

    from asn.compiler.passes import optimise
    o = optimise(net, level=1)          # graph passes run, backend passes decided
    o.network, o.form, o.stats()        # the network, its lowering form, what compile builds

Graph passes run first, in order, each on the graph the one before returned; then every
enabled backend pass is decided on the final graph (its `blocker`) and, where it applies,
added to the lowering form. The backend applies that form when it lowers. Each pass runs
between the instruments' `run_before_pass` / `run_after_pass` (`StatsInstrument` by default:
the before/after totals of every report, counted in the form so far).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

import networkx as nx

from ...dsl.ir import Network
from ..analysis import NetworkStats, analyse
from ..graph import build_graph
from .context import PassContext
from .form import LoweringForm
from .instrument import PassInstrument, StatsInstrument
from .registry import BackendPass, GraphPass, get_pass, registered_passes
from .report import PassReport, Reports

__all__ = ["Sequential", "run_pipeline", "optimise", "Optimised", "network_from_graph",
           "split_pass_names"]


class Sequential:
    """Run passes under the current `PassContext`.

    A pass runs when the context enables it (its level is at most the context's, or it is
    required) and it is not disabled; a graph pass's `required` passes run first if they have
    not run yet. Graph passes run in the given order; backend passes are then decided on the
    final graph, in pipeline order (the backend applies them after lowering, so a graph pass
    never runs on a rewritten model).

    Parameters:
        passes: pass objects or registered names.
        instruments: run around every pass; default `[StatsInstrument()]`.

    Returns (when called on a graph):
        `(new graph, Reports)`; `Reports.form` is the lowering form the backend passes give.
    """

    def __init__(self, passes: Iterable[GraphPass | BackendPass | str],
                 instruments: Sequence[PassInstrument] | None = None):
        resolved: list[GraphPass | BackendPass] = []
        for p in passes:
            if isinstance(p, str):
                p = get_pass(p)
            if not isinstance(p, (GraphPass, BackendPass)):
                raise TypeError(f"Sequential takes passes or pass names, got {type(p).__name__}")
            resolved.append(p)
        self.passes = resolved
        self.instruments = list(instruments) if instruments is not None else [StatsInstrument()]

    def __call__(self, g: nx.DiGraph, ctx: PassContext | None = None
                 ) -> tuple[nx.DiGraph, Reports]:
        ctx = ctx if ctx is not None else PassContext.current()
        reports = Reports()
        form = LoweringForm.reference()
        done: set[str] = set()

        def run_graph_pass(p: GraphPass, forced: bool = False) -> None:
            nonlocal g
            if p.name in done or p.name in ctx.disabled or not (forced or ctx.enabled(p.info)):
                return
            for r in p.info.required:
                required = get_pass(r)
                if isinstance(required, GraphPass):
                    run_graph_pass(required, forced=True)
            for ins in self.instruments:
                ins.run_before_pass(p.name, g, form, ctx)
            new, report = p(g, ctx)
            for ins in self.instruments:
                ins.run_after_pass(report, new, form, ctx)
            g = new
            reports.append(report)
            if report.changed:
                reports.stages.append((p.name, g))
            done.add(p.name)

        for p in self.passes:
            if isinstance(p, GraphPass):
                run_graph_pass(p)
        chosen = {p.name for p in self.passes if isinstance(p, BackendPass)}
        for p in registered_passes():
            if not (isinstance(p, BackendPass) and p.name in chosen and ctx.enabled(p.info)
                    and p.name not in ctx.disabled):
                continue
            for ins in self.instruments:
                ins.run_before_pass(p.name, g, form, ctx)
            reason = p.blocker(g)
            if reason is None:
                form = form.with_pass(p.name)
                report = PassReport(p.name, p.info.exact, backend=True,
                                    notes=["applied by the backend, proved on random inputs"])
            else:
                report = PassReport(p.name, p.info.exact, backend=True, applied=False,
                                    notes=[reason])
            for ins in self.instruments:
                ins.run_after_pass(report, g, form, ctx)
            reports.append(report)
        reports.form = form
        return g, reports


def network_from_graph(g: nx.DiGraph, like: Network) -> Network:
    """The graph as IR in declaration order, keeping `like`'s trailing and heads comments."""
    nodes = [g.nodes[n]["ir"] for n in sorted(g.nodes, key=lambda n: g.nodes[n]["index"])]
    heads = g.graph.get("explicit_heads")
    return like.model_copy(update={"header": g.graph["network"], "nodes": nodes,
                                   "heads": list(heads) if heads is not None else None})


def split_pass_names(values: Iterable[str] | str | None) -> list[str]:
    """`["a,b", "c"]` (repeated and comma-separated options) -> `["a", "b", "c"]`."""
    if values is None:
        return []
    if isinstance(values, str):
        values = [values]
    return [x.strip() for v in values for x in v.split(",") if x.strip()]


def run_pipeline(net: Network, level: int = 0, passes: Sequence[str] | str | None = None,
                 disabled: Iterable[str] | str = (), prune_threshold: float | None = None,
                 prune_top_k: int | None = None) -> tuple[Network, Reports]:
    """Optimise a checked network.

    Parameters:
        net: a network that passed `validation.check` without errors.
        level: `-O` level: 0 runs nothing, 1 the exact passes, 2 also the approximate ones
            (edge pruning at threshold 0.2 unless given). Ignored when `passes` is given.
        passes: an explicit list of pass names (or one comma-separated string), graph
            passes run in the given order whatever the level.
        disabled: pass names never to run.
        prune_threshold, prune_top_k: settings of `prune-edges`; giving either enables
            `prune-edges` at any level (unless disabled).

    Returns:
        `(optimised network, Reports)`; with no graph pass changing it, the network is
        `net` itself. `Reports.form` is the lowering form of the backend passes that apply.

    Raises:
        UnknownPassError: a name in `passes` or `disabled` is not registered.
        TypeError, ValueError: bad settings.
    """
    if not isinstance(net, Network):
        raise TypeError(f"net must be a Network, got {type(net).__name__}")
    names = None if passes is None else split_pass_names(passes)
    off = split_pass_names(disabled)
    for name in (names or []) + off:
        get_pass(name)
    required: list[str] = list(names or [])
    if names is None and (prune_threshold is not None or prune_top_k is not None):
        required.append("prune-edges")
    ctx = PassContext(opt_level=0 if names is not None else level, required=required,
                      disabled=off, prune_threshold=prune_threshold, prune_top_k=prune_top_k)
    order = [get_pass(p) for p in names] if names is not None else registered_passes()
    if not any(ctx.enabled(p.info) for p in order):
        reports = Reports()
        reports.form = LoweringForm.reference()
        return net, reports
    with ctx:
        g, reports = Sequential(order)(build_graph(net))
    reports.stages = [(name, network_from_graph(sg, net)) for name, sg in reports.stages]
    if not any(r.changed for r in reports):
        return net, reports
    return network_from_graph(g, net), reports


@dataclass
class Optimised:
    """What `optimise` returns: the network after the graph passes, every pass's report,
    and the lowering form of the backend passes that apply."""

    network: Network
    reports: Reports
    level: int | None = None  # the -O level; None for an explicit list of passes

    @property
    def form(self) -> LoweringForm:
        return self.reports.form or LoweringForm.reference()

    @property
    def stages(self) -> list:
        return list(self.reports.stages)

    @property
    def skipped(self) -> dict[str, str]:
        return self.reports.backend_passes_skipped

    def stats(self) -> NetworkStats:
        """Parameters and FLOPs of what the backend builds: `asnc stats -O`, `asnc opt` and
        `asnc compile` all print this count."""
        return analyse(self.network, self.form.count_rules())

    def to_json(self) -> dict:
        return {"passes": self.reports.to_json(), "backend_passes": self.form.to_json(),
                "params_after": self.stats().total,
                "backend_passes_skipped": self.skipped}


def optimise(net: Network, level: int = 0, passes: Sequence[str] | str | None = None,
             disabled: Iterable[str] | str = (), prune_threshold: float | None = None,
             prune_top_k: int | None = None) -> Optimised:
    """`run_pipeline`, as one `Optimised` value."""
    new, reports = run_pipeline(net, level=level, passes=passes, disabled=disabled,
                                prune_threshold=prune_threshold, prune_top_k=prune_top_k)
    return Optimised(new, reports, None if passes is not None else level)
