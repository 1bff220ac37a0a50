"""`asnc opt`: run the graph passes and write the optimised network as .asn text."""

from __future__ import annotations

import json
import sys
from typing import List, Optional

import typer

from .common import allow_user_modules, atomic_write, err_console, load_checked, out
from .app import app
from .options import DisablePassOpt, ImportModulesOpt, PassesOpt, PruneThresholdOpt, TopKOpt

__all__ = ["opt", "print_reports"]


@app.command()
def opt(
    file: Optional[str] = typer.Argument(None, help="A network file (not needed with "
                                         "--list-passes)."),
    level: int = typer.Option(1, "-O", min=0, help="0: no pass; 1: exact passes (dead-node "
                              "elimination); 2: also edge pruning (threshold 0.2)."),
    passes: Optional[List[str]] = PassesOpt,
    disable: Optional[List[str]] = DisablePassOpt,
    prune_threshold: Optional[float] = PruneThresholdOpt,
    top_k: Optional[int] = TopKOpt,
    output: Optional[str] = typer.Option(None, "-o", "--output", metavar="FILE",
                                         help="Write the .asn here "
                                         "(default: stdout)."),
    report: Optional[str] = typer.Option(None, "--report", metavar="FILE",
                                         help="Write the pass reports "
                                         "here as JSON."),
    list_passes: bool = typer.Option(False, "--list-passes", help="List the passes and exit."),
    import_modules: bool = ImportModulesOpt,
) -> None:
    """Optimise: remove dead nodes (-O1) and weak connections (-O2); print what changed."""
    from ..compiler.analysis import analyse
    from ..compiler.passes import UnknownPassError, optimise, registered_passes
    from ..compiler.validation import check
    from ..dsl.diagnostics import DiagnosticError, Source
    from ..dsl.loader import load_text
    from ..dsl.printer import format_network
    from .common import print_diagnostics

    if list_passes:
        for p in registered_passes():
            i = p.info
            kind = "backend" if i.backend else "graph"
            out.print(f"{i.name:<24} -O{i.opt_level}  {'exact' if i.exact else 'approximate':<11}"
                      f"  {kind:<7}  {i.description}")
        return
    if file is None:
        raise typer.BadParameter("give a network file (or --list-passes)")
    allow_user_modules(import_modules)
    net, _ = load_checked(file)
    try:
        o = optimise(net, level=level, passes=passes, disabled=disable or (),
                     prune_threshold=prune_threshold, prune_top_k=top_k)
    except UnknownPassError as exc:
        raise typer.BadParameter(str(exc)) from None
    new, reports = o.network, o.reports
    text = format_network(new)
    # The result must be a valid network: re-read the text and check it.
    where = output or "<opt output>"
    try:
        diags = check(load_text(text, where))
    except DiagnosticError as exc:
        diags = exc.diagnostics
    if any(d.is_error for d in diags):
        print_diagnostics(diags, Source(where, text))
        raise RuntimeError("the optimised network does not check (a bug in a pass)")
    # as written -> what `asnc compile` builds at this level (= `asnc stats -O`)
    before, after = analyse(net), o.stats()
    print_reports(reports, before, after, net.header.name, o.level)
    if report:
        data = {"input": file, "output": output, "level": o.level,
                "passes": reports.to_json(), "backend_passes": reports.backend_passes,
                "params_before": before.total, "params_after": after.total,
                "flops_before": before.flops, "flops_after": after.flops}
        atomic_write(report, json.dumps(data, indent=1) + "\n")
    if output:
        atomic_write(output, text)
        print_diagnostics([d for d in diags if not d.is_error], Source(output, text))
        err_console.print(f"wrote {output} ({len(new.nodes)} nodes)")
    else:
        sys.stdout.write(text)


def _delta(a: int, b: int, scale: float = 1.0, unit: str = "", fmt: str = ",.0f") -> str:
    pct = f" ({(b - a) / a:+.2%})" if a else ""
    return f"{a / scale:{fmt}}{unit} -> {b / scale:{fmt}}{unit}{pct}"


def print_reports(reports, before, after, name: str, level: int | None) -> None:
    """A readable summary of pipeline reports on stderr."""
    from rich.padding import Padding
    from rich.table import Table
    from rich.text import Text

    con = err_console
    which = f"-O{level}" if level is not None else "--passes"
    if not reports:
        con.print(f"{name} {which}: no pass ran")
    else:
        con.print(Text.assemble((f"{name} {which}", "bold"), f": {len(reports)} pass"
                                f"{'es' * (len(reports) != 1)}"))
    for r in reports:
        if r.backend:
            if not r.applied:
                con.print(Text.assemble("  ", (r.name, "cyan"), " (backend): does not apply: ",
                                        r.notes[0]))
                continue
            con.print(Text.assemble("  ", (r.name, "cyan"), " (backend): applied when "
                                    f"compiling; params {_delta(r.params_before, r.params_after)}"))
            continue
        kind = "exact" if r.exact else "approximate"
        parts = []
        if r.removed_edges:
            parts.append(f"{len(r.removed_edges)} edge{'s' * (len(r.removed_edges) != 1)} "
                         "removed")
        if r.removed_nodes:
            parts.append(f"{len(r.removed_nodes)} node{'s' * (len(r.removed_nodes) != 1)} "
                         "removed")
        if r.dropped_weights:
            parts.append(f"{len(r.dropped_weights)} weight"
                         f"{'s' * (len(r.dropped_weights) != 1)} dropped")
        con.print(Text.assemble("  ", (r.name, "cyan"), f" ({kind}): ",
                                ", ".join(parts) or "nothing to change"))
        if r.changed:
            con.print(f"    params {_delta(r.params_before, r.params_after)}; GFLOPs "
                      f"{_delta(r.flops_before, r.flops_after, 1e9, '', '.3f')}")
        if r.removed_nodes:
            t = Table(box=None, padding=(0, 2), show_edge=False)
            for col in ("removed node", "kind", "params", "GFLOPs"):
                t.add_column(col, justify="right" if col in ("params", "GFLOPs") else "left")
            for n in r.removed_nodes:
                t.add_row(n["name"], n["kind"], f"{n['params']:,}", f"{n['flops'] / 1e9:.3f}")
            con.print(Padding(t, (0, 0, 0, 4), expand=False))
        if r.removed_edges:
            t = Table(box=None, padding=(0, 2), show_edge=False)
            for col in ("removed edge", "weight"):
                t.add_column(col, justify="right" if col == "weight" else "left")
            for e in r.removed_edges:
                t.add_row(f"{e['src']} -> {e['dst']}", f"{e['weight']:.4f}")
            con.print(Padding(t, (0, 0, 0, 4), expand=False))
        for k in r.kept_nodes:
            con.print(f"    kept {k['name']}: {k['reason']}")
        kept_edges = [e for e in r.skipped_edges if e["reason"] != "learnable weight"]
        for e in kept_edges:
            con.print(f"    kept {e['src']} -> {e['dst']} ({e['weight']:.4f}): {e['reason']}")
        for note in r.notes:
            con.print(f"    note: {note}")
    con.print(f"  total: params {_delta(before.total, after.total)}; GFLOPs "
              f"{_delta(before.flops, after.flops, 1e9, '', '.3f')}")
