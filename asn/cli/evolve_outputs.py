"""What `asnc evolve` writes from its journal: `best.asn`, `pareto/`, `evolution.png/.svg`,
`best.svg` (the connectivity diagram of the best network) and `summary.json`.

Everything here is derived from the journal's records alone (the trials' directories may be
on other machines), so it is rewritten, whole and atomically, at the end of every run.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..compiler.connectivity import rounded_weight, with_weights
from ..compiler.evolution.pareto import pareto_front
from ..dsl.ir import Network
from ..dsl.loader import load_text
from ..dsl.printer import format_network
from .common import atomic_write

__all__ = ["learned_network", "best_text", "write_outputs", "summary"]


def learned_network(record: dict) -> Network:
    """The individual's network with the connection weights its trial learned written in."""
    net = load_text(record["network"], f"<journal: {record['id']}>")
    learned = {b: [rounded_weight(w) for w in ws]
               for b, ws in (record.get("connections") or {}).items()}
    return with_weights(net, learned)


def lineage(record: dict, by_id: dict[int, dict]) -> list[dict]:
    chain = [record]
    while chain[-1].get("parent") is not None and chain[-1]["parent"] in by_id:
        chain.append(by_id[chain[-1]["parent"]])
    return chain


def best_text(record: dict, by_id: dict[int, dict], run_dir: Path) -> str:
    from .evolve_loop import TRIALS_DIR, describe

    weights = run_dir / TRIALS_DIR / str(record["id"]) / "final.weights.h5"
    lines = [f"# asnc evolve: trial {record['id']}, held-out top-1 {record['fitness']:.4f}, "
             f"{record['gflops']:.4f} GFLOPs, {record['params']:,} parameters",
             f"# trained weights: {weights}", "# lineage (child <- parent):"]
    chain = lineage(record, by_id)
    for r in chain:
        fit = "failed" if r.get("fitness") is None else f"{r['fitness']:.4f}"
        lines.append(f"#   trial {r['id']} ({fit}): {describe(r['mutation'])}")
    if not any(m["kind"] == "random" for m in chain[-1]["mutation"]):
        lines.append("#   the seed network")
    return "\n".join(lines) + "\n" + format_network(learned_network(record))


def summary(records: list[dict], config: dict, resumed_with: int) -> dict:
    trials = [r for r in records if r["status"] in ("done", "failed")]
    done = [r for r in trials if r["status"] == "done"]
    best = max(done, key=lambda r: (r["fitness"], -r["gflops"], -r["id"]), default=None)
    front = pareto_front([(r["id"], r["fitness"], r["gflops"]) for r in done])
    return {
        "trials": len(trials), "done": len(done),
        "failed": sum(1 for r in trials if r["status"] == "failed"),
        "rejected": sum(1 for r in records if r["status"] == "rejected"),
        "retried": sum(1 for r in trials if r.get("attempts", 1) > 1),
        "resumed_with": resumed_with,
        "best": None if best is None else {k: best[k] for k in ("id", "fitness", "gflops",
                                                                "params", "parent")},
        "pareto": front,
        "config": config,
    }


def write_outputs(run_dir: Path, records: list[dict], config: dict, resumed_with: int
                  ) -> dict:
    """Write every output of the run; return the summary (also `summary.json`)."""
    from ..backends.plots import draw_evolution

    by_id = {r["id"]: r for r in records}
    result = summary(records, config, resumed_with)
    if result["best"] is not None:
        best = by_id[result["best"]["id"]]
        atomic_write(str(run_dir / "best.asn"), best_text(best, by_id, run_dir))
        _viz(run_dir / "best.svg", learned_network(best))
    pareto = run_dir / "pareto"
    pareto.mkdir(exist_ok=True)
    for old in pareto.glob("trial-*.asn"):  # a resumed run's front may have moved
        if int(old.stem.split("-")[1]) not in result["pareto"]:
            old.unlink()
    for rid in result["pareto"]:
        atomic_write(str(pareto / f"trial-{rid}.asn"), best_text(by_id[rid], by_id, run_dir))
    atomic_write(str(pareto / "pareto.json"), json.dumps(
        [{k: by_id[i][k] for k in ("id", "fitness", "gflops", "params")}
         for i in result["pareto"]], indent=2) + "\n")
    draw_evolution(records, run_dir / "evolution")
    atomic_write(str(run_dir / "summary.json"), json.dumps(result, indent=2) + "\n")
    return result


def _viz(path: Path, net: Network) -> None:
    from ..backends.graphviz import ExecutableNotFound, RenderError, render, to_graph

    graph = to_graph(net, None, None, False)
    try:
        atomic_write(str(path), render(graph, "svg"))
    except (ExecutableNotFound, RenderError):  # no `dot`: the DOT text, as `asnc viz` does
        atomic_write(str(path.with_suffix(".dot")), graph.source)
