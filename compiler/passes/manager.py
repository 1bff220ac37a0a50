"""The pass manager: named graph passes chosen by optimisation level (STYLE.md section 4).

A graph pass maps the networkx DAG of `compiler.graph.build_graph` to a *new* DAG plus a
`PassReport`; it never mutates its input (it copies the graph, and copies every IR node it
changes with `model_copy`). Passes are registered by name with `graph_pass`; which ones run is
decided by the `PassContext` entered with `with` (opt level, required and disabled names, the
pruning settings), and `Sequential` runs a list of passes under that context.

Backend passes (numeric rewrites such as batch-norm folding, done by a backend while lowering)
are registered by name only (`backend_pass`), so that `--passes` and `--disable-pass` can name
them: `run_pipeline` does not run them, it lists the enabled ones in `Reports.backend_passes`
(and adds one report per such pass, `backend=True`) for the backend to act on.
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass, field
from typing import Callable, Iterable, Sequence

import networkx as nx

from ...dsl.diagnostics import did_you_mean
from ...dsl.ir import Network
from ..analysis import NetworkStats, analyse_graph
from ..graph import build_graph

__all__ = ["PassInfo", "PassReport", "Reports", "PassContext", "GraphPass", "BackendPass",
           "Sequential", "UnknownPassError", "graph_pass", "backend_pass", "registered_passes",
           "get_pass", "pipeline_for_level", "run_pipeline", "network_from_graph",
           "DEFAULT_PRUNE_THRESHOLD"]

DEFAULT_PRUNE_THRESHOLD = 0.2
_MISSING = object()


class UnknownPassError(ValueError):
    """A pass name that is not registered; the message lists the known names."""


@dataclass(frozen=True)
class PassInfo:
    """What the manager knows about a pass.

    Attributes:
        name: the registry key (`--passes`, `--disable-pass`).
        opt_level: the lowest `-O` level that runs the pass (1: exact passes, 2: approximate).
        exact: True when the pass keeps the network's function (the logits) unchanged.
        required: passes that must have run before this one; `Sequential` runs them first.
        backend: True for a pass a backend applies while lowering (not run by the front end).
        description: one line for `asnc opt --list` style listings.
    """

    name: str
    opt_level: int
    exact: bool = True
    required: tuple[str, ...] = ()
    backend: bool = False
    description: str = ""


@dataclass
class PassReport:
    """What one pass did. Every field is JSON-serialisable (`to_json`).

    `removed_nodes`: `{name, kind, type, params, flops}` of each removed node (its numbers
    before the pass). `removed_edges`: `{src, dst, weight}`. `kept_nodes`: `{name, reason}`
    for nodes the pass could have removed but did not. `skipped_edges`: `{src, dst, reason}`.
    `dropped_weights`: `{block, src, weight}` of weights dropped because the block was left
    with one input. Parameter and FLOP totals are for the whole network before and after
    the pass (None for a backend pass: the front end does not run it).
    """

    name: str
    exact: bool
    backend: bool = False
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
        return bool(self.removed_nodes or self.removed_edges or self.dropped_weights)

    def to_json(self) -> dict:
        return asdict(self)


class Reports(list):
    """The reports of one pipeline run, in run order (a plain list of `PassReport`).

    `backend_passes` names the enabled backend passes, in order, for the backend to apply.
    `stages` holds `(pass name, network after it)` for every graph pass that changed the
    network (filled by `run_pipeline`): the compile proves each one on its own.
    """

    def __init__(self, *args):
        super().__init__(*args)
        self.stages: list = []

    @property
    def backend_passes(self) -> list[str]:
        return [r.name for r in self if r.backend]

    def to_json(self) -> list[dict]:
        return [r.to_json() for r in self]


# -- context ---------------------------------------------------------------------------------

_local = threading.local()


class PassContext:
    """Which passes run and with which settings; enter it with `with` to make it current.

    Parameters:
        opt_level: run every registered pass whose `opt_level` is at most this (0: none).
        required: names that run whatever the level (an explicit `--passes` list).
        disabled: names that never run, even when required or chosen by the level.
        prune_threshold: `prune-edges` removes weights below it (after sigmoid).
        prune_top_k: `prune-edges` keeps at most this many inputs per block.

    Example:
        >>> with PassContext(opt_level=1, disabled=["dead-node-elimination"]):
        ...     g2, reports = Sequential(pipeline_for_level(1))(g)
    """

    def __init__(self, opt_level: int = 0, required: Iterable[str] = (),
                 disabled: Iterable[str] = (), prune_threshold: float | None = None,
                 prune_top_k: int | None = None):
        if not isinstance(opt_level, int) or isinstance(opt_level, bool):
            raise TypeError(f"opt_level must be an int, got {type(opt_level).__name__}")
        if opt_level < 0:
            raise ValueError(f"opt_level must be >= 0, got {opt_level}")
        self.opt_level = opt_level
        self.required = _names(required, "required")
        self.disabled = _names(disabled, "disabled")
        if prune_threshold is not None:
            if not isinstance(prune_threshold, (int, float)) or isinstance(prune_threshold, bool):
                raise TypeError("prune_threshold must be a float, got "
                                f"{type(prune_threshold).__name__}")
            if not 0.0 <= float(prune_threshold) <= 1.0:
                raise ValueError(f"prune_threshold must be in [0, 1], got {prune_threshold}")
            prune_threshold = float(prune_threshold)
        if prune_top_k is not None:
            if not isinstance(prune_top_k, int) or isinstance(prune_top_k, bool):
                raise TypeError(f"prune_top_k must be an int, got {type(prune_top_k).__name__}")
            if prune_top_k < 1:
                raise ValueError(f"prune_top_k must be >= 1, got {prune_top_k}")
        self.prune_threshold = prune_threshold
        self.prune_top_k = prune_top_k

    def enabled(self, info: PassInfo) -> bool:
        if info.name in self.disabled:
            return False
        return info.name in self.required or info.opt_level <= self.opt_level

    @staticmethod
    def current() -> "PassContext":
        stack = getattr(_local, "stack", None)
        return stack[-1] if stack else PassContext()

    def __enter__(self) -> "PassContext":
        if not hasattr(_local, "stack"):
            _local.stack = []
        _local.stack.append(self)
        return self

    def __exit__(self, *exc) -> None:
        _local.stack.pop()


def _names(values: Iterable[str], what: str) -> frozenset[str]:
    if isinstance(values, str):
        raise TypeError(f"{what} must be a list of pass names, got the string {values!r}")
    out = []
    for v in values:
        if not isinstance(v, str):
            raise TypeError(f"{what} must hold pass names (str), got {type(v).__name__}")
        out.append(v)
    return frozenset(out)


# -- passes and the registry -----------------------------------------------------------------

PassFunction = Callable[[nx.DiGraph, PassContext], "tuple[nx.DiGraph, PassReport]"]


class GraphPass:
    """A named graph transformation: `pass_(g, ctx) -> (new graph, PassReport)`."""

    def __init__(self, info: PassInfo, transform: PassFunction):
        if not isinstance(info, PassInfo):
            raise TypeError(f"info must be a PassInfo, got {type(info).__name__}")
        if not callable(transform):
            raise TypeError(f"transform must be callable, got {type(transform).__name__}")
        self.info = info
        self._transform = transform
        self.__doc__ = getattr(transform, "__doc__", None)

    @property
    def name(self) -> str:
        return self.info.name

    def __call__(self, g: nx.DiGraph, ctx: PassContext | None = None
                 ) -> tuple[nx.DiGraph, PassReport]:
        ctx = ctx if ctx is not None else PassContext.current()
        result = self._transform(g, ctx)
        if (not isinstance(result, tuple) or len(result) != 2
                or not isinstance(result[0], nx.DiGraph) or not isinstance(result[1], PassReport)):
            raise TypeError(f"pass `{self.name}` must return (nx.DiGraph, PassReport)")
        if result[0] is g:
            raise RuntimeError(f"pass `{self.name}` returned its input graph; passes return "
                               "a new graph (copy it)")
        return result

    def __repr__(self) -> str:
        return f"GraphPass({self.name!r}, opt_level={self.info.opt_level}, " \
               f"exact={self.info.exact})"


class BackendPass:
    """A name the backend implements; the front end only schedules and reports it."""

    def __init__(self, info: PassInfo):
        self.info = info

    @property
    def name(self) -> str:
        return self.info.name

    def __repr__(self) -> str:
        return f"BackendPass({self.name!r}, opt_level={self.info.opt_level})"


_REGISTRY: dict[str, GraphPass | BackendPass] = {}


def _check_info_args(name, opt_level, exact, required, description):
    if name is not None and not isinstance(name, str):
        raise TypeError(f"name must be a str, got {type(name).__name__}")
    if isinstance(name, str) and not name:
        raise ValueError("a pass name may not be empty")
    if opt_level is _MISSING:
        raise TypeError("opt_level is required: give opt_level=1 for an exact pass, 2 for an "
                        "approximate one")
    if not isinstance(opt_level, int) or isinstance(opt_level, bool):
        raise TypeError(f"opt_level must be an int, got {type(opt_level).__name__}")
    if opt_level < 1:
        raise ValueError(f"opt_level must be >= 1 (-O0 runs no pass), got {opt_level}")
    if not isinstance(exact, bool):
        raise TypeError(f"exact must be a bool, got {type(exact).__name__}")
    if isinstance(required, str):
        raise TypeError("required must be a tuple of pass names, not a string")
    required = tuple(required)
    if any(not isinstance(r, str) for r in required):
        raise TypeError("required must hold pass names (str)")
    if not isinstance(description, str):
        raise TypeError(f"description must be a str, got {type(description).__name__}")
    return required


def graph_pass(name: str | None = None, *,
               opt_level: int = _MISSING,  # type: ignore[assignment]
               exact: bool = True, required: Sequence[str] = (), description: str = "",
               register: bool = True):
    """Turn a function, or a class with a `transform` method, into a registered `GraphPass`.

    Parameters:
        name: registry name; defaults to the function (or class) name with `_` written `-`.
        opt_level: mandatory; the lowest `-O` level that runs the pass (1 exact, 2 approximate).
        exact: whether the pass keeps the network's function unchanged.
        required: names of passes that must run before this one.
        description: one line for listings; defaults to the docstring's first line.
        register: add the pass to the global registry (False for local, test-only passes).

    Returns:
        A decorator giving a `GraphPass`, called as `pass_(g, ctx) -> (new graph, report)`.

    Examples:
        A function::

            @graph_pass("drop-nothing", opt_level=1)
            def drop_nothing(g, ctx):
                before = analyse_graph(g)
                return g.copy(), report_for("drop-nothing", True, before, before)

        A class (instantiated once, without arguments)::

            @graph_pass(opt_level=2, exact=False)
            class PruneBelow:
                threshold = 0.1

                def transform(self, g, ctx):
                    ...
                    return new_graph, report

        Omitting `opt_level` is a `TypeError`.
    """
    req = _check_info_args(name, opt_level, exact, required, description)
    if not isinstance(register, bool):
        raise TypeError(f"register must be a bool, got {type(register).__name__}")

    def decorate(obj):
        if isinstance(obj, type):
            instance = obj()
            transform = getattr(instance, "transform", None)
            if not callable(transform):
                raise TypeError(f"class {obj.__name__} needs a transform(self, g, ctx) method")
        elif callable(obj):
            transform = obj
        else:
            raise TypeError(f"graph_pass decorates a function or a class, got "
                            f"{type(obj).__name__}")
        pass_name = name if name is not None else obj.__name__.replace("_", "-")
        doc = (obj.__doc__ or "").strip().splitlines()
        info = PassInfo(pass_name, opt_level, exact, req, False,
                        description or (doc[0] if doc else ""))
        p = GraphPass(info, transform)
        if register:
            _register(p)
        return p

    return decorate


def backend_pass(name: str, *, opt_level: int = _MISSING,  # type: ignore[assignment]
                 exact: bool = True, description: str = "") -> BackendPass:
    """Register the name of a pass a backend runs while lowering.

    Parameters:
        name: the pass name (`--passes`, `--disable-pass`).
        opt_level: mandatory; the lowest `-O` level that enables it.
        exact: whether it keeps the function (up to float rounding).
        description: one line for listings.

    Returns:
        The `BackendPass`. Registering the same name again with the same settings is allowed
        (a backend module may declare what the front end already declared).

    Example:
        >>> backend_pass("fold-batchnorm", opt_level=1, description="fold BN into convs")
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {type(name).__name__}")
    _check_info_args(name, opt_level, exact, (), description)
    p = BackendPass(PassInfo(name, opt_level, exact, (), True, description))
    old = _REGISTRY.get(name)
    if isinstance(old, BackendPass) and (old.info.opt_level, old.info.exact) == (opt_level, exact):
        return old
    _register(p)
    return p


