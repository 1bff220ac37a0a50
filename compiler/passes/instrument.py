"""Instruments: code the pass manager runs around every pass (as TVM's PassInstrument).

`StatsInstrument` is the one place where a pass's before/after figures are measured: the
whole network's parameters and FLOPs as the backend builds it (the lowering form so far,
`LoweringForm.count_rules`), before and after the pass. So `asnc opt`, `asnc stats -O` and
`asnc compile` see the same count at every level.
"""

from __future__ import annotations

from typing import Protocol

import networkx as nx

from .context import PassContext
from .form import LoweringForm
from .report import PassReport

__all__ = ["PassInstrument", "StatsInstrument"]


class PassInstrument(Protocol):
    def run_before_pass(self, name: str, g: nx.DiGraph, form: LoweringForm,
                        ctx: PassContext) -> None: ...

    def run_after_pass(self, report: PassReport, g: nx.DiGraph, form: LoweringForm,
                       ctx: PassContext) -> None: ...


class StatsInstrument:
    """Fills `params_before/after` and `flops_before/after` of every report."""

    def __init__(self) -> None:
        self._before: tuple[int, int] | None = None

    def run_before_pass(self, name, g, form, ctx) -> None:
        st = ctx.stats(g, form.count_rules())
        self._before = (st.total, st.flops)

    def run_after_pass(self, report, g, form, ctx) -> None:
        assert self._before is not None, "run_after_pass without run_before_pass"
        st = ctx.stats(g, form.count_rules())
        report.params_before, report.flops_before = self._before
        report.params_after, report.flops_after = st.total, st.flops
        self._before = None
