"""Edge pruning (approximate, -O2).

Removes the weak inputs of a block: those whose connection weight (after sigmoid) is below a
threshold, and/or those outside the block's `top_k` strongest. Rules:
- a block always keeps its strongest input (ties: the first listed);
- a block keeps the spatial size it had: if every input of the smallest size would go, the
  strongest of them stays (else the block would run at a larger size, cost more, and change
  every shape after it);
- a block never keeps only object stems when it had another input (they cannot set the fused
  width), the strongest other input then stays;
- learnable weights (a block written without `@w`) are never pruned: they are reported as
  skipped.
A block left with one input passes it on unscaled (a single input takes no weight), so its
remaining weight is dropped too. Dead-node elimination runs afterwards (unless disabled),
since pruning can leave nodes that no longer reach a head. Not exact: the pruned inputs no
longer add to the block's sum.
"""

from __future__ import annotations

import networkx as nx

from ...dsl.ir import Block, Stem
from ..analysis import NetworkStats, ShapeError, analyse_graph
from .context import DEFAULT_PRUNE_THRESHOLD, PassContext
from .dce import NAME as DCE, eliminate_dead_nodes
from .registry import graph_pass
from .report import PassReport

__all__ = ["prune_edges", "plan_pruning"]

NAME = "prune-edges"


def plan_pruning(g: nx.DiGraph, threshold: float | None = DEFAULT_PRUNE_THRESHOLD,
                 top_k: int | None = None, stats: NetworkStats | None = None
                 ) -> tuple[list[dict], list[dict]]:
    """Which edges `prune-edges` removes, without changing anything.

    Parameters:
        g: the network graph.
        threshold: remove weights strictly below it (None: no threshold).
        top_k: keep at most this many inputs per block (None: no limit).
        stats: `analyse_graph(g)` if already computed (for the spatial-size rule).

    Returns:
        `(pruned, skipped)`: `{src, dst, weight}` per edge to remove, in block then input
        order; `{src, dst, weight, reason}` per edge that the threshold or top-k would remove
        (or that is learnable) but that stays.
    """
    stats = stats if stats is not None else analyse_graph(g)
    shape = {n.name: n.shape for n in stats.nodes if n.kind in ("stem", "block")}
    pruned: list[dict] = []
    skipped: list[dict] = []
    for name in sorted(g.nodes, key=lambda n: g.nodes[n]["index"]):
        ir = g.nodes[name]["ir"]
        if not isinstance(ir, Block) or len(ir.inputs) < 2:
            continue
        ins = ir.inputs
        if any(i.weight is None for i in ins):
            skipped.extend({"src": i.source, "dst": name, "weight": None,
                            "reason": "learnable weight"} for i in ins)
            continue
        w = [float(i.weight) for i in ins]  # type: ignore[arg-type]
        by_strength = sorted(range(len(ins)), key=lambda k: (-w[k], k))
        keep = set(range(len(ins)))
        if threshold is not None:
            keep -= {k for k in keep if w[k] < threshold}
        if top_k is not None:
            keep &= set(by_strength[:top_k])
        reasons: dict[int, str] = {}

        def protect(k: int, reason: str, keep=keep, reasons=reasons) -> None:
            if k not in keep:
                keep.add(k)
                reasons[k] = reason

        protect(by_strength[0], "strongest input of its block")
        size = [shape[i.source][1:3] for i in ins]
        smallest = min(size)
        if all(size[k] != smallest for k in keep):
            protect(next(k for k in by_strength if size[k] == smallest),
                    "strongest input of the smallest size: keeps the block's spatial size")
        is_obj = [isinstance(g.nodes[i.source]["ir"], Stem) and
                  g.nodes[i.source]["ir"].type == "object" for i in ins]
        if len(keep) >= 2 and all(is_obj[k] for k in keep) and not all(is_obj):
            protect(next(k for k in by_strength if not is_obj[k]),
                    "strongest input that is not an object stem: sets the fused width")
        for k, inp in enumerate(ins):
            if k not in keep:
                pruned.append({"src": inp.source, "dst": name, "weight": w[k]})
            elif k in reasons:
                skipped.append({"src": inp.source, "dst": name, "weight": w[k],
                                "reason": reasons[k]})
    return pruned, skipped