def _register(p: GraphPass | BackendPass) -> None:
    if p.name in _REGISTRY:
        raise ValueError(f"a pass named `{p.name}` is already registered")
    _REGISTRY[p.name] = p


def registered_passes() -> list[GraphPass | BackendPass]:
    """Every registered pass in pipeline order: graph passes, then backend passes, each in
    registration order."""
    items = list(_REGISTRY.values())
    return [p for p in items if not p.info.backend] + [p for p in items if p.info.backend]


def get_pass(name: str) -> GraphPass | BackendPass:
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(p.name for p in registered_passes())
        hint = did_you_mean(name, _REGISTRY)
        raise UnknownPassError(f"unknown pass `{name}`" + (f" ({hint})" if hint else "") +
                               f"; passes are: {known}") from None


def pipeline_for_level(level: int) -> list[GraphPass | BackendPass]:
    """The passes `-O<level>` runs, in pipeline order."""
    return [p for p in registered_passes() if p.info.opt_level <= level]


# -- running ---------------------------------------------------------------------------------

class Sequential:
    """Run passes in order under the current `PassContext`.

    A pass runs when the context enables it (its level is at most the context's, or it is
    required) and it is not disabled; a graph pass's `required` passes run first if they have
    not run yet. Backend passes are not run: each enabled one adds a report with
    `backend=True`.

    Parameters:
        passes: pass objects or registered names.

    Returns (when called on a graph):
        `(new graph, Reports)`.
    """

    def __init__(self, passes: Iterable[GraphPass | BackendPass | str]):
        resolved = []
        for p in passes:
            if isinstance(p, str):
                p = get_pass(p)
            if not isinstance(p, (GraphPass, BackendPass)):
                raise TypeError(f"Sequential takes passes or pass names, got {type(p).__name__}")
            resolved.append(p)
        self.passes = resolved

    def __call__(self, g: nx.DiGraph, ctx: PassContext | None = None
                 ) -> tuple[nx.DiGraph, Reports]:
        ctx = ctx if ctx is not None else PassContext.current()
        reports = Reports()
        done: set[str] = set()

        def run(p, forced: bool = False):
            nonlocal g
            if p.name in done or not (forced or ctx.enabled(p.info)):
                return
            if p.name in ctx.disabled:
                return
            if isinstance(p, BackendPass):
                reports.append(PassReport(p.name, p.info.exact, backend=True,
                                          notes=["applied by the backend while lowering"]))
                done.add(p.name)
                return
            for r in p.info.required:
                run(get_pass(r), forced=True)
            g, report = p(g, ctx)
            reports.append(report)
            if report.changed:
                reports.stages.append((p.name, g))
            done.add(p.name)

        for p in self.passes:
            run(p)
        return g, reports


