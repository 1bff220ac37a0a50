"""The one registry of passes: graph passes and backend passes, by name (STYLE.md section 4).

A graph pass maps the networkx DAG of `compiler.graph.build_graph` to a *new* DAG plus a
`PassReport`; it never mutates its input. A backend pass is a numeric rewrite of the built
model (batch-norm folding, ...): its TF-free part, registered here, says whether it applies
to a network (`blocker`) and how it changes the static counts (`counting`); its backend
part, the rewrite itself, is found by the pass name (`asn.backends.tensorflow.rewrites`).
Pipeline order: graph passes, then backend passes, each in registration order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import networkx as nx

from ...dsl.diagnostics import did_you_mean
from ..analysis import CountRules
from .context import PassContext
from .report import PassReport

__all__ = ["PassInfo", "GraphPass", "BackendPass", "UnknownPassError", "graph_pass",
           "backend_pass", "registered_passes", "get_pass", "get_backend_pass",
           "backend_pass_names", "pipeline_for_level"]

_MISSING: object = object()


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
        backend: True for a pass the backend applies to the built model.
        description: one line for `asnc opt --list-passes`.
    """

    name: str
    opt_level: int
    exact: bool = True
    required: tuple[str, ...] = ()
    backend: bool = False
    description: str = ""


PassFunction = Callable[[nx.DiGraph, PassContext], "tuple[nx.DiGraph, PassReport]"]


class _Pass:
    """What every registered pass has: its `PassInfo` and its name."""

    def __init__(self, info: PassInfo, doc: str | None):
        if not isinstance(info, PassInfo):
            raise TypeError(f"info must be a PassInfo, got {type(info).__name__}")
        self.info = info
        self.__doc__ = doc

    @property
    def name(self) -> str:
        return self.info.name

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.name!r}, opt_level={self.info.opt_level}, "
                f"exact={self.info.exact})")


class GraphPass(_Pass):
    """A named graph transformation: `pass_(g, ctx) -> (new graph, PassReport)`."""

    def __init__(self, info: PassInfo, transform: PassFunction):
        if not callable(transform):
            raise TypeError(f"transform must be callable, got {type(transform).__name__}")
        super().__init__(info, getattr(transform, "__doc__", None))
        self._transform = transform

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


class BackendPass(_Pass):
    """The TF-free part of a backend pass.

    `blocker(g)` returns why the pass does not apply to the network of ``g`` (None: it
    applies); `counting(rules)` returns the `CountRules` of the model after the pass, given
    those before it. The backend's rewrite is looked up by `name`.
    """

    def __init__(self, info: PassInfo, blocker: Callable[[nx.DiGraph], str | None],
                 counting: Callable[[CountRules], CountRules]):
        super().__init__(info, info.description)
        self.blocker = blocker
        self.counting = counting


_REGISTRY: dict[str, GraphPass | BackendPass] = {}


def _check_info_args(name, opt_level, exact, required, description) -> tuple[str, ...]:
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


def _description(obj, given: str) -> str:
    """``given``, else the docstring's first paragraph on one line."""
    paragraph = (obj.__doc__ or "").strip().split("\n\n")[0]
    return given or " ".join(paragraph.split())


def _instance_method(obj, method: str):
    """``obj`` itself (a function), or ``getattr(obj(), method)`` for a class."""
    if isinstance(obj, type):
        found = getattr(obj(), method, None)
        if not callable(found):
            raise TypeError(f"class {obj.__name__} needs a {method}() method")
        return found
    if callable(obj):
        return obj
    raise TypeError(f"a pass decorates a function or a class, got {type(obj).__name__}")


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
        description: one line for listings; defaults to the docstring's first paragraph.
        register: add the pass to the global registry (False for local, test-only passes).

    Returns:
        A decorator giving a `GraphPass`, called as `pass_(g, ctx) -> (new graph, report)`.
        The pass manager fills the report's parameter and FLOP totals (`StatsInstrument`).

    Examples:
        A function::

            @graph_pass("drop-nothing", opt_level=1)
            def drop_nothing(g, ctx):
                return g.copy(), PassReport("drop-nothing", exact=True)

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

    def decorate(obj) -> GraphPass:
        transform = _instance_method(obj, "transform")
        pass_name = name if name is not None else obj.__name__.replace("_", "-")
        info = PassInfo(pass_name, opt_level, exact, req, False, _description(obj, description))
        p = GraphPass(info, transform)
        if register:
            _register(p)
        return p

    return decorate


def backend_pass(name: str, *, opt_level: int = _MISSING,  # type: ignore[assignment]
                 exact: bool = True, description: str = ""):
    """Register the TF-free part of a backend pass: a class with `blocker(g)` and
    `counting(rules)` methods (both optional: the defaults apply to every network and
    change no count).

    Example::

        @backend_pass("fold-batchnorm", opt_level=1)
        class FoldBatchnorm:
            "fold inference batch norms into the convolutions before them"

            def counting(self, rules):
                return replace(rules, batchnorm_as_bias=True)
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {type(name).__name__}")
    _check_info_args(name, opt_level, exact, (), description)

    def decorate(cls: type) -> BackendPass:
        if not isinstance(cls, type):
            raise TypeError(f"backend_pass decorates a class, got {type(cls).__name__}")
        instance = cls()
        p = BackendPass(PassInfo(name, opt_level, exact, (), True, _description(cls, description)),
                        getattr(instance, "blocker", lambda g: None),
                        getattr(instance, "counting", lambda rules: rules))
        _register(p)
        return p

    return decorate


def _register(p: GraphPass | BackendPass) -> None:
    if p.name in _REGISTRY:
        raise ValueError(f"a pass named `{p.name}` is already registered")
    _REGISTRY[p.name] = p


def registered_passes() -> list[GraphPass | BackendPass]:
    """Every registered pass in pipeline order: graph passes, then backend passes, each in
    registration order."""
    items = list(_REGISTRY.values())
    return [p for p in items if not p.info.backend] + [p for p in items if p.info.backend]


def backend_pass_names() -> list[str]:
    """The backend passes, in pipeline order."""
    return [p.name for p in registered_passes() if p.info.backend]


def get_pass(name: str) -> GraphPass | BackendPass:
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(p.name for p in registered_passes())
        hint = did_you_mean(name, _REGISTRY)
        raise UnknownPassError(f"unknown pass `{name}`" + (f" ({hint})" if hint else "") +
                               f"; passes are: {known}") from None


def get_backend_pass(name: str) -> BackendPass:
    p = get_pass(name)
    if not isinstance(p, BackendPass):
        raise UnknownPassError(f"`{name}` is a graph pass, not a backend pass; backend passes "
                               f"are: {', '.join(backend_pass_names())}")
    return p


def pipeline_for_level(level: int) -> list[GraphPass | BackendPass]:
    """The passes `-O<level>` runs, in pipeline order."""
    return [p for p in registered_passes() if p.info.opt_level <= level]