def _apply(g: nx.DiGraph, pruned: list[dict]) -> tuple[nx.DiGraph, list[dict]]:
    """A copy of `g` without the pruned edges; the weights dropped from one-input blocks."""
    new = g.copy()
    by_block: dict[str, set[str]] = {}
    for e in pruned:
        by_block.setdefault(e["dst"], set()).add(e["src"])
    dropped: list[dict] = []
    for name, gone in by_block.items():
        ir = new.nodes[name]["ir"]
        inputs = [i for i in ir.inputs if i.source not in gone]
        if len(inputs) == 1 and inputs[0].weight is not None:
            dropped.append({"block": name, "src": inputs[0].source, "weight": inputs[0].weight})
            inputs = [inputs[0].model_copy(update={"weight": None})]
        new.nodes[name]["ir"] = ir.model_copy(update={"inputs": inputs})
        for src in gone:
            new.remove_edge(src, name)
        for slot, inp in enumerate(inputs):
            new.edges[inp.source, name].update(slot=slot, weight=inp.weight)
    return new, dropped


@graph_pass(NAME, opt_level=2, exact=False,
            description="remove inputs whose weight is below a threshold (default 0.2) "
                        "or outside each block's top k")
def prune_edges(g: nx.DiGraph, ctx: PassContext) -> tuple[nx.DiGraph, PassReport]:
    """Remove weak connections, then the nodes they leave dead (approximate)."""
    threshold, top_k = ctx.prune_threshold, ctx.prune_top_k
    if threshold is None and top_k is None:
        threshold = DEFAULT_PRUNE_THRESHOLD
    before = ctx.stats(g)
    pruned, skipped = plan_pruning(g, threshold, top_k, before)
    notes = [f"threshold {threshold}" if top_k is None else
             f"top {top_k} inputs per block" if threshold is None else
             f"threshold {threshold}, top {top_k} inputs per block"]
    new, dropped = _apply(g, pruned)
    # Safeguard: the rules above keep every block's spatial size, so no fusion can break;
    # should one still fail, that block keeps all its inputs.
    while True:
        try:
            ctx.stats(new)
            break
        except ShapeError as exc:
            restored = [e for e in pruned if e["dst"] == exc.node]
            if not restored:
                raise
            pruned = [e for e in pruned if e["dst"] != exc.node]
            skipped.extend({**e, "reason": f"pruning broke the fusion: {exc.message}"}
                           for e in restored)
            new, dropped = _apply(g, pruned)
    learnable = sum(1 for e in skipped if e["reason"] == "learnable weight")
    if learnable:
        notes.append(f"{learnable} learnable connection{'s' * (learnable != 1)} "
                     "never pruned")
    if pruned:
        notes.append("approximate: a pruned input no longer adds its weighted features to "
                     "its block's sum")
    if dropped:
        notes.append("blocks left with one input take it unscaled (a single input has no "
                     "weight), which changes them further: " +
                     ", ".join(d["block"] for d in dropped))
    removed_nodes: list[dict] = []
    kept_nodes: list[dict] = []
    if pruned:
        if DCE in ctx.disabled:
            notes.append(f"{DCE} is disabled: nodes left dead by pruning are kept")
        else:
            new, removed_nodes, kept_nodes, dce_notes = eliminate_dead_nodes(new, before)
            notes.extend(dce_notes)
            if removed_nodes:
                notes.append("removed nodes left dead by pruning (their numbers before "
                             "pruning)")
    return new, PassReport(NAME, False, removed_nodes=removed_nodes, removed_edges=pruned,
                           kept_nodes=kept_nodes, skipped_edges=skipped,
                           dropped_weights=dropped, notes=notes)