def network_from_graph(g: nx.DiGraph, like: Network) -> Network:
    """The graph as IR in declaration order, keeping `like`'s trailing and heads comments."""
    nodes = [g.nodes[n]["ir"] for n in sorted(g.nodes, key=lambda n: g.nodes[n]["index"])]
    heads = g.graph.get("explicit_heads")
    return like.model_copy(update={"header": g.graph["network"], "nodes": nodes,
                                   "heads": list(heads) if heads is not None else None})


def run_pipeline(net: Network, level: int = 0, passes: Sequence[str] | str | None = None,
                 disabled: Iterable[str] = (), prune_threshold: float | None = None,
                 prune_top_k: int | None = None) -> tuple[Network, Reports]:
    """Optimise a checked network.

    Parameters:
        net: a network that passed `validation.check` without errors.
        level: `-O` level: 0 runs nothing, 1 the exact passes, 2 also the approximate ones
            (edge pruning at threshold 0.2 unless given). Ignored when `passes` is given.
        passes: an explicit list of pass names (or one comma-separated string), run in the
            given order whatever the level.
        disabled: pass names never to run.
        prune_threshold, prune_top_k: settings of `prune-edges`; giving either enables
            `prune-edges` at any level (unless disabled).

    Returns:
        `(optimised network, Reports)`; with nothing run, the network is `net` itself.

    Raises:
        UnknownPassError: a name in `passes` or `disabled` is not registered.
        TypeError, ValueError: bad settings.
    """
    if not isinstance(net, Network):
        raise TypeError(f"net must be a Network, got {type(net).__name__}")
    if isinstance(passes, str):
        passes = [p.strip() for p in passes.split(",") if p.strip()]
    disabled = [d for d in ([disabled] if isinstance(disabled, str) else disabled)]
    disabled = [x.strip() for d in disabled for x in d.split(",") if x.strip()]
    for name in list(passes or []) + disabled:
        get_pass(name)
    required: list[str] = list(passes or [])
    if passes is None and (prune_threshold is not None or prune_top_k is not None):
        required.append("prune-edges")
    ctx = PassContext(opt_level=0 if passes is not None else level, required=required,
                      disabled=disabled, prune_threshold=prune_threshold,
                      prune_top_k=prune_top_k)
    order = [get_pass(p) for p in passes] if passes is not None else registered_passes()
    if not any(ctx.enabled(p.info) for p in order):
        return net, Reports()
    with ctx:
        g, reports = Sequential(order)(build_graph(net))
    reports.stages = [(name, network_from_graph(sg, net)) for name, sg in reports.stages]
    if not any(r.changed for r in reports):
        return net, reports
    return network_from_graph(g, net), reports


# -- helpers for pass authors ----------------------------------------------------------------

def report_for(name: str, exact: bool, before: NetworkStats, after: NetworkStats,
               **fields) -> PassReport:
    """A report with the whole-network totals of `before` and `after` filled in."""
    return PassReport(name, exact, params_before=before.total, params_after=after.total,
                      flops_before=before.flops, flops_after=after.flops, **fields)


def stats_of(g: nx.DiGraph) -> NetworkStats:
    return analyse_graph(g)
